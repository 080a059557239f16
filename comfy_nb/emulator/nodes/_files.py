"""File helpers shared by the node modules: where inputs are read from, how output files are
named (ComfyUI's ``<prefix>_<counter>_.<ext>`` scheme), and IMAGE array <-> Pillow conversion."""

from __future__ import annotations

import json
import os
import random
import re
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ._base import NodeContext

# -- reading inputs -----------------------------------------------------------------------------


def annotated_path(ctx: NodeContext, name: str) -> Path:
    """The file a combo value such as ``sub/name.png`` or ``name.png [output]`` designates.

    Without an annotation the file is in the input folder. The result never leaves its folder.
    """
    base = ctx.input_dir
    for annotation, folder in (
        (" [input]", ctx.input_dir),
        (" [output]", ctx.output_dir),
        (" [temp]", ctx.temp_dir),
    ):
        if name.endswith(annotation):
            name, base = name[: -len(annotation)], folder
            break
    root = os.path.abspath(base)
    path = os.path.abspath(os.path.join(root, name))
    if os.path.commonpath((root, path)) != root:
        raise ValueError(f"Invalid file path: {name}")
    return Path(path)


# -- naming output files ------------------------------------------------------------------------

_DATE_TOKENS = re.compile(r"yyyy|yy|MM|M|dd|d|hh|h|mm|m|ss|s")


def _format_date(pattern: str, now: time.struct_time) -> str:
    """Format ``now`` with the frontend's ``%date:<pattern>%`` tokens (yyyy, MM, dd, hh, mm, ss)."""
    values = {
        "yyyy": f"{now.tm_year:04d}",
        "yy": f"{now.tm_year % 100:02d}",
        "MM": f"{now.tm_mon:02d}",
        "M": str(now.tm_mon),
        "dd": f"{now.tm_mday:02d}",
        "d": str(now.tm_mday),
        "hh": f"{now.tm_hour:02d}",
        "h": str(now.tm_hour),
        "mm": f"{now.tm_min:02d}",
        "m": str(now.tm_min),
        "ss": f"{now.tm_sec:02d}",
        "s": str(now.tm_sec),
    }
    return _DATE_TOKENS.sub(lambda match: values[match.group(0)], pattern)


def expand_prefix(prefix: str, width: int = 0, height: int = 0) -> str:
    """Replace the ``%...%`` variables a filename prefix may hold: ``%width%``, ``%height%``,
    ``%year%`` … ``%second%`` (done by the server) and ``%date:yyyy-MM-dd%`` (done by the
    frontend before it sends the prompt). Node-widget references are left as they are."""
    if "%" not in prefix:
        return prefix
    now = time.localtime()
    prefix = re.sub(r"%date:([^%]+)%", lambda m: _format_date(m.group(1), now), prefix)
    replacements = {
        "%width%": str(width),
        "%height%": str(height),
        "%year%": str(now.tm_year),
        "%month%": f"{now.tm_mon:02d}",
        "%day%": f"{now.tm_mday:02d}",
        "%hour%": f"{now.tm_hour:02d}",
        "%minute%": f"{now.tm_min:02d}",
        "%second%": f"{now.tm_sec:02d}",
    }
    for variable, value in replacements.items():
        prefix = prefix.replace(variable, value)
    return prefix


@dataclass
class SavePath:
    """Where a save node writes: ``folder / f"{filename}_{counter:05}_.{ext}"``."""

    folder: Path
    filename: str
    counter: int
    subfolder: str

    def next_file(self, ext: str, batch_number: int = 0) -> str:
        """The next file name (``%batch_num%`` replaced); advances the counter."""
        name = self.filename.replace("%batch_num%", str(batch_number))
        file = f"{name}_{self.counter:05}_.{ext}"
        self.counter += 1
        return file


def _counter_of(file_name: str, filename: str) -> int | None:
    """The counter of ``<filename>_<NNNNN>_...`` (0 if not a number), None for other files."""
    if not file_name.startswith(filename + "_"):
        return None
    head = file_name[len(filename) + 1 :].split("_")[0]
    return int(head) if head.isascii() and head.isdigit() else 0


def save_path(base_dir: Path, filename_prefix: str, width: int = 0, height: int = 0) -> SavePath:
    """Resolve ``filename_prefix`` (which may contain a subfolder) like ComfyUI's
    ``folder_paths.get_save_image_path``: the counter is one more than the highest counter of the
    files already named ``<filename>_NNNNN_*`` in the folder (the extension does not matter).

    A prefix that leads outside ``base_dir`` raises the plain ``Exception`` ComfyUI raises.
    """
    prefix = os.path.normpath(expand_prefix(filename_prefix, width, height))
    subfolder, filename = os.path.dirname(prefix), os.path.basename(prefix)
    root = os.path.abspath(base_dir)
    folder = os.path.abspath(os.path.join(root, subfolder))
    if os.path.commonpath((root, folder)) != root:
        # ComfyUI raises a bare Exception with this message
        raise Exception(
            "**** ERROR: Saving image outside the output folder is not allowed."
            f"\n full_output_folder: {folder}"
            f"\n         output_dir: {root}"
            f"\n         commonpath: {os.path.commonpath((root, folder))}"
        )
    os.makedirs(folder, exist_ok=True)
    counters = [_counter_of(name, filename) for name in os.listdir(folder)]
    found = [c for c in counters if c is not None]
    return SavePath(Path(folder), filename, max(found) + 1 if found else 1, subfolder)


def temp_prefix() -> str:
    """The prefix preview nodes save under: ``ComfyUI_temp_`` and 5 random lowercase letters."""
    return "ComfyUI_temp_" + "".join(random.choices(string.ascii_lowercase, k=5))


def file_entry(filename: str, subfolder: str, folder_type: str) -> dict[str, str]:
    """One ``{"filename", "subfolder", "type"}`` entry of a ui output list."""
    return {"filename": filename, "subfolder": subfolder, "type": folder_type}


def metadata_items(ctx: NodeContext) -> list[tuple[str, str]]:
    """``("prompt", json)`` then one ``(key, json)`` per extra_pnginfo key, as ComfyUI embeds."""
    items: list[tuple[str, str]] = []
    if ctx.prompt is not None:
        items.append(("prompt", json.dumps(ctx.prompt)))
    for key, value in (ctx.extra_pnginfo or {}).items():
        items.append((key, json.dumps(value)))
    return items


# -- IMAGE arrays <-> Pillow --------------------------------------------------------------------


def to_pil(image: np.ndarray[Any, Any]) -> Image.Image:
    """One ``[H, W, C]`` float image as an 8-bit Pillow image. Values are truncated, not rounded,
    exactly as ComfyUI does (``np.clip(255. * i, 0, 255).astype(np.uint8)``)."""
    pixels = np.clip(np.float32(255.0) * image.astype(np.float32), 0, 255).astype(np.uint8)
    if pixels.shape[-1] == 1:
        return Image.fromarray(pixels[..., 0])
    return Image.fromarray(pixels)


def from_pil(image: Image.Image) -> np.ndarray[Any, Any]:
    """An RGB Pillow image as a ``[H, W, 3]`` float32 array in 0..1."""
    return np.asarray(image.convert("RGB")).astype(np.float32) / np.float32(255.0)

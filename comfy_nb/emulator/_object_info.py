"""The node definitions the emulator serves: ComfyUI 0.3.64's real ``/object_info`` (496 classes),
packaged with comfy_nb, with the file-list combos (LoadImage, LoadAudio, ...) recomputed from the
emulator's own input folder the way ComfyUI lists its ``input/`` directory.

It owns reading the packaged data; it never reads anything outside the package.
"""

from __future__ import annotations

import copy
import functools
import gzip
import json
from importlib import resources
from pathlib import Path
from typing import Any

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
AUDIO_VIDEO_EXTENSIONS = {
    ".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac",
    ".mp4", ".webm", ".mov", ".mkv", ".avi",
}


@functools.lru_cache(maxsize=1)
def recorded_object_info() -> dict[str, Any]:
    """The object_info recorded from the real server (read once; callers must not mutate it)."""
    data = resources.files("comfy_nb.emulator").joinpath("data/object_info.json.gz").read_bytes()
    parsed: dict[str, Any] = json.loads(gzip.decompress(data))
    return parsed


def input_files(input_dir: Path) -> list[str]:
    """Every file below ``input_dir`` as ComfyUI names them (``sub/name.png``), sorted."""
    if not input_dir.is_dir():
        return []
    names = [
        p.relative_to(input_dir).as_posix()
        for p in input_dir.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    ]
    return sorted(names)


def _suffix(name: str) -> str:
    return Path(name).suffix.lower()


def current_object_info(input_dir: Path) -> dict[str, Any]:
    """object_info with the upload combos listing the files now in ``input_dir``.

    LoadImage lists images only, LoadImageMask every file, LoadAudio audio and video files,
    matching what the recorded server showed for the same folder contents.
    """
    info = copy.copy(recorded_object_info())
    files = input_files(input_dir)
    images = [f for f in files if _suffix(f) in IMAGE_EXTENSIONS]
    media = [f for f in files if _suffix(f) in AUDIO_VIDEO_EXTENSIONS]
    for class_name, choices in (
        ("LoadImage", images),
        ("LoadImageMask", files),
        ("LoadAudio", media),
    ):
        if class_name not in info:
            continue
        node = copy.deepcopy(info[class_name])
        spec = node["input"]["required"].get("image" if class_name != "LoadAudio" else "audio")
        if isinstance(spec, list) and spec and isinstance(spec[0], list):
            spec[0] = list(choices)
        info[class_name] = node
    return info

"""The node definitions the emulator serves: ComfyUI 0.3.64's real ``/object_info`` (496 classes),
packaged with comfy_nb, with the file-list combos (LoadImage, LoadAudio, ...) recomputed from the
emulator's own input folder the way ComfyUI lists its ``input/`` directory.

It owns reading the packaged data; it never reads anything outside the package.
"""

from __future__ import annotations

import copy
import mimetypes
import os
import pathlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .._comfyui.definitions import recorded_object_info


def current_object_info(input_dir: Path, classes: Iterable[str] | None = None,
                        checkpoints: Iterable[str] | None = None) -> dict[str, Any]:
    """object_info with the upload combos listing the files now in ``input_dir``; only the
    given ``classes`` (those known) when they are named, which saves listing and copying.
    ``checkpoints`` (when given) replaces the recorded server's checkpoint files."""
    recorded = recorded_object_info()
    if classes is not None:
        recorded = {name: recorded[name] for name in classes if name in recorded}
    if checkpoints is not None:
        recorded = with_checkpoints(recorded, sorted(checkpoints))
    return with_input_files(recorded, input_dir)


def with_checkpoints(object_info: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """A copy of ``object_info`` whose ``ckpt_name`` combos (every checkpoint loader) list
    ``names``; ``object_info`` itself is not modified."""
    result = dict(object_info)
    for class_type, info in object_info.items():
        spec = (info or {}).get("input", {}).get("required", {}).get("ckpt_name")
        if isinstance(spec, list) and spec and isinstance(spec[0], list):
            new_info = copy.deepcopy(info)
            new_info["input"]["required"]["ckpt_name"][0] = list(names)
            result[class_type] = new_info
    return result


# folder_paths' extension → content type overrides (applied before ``mimetypes``).
_CONTENT_TYPE_OVERRIDES = {"webp": "image", "fbx": "model"}
_MODEL_3D_SUFFIXES = {".gltf", ".glb", ".obj", ".fbx", ".stl"}


def _content_type(file_name: str) -> str | None:
    extension = file_name.split(".")[-1]
    if extension in _CONTENT_TYPE_OVERRIDES:
        return _CONTENT_TYPE_OVERRIDES[extension]
    mime_type, _ = mimetypes.guess_type(file_name, strict=False)
    return mime_type.split("/")[0] if mime_type else None


def _filter_content_types(names: Iterable[str], content_types: set[str]) -> list[str]:
    return [name for name in names if _content_type(name) in content_types]


def _listdir(folder: pathlib.Path) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _files_in(folder: pathlib.Path) -> list[str]:
    return [name for name in _listdir(folder) if (folder / name).is_file()]


def _models_3d(input_dir: pathlib.Path) -> list[str]:
    folder = input_dir / "3d"
    if not folder.is_dir():
        return []
    return [
        path.relative_to(input_dir).as_posix()
        for path in folder.rglob("*")
        if path.suffix.lower() in _MODEL_3D_SUFFIXES
    ]


# class → (input name, how ComfyUI lists the input folder for it)
_FILE_COMBOS: dict[str, tuple[str, Callable[[pathlib.Path], list[str]]]] = {
    "LoadImage": ("image", lambda d: _filter_content_types(_files_in(d), {"image"})),
    "LoadImageMask": ("image", _files_in),
    "LoadAudio": ("audio", lambda d: _filter_content_types(_listdir(d), {"audio", "video"})),
    "LoadVideo": ("file", lambda d: _filter_content_types(_files_in(d), {"video"})),
    "Load3D": ("model_file", _models_3d),
    "Load3DAnimation": ("model_file", _models_3d),
}


def with_input_files(object_info: dict[str, Any], input_dir: pathlib.Path) -> dict[str, Any]:
    """A copy of ``object_info`` whose upload combos list the files of ``input_dir`` the way
    ComfyUI's INPUT_TYPES does: sorted; top-level images for LoadImage, every top-level file for
    LoadImageMask, audio and video for LoadAudio, video for LoadVideo, ``3d/`` models for Load3D.
    ``object_info`` itself is not modified."""
    result = dict(object_info)
    folder = pathlib.Path(input_dir)
    for class_type, (input_name, list_files) in _FILE_COMBOS.items():
        info = object_info.get(class_type)
        spec = (info or {}).get("input", {}).get("required", {}).get(input_name)
        if not isinstance(spec, list) or not spec:
            continue
        files = sorted(list_files(folder))
        new_info = copy.deepcopy(info)
        assert new_info is not None
        new_spec = new_info["input"]["required"][input_name]
        if isinstance(new_spec[0], list):
            new_spec[0] = files
        elif len(new_spec) > 1 and isinstance(new_spec[1], dict) and "options" in new_spec[1]:
            new_spec[1]["options"] = files
        else:
            continue
        result[class_type] = new_info
    return result

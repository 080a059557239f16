"""Turning what a user has — a path, bytes, a PIL image or a numpy array — into a file to upload:
its bytes, a file name and a content type. Nothing here speaks HTTP."""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
from pathlib import Path
from typing import Any


def upload_payload(image: Any, name: str | None = None) -> tuple[str, bytes, str]:
    """(file name, bytes, content type) for ``image``: a path, bytes, a PIL image or an array
    (HxW, HxWx3 or HxWx4; uint8, or floats in 0..1)."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"no file at {path}: pass an existing image or audio file")
        data = path.read_bytes()
        filename = name or path.name
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        suffix = sniff_suffix(data) or ".png"
        filename = name or f"comfy_nb_{hashlib.sha256(data).hexdigest()[:12]}{suffix}"
    else:
        data = _encode_png(image)
        filename = name or f"comfy_nb_{hashlib.sha256(data).hexdigest()[:12]}.png"
    if not data:
        raise ValueError("the upload is empty")
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return filename, data, content_type


_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG", ".png"),
    (0, b"\xff\xd8\xff", ".jpg"),
    (0, b"GIF8", ".gif"),
    (0, b"fLaC", ".flac"),
    (0, b"OggS", ".ogg"),
    (0, b"ID3", ".mp3"),
    (0, b"\x1a\x45\xdf\xa3", ".webm"),
    (4, b"ftyp", ".mp4"),
)


def sniff_suffix(data: bytes) -> str | None:
    """The file extension the bytes' signature says (``.png``, ``.wav``, ...), or None."""
    if data[:4] == b"RIFF":
        return {b"WEBP": ".webp", b"WAVE": ".wav"}.get(data[8:12])
    for offset, magic, extension in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return extension
    if data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return ".mp3"
    return None


def _encode_png(image: Any) -> bytes:
    from PIL import Image

    if isinstance(image, Image.Image):
        picture = image
    else:
        import numpy as np

        if not _array_like(image):
            what = "None" if image is None else f"a value of type {type(image).__name__}"
            raise TypeError(f"cannot upload {what}: pass a file path, bytes, a PIL image or "
                            "a numpy array (HxW, HxWx3 or HxWx4)")
        array = np.asarray(image)
        if array.ndim == 4 and array.shape[0] == 1:  # a ComfyUI-style batch of one
            array = array[0]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
            raise TypeError("an image array must be HxW, HxWx3 or HxWx4 "
                            f"(got shape {array.shape})")
        if array.dtype != np.uint8:
            array = (np.clip(array.astype("float64"), 0.0, 1.0) * 255).round().astype("uint8")
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        picture = Image.fromarray(array)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _array_like(value: Any) -> bool:
    """Whether numpy can read ``value`` as an array of pixels (arrays, tensors, nested lists)."""
    return (isinstance(value, (list, tuple)) or hasattr(value, "__array__")
            or hasattr(value, "__array_interface__"))

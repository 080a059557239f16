"""Turning what a user has — a path, bytes, a PIL image or a numpy array — into a file to upload:
its bytes, a file name and a content type; and one client's uploads (:class:`Uploads`): each
content once, and the names it got. Nothing here speaks HTTP (the connection posts)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import mimetypes
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._connection import Connection


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


class Uploads:
    """The files one client uploads through ``connection``: each content once (by its sha256),
    the names it uploaded (they exist on the server, though node definitions read earlier
    predate them), and what each name returned by ``upload_image`` holds (the result cache keys
    a run by content, not by name)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._uploaded: dict[str, str] = {}  # sha256 of uploaded bytes -> server-side name
        self.known_files: set[str] = set()  # names this client uploaded
        self.digests: dict[str, str] = {}  # name from upload_image -> sha256 of its bytes

    async def image(self, image: Any, *, name: str | None = None, subfolder: str = "",
                    overwrite: bool = False, kind: str = "input") -> str:
        """Upload an image (or any input file); the name to put into a LoadImage input."""
        return await self._upload("/api/upload/image", image, name, subfolder, overwrite, kind,
                                  digest="")

    async def mask(self, mask: Any, original: str, *, name: str | None = None,
                   subfolder: str = "", kind: str = "input") -> str:
        """Upload a mask for an uploaded image (its name as :meth:`image` returned it)."""
        folder, _, filename = original.rpartition("/")
        ref = json.dumps({"filename": filename, "subfolder": folder, "type": kind})
        return await self._upload("/api/upload/mask", mask, name, subfolder, False, kind,
                                  {"original_ref": ref})

    async def content(self, data: bytes, filename: str | None, digest: str) -> str:
        """The server-side name of a run's file whose sha256 (``digest``) is known: uploaded
        the first time, the same name after that."""
        if digest not in self._uploaded:
            self._uploaded[digest] = await self._upload("/api/upload/image", data, filename,
                                                        "", False, "input", digest=digest)
        return self._uploaded[digest]

    async def _upload(self, path: str, image: Any, name: str | None, subfolder: str,
                      overwrite: bool, kind: str, extra: dict[str, str] | None = None,
                      digest: str | None = None) -> str:
        """Upload; with ``digest`` (the sha256 of the bytes, or "" to compute it) the result
        cache keys the name returned by that content from now on."""
        await self._connection.ready()
        filename, data, content_type = await asyncio.to_thread(upload_payload, image, name)
        fields = {"type": kind, "subfolder": subfolder, "overwrite": "true" if overwrite else "",
                  **(extra or {})}
        answer = await self._connection.upload(path, filename, data, content_type, fields)
        stored = str(answer.get("name", filename))
        folder = str(answer.get("subfolder") or "")
        name = f"{folder}/{stored}" if folder and self._connection.dialect == "local" else stored
        self.known_files.add(name)
        if digest is not None:  # the result cache keys this name by the content it now has
            self.digests[name] = digest or hashlib.sha256(data).hexdigest()
        return name

"""What an output file is: its kind (:class:`OutputKind`) and MIME type from its name
(:func:`kind_and_mime`), and
whether what was downloaded is what its name says: the first bytes of an image, a video or an
audio file against the signatures of its format (from the extension; from the kind alone when
the extension is unknown), and the error naming what came back instead
(:class:`~comfy_nb.client.UnexpectedContent`).

A proxy in front of a server often answers ``200 text/html`` (its login page) for any path; such
a page must never be saved as ``a.png`` or handed to Pillow.

Owns: the kinds of output files, the extension tables, the format signatures and the check.
Must not: read more than :data:`HEAD_BYTES` of a file, speak HTTP, or judge files of other kinds
(3D models, latents, text), which have no one signature.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable
from enum import Enum
from pathlib import Path

__all__ = ["HEAD_BYTES", "MEDIA_KINDS", "OutputKind", "check", "check_file", "kind_and_mime",
           "problem"]


class OutputKind(str, Enum):
    """What an output file is. Members are strings (``OutputKind.IMAGE == "image"``), so a
    kind compares, hashes, formats and serializes as its value."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    MODEL3D = "model3d"  # glTF, OBJ, STL...
    OTHER = "other"  # latents, JSON, text files, anything else

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:  # as the plain string it stands for, in reprs of files
        return repr(self.value)


#: the kinds a notebook shows inline (a gallery item, a player)
MEDIA_KINDS = frozenset({OutputKind.IMAGE, OutputKind.VIDEO, OutputKind.AUDIO})

#: how many leading bytes the check reads
HEAD_BYTES = 512

#: extension -> (kind, MIME type); checked before :mod:`mimetypes`, whose tables vary by system.
_KINDS: dict[str, tuple[OutputKind, str]] = {
    ".png": (OutputKind.IMAGE, "image/png"),
    ".apng": (OutputKind.IMAGE, "image/png"),
    ".jpg": (OutputKind.IMAGE, "image/jpeg"),
    ".jpeg": (OutputKind.IMAGE, "image/jpeg"),
    ".webp": (OutputKind.IMAGE, "image/webp"),
    ".gif": (OutputKind.IMAGE, "image/gif"),
    ".bmp": (OutputKind.IMAGE, "image/bmp"),
    ".tif": (OutputKind.IMAGE, "image/tiff"),
    ".tiff": (OutputKind.IMAGE, "image/tiff"),
    ".avif": (OutputKind.IMAGE, "image/avif"),
    ".mp4": (OutputKind.VIDEO, "video/mp4"),
    ".m4v": (OutputKind.VIDEO, "video/mp4"),
    ".webm": (OutputKind.VIDEO, "video/webm"),
    ".mov": (OutputKind.VIDEO, "video/quicktime"),
    ".mkv": (OutputKind.VIDEO, "video/x-matroska"),
    ".avi": (OutputKind.VIDEO, "video/x-msvideo"),
    ".flac": (OutputKind.AUDIO, "audio/flac"),
    ".mp3": (OutputKind.AUDIO, "audio/mpeg"),
    ".opus": (OutputKind.AUDIO, "audio/ogg"),
    ".ogg": (OutputKind.AUDIO, "audio/ogg"),
    ".wav": (OutputKind.AUDIO, "audio/wav"),
    ".m4a": (OutputKind.AUDIO, "audio/mp4"),
    ".aac": (OutputKind.AUDIO, "audio/aac"),
    ".glb": (OutputKind.MODEL3D, "model/gltf-binary"),
    ".gltf": (OutputKind.MODEL3D, "model/gltf+json"),
    ".obj": (OutputKind.MODEL3D, "model/obj"),
    ".stl": (OutputKind.MODEL3D, "model/stl"),
    ".fbx": (OutputKind.MODEL3D, "application/octet-stream"),
    ".usdz": (OutputKind.MODEL3D, "model/vnd.usdz+zip"),
    ".ply": (OutputKind.MODEL3D, "application/octet-stream"),
    ".latent": (OutputKind.OTHER, "application/octet-stream"),
    ".json": (OutputKind.OTHER, "application/json"),
    ".txt": (OutputKind.OTHER, "text/plain"),
}

#: output key -> kind, used only when the extension says nothing.
_KIND_BY_KEY = {"audio": OutputKind.AUDIO, "video": OutputKind.VIDEO, "videos": OutputKind.VIDEO,
                "gifs": OutputKind.VIDEO, "3d": OutputKind.MODEL3D}

_OCTET = "application/octet-stream"


def kind_and_mime(filename: str, key: str) -> tuple[OutputKind, str]:
    """``(kind, MIME type)`` of an output file from its extension, else from its output key
    (an :class:`OutputKind`)."""
    ext = os.path.splitext(filename)[1].lower()
    if ext in _KINDS:
        return _KINDS[ext]
    mime, _ = mimetypes.guess_type("x" + ext, strict=False) if ext else (None, None)
    if mime:
        for prefix, kind in (("image/", OutputKind.IMAGE), ("video/", OutputKind.VIDEO),
                             ("audio/", OutputKind.AUDIO), ("model/", OutputKind.MODEL3D)):
            if mime.startswith(prefix):
                return kind, mime
        return OutputKind.OTHER, mime
    return _KIND_BY_KEY.get(key, OutputKind.OTHER), _OCTET


# -- signatures ----------------------------------------------------------------------------------

_MEDIA_KINDS: dict[str, str] = {OutputKind.IMAGE: "an image", OutputKind.VIDEO: "a video",
                OutputKind.AUDIO: "an audio file"}
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def _riff(form: bytes) -> Callable[[bytes], bool]:
    return lambda head: head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == form


def _iso_media(head: bytes) -> bool:
    """An ISO base media file (MP4, MOV, M4A, AVIF): it starts with a box such as ``ftyp``."""
    return head[4:8] in _ISO_BOXES


def _mpeg_audio(head: bytes) -> bool:
    """MP3 or ADTS AAC: an ID3 tag, or an MPEG frame sync."""
    return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


_PNG = ("a PNG image", lambda head: head[:8] == b"\x89PNG\r\n\x1a\n")
_JPEG = ("a JPEG image", lambda head: head[:3] == b"\xff\xd8\xff")
_WEBP = ("a WebP image", _riff(b"WEBP"))
_GIF = ("a GIF image", lambda head: head[:6] in (b"GIF87a", b"GIF89a"))
_BMP = ("a BMP image", lambda head: head[:2] == b"BM")
_TIFF = ("a TIFF image", lambda head: head[:4] in (b"II*\x00", b"MM\x00*"))
_ISO = ("an MP4 or QuickTime file", _iso_media)
_MATROSKA = ("a WebM or Matroska video", lambda head: head[:4] == b"\x1a\x45\xdf\xa3")
_AVI = ("an AVI video", _riff(b"AVI "))
_FLAC = ("a FLAC file", lambda head: head[:4] == b"fLaC" or head[:3] == b"ID3")
_MPEG_AUDIO = ("an MP3 or AAC file", lambda head: _mpeg_audio(head) or head[:4] == b"ADIF")
_OGG = ("an Ogg file", lambda head: head[:4] == b"OggS")
_WAVE = ("a WAV file", _riff(b"WAVE"))

_SIGNATURES: dict[str, tuple[str, Callable[[bytes], bool]]] = {
    ".png": _PNG, ".apng": _PNG, ".jpg": _JPEG, ".jpeg": _JPEG, ".webp": _WEBP, ".gif": _GIF,
    ".bmp": _BMP, ".tif": _TIFF, ".tiff": _TIFF, ".avif": _ISO,
    ".mp4": _ISO, ".m4v": _ISO, ".mov": _ISO, ".webm": _MATROSKA, ".mkv": _MATROSKA,
    ".avi": _AVI,
    ".flac": _FLAC, ".mp3": _MPEG_AUDIO, ".aac": _MPEG_AUDIO, ".m4a": _ISO, ".opus": _OGG,
    ".ogg": _OGG, ".wav": _WAVE,
}
_KNOWN = (_PNG, _JPEG, _WEBP, _GIF, _TIFF, _ISO, _MATROSKA, _AVI, _FLAC, _OGG, _WAVE)


def _describe(head: bytes) -> str:
    """What ``head`` (the first bytes of a file) looks like, in a few words."""
    if not head:
        return "an empty file"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html")) or any(
            tag in text for tag in (b"<html", b"<head", b"<body", b"<title")):
        return "an HTML page"
    if text.startswith(b"<"):
        return "an XML document"
    if text.startswith((b"{", b"[")):
        return "JSON text"
    for name, matches in _KNOWN:
        if matches(head):
            return name
    printable = sum(32 <= byte < 127 or byte in b"\t\r\n" for byte in head)
    return "text" if printable >= 0.95 * len(head) else "data of an unknown kind"


def problem(filename: str, kind: str, head: bytes) -> tuple[str, str] | None:
    """``(expected, found)`` when ``head``, the first :data:`HEAD_BYTES` bytes of a file named
    ``filename`` of ``kind``, cannot be such a file; None when it can (or cannot be judged)."""
    if kind not in _MEDIA_KINDS:
        return None
    signature = _SIGNATURES.get(os.path.splitext(filename)[1].lower())
    if signature is not None:
        expected, matches = signature
        return None if head and matches(head) else (expected, _describe(head))
    found = _describe(head)  # an unknown extension: refuse only what is plainly no media
    if found in ("an empty file", "an HTML page"):
        return _MEDIA_KINDS[kind], found
    return None


def check(filename: str, kind: str, head: bytes) -> None:
    """Raise :class:`~comfy_nb.client.UnexpectedContent` when ``head`` cannot begin such a
    file."""
    found = problem(filename, kind, head[:HEAD_BYTES])
    if found is not None:
        # imported here: the result layer is loaded before the client package
        from .client._errors import UnexpectedContent

        raise UnexpectedContent(filename, *found)


def check_file(filename: str, kind: str, path: Path) -> None:
    """:func:`check` on the first bytes of the file at ``path``."""
    with open(path, "rb") as handle:
        check(filename, kind, handle.read(HEAD_BYTES))

"""What an output file is: its kind and MIME type from its name (:func:`kind_and_mime`), and
whether what was downloaded is what its name says: the first bytes of an image, a video or an
audio file against the signatures of its format (from the extension; from the kind alone when
the extension is unknown), and the error naming what came back instead
(:class:`~comfy_nb.client.UnexpectedContent`).

A proxy in front of a server often answers ``200 text/html`` (its login page) for any path; such
a page must never be saved as ``a.png`` or handed to Pillow.

Owns: the extension tables, the format signatures and the check. Must not: read more than
:data:`HEAD_BYTES` of a file, speak HTTP, or judge files of other kinds (3D models, latents,
text), which have no one signature.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["HEAD_BYTES", "check", "check_file", "kind_and_mime", "problem"]

#: how many leading bytes the check reads
HEAD_BYTES = 512

#: extension -> (kind, MIME type); checked before :mod:`mimetypes`, whose tables vary by system.
_KINDS: dict[str, tuple[str, str]] = {
    ".png": ("image", "image/png"),
    ".apng": ("image", "image/png"),
    ".jpg": ("image", "image/jpeg"),
    ".jpeg": ("image", "image/jpeg"),
    ".webp": ("image", "image/webp"),
    ".gif": ("image", "image/gif"),
    ".bmp": ("image", "image/bmp"),
    ".tif": ("image", "image/tiff"),
    ".tiff": ("image", "image/tiff"),
    ".avif": ("image", "image/avif"),
    ".mp4": ("video", "video/mp4"),
    ".m4v": ("video", "video/mp4"),
    ".webm": ("video", "video/webm"),
    ".mov": ("video", "video/quicktime"),
    ".mkv": ("video", "video/x-matroska"),
    ".avi": ("video", "video/x-msvideo"),
    ".flac": ("audio", "audio/flac"),
    ".mp3": ("audio", "audio/mpeg"),
    ".opus": ("audio", "audio/ogg"),
    ".ogg": ("audio", "audio/ogg"),
    ".wav": ("audio", "audio/wav"),
    ".m4a": ("audio", "audio/mp4"),
    ".aac": ("audio", "audio/aac"),
    ".glb": ("model3d", "model/gltf-binary"),
    ".gltf": ("model3d", "model/gltf+json"),
    ".obj": ("model3d", "model/obj"),
    ".stl": ("model3d", "model/stl"),
    ".fbx": ("model3d", "application/octet-stream"),
    ".usdz": ("model3d", "model/vnd.usdz+zip"),
    ".ply": ("model3d", "application/octet-stream"),
    ".latent": ("other", "application/octet-stream"),
    ".json": ("other", "application/json"),
    ".txt": ("other", "text/plain"),
}

#: output key -> kind, used only when the extension says nothing.
_KIND_BY_KEY = {"audio": "audio", "video": "video", "videos": "video", "gifs": "video",
                "3d": "model3d"}

_OCTET = "application/octet-stream"


def kind_and_mime(filename: str, key: str) -> tuple[str, str]:
    """``(kind, MIME type)`` of an output file from its extension, else from its output key
    (``image``, ``video``, ``audio``, ``model3d`` or ``other``)."""
    ext = os.path.splitext(filename)[1].lower()
    if ext in _KINDS:
        return _KINDS[ext]
    mime, _ = mimetypes.guess_type("x" + ext, strict=False) if ext else (None, None)
    if mime:
        for prefix, kind in (("image/", "image"), ("video/", "video"), ("audio/", "audio"),
                             ("model/", "model3d")):
            if mime.startswith(prefix):
                return kind, mime
        return "other", mime
    return _KIND_BY_KEY.get(key, "other"), _OCTET


# -- signatures ----------------------------------------------------------------------------------

_MEDIA_KINDS = {"image": "an image", "video": "a video", "audio": "an audio file"}
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
        from .errors import UnexpectedContent

        raise UnexpectedContent(filename, *found)


def check_file(filename: str, kind: str, path: Path) -> None:
    """:func:`check` on the first bytes of the file at ``path``."""
    with open(path, "rb") as handle:
        check(filename, kind, handle.read(HEAD_BYTES))

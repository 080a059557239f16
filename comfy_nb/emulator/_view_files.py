"""What ``/view`` makes of a file: its bytes as they are, or a preview (``preview=webp;90``) or one
channel (``channel=rgb|a``) rendered with Pillow, and the Content-Type ComfyUI serves it as.

Owns: rendering a served file and naming its type, for every dialect's ``/view``. Must not: find
files, read requests or answer them (the routes do).
"""

from __future__ import annotations

import io
import mimetypes
from pathlib import Path
from typing import Any

from PIL import Image

__all__ = ["UNSAFE_CONTENT_TYPES", "file_content_type", "render_view"]

UNSAFE_CONTENT_TYPES = {
    "text/html", "text/html-sandboxed", "application/xhtml+xml", "text/javascript", "text/css",
}


def render_view(path: Path, query: Any) -> tuple[bytes, str]:
    """The bytes and content type ``/view`` serves for ``path`` with its query options."""
    filename = path.name
    if "preview" in query:
        with Image.open(path) as img:
            parts = query["preview"].split(";")
            image_format = parts[0]
            if image_format not in ("webp", "jpeg") or "a" in query.get("channel", ""):
                image_format = "webp"
            quality = int(parts[-1]) if parts[-1].isascii() and parts[-1].isdigit() else 90
            picture: Image.Image = img
            if image_format == "jpeg" or query.get("channel", "") == "rgb":
                picture = img.convert("RGB")
            buffer = io.BytesIO()
            picture.save(buffer, format=image_format, quality=quality)
            return buffer.getvalue(), f"image/{image_format}"
    channel = query.get("channel", "rgba")
    if channel in ("rgb", "a"):
        with Image.open(path) as img:
            if channel == "rgb":
                if img.mode == "RGBA":
                    out = Image.merge("RGB", img.split()[:3])
                else:
                    out = img.convert("RGB")
            else:
                alpha = img.split()[3] if img.mode == "RGBA" else Image.new("L", img.size, 255)
                out = Image.new("RGBA", img.size)
                out.putalpha(alpha)
            buffer = io.BytesIO()
            out.save(buffer, format="PNG")
            return buffer.getvalue(), "image/png"
    return path.read_bytes(), file_content_type(filename)


def file_content_type(filename: str) -> str:
    """The Content-Type ``/view`` serves a file as (scriptable types as octet-stream)."""
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return "application/octet-stream" if content_type in UNSAFE_CONTENT_TYPES else content_type

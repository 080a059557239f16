"""Files on the cloud dialect: uploads (``/api/upload/image``, ``/api/upload/mask``) and
``/api/view``.

Owns Cloud's file rules: uploads are content-addressed (``<sha256>.<ext>``, stored where
``LoadImage`` reads them) within Cloud's limits (50 MB, 16384 px per edge, 64 MP); a mask upload
stores the original with the mask as its alpha; ``/api/view`` finds a file by name whatever its
subfolder and redirects (302) to a signed URL on the separate storage origin.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image

from . import _local_routes as local
from ._cloud_http import error
from ._requests import read_form
from ._server import STATE, EmulatorState
from ._storage import signed_url
from ._view_files import render_view

CLOUD_MAX_UPLOAD = 50 * 1024 * 1024
MAX_EDGE = 16384
MAX_PIXELS = 67108864


async def post_upload(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.content_length is not None and request.content_length > CLOUD_MAX_UPLOAD + 65536:
        return error(400, "file_too_large", "Uploads are limited to 50 MB per file.")
    try:
        post = await read_form(request)  # an unreadable form: HTTPBadRequest, a 400
    except web.HTTPRequestEntityTooLarge:
        return error(400, "file_too_large", "Uploads are limited to 50 MB per file.")
    image = post.get("image")
    if not isinstance(image, web.FileField):
        return error(400, "missing_file", "Send the file in a multipart part named 'image'.")
    data = image.file.read()
    size_error = _upload_limit_error(data)
    if size_error is not None:
        return error(400, *size_error)
    kind = post.get("type") or "output"
    subfolder = post.get("subfolder", "")
    body: dict[str, Any] = {"name": "", "subfolder": subfolder if isinstance(subfolder, str)
                            else "", "type": kind if isinstance(kind, str) else "output"}
    if request.path.endswith("/mask"):
        masked = _masked_original(state, data, post.get("original_ref"))
        if isinstance(masked, web.Response):
            return masked
        stored, original_hash = masked
        body["name"] = _store(state, stored, ".png")
        body["metadata"] = {"is_mask": True, "original_hash": original_hash,
                            "mask_type": "painted_masked",
                            "related_files": {"mask": body["name"]}}
    else:
        suffix = os.path.splitext(image.filename or "")[1].lower()
        extension = "." + re.sub(r"[^a-z0-9]", "", suffix)[:16]
        body["name"] = _store(state, data, extension if extension != "." else ".png")
    return web.json_response(body)


def _store(state: EmulatorState, data: bytes, extension: str) -> str:
    """Content-addressed storage: the name is the hash of the stored bytes, so the same bytes
    always get the same name and a name never changes its content (``overwrite`` is moot)."""
    name = hashlib.sha256(data).hexdigest() + extension
    target = state.input_dir / name  # every upload is readable by LoadImage
    if not target.exists():
        target.write_bytes(data)
    return name


def _upload_limit_error(data: bytes) -> tuple[str, str] | None:
    """(code, message) when ``data`` exceeds Cloud's per-file limits."""
    if len(data) > CLOUD_MAX_UPLOAD:
        return "file_too_large", "Uploads are limited to 50 MB per file."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except Image.DecompressionBombError:  # far beyond 64 MP: Pillow refuses to open it
        return "image_too_large", f"Image has more than {MAX_PIXELS} pixels."
    except Exception:  # not an image (audio, video): no pixel limits apply
        return None
    if max(width, height) > MAX_EDGE:
        return "image_too_large", f"Image is {width}x{height}; the limit is {MAX_EDGE} px per edge."
    if width * height > MAX_PIXELS:
        return "image_too_large", f"Image has {width * height} pixels; the limit is {MAX_PIXELS}."
    return None


def _masked_original(
    state: EmulatorState, mask: bytes, original_ref: Any
) -> tuple[bytes, str] | web.Response:
    """ComfyUI's mask upload: the original (found by name, wherever it is stored) with its alpha
    replaced by the mask's, as PNG bytes; with the original's content hash."""
    try:
        ref = json.loads(original_ref) if isinstance(original_ref, str) else None
    except ValueError:
        ref = None
    if not isinstance(ref, dict) or not isinstance(ref.get("filename"), str):
        return error(400, "bad_original_ref",
                     'original_ref must be a JSON string like {"filename": "...", "type": "..."}.')
    name = local.annotated(ref["filename"])[0]
    original = _find_by_name(state, name) if _safe_name(name) else 404
    if isinstance(original, int):
        return error(400, "bad_original_ref", "original_ref names no uploaded file.")
    original_bytes = original.read_bytes()
    size_error = _upload_limit_error(original_bytes)
    if size_error is not None:
        return error(400, size_error[0], "The original image: " + size_error[1])
    try:
        masked = local.apply_mask(original_bytes, mask)
    except Exception as exc:  # not images, or sizes differ
        return error(400, "bad_mask", f"Cannot apply the mask to the original: {exc}")
    return masked, hashlib.sha256(original_bytes).hexdigest()


def _safe_name(name: str) -> bool:
    return (bool(name) and not name.startswith("/") and ".." not in name
            and not any(c in name for c in "\\\0"))


async def get_view(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    query = request.rel_url.query
    if "filename" not in query:
        return error(400, "missing_filename", "filename is required")
    name = local.annotated(query["filename"])[0]
    if not _safe_name(name):
        return error(400, "invalid_filename", "filename must be a plain file name.")
    # Cloud ignores subfolder and type for storage: the exact local path first, else by name
    resolved = local.resolve_view_path(state, query)
    if isinstance(resolved, int):
        resolved = _find_by_name(state, name)
    if isinstance(resolved, int):
        return error(404, "not_found", "File not found or unauthorized")
    if query.get("channel") in ("rgb", "a", "alpha"):
        channel = "a" if query["channel"] == "alpha" else query["channel"]
        try:
            body, content_type = render_view(resolved, {"channel": channel})
        except Exception:
            return error(400, "not_an_image", "channel= needs an image file.")
        return web.Response(body=body, content_type=content_type)
    for kind, base in (("output", state.output_dir), ("temp", state.temp_dir),
                       ("input", state.input_dir)):
        try:
            relative = resolved.relative_to(base.resolve()).as_posix()
        except ValueError:
            continue
        raise web.HTTPFound(signed_url(state, kind, relative))
    return error(404, "not_found", "File not found or unauthorized")


def _find_by_name(state: EmulatorState, filename: str) -> Path | int:
    """Cloud ignores ``subfolder``: find the file by its exact name (no glob) in outputs, temp
    and inputs; 404 when there is none."""
    name = os.path.basename(filename)
    for base in (state.output_dir, state.temp_dir, state.input_dir):
        for path in sorted(base.rglob("*")):
            if path.name == name and path.is_file():
                return path.resolve()
    return 404

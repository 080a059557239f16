"""The cloud dialect's storage origin: the separate host ``/api/view`` redirects to, standing in
for Google Cloud Storage. URLs are signed (HMAC over the decoded object path, date and expiry, in
the V4 query shape ``X-Goog-Date`` / ``X-Goog-Expires`` / ``X-Goog-Signature``) and expire; the
origin refuses any request that carries an ``X-API-Key`` header or the account's API key anywhere
else (another header such as ``Authorization`` or ``Cookie``, the path or the query), so a
client that forwards its key on the redirect fails.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import mimetypes
import time
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from ._faults import faulty_file
from ._server import STATE

if TYPE_CHECKING:
    from ._server import EmulatorState

BUCKET = "comfy-cloud-emulated-outputs"


def _signature(state: EmulatorState, object_path: str, date: str, expires: int) -> str:
    message = f"{object_path}\n{date}\n{expires}".encode()
    return hmac.new(state.storage_secret, message, hashlib.sha256).hexdigest()


def signed_url(state: EmulatorState, kind: str, relative: str, ttl: float | None = None) -> str:
    """A URL on the storage origin for ``<kind>/<relative>``, valid ``ttl`` seconds (rounded up
    to whole seconds, at least 1, as ``X-Goog-Expires`` is). The signature covers the decoded
    object path, so it holds however a client percent-encodes the path."""
    expires = max(1, math.ceil(ttl if ttl is not None else state.options.signed_url_ttl))
    date = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    object_path = f"/{BUCKET}/{kind}/{relative}"
    query = urllib.parse.urlencode({
        "X-Goog-Algorithm": "GOOG4-HMAC-SHA256",
        "X-Goog-Date": date,
        "X-Goog-Expires": str(expires),
        "X-Goog-SignedHeaders": "host",
        "X-Goog-Signature": _signature(state, object_path, date, expires),
    })
    return f"{state.storage_url}{urllib.parse.quote(object_path)}?{query}"


def _storage_error(status: int, code: str, message: str) -> web.Response:
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>" \
           f"<Message>{message}</Message></Error>"
    return web.Response(status=status, text=body, content_type="application/xml")


def _carries_key(request: web.Request, key: str | None) -> bool:
    if "X-API-Key" in request.headers:
        return True
    if not key:
        return False
    if any(key in value for value in request.headers.values()):
        return True
    return key in request.path or key in urllib.parse.unquote(
        request.rel_url.raw_query_string)


async def get_object(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if _carries_key(request, state.api_key):
        return _storage_error(400, "InvalidArgument",
                              "Requests to storage must not carry the Comfy API key: the signed "
                              "URL is its own authorization.")
    query = request.rel_url.query
    object_path = request.path  # decoded, as signed
    try:
        date = query["X-Goog-Date"]
        expires = int(query["X-Goog-Expires"])
        given = query["X-Goog-Signature"]
        signed_at = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except (KeyError, ValueError):
        return _storage_error(400, "AuthenticationRequired", "Missing or malformed signature.")
    expected = _signature(state, object_path, date, expires)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return _storage_error(403, "SignatureDoesNotMatch", "The request signature does not match.")
    # X-Goog-Date has whole seconds: count from the end of that second, so a fresh URL is
    # never already expired.
    if time.time() > signed_at.timestamp() + 1 + expires:
        return _storage_error(400, "ExpiredToken", "The signed URL has expired.")
    parts = object_path.split("/", 3)  # "", bucket, kind, relative
    if len(parts) != 4 or parts[1] != BUCKET:
        return _storage_error(404, "NoSuchKey", "The specified key does not exist.")
    kind, relative = parts[2], parts[3]
    base = {"output": state.output_dir, "temp": state.temp_dir, "input": state.input_dir}.get(kind)
    path = (base / relative).resolve() if base is not None else None
    if path is None or base is None or not _inside(path, base) or not path.is_file():
        return _storage_error(404, "NoSuchKey", "The specified key does not exist.")
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    headers = {"Content-Type": content_type, "Cache-Control": "private, max-age=0"}
    body = path.read_bytes()
    faulty = await faulty_file(request, state.faults, body, headers)
    return faulty if faulty is not None else web.Response(body=body, headers=headers)


def _inside(path: Path, base: Path) -> bool:
    try:
        path.relative_to(base.resolve())
    except ValueError:
        return False
    return True


def build_storage_app(state: EmulatorState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_get("/{tail:.*}", get_object)
    return app

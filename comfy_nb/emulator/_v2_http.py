"""What every route of the v2 dialect shares: the error envelope
``{"error": {"code", "message", "details"}}``, the clock and its ISO-8601 form, the 24 h
retention of job and link expiry, the absolute base URL links are built from, and the key under
which the application keeps its :class:`~comfy_nb.emulator._v2_jobs.V2Server`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from ._v2_jobs import V2Server

V2: web.AppKey[V2Server] = web.AppKey("comfy_nb_emulator_v2")
RETENTION = timedelta(hours=24)  # a job's expires_at and a link's url_expires_at


def error(status: int, code: str, message: str, **details: Any) -> web.Response:
    """The v2 error envelope; ``details`` is null when none are given."""
    return web.json_response(
        {"error": {"code": code, "message": message, "details": details or None}}, status=status)


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def external_base(request: web.Request) -> str:
    """Scheme and ``Host`` the client reached the server on: links point back there."""
    return f"{request.scheme}://{request.host}"


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def v2_of(request: web.Request) -> V2Server:
    return request.app[V2]

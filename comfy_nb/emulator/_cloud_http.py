"""What every route of the cloud dialect shares: Comfy Cloud's ``ErrorResponse`` body
(``{"code", "message"}``), the ``X-API-Key`` check with its public operations, and the
middlewares that answer every failure (unknown route, wrong method, oversized body, crash) with
an ``ErrorResponse`` instead of aiohttp's plain-text pages.

It must not hold routes of its own.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from ._server import STATE, EmulatorState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger("comfy_nb.emulator")
PUBLIC_PATHS = {
    "/api/system_stats", "/api/features", "/api/workflow_templates", "/api/experiment/models",
    "/api/global_subgraphs",
}


def error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith("/api/experiment/models/")


def key_matches(state: EmulatorState, given: str | None) -> bool:
    expected = state.api_key or ""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


@web.middleware
async def require_api_key(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    path = request.path
    if path == "/ws" or path.startswith("/_emulator/") or _is_public(path):
        return await handler(request)
    if not path.startswith("/api/"):
        return error(404, "not_found", f"No route {path}; Comfy Cloud serves its API under /api/")
    if not key_matches(state, request.headers.get("X-API-Key")):
        return error(401, "unauthorized",
                     "Invalid or missing API key: send it in the X-API-Key header.")
    return await handler(request)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as ``ErrorResponse`` JSON: unknown routes, wrong methods, oversized bodies and
    crashes (Cloud never answers aiohttp's plain-text pages). Redirects pass through."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return error(404, "not_found", f"No route {request.path}")
    except web.HTTPMethodNotAllowed:
        return error(405, "method_not_allowed", f"{request.method} is not allowed here")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
    except Exception:
        log.exception("cloud emulator: %s %s failed", request.method, request.path)
        return error(500, "internal_error", "The emulator failed to handle this request.")

"""The v2 dialect's aiohttp application: the Comfy API v2 routes as comfy-api-proxy 0.1.6 serves
them in front of ComfyUI (recorded), over this emulator's own queue and executor.

Middlewares, outermost first: the emulator's faults (latency, injected errors in the v2
envelope, lost answers to ``POST /api/v2/jobs``), the origin
guard (a cross-site ``Sec-Fetch-Site`` or, on a loopback ``Host``, an ``Origin`` naming another
host: 403 ``forbidden_origin``), then, with a token, bearer auth on ``/api/v2/*`` except
``GET /api/v2/health`` (401 ``unauthorized``). Unknown routes get aiohttp's own plain-text 404,
as on the proxy. ``/_emulator/faults`` reads and sets faults, as in the other dialects.
"""

from __future__ import annotations

import hmac
import ipaddress
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import _v2_assets as assets
from . import _v2_jobs as jobs
from ._faults import faults_middleware
from ._local_routes import get_faults, post_faults
from ._server import STATE, EmulatorState
from ._v2_events import close_streams, job_events
from ._v2_http import V2, error, external_base
from ._v2_jobs import V2Server

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HEALTH = "/api/v2/health"
LOOPBACK_NAMES = {"localhost"}


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@web.middleware
async def origin_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """ComfyUI's origin check as the proxy applies it: browsers' cross-site requests are
    refused; other clients (no ``Origin``) pass."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return error(403, "forbidden_origin",
                     "Cross-site request blocked (Sec-Fetch-Site: cross-site).")
    host, origin = request.headers.get("Host"), request.headers.get("Origin")
    if host and origin:
        parsed_origin = urllib.parse.urlparse(origin)
        parsed_host = urllib.parse.urlsplit("//" + host.lower())
        if _is_loopback(parsed_host.hostname):
            host_side = host.lower()
            origin_side = parsed_origin.netloc.lower()
            if parsed_origin.port is None:
                host_side = parsed_host.hostname or host_side
            if parsed_host.port is None:
                origin_side = parsed_origin.hostname or origin_side
            if host_side != origin_side:
                return error(403, "forbidden_origin",
                             f"Origin '{origin}' does not match request host '{host}'.")
    return await handler(request)


def bearer_auth(token: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.path == HEALTH or not request.path.startswith("/api/v2/")
                or request.method == "OPTIONS"):
            return await handler(request)
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return error(401, "unauthorized", "Missing or malformed Authorization header.")
        if not hmac.compare_digest(presented.encode(), token.encode()):
            return error(401, "unauthorized", "Invalid token.")
        return await handler(request)

    return middleware


def injected_error(status: int) -> dict[str, Any]:
    """An injected HTTP error in the v2 envelope."""
    return {"error": {"code": "emulated_fault", "message": f"injected HTTP {status}",
                      "details": None}}


async def health(request: web.Request) -> web.Response:
    """Process reachability only; ``upstream`` names this server (it runs its own jobs)."""
    return web.json_response({"status": "healthy", "upstream": external_base(request)})


def build_v2_app(state: EmulatorState) -> list[tuple[web.Application, int]]:
    middlewares = [faults_middleware(state.faults, injected_error), origin_guard]
    if state.options.token:
        middlewares.append(bearer_auth(state.options.token))
    app = web.Application(middlewares=middlewares,
                          client_max_size=state.options.max_upload_size + (1 << 20))
    app[STATE] = state
    app[V2] = V2Server(state)
    app.on_shutdown.append(close_streams)
    app.add_routes([
        web.get(HEALTH, health),
        web.post("/api/v2/jobs", jobs.submit_job),
        web.get("/api/v2/jobs", jobs.list_jobs),
        web.get("/api/v2/jobs/{id}", jobs.get_job),
        web.get("/api/v2/jobs/{id}/workflow", jobs.get_workflow),
        web.post("/api/v2/jobs/{id}/cancel", jobs.cancel_job),
        web.get("/api/v2/jobs/{id}/events", job_events),
        web.post("/api/v2/assets", assets.upload_asset),
        web.post("/api/v2/assets/from-hash", assets.asset_from_hash),
        web.post("/api/v2/assets/from-path", assets.asset_from_path),
        web.head("/api/v2/assets/by-hash/{hash}", assets.head_by_hash),
        web.get("/api/v2/assets/{id}", assets.get_asset),
        web.get("/api/v2/assets/{id}/content", assets.get_content),
        web.delete("/api/v2/assets/{id}", assets.delete_asset),
        web.get("/_emulator/faults", get_faults),
        web.post("/_emulator/faults", post_faults),
    ])
    return [(app, state.options.port)]

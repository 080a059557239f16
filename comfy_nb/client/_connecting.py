"""How a client connects, before its first job: the embedded emulator started when no server is
named (and the notice saying why), the question of what the server is (``GET /api/system_stats``,
asked without the key: Comfy Cloud answers it publicly; a server without it that answers
``GET /api/v2/health`` speaks Comfy API v2), and what to say when a server wants a key
this client may not send it. It holds no key: it is handed the
:class:`~comfy_nb._secret.Secret` that may go to the server (see :mod:`comfy_nb._config`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from .._config import (
    CLOUD_URL_VARIABLE,
    KEY_VARIABLE,
    V2_KEY_VARIABLE,
    V2_URL_VARIABLE,
    Target,
    cloud_url,
    local_url,
)
from .._secret import Secret
from ..errors import (
    AuthenticationError,
    ComfyError,
    NotFoundError,
    RequestError,
    TransportError,
)
from ._transport import HttpResponse, Transport

log = logging.getLogger("comfy_nb")


@dataclass(frozen=True)
class ServerInfo:
    """What ``/api/system_stats`` said: the dialect, the stats and the version."""

    dialect: str  # "cloud", "local" or "v2"
    stats: dict[str, Any] = field(default_factory=dict)
    version: str | None = None


def start_emulator(target: Target, dialect: str | None, options: dict[str, Any]) -> Any:
    """Start the embedded emulator (a :class:`~comfy_nb.emulator.RunningEmulator`) of
    ``dialect`` (default local) and say so: a warning when it stands in for a server nobody
    named, news when it was asked for."""
    from ..emulator import RunningEmulator
    from ..emulator._server import EmulatorOptions

    emulator = RunningEmulator(EmulatorOptions(**{"dialect": dialect or "local",
                                                  **options})).start()
    asked = target.source in ("argument", "environment")
    log.log(logging.INFO if asked else logging.WARNING,
            "comfy_nb: %s; using the embedded emulator%s at %s (stand-in pixels, not model "
            "output)", _why_emulator(target, dialect),
            " of Comfy Cloud" if emulator.dialect == "cloud" else "", emulator.url)
    return emulator


def _why_emulator(target: Target, dialect: str | None) -> str:
    if target.source == "argument":
        return "asked for the emulator"
    if target.source == "environment":
        return "COMFY_URL asks for the emulator"
    if dialect == "cloud":
        return f"no {KEY_VARIABLE} for Comfy Cloud (set it, or pass api_key=..., to use it)"
    local = local_url()
    where = f" or found at {local.split('://', 1)[1]}" if local else ""
    return f"no ComfyUI server configured{where}"


async def identify(transport: Transport, offered_key: Secret | None, target: Target,
                   connect_timeout: float) -> ServerInfo:
    """Ask the server what it is, within ``connect_timeout``, without a key. Only a server that
    refuses to answer (401/403) is asked again, with ``offered_key`` (the key that may go to
    it), which the transport then keeps sending until the caller decides otherwise."""
    where = transport.base_url
    try:
        answer = await _system_stats(transport, connect_timeout)
    except RequestError as exc:
        v2_may_answer = exc.status in (404, 405) or (exc.status in (401, 403)
                                                     and not offered_key)
        if v2_may_answer and await _speaks_v2(transport, connect_timeout):
            return ServerInfo("v2")
        if exc.status not in (401, 403) or not offered_key:
            raise _refusal(exc, where, target) from None
        transport.api_key = offered_key
        try:
            answer = await _system_stats(transport, connect_timeout)
        except RequestError as again:
            raise _refusal(again, where, target) from None
    try:
        stats = answer.json()
    except ValueError:
        stats = None
    if not isinstance(stats, dict):
        raise not_comfyui(where, answer.status, " without system stats")
    system = stats.get("system")
    system = system if isinstance(system, dict) else {}
    version = system.get("cloud_version") or system.get("comfyui_version")
    return ServerInfo("cloud" if "cloud_version" in system else "local", stats,
                      str(version) if version else None)


async def _speaks_v2(transport: Transport, connect_timeout: float) -> bool:
    """Whether the server answers Comfy API v2's ``GET /api/v2/health`` (which needs no key)
    with a JSON object."""
    try:
        answer = await asyncio.wait_for(
            transport.request("GET", "/api/v2/health", what="asking for Comfy API v2"),
            connect_timeout)
        return isinstance(answer.json(), dict)
    except (ComfyError, ValueError, asyncio.TimeoutError):
        return False


async def _system_stats(transport: Transport, connect_timeout: float) -> HttpResponse:
    asking = transport.request("GET", "/api/system_stats", what="reaching the server")
    try:
        return await asyncio.wait_for(asking, connect_timeout)
    except asyncio.TimeoutError:  # the transport turns its own timeouts into ComfyErrors
        raise TransportError(
            f"{transport.base_url} did not answer within {connect_timeout:g} s: check the URL "
            "and that the ComfyUI server is running (connect_timeout=... waits longer)"
        ) from None


def _refusal(exc: RequestError, where: str, target: Target) -> RequestError:
    """The error for a server that refused to say what it is."""
    if exc.status in (404, 405):
        return not_comfyui(where, exc.status)
    if exc.status in (401, 403):
        return AuthenticationError(f"{where} wants an API key ({exc.status}) before it says "
                                   f"what it is. {key_hint(target, where)}", status=exc.status)
    return exc


def not_comfyui(where: str, status: int, what: str = "") -> RequestError:
    """The error for a server that answers, but not as ComfyUI does."""
    kind = NotFoundError if status == 404 else RequestError
    return kind(f"{where} answered, but it is not a ComfyUI server (GET /api/system_stats "
                f"gave {status}{what}): check the URL and port", status=status)


def key_hint(target: Target, where: str) -> str:
    """What to do about a server that wants a key this client does not send it."""
    if target.key_withheld:
        return (f"{KEY_VARIABLE} is sent only to Comfy Cloud ({cloud_url()}; "
                f"{CLOUD_URL_VARIABLE} moves it), {V2_KEY_VARIABLE} only to the origin of "
                f"{V2_URL_VARIABLE}: pass api_key=... to send a key to {where}.")
    return f"Pass api_key=... (or set {KEY_VARIABLE} for Comfy Cloud)."

"""Fault injection for the emulator: what a flaky network or an overloaded server does to a client.

One :class:`Faults` object per server, settable from Python (``server.faults``), from the command
line, or over HTTP at ``POST /_emulator/faults`` (JSON with the same field names). Every fault is
off by default. ``http_error_count`` counts down one per request it answers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from aiohttp import web

CONTROL_PREFIX = "/_emulator/"
PROMPT_PATHS = ("/prompt", "/api/prompt", "/api/v2/jobs")  # where prompts are submitted


@dataclass
class Faults:
    """What to break. Assign fields directly or call :meth:`update`."""

    ws_drop_after_frames: int | None = None  # close each socket (abruptly) after N frames
    ws_refuse: bool = False  # answer websocket upgrades with 503
    http_error_count: int = 0  # answer the next N HTTP requests with http_error_status
    http_error_status: int = 503
    retry_after: float | None = None  # Retry-After seconds on injected errors (429 sets 1 s)
    latency: float = 0.0  # seconds added before every HTTP answer
    truncate_view: bool = False  # cut /view (and storage) bodies short and close the connection
    trickle_view: float = 0.0  # > 0: /view (and storage) bodies trickle, a byte every N seconds
    html_view: bool = False  # /view (and storage) answer 200 text/html: a proxy's login page
    no_credits: bool = False  # cloud: POST /api/prompt answers 402
    rate_limited: bool = False  # cloud: POST /api/prompt answers 429 with Retry-After
    lose_prompt_answers: int = 0  # queue the next N prompts, then drop the connection unanswered
    history_delay: float = 0.0  # seconds between execution_success and the history being written
    # v2: the races of comfy-api-proxy 0.1.6, as recorded
    expired_race: float = 0.0  # > 0: a job that ended less than N s ago reads as "expired"
    sse_stall: float = 0.0  # > 0: event streams miss N s of live events, then reconcile
    cancel_noop: bool = False  # cancel answers canceling/queued but the job runs on

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def update(self, **changes: Any) -> None:
        names = {f.name for f in fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(
                f"unknown fault(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}"
            )
        with self._lock:
            for key, value in changes.items():
                setattr(self, key, value)

    def reset(self) -> None:
        self.update(**{f.name: f.default for f in fields(self)})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def file_faults_armed(self) -> bool:
        """Whether file routes answer other than normally (see :func:`faulty_file`)."""
        return self.html_view or self.truncate_view or self.trickle_view > 0

    def take_lost_answer(self) -> bool:
        """Consume one armed ``lose_prompt_answers``, if any."""
        with self._lock:
            if self.lose_prompt_answers <= 0:
                return False
            self.lose_prompt_answers -= 1
            return True

    def take_http_error(self) -> int | None:
        """Consume one injected HTTP error, if any is armed."""
        with self._lock:
            if self.http_error_count <= 0:
                return None
            self.http_error_count -= 1
            return self.http_error_status


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def injected_error(status: int) -> dict[str, Any]:
    """The body of an injected HTTP error (local and cloud dialects)."""
    return {"code": "emulated_fault", "message": f"injected HTTP {status}"}


def faults_middleware(faults: Faults,
                      error_body: Callable[[int], dict[str, Any]] = injected_error) -> Any:
    """aiohttp middleware applying latency, injected HTTP errors (``error_body`` makes their
    body) and lost prompt answers (a prompt whose answer is lost is handled first: injected
    errors wait for the next request)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        if faults.latency > 0:
            await asyncio.sleep(faults.latency)
        if (request.method == "POST" and request.path in PROMPT_PATHS
                and faults.take_lost_answer()):
            return await _lose_the_answer(request, handler)
        status = faults.take_http_error()
        if status is not None:
            headers = {}
            retry_after = faults.retry_after
            if status == 429 and retry_after is None:
                retry_after = 1
            if retry_after is not None:
                headers["Retry-After"] = str(int(retry_after) if float(retry_after).is_integer()
                                             else retry_after)
            return web.json_response(error_body(status), status=status, headers=headers)
        return await handler(request)

    return middleware


async def _lose_the_answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Handle the request (a prompt is queued), then close the connection before answering:
    what a client sees when a proxy, the network or a restart loses the answer."""
    response = await handler(request)
    if request.transport is not None:
        request.transport.close()
    return response


async def write_truncated(
    request: web.Request, body: bytes, headers: dict[str, str]
) -> web.StreamResponse:
    """Announce the full length, send half the body, then drop the connection."""
    response = web.StreamResponse(status=200, headers=headers)
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: max(1, len(body) // 2)])
    if request.transport is not None:
        request.transport.close()
    return response


LOGIN_PAGE = """<!DOCTYPE html>
<html><head><title>Sign in</title></head>
<body><form method="post" action="/login"><input name="user"><input name="password"
type="password"><button>Sign in</button></form></body></html>
"""


async def write_trickled(request: web.Request, body: bytes, headers: dict[str, str],
                         interval: float) -> web.StreamResponse:
    """Announce the full length, then send the body one byte every ``interval`` seconds (a
    server that never quite stops answering); ends when the client goes away."""
    response = web.StreamResponse(status=200, headers=headers)
    response.content_length = len(body)
    await response.prepare(request)
    for index in range(len(body)):
        try:
            await response.write(body[index:index + 1])
        except (ConnectionError, RuntimeError):  # the client gave up
            return response
        await asyncio.sleep(interval)
    return response


async def faulty_file(request: web.Request, faults: Faults, body: bytes,
                      headers: dict[str, str]) -> web.StreamResponse | None:
    """The answer a file route gives under the armed file faults, or None to answer
    normally."""
    if faults.html_view:
        return web.Response(status=200, text=LOGIN_PAGE, content_type="text/html")
    if faults.truncate_view:
        return await write_truncated(request, body, headers)
    if faults.trickle_view > 0:
        return await write_trickled(request, body, headers, faults.trickle_view)
    return None

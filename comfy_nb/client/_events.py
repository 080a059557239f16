"""The event websocket: one reconnecting socket whose frames become the events of
:mod:`comfy_nb.events` (decoded by :mod:`comfy_nb.client._frames`).

This module owns the lifetime of one socket: feature negotiation, reading, reconnecting with
backoff, and clean shutdown. It knows nothing about jobs: attributing events to jobs,
REST calls and fallbacks to polling belong to the client. It must never log, repr or raise
anything containing the socket URL, because on Comfy Cloud the URL carries the API key
(``token=``); only ``host:port`` may appear.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import TransportError
from ..events import (
    Event,
    Finished,
    NodeStarted,
    Progress,
    Started,
    Status,
)
from ._backoff import Backoff
from ._frames import FEATURE_FLAGS_MESSAGE, decode


def _connect_function() -> Callable[..., Any]:
    """``websockets.asyncio.client.connect`` (websockets >= 13), else the legacy one."""
    try:
        from websockets.asyncio.client import connect
    except ImportError:  # pragma: no cover - older websockets
        import websockets

        legacy: Callable[..., Any] = websockets.connect
        return legacy
    return connect


_ws_connect = _connect_function()

__all__ = ["EventSocket", "WebSocketRefused"]

log = logging.getLogger(__name__)

RECONNECT_FIRST = 0.1  # seconds before the first reconnect; doubling after each failure

# -- the socket ---------------------------------------------------------------------------------


class _Secret:
    """Holds the URL (it may carry the API key); its repr never shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__


class _QuietLogger(logging.LoggerAdapter):
    """The logger handed to websockets. Its DEBUG output includes the request line
    (``GET /ws?clientId=...&token=...``), so everything below WARNING is dropped, and the
    secret is scrubbed from the rest."""

    def __init__(self, logger: logging.Logger, secrets: tuple[str, ...]) -> None:
        super().__init__(logger, {})
        self._secrets = tuple(s for s in secrets if s)

    def isEnabledFor(self, level: int) -> bool:
        return level >= logging.WARNING and self.logger.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = str(msg)
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        kwargs.pop("extra", None)
        kwargs.pop("stacklevel", None)
        exc_info = kwargs.pop("exc_info", None)
        # An exception's text could quote the request; say what it was, not what it said.
        if exc_info:
            text += f" ({_exc_name(exc_info)})"
        self.logger.log(level, "websockets: %s", text)


def _exc_name(exc_info: Any) -> str:
    if isinstance(exc_info, BaseException):
        return type(exc_info).__name__
    if isinstance(exc_info, tuple) and exc_info and exc_info[0] is not None:
        return str(getattr(exc_info[0], "__name__", "error"))
    return "error"


def _secret_parts(url: str) -> tuple[str, ...]:
    """The URL, its query and any token in it: strings to scrub from log output."""
    parts = [url]
    try:
        query = urlsplit(url).query
    except ValueError:
        return tuple(parts)
    if query:
        parts.append(query)
        parts += [v for values in parse_qs(query).values() for v in values if len(v) >= 8]
    return tuple(parts)


def _where(url: str) -> str:
    """``host:port`` of a URL, the only part of it that may be shown."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port or (443 if parts.scheme == "wss" else 80)
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


class WebSocketRefused(TransportError):
    """The server answered the websocket upgrade with an HTTP error (``status``)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def _status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is None:
        status = getattr(exc, "status_code", None)  # legacy InvalidStatusCode
    return status if isinstance(status, int) else None


_STATUS_HINTS = {
    401: "the API key was refused; check api_key / COMFY_CLOUD_API_KEY",
    403: "forbidden (a local ComfyUI refuses a mismatched Origin header)",
    503: "the server is unavailable",
}


class EventSocket:
    """One websocket connection to ``/ws`` that reconnects by itself.

    Every frame is decoded and passed to ``on_event`` (on the event loop). When the connection
    drops, the old socket is closed first (ComfyUI unregisters a clientId whichever of its
    sockets closes), then reconnects are tried with exponential backoff and jitter; after each
    successful reconnect ``on_reconnect`` is awaited, since events sent meanwhile are lost.
    After ``give_up_after`` consecutive failed attempts the state becomes ``"failed"``.
    ``on_state`` receives ``"connected"``, ``"reconnecting"``, ``"failed"`` and ``"closed"``.
    """

    def __init__(
        self,
        url: str,
        *,
        on_event: Callable[[Event], None],
        on_reconnect: Callable[[], Awaitable[None]] | None = None,
        on_state: Callable[[str], None] | None = None,
        preview_metadata: bool = True,
        max_backoff: float = 10.0,
        give_up_after: int | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        self._url = _Secret(url)
        self._where = _where(url)
        self._on_event = on_event
        self._on_reconnect = on_reconnect
        self._on_state = on_state
        self._preview_metadata = preview_metadata
        self._backoff = Backoff(RECONNECT_FIRST, max(RECONNECT_FIRST, max_backoff), (0.5, 1.0))
        self._give_up_after = give_up_after
        self._open_timeout = open_timeout
        self._ws_logger = _QuietLogger(log, _secret_parts(url))
        self._ws: Any = None
        self._task: asyncio.Task[None] | None = None
        self._state = "new"
        self._closing = False
        self._sid: str | None = None
        self._last_prompt_id: str | None = None
        self._last_node_id: str | None = None
        self._waiters: set[asyncio.Future[bool]] = set()

    def __repr__(self) -> str:
        return f"<EventSocket {self._where} {self._state}>"

    @property
    def connected(self) -> bool:
        return self._state == "connected" and self._ws is not None

    @property
    def state(self) -> str:
        """``new``, ``connected``, ``reconnecting``, ``failed`` or ``closed``."""
        return self._state

    @property
    def sid(self) -> str | None:
        """The session id from the server's ``status`` message on connect."""
        return self._sid

    async def start(self) -> None:
        """Connect once; raise :class:`TransportError` (``WebSocketRefused`` for an HTTP
        answer) if that fails. Later drops are handled by reconnecting."""
        if self._task is not None or self._closing:
            raise RuntimeError("an EventSocket can be started only once")
        ws = await self._open()
        if self._closing:  # close() was called while we connected
            await self._discard(ws)
            return
        self._ws = ws
        self._set_state("connected")
        self._task = asyncio.get_running_loop().create_task(self._run(ws))

    async def close(self) -> None:
        """Stop reading and reconnecting and close the socket. Idempotent."""
        if self._closing:
            if self._task is not None and self._task is not asyncio.current_task():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(self._task)
            return
        self._closing = True
        task = self._task
        ws, self._ws = self._ws, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if ws is not None:
            await self._discard(ws)
        self._set_state("closed")

    async def wait_connected(self, timeout: float) -> bool:
        """Wait until connected; False on timeout, or if the socket failed or was closed."""
        if self.connected:
            return True
        if self._state in ("failed", "closed"):
            return False
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            self._waiters.discard(waiter)

    # -- internals ------------------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        if state == self._state:
            return
        self._state = state
        log.debug("event socket %s: %s", self._where, state)
        if state in ("connected", "failed", "closed"):
            for waiter in list(self._waiters):
                if not waiter.done():
                    waiter.set_result(state == "connected")
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:
                log.exception("on_state callback failed")

    async def _open(self) -> Any:
        """One connection attempt, with the feature-flag message sent first."""
        try:
            ws = await _ws_connect(
                self._url.value,
                open_timeout=self._open_timeout,
                close_timeout=2.0,
                max_size=None,
                logger=self._ws_logger,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self._connect_error(exc) from None
        if self._preview_metadata:
            try:
                await ws.send(FEATURE_FLAGS_MESSAGE)
            except asyncio.CancelledError:
                await self._discard(ws)
                raise
            except Exception as exc:
                await self._discard(ws)
                raise self._connect_error(exc) from None
        # A fresh connection: ids remembered from before are stale.
        self._last_prompt_id = self._last_node_id = None
        return ws

    def _connect_error(self, exc: BaseException) -> TransportError:
        status = _status_of(exc)
        where = f"could not open the event websocket at {self._where}"
        if status is not None:
            hint = _STATUS_HINTS.get(status)
            suffix = f": {hint}" if hint else ""
            return WebSocketRefused(f"{where}: the server answered HTTP {status}{suffix}",
                                    status=status)
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            reason = f"no answer within {self._open_timeout:g} s"
        elif isinstance(exc, OSError):
            reason = exc.strerror or type(exc).__name__
        else:  # an invalid URI or handshake: its text may quote the URL
            reason = type(exc).__name__
        return TransportError(f"{where}: {reason}")

    async def _discard(self, ws: Any) -> None:
        """Close a socket and wait until it is closed (never raises, except cancellation)."""
        try:
            await ws.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("event socket %s: error while closing (%s)", self._where,
                      type(exc).__name__)

    async def _run(self, ws: Any) -> None:
        try:
            while not self._closing:
                await self._read(ws)
                # The old socket must be fully closed before a new one registers the same
                # clientId: closing it later would unregister the new one.
                self._ws = None
                await self._discard(ws)
                if self._closing:
                    return
                self._set_state("reconnecting")
                new_ws = await self._reconnect()
                if new_ws is None:
                    self._set_state("failed")
                    return
                ws = self._ws = new_ws
                self._set_state("connected")
                if self._on_reconnect is not None:
                    try:
                        await self._on_reconnect()
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("on_reconnect callback failed")
        finally:
            if self._closing:  # cancelled by close(), maybe mid-way: the socket must not linger
                if self._ws is ws:
                    self._ws = None
                await self._discard(ws)

    async def _read(self, ws: Any) -> None:
        """Deliver frames until the connection ends."""
        try:
            async for message in ws:
                self._deliver(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # ConnectionClosedError, OSError, ...
            code = getattr(getattr(exc, "rcvd", None), "code", None)
            log.debug("event socket %s dropped: %s%s", self._where, type(exc).__name__,
                      f" (code {code})" if code is not None else "")
        else:
            log.debug("event socket %s closed by the server", self._where)

    def _deliver(self, message: str | bytes) -> None:
        event = decode(message, last_prompt_id=self._last_prompt_id,
                       last_node_id=self._last_node_id)
        if isinstance(event, (NodeStarted, Progress)):
            if event.prompt_id is not None:
                self._last_prompt_id = event.prompt_id
            self._last_node_id = event.node_id
        elif isinstance(event, Started):
            self._last_prompt_id, self._last_node_id = event.prompt_id, None
        elif isinstance(event, Finished):
            self._last_node_id = None
        elif isinstance(event, Status) and event.sid is not None:
            self._sid = event.sid
        try:
            self._on_event(event)
        except Exception:
            log.exception("on_event callback failed for %s", type(event).__name__)

    async def _reconnect(self) -> Any:
        """Try to reconnect until it works, ``give_up_after`` attempts failed, or close()."""
        failures = 0
        while not self._closing:
            await asyncio.sleep(self._backoff.delay(failures))
            if self._closing:
                return None
            try:
                return await self._open()
            except TransportError as exc:
                failures += 1
                log.debug("event socket reconnect %d failed: %s", failures, exc)
                if self._give_up_after is not None and failures >= self._give_up_after:
                    log.warning("event socket %s: giving up after %d failed reconnects",
                                self._where, failures)
                    return None
        return None

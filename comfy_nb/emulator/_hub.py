"""The websocket side of the emulator: who is connected, what they negotiated, and delivery of
JSON and binary frames with ComfyUI's routing rules.

Local dialect: a socket is registered under its ``clientId`` (a fresh uuid4 hex without one); a new
socket with the same id replaces the old one, and closing either unregisters the id, as recorded.
A message for a ``sid`` goes to that socket only; ``sid=None`` broadcasts to all.
Cloud dialect: every socket belongs to the account of its token; a message for the account goes to
every socket of the account (``clientId`` is ignored).
v2 dialect: as local, plus one in-process listener per job id (:meth:`SocketHub.listen`), which
the event streams read.

Worker threads call :meth:`SocketHub.send_json` / :meth:`send_binary` from any thread; a single
publisher task on the event loop delivers frames in the order they were sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ._faults import Faults

log = logging.getLogger("comfy_nb.emulator")

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4


def encode_preview_legacy(image_bytes: bytes, mime: str) -> bytes:
    """Binary type 1: ``[1][1=JPEG | 2=PNG][image bytes]``."""
    image_format = 2 if mime == "image/png" else 1
    return struct.pack(">II", PREVIEW_IMAGE, image_format) + image_bytes


def encode_preview_with_metadata(image_bytes: bytes, metadata: dict[str, Any]) -> bytes:
    """Binary type 4: ``[4][len(json)][json metadata][image bytes]``."""
    meta = json.dumps(metadata).encode("utf-8")
    return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(meta)) + meta + image_bytes


def encode_text(node_id: str, text: str) -> bytes:
    """Binary type 3: ``[3][len(node_id)][node_id][text]``."""
    node = node_id.encode("utf-8")
    return struct.pack(">II", TEXT, len(node)) + node + text.encode("utf-8")


@dataclass(eq=False)
class Connection:
    """One open websocket."""

    ws: web.WebSocketResponse
    sid: str
    account: str = ""
    supports_preview_metadata: bool = False
    frames_sent: int = 0
    drop_after: int | None = None
    closed: bool = field(default=False)


class SocketHub:
    """Registry of sockets and ordered, thread-safe delivery of frames."""

    def __init__(self, dialect: str, faults: Faults) -> None:
        self.dialect = dialect
        self.faults = faults
        self._lock = threading.Lock()
        self._by_sid: dict[str, Connection] = {}  # local: the socket registered for a clientId
        self._all: list[Connection] = []  # cloud: every open socket
        # v2: the in-process listener of a job's events, keyed like a socket by client id
        self._listeners: dict[str, asyncio.Queue[tuple[str, Any]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: asyncio.Queue[tuple[str, Any, str | None, str]] | None = None
        self._publisher: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._outbox = asyncio.Queue()
        self._publisher = loop.create_task(self._publish_loop())

    async def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
        with self._lock:
            connections = list({*self._by_sid.values(), *self._all})
            self._by_sid.clear()
            self._all.clear()
        for conn in connections:
            await conn.ws.close()

    def disconnect_all(self) -> None:
        """Close every socket (from any thread), as a server going away does."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        async def close_all() -> None:
            with self._lock:
                connections = list({*self._by_sid.values(), *self._all})
            for conn in connections:
                await conn.ws.close(code=1012)  # 1012: service restart

        asyncio.run_coroutine_threadsafe(close_all(), loop)

    # -- registration ------------------------------------------------------------------------

    def register(self, ws: web.WebSocketResponse, client_id: str, account: str = "") -> Connection:
        sid = client_id or uuid.uuid4().hex
        conn = Connection(ws=ws, sid=sid, account=account,
                          drop_after=self.faults.ws_drop_after_frames)
        with self._lock:
            if self.dialect == "local":
                self._by_sid[sid] = conn
            self._all.append(conn)
        return conn

    def unregister(self, conn: Connection) -> None:
        conn.closed = True
        with self._lock:
            if self.dialect == "local":
                # ComfyUI pops the clientId whichever socket closes: closing an old socket
                # after a reconnect unregisters the new one too (recorded behaviour).
                self._by_sid.pop(conn.sid, None)
            if conn in self._all:
                self._all.remove(conn)

    def listen(self, sid: str) -> asyncio.Queue[tuple[str, Any]]:
        """From the event loop: receive the frames sent to ``sid`` (``("json", message)`` or
        ``("binary", payload)``, previews in their metadata form). Like a socket registered
        under a clientId, a new listener for ``sid`` replaces the previous one."""
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._listeners[sid] = queue
        return queue

    def unlisten(self, sid: str, queue: asyncio.Queue[tuple[str, Any]]) -> None:
        if self._listeners.get(sid) is queue:
            del self._listeners[sid]

    def connection_count(self) -> int:
        with self._lock:
            return len(self._all)

    def _targets(self, sid: str | None) -> list[Connection]:
        with self._lock:
            if self.dialect == "cloud":
                return [c for c in self._all if sid is None or c.account == sid]
            if sid is None:
                return list(self._by_sid.values())
            conn = self._by_sid.get(sid)
            return [conn] if conn is not None else []

    # -- sending (any thread) ----------------------------------------------------------------

    def send_json(self, event: str, data: dict[str, Any], sid: str | None) -> None:
        self._enqueue("json", {"type": event, "data": data}, sid)

    def send_binary(self, payload: bytes, sid: str | None, only: str = "all") -> None:
        """Send a binary frame. ``only`` = "metadata" or "legacy" restricts it to sockets that
        did / did not negotiate ``supports_preview_metadata``."""
        self._enqueue("binary", payload, sid, only)

    def _enqueue(self, kind: str, payload: Any, sid: str | None, only: str = "all") -> None:
        loop, outbox = self._loop, self._outbox
        if loop is None or outbox is None or loop.is_closed():
            return
        item = (kind, payload, sid, only)
        if _on_loop_thread(loop):
            outbox.put_nowait(item)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed while stopping
                loop.call_soon_threadsafe(outbox.put_nowait, item)

    async def send_now(self, conn: Connection, event: str, data: dict[str, Any]) -> None:
        """Send directly to one socket, from the event loop (connect-time messages)."""
        await self._deliver(conn, "json", {"type": event, "data": data})

    async def _publish_loop(self) -> None:
        assert self._outbox is not None
        while True:
            kind, payload, sid, only = await self._outbox.get()
            for conn in self._targets(sid):
                if only == "metadata" and not conn.supports_preview_metadata:
                    continue
                if only == "legacy" and conn.supports_preview_metadata and sid is not None:
                    continue
                await self._deliver(conn, kind, payload)
            listener = self._listeners.get(sid) if sid is not None else None
            if listener is not None and only != "legacy":
                listener.put_nowait((kind, payload))

    async def _deliver(self, conn: Connection, kind: str, payload: Any) -> None:
        if conn.closed or conn.ws.closed:
            return
        try:
            if kind == "json":
                await conn.ws.send_str(json.dumps(payload))
            else:
                await conn.ws.send_bytes(payload)
        except (ConnectionResetError, RuntimeError) as exc:
            log.debug("websocket %s went away: %s", conn.sid, exc)
            return
        conn.frames_sent += 1
        if conn.drop_after is not None and conn.frames_sent >= conn.drop_after:
            # Fault injection: the connection dies without a closing handshake.
            conn.closed = True
            transport = conn.ws._req.transport if conn.ws._req is not None else None
            if transport is not None:
                transport.abort()


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False

"""A TCP proxy that records every byte a client sends to the server behind it (headers,
query strings, bodies, websocket frames), for tests of what a server receives."""

from __future__ import annotations

import asyncio
import base64
import re
import threading
import urllib.parse

from .cable import Cable

_HEAD = re.compile(rb"(?:GET|POST|PUT|DELETE|HEAD) \S+ HTTP/1\.1\r\n.*?\r\n\r\n", re.DOTALL)


class Wiretap(Cable):
    """A :class:`Cable` in front of ``target`` that keeps what clients sent through it."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self._sent = bytearray()
        self._lock = threading.Lock()

    @property
    def sent(self) -> bytes:
        """Everything clients sent so far, every connection appended in turn."""
        with self._lock:
            return bytes(self._sent)

    def requests(self) -> list[bytes]:
        """The request heads clients sent (``GET /path HTTP/1.1`` and its headers), in order."""
        return _HEAD.findall(self.sent)

    def carries(self, secret: str) -> bool:
        """Whether ``secret`` went through, as it is, percent-encoded or in base64."""
        forms = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
        marks = {form.encode() for form in forms} | {base64.b64encode(secret.encode())[:16]}
        sent = self.sent
        return any(mark in sent for mark in marks)

    async def _connect(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.transport.abort()
            return
        self._connections.update((writer, upstream))
        await asyncio.gather(self._record(reader, upstream),
                             self._pipe(upstream_reader, writer), return_exceptions=True)
        self._connections.difference_update((writer, upstream))

    async def _record(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                with self._lock:
                    self._sent += data
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()

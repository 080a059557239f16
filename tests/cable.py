"""A TCP proxy that tests unplug to make a server vanish mid-job, and plug back in."""

from __future__ import annotations

import asyncio
import threading
import urllib.parse
from typing import Any

from .both_clients import WAIT


class Cable:
    """A TCP proxy on 127.0.0.1 in front of ``target`` (a URL). :meth:`unplug` closes its port
    and cuts every open connection, as if the server had died; :meth:`plug` listens again on
    the same port."""

    def __init__(self, target: str) -> None:
        self._target = urllib.parse.urlsplit(target).port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cable",
                                        daemon=True)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(WAIT)

    def start(self) -> Cable:
        self._thread.start()
        self.plug()
        return self

    def plug(self) -> None:
        self._call(self._listen())

    def unplug(self) -> None:
        self._call(self._cut())

    def close(self) -> None:
        self.unplug()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT)
        self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", self.port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._connections):
            writer.transport.abort()
        self._connections.clear()

    async def _connect(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.transport.abort()
            return
        self._connections.update((writer, upstream))
        await asyncio.gather(self._pipe(reader, upstream), self._pipe(upstream_reader, writer),
                             return_exceptions=True)
        self._connections.difference_update((writer, upstream))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()

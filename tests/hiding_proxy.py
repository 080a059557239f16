"""An HTTP and websocket proxy in front of an emulator that hides some node classes from its
node definitions (``/object_info``), as a server without a custom node pack would: for tests
of what a client does with servers that do not all have the same nodes. Everything else passes
through unchanged."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import aiohttp
from aiohttp import web

WAIT = 30.0
_HOP = {"host", "content-length", "transfer-encoding", "connection", "upgrade",
        "content-encoding"}


class HidingProxy:
    """A proxy on 127.0.0.1 (any port) in front of ``target`` (a URL) whose node definitions
    lack the classes in ``hidden``; use as a context manager."""

    def __init__(self, target: str, hidden: set[str]) -> None:
        self._target = target.rstrip("/")
        self._hidden = hidden
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hiding-proxy",
                                        daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    def __enter__(self) -> HidingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(WAIT)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(WAIT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT)
        self._loop.close()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=True)
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        target = self._target + request.rel_url.path_qs
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        if request.headers.get("upgrade", "").lower() == "websocket":
            return await self._websocket(request, target, headers)
        body = await request.read()
        async with self._session.request(request.method, target, headers=headers, data=body,
                                         allow_redirects=False) as upstream:
            data = await upstream.read()
            if request.path.rstrip("/").endswith("/object_info") and upstream.status == 200:
                definitions: dict[str, Any] = json.loads(data)
                data = json.dumps({name: definition for name, definition
                                   in definitions.items() if name not in self._hidden}).encode()
            answer = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP}
            return web.Response(status=upstream.status, body=data, headers=answer)

    async def _websocket(self, request: web.Request, target: str,
                         headers: dict[str, str]) -> web.StreamResponse:
        assert self._session is not None
        downstream = web.WebSocketResponse()
        await downstream.prepare(request)
        async with self._session.ws_connect(target.replace("http", "ws", 1),
                                            headers=headers) as upstream:
            async def up() -> None:
                async for message in downstream:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        await upstream.send_str(message.data)
                    elif message.type == aiohttp.WSMsgType.BINARY:
                        await upstream.send_bytes(message.data)

            async def down() -> None:
                async for message in upstream:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        await downstream.send_str(message.data)
                    elif message.type == aiohttp.WSMsgType.BINARY:
                        await downstream.send_bytes(message.data)

            tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
        await downstream.close()
        return downstream

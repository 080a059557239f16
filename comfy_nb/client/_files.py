"""The client as the source of a Result's files (:class:`ClientFiles`): ``/view`` (or Cloud's
signed URL) downloaded by the client, into memory or streamed into a file, from the caller's
thread or event loop.

Must not: know about the result cache or keep any bytes itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .._loop import LoopThread
from ..result import OutputFile

if TYPE_CHECKING:
    from ._connection import Connection

T = TypeVar("T")


class ClientFiles:
    """The client as a :class:`~comfy_nb.result.FileSource`: ``/view`` (or Cloud's signed URL),
    into memory (``fetch``) or streamed into a file (``fetch_to``)."""

    def __init__(self, connection: Connection, loop: LoopThread | None) -> None:
        self._connection = connection
        self.loop = loop  # the synchronous Client's loop thread; None for an AsyncClient

    def _blocking(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self.loop is None:
            coroutine.close()
            raise RuntimeError("this Result came from an AsyncClient: use `await file.aread()` "
                               "or `await result.asave(dir)`")
        return self.loop.run(coroutine)

    async def _on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """``coroutine`` awaited on the client's own loop (a Result of a synchronous Client
        may be awaited from another one)."""
        if self.loop is not None and asyncio.get_running_loop() is not self.loop.loop:
            return await asyncio.wrap_future(self.loop.submit(coroutine))
        return await coroutine

    def fetch(self, file: OutputFile) -> bytes:
        data = self._blocking(self._connection.download(file.params(), None))
        assert isinstance(data, bytes)
        return data

    async def afetch(self, file: OutputFile) -> bytes:
        data = await self._on_loop(self._connection.download(file.params(), None))
        assert isinstance(data, bytes)
        return data

    def fetch_to(self, file: OutputFile, path: Path) -> None:
        self._blocking(self._connection.download(file.params(), path))

    async def afetch_to(self, file: OutputFile, path: Path) -> None:
        await self._on_loop(self._connection.download(file.params(), path))

"""What the tests that run every scenario through both clients share (tests/client/test_client.py,
tests/test_cache.py): the :class:`Api` adapter that puts the synchronous
:class:`~comfy_nb.Client` and the :class:`~comfy_nb.AsyncClient` behind the same awaitable
methods, :func:`make_client`, :func:`api_maker`, and a LoadImage -> SaveImage workflow."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import comfy_nb
from comfy_nb import AsyncClient, Result
from comfy_nb.emulator import RunningEmulator
from comfy_nb.events import Event

WAIT = 30.0  # a safety net against hangs, never asserted on


class Api:
    """A sync or async client behind the same awaitable methods: ``await api.run(wf)`` calls
    ``client.run(wf)`` or awaits ``async_client.run(wf)``. Jobs and results differ between
    the two, so they have helpers here (``wait``, ``events``, ``read``, ``save``...)."""

    def __init__(self, mode: str, client: Any, server: RunningEmulator | None = None) -> None:
        self.mode = mode
        self.client = client
        self.server = server

    @property
    def sync(self) -> bool:
        return self.mode == "sync"

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if not self.sync or not callable(attribute):
            return attribute

        async def call(*args: Any, **kwargs: Any) -> Any:
            return attribute(*args, **kwargs)

        return call

    async def wait(self, job: Any, timeout: float | None = WAIT) -> Result:
        return job.wait(timeout) if self.sync else await job.wait(timeout)

    async def cancel_job(self, job: Any) -> bool:
        return bool(job.cancel() if self.sync else await job.cancel())

    async def events(self, job: Any) -> list[Event]:
        """Every event of the job, by iterating it (sync or async) until it ends."""
        if self.sync:
            return list(job)
        return [event async for event in job]

    async def read(self, file: comfy_nb.OutputFile) -> bytes:
        return file.read() if self.sync else await file.aread()

    async def save(self, result: Result, directory: Path) -> list[Path]:
        return result.save(directory) if self.sync else await result.asave(directory)

    async def close(self) -> None:
        if self.sync:
            self.client.close()
        else:
            await self.client.aclose()

    @property
    def secrets(self) -> list[str]:
        key = self.server.api_key if self.server is not None else None
        return [key] if key else []


async def make_client(mode: str, url: str | None = None, **options: Any) -> Any:
    """A connected :class:`~comfy_nb.Client` (``mode`` "sync") or opened
    :class:`~comfy_nb.AsyncClient` ("async")."""
    if mode == "sync":
        return comfy_nb.connect(url, **options)
    client = AsyncClient(url, **options)
    try:
        return await client.open()
    except BaseException:
        await client.aclose()
        raise


@contextlib.asynccontextmanager
async def api_maker(mode: str, url: str, server: RunningEmulator, **defaults: Any
                    ) -> AsyncIterator[Callable[..., Awaitable[Api]]]:
    """``make(**options)`` gives an :class:`Api` of a client of ``url`` (the server's key and
    ``defaults``, then ``options``); every client made is closed on exit."""
    made: list[Api] = []

    async def make(**options: Any) -> Api:
        options = {"api_key": server.api_key, **defaults, **options}
        made.append(Api(mode, await make_client(mode, url, **options), server))
        return made[-1]

    try:
        yield make
    finally:
        for api in made:
            await api.close()


def load_and_save(image: Any) -> dict[str, Any]:
    """LoadImage(image) -> SaveImage."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                    "filename_prefix": "loaded"}},
    }

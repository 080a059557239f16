"""Closing a client ends the background task that follows each of its jobs, whatever the task
was doing at that moment: woken by an event, about to read the job, or reading it. None of them
runs on against the closed client and dies with an exception nobody retrieves (asyncio's "Task
exception was never retrieved ... this client is closed")."""

from __future__ import annotations

import asyncio

import pytest

from comfy_nb import AsyncClient
from comfy_nb.client._dialects import JobStatus
from comfy_nb.emulator import RunningEmulator
from comfy_nb.job import AsyncJob
from comfy_nb.workflows import bundled

from ..factories import Emulators

WAIT = 30.0  # a safety net against hangs, never asserted on


@pytest.fixture
def slow_server(emulators: Emulators) -> RunningEmulator:
    return emulators(step_delay=2)  # the job runs for the whole test


async def running(job: AsyncJob) -> None:
    while job.status is not JobStatus.RUNNING:
        await asyncio.sleep(0.01)


# The client closes this many event-loop turns after the job's watcher was woken: the watcher
# is then waiting for the wake-up, past it, starting a read of the job, or in the read.
@pytest.mark.parametrize("turns", range(8))
async def test_closing_the_client_ends_a_busy_watcher_quietly(
        turns: int, slow_server: RunningEmulator) -> None:
    client = AsyncClient(slow_server.url)
    await client.open()
    try:
        job = await client.submit(bundled("txt2img"))
        waiting = asyncio.ensure_future(job.wait())
        await asyncio.wait_for(running(job), WAIT)
        watcher = job._watcher
        assert watcher is not None and not watcher.done()
        job.wake()  # as a websocket reconnect does
        for _ in range(turns):
            await asyncio.sleep(0)
    finally:
        await client.aclose()
    await asyncio.wait([watcher], timeout=WAIT)
    assert watcher.done()
    assert watcher.cancelled() or watcher.exception() is None, watcher.exception()
    with pytest.raises(RuntimeError, match="closed while waiting for job"):
        await waiting

"""How often a job is read: a local ComfyUI announces a job's outcome (``execution_success``)
before it writes the history, and writes it just before ``executing {node: null}``; a read in
between finds nothing and costs a round trip (history, then the queue) on every job."""

from __future__ import annotations

import pytest

from comfy_nb.emulator import RunningEmulator

from ..both_clients import WAIT, make_client
from ..factories import Emulators
from ..wiretap import Wiretap

SMALL = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                       "color": 0}},
         "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                     "filename_prefix": "small"}}}


@pytest.fixture
def slow_history(emulators: Emulators) -> RunningEmulator:
    server = emulators(step_delay=0)
    server.faults.update(history_delay=0.2)  # the gap, widened so that a read falls in it
    return server


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_local_job_is_read_once_its_history_is_written(
        mode: str, slow_history: RunningEmulator) -> None:
    tap = Wiretap(slow_history.url).start()
    try:
        client = await make_client(mode, tap.url)
        try:
            before = len(tap.requests())
            job = client.submit(SMALL, cache=False)
            job = job if mode == "sync" else await job
            result = job.wait(WAIT) if mode == "sync" else await job.wait(WAIT)
            assert result.images
            lines = [head.split(b"\r\n")[0] for head in tap.requests()[before:]]
            reads = [line for line in lines if line.startswith(b"GET /api/history/")]
            assert len(reads) == 1, lines
            assert not [line for line in lines if line.startswith(b"GET /api/queue")], lines
        finally:
            client.close() if mode == "sync" else await client.aclose()
    finally:
        tap.close()


async def test_an_outcome_without_its_finish_is_still_read(slow_history: RunningEmulator) -> None:
    """Without a websocket there are no hints at all; with one, ``executing {node: null}`` is
    not always sent: the job ends either way."""
    client = await make_client("async", slow_history.url, websocket=False, poll_interval=0.05)
    try:
        result = await (await client.submit(SMALL, cache=False)).wait(WAIT)
        assert result.images
    finally:
        await client.aclose()

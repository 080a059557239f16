"""How a job ends when its server goes away, and what Ctrl+C does to it: against the emulator,
over real sockets. A :class:`Cable` (a TCP proxy between client and emulator) is unplugged to
make the server unreachable, as a killed server or a lost network would, and plugged back in on
the same port; the emulator behind it keeps the job running meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import comfy_nb
from comfy_nb import (
    AsyncClient,
    AuthenticationError,
    JobStatus,
    RetryPolicy,
    ServerError,
    TransportError,
)
from comfy_nb._loop import LoopThread
from comfy_nb.client._connection import POLL_BACKOFF_CAP
from comfy_nb.emulator import RunningEmulator, serve
from comfy_nb.events import Progress
from comfy_nb.job import Job
from comfy_nb.notebook.progress import status_text
from comfy_nb.workflows import bundled

from ..both_clients import WAIT, Api, api_maker
from ..cable import Cable
from ..ctrl_c import press_ctrl_c_while_in
from ..factories import Clients, Emulators

FAST_RETRY = RetryPolicy(backoff=0.02, max_backoff=0.1, max_retry_after=0.2)
SHORT_BOUND = 0.5  # seconds of unreachable server before a job counts as lost, in these tests


def txt2img(steps: int) -> dict[str, Any]:
    workflow = bundled("txt2img")
    workflow["3"]["inputs"]["steps"] = steps
    return workflow


async def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.02)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


async def running_job(api: Api, steps: int) -> Any:
    """A txt2img job of ``steps`` steps, lost after ``SHORT_BOUND`` seconds without the
    server, once it runs."""
    job = await api.submit(txt2img(steps=steps))
    job.unreachable_after = SHORT_BOUND
    await eventually(lambda: job.status is JobStatus.RUNNING, "the job runs")
    return job


@pytest.fixture(params=["local", "cloud"])
def server(request: pytest.FixtureRequest, emulators: Emulators) -> RunningEmulator:
    return emulators(request.param, step_delay=0.01)


@pytest.fixture
def cable(server: RunningEmulator) -> Iterator[Cable]:
    plugged = Cable(server.url).start()
    yield plugged
    plugged.close()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def connect(mode: str, server: RunningEmulator, cable: Cable, clients: Clients
            ) -> Callable[..., Awaitable[Api]]:
    """Make clients that reach the server through the cable (closed at the end, before the
    cable: ``clients`` comes after it)."""
    return functools.partial(clients.api, mode, server, url=cable.url, retry=FAST_RETRY,
                             poll_interval=0.1)


# -- a server that goes away ----------------------------------------------------------------------


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "polling"])
async def test_a_job_whose_server_stays_unreachable_is_lost(
        connect: Callable[..., Awaitable[Api]], cable: Cable, websocket: bool) -> None:
    api = await connect(websocket=websocket)
    job = await running_job(api, steps=3000)
    cable.unplug()

    with pytest.raises(TransportError) as caught:
        await api.wait(job)
    message = str(caught.value)
    assert f"job {job.id}: the server has been unreachable since " in message
    assert f"client.job({job.id!r})" in message and "submit the workflow again" in message
    assert isinstance(caught.value.__cause__, TransportError)  # the last failed read
    assert job.lost and not job.done
    progress = job.progress()
    assert progress.lost and progress.status is JobStatus.RUNNING
    assert progress.unreachable_for is not None and progress.unreachable_for >= SHORT_BOUND
    assert (await api.events(job))  # iterating a lost job ends
    with pytest.raises(TransportError):  # and so does every later wait
        await api.wait(job)


async def test_a_server_back_within_the_bound_is_followed_on(
        connect: Callable[..., Awaitable[Api]], cable: Cable) -> None:
    api = await connect()
    job = await api.submit(txt2img(steps=100))  # it may end during the outage: no matter
    await eventually(lambda: job.progress().node_value > 0, "the sampler runs")
    cable.unplug()

    await eventually(lambda: job.progress().unreachable_for is not None,
                     "the client notices the server is gone")
    progress = job.progress()
    assert progress.status is JobStatus.RUNNING and not progress.lost
    assert "server unreachable for" in status_text(job.id, progress, job.workflow)

    cable.plug()
    result = await api.wait(job)
    assert job.status is JobStatus.SUCCEEDED and len(result.images) == 1
    assert job.progress().unreachable_for is None and not job.lost


async def test_a_short_burst_of_server_errors_is_followed_on(
        connect: Callable[..., Awaitable[Api]], server: RunningEmulator) -> None:
    api = await connect(websocket=False)
    job = await running_job(api, steps=100)
    job.unreachable_after = WAIT  # a burst far shorter than the bound
    server.faults.update(http_error_count=8, http_error_status=500)  # 2 reads of 4 attempts
    await eventually(lambda: server.faults.http_error_count == 0, "the errors are served")
    result = await api.wait(job)
    assert job.status is JobStatus.SUCCEEDED and len(result.images) == 1
    assert not job.lost and job.progress().unreachable_for is None


@pytest.mark.parametrize("websocket", [pytest.param(True, marks=pytest.mark.slow), False],
                         ids=["websocket", "polling"])
async def test_server_errors_that_last_end_the_job(
        connect: Callable[..., Awaitable[Api]], server: RunningEmulator,
        websocket: bool) -> None:
    """A server that answers, but only errors, does not keep a job followed for ever; nor
    does its websocket, which says the server is there, not that the job can be read."""
    api = await connect(websocket=websocket)
    job = await running_job(api, steps=3000)
    server.faults.update(http_error_count=10_000, http_error_status=500)
    with pytest.raises(ServerError, match="reading its state has failed since") as caught:
        await api.wait(job)
    assert caught.value.status == 500
    assert f"client.job({job.id!r})" in str(caught.value)
    assert isinstance(caught.value.__cause__, ServerError)  # the last failed read
    assert job.lost and job.progress().lost
    server.faults.update(http_error_count=0)


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_read_ends_the_job_at_once(
        connect: Callable[..., Awaitable[Api]], server: RunningEmulator, status: int) -> None:
    api = await connect(websocket=False)
    job = await running_job(api, steps=3000)
    job.unreachable_after = math.inf  # not the clock: the refusal ends it
    server.faults.update(http_error_count=10_000, http_error_status=status)
    with pytest.raises(AuthenticationError) as caught:
        await api.wait(job)
    assert caught.value.status == status
    assert f"job {job.id}: " in str(caught.value) and f"client.job({job.id!r})" in str(caught.value)
    assert job.lost and job.status is JobStatus.RUNNING
    left = server.faults.http_error_count
    await asyncio.sleep(0.5)  # five poll intervals: a followed job would have read again
    assert server.faults.http_error_count == left  # nothing polls it any more
    server.faults.update(http_error_count=0)


async def test_a_revoked_key_ends_a_cloud_job_at_once(mode: str) -> None:
    with serve(dialect="cloud", step_delay=0.01) as cloud:
        async with api_maker(mode, cloud.url, cloud, retry=FAST_RETRY, poll_interval=0.1,
                             websocket=False) as make:
            api = await make()
            job = await running_job(api, steps=3000)
            job.unreachable_after = math.inf
            cloud.state.api_key = "comfyui-another-key-0123456789"  # the key was revoked
            with pytest.raises(AuthenticationError, match=r"refused the API key \(401\)"):
                await api.wait(job)
            assert job.lost
            secret = str(api.secrets[0])
            assert secret not in repr(job.progress())


async def test_a_gateway_error_that_lasts_counts_as_unreachable(
        connect: Callable[..., Awaitable[Api]], server: RunningEmulator) -> None:
    api = await connect(websocket=False)
    job = await running_job(api, steps=3000)
    server.faults.update(http_error_count=10_000, http_error_status=502)  # a proxy, alone
    with pytest.raises(TransportError, match="unreachable since") as caught:
        await api.wait(job)
    assert isinstance(caught.value.__cause__, ServerError)
    assert caught.value.__cause__.status == 502
    server.faults.update(http_error_count=0)


def test_failed_reads_are_spaced_out_exponentially_up_to_a_cap() -> None:
    client = AsyncClient("http://127.0.0.1:9", poll_interval=0.5, websocket=False)
    hinted = [client._server.poll_delay(completion_hinted=True, failures=n) for n in range(12)]
    polled = [client._server.poll_delay(completion_hinted=False, failures=n) for n in range(12)]
    for waits, first in ((hinted, 0.1), (polled, 0.5)):
        assert first * 0.8 <= waits[0] <= first * 1.1
        assert all(wait <= POLL_BACKOFF_CAP for wait in waits)
        assert waits[3] >= first * 2 ** 3 * 0.8 * 0.9  # doubled per failure (with jitter)
        assert waits[-1] >= POLL_BACKOFF_CAP * 0.8  # then capped
    assert client._server.poll_delay(completion_hinted=False, failures=10_000) <= POLL_BACKOFF_CAP


# -- Ctrl+C and cancellation ----------------------------------------------------------------------


@pytest.fixture
def client(server: RunningEmulator, clients: Clients) -> comfy_nb.Client:
    return clients.connect(server, retry=FAST_RETRY, poll_interval=0.1)


def test_ctrl_c_in_wait_cancels_the_job_on_the_server(client: comfy_nb.Client) -> None:
    job = client.submit(txt2img(steps=3000))
    wait_until(lambda: job.status is JobStatus.RUNNING, "the job runs")
    press_ctrl_c_while_in(LoopThread.wait)
    with pytest.raises(KeyboardInterrupt):
        job.wait(WAIT)
    wait_until(lambda: job.status is JobStatus.CANCELLED, "the job is cancelled")
    assert client.queue() == []


def test_ctrl_c_while_iterating_cancels_the_job_on_the_server(client: comfy_nb.Client) -> None:
    job = client.submit(txt2img(steps=3000))
    wait_until(lambda: job.status is JobStatus.RUNNING, "the job runs")
    press_ctrl_c_while_in(Job._next)  # waiting for the next event
    with pytest.raises(KeyboardInterrupt):
        for _event in job:
            pass
    wait_until(lambda: job.status is JobStatus.CANCELLED, "the job is cancelled")
    assert client.queue() == []


def test_leaving_the_iteration_leaves_the_job_running(client: comfy_nb.Client) -> None:
    job = client.submit(txt2img(steps=50))
    for event in job:
        if isinstance(event, Progress):
            break
    result = job.wait(WAIT)
    assert job.status is JobStatus.SUCCEEDED and len(result.images) == 1


async def test_cancelling_the_awaiting_task_leaves_the_job_running(
        server: RunningEmulator) -> None:
    async with AsyncClient(server.url, api_key=server.api_key, poll_interval=0.1) as aclient:
        job = await aclient.submit(txt2img(steps=50))
        waiting = asyncio.ensure_future(job.wait())
        await eventually(lambda: job.status is JobStatus.RUNNING, "the job runs")
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        assert waiting.cancelled()
        result = await job.wait(WAIT)
        assert job.status is JobStatus.SUCCEEDED and len(result.images) == 1

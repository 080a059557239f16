"""Submitting on Comfy API v2 never runs a job twice and never loses one: the answer of a
submission is lost on the way back (a TCP proxy in front of comfy-api-proxy drops it after the
server took the job), and the client finds the job by its Idempotency-Key and marker instead of
sending it again under a new key."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from comfy_nb import AsyncClient, RetryPolicy, SubmissionUncertain
from comfy_nb.emulator import serve

from ..cable import Cable
from ..v2_proxy import serve_proxy
from .conftest import V2Server
from .workflows import invert

SUBMIT = b"POST /api/v2/jobs HTTP/1.1"  # a v2 submission
PROMPT = b"POST /prompt HTTP/1.1"  # the proxy's submission to ComfyUI
QUICK_RETRIES = RetryPolicy(attempts=3, backoff=0.05, max_backoff=0.2)


class AnswerDropper(Cable):
    """A :class:`Cable` that lets the next ``drops`` submissions reach the server and cuts the
    connection as their answers come back, as a network that fails at the worst moment."""

    def __init__(self, target: str, drops: int = 1, request: bytes = SUBMIT) -> None:
        super().__init__(target)
        self.drops = drops
        self.request = request
        self.submissions = 0  # submissions that went through to the server

    async def _connect(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream = await asyncio.open_connection("127.0.0.1",
                                                                      self._target)
        except OSError:
            writer.transport.abort()
            return
        doomed = asyncio.Event()
        self._connections.update((writer, upstream))

        async def forward() -> None:
            try:
                while data := await reader.read(1 << 16):
                    if self.request in data:
                        self.submissions += 1
                        if self.drops > 0:
                            self.drops -= 1
                            doomed.set()
                    upstream.write(data)
                    await upstream.drain()
            finally:
                upstream.transport.abort()

        async def backward() -> None:
            try:
                while data := await upstream_reader.read(1 << 16):
                    if doomed.is_set():  # the server answered: that answer never arrives
                        writer.transport.abort()
                        return
                    writer.write(data)
                    await writer.drain()
            finally:
                writer.transport.abort()

        await asyncio.gather(forward(), backward(), return_exceptions=True)
        self._connections.difference_update((writer, upstream))


@pytest.fixture
def dropper(fresh_v2: V2Server) -> Any:
    cable = AnswerDropper(fresh_v2.url).start()
    try:
        yield cable
    finally:
        cable.close()


async def _listed(server: V2Server) -> list[dict[str, Any]]:
    async with AsyncClient(server.url, api_key=server.token) as client:
        return await client.jobs(limit=50)


async def test_a_lost_answer_is_found_again_and_the_job_runs_once(
        fresh_v2: V2Server, dropper: AnswerDropper) -> None:
    async with AsyncClient(dropper.url, api_key=fresh_v2.token, retry=QUICK_RETRIES) as client:
        job = await client.submit(invert(), cache=False)
        result = await job.wait(30)
    assert result.status == "succeeded"
    assert dropper.submissions == 2  # sent again under the same key, which the server refused
    jobs = await _listed(fresh_v2)
    assert [entry["id"] for entry in jobs] == [job.id]  # one job on the server: this one


async def test_every_answer_lost_still_finds_the_one_job(fresh_v2: V2Server) -> None:
    dropper = AnswerDropper(fresh_v2.url, drops=100).start()
    try:
        async with AsyncClient(dropper.url, api_key=fresh_v2.token,
                               retry=QUICK_RETRIES) as client:
            job = await client.submit(invert(), cache=False)
            assert (await job.wait(30)).status == "succeeded"
    finally:
        dropper.close()
    assert dropper.submissions == QUICK_RETRIES.attempts
    assert [entry["id"] for entry in await _listed(fresh_v2)] == [job.id]


async def test_a_job_the_server_cannot_account_for_is_uncertain_and_runs_once() -> None:
    """The proxy loses ComfyUI's answer (503 upstream_unreachable, the key kept claimed), so
    neither it nor the client knows the job that ComfyUI queued: never sent again."""
    with serve("local", step_delay=0.01) as emulator:
        cable = AnswerDropper(str(emulator.url), drops=1, request=PROMPT).start()
        try:
            with serve_proxy(cable.url) as proxy:
                async with AsyncClient(proxy.url, api_key=proxy.token,
                                       retry=QUICK_RETRIES) as client:
                    with pytest.raises(SubmissionUncertain, match="cannot run twice"):
                        await client.submit(invert(), cache=False)
        finally:
            cable.close()
        assert cable.submissions == 1  # ComfyUI got it once, and only once
        async with AsyncClient(str(emulator.url)) as local:
            for _ in range(100):
                ran = [job for job in await local.jobs() if job["status"] == "succeeded"]
                if ran:
                    break
                await asyncio.sleep(0.05)
        assert len(ran) == 1

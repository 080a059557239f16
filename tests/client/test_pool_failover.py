"""Pools moving the jobs of a member whose server stopped, over real sockets: a server that
interrupts its running job as it stops gracefully has the job moved (but a job this pool, or
another client on a server that keeps running, interrupted ends cancelled), a moved job's files
reach the member it moves to, and those following the first job see the replacement's events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import comfy_nb
from comfy_nb import AsyncPool
from comfy_nb.client import _pool_failover
from comfy_nb.emulator import RunningEmulator
from comfy_nb.events import Event, Finished, NodeExecuted, Preview, Progress

from ..cable import Cable
from ..factories import Emulators
from ..tiny_workflows import invert
from .test_pool import history_ids, pool_of, txt2img

HELD = "was interrupted, not by this pool"  # logged as the pool holds such a job's end


async def until(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    """Wait until ``condition()`` holds (a guard against hanging, not a measure of time)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        await asyncio.sleep(0.05)


async def running_on(server: RunningEmulator) -> bool:
    async with comfy_nb.AsyncClient(server.url, websocket=False) as client:
        return any(entry.get("position") == 0 for entry in await client.queue())


async def until_running_on(server: RunningEmulator, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not await running_on(server):
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing ever ran on {server.url}")
        await asyncio.sleep(0.05)


def held(caplog: pytest.LogCaptureFixture) -> bool:
    return any(HELD in record.getMessage() for record in caplog.records)


async def stop_gracefully(server: RunningEmulator, pool_saw_it: Callable[[], bool]) -> None:
    """Stop ``server`` as its own ``stop()`` does, in two steps: it interrupts its running job
    (and reports it), and once the pool has seen that, it refuses connections."""
    await asyncio.to_thread(server.state.stop_workers)
    await until(pool_saw_it)
    await asyncio.to_thread(server.stop)


def picture_workflow(image: Any) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage",
              "inputs": {"images": ["2", 0], "filename_prefix": "moved_upload"}},
    }


# -- a server that interrupts its job as it stops ------------------------------------------------

async def test_a_submitted_job_its_server_interrupts_as_it_stops_moves_to_another_member(
        emulators: Emulators, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool_failover, "GRACEFUL_STOP_WINDOW", 30.0)  # a slow machine's stop
    caplog.set_level(logging.INFO, logger="comfy_nb")
    doomed, other = emulators(node_delay=1.0), emulators(node_delay=0.2)
    pool = await pool_of(doomed, other)
    try:
        job = await pool.submit(invert(1), cache=False)
        assert pool.server_of(job.id) == doomed.url
        await until_running_on(doomed)
        await stop_gracefully(doomed, lambda: job.done or held(caplog))
        result = await job.wait(60)
        assert result.server == other.url
        assert result.prompt_id != job.id and pool.server_of(result.prompt_id) == other.url
        assert await history_ids(other) == [result.prompt_id]
    finally:
        await pool.aclose()


async def test_a_run_its_server_interrupts_as_it_stops_runs_on_another_member(
        emulators: Emulators, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool_failover, "GRACEFUL_STOP_WINDOW", 30.0)
    caplog.set_level(logging.INFO, logger="comfy_nb")
    doomed, other = emulators(node_delay=1.0), emulators(node_delay=0.2)
    pool = await pool_of(doomed, other)
    try:
        run = asyncio.ensure_future(pool.run(invert(2), cache=False))
        await until_running_on(doomed)
        await stop_gracefully(doomed, lambda: run.done() or held(caplog))
        result = await asyncio.wait_for(run, 60)
        assert result.server == other.url
        assert await history_ids(other) == [result.prompt_id]
    finally:
        await pool.aclose()


def test_a_sweep_whose_server_stops_gracefully_ends_with_every_job_done(
        emulators: Emulators, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool_failover, "GRACEFUL_STOP_WINDOW", 30.0)
    servers = [emulators(node_delay=0.3) for _ in range(3)]
    doomed, survivors = servers[1], [servers[0], servers[2]]
    colors = list(range(200, 209))
    with comfy_nb.connect([server.url for server in servers], poll_interval=0.1) as pool:
        swept = comfy_nb.sweep(invert(0), {"EmptyImage.color": colors}, client=pool,
                               concurrency=3, progress="off", cache=False, wait=False)
        pool.loop.run(until_running_on(doomed))
        doomed.stop()  # as a server stops gracefully: its running job interrupted first
        swept.wait(60)
        assert [row["status"] for row in swept.rows()] == ["succeeded"] * len(colors)
        results = [item.result for item in swept.items if item.result is not None]
        assert sorted(result.workflow["1"]["inputs"]["color"] for result in results) == colors
        assert {result.server for result in results} <= {server.url for server in survivors}
        ran = [job_id for server in survivors for job_id in pool.loop.run(history_ids(server))]
        assert sorted(ran) == sorted(result.prompt_id for result in results)  # each once


async def test_a_job_another_client_interrupts_on_a_running_server_ends_cancelled(
        emulators: Emulators, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool_failover, "GRACEFUL_STOP_WINDOW", 1.0)
    caplog.set_level(logging.INFO, logger="comfy_nb")
    busy, other = emulators(node_delay=1.0), emulators(node_delay=0.2)
    pool = await pool_of(busy, other)
    try:
        async with comfy_nb.AsyncClient(busy.url) as someone_else:
            job = await pool.submit(invert(3), cache=False)
            await until_running_on(busy)
            await someone_else.interrupt()
            with pytest.raises(comfy_nb.JobCancelled):
                await job.wait(60)
            run = asyncio.ensure_future(pool.run(invert(4), cache=False))
            await until_running_on(busy)
            await someone_else.interrupt()
            with pytest.raises(comfy_nb.JobCancelled):
                await asyncio.wait_for(run, 60)
        assert sum(HELD in record.getMessage() for record in caplog.records) == 2
        assert await history_ids(other) == []  # never run twice on a guess
    finally:
        await pool.aclose()


async def test_a_job_the_pool_or_its_holder_cancels_ends_cancelled_though_its_server_stops(
        emulators: Emulators, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="comfy_nb")
    doomed, other = emulators(node_delay=1.0), emulators(node_delay=0.2)
    pool = await pool_of(doomed, other)
    try:
        run = asyncio.ensure_future(pool.run(invert(5), cache=False))
        await until_running_on(doomed)
        await pool.interrupt()
        with pytest.raises(comfy_nb.JobCancelled):
            await asyncio.wait_for(run, 60)
        by_id = await pool.submit(invert(6), cache=False)
        await until_running_on(doomed)
        await pool.cancel(by_id.id)
        with pytest.raises(comfy_nb.JobCancelled):
            await by_id.wait(60)
        by_holder = await pool.submit(invert(7), cache=False)
        await until_running_on(doomed)
        await by_holder.cancel()
        with pytest.raises(comfy_nb.JobCancelled):
            await by_holder.wait(60)
        await asyncio.to_thread(doomed.stop)
        assert not held(caplog)
        assert await history_ids(other) == []
    finally:
        await pool.aclose()


@pytest.mark.parametrize("through", ["pool", "member"])
async def test_a_job_asked_to_end_is_not_run_elsewhere_when_its_server_stops(
        through: str, emulators: Emulators, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="comfy_nb")
    doomed, other = emulators(node_delay=1.0), emulators(node_delay=0.2)
    cable = Cable(doomed.url).start()
    pool = await AsyncPool([cable.url, other.url], poll_interval=0.1).open()
    try:
        job = await pool.submit(invert(9), cache=False)
        await until_running_on(doomed)
        # through the pool, or through the client of the member that has the job
        canceller = pool if through == "pool" else pool.members[0]
        cancelling = asyncio.ensure_future(canceller.cancel(job.id))
        await asyncio.sleep(0)  # the cancellation starts (the pool notes it) ...
        cable.unplug()  # ... and the server is gone before anything of it is read
        with contextlib.suppress(comfy_nb.ComfyError):
            await cancelling
        await asyncio.to_thread(doomed.stop)

        def decided() -> list[str]:
            return [record.getMessage() for record in caplog.records
                    if job.id in record.getMessage() and "stopped with job" in record.getMessage()]

        await until(lambda: bool(decided()))
        assert "not run elsewhere" in decided()[0]
        job.unreachable_after = 1.0  # (not to wait a minute for what follows)
        with pytest.raises(comfy_nb.TransportError):  # lost with its server, as on one server
            await job.wait(60)
        assert await history_ids(other) == []
    finally:
        await pool.aclose()
        await asyncio.to_thread(cable.close)


async def test_a_job_waiting_behind_one_the_pool_interrupted_still_moves(
        emulators: Emulators) -> None:
    doomed, other = emulators(node_delay=1.0), emulators(node_delay=0.2)
    cable = Cable(doomed.url).start()
    pool = await AsyncPool([cable.url, other.url], poll_interval=0.1,
                           capacity={cable.url: 2}).open()
    try:
        interrupted = await pool.submit(invert(10), cache=False)
        filler = await pool.submit(invert(11), cache=False)  # the other member is busy
        waiting = await pool.submit(invert(12), cache=False)
        assert [pool.server_of(job.id) for job in (interrupted, filler, waiting)] == [
            cable.url, other.url, cable.url]
        await until_running_on(doomed)
        await until_running_on(other)
        await pool.interrupt()  # what runs now, on every member: not the job waiting
        for job in (interrupted, filler):
            with pytest.raises(comfy_nb.JobCancelled):
                await job.wait(60)
        await asyncio.to_thread(cable.unplug)
        await asyncio.to_thread(doomed.stop)
        result = await waiting.wait(60)
        assert result.server == other.url
    finally:
        await pool.aclose()
        await asyncio.to_thread(cable.close)


# -- a moved job's files and events ----------------------------------------------------------------

async def test_a_moved_jobs_files_are_uploaded_to_the_member_it_moves_to(
        emulators: Emulators, tmp_path: Path) -> None:
    from PIL import Image

    doomed, other = emulators(node_delay=1.0), emulators(node_delay=0.5)
    picture = tmp_path / "moved_input.png"
    Image.new("RGB", (4, 4), "green").save(picture)
    cable = Cable(doomed.url).start()  # unplugged: the server is gone at once, as if killed
    pool = await AsyncPool([cable.url, other.url], poll_interval=0.1,
                           capacity={cable.url: 2}).open()  # both jobs go there
    try:
        before = set(other.input_dir.iterdir())
        image = Image.new("RGB", (4, 4), "red")
        job = await pool.submit(picture_workflow(image), cache=False)
        filler = await pool.submit(invert(8), cache=False)  # the other member is busy now
        by_path = await pool.submit(picture_workflow("example.png"), cache=False,
                                    overrides={"LoadImage.image": picture})
        assert [pool.server_of(each.id) for each in (job, filler, by_path)] == [
            cable.url, other.url, cable.url]
        await until_running_on(doomed)
        await asyncio.to_thread(cable.unplug)
        await asyncio.to_thread(doomed.stop)
        results = [await job.wait(60), await by_path.wait(60)]
        assert [result.server for result in results] == [other.url, other.url]
        added = {path.name for path in set(other.input_dir.iterdir()) - before}
        assert len(added) == 2 and "moved_input.png" in added
        assert {result.workflow["1"]["inputs"]["image"] for result in results} == added
        ran = [result.prompt_id for result in results] + [(await filler.wait(60)).prompt_id]
        assert sorted(await history_ids(other)) == sorted(ran)
    finally:
        await pool.aclose()
        await asyncio.to_thread(cable.close)


async def test_a_moved_runs_file_is_uploaded_to_the_member_it_moves_to(
        emulators: Emulators) -> None:
    from PIL import Image

    doomed, other = emulators(node_delay=1.0), emulators()
    cable = Cable(doomed.url).start()
    pool = await AsyncPool([cable.url, other.url], poll_interval=0.1).open()
    try:
        before = set(other.input_dir.iterdir())
        run = asyncio.ensure_future(pool.run(picture_workflow(Image.new("RGB", (4, 4), "blue")),
                                             cache=False))
        await until_running_on(doomed)
        await asyncio.to_thread(cable.unplug)
        await asyncio.to_thread(doomed.stop)
        result = await asyncio.wait_for(run, 60)
        assert result.server == other.url
        added = {path.name for path in set(other.input_dir.iterdir()) - before}
        assert len(added) == 1 and result.workflow["1"]["inputs"]["image"] in added
    finally:
        await pool.aclose()
        await asyncio.to_thread(cable.close)


async def test_those_following_a_moved_job_see_its_replacements_events_and_end(
        emulators: Emulators) -> None:
    doomed = emulators(node_delay=1.0, checkpoints=("model.safetensors",))
    other = emulators(checkpoints=("model.safetensors",))
    cable = Cable(doomed.url).start()
    pool = await AsyncPool([cable.url, other.url], poll_interval=0.1).open()
    try:
        job = await pool.submit(txt2img("model.safetensors"), cache=False)
        assert pool.server_of(job.id) == cable.url
        called: list[Event] = []
        job.on(called.append)

        async def follow() -> list[Event]:
            return [event async for event in job]

        following = asyncio.ensure_future(follow())
        await until_running_on(doomed)
        await asyncio.to_thread(cable.unplug)
        await asyncio.to_thread(doomed.stop)
        result = await job.wait(60)
        assert result.server == other.url
        iterated = await asyncio.wait_for(following, 30)  # the iteration ended with the job
        for seen in (iterated, called):
            replacement = [event for event in seen if event.prompt_id == result.prompt_id]
            kinds = {type(event) for event in replacement}
            assert {Progress, Preview, NodeExecuted, Finished} <= kinds, kinds
        progress = job.progress()
        assert progress.status.value == "succeeded" and progress.previews >= 1
    finally:
        await pool.aclose()
        await asyncio.to_thread(cable.close)


@pytest.mark.parametrize("through", ["pool", "member"])
async def test_a_run_cancelled_by_its_id_is_not_run_elsewhere_when_its_server_stops(
        through: str, emulators: Emulators) -> None:
    doomed, other = emulators(node_delay=1.0), emulators(node_delay=0.2)
    cable = Cable(doomed.url).start()
    pool = await AsyncPool([cable.url, other.url], poll_interval=0.1).open()
    try:
        run = asyncio.ensure_future(pool.run(invert(12), cache=False, timeout=15))
        await until_running_on(doomed)
        [running] = [entry["id"] for entry in await pool.queue() if entry.get("position") == 0]
        canceller = pool if through == "pool" else pool.members[0]
        cancelling = asyncio.ensure_future(canceller.cancel(running))
        await asyncio.sleep(0)  # the cancellation starts (the pool notes it) ...
        cable.unplug()  # ... and the server is gone before anything of it is read
        with contextlib.suppress(comfy_nb.ComfyError):
            await cancelling
        await asyncio.to_thread(doomed.stop)
        # it ends as on one server: cancelled, lost with its server, or out of time
        with pytest.raises((comfy_nb.JobCancelled, comfy_nb.TransportError, comfy_nb.JobLost,
                            comfy_nb.JobTimeout)):
            await asyncio.wait_for(run, 90)
        assert await history_ids(other) == []  # never run a second time
    finally:
        await pool.aclose()
        await asyncio.to_thread(cable.close)

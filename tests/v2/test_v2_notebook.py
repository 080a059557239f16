"""What a notebook user does, on Comfy API v2 through comfy-api-proxy: the magics (the server and
key from the v2 SDK's COMFY_BASE_URL and COMFY_API_KEY), the progress panel, a sweep, a result
cache hit, more jobs at once than the proxy allows event streams, and a connection that drops
mid-job."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import comfy_nb
from comfy_nb import AsyncClient, ResultCache
from comfy_nb.events import Progress

from ..both_clients import WAIT
from ..cable import Cable
from ..shells import comfy_shell, run
from .conftest import V2Server
from .workflows import invert, txt2img


@pytest.fixture
def shell(v2: V2Server, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    with comfy_shell(monkeypatch, tmp_path, COMFY_BASE_URL=v2.url, COMFY_API_KEY=v2.token,
                     COMFY_NB_PROGRESS="text") as ip:
        yield ip


def test_comfy_run_on_v2_runs_shows_progress_and_saves(
        shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(shell, "%comfy_run txt2img --set KSampler.steps=3 --seed random")
    assert isinstance(result, comfy_nb.Result) and result.status == "succeeded"
    saved = list((tmp_path / "comfy_outputs").iterdir())
    assert saved and saved[0].read_bytes().startswith(b"\x89PNG")
    shown = capsys.readouterr().out
    assert "(v2, " in shown  # the connection line names the dialect
    assert "KSampler · step " in shown  # progress from the job's event stream
    assert "succeeded · nodes 7/7" in shown


def test_cell_magic_runs_an_api_workflow_on_v2(shell: InteractiveShell) -> None:
    import json

    run(shell, "%%comfy_run picture\n" + json.dumps(invert()))
    result = shell.user_ns["picture"]
    assert result.images[0].read().startswith(b"\x89PNG")


def test_comfy_nodes_says_it_is_unavailable_on_v2(shell: InteractiveShell,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    outcome = shell.run_cell("%comfy nodes")
    error = outcome.error_in_exec or outcome.error_before_exec
    shown = capsys.readouterr()
    text = str(error) if error is not None else shown.out + shown.err
    assert "%comfy nodes" in text and "unavailable" in text


def test_a_small_sweep_runs_on_v2(v2: V2Server) -> None:
    with comfy_nb.connect(v2.url, api_key=v2.token) as client:
        assert client.dialect == "v2"
        swept = comfy_nb.sweep(txt2img(steps=2), {"KSampler.seed": [11, 12, 13]},
                               client=client, progress="off", timeout=WAIT)
        rows = swept.rows()
    assert [row["status"] for row in rows] == ["succeeded"] * 3
    assert all(row["files"] for row in rows)


async def test_an_identical_run_is_a_cache_hit_on_v2(v2: V2Server, tmp_path: Path) -> None:
    store = ResultCache(tmp_path / "cache")
    workflow = invert()
    async with AsyncClient(v2.url, api_key=v2.token, result_cache=store) as client:
        first = await client.run(workflow, cache=True, timeout=WAIT)
        jobs = len(await client.jobs(limit=100))
    async with AsyncClient(v2.url, api_key=v2.token, result_cache=store) as client:
        second = await client.run(workflow, cache=True, timeout=WAIT)
        assert len(await client.jobs(limit=100)) == jobs  # nothing was sent
    assert not first.from_cache and second.from_cache
    assert await second.images[0].aread() == await first.images[0].aread()


async def test_more_jobs_at_once_than_the_proxy_allows_event_streams(v2: V2Server) -> None:
    """comfy-api-proxy refuses a 9th stream (429 too_many_streams): those jobs are polled."""
    async with AsyncClient(v2.url, api_key=v2.token, poll_interval=0.3) as client:
        jobs = [await client.submit(txt2img(steps=2), cache=False) for _ in range(11)]
        results = await asyncio.gather(*(job.wait(WAIT) for job in jobs))
    assert [result.status for result in results] == ["succeeded"] * 11


async def test_a_connection_that_drops_mid_job_loses_nothing(v2: V2Server) -> None:
    cable = Cable(v2.url).start()
    try:
        async with AsyncClient(cable.url, api_key=v2.token, poll_interval=0.3) as client:
            job = await client.submit(txt2img(steps=12), cache=False)
            async for event in job:
                if isinstance(event, Progress):
                    break
            cable.unplug()
            await asyncio.sleep(0.3)
            cable.plug()
            result = await job.wait(WAIT)
    finally:
        cable.close()
    assert result.status == "succeeded" and result.images


def test_a_v2_run_is_recorded_and_replays_without_a_server(v2: V2Server, tmp_path: Path) -> None:
    folder = tmp_path / "recording"
    workflow = invert()
    with comfy_nb.connect(v2.url, api_key=v2.token) as client:
        recording = comfy_nb.record(folder)
        try:
            live = client.run(workflow, timeout=WAIT)
            assert len(recording.written) == 1
        finally:
            recording.stop()
    recorded = "\n".join(path.read_text("utf-8", errors="replace")
                         for path in folder.rglob("*") if path.is_file()
                         and path.suffix in (".json", ".txt", ".md"))
    assert v2.token not in recorded  # the key is in no file of the recording
    with comfy_nb.replay(folder) as replayed:
        again = replayed.run(workflow, timeout=WAIT)
        assert again.replayed_from is not None
        assert again.prompt_id == live.prompt_id
        assert again.images[0].read() == live.images[0].read()

"""Sweeps against the emulator over real sockets: the concurrency limit (counted by the emulator
and by the client), failures that stay in their own item, checks before anything is submitted,
cancelling, and the plain data a sweep gives back. Scenarios run through the synchronous
:func:`comfy_nb.sweep` and the async :func:`comfy_nb.asweep` (the ``api`` parameter)."""

from __future__ import annotations

import _thread
import json
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import comfy_nb
from comfy_nb import sweep as sweep_function
from comfy_nb._loop import LoopThread
from comfy_nb.emulator import RunningEmulator, serve
from comfy_nb.sweeps import (
    AsyncSweep,
    Sweep,
    SweepTimeout,
    combinations,
    parse_sweep_values,
    resolve_concurrency,
    settings,
)
from comfy_nb.workflows import bundled

from .ctrl_c import main_thread_is_in, press_ctrl_c_when
from .factories import Clients, Emulators

WAIT = 60.0  # a safety net against hangs, never asserted on
CLIENTS = ["sync", "async"]


def txt2img(steps: int = 4) -> dict[str, Any]:
    workflow = bundled("txt2img")
    workflow["3"]["inputs"]["steps"] = steps
    return workflow


@pytest.fixture(autouse=True)
def core_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core alone: no progress panel even when an IPython shell exists in this process
    (the notebook view has its own tests)."""
    monkeypatch.setenv("COMFY_NB_PROGRESS", "off")
    # and no result cache (one test below turns it on): every job runs on the server
    monkeypatch.setenv("COMFY_NB_CACHE", "off")


@contextmanager
def sampling(probe: Callable[[], int], interval: float = 0.005) -> Iterator[list[int]]:
    """Call ``probe`` from a thread until the block ends; the samples."""
    samples: list[int] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            samples.append(probe())
            time.sleep(interval)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(5)


def live(items: list[Any]) -> int:
    """Items submitted and unfinished, as the client sees them."""
    return sum(1 for item in list(items) if item.status in ("queued", "running"))


async def run_sweep(api: str, server: RunningEmulator, workflow: Any, *args: Any,
                    probe: Callable[[Any], int] | None = None,
                    **kwargs: Any) -> tuple[Any, list[int]]:
    """A sweep through the sync or the async client; with ``probe``, samples of
    ``probe(sweep)`` taken while it ran."""
    kwargs.setdefault("timeout", WAIT)
    if api == "sync":
        with comfy_nb.Client(server.url, api_key=server.api_key) as client:
            running = comfy_nb.sweep(workflow, *args, client=client, wait=False,
                                     **{k: v for k, v in kwargs.items() if k != "timeout"})
            with sampling(lambda: probe(running) if probe else 0) as samples:
                running.wait(kwargs["timeout"])
            for item in running.items:  # read while the client is open
                if item.result is not None:
                    item.result.files[0].read()
            return running, samples
    async with comfy_nb.AsyncClient(server.url, api_key=server.api_key) as aclient:
        core = await comfy_nb.asweep(workflow, *args, client=aclient, wait=False,
                                     **{k: v for k, v in kwargs.items() if k != "timeout"})
        with sampling(lambda: probe(core) if probe else 0) as samples:
            await core.wait(kwargs["timeout"])
        for item in core.items:
            if item.result is not None:
                await item.result.files[0].aread()
        return core, samples


# -- the concurrency limit -----------------------------------------------------------------------


@pytest.mark.parametrize("api", CLIENTS)
async def test_a_sweep_never_has_more_jobs_in_flight_than_its_limit(api: str) -> None:
    # the server could run 3 at once (creator tier): the limit of 2 is the sweep's own
    with serve(dialect="cloud", tier="creator", step_delay=0.01) as server:
        done, samples = await run_sweep(api, server, txt2img(8), seed=[1, 2, 3, 4],
                                        cfg=[4.0, 7.0], concurrency=2,
                                        probe=lambda s: live(s.items))
        assert [item.status for item in done.items] == ["succeeded"] * 8
        assert server.max_concurrent_jobs_seen == 2  # parallel, and never more
        assert done.max_in_flight == 2
        assert samples and max(samples) <= 2


@pytest.mark.parametrize("api", CLIENTS)
async def test_the_cloud_tier_sets_the_default_limit(api: str) -> None:
    # a Pro server runs 5 at once; told the plan is Creator, the sweep keeps 3 in flight
    with serve(dialect="cloud", tier="pro", step_delay=0.01) as server:
        done, samples = await run_sweep(api, server, txt2img(8), seed=list(range(9)),
                                        tier="creator", probe=lambda s: live(s.items))
        assert done.concurrency == 3
        assert len(done.results) == 9
        assert server.max_concurrent_jobs_seen == 3
        assert max(samples) <= 3


def test_the_server_queue_never_holds_more_than_the_limit() -> None:
    # counted from outside: the jobs the server has queued or running, read over HTTP
    with serve(dialect="local", step_delay=0.01) as server, \
            comfy_nb.Client(server.url) as client, comfy_nb.Client(server.url) as observer:
        running = comfy_nb.sweep(txt2img(6), seed=list(range(8)), client=client, wait=False,
                                 concurrency=2)
        with sampling(lambda: len(observer.queue()), interval=0.01) as samples:
            running.wait(WAIT)
        assert len(running.results) == 8
        assert max(samples) == 2  # one running, one waiting on the server: no flood


def test_resolve_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMFY_CLOUD_TIER", raising=False)
    monkeypatch.setattr(settings, "concurrency", None)
    assert resolve_concurrency("local") == settings.local_concurrency == 2
    assert resolve_concurrency("cloud") == settings.cloud_concurrency == 3
    assert [resolve_concurrency("cloud", tier=t) for t in ("standard", "creator", "pro")] == [
        1, 3, 5]
    monkeypatch.setenv("COMFY_CLOUD_TIER", "Pro")
    assert resolve_concurrency("cloud") == 5
    assert resolve_concurrency("cloud", 2) == 2  # an explicit limit wins
    monkeypatch.setattr(settings, "concurrency", 4)
    assert resolve_concurrency("cloud") == resolve_concurrency("local") == 4
    assert resolve_concurrency("cloud", tier="standard") == 1  # arguments beat settings
    assert resolve_concurrency("local", tier="pro") == 4  # a plan says nothing about a local
    assert comfy_nb.sweep.settings is settings  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown Comfy Cloud tier"):
        resolve_concurrency("cloud", None, "gold")
    with pytest.raises(ValueError, match="at least 1"):
        resolve_concurrency("local", 0)


# -- failures stay in their item -----------------------------------------------------------------


@pytest.mark.parametrize("api", CLIENTS)
async def test_a_job_failing_at_run_time_leaves_the_others_intact(api: str) -> None:
    with serve(step_delay=0.002) as server:
        # SaveImage refuses to write outside its folder: the second job fails while it runs
        done, _ = await run_sweep(api, server, txt2img(3),
                                  {"Save Image.filename_prefix": ["a", "../outside", "b"]},
                                  seed=[5, 6, 7], mode="zip")
        statuses = [item.status for item in done.items]
        assert statuses == ["succeeded", "failed", "succeeded"]
        failed = done.items[1]
        assert isinstance(failed.error, comfy_nb.ExecutionFailed)
        assert "outside the output folder" in str(failed.error)
        assert failed.prompt_id is not None  # it was submitted and ran
        assert [r.files[0].filename for r in done.results] == ["a_00001_.png", "b_00001_.png"]
        assert all(r.files[0].read()[:8] == b"\x89PNG\r\n\x1a\n" for r in done.results)
        assert done.errors == [(failed, failed.error)]
        rows = done.rows()
        assert rows[1]["status"] == "failed" and "outside the output folder" in rows[1]["error"]
        assert rows[0]["files"] == ["a_00001_.png"] and rows[0]["error"] is None
        with pytest.raises(comfy_nb.ExecutionFailed):
            done.raise_errors()


@pytest.mark.parametrize("api", CLIENTS)
async def test_a_combination_the_server_would_refuse_fails_alone_unsubmitted(api: str) -> None:
    with serve(step_delay=0.002) as server:
        done, _ = await run_sweep(api, server, txt2img(2), seed=[1, 2], cfg=[4.0, 150.0])
        assert [item.status for item in done.items] == ["succeeded", "failed"] * 2
        for item in done.items[1::2]:
            assert isinstance(item.error, comfy_nb.WorkflowInvalid)
            assert item.prompt_id is None  # checked before submitting: never sent
            assert "bigger than max" in done.rows()[item.index]["error"]
        assert len(server.state.jobs) == 2


# -- checks before anything is submitted ---------------------------------------------------------


@pytest.fixture(scope="module")
def local(module_emulators: Emulators) -> RunningEmulator:
    return module_emulators(step_delay=0.002)


@pytest.fixture(scope="module")
def client(local: RunningEmulator, module_clients: Clients) -> comfy_nb.Client:
    return module_clients.connect(local)


def test_a_bad_name_fails_before_anything_is_submitted(local: RunningEmulator,
                                                       client: comfy_nb.Client) -> None:
    before = len(local.state.jobs)
    with pytest.raises(comfy_nb.ParameterError, match="sede"):
        comfy_nb.sweep(txt2img(), seed=[1, 2], sede=[3], client=client)
    with pytest.raises(comfy_nb.ParameterError, match="same input"):
        comfy_nb.sweep(txt2img(), {"KSampler.seed": [1, 2]}, seed=[3], client=client)
    with pytest.raises(comfy_nb.ParameterError, match="both swept and fixed"):
        comfy_nb.sweep(txt2img(), seed=[1, 2], overrides={"3.seed": 4}, client=client)
    with pytest.raises(comfy_nb.WorkflowInvalid):  # every combination is refused: raise
        comfy_nb.sweep(txt2img(), cfg=[200.0, 300.0], client=client)
    assert len(local.state.jobs) == before


def test_values_must_be_lists_and_zip_needs_equal_lengths(client: comfy_nb.Client) -> None:
    with pytest.raises(ValueError, match=r"equally long \(seed: 3, cfg: 2\)"):
        comfy_nb.sweep(txt2img(), seed=[1, 2, 3], cfg=[4.0, 7.0], mode="zip", client=client)
    with pytest.raises(TypeError, match=r"seed=\[1, 2, 3\]"):
        comfy_nb.sweep(txt2img(), seed=5, client=client)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no values"):
        comfy_nb.sweep(txt2img(), seed=[], client=client)
    with pytest.raises(ValueError, match="nothing to sweep"):
        comfy_nb.sweep(txt2img(), client=client)
    with pytest.raises(ValueError, match="mode"):
        comfy_nb.sweep(txt2img(), seed=[1], mode="grid", client=client)


def test_combinations_product_and_zip() -> None:
    axes = [("seed", [1, 2]), ("cfg", [4.0, 7.0, 9.0])]
    product = combinations(axes)
    assert [params for _, params in product][:4] == [
        {"seed": 1, "cfg": 4.0}, {"seed": 1, "cfg": 7.0}, {"seed": 1, "cfg": 9.0},
        {"seed": 2, "cfg": 4.0}]
    assert [position for position, _ in product][-1] == (1, 2)
    zipped = combinations([("seed", [1, 2]), ("cfg", [4.0, 7.0])], "zip")
    assert zipped == [((0, 0), {"seed": 1, "cfg": 4.0}), ((1, 1), {"seed": 2, "cfg": 7.0})]


def test_parse_sweep_values() -> None:
    parsed = parse_sweep_values(["seed=1,2,3", "cfg=4.0, 7.5", "steps=1..3",
                                 'Positive Prompt.text="a fox, red",a cat',
                                 'sampler_name=["euler", "ddim"]', "flag=true,false"])
    assert {name: list(values) for name, values in parsed.items()} == {
        "seed": [1, 2, 3], "cfg": [4.0, 7.5], "steps": [1, 2, 3],
        "Positive Prompt.text": ["a fox, red", "a cat"], "sampler_name": ["euler", "ddim"],
        "flag": [True, False]}
    for bad in (["seed"], ["seed="], ["=1,2"], ["seed=5..1"], ["seed=[1,"], ["s=1", "s=2"]):
        with pytest.raises(ValueError):
            parse_sweep_values(bad)


def test_random_seeds_are_resolved_before_submitting(client: comfy_nb.Client) -> None:
    done = comfy_nb.sweep(txt2img(2), seed=["random", "random"], client=client, timeout=WAIT)
    seeds = [item.params["seed"] for item in done.items]
    assert all(isinstance(seed, int) for seed in seeds) and seeds[0] != seeds[1]
    for item, seed in zip(done.items, seeds, strict=True):
        assert item.job is not None and item.job.workflow["3"]["inputs"]["seed"] == seed
    assert [row["seed"] for row in done.rows()] == seeds


def test_a_positional_dict_and_fixed_overrides(client: comfy_nb.Client) -> None:
    done = comfy_nb.sweep(bundled("txt2img"), {"Positive Prompt.text": ["a fox", "a cat"]},
                          overrides={"steps": 2}, client=client, timeout=WAIT)
    assert done.names == ["Positive Prompt.text"]
    assert len(done.results) == 2
    for item, text in zip(done.items, ["a fox", "a cat"], strict=True):
        assert item.job is not None
        submitted = item.job.workflow
        assert submitted["6"]["inputs"]["text"] == text
        assert submitted["3"]["inputs"]["steps"] == 2


# -- data ----------------------------------------------------------------------------------------


def test_rows_are_plain_data(client: comfy_nb.Client, tmp_path: Any,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    done = comfy_nb.sweep(txt2img(2), seed=[1, 2], cfg=[5.0], client=client, timeout=WAIT)
    rows = done.rows()
    json.dumps(rows)  # nothing but plain values
    assert [set(row) for row in rows] == [{"seed", "cfg", "status", "files", "error",
                                           "prompt_id", "server", "seconds"}] * 2
    paths = done.save(tmp_path)
    # tmp_path is outside the current folder: the paths stay absolute
    assert [row["files"] for row in done.rows()] == [[str(p)] for p in paths]
    assert "2 succeeded" in repr(done) and "seed × cfg" in repr(done)
    monkeypatch.setitem(sys.modules, "pandas", None)  # pandas stays optional
    with pytest.raises(ImportError, match="rows"):
        done.to_pandas()


def test_to_pandas_hands_the_rows_to_pandas(client: comfy_nb.Client,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # pandas is not a dependency: a stand-in module shows what to_pandas() gives it
    class DataFrame:
        def __init__(self, rows: list[dict[str, Any]]) -> None:
            self.rows = rows

    stand_in = types.ModuleType("pandas")
    stand_in.DataFrame = DataFrame  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pandas", stand_in)
    done = comfy_nb.sweep(txt2img(2), seed=[1, 2], client=client, timeout=WAIT)
    frame = done.to_pandas()
    assert isinstance(frame, DataFrame) and frame.rows == done.rows()
    assert [row["seed"] for row in frame.rows] == [1, 2]


# -- cancelling ----------------------------------------------------------------------------------


def test_cancel_stops_every_job_on_the_server() -> None:
    with serve(dialect="cloud", tier="creator", step_delay=0.02) as server, \
            comfy_nb.Client(server.url, api_key=server.api_key) as client:
        running = comfy_nb.sweep(txt2img(300), seed=list(range(6)), client=client, wait=False,
                                 concurrency=3)
        deadline = time.monotonic() + WAIT
        while running.counts().running < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert running.cancel() == 3
        assert running.done
        assert [item.status for item in running.items] == ["cancelled"] * 6
        assert [item.prompt_id is None for item in running.items] == [False] * 3 + [True] * 3
        assert client.queue() == []
        assert len(server.state.jobs) == 3  # the waiting ones were never submitted


def test_interrupting_the_wait_cancels_the_sweep_on_the_server(local: RunningEmulator,
                                                               client: comfy_nb.Client) -> None:
    running = comfy_nb.sweep(txt2img(400), seed=[11, 12, 13], client=client, wait=False)
    press_ctrl_c_when(lambda: running.counts().running > 0 and main_thread_is_in(LoopThread.wait))
    with pytest.raises(KeyboardInterrupt):
        running.wait(WAIT)
    assert running.done
    assert {item.status for item in running.items} == {"cancelled"}
    assert client.queue() == []


def test_interrupting_the_sweep_once_it_started_cancels_it_on_the_server(
        local: RunningEmulator, client: comfy_nb.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl+C between the start and the wait (here while the progress display is chosen, which
    imports the notebook layer the first time) cancels the submitted jobs as well."""
    module = sys.modules["comfy_nb.sweeps._entry"]
    choose = module._progress_backend
    before = len(local.state.jobs)

    def interrupted_while_choosing(requested: str | None) -> str:
        deadline = time.monotonic() + WAIT
        while len(local.state.jobs) == before and time.monotonic() < deadline:
            time.sleep(0.01)  # until the first job is on the server
        _thread.interrupt_main()  # lands here, in the main thread
        return choose(requested)

    monkeypatch.setattr(module, "_progress_backend", interrupted_while_choosing)
    with pytest.raises(KeyboardInterrupt):
        comfy_nb.sweep(txt2img(400), seed=[14, 15, 16], client=client)
    assert len(local.state.jobs) > before
    assert client.queue() == []


def test_a_timeout_cancels_what_is_unfinished(client: comfy_nb.Client) -> None:
    with pytest.raises(SweepTimeout, match="2 unfinished"):
        comfy_nb.sweep(txt2img(400), seed=[21, 22], client=client, timeout=0.3)
    assert client.queue() == []


async def test_cancelling_the_awaiting_task_cancels_the_jobs(local: RunningEmulator) -> None:
    import asyncio

    async with comfy_nb.AsyncClient(local.url) as aclient:
        task = asyncio.ensure_future(comfy_nb.asweep(txt2img(400), seed=[31, 32],
                                                     client=aclient))
        deadline = time.monotonic() + WAIT
        while not any(job.get("status") == "running" for job in await aclient.jobs(5)) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await aclient.queue() == []


def test_a_sweep_run_again_comes_from_the_result_cache(local: RunningEmulator,
                                                       client: comfy_nb.Client,
                                                       tmp_path: Any) -> None:
    from comfy_nb.cache import ResultCache

    store = ResultCache(tmp_path / "cache")
    client.async_client._result_cache = store  # this test's own cache folder
    try:
        first = comfy_nb.sweep(txt2img(3), seed=[41, 42], cache=True, client=client,
                               timeout=WAIT)
        submitted = len(local.state.jobs)
        again = comfy_nb.sweep(txt2img(3), seed=[41, 42], cache=True, client=client,
                               timeout=WAIT)
    finally:
        client.async_client._result_cache = None
    assert [r.from_cache for r in first.results] == [False, False]
    assert [r.from_cache for r in again.results] == [True, True]
    assert len(local.state.jobs) == submitted  # nothing was sent the second time
    assert again.results[0].files[0].read() == first.results[0].files[0].read()
    assert "seed=41 · from cache" in again._repr_mimebundle_()["text/html"]


def test_the_public_surface() -> None:
    assert sweep_function is comfy_nb.sweep
    for name in ("sweep", "asweep", "Sweep", "AsyncSweep", "SweepItem", "SweepTimeout"):
        assert name in comfy_nb.__all__
    assert issubclass(SweepTimeout, TimeoutError)
    assert Sweep.__doc__ and AsyncSweep.__doc__


def test_a_sweep_larger_than_max_jobs_is_refused_before_connecting(
        local: RunningEmulator, client: comfy_nb.Client) -> None:
    before = len(local.state.jobs)
    with pytest.raises(ValueError, match=r"would run 1200 jobs, more than max_jobs=1000; pass "
                                         r"max_jobs=1200 \(or None\)"):
        comfy_nb.sweep(txt2img(), seed=range(1200), client=client)
    with pytest.raises(ValueError, match="would run 4 jobs, more than max_jobs=3"):
        comfy_nb.sweep(txt2img(), seed=[1, 2], cfg=[4.0, 7.0], max_jobs=3, client=client)
    huge = parse_sweep_values(["seed=1..1000000000000"])["seed"]
    assert isinstance(huge, range) and len(huge) == 10**12  # never listed
    with pytest.raises(ValueError, match="more than max_jobs=1000"):
        comfy_nb.sweep(txt2img(), seed=huge, client=client)
    assert len(local.state.jobs) == before
    done = comfy_nb.sweep(txt2img(2), seed=[1, 2], cfg=[4.0, 7.0], max_jobs=4, client=client,
                          timeout=WAIT)
    assert len(done) == 4 and not done.errors


@pytest.mark.parametrize("landing", ["waiting", "handing over"])
def test_interrupting_the_preparation_stops_it_with_nothing_submitted(
        local: RunningEmulator, client: comfy_nb.Client, monkeypatch: pytest.MonkeyPatch,
        landing: str) -> None:
    """Checking every combination is CPU work on the client's loop: Ctrl+C must stop it there,
    not only in the waiting thread, and nothing may be submitted afterwards. Also when Ctrl+C
    lands while the main thread is still handing the check over to the loop: the check runs
    already, and the main thread holds nothing it could cancel yet."""
    import asyncio

    async_client = client.async_client
    checking = threading.Event()
    original_prepare = async_client.prepare

    async def slow_prepare(*args: Any, **kwargs: Any) -> Any:
        checking.set()
        time.sleep(0.01)  # CPU-bound, as a real check of a large sweep is: never yields
        return await original_prepare(*args, **kwargs)

    monkeypatch.setattr(async_client, "prepare", slow_prepare)
    outcome: list[str] = []
    original = AsyncSweep.prepare

    async def watched(self: AsyncSweep) -> None:
        try:
            await original(self)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        outcome.append("finished")

    monkeypatch.setattr(AsyncSweep, "prepare", watched)

    if landing == "waiting":
        press_ctrl_c_when(checking.is_set)
    else:
        loop = client.loop.loop
        hand_over = loop.call_soon_threadsafe
        first_from_main: list[bool] = []

        def interrupt_once_handed_over(*args: Any, **kwargs: Any) -> Any:
            handle = hand_over(*args, **kwargs)
            if threading.current_thread() is threading.main_thread() and not first_from_main:
                first_from_main.append(True)
                assert checking.wait(WAIT), "the check did not start"
                _thread.interrupt_main()  # lands here, in the main thread, before returning
            return handle

        monkeypatch.setattr(loop, "call_soon_threadsafe", interrupt_once_handed_over)
    before = len(local.state.jobs)
    with pytest.raises(KeyboardInterrupt):
        comfy_nb.sweep(txt2img(2), seed=list(range(900)), client=client)
    deadline = time.monotonic() + WAIT
    while not outcome and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outcome == ["cancelled"]  # stopped on the loop, not run to the end
    monkeypatch.undo()
    assert client.queue() == []  # the loop answers
    assert len(local.state.jobs) == before  # nothing was submitted

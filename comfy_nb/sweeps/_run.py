"""The run loop of a sweep: :class:`AsyncSweep` checks every combination before anything is
submitted, then its scheduler keeps at most ``concurrency`` jobs submitted and unfinished (the
next one goes when one ends) and cancels the whole sweep on request; :class:`Sweep` is its
synchronous façade on the client's loop thread.

Owns: preparing, scheduling, waiting for and cancelling a sweep's jobs, and
:class:`SweepTimeout`.
Must not: choose the client, the concurrency or a progress display (:mod:`._entry` does), or
draw anything.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._loop import LoopThread
from ..errors import (
    FeatureUnavailable,
    JobCancelled,
    ParameterError,
    SweepTimeout,
    WorkflowInvalid,
)
from ..workflow._params import SEED_INPUTS, resolve
from ._items import CANCELLED, FAILED, SUCCEEDED, SweepData, SweepItem, SweepState
from ._values import combinations

if TYPE_CHECKING:
    from ..client._client import AsyncClient
    from ..job import AsyncJob, Job

__all__ = ["AsyncSweep", "Sweep", "SweepTimeout"]

log = logging.getLogger("comfy_nb")


class AsyncSweep(SweepData):
    """A sweep on an :class:`~comfy_nb.AsyncClient`. Made by :func:`asweep`; ``await
    sweep.wait()``. Its scheduler runs as a task on the client's event loop."""

    def __init__(self, client: AsyncClient, workflow: Any, axes: list[tuple[str, list[Any]]],
                 mode: str, *, concurrency: int, overrides: Mapping[str, Any] | None = None,
                 validate: bool = True, cache: bool | None = None,
                 submit_options: Mapping[str, Any] | None = None,
                 wrap: Callable[[AsyncJob], Job | AsyncJob] | None = None) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.client = client
        self.workflow = workflow
        self._state = SweepState(axes, mode, concurrency)
        self.overrides = dict(overrides or {})
        self.validate = validate
        self.cache = cache
        self.submit_options = dict(submit_options or {})
        self._wrap = wrap or (lambda job: job)
        #: the most jobs this sweep had submitted and unfinished at once
        self.max_in_flight = 0
        self._in_flight = 0
        self._pending: collections.deque[SweepItem] = collections.deque()
        self._stopping = False
        self._task: asyncio.Future[None] | None = None
        self._base: dict[str, Any] = {}

    # -- preparing ---------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Expand and check every combination before anything is submitted. Names that do not
        resolve raise :class:`ParameterError`; a combination the server's node definitions
        reject becomes a failed item (its cell shows why), unless every one is rejected: then
        the first :class:`WorkflowInvalid` is raised. Cancelling the awaiting task stops it
        between two combinations."""
        client = self.client
        base = (await client.prepare(self.workflow, overrides=dict(self.overrides),
                                     validate=False)).prompt
        try:
            object_info: dict[str, Any] | None = await client.object_info()
        except FeatureUnavailable:  # a Comfy API v2 server: names resolve by the workflow alone
            object_info = None
        paths: dict[str, str] = {}
        for name, _ in self.axes:
            node_id, input_name = resolve(base, name, object_info)
            path = f"{node_id}.{input_name}"
            clash = next((other for other, known in paths.items() if known == path), None)
            if clash is not None:
                raise ParameterError(f"{name!r} and {clash!r} are the same input ({path}); "
                                     "sweep it once")
            paths[name] = path
        for name in self.overrides:  # prepare above raised for names that do not resolve
            node_id, input_name = resolve(base, name, object_info)
            if f"{node_id}.{input_name}" in paths.values():
                raise ParameterError(f"{name!r} is both swept and fixed (overrides); "
                                     "give it one way")
        self._base = base
        self._state.servers = self._members()
        combos = combinations(self.axes, self.mode)
        items: list[SweepItem] = []
        rejected: list[WorkflowInvalid] = []
        for index, (position, params) in enumerate(combos):
            await asyncio.sleep(0)  # checking is CPU work: let a cancellation in between
            item = SweepItem(index, position, dict(params), dict(params))
            try:
                seeds = (await client.prepare(base, overrides=dict(params),
                                              validate=self.validate)).seeds
            except WorkflowInvalid as exc:
                item.end(FAILED, error=exc)
                rejected.append(exc)
            else:
                for name, value in params.items():  # "random" seeds: run what was checked
                    if isinstance(value, str) and value == "random" and paths[name] in seeds \
                            and paths[name].rpartition(".")[2] in SEED_INPUTS:
                        item.params[name] = item.overrides[name] = seeds[paths[name]]
            items.append(item)
        if len(rejected) == len(items):
            raise rejected[0]
        self._state.items = items
        self._pending = collections.deque(item for item in items if not item.done)

    def _members(self) -> list[tuple[str, int]]:
        """On a pool, each member's URL and capacity (read on the client's loop)."""
        from ..client import AsyncPool

        if not isinstance(self.client, AsyncPool):
            return []
        return [(lane["server"], lane["capacity"]) for lane in self.client.lanes()]

    def _server_of(self, job: AsyncJob) -> str:
        """The server ``job`` was submitted to: on a pool the member it went to."""
        from ..client import AsyncPool

        if isinstance(self.client, AsyncPool):
            return self.client.server_of(job.id) or self.client.url
        return self.client.url

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler (on the running loop); :meth:`prepare` first."""
        if self._task is None:
            self._state.started_at = time.monotonic()
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        workers = [asyncio.ensure_future(self._worker())
                   for _ in range(min(self.concurrency, len(self._pending)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        finally:
            self._cancel_waiting()
            self._state.finished_at = time.monotonic()

    async def _worker(self) -> None:
        # a closed client ends the sweep: what was not submitted counts as cancelled
        while self._pending and not self._stopping and not self.client.closed:
            await self._run_item(self._pending.popleft())

    async def _run_item(self, item: SweepItem) -> None:
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            item.submitted_at = time.monotonic()
            try:
                job = await self.client.submit(self._base, overrides=dict(item.overrides),
                                               validate=False, cache=self.cache,
                                               **self.submit_options)
            except Exception as exc:  # refused, unreachable, a closed client: this item only
                item.end(FAILED, error=exc)
                return
            item.submitted(job, self._server_of(job))
            item.job = self._wrap(job)
            if self._stopping:  # cancelled while this one was being submitted
                await self._cancel_job(job)
            try:
                result = await job.wait()
            except JobCancelled as exc:
                item.end(CANCELLED, error=exc if not self._stopping else None)
            except Exception as exc:  # ExecutionFailed, JobLost, the client closed meanwhile
                item.end(FAILED, error=exc)
            else:
                item.end(SUCCEEDED, result=result)
        except asyncio.CancelledError:
            if item.async_job is not None and not item.async_job.done:
                await asyncio.shield(self._cancel_job(item.async_job))
            if not item.done:
                item.end(CANCELLED)
            raise
        finally:
            self._in_flight -= 1

    def _cancel_waiting(self) -> None:
        while self._pending:
            self._pending.popleft().end(CANCELLED)

    async def _cancel_job(self, job: AsyncJob) -> None:
        try:
            await job.cancel()
        except Exception as exc:  # a closed client, a flaky server: the others still go
            log.warning("comfy_nb: could not cancel job %s of the sweep: %s", job.id, exc)

    @property
    def done(self) -> bool:
        """Whether every item ended."""
        return self._task is not None and self._task.done()

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not finished now."""
        return self._in_flight

    async def wait(self, timeout: float | None = None) -> AsyncSweep:
        """Wait until every item ended (errors stay in their items). On ``timeout`` raise
        :class:`SweepTimeout` after cancelling what is unfinished."""
        assert self._task is not None, "start() the sweep first"
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except asyncio.TimeoutError:
            unfinished = sum(1 for item in self.items if not item.done)
            await self.cancel()
            raise SweepTimeout(timeout or 0.0, unfinished) from None
        return self

    async def cancel(self) -> int:
        """Cancel the sweep: nothing more is submitted, jobs on the server are cancelled
        (queued ones first, so none starts when a running one stops). The number of jobs that
        were live."""
        self._stopping = True
        self._cancel_waiting()
        live = [item.async_job for item in self.items
                if item.async_job is not None and not item.done]
        if live:
            try:
                await self.client.cancel_many([job.id for job in live])
            except Exception as exc:  # a closed client, a flaky server: one by one then
                log.warning("comfy_nb: could not cancel the sweep's jobs at once: %s", exc)
                await asyncio.gather(*(self._cancel_job(job) for job in live))
        if self._task is not None:  # let the workers collect the cancelled jobs
            await asyncio.wait({self._task}, timeout=30)
        return len(live)


# -- the synchronous façade ----------------------------------------------------------------------


class Sweep(SweepData):
    """A sweep on a :class:`~comfy_nb.Client` (made by :func:`sweep`). ``items`` hold
    :class:`~comfy_nb.Job` objects; :meth:`wait` and :meth:`cancel` block."""

    def __init__(self, core: AsyncSweep, loop: LoopThread) -> None:
        self._core = core
        self._loop = loop
        self._state = core._state
        #: the values of the grid cell picked last (:meth:`grid`), None before any pick
        self.picked: dict[str, Any] | None = None

    @property
    def max_in_flight(self) -> int:
        """The most jobs this sweep had submitted and unfinished at once."""
        return self._core.max_in_flight

    @property
    def in_flight(self) -> int:
        return self._core.in_flight

    @property
    def done(self) -> bool:
        return self._core.done

    @property
    def async_sweep(self) -> AsyncSweep:
        return self._core

    def wait(self, timeout: float | None = None) -> Sweep:
        """Block until every item ended. Interrupting (Ctrl+C, the kernel's stop button)
        cancels the sweep's jobs on the server, then re-raises; ``timeout`` cancels them and
        raises :class:`SweepTimeout`."""
        try:
            self._loop.run(self._core.wait(timeout))  # SweepTimeout, or what broke the scheduler
            return self
        except KeyboardInterrupt:
            self.cancel()
            raise

    def cancel(self) -> int:
        """Cancel everything not finished (see :meth:`AsyncSweep.cancel`)."""
        return self._loop.run(self._core.cancel(), timeout=60)

    def grid(self, x: str | None = None, y: str | None = None, z: str | None = None, *,
             size: int | None = None, controls: Any = None) -> Any:
        """The comparison grid: ``x`` along the columns, ``y`` down the rows, ``z`` as pages
        (inputs not given fill the free axes). Shown, it fills in while the sweep runs; see
        :class:`comfy_nb.notebook.sweep_grid.SweepGrid` (``save("grid.png")``, ``pick``)."""
        from ..notebook.sweep_grid import SweepGrid

        return SweepGrid(self, x, y, z, size=size, controls=controls)

    def save(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Save every result's files into ``directory``; :meth:`rows` then lists the paths."""
        paths: list[Path] = []
        for result in self.results:
            paths.extend(result.save(directory))
        return paths

"""Parameter sweeps: every combination of some workflow inputs, run in parallel within a
concurrency limit, collected as one :class:`Sweep` (or :class:`AsyncSweep`).

Owns: expanding values into combinations (``product`` or ``zip``), checking every combination
before anything is submitted, the scheduler (never more than ``concurrency`` jobs submitted and
unfinished; the next one goes when one ends), cancelling a whole sweep, and the sweep's data
(items, results, errors, :meth:`Sweep.rows`). How many jobs run at once, when not given, comes
from :data:`settings`::

    comfy_nb.sweep.settings.concurrency = 4      # every sweep, whatever the server
    comfy_nb.sweep.settings.tier = "pro"         # your Comfy Cloud plan: standard | creator | pro

Comfy Cloud runs 1, 3 or 5 jobs at once by plan (Standard, Creator, Pro) and the API does not
say which plan a key has: with no tier (``settings.tier``, ``tier=``, ``$COMFY_CLOUD_TIER``) a
Cloud sweep keeps ``settings.cloud_concurrency`` (3) jobs in flight. A local ComfyUI runs one
job at a time; ``settings.local_concurrency`` (2) keeps the next job waiting on the server so it
never idles between jobs, without flooding its queue.

Must not: import ipywidgets or draw anything. The notebook view (summary panel, labelled grid)
lives in :mod:`comfy_nb.notebook.sweep_view`, imported lazily, as :mod:`comfy_nb.result` does.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._loop import LoopThread
from .client._dialects import JobStatus
from .client._errors import ComfyError, JobCancelled
from .job import AsyncJob, Job
from .result import Result, shown_path
from .workflow._errors import ParameterError, WorkflowInvalid
from .workflow._params import SEED_INPUTS, resolve
from .workflow._values import parse_value
from .workflow_function import sweep_arguments

if TYPE_CHECKING:
    from .client._client import AsyncClient, Client

__all__ = [
    "MAX_JOBS",
    "TIER_CONCURRENCY",
    "AsyncSweep",
    "Sweep",
    "SweepCounts",
    "SweepItem",
    "SweepSettings",
    "SweepTimeout",
    "asweep",
    "combinations",
    "format_params",
    "job_count",
    "parse_sweep_values",
    "resolve_concurrency",
    "settings",
    "sweep",
]

log = logging.getLogger("comfy_nb")

#: jobs Comfy Cloud runs at once, by plan
TIER_CONCURRENCY = {"standard": 1, "creator": 3, "pro": 5}
TIER_VARIABLE = "COMFY_CLOUD_TIER"
MODES = ("product", "zip")
#: the most jobs a sweep runs unless ``max_jobs=`` allows more (preparing one takes a few ms)
MAX_JOBS = 1000

#: what an item's status may be: not submitted yet, on the server, or ended
WAITING, QUEUED, RUNNING = "waiting", "queued", "running"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
ENDED = (SUCCEEDED, FAILED, CANCELLED)


@dataclass
class SweepSettings:
    """How many jobs a sweep keeps in flight when ``concurrency=`` is not given."""

    #: every sweep keeps this many jobs in flight (None: decided by the server, below)
    concurrency: int | None = None
    #: your Comfy Cloud plan, when you know it: "standard" (1), "creator" (3) or "pro" (5);
    #: None reads ``$COMFY_CLOUD_TIER``
    tier: str | None = None
    #: Comfy Cloud with an unknown plan (Creator's limit: on Standard, 2 jobs wait in the queue)
    cloud_concurrency: int = 3
    #: a local ComfyUI (it runs one job at a time; one more waits so the GPU never idles)
    local_concurrency: int = 2


settings = SweepSettings()


class SweepTimeout(ComfyError, TimeoutError):
    """The sweep did not finish in time; its unfinished jobs were cancelled."""

    def __init__(self, timeout: float, unfinished: int) -> None:
        super().__init__(f"the sweep did not finish within {timeout:g} s; its {unfinished} "
                         "unfinished jobs were cancelled")
        self.timeout = timeout


# -- combinations --------------------------------------------------------------------------------


def _axes(values: Mapping[str, Any] | None, named: Mapping[str, Any], mode: str = "product",
          max_jobs: int | None = None) -> list[tuple[str, list[Any]]]:
    """``[(name, [value, ...]), ...]``: the dict first, then the keyword arguments. The number
    of jobs is checked against ``max_jobs`` before the values are listed (a huge ``range`` is
    refused at once)."""
    given_axes: list[tuple[str, Collection[Any]]] = []
    seen: set[str] = set()
    for source in (values or {}, named):
        if not isinstance(source, Mapping):
            raise TypeError("sweep values are a dict of name -> list of values, "
                            f"not {type(source).__name__}")
        for name, given in source.items():
            if not isinstance(name, str) or not name:
                raise ParameterError(f"a parameter name is a non-empty string, not {name!r}")
            if name in seen:
                raise ValueError(f"{name!r} is swept twice")
            if isinstance(given, (str, bytes, Mapping)) or not isinstance(given, Collection):
                raise TypeError(f"{name}= takes a list of values to sweep ({name}=[1, 2, 3]), "
                                f"not {type(given).__name__}; fixed values go into "
                                "overrides={...}")
            if not len(given):
                raise ValueError(f"{name}= has no values to sweep")
            seen.add(name)
            given_axes.append((name, given))
    if not given_axes:
        raise ValueError("nothing to sweep: give lists of values, e.g. "
                         "sweep(workflow, seed=[1, 2, 3], cfg=[4.0, 7.0])")
    count = job_count({name: len(given) for name, given in given_axes}, mode)
    if max_jobs is not None and count > max_jobs:
        raise ValueError(f"this sweep would run {count} jobs, more than max_jobs={max_jobs}; "
                         f"pass max_jobs={count} (or None) to run them all")
    return [(name, list(given)) for name, given in given_axes]


def job_count(lengths: Mapping[str, int], mode: str = "product") -> int:
    """How many jobs a sweep of lists of these lengths runs (``zip`` needs equal lengths)."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'product' or 'zip', not {mode!r}")
    if mode == "zip":
        if len(set(lengths.values())) > 1:
            sizes = ", ".join(f"{name}: {size}" for name, size in lengths.items())
            raise ValueError(f"mode='zip' pairs the i-th values of every parameter, so the lists "
                             f"must be equally long ({sizes}); use mode='product' for every "
                             "combination")
        return next(iter(lengths.values()), 0)
    return math.prod(lengths.values())


def combinations(axes: Sequence[tuple[str, Sequence[Any]]], mode: str = "product"
                 ) -> list[tuple[tuple[int, ...], dict[str, Any]]]:
    """Every combination as ``(position, {name: value})``. ``position`` holds each axis's value
    index (``product``: the first axis changes slowest; ``zip``: the i-th value of every axis,
    which needs lists of equal length)."""
    count = job_count({name: len(values) for name, values in axes}, mode)
    names = [name for name, _ in axes]
    if mode == "zip":
        return [((i,) * len(axes), {name: values[i] for name, values in axes})
                for i in range(count)]
    ranges = [range(len(values)) for _, values in axes]
    return [(position, {name: axes[a][1][i] for a, (name, i) in enumerate(zip(names, position,
                                                                               strict=True))})
            for position in itertools.product(*ranges)]


def _value_text(value: Any, limit: int = 40) -> str:
    text = repr(value) if isinstance(value, str) and value.strip() != value else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def format_params(params: Mapping[str, Any], separator: str = ", ") -> str:
    """``seed=1, cfg=4.0`` (long values shortened)."""
    return separator.join(f"{name}={_value_text(value)}" for name, value in params.items())


def parse_sweep_values(items: Sequence[str],
                       flag: str = "--sweep") -> dict[str, Sequence[Any]]:
    """``["seed=1,2,3", "cfg=4.0,7.0"]`` (what ``%%comfy_run --sweep`` takes) as
    ``{"seed": [1, 2, 3], "cfg": [4.0, 7.0]}``.

    Values are separated by commas and read as JSON when they parse (``4.0``, ``true``,
    ``"quoted, text"``), as text otherwise; ``1..5`` is the integers 1 to 5 (kept as a
    ``range``, so a huge one costs nothing until it is refused); a JSON list
    (``'text=["a, b", "c"]'``) is taken as it is. The name is everything before the first ``=``.
    """
    parsed: dict[str, Sequence[Any]] = {}
    for item in items:
        name, separator, text = item.partition("=")
        name = name.strip()
        if not separator or not name or not text.strip():
            raise ValueError(f"{flag} takes NAME=V1,V2,... (e.g. {flag} seed=1,2,3), "
                             f"not {item!r}")
        if name in parsed:
            raise ValueError(f"{flag}: {name!r} is given twice")
        text = text.strip()
        values: Sequence[Any]
        if text.startswith("["):
            try:
                loaded = parse_value(text)
            except ValueError as exc:
                raise ValueError(f"{flag} {name}=: {exc}") from None
            if not isinstance(loaded, list):
                raise ValueError(f"{flag} {name}=: {text!r} is not a JSON list")
            values = loaded
        elif (".." in text and "," not in text
              and all(part.strip().lstrip("-").isascii() and part.strip().lstrip("-").isdigit()
                      for part in text.split("..", 1))):
            low, high = (int(part) for part in text.split("..", 1))
            if high < low:
                raise ValueError(f"{flag} {name}={text}: the range is empty")
            values = range(low, high + 1)
        else:
            try:
                values = [parse_value(part) for part in _split_commas(text)]
            except ValueError as exc:
                raise ValueError(f"{flag} {name}=: {exc}") from None
        if not values:
            raise ValueError(f"{flag} {name}= has no values")
        parsed[name] = values
    return parsed


def _split_commas(text: str) -> list[str]:
    """Split at commas outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


# -- items ---------------------------------------------------------------------------------------


class SweepItem:
    """One combination of a sweep: its values, its job once submitted, then its result or
    error. ``status`` is ``waiting`` (not submitted yet: held back by the concurrency limit),
    ``queued``, ``running``, ``succeeded``, ``failed`` or ``cancelled``."""

    def __init__(self, index: int, position: tuple[int, ...], params: dict[str, Any],
                 overrides: dict[str, Any]) -> None:
        self.index = index
        #: each axis's value index (where the item sits in the grid)
        self.position = position
        #: the swept values, as given (``"random"`` seeds: the number they resolved to)
        self.params = params
        self.overrides = overrides  # what is submitted: params (resolved) by name
        self.job: Job | AsyncJob | None = None
        self.async_job: AsyncJob | None = None
        self.result: Result | None = None
        self.error: BaseException | None = None
        self.submitted_at: float | None = None
        self.finished_at: float | None = None
        self._final: str | None = None

    @property
    def label(self) -> str:
        """``seed=1, cfg=4.0``."""
        return format_params(self.params)

    @property
    def status(self) -> str:
        if self._final is not None:
            return self._final
        job = self.async_job
        if job is None:
            return WAITING
        status = job.status
        if status is JobStatus.QUEUED:
            return QUEUED
        return RUNNING  # running, or ended on the server and its outcome being collected

    @property
    def done(self) -> bool:
        return self._final is not None

    @property
    def prompt_id(self) -> str | None:
        return self.async_job.id if self.async_job is not None else None

    def fraction(self) -> float:
        """How far along the item is, 0..1 (a running job: its nodes, the current one's
        steps included)."""
        if self._final is not None:
            return 1.0
        job = self.async_job
        if job is None:
            return 0.0
        progress = job.progress()
        if progress.status is not JobStatus.RUNNING or not progress.nodes_total:
            return 0.0
        part = progress.node_value / progress.node_max if progress.node_max > 0 else 0.0
        return min((progress.nodes_done + min(part, 1.0)) / progress.nodes_total, 0.99)

    def _end(self, status: str, *, result: Result | None = None,
             error: BaseException | None = None) -> None:
        self.result = result
        self.error = error
        self.finished_at = time.monotonic()
        self._final = status

    def __repr__(self) -> str:
        return f"<SweepItem {self.index} {self.label} {self.status}>"


@dataclass(frozen=True)
class SweepCounts:
    """How many items of a sweep are where, at one moment."""

    total: int
    waiting: int  # not submitted yet
    queued: int  # on the server, not started
    running: int
    succeeded: int
    failed: int
    cancelled: int
    fraction: float  # overall progress, 0..1

    @property
    def done(self) -> int:
        """Items that ended, whatever the outcome."""
        return self.succeeded + self.failed + self.cancelled


# -- the shared data -----------------------------------------------------------------------------


@dataclass
class _State:
    """The data of one sweep (an :class:`AsyncSweep` and its :class:`Sweep` share it)."""

    axes: list[tuple[str, list[Any]]]
    mode: str
    concurrency: int
    items: list[SweepItem] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None


class _SweepData:
    """What :class:`Sweep` and :class:`AsyncSweep` share: the items and views of them."""

    _state: _State

    @property
    def items(self) -> list[SweepItem]:
        """One :class:`SweepItem` per combination, in combination order."""
        return self._state.items

    @property
    def axes(self) -> list[tuple[str, list[Any]]]:
        """``[(name, [values])]`` in the order given."""
        return self._state.axes

    @property
    def mode(self) -> str:
        return self._state.mode

    @property
    def concurrency(self) -> int:
        """At most this many jobs are submitted and unfinished at once."""
        return self._state.concurrency

    @property
    def started_at(self) -> float:
        return self._state.started_at

    @property
    def finished_at(self) -> float | None:
        return self._state.finished_at

    @property
    def names(self) -> list[str]:
        """The swept parameters, in order (the grid's rows, then columns)."""
        return [name for name, _ in self.axes]

    @property
    def results(self) -> list[Result]:
        """The results of the jobs that succeeded, in combination order."""
        return [item.result for item in self.items
                if item.result is not None and item.status == SUCCEEDED]

    @property
    def errors(self) -> list[tuple[SweepItem, BaseException]]:
        """``(item, error)`` of every item that failed."""
        return [(item, item.error) for item in self.items if item.error is not None]

    @property
    def elapsed(self) -> float:
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        return end - self.started_at

    def counts(self) -> SweepCounts:
        """A snapshot of where the items are (safe from any thread)."""
        tally: collections.Counter[str] = collections.Counter()
        fraction = 0.0
        for item in self.items:
            tally[item.status] += 1
            fraction += item.fraction()
        total = len(self.items)
        return SweepCounts(total=total, waiting=tally[WAITING], queued=tally[QUEUED],
                           running=tally[RUNNING], succeeded=tally[SUCCEEDED],
                           failed=tally[FAILED], cancelled=tally[CANCELLED],
                           fraction=fraction / total if total else 1.0)

    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per combination: the swept values, ``status``, ``files`` (where they
        were saved, relative to the current folder when inside it, else their names on the
        server), ``error`` (text or None), ``prompt_id`` and ``seconds``."""
        rows = []
        for item in self.items:
            row: dict[str, Any] = dict(item.params)
            row["status"] = item.status
            row["files"] = _file_names(item.result) if item.result is not None else []
            row["error"] = _error_text(item.error) if item.error is not None else None
            row["prompt_id"] = item.prompt_id
            seconds = None
            if item.submitted_at is not None and item.finished_at is not None:
                seconds = round(item.finished_at - item.submitted_at, 3)
            row["seconds"] = seconds
            rows.append(row)
        return rows

    def to_pandas(self) -> Any:
        """:meth:`rows` as a pandas DataFrame (pandas is optional: ImportError without it)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("to_pandas() needs pandas (pip install pandas); rows() gives the "
                              "same table as plain dicts") from None
        return pandas.DataFrame(self.rows())

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[SweepItem]:
        return iter(self.items)

    def __getitem__(self, index: int) -> SweepItem:
        return self.items[index]

    def summary(self) -> str:
        """``6 jobs (seed × cfg, product): 5 succeeded, 1 failed``."""
        counts = self.counts()
        parts = [f"{count} {word}" for count, word in (
            (counts.succeeded, "succeeded"), (counts.failed, "failed"),
            (counts.cancelled, "cancelled"), (counts.running, "running"),
            (counts.queued, "queued"), (counts.waiting, "waiting")) if count]
        jobs = f"{counts.total} job{'' if counts.total == 1 else 's'}"
        return f"{jobs} ({' × '.join(self.names)}, {self.mode}): {', '.join(parts)}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.summary()}>"

    def _repr_mimebundle_(self, include: Collection[str] | None = None,
                          exclude: Collection[str] | None = None,
                          **kwargs: Any) -> dict[str, Any]:
        """The labelled grid of thumbnails, the parameters → files table and a text summary
        (see :mod:`comfy_nb.notebook.sweep_view`)."""
        # imported here, so that importing the core never loads the notebook stack
        from .notebook.sweep_view import render_sweep

        return render_sweep(self, include, exclude)

    @property
    def _ipython_display_(self) -> Callable[[], None]:
        """Present (and showing nothing) only while the sweep is a cell's value whose grid is
        on screen already; see :func:`comfy_nb.notebook.sweep_view.already_on_screen`."""
        from .notebook.sweep_view import already_on_screen

        if not already_on_screen(self):
            raise AttributeError("_ipython_display_")
        return lambda: None

    def raise_errors(self) -> None:
        """Raise the first item's error, if any failed (to fail a cell or a script)."""
        for _, error in self.errors:
            raise error


def _file_names(result: Result) -> list[str]:
    """Where each file was saved (relative to the current folder when inside it), else its
    name on the server."""
    names = []
    for file in result.files:
        path = result.saved_path(file)
        if path is not None:
            names.append(shown_path(path))
        else:
            names.append(f"{file.subfolder}/{file.filename}" if file.subfolder else file.filename)
    return names


def _error_text(error: BaseException) -> str:
    if isinstance(error, WorkflowInvalid):
        return "; ".join(str(problem) for problem in error.problems)
    text = str(error) or type(error).__name__
    return text if isinstance(error, ComfyError) else f"{type(error).__name__}: {text}"


# -- the async core ------------------------------------------------------------------------------


class AsyncSweep(_SweepData):
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
        self._state = _State(axes, mode, concurrency)
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
        base, _ = await client._prepare(self.workflow, dict(self.overrides), False)
        object_info = await client.object_info()
        paths: dict[str, str] = {}
        for name, _ in self.axes:
            node_id, input_name = resolve(base, name, object_info)
            path = f"{node_id}.{input_name}"
            clash = next((other for other, known in paths.items() if known == path), None)
            if clash is not None:
                raise ParameterError(f"{name!r} and {clash!r} are the same input ({path}); "
                                     "sweep it once")
            paths[name] = path
        for name in self.overrides:  # _prepare above raised for names that do not resolve
            node_id, input_name = resolve(base, name, object_info)
            if f"{node_id}.{input_name}" in paths.values():
                raise ParameterError(f"{name!r} is both swept and fixed (overrides); "
                                     "give it one way")
        self._base = base
        combos = combinations(self.axes, self.mode)
        items: list[SweepItem] = []
        rejected: list[WorkflowInvalid] = []
        for index, (position, params) in enumerate(combos):
            await asyncio.sleep(0)  # checking is CPU work: let a cancellation in between
            item = SweepItem(index, position, dict(params), dict(params))
            try:
                _, seeds = await client._prepare(base, dict(params), self.validate)
            except WorkflowInvalid as exc:
                item._end(FAILED, error=exc)
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
        while self._pending and not self._stopping and not self.client._closed:
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
                item._end(FAILED, error=exc)
                return
            item.async_job = job
            item.job = self._wrap(job)
            if self._stopping:  # cancelled while this one was being submitted
                await self._cancel_job(job)
            try:
                result = await job.wait()
            except JobCancelled as exc:
                item._end(CANCELLED, error=exc if not self._stopping else None)
            except Exception as exc:  # ExecutionFailed, JobLost, the client closed meanwhile
                item._end(FAILED, error=exc)
            else:
                item._end(SUCCEEDED, result=result)
        except asyncio.CancelledError:
            if item.async_job is not None and not item.async_job.done:
                await asyncio.shield(self._cancel_job(item.async_job))
            if not item.done:
                item._end(CANCELLED)
            raise
        finally:
            self._in_flight -= 1

    def _cancel_waiting(self) -> None:
        while self._pending:
            self._pending.popleft()._end(CANCELLED)

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


class Sweep(_SweepData):
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
        from .notebook.sweep_grid import SweepGrid

        return SweepGrid(self, x, y, z, size=size, controls=controls)

    def save(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Save every result's files into ``directory``; :meth:`rows` then lists the paths."""
        paths: list[Path] = []
        for result in self.results:
            paths.extend(result.save(directory))
        return paths


# -- entry points --------------------------------------------------------------------------------


def resolve_concurrency(dialect: str, concurrency: int | None = None,
                        tier: str | None = None) -> int:
    """How many jobs a sweep keeps in flight, the first that is given of: ``concurrency``; on
    Comfy Cloud the limit of the plan ``tier`` names; ``settings.concurrency``; on Comfy Cloud
    the plan in ``settings.tier`` or ``$COMFY_CLOUD_TIER``, else ``settings.cloud_concurrency``;
    on a local server ``settings.local_concurrency``."""

    def plan_limit(plan: str) -> int:
        key = plan.strip().lower()
        if key not in TIER_CONCURRENCY:
            raise ValueError(f"unknown Comfy Cloud tier {plan!r}: use one of "
                             f"{', '.join(TIER_CONCURRENCY)}")
        return TIER_CONCURRENCY[key]

    cloud = dialect == "cloud"
    chosen: Any = concurrency
    if chosen is None and tier is not None:
        limit = plan_limit(tier)
        chosen = limit if cloud else None
    if chosen is None:
        chosen = settings.concurrency
    if chosen is None:
        plan = (settings.tier or os.environ.get(TIER_VARIABLE) or None) if cloud else None
        chosen = (plan_limit(plan) if plan else settings.cloud_concurrency) if cloud \
            else settings.local_concurrency
    if isinstance(chosen, bool) or not isinstance(chosen, int) or chosen < 1:
        raise ValueError(f"concurrency must be a whole number of at least 1, not {chosen!r}")
    return chosen


async def asweep(workflow: Any, values: Mapping[str, Sequence[Any]] | None = None, /, *,
                 client: AsyncClient, mode: str = "product", concurrency: int | None = None,
                 tier: str | None = None, overrides: Mapping[str, Any] | None = None,
                 validate: bool = True, cache: bool | None = None, wait: bool = True,
                 timeout: float | None = None, submit_options: Mapping[str, Any] | None = None,
                 max_jobs: int | None = MAX_JOBS, **named: Sequence[Any]) -> AsyncSweep:
    """:func:`sweep` for an :class:`~comfy_nb.AsyncClient` (``client`` is required). Cancelling
    the awaiting task cancels the sweep's jobs on the server."""
    workflow, values, named, overrides, client = sweep_arguments(workflow, values, named,
                                                                 overrides, client)
    axes = _axes(values, named, mode, max_jobs)  # before connecting
    await client.open()
    core = AsyncSweep(client, workflow, axes, mode,
                      concurrency=resolve_concurrency(client.dialect, concurrency, tier),
                      overrides=overrides, validate=validate, cache=cache,
                      submit_options=submit_options)
    try:
        await core.prepare()
        core.start()
        if wait:
            await core.wait(timeout)
    except asyncio.CancelledError:
        await asyncio.shield(core.cancel())
        raise
    return core


def sweep(workflow: Any, values: Mapping[str, Sequence[Any]] | None = None, /, *,
          mode: str = "product", client: Client | None = None, concurrency: int | None = None,
          tier: str | None = None, overrides: Mapping[str, Any] | None = None,
          validate: bool = True, cache: bool | None = None, wait: bool = True,
          timeout: float | None = None, progress: str | None = None, save: str | None = None,
          submit_options: Mapping[str, Any] | None = None, max_jobs: int | None = MAX_JOBS,
          **named: Sequence[Any]) -> Sweep:
    """Run ``workflow`` once per combination of values and collect the outcomes::

        s = comfy_nb.sweep(wf, seed=[1, 2, 3], cfg=[4.0, 7.0])         # 6 jobs
        s = comfy_nb.sweep(wf, {"Positive Prompt.text": ["a fox", "a cat"]}, seed=[1, 2])
        s = comfy_nb.sweep(wf, seed=[1, 2, 3], cfg=[4.0, 5.0, 6.0], mode="zip")   # 3 jobs
        s.rows()       # [{"seed": 1, "cfg": 4.0, "status": "succeeded", "files": [...]}, ...]

    Names are those of :meth:`Workflow.set` (``"seed"``, ``"KSampler.cfg"``, ``"Positive
    Prompt.text"``: the ones with dots or spaces go into the dict). ``mode="product"`` runs
    every combination (the first parameter changes slowest), ``"zip"`` the i-th values together
    (equal lengths). ``overrides`` are fixed for every job.

    A sweep of more than ``max_jobs`` jobs (:data:`MAX_JOBS`, 1000) is refused before
    connecting; pass a larger number (or None) to run it. Every combination is checked before
    anything is submitted: an unknown name raises :class:`ParameterError`; a combination the
    node definitions reject fails alone (its cell says why); interrupting the check stops it
    with nothing submitted. Then at most ``concurrency`` jobs are in flight (submitted and
    unfinished) at once; see :func:`resolve_concurrency` for the default. A failing job keeps
    its error in its item; the others carry on. Interrupting it after the check (while it
    starts, shows its panel or waits) cancels every job of the sweep on the server; ``timeout``
    (seconds, whole sweep) does too and raises :class:`SweepTimeout`.
    ``cache`` is :meth:`Client.run`'s: None follows the result cache's global setting, so an
    identical combination run before comes back at once (``"random"`` seeds never hit it).

    ``client``: the notebook session's when ``%load_ext comfy_nb`` ran, else one shared
    :func:`comfy_nb.connect` client. ``progress``: ``widget``, ``html``, ``text`` or ``off``
    (default: chosen like the magics' panels inside IPython, ``off`` elsewhere); with a panel,
    full-size files are saved (``save``, default the notebook's ``output_dir``) and the panel
    becomes the labelled grid. ``wait=False`` returns at once (the sweep runs on).
    """
    workflow, values, named, overrides, client = sweep_arguments(workflow, values, named,
                                                                 overrides, client)
    axes = _axes(values, named, mode, max_jobs)
    client = client if client is not None else _default_client()
    async_client = client.async_client
    core = AsyncSweep(async_client, workflow, axes, mode,
                      concurrency=resolve_concurrency(client.dialect, concurrency, tier),
                      overrides=overrides, validate=validate, cache=cache,
                      submit_options=submit_options, wrap=lambda job: Job(job, client._loop))
    try:
        client._loop.run(_prepare_and_start(core))
        result = Sweep(core, client._loop)
        backend = _progress_backend(progress)
        if backend != "off":
            # the notebook layer, imported only when a panel is wanted
            from .notebook.sweep_view import follow_sweep

            follow_sweep(result, backend, wait=wait, timeout=timeout, save=save)
        elif wait:
            result.wait(timeout)
    except KeyboardInterrupt:
        # wherever it landed: run() has stopped the check on the loop (it yields between
        # combinations); cancel whatever was submitted (again, if the wait did already)
        client._loop.run(core.cancel(), timeout=60)
        raise
    return result


# a function attribute, so ``comfy_nb.sweep.settings`` works though ``comfy_nb.sweep`` (the
# package attribute) is this function
sweep.settings = settings  # type: ignore[attr-defined]


async def _prepare_and_start(core: AsyncSweep) -> None:
    await core.client.open()
    await core.prepare()
    core.start()


def _progress_backend(requested: str | None) -> str:
    if requested is None and "IPython" in sys.modules:
        from IPython import get_ipython

        if get_ipython() is not None:
            requested = "auto"
    if requested is None:
        return "off"
    from .notebook.progress import choose_backend

    return choose_backend(None if requested == "auto" else requested)


_shared_client: Client | None = None


def _default_client() -> Client:
    """The notebook session's client (``%load_ext comfy_nb``), else one shared connection."""
    global _shared_client
    if "IPython" in sys.modules:
        from IPython import get_ipython

        shell = get_ipython()
        magics = getattr(shell, "_comfy_nb_magics", None) if shell is not None else None
        if magics is not None:
            session: Client = magics.session_client()
            return session
    if _shared_client is None or _shared_client._loop.closed:
        from .client._client import connect

        _shared_client = connect()
    return _shared_client

"""The data of a sweep: one :class:`SweepItem` per combination (its values, its job, then its
result or error and its status), :class:`SweepCounts`, and :class:`SweepData`, what the sync
and async sweeps share: the items and the views of them (counts, rows, summary, the grid in a
notebook).

Owns: an item's status vocabulary (``waiting``, ``queued``, ``running``, ``succeeded``,
``failed``, ``cancelled``) and how an error reads in a sweep's table.
Must not: submit or cancel anything (the run loop of :mod:`._run` does), or import the notebook
layer except lazily, to draw.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..client._dialects import JobStatus
from ..errors import ComfyError, WorkflowInvalid
from ..result import shown_path
from ._values import format_params

if TYPE_CHECKING:
    from ..job import AsyncJob, Job
    from ..result import Result

__all__ = ["CANCELLED", "ENDED", "FAILED", "QUEUED", "RUNNING", "SUCCEEDED", "WAITING",
           "SweepCounts", "SweepData", "SweepItem", "SweepState", "error_text", "file_names"]

#: what an item's status may be: not submitted yet, on the server, or ended
WAITING, QUEUED, RUNNING = "waiting", "queued", "running"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
ENDED = (SUCCEEDED, FAILED, CANCELLED)


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
        self._submitted_to: str | None = None

    @property
    def server(self) -> str | None:
        """The server that ran the item's job (on a pool: the member; once it ended, the one
        its Result names, a job that moved on failover included); None before it was
        submitted, and for an item that never was."""
        if self.result is not None and self.result.server:
            return self.result.server
        return self._submitted_to

    def submitted(self, job: AsyncJob, server: str | None) -> None:
        """The item's job was submitted to ``server`` (the run loop calls this)."""
        self.async_job = job
        self._submitted_to = server

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

    def end(self, status: str, *, result: Result | None = None,
            error: BaseException | None = None) -> None:
        """Record the item's outcome (the sweep's run loop calls this once per item)."""
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
class SweepState:
    """The data of one sweep (an :class:`AsyncSweep` and its :class:`Sweep` share it)."""

    axes: list[tuple[str, list[Any]]]
    mode: str
    concurrency: int
    items: list[SweepItem] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None
    #: on a pool, each member's URL and capacity, in the pool's order (empty: one server)
    servers: list[tuple[str, int]] = field(default_factory=list)


class SweepData:
    """What :class:`Sweep` and :class:`AsyncSweep` share: the items and views of them."""

    _state: SweepState

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

    def lanes(self) -> list[dict[str, Any]]:
        """On a pool, one dict per member, in the pool's order: its ``server``, ``capacity``
        and how many of this sweep's items are ``queued``, ``running``, ``done`` (succeeded),
        ``failed`` and ``cancelled`` there; empty for a sweep on one server."""
        lanes: dict[str, dict[str, Any]] = {
            server: {"server": server, "capacity": capacity, "queued": 0, "running": 0,
                     "done": 0, "failed": 0, "cancelled": 0}
            for server, capacity in self._state.servers}
        for item in self.items:
            lane = lanes.get(item.server or "")
            if lane is None:
                continue
            status = item.status
            key = {SUCCEEDED: "done", QUEUED: "queued", RUNNING: "running",
                   CANCELLED: "cancelled"}.get(status, "failed")
            lane[key] += 1
        return list(lanes.values())

    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per combination: the swept values, ``status``, ``files`` (where they
        were saved, relative to the current folder when inside it, else their names on the
        server), ``error`` (text or None), ``prompt_id``, ``server`` (the server that ran it:
        on a pool the member, else the one server; None for an item never submitted) and
        ``seconds``."""
        rows = []
        for item in self.items:
            row: dict[str, Any] = dict(item.params)
            row["status"] = item.status
            row["files"] = file_names(item.result) if item.result is not None else []
            row["error"] = error_text(item.error) if item.error is not None else None
            row["prompt_id"] = item.prompt_id
            row["server"] = item.server
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
        from ..notebook.sweep_view import render_sweep

        return render_sweep(self, include, exclude)

    @property
    def _ipython_display_(self) -> Callable[[], None]:
        """Present (and showing nothing) only while the sweep is a cell's value whose grid is
        on screen already; see :func:`comfy_nb.notebook.sweep_view.already_on_screen`."""
        from ..notebook.sweep_view import already_on_screen

        if not already_on_screen(self):
            raise AttributeError("_ipython_display_")
        return lambda: None

    def raise_errors(self) -> None:
        """Raise the first item's error, if any failed (to fail a cell or a script)."""
        for _, error in self.errors:
            raise error


def file_names(result: Result) -> list[str]:
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


def error_text(error: BaseException) -> str:
    if isinstance(error, WorkflowInvalid):
        return "; ".join(str(problem) for problem in error.problems)
    text = str(error) or type(error).__name__
    return text if isinstance(error, ComfyError) else f"{type(error).__name__}: {text}"

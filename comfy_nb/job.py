"""A submitted workflow: :class:`AsyncJob` (the state machine, fed by websocket events and
confirmed by the server's job endpoints) and :class:`Job`, its synchronous twin.

The websocket is for speed; history (local) or ``/api/jobs/{id}`` (Cloud) decides completion, so
a dropped socket never loses a result. No job is followed for ever: it is lost when the server
forgets it, when the server refuses to show it (401/403: at once, with an
:class:`AuthenticationError`), or when its state cannot be read for :data:`UNREACHABLE_AFTER`
seconds (the server unreachable, or answering errors); failed reads are repeated less and less
often. This module never speaks HTTP itself: it asks its host (:class:`~comfy_nb.client._host.
JobHost`: the run pipeline of a live client, or a replaying client), and knows nothing else of
the client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from ._loop import INTERRUPT_CHECK, LoopThread
from ._naming import stated_title
from .client._host import JobHost, JobSnapshot, JobStatus
from .errors import (
    AuthenticationError,
    ComfyError,
    ExecutionFailed,
    JobCancelled,
    JobLost,
    JobTimeout,
    RequestError,
    ServerError,
    TransportError,
)
from .events import (
    Cached,
    Event,
    Failed,
    Finished,
    Interrupted,
    NodeExecuted,
    NodeStarted,
    Preview,
    Progress,
    Queued,
    Started,
    Succeeded,
)
from .result import Result

log = logging.getLogger("comfy_nb")


@dataclass(frozen=True)
class JobProgress:
    """A consistent picture of a job at one moment, safe to take from any thread (progress
    displays read it on their own schedule instead of reacting to every event)."""

    status: JobStatus
    position: int | None
    current_node: str | None
    node_value: float
    node_max: float
    nodes_done: int  # executed or served from the cache
    nodes_total: int
    elapsed: float
    previews: int  # how many preview frames arrived so far
    preview: Preview | None
    error: ExecutionFailed | None
    unreachable_for: float | None = None  # seconds the job's state could not be read, or None
    lost: bool = False  # no longer followed: forgotten, refused, or unreadable for too long


EventCallback = Callable[[Event], None]
InterruptionCheck = Callable[["AsyncJob"], Awaitable[bool]]  # AsyncJob.interruption_check
T = TypeVar("T")
_END = object()
LOST_AFTER = 3  # consecutive "unknown" answers before a job counts as lost
UNREACHABLE_AFTER = 60.0  # seconds without reaching the server before a job counts as lost
GATEWAY_STATUSES = frozenset({502, 503, 504})  # a proxy saying the server behind it is away
REFUSED_STATUSES = frozenset({401, 403})  # the key cannot read the job: polling cannot help
OUTCOME_GRACE = 1.0  # seconds an announced outcome waits for its Finished before a read
SOCKET_CHECK = 0.5  # seconds between looks at the websocket while waiting for the next poll


class AsyncJob:
    """One job on the server. Created by :meth:`AsyncClient.submit`; await :meth:`wait`.
    ``host`` is whoever serves it (see :class:`~comfy_nb.client._host.JobHost`).

    ``unreachable_after`` (default :data:`UNREACHABLE_AFTER`) is how many seconds the job's
    state may stay unreadable before the job counts as lost: the server unreachable (while its
    websocket is down too), or answering its job endpoints with errors; ``math.inf`` follows it
    for ever.

    ``interruption_check`` (or None) is awaited once before the job ends cancelled when its
    client was not asked to end it (``cancel_asked``): True means it goes on elsewhere,
    and whoever said so ends it (a pool moves it if its server stops right after)."""

    def __init__(self, host: JobHost, prompt_id: str,
                 workflow: dict[str, Any] | None) -> None:
        self._host = host
        self.id = prompt_id
        self.workflow = workflow
        self.number: float | None = None
        self.resolved_seeds: dict[str, int] = {}  # inputs set to "random", as submitted
        self.parameters: dict[str, Any] = {}  # the overrides it was submitted with
        self.status = JobStatus.QUEUED
        self.position: int | None = None
        self.current_node: str | None = None
        self.node_progress: dict[str, tuple[float, float]] = {}
        self.nodes_cached: set[str] = set()
        self.nodes_done: set[str] = set()
        self.latest_preview: Preview | None = None
        self.error: ExecutionFailed | None = None
        self.submitted_at = time.monotonic()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._callbacks: list[EventCallback] = []
        self._subscribers: list[asyncio.Queue[Any]] = []
        self._backlog: list[Event] = []  # every event so far, replayed to late listeners
        self._cancel_requested = False
        #: its client was asked to end it (cancel, interrupt, delete): an interruption is its own
        self.cancel_asked = False
        self.interruption_check: InterruptionCheck | None = None
        self._interruption: asyncio.Future[bool] | None = None  # the check, once asked
        self._wake = asyncio.Event()
        self._hint_done = False
        self._awaiting_finish = False  # an outcome was announced; its record comes with Finished
        self._result: Result | None = None
        self._unknown = 0
        self.unreachable_after = UNREACHABLE_AFTER
        self._lost = False
        self._lost_at: float | None = None
        self._unreachable_since: float | None = None  # time.monotonic() of the first failure
        self._last_failure: ComfyError | None = None
        self._failures = 0  # failed reads in a row (they space the next reads out)
        self._refused: AuthenticationError | None = None  # why the server will not show it
        self._watcher: asyncio.Future[None] | None = None
        self._stopped = False  # stop_watching was called: the client closed
        self._previews = 0
        self._state_lock = threading.Lock()  # feed/finish (loop thread) vs progress() readers

    @property
    def prompt_id(self) -> str:
        return self.id

    @property
    def nodes_total(self) -> int:
        return len(self.workflow) if self.workflow else 0

    @property
    def elapsed(self) -> float:
        """Seconds since submission (until it finished)."""
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        return end - self.submitted_at

    @property
    def done(self) -> bool:
        return self.status.terminal

    @property
    def lost(self) -> bool:
        """The job is no longer followed: the server forgot it, refused to show it (401/403),
        or its state could not be read for ``unreachable_after`` seconds. :meth:`wait` raises
        why."""
        return self._lost

    @property
    def unreachable_for(self) -> float | None:
        """Seconds the job's state has not been readable (the server unreachable or failing;
        frozen once the job is lost), or None."""
        since = self._unreachable_since
        if since is None:
            return None
        end = self._lost_at if self._lost_at is not None else time.monotonic()
        return end - since

    def __repr__(self) -> str:
        return f"<AsyncJob {self.id} {self.status.value}>"

    # -- events ------------------------------------------------------------------------------

    def on(self, callback: EventCallback) -> None:
        """Call ``callback(event)`` for every event of this job (on the event loop): first the
        ones that already happened, then each new one as it arrives."""
        for event in list(self._backlog):
            self._call(callback, event)
        self._callbacks.append(callback)

    def __aiter__(self) -> AsyncIterator[Event]:
        """The job's events from its start (past ones first), ending when the job ends."""
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        for event in self._backlog:
            inbox.put_nowait(event)
        if self.done or self._lost:
            inbox.put_nowait(_END)
        else:
            self._subscribers.append(inbox)
        try:
            while (item := await inbox.get()) is not _END:
                yield item
        finally:
            if inbox in self._subscribers:
                self._subscribers.remove(inbox)

    def progress(self) -> JobProgress:
        """The job's state now, as one snapshot (callable from any thread)."""
        with self._state_lock:
            node = self.current_node
            value, maximum = self.node_progress.get(node, (0.0, 0.0)) if node else (0.0, 0.0)
            total = self.nodes_total
            done = len(self.nodes_done | self.nodes_cached)
            if self.status is JobStatus.SUCCEEDED:
                done = total
            return JobProgress(
                status=self.status, position=self.position, current_node=node,
                node_value=float(value), node_max=float(maximum),
                nodes_done=min(done, total) if total else done, nodes_total=total,
                elapsed=self.elapsed, previews=self._previews, preview=self.latest_preview,
                error=self.error, unreachable_for=self.unreachable_for, lost=self._lost)

    def feed(self, event: Event) -> None:
        """Take one event of this job (from its host, or from the job that replaced it)."""
        if self.done:
            return
        with self._state_lock:
            self._apply(event)
        if isinstance(event, (Succeeded, Failed, Interrupted, Finished)):
            self._hint_done = True
            # a local ComfyUI writes the history after announcing the outcome, just before
            # Finished: read it then (a read in between finds nothing and costs round trips)
            self._awaiting_finish = (not isinstance(event, Finished)
                                     and self._host.finished_follows_outcome)
            self._wake.set()
        self._publish(event)

    def _apply(self, event: Event) -> None:
        if isinstance(event, Started):
            self._set_running()
        elif isinstance(event, Cached):
            self.nodes_cached.update(event.nodes)
        elif isinstance(event, NodeStarted):
            self._set_running()
            if self.current_node is not None:
                self.nodes_done.add(self.current_node)
            self.current_node = event.node_id
        elif isinstance(event, Progress):
            self.node_progress[event.node_id] = (event.value, event.max)
        elif isinstance(event, NodeExecuted):
            self.nodes_done.add(event.node_id)
        elif isinstance(event, Preview):
            self.latest_preview = event
            self._previews += 1
        elif isinstance(event, Failed):
            self.error = ExecutionFailed(
                prompt_id=self.id, node_id=event.node_id or "", node_type=event.node_type or "",
                exception_type=event.exception_type or "",
                exception_message=event.exception_message or "",
                traceback=list(event.traceback))
        if (isinstance(event, (Succeeded, Finished)) and self.current_node is not None):
            self.nodes_done.add(self.current_node)

    def announce_queued(self, number: float | None) -> None:
        """Record the server's queue number and publish :class:`Queued` (first in the
        replayed history even if the server's first events raced the submit answer)."""
        self.number = number
        event = Queued(self.id, number)
        self._publish(event)
        self._backlog.remove(event)
        self._backlog.insert(0, event)

    def _set_running(self) -> None:
        if self.status is JobStatus.QUEUED:
            self.status = JobStatus.RUNNING
            self.position = 0
            self.started_at = time.monotonic()

    def _publish(self, event: Event) -> None:
        self._backlog.append(event)
        for inbox in self._subscribers:
            inbox.put_nowait(event)
        for callback in list(self._callbacks):
            self._call(callback, event)

    @staticmethod
    def _call(callback: EventCallback, event: Event) -> None:
        try:
            callback(event)
        except Exception:  # a broken callback must not stop the job's bookkeeping
            log.exception("comfy_nb: an event callback failed on %s", type(event).__name__)

    def wake(self) -> None:
        """Re-read the job's state now (after a websocket reconnect)."""
        self._awaiting_finish = False
        self._wake.set()

    def removed_from_queue(self) -> None:
        """The client deleted this job from the queue: if the server forgets it, it was
        cancelled, not lost (its host calls this)."""
        self._cancel_requested = self.cancel_asked = True
        self._awaiting_finish = False
        self._wake.set()

    # -- state from the server ---------------------------------------------------------------

    async def refresh(self) -> JobSnapshot:
        """Read the job's state from the server (the authority) and apply it."""
        snapshot = await self._host.snapshot(self.id)
        if snapshot.status is JobStatus.UNKNOWN and self._cancel_requested:
            # removed from the queue by us: a local server keeps no record of it
            snapshot = JobSnapshot(JobStatus.CANCELLED)
        if snapshot.status is JobStatus.UNKNOWN:
            self._unknown += 1
            return snapshot
        self._unknown = 0
        if snapshot.position is not None:
            self.position = snapshot.position
        if snapshot.status is JobStatus.RUNNING:
            self._set_running()
        if snapshot.status is JobStatus.CANCELLED and await self._goes_on_elsewhere():
            return snapshot
        if snapshot.status.terminal:
            self.finish(snapshot)
        return snapshot

    async def _goes_on_elsewhere(self) -> bool:
        """Whether an interruption nobody asked for here moves the job instead of ending it
        (see :attr:`interruption_check`: asked once, every read meanwhile waits for it)."""
        if self.cancel_asked or self.done:
            return False
        if self._interruption is None:
            if self.interruption_check is None:
                return False
            self._interruption = asyncio.ensure_future(self.interruption_check(self))
        return await asyncio.shield(self._interruption)

    def finish(self, snapshot: JobSnapshot, result: Result | None = None) -> None:
        """End the job as ``snapshot`` says (a terminal status). Its Result is ``result`` when
        given, else made by its host from the snapshot's outputs. The job calls this when the
        server reports the end; a host calls it for a job that ended before it was handed out
        (a run served by the result cache, or replayed). A job ends once: later calls change
        nothing."""
        if self.done:
            return
        with self._state_lock:
            self.status = snapshot.status
            self.finished_at = time.monotonic()
            self.current_node = None
            if snapshot.status is JobStatus.FAILED:
                self.error = snapshot.error or self.error or ExecutionFailed(
                    prompt_id=self.id, node_id="", node_type="", exception_type="",
                    exception_message="the job failed (the server gave no details)")
                if self.error.node_title is None:
                    self.error.node_title = stated_title(
                        (self.workflow or {}).get(self.error.node_id))
        if result is None:
            result = self._host.make_result(self, snapshot.outputs,
                                            snapshot.workflow or self.workflow,
                                            self.status.value)
        self._result = result
        for inbox in self._subscribers:
            inbox.put_nowait(_END)

    def _outcome(self) -> Result:
        assert self._result is not None
        if self.status is JobStatus.FAILED:
            assert self.error is not None
            raise self.error
        if self.status is JobStatus.CANCELLED:
            raise JobCancelled(self.id)
        return self._result

    def start_watching(self) -> None:
        """Follow the job in the background until it ends (its host calls this)."""
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        """Advance the state until the job ends: woken by websocket hints, confirmed (and,
        without a websocket, driven) by polling the server. The job is lost after
        ``LOST_AFTER`` "unknown" answers, at once when the server refuses to show it, or when
        its state cannot be read for ``unreachable_after`` seconds."""
        try:
            while not self.done and not self._lost and not self._stopped:
                if self._unknown >= LOST_AFTER or self._unreachable_too_long():
                    self._lose()
                    return
                await self._pause()
                if self._stopped:
                    return
                self._wake.clear()
                if not self._unreachable_too_long():
                    await self._poll()
        except RuntimeError:
            if not self._stopped:
                raise
            # a read the closing client cut short ("this client is closed"): the watch is over
        finally:
            if self.done or self._lost:
                self._host.forget(self)

    async def _pause(self) -> None:
        """Wait until woken or the next poll is due. A websocket that goes down meanwhile
        makes the poll due at once: the server may be gone."""
        deadline = time.monotonic() + self._next_poll()
        socket_was_up = self._websocket_connected()
        while (left := deadline - time.monotonic()) > 0 and not self._stopped:
            if socket_was_up and not self._websocket_connected():
                return
            step = min(left, SOCKET_CHECK) if socket_was_up else left
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), step)
                if not self._awaiting_finish:
                    return
                # the outcome is announced: wait for Finished, but not for ever (a socket that
                # drops in between never brings it)
                self._wake.clear()
                deadline = min(deadline, time.monotonic() + OUTCOME_GRACE)

    def _next_poll(self) -> float:
        """Seconds until the next read: the host's interval, but never past the moment an
        unreachable server would make the job lost."""
        interval = self._host.poll_delay(
            completion_hinted=self._hint_done and not self._awaiting_finish,
            unsure=self._unknown > 0, failures=self._failures)
        if self._awaiting_finish:  # its Finished has not come yet: see _pause
            interval = min(interval, OUTCOME_GRACE)
        if self._unreachable_since is None:
            return interval
        deadline = self._unreachable_since + self.unreachable_after
        return max(0.0, min(interval, deadline - time.monotonic()))

    async def _poll(self) -> None:
        """One read of the job's state. A failed read starts the clock that makes the job
        lost after ``unreachable_after`` seconds, and spaces the next reads out; a read that
        succeeds stops it. A server that cannot be reached (no connection, a gateway error, no
        answer in time) does not count while the websocket is up; 401 and 403 end the
        following at once. A read never outlasts the time left before the job would be lost."""
        started = time.monotonic()
        since = self._unreachable_since
        limit = self.unreachable_after if since is None \
            else since + self.unreachable_after - started
        try:
            await asyncio.wait_for(self.refresh(), max(limit, 0.0))
        except asyncio.TimeoutError:  # cut short: the last failure, if any, still says why
            self._read_failed(started, self._last_failure or TransportError(
                f"no answer from {self._host.url} within {limit:g} s"), unreachable=True)
        except ComfyError as exc:
            if isinstance(exc, RequestError) and exc.status in REFUSED_STATUSES:
                self._refuse(exc)
                return
            unreachable = isinstance(exc, TransportError) or (
                isinstance(exc, ServerError) and exc.status in GATEWAY_STATUSES)
            self._read_failed(started, exc, unreachable=unreachable)
        else:
            self._reachable()

    def _read_failed(self, started: float, failure: ComfyError, *, unreachable: bool) -> None:
        """A read that began at ``started`` failed: the server could not be reached
        (``unreachable``), or it answered with an error."""
        log.debug("comfy_nb: reading job %s failed: %s", self.id, failure)
        if unreachable and self._websocket_connected():  # events still arrive: it is there
            self._reachable()
            return
        self._last_failure = failure
        self._failures += 1
        if self._unreachable_since is None:
            self._unreachable_since = started

    def _reachable(self) -> None:
        """The job's state was read: stop the clock."""
        self._unreachable_since = None
        self._last_failure = None
        self._failures = 0

    def _refuse(self, failure: RequestError) -> None:
        """The server refuses to show the job (401, 403): stop following it."""
        if failure.status == 401:
            why = ("the server refused the API key (401): it is missing, wrong or was "
                   "revoked")
        else:
            why = ("the server refused to show it (403): the API key may not read this job, "
                   "or a proxy in front of the server refuses the request")
        self._last_failure = failure
        self._refused = AuthenticationError(
            f"job {self.id}: {why}. The job may still run there: with access restored, follow "
            f"it again with client.job({self.id!r}).", status=failure.status)
        self._lose()

    def _websocket_connected(self) -> bool:
        return self._host.socket_connected

    def _unreachable_too_long(self) -> bool:
        since = self._unreachable_since
        return since is not None and time.monotonic() - since >= self.unreachable_after

    def _lose(self) -> None:
        """Stop following the job: it ends the iterations; :meth:`wait` raises why."""
        with self._state_lock:
            self._lost = True
            self._lost_at = time.monotonic()
        for inbox in self._subscribers:
            inbox.put_nowait(_END)

    def _loss(self) -> ComfyError:
        """The error that says why the job was lost."""
        if self._refused is not None:
            return self._refused
        started, seconds = self._unreachable_since, self.unreachable_for
        if started is None or seconds is None:
            return JobLost(self.id)
        wall_clock = time.time() - (time.monotonic() - started)
        since = time.strftime("%H:%M:%S", time.localtime(wall_clock))
        last = self._last_failure
        failure = f": {last}" if last is not None else ""
        advice = (f"The job may still run there: once the server is back, follow it again with "
                  f"client.job({self.id!r}), or submit the workflow again.")
        answered = isinstance(last, RequestError) and last.status not in GATEWAY_STATUSES
        if not answered:
            return TransportError(f"job {self.id}: the server has been unreachable since "
                                  f"{since} ({seconds:.0f} s){failure}. {advice}")
        assert isinstance(last, RequestError)
        kind = ServerError if isinstance(last, ServerError) else RequestError
        return kind(f"job {self.id}: reading its state has failed since {since} "
                    f"({seconds:.0f} s){failure}. {advice}", status=last.status)

    def stop_watching(self) -> None:
        """Stop following the job (its host calls this as it closes). The watcher ends even
        if the cancellation is lost: before Python 3.12, ``asyncio.wait_for`` drops one that
        arrives just as what it waits for completes, and a watcher running on would read the
        job from a closed client and fail with nobody left to hear it."""
        self._stopped = True
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()

    async def wait(self, timeout: float | None = None) -> Result:
        """Wait for the job and return its :class:`Result`. Raises ExecutionFailed,
        JobCancelled, JobLost (the server forgot the job), AuthenticationError (the server
        refused to show it), TransportError (the server stayed unreachable for
        ``unreachable_after`` seconds), ServerError or RequestError (its job endpoints kept
        answering errors that long) or JobTimeout. After a timeout, or when
        the task awaiting this is cancelled, the job keeps running on the server: cancel it
        with :meth:`cancel` if needed."""
        self.start_watching()
        assert self._watcher is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._watcher), timeout)
        except asyncio.TimeoutError:
            raise JobTimeout(self.id, timeout or 0.0) from None
        except asyncio.CancelledError:
            # the watcher was stopped (the client closed), not this wait
            if self._watcher.cancelled() and not self.done and self._host.closed:
                raise self._closed_while_waiting() from None
            raise
        if self._lost:
            raise self._loss() from self._last_failure
        if not self.done:  # the watcher stopped without being cancelled
            raise self._closed_while_waiting()
        return self._outcome()

    def _closed_while_waiting(self) -> RuntimeError:
        return RuntimeError(f"the client was closed while waiting for job {self.id}; it may "
                            "still run on the server")

    async def result(self, timeout: float | None = None) -> Result:
        """Same as :meth:`wait`."""
        return await self.wait(timeout)

    async def cancel(self) -> bool:
        """Remove the job from the queue, or interrupt it if it runs. True if it was live."""
        if self.done:
            return False
        self.cancel_asked = True
        cancelled = await self._host.cancel(self.id)
        with contextlib.suppress(ComfyError):
            await self.refresh()
        return cancelled


class Job:
    """The synchronous twin of :class:`AsyncJob` (from :class:`comfy_nb.Client`)."""

    def __init__(self, job: AsyncJob, loop: LoopThread) -> None:
        self._job = job
        self._loop = loop

    @property
    def id(self) -> str:
        return self._job.id

    prompt_id = id

    def __getattr__(self, name: str) -> Any:
        if name in {"status", "position", "current_node", "node_progress", "nodes_cached",
                    "nodes_done", "nodes_total", "latest_preview", "error", "elapsed", "done",
                    "lost", "unreachable_for", "workflow", "number",
                    "resolved_seeds", "parameters", "submitted_at", "started_at",
                    "finished_at"}:
            return getattr(self._job, name)
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"<Job {self.id} {self._job.status.value}>"

    @property
    def client_closed(self) -> bool:
        """Whether the client following this job was closed: the job is no longer updated
        (it may still run on the server)."""
        return self._loop.closed

    @property
    def async_job(self) -> AsyncJob:
        return self._job

    @property
    def unreachable_after(self) -> float:
        """Seconds the server may stay unreachable before the job counts as lost."""
        return self._job.unreachable_after

    @unreachable_after.setter
    def unreachable_after(self, seconds: float) -> None:
        self._job.unreachable_after = seconds

    def progress(self) -> JobProgress:
        """The job's state now, as one snapshot."""
        return self._job.progress()

    def on(self, callback: EventCallback) -> None:
        """Call ``callback(event)`` for every event, past ones first (from the client's loop
        thread)."""
        self._loop.loop.call_soon_threadsafe(self._job.on, callback)

    def wait(self, timeout: float | None = None) -> Result:
        """Wait for the job and return its Result (see :meth:`AsyncJob.wait`). Ctrl+C (the
        kernel's stop button) cancels the job on the server, then propagates; a timeout
        leaves it running."""
        try:
            return self._loop.run(self._job.wait(timeout))
        except KeyboardInterrupt:
            self._cancel_after_interrupt()
            raise

    def _cancel_after_interrupt(self) -> None:
        try:
            self._loop.run(self._job.cancel(), timeout=30)
        except (ComfyError, concurrent.futures.TimeoutError) as exc:
            log.warning("comfy_nb: could not cancel job %s: %s", self.id, exc)

    result = wait

    def refresh(self) -> JobSnapshot:
        return self._loop.run(self._job.refresh())

    def cancel(self) -> bool:
        return self._loop.run(self._job.cancel())

    def __iter__(self) -> Iterator[Event]:
        """The job's events from its start (past ones first, then as they arrive), ending when
        the job ends. Ctrl+C while waiting for the next event cancels the job on the server,
        then propagates; ``break`` leaves it running."""
        inbox: queue.Queue[Any] = queue.Queue()

        async def pump() -> None:
            try:
                async for event in self._job:
                    inbox.put(event)
            finally:
                inbox.put(_END)

        future = self._loop.submit(pump())
        try:
            while (item := self._next(inbox)) is not _END:
                yield item
        finally:
            future.cancel()

    def _next(self, inbox: queue.Queue[Any]) -> Any:
        """The next item of ``inbox``, checking for Ctrl+C every ``INTERRUPT_CHECK`` seconds
        (as :meth:`LoopThread.wait` does)."""
        try:
            while True:
                with contextlib.suppress(queue.Empty):
                    return inbox.get(timeout=INTERRUPT_CHECK)
        except KeyboardInterrupt:
            self._cancel_after_interrupt()
            raise

"""Moving the jobs of a pool member whose server stopped: :class:`Failover`.

While a member holds jobs submitted through the pool (:meth:`~comfy_nb.client._pool.PoolRuns.
submit`, what sweeps use), one watch per member reads its queue every poll interval. When the
member refuses connections (its server stopped, and its queue with it: nothing there can still
run), each of its jobs that had not ended is submitted once to another member that can run it,
and the first job ends with the second one's outcome: whoever waits for it gets the Result of
the run that took its place (``result.server`` and ``result.prompt_id`` name it), and whoever
follows its events (``job.on``, ``async for event in job``, a progress panel) gets the
replacement's events after its own, then the end. A job that was moved once is not moved again,
nor is a job asked to end (through the pool or the job; see below), which ends as on one server;
a member that does not answer but still accepts connections keeps its jobs (it may still
finish them), and they end as a single client's would. The replacement uploads the job's files
to its own member: the resubmission is the workflow as it was sent (its seeds as drawn) with
the files themselves back in the inputs the stopped member had named its uploads in.

A server that stops gracefully may interrupt its running job first, report it (a local
server's ``execution_interrupted``, a record saying cancelled) and only then refuse
connections, as the emulator's :meth:`~comfy_nb.emulator.RunningEmulator.stop` does (a local
ComfyUI stopped with Ctrl-C reports nothing: its worker thread ends with the process). So an
interruption that nobody of this pool asked for (not through the pool's ``cancel``,
``cancel_many``, ``interrupt``, ``clear_queue`` or ``delete``, nor the job's own ``cancel``)
holds the job's end for up to :data:`GRACEFUL_STOP_WINDOW` seconds: when the member refuses
connections within that time, the job moves as above (and a run of :meth:`~comfy_nb.client.
_pool.AsyncPool.run` goes to another member); otherwise the interruption was another client's,
on a server that keeps running, and the job ends cancelled, never run twice on a guess. A
cancellation asked through a member's own client (``pool.members[i]``) counts as well: the
client notes it on the job before sending it (``AsyncJob.cancel_asked``).

Must not: decide where a job goes (the pool's choice does) or speak to a server itself beyond
asking whether it accepts connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from ..errors import ComfyError, ExecutionFailed, JobCancelled, TransportError
from ._dialects import JobSnapshot, JobStatus
from ._pool_members import Member, Members, refuses_connections
from ._runs import SubmittedRun, job_observers

if TYPE_CHECKING:
    from ..job import AsyncJob, InterruptionCheck

__all__ = ["GRACEFUL_STOP_WINDOW", "Failover", "gone", "noting_jobs"]

#: where the jobs submitted in this context go (a pool's run learns its job's id this way)
_NOTED_JOBS: contextvars.ContextVar[list[AsyncJob] | None] = contextvars.ContextVar(
    "comfy_nb_pool_noted_jobs", default=None)


def _note_job(run: SubmittedRun) -> None:
    """A :data:`~comfy_nb.client._runs.job_observers` hook: note the job in the list of the
    context it was submitted in, if any."""
    noted = _NOTED_JOBS.get()
    if noted is not None:
        noted.append(run.job)


if _note_job not in job_observers:
    job_observers.append(_note_job)


@contextlib.contextmanager
def noting_jobs(noted: list[AsyncJob]) -> Iterator[None]:
    """Within it, the jobs that tasks created here submit are appended to ``noted``: a member's
    ``run`` submits its job in the task the pool's run creates for it."""
    token = _NOTED_JOBS.set(noted)
    try:
        yield
    finally:
        _NOTED_JOBS.reset(token)

log = logging.getLogger("comfy_nb")

#: seconds within which a member whose job was interrupted (by nobody of the pool) must refuse
#: connections for the interruption to count as its server stopping: the job then moves
GRACEFUL_STOP_WINDOW = 5.0

#: submits a job's workflow to another member than those given: the new job and its member
Resubmit = Callable[["AsyncJob", list[Member]], Awaitable[tuple["AsyncJob", Member]]]


async def _refuses(member: Member) -> bool:
    """One look at ``member``: whether its server refuses connections (a read of its queue
    that could not be sent, and nothing listening at its port)."""
    try:
        await member.client.queue()
    except TransportError as exc:
        return exc.never_sent and await refuses_connections(member.url)
    except ComfyError:
        pass
    return False


async def gone(member: Member) -> None:
    """Return once ``member`` refuses connections (its server stopped), checking every poll
    interval; a server that answers, or cannot be reached for another reason (it may still run
    its jobs), keeps them."""
    while True:
        await asyncio.sleep(max(member.client.poll_interval, 0.1))
        if await _refuses(member):
            return


class Failover:
    """Watches the members that hold jobs, and moves the jobs of one that stopped."""

    def __init__(self, members: Members, resubmit: Resubmit) -> None:
        self._members = members
        self._resubmit = resubmit
        self._watches: dict[int, asyncio.Task[None]] = {}
        self._moves: set[asyncio.Task[None]] = set()
        self._moving: set[str] = set()  # first jobs moved, or on their way
        self._checks: set[asyncio.Future[bool]] = set()  # interruptions being looked into
        self._closed = False
        self.moved = members.moved  # first job id -> the id of the job that replaced it

    def watch(self, member: Member, job: AsyncJob) -> None:
        """Watch ``member`` while it holds jobs (once per member at a time), and hold the end
        of ``job`` if nobody of the pool interrupted it (see the module's docstring)."""
        job.interruption_check = self._interruption_check(member)
        task = self._watches.get(member.index)
        if task is None or task.done():
            self._watches[member.index] = asyncio.ensure_future(self._watch(member))

    async def stopped_after_interruption(self, member: Member, prompt_id: str) -> bool:
        """Whether the interruption of job ``prompt_id`` on ``member`` came from its server
        stopping: nobody of the pool asked for it, and the member refuses connections within
        :data:`GRACEFUL_STOP_WINDOW` seconds."""
        if self._members.asked_to_end(prompt_id):
            return False
        log.info("comfy_nb: job %s on %s was interrupted, not by this pool; it runs elsewhere "
                 "if that server stops within %g s", prompt_id, member.url, GRACEFUL_STOP_WINDOW)
        if not await self._refuses_within(member, GRACEFUL_STOP_WINDOW):
            return False
        if self._members.asked_to_end(prompt_id):  # asked meanwhile
            return False
        member.refused()
        return True

    async def _refuses_within(self, member: Member, seconds: float) -> bool:
        """Whether ``member``'s server refuses connections within ``seconds`` (False at once
        when the pool closes)."""
        deadline = time.monotonic() + seconds
        while not await refuses_connections(member.url):
            if self._closed or time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    def _interruption_check(self, member: Member) -> InterruptionCheck:
        async def check(job: AsyncJob) -> bool:
            task = asyncio.current_task()
            assert task is not None
            self._checks.add(task)
            try:
                stopped = await self.stopped_after_interruption(member, job.id)
            finally:
                self._checks.discard(task)
            if self._closed:  # left as it is: its wait ends as the pool's clients close
                return True
            if not stopped or job.done:  # (done: cancelled meanwhile by whoever holds it)
                return False
            self._move_later(job, member)
            return True

        return check

    async def _watch(self, member: Member) -> None:
        while member.placed:
            await asyncio.sleep(max(member.client.poll_interval, 0.1))
            if await _refuses(member):
                member.refused()
                self._move_all(member)
                return

    def _move_all(self, member: Member) -> None:
        stranded = [job for job in member.jobs if not (job.done or job.lost)]
        member.jobs.clear()
        for job in stranded:
            self._move_later(job, member)

    def _move_later(self, job: AsyncJob, gone_from: Member) -> None:
        """Move ``job`` off ``gone_from`` in the background, unless it was moved already or
        asked to end (it ends as a single client's job would)."""
        if job.id in self._moving or job.id in self.moved.values():
            return
        if job.cancel_asked or self._members.asked_to_end(job.id):
            log.info("comfy_nb: %s stopped with job %s, which was asked to end: it is not run "
                     "elsewhere", gone_from.url, job.id)
            return
        self._moving.add(job.id)
        task = asyncio.ensure_future(self._move(job, gone_from))
        self._moves.add(task)
        task.add_done_callback(self._moves.discard)

    async def _move(self, job: AsyncJob, gone_from: Member) -> None:
        try:
            replacement, member = await self._resubmit(job, [gone_from])
        except ComfyError as exc:
            log.warning("comfy_nb: %s stopped with job %s, and no other server took it: %s",
                        gone_from.url, job.id, exc)
            return
        self.moved[job.id] = replacement.id
        log.warning("comfy_nb: %s stopped with job %s; it runs again on %s as job %s",
                    gone_from.url, job.id, member.url, replacement.id)
        # the first job's server is gone: it ends with its replacement, however long that runs
        patience, job.unreachable_after = job.unreachable_after, math.inf
        replacement.on(job.feed)  # those following the first job follow the replacement
        try:
            result = await replacement.wait()
        except ExecutionFailed as exc:
            job.finish(JobSnapshot(JobStatus.FAILED, error=exc))
        except JobCancelled:
            job.finish(JobSnapshot(JobStatus.CANCELLED))
        except (ComfyError, RuntimeError) as exc:
            log.warning("comfy_nb: job %s, moved to %s, did not end there: %s", job.id,
                        member.url, exc)
            job.unreachable_after = patience
            return
        else:
            job.finish(JobSnapshot(JobStatus.SUCCEEDED, outputs=result.outputs,
                                   workflow=result.workflow), result=result)
        job.wake()

    async def close(self) -> None:
        self._closed = True
        await asyncio.gather(*self._checks, return_exceptions=True)
        tasks = [*self._watches.values(), *self._moves]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

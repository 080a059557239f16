"""Moving the jobs of a pool member whose server stopped: :class:`Failover`.

While a member holds jobs submitted through the pool (:meth:`~comfy_nb.client._pool.PoolRuns.
submit`, what sweeps use), one watch per member reads its queue every poll interval. When the
member refuses connections (its server stopped, and its queue with it: nothing there can still
run), each of its jobs that had not ended is submitted once to another member that can run it,
and the first job ends with the second one's outcome: whoever waits for it gets the Result of
the run that took its place (``result.server`` and ``result.prompt_id`` name it). A job that
was moved once is not moved again; a member that does not answer but still accepts connections
keeps its jobs (it may still finish them), and they end as a single client's would.

Must not: decide where a job goes (the pool's choice does) or speak to a server itself beyond
asking whether it accepts connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..errors import ComfyError, ExecutionFailed, JobCancelled, TransportError
from ._dialects import JobSnapshot, JobStatus
from ._pool_members import Member, Members, refuses_connections

if TYPE_CHECKING:
    from ..job import AsyncJob

__all__ = ["Failover"]

log = logging.getLogger("comfy_nb")

#: submits a job's workflow to another member than those given: the new job and its member
Resubmit = Callable[["AsyncJob", list[Member]], Awaitable[tuple["AsyncJob", Member]]]


class Failover:
    """Watches the members that hold jobs, and moves the jobs of one that stopped."""

    def __init__(self, members: Members, resubmit: Resubmit) -> None:
        self._resubmit = resubmit
        self._watches: dict[int, asyncio.Task[None]] = {}
        self._moves: set[asyncio.Task[None]] = set()
        self.moved = members.moved  # first job id -> the id of the job that replaced it

    def watch(self, member: Member) -> None:
        """Watch ``member`` while it holds jobs (once per member at a time)."""
        task = self._watches.get(member.index)
        if task is None or task.done():
            self._watches[member.index] = asyncio.ensure_future(self._watch(member))

    async def _watch(self, member: Member) -> None:
        while member.placed:
            await asyncio.sleep(max(member.client.poll_interval, 0.1))
            try:
                await member.client.queue()
            except TransportError as exc:
                if exc.never_sent and await refuses_connections(member.url):
                    member.refused()
                    self._move_all(member)
                    return
            except ComfyError:
                pass

    def _move_all(self, member: Member) -> None:
        stranded = [job for job in member.jobs if not (job.done or job.lost)
                    and job.id not in self.moved.values()]
        member.jobs.clear()
        for job in stranded:
            task = asyncio.ensure_future(self._move(job, member))
            self._moves.add(task)
            task.add_done_callback(self._moves.discard)

    async def _move(self, job: AsyncJob, gone: Member) -> None:
        try:
            replacement, member = await self._resubmit(job, [gone])
        except ComfyError as exc:
            log.warning("comfy_nb: %s stopped with job %s, and no other server took it: %s",
                        gone.url, job.id, exc)
            return
        self.moved[job.id] = replacement.id
        log.warning("comfy_nb: %s stopped with job %s; it runs again on %s as job %s",
                    gone.url, job.id, member.url, replacement.id)
        try:
            result = await replacement.wait()
        except ExecutionFailed as exc:
            job.finish(JobSnapshot(JobStatus.FAILED, error=exc))
        except JobCancelled:
            job.finish(JobSnapshot(JobStatus.CANCELLED))
        except (ComfyError, RuntimeError) as exc:
            log.warning("comfy_nb: job %s, moved to %s, did not end there: %s", job.id,
                        member.url, exc)
            return
        else:
            job.finish(JobSnapshot(JobStatus.SUCCEEDED, outputs=result.outputs,
                                   workflow=result.workflow), result=result)
        job.wake()

    async def close(self) -> None:
        tasks = [*self._watches.values(), *self._moves]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

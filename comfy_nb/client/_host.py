"""What a job needs from whoever serves it: :class:`JobHost`.

An :class:`~comfy_nb.job.AsyncJob` is a state machine fed by events; to confirm its state, space
its reads out, end it and hand over its Result it asks its host, and nothing else. A live client's
run pipeline hosts the jobs it submits (their state read from the server, their Results cached);
a replaying client hosts the jobs of a recording (ended before they are handed out, their Results
read from files). This module draws the line, and hands the job the words of that interface
(:class:`JobSnapshot`, :class:`JobStatus`, defined with the dialects that produce them).

Must not: import either side (the job, the client, its connection or run pipeline, recordings).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ._dialects import JobSnapshot, JobStatus

if TYPE_CHECKING:
    from ..job import AsyncJob
    from ..result import Result

__all__ = ["JobHost", "JobSnapshot", "JobStatus"]


class JobHost(Protocol):
    """The small interface an :class:`~comfy_nb.job.AsyncJob` uses."""

    @property
    def url(self) -> str:
        """The server, as messages name it."""
        ...

    @property
    def closed(self) -> bool:
        """Whether the host was closed: its jobs are no longer followed."""
        ...

    @property
    def socket_connected(self) -> bool:
        """Whether events arrive by websocket now (the server is there, and fast hints come)."""
        ...

    @property
    def finished_follows_outcome(self) -> bool:
        """Whether the server sends ``Finished`` after announcing a job's outcome, once the
        job's record is written (a local ComfyUI does): a read before it finds nothing."""
        ...

    def poll_delay(self, *, completion_hinted: bool, unsure: bool, failures: int) -> float:
        """Seconds until a job is read again: soon after a hint that it ended, ``unsure`` while
        the server does not know it, longer after ``failures`` failed reads in a row."""
        ...

    async def snapshot(self, prompt_id: str) -> JobSnapshot:
        """The job's state as the server's job endpoints report it (the authority)."""
        ...

    async def cancel(self, prompt_id: str) -> bool:
        """Cancel the job on the server; whether it was live."""
        ...

    def forget(self, job: AsyncJob) -> None:
        """The job ended or was lost: stop routing its events to it."""
        ...

    def make_result(self, job: AsyncJob, outputs: dict[str, Any],
                    workflow: dict[str, Any] | None, status: str) -> Result:
        """The Result of a job that ended with ``outputs`` (its files read through the host)."""
        ...

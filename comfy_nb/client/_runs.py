"""The run pipeline of a live client: :class:`RunPipeline`, from a workflow to a job on the
server and from a job's end to its Result.

A run is staged (:mod:`comfy_nb.client._staging`: loaded, converted, overridden, files read into
placeholders), looked up in the result cache by its content (:class:`~comfy_nb.client._caching.
RunCache`: a hit gives a job that has already succeeded, and nothing is uploaded or sent), then
its files are uploaded (each content once per client), it is checked against the server's node
definitions (every problem at once, as ``WorkflowInvalid``), and posted through the connection.
The pipeline hosts the jobs it makes (it is their :class:`~comfy_nb.client._host.JobHost`): their
state comes from the connection, their Result is made here and, when they succeed, cached.

Whoever wants to know of every job submitted (recordings do) registers in :data:`job_observers`.

Must not: speak HTTP or hold the socket (that is :mod:`comfy_nb.client._connection`).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import provenance
from .._secret import Secret, hide_extra_data
from ..job import AsyncJob
from ..result import Result
from ._caching import UPLOAD_MARK, RunCache, digest_of, keyed, swap_placeholder
from ._dialects import JobSnapshot, JobStatus, job_path
from ._files import ClientFiles
from ._node_definitions import NodeDefinitions
from ._staging import Staged, Stager, WorkflowLike
from ._uploads import Uploads

if TYPE_CHECKING:
    from ..cache import ResultCache
    from ..events import Event
    from ._client import AsyncClient
    from ._connection import Connection


class PreparedPrompt(NamedTuple):
    """What :meth:`~comfy_nb.AsyncClient.prepare` gives: the prompt as it would be sent."""

    prompt: dict[str, Any]  #: the API-format workflow, files uploaded and named
    seeds: dict[str, int]  #: the seeds ``"random"`` was resolved to, by input

log = logging.getLogger("comfy_nb")


@dataclass(frozen=True)
class SubmittedRun:
    """A job just submitted, as :data:`job_observers` are told of it."""

    client: AsyncClient
    job: AsyncJob
    staged: Staged  # the workflow as staged (upload placeholders in it, seeds resolved)
    inputs: dict[str, str]  # "<node>.<input>" -> sha256 of the file uploaded for it
    credentials: list[str]  # the keys sent with it: to be kept out of anything written
    server_stats: dict[str, Any] | None  # the server's system_stats, if read when connecting


JobObserver = Callable[[SubmittedRun], "Awaitable[None] | None"]
#: Told of every job any client of this process submits (comfy_nb.recordings registers here):
#: ``observer(run)`` on the client's event loop, right after submit (a result-cache hit has
#: already succeeded then). An awaitable it returns runs as a task that ``run`` waits for before
#: returning and ``aclose`` lets finish (up to 10 s) once the job ended. It must not raise.
job_observers: list[JobObserver] = []


class RunPipeline:
    """Submits one client's runs through ``connection`` and hosts their jobs. ``client`` is the
    façade the observers are told of; ``result_cache`` and ``cache_dir`` are
    :class:`~comfy_nb.AsyncClient`'s."""

    def __init__(self, client: AsyncClient, connection: Connection, *,
                 result_cache: ResultCache | None, cache_dir: Path | None) -> None:
        self._client = client
        self._connection = connection
        self.files = ClientFiles(connection, None)  # (the synchronous Client sets its loop)
        self.definitions = NodeDefinitions(connection, result_cache)
        self.uploads = Uploads(connection)
        self._stager = Stager(self.definitions)
        self._cache = RunCache(connection, self.files, result_cache)
        self._cache_dir = cache_dir
        self._observing: list[tuple[AsyncJob, asyncio.Future[None]]] = []  # observers' tasks

    # -- submitting ----------------------------------------------------------------------------

    async def submit(self, workflow: WorkflowLike, *, prompt_id: str | None,
                     extra_data: dict[str, Any] | None, partner_key: bool | str | Secret,
                     front: bool, validate: bool, overrides: dict[str, Any] | None,
                     cache: bool | None, params: dict[str, Any]) -> AsyncJob:
        """Queue a workflow (see :meth:`comfy_nb.AsyncClient.submit`) and return its job."""
        if isinstance(partner_key, (str, Secret)):  # no frame below holds it in the clear
            partner_key = Secret.of(partner_key, "partner_key") or False
        if extra_data:
            extra_data = hide_extra_data(extra_data)
        connection = self._connection
        await connection.ready()
        wanted = {**(overrides or {}), **params}
        staged = await self._stager.stage(workflow, wanted, validate)  # uploads rename in wanted
        ticket = await self._cache.ticket(staged.api, self.uploads.digests, cache)
        if ticket is not None:
            hit = await self._cache.lookup(ticket, staged.api)
            if hit is not None:
                job = self._cached_job(hit, staged, wanted)
                self._tell_observers(job, staged, revealed(connection.api_key))
                return job
        if prompt_id is not None:
            job_path(prompt_id)  # refuses an id that could address another endpoint
        api = await self._complete(staged, wanted, validate)
        extra = dict(extra_data or {})
        if partner_key:
            key = partner_key if isinstance(partner_key, Secret) else connection.api_key
            if not key:
                raise ValueError("partner_key=True sends the API key this client sends to the "
                                 "server, and it sends none to this one: pass the key, "
                                 "partner_key=...")
            extra["api_key_comfy_org"] = key
        credentials = revealed(connection.api_key, extra.get("api_key_comfy_org"))
        submission = connection.submission(api, extra, front, prompt_id)
        check_sendable(submission.body)
        answer = await connection.post(submission)
        job = AsyncJob(self, answer["prompt_id"], api)
        job.resolved_seeds = staged.seeds
        job.parameters = wanted
        connection.follow(job)
        if ticket is not None:
            ticket.workflow = api
            ticket.credentials = credentials
            self._cache.keep(job.id, ticket)
        job.announce_queued(answer.get("number"))
        job.start_watching()
        self._tell_observers(job, staged, credentials)
        return job

    async def prepare(self, workflow: WorkflowLike, overrides: dict[str, Any],
                      validate: bool) -> tuple[dict[str, Any], dict[str, int]]:
        """The API-format dict to submit: converted, overridden, uploaded and checked; plus the
        seeds ``"random"`` resolved to. The caller's workflow is never changed."""
        staged = await self._stager.stage(workflow, overrides, validate)
        return await self._complete(staged, overrides, validate), staged.seeds

    async def _complete(self, staged: Staged, overrides: dict[str, Any],
                        validate: bool) -> dict[str, Any]:
        """Upload the staged files (identical bytes once per client), put their server-side
        names into the workflow and ``overrides``, and validate: the dict to submit."""
        from ..errors import WorkflowInvalid
        from ..workflow._check import validate_workflow

        names: dict[str, str] = {}
        for placeholder, (data, filename) in staged.uploads.pending.items():
            names[placeholder] = await self.uploads.content(data, filename,
                                                            digest_of(placeholder))
        api = staged.api
        if names:
            api = {node_id: ({**node, "inputs": {name: swap_placeholder(value, names)
                                                 for name, value in node["inputs"].items()}}
                             if isinstance(node, dict) and isinstance(node.get("inputs"), dict)
                             else node)
                   for node_id, node in api.items()}
            for name, value in overrides.items():
                overrides[name] = swap_placeholder(value, names)
        if validate and staged.object_info is not None:
            # files uploaded by this client exist, though the cached file lists predate them
            known = tuple(self.uploads.known_files)
            try:
                validate_workflow(api, staged.object_info, known_files=known)
            except WorkflowInvalid as problems:
                fresh = await self.definitions.checked(problems, staged.object_info)
                if fresh is None:
                    raise
                staged.object_info = fresh
                validate_workflow(api, fresh, known_files=known)
        return api

    def _cached_job(self, hit: Result, staged: Staged, wanted: dict[str, Any]) -> AsyncJob:
        """A job that already succeeded with a cached result; its events say every node was
        cached, as ComfyUI reports a prompt it need not execute."""
        from ..events import Cached, Succeeded

        job = AsyncJob(self, hit.prompt_id, hit.workflow)
        job.resolved_seeds = staged.seeds
        job.parameters = {name: ("sha256:" + digest_of(value)
                                 if isinstance(value, str) and value.startswith(UPLOAD_MARK)
                                 else value)
                          for name, value in wanted.items()}
        events: list[Event] = [Cached(job.id, tuple(hit.workflow or ())), Succeeded(job.id)]
        for event in events:
            job.feed(event)
        job.finish(JobSnapshot(JobStatus.SUCCEEDED, outputs=hit.outputs, workflow=hit.workflow),
                   result=hit)
        return job

    async def cached_result(self, workflow: WorkflowLike, overrides: dict[str, Any],
                            validate: bool) -> Result | None:
        """The cached Result of this run, or None; nothing is uploaded or submitted."""
        await self._connection.ready()
        staged = await self._stager.stage(workflow, overrides, validate)
        ticket = await self._cache.ticket(staged.api, self.uploads.digests, True)
        return None if ticket is None else await self._cache.lookup(ticket, staged.api)

    async def follow(self, prompt_id: str) -> AsyncJob:
        """The job of an id submitted earlier (by this or another client), followed."""
        job_path(prompt_id)  # refuses an id that could address another endpoint
        await self._connection.ready()
        job = self._connection.followed(prompt_id)
        if job is None:
            job = AsyncJob(self, prompt_id, None)
            self._connection.follow(job)
            await job.refresh()
            job.start_watching()
        return job

    async def object_info(self, refresh: bool = False) -> dict[str, Any]:
        return await self.definitions.get(refresh)

    async def upload_image(self, image: Any, *, name: str | None, subfolder: str,
                           overwrite: bool, kind: str) -> str:
        return await self.uploads.image(image, name=name, subfolder=subfolder,
                                        overwrite=overwrite, kind=kind)

    async def upload_mask(self, mask: Any, original: str, *, name: str | None, subfolder: str,
                          kind: str) -> str:
        return await self.uploads.mask(mask, original, name=name, subfolder=subfolder,
                                       kind=kind)

    # -- what follows a run ----------------------------------------------------------------------

    def _tell_observers(self, job: AsyncJob, staged: Staged, credentials: list[str]) -> None:
        """Give a submitted job to each of :data:`job_observers`; keep what they return."""
        if not job_observers:
            return
        run = SubmittedRun(self._client, job, staged, keyed(staged.api, self.uploads.digests)[1],
                           credentials, self._connection.stats)
        for observer in list(job_observers):
            try:
                pending = observer(run)
            except Exception:
                log.exception("comfy_nb: a job observer failed")
                continue
            if pending is not None:
                entry = (job, asyncio.ensure_future(pending))
                self._observing.append(entry)

                def ended(_: object, entry: tuple[AsyncJob, asyncio.Future[None]] = entry
                          ) -> None:
                    self._observing.remove(entry)

                entry[1].add_done_callback(ended)

    def settled(self, prompt_id: str, result: Result) -> bool:
        """Whether :meth:`settle` has nothing to wait for (callable from any thread)."""
        return self._cache.settled(result) and not any(
            job.id == prompt_id for job, _ in list(self._observing))

    async def settle(self, prompt_id: str, result: Result) -> None:
        """What ``run`` waits for once the job ended: the result's files in the cache entry
        being written (not the entry itself), and the :data:`job_observers`."""
        await self._cache.hand_over(result)
        tasks = [task for job, task in self._observing if job.id == prompt_id]
        if tasks:
            await asyncio.wait(tasks)

    async def flush(self, timeout: float = 10.0) -> None:
        """Let the results being cached finish (up to ``timeout`` seconds)."""
        await self._cache.flush(timeout)

    async def wind_down(self) -> None:
        """Before the client closes: results being cached, node definitions being fetched or
        written, and observers of ended jobs get up to 10 s each to finish."""
        await self._cache.flush()
        await self.definitions.wind_down()
        ending = [task for job, task in self._observing if job.done]
        if ending:
            await asyncio.wait(ending, timeout=10)

    # -- the host of its jobs ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._connection.url

    @property
    def closed(self) -> bool:
        return self._connection.closed

    @property
    def socket_connected(self) -> bool:
        return self._connection.socket_connected

    @property
    def finished_follows_outcome(self) -> bool:
        return self._connection.finished_follows_outcome

    def poll_delay(self, *, completion_hinted: bool, unsure: bool, failures: int) -> float:
        return self._connection.poll_delay(completion_hinted=completion_hinted, unsure=unsure,
                                           failures=failures)

    async def snapshot(self, prompt_id: str) -> JobSnapshot:
        return await self._connection.snapshot(prompt_id)

    async def cancel(self, prompt_id: str) -> bool:
        return await self._connection.cancel(prompt_id)

    def forget(self, job: AsyncJob) -> None:
        self._connection.forget(job)
        self._cache.drop(job.id)  # lost: nothing to cache

    def make_result(self, job: AsyncJob, outputs: dict[str, Any],
                    workflow: dict[str, Any] | None, status: str) -> Result:
        connection = self._connection
        record = provenance.record(
            prompt_id=job.id, server_url=connection.url, dialect=connection.dialect,
            server_version=connection.server_version, parameters=job.parameters,
            resolved_seeds=job.resolved_seeds)
        result = Result(job.id, outputs, source=self.files, workflow=workflow,
                        cache_dir=self._downloads_dir(), status=status, server=connection.url,
                        provenance=record)
        self._cache.ended(job.id, result, status)
        return result

    def _downloads_dir(self) -> Path:
        if self._cache_dir is None:
            self._cache_dir = Path(tempfile.mkdtemp(prefix="comfy-nb-downloads-"))
        return self._cache_dir


def check_sendable(body: dict[str, Any]) -> None:
    """Refuse a request body JSON cannot carry (NaN, a lone surrogate, too deep) with a
    :class:`~comfy_nb.errors.WorkflowError` saying where, before anything is sent."""
    from ..errors import WorkflowError
    from ..workflow._values import problem

    found = problem(body, opaque=(Secret,))  # the transport encodes a Secret as its text
    if found is not None:
        raise WorkflowError(f"the request cannot be sent to the server: {found}")


def revealed(*keys: object) -> list[str]:
    """The values of the keys given (Secrets; others are skipped), for the consumers that must
    find them in text to keep them out of files (the result cache, recordings)."""
    return [key.reveal() for key in keys if isinstance(key, Secret) and key]

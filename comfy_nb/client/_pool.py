"""Pools: several servers behind one client (:class:`AsyncPool`, :class:`Pool`).

A pool is an :class:`~comfy_nb.AsyncClient` made of pool parts (the seam of
:mod:`comfy_nb.client._parts`): a :class:`~comfy_nb.client._pool_server.PoolServer` and
:class:`PoolRuns` that delegate to one ordinary, unchanged AsyncClient per member. So a pool has
the client's whole interface (``run``, ``submit``, ``queue``, ``cancel``, ``upload_image``,
``object_info``...), and the synchronous
:class:`Pool` is a :class:`~comfy_nb.Client` over it, which is what sweeps, ``interact`` and the
magics already drive.

Composition. Each member is a full client of its own server: its own connection (dialect found
by the member, its own websocket, retries, submission that is never sent twice), its own key
(resolved for that member alone, so the Cloud key goes only to Comfy Cloud and a v2 token only
to its origin; see :func:`member_keys`), its own run pipeline, uploads and node-definition copy.
A job is an ordinary :class:`~comfy_nb.job.AsyncJob` hosted by the member that runs it: it knows
only that host (:mod:`comfy_nb.client._host`), so its events, reads, cancel and Result (whose
``server`` names the member) need nothing from the pool. Submitted jobs reach the
:data:`~comfy_nb.client._runs.job_observers` (ledger, recordings) through the member's client.
Nothing of a member's client is reached into: the pool uses its public methods only.

Scheduling. Every member has a capacity: how many jobs it runs at once. ``capacity={url: n}``
says it; else a local ComfyUI 1, Comfy Cloud the limit of the plan ``$COMFY_CLOUD_TIER`` names
(neither Cloud nor a v2 deployment tells its limit), anything else 1, raised to the most of its
jobs seen running at once (:class:`~comfy_nb.client._pool_members.Member`). A job goes to the
compatible member that will start it soonest: the one with the fewest jobs ahead of it per
slot, counting the jobs this pool placed there and not yet ended (read from the jobs themselves
when asked, so a job that ended a moment ago frees its slot at once), and the queue length the
member's websocket last reported (other users' jobs), whichever is larger. A member with a free
slot wins over any queue, so a local server gets a second job only when every member is busy;
ties go to the member named first. The choice is made and counted before the submission is
awaited, so jobs submitted at once (a sweep) spread instead of all seeing the same idle member.

Routing. Before a job is placed, its requirements are read from the workflow (its node classes,
and the model files it names in the inputs a server lists its files for, such as ``ckpt_name``;
see :mod:`comfy_nb.client._pool_routing`) and checked against each member's node definitions
(read once per member and kept by its client). Only members having all of them are candidates;
when none has, :class:`~comfy_nb.errors.NoMemberCanRun` says, member by member,
what it lacks. Uploads then happen inside the chosen member's own submission: a file goes to the
member that runs the job and nowhere else, each content once per member. A workflow the pool
prepares (a sweep prepares its workflow once) is checked by one member and keeps the files
themselves in its file inputs, so each job made from it uploads them to the member it goes to.
A sweep on a pool keeps as many jobs in flight as the members run at once (:attr:`capacity`).

Failover. A pool opens with the members that answer (at least one); the others join when they
do. A member that refuses connections is taken out of the choice for a while
(:data:`~comfy_nb.client._pool_members.REJOIN_AFTER` seconds), then tried again, so a server
that comes back rejoins. A submission refused before it was sent goes to the next member; one
that may have reached the server is never sent again (the member's own submission rules hold).
While :meth:`AsyncPool.run` waits for a job it checks the member every poll interval; when the
member refuses connections (its server stopped, and with it its queue: a stopped ComfyUI keeps
no queue), the run goes once more to another member, and its Result's ``server`` says which. A
member that does not answer but still accepts connections (busy, or cut off) keeps its job: it
may still finish it, so nothing is run twice on a guess; the wait then ends as a single client's
does (the job is lost after ``unreachable_after`` seconds and says so).

Jobs from :meth:`~comfy_nb.AsyncClient.submit` (what sweeps use) move the same way
(:mod:`comfy_nb.client._pool_failover`): a watch per member that holds jobs; when the member
refuses connections, each of its unfinished jobs is submitted once to another member, with its
files uploaded there anew, and the first job ends with the outcome of the one that replaced it
(``result.server`` and ``result.prompt_id`` name the replacement; ``cancel`` of the first id
reaches it; those following the first job's events get the replacement's). A server that stops
gracefully may interrupt its running job before it refuses connections: an interruption nobody
of this pool asked for, followed within a few seconds by the member refusing connections, moves
the job (or the run) too; otherwise the job ends cancelled (see that module).

A job asked to end (through the pool, the job or its member's client) is never moved: a run
learns the id of the job its member submits (:func:`~comfy_nb.client._pool_failover.
noting_jobs`), so a cancellation of that id counts for it too.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._loop import LoopThread
from .._secret import Secret
from ..errors import (
    ComfyError,
    FeatureUnavailable,
    JobCancelled,
    NoMemberCanRun,
    NotFoundError,
    TransportError,
)
from ..job import AsyncJob
from ..result import Result
from ._backoff import RetryPolicy
from ._client import AsyncClient, Client
from ._pool_failover import Failover, gone, noting_jobs
from ._pool_members import (
    KeyArgument,
    Member,
    Members,
    member_keys,
    pool_urls,
    refuses_connections,
)
from ._pool_routing import Requirements, file_values, lacking, requirements, with_files
from ._pool_server import PoolServer
from ._transport import DEFAULT_DOWNLOAD_TIMEOUT

if TYPE_CHECKING:
    from ..cache import ResultCache

__all__ = ["AsyncPool", "Pool", "member_keys", "pool_urls"]

log = logging.getLogger("comfy_nb")
WorkflowLike = Any


class PoolRuns:
    """The :class:`~comfy_nb.client._parts.Runs` part of a pool: each run goes, through the
    public methods of a member's client, to the compatible member that will start it soonest."""

    def __init__(self, members: Members) -> None:
        self._members = members
        self.failover = Failover(members, self._resubmit)
        # each job's workflow and parameters as given (its files, not a member's names for them)
        self._sources: weakref.WeakKeyDictionary[AsyncJob, tuple[Any, dict[str, Any]]] = (
            weakref.WeakKeyDictionary())

    async def candidates(self, workflow: WorkflowLike, wanted: dict[str, Any]) -> list[Member]:
        """The members whose node definitions have what the workflow needs; else
        :class:`NoMemberCanRun` saying what each lacks."""
        needs = requirements(workflow, wanted)
        reachable = [member for member in self._members.all if await member.connect()]
        if not reachable:
            raise TransportError("no server of the pool answers: " + ", ".join(
                member.url for member in self._members.all), never_sent=True)
        if needs == Requirements():
            return reachable
        lacks: dict[str, list[str]] = {}
        able: list[Member] = []
        for member in reachable:
            try:
                definitions = await member.client.object_info()
            except FeatureUnavailable:  # no definitions to check against: the member checks
                able.append(member)
                continue
            missing = lacking(needs, definitions)
            if missing:
                lacks[member.url] = missing
            else:
                able.append(member)
        if not able:
            raise NoMemberCanRun(lacks, [member.url for member in self._members.all
                                         if member not in reachable])
        return able

    async def choose(self, workflow: WorkflowLike, wanted: dict[str, Any],
                     tried: Iterable[Member] = ()) -> Member:
        """The compatible member that will start the run soonest (not yet counted), among
        those not ``tried`` yet that answer (else among those not tried); else the
        :class:`~comfy_nb.errors.TransportError` saying none could take it."""
        tried = list(tried)
        able = [member for member in await self.candidates(workflow, wanted)
                if member not in tried]
        if not able:
            raise TransportError("no server of the pool that can run this job answers: "
                                 + ", ".join(member.url for member in tried), never_sent=True)
        answering = [member for member in able if member.available()]
        return min(answering or able, key=Member.ahead)

    def placed(self, member: Member, job: AsyncJob) -> None:
        """``job`` runs on ``member``: counted there until it ends."""
        self._members.owners[job.id] = member
        member.jobs.add(job)
        if not job.done:
            self.failover.watch(member, job)

    async def _definitions(self, member: Member) -> dict[str, Any] | None:
        try:
            return await member.client.object_info()
        except FeatureUnavailable:
            return None

    async def _resubmit(self, job: AsyncJob, tried: list[Member]) -> tuple[AsyncJob, Member]:
        """``job``'s workflow, as it was sent but with its files themselves in its file inputs
        (uploaded anew), submitted to another member than ``tried``."""
        member = await self.choose(job.workflow, {}, tried)
        workflow = job.workflow or {}
        source = self._sources.get(job)
        if source is not None:
            files = file_values(*source, await self._definitions(member))
            workflow = with_files(workflow, files)
        member.reserved += 1
        try:
            replacement = await member.client.submit(workflow, validate=False, cache=False)
        finally:
            member.reserved -= 1
        replacement.parameters = job.parameters
        replacement.resolved_seeds = job.resolved_seeds
        self.placed(member, replacement)
        return replacement, member

    async def submit(self, workflow: Any, *, prompt_id: str | None,
                     extra_data: dict[str, Any] | None, partner_key: bool | str | Secret,
                     front: bool, validate: bool, overrides: dict[str, Any] | None,
                     cache: bool | None, params: dict[str, Any]) -> AsyncJob:
        tried: list[Member] = []
        while True:
            member = await self.choose(workflow, {**(overrides or {}), **params}, tried)
            member.reserved += 1  # counted before awaiting, so runs submitted at once spread
            try:
                job = await member.client.submit(
                    workflow, prompt_id=prompt_id, extra_data=extra_data,
                    partner_key=partner_key, front=front, validate=validate,
                    overrides=overrides, cache=cache, **params)
            except TransportError as exc:
                member.reserved -= 1
                if not exc.never_sent:  # it may have reached the server: never sent twice
                    raise
                member.refused()
                tried.append(member)
                log.warning("comfy_nb: %s does not answer; the job goes to another server of "
                            "the pool", member.url)
                continue
            except BaseException:
                member.reserved -= 1
                raise
            member.reserved -= 1
            member.answered()
            self._sources[job] = (workflow, {**(overrides or {}), **params})
            self.placed(member, job)
            return job

    async def prepare(self, workflow: Any, overrides: dict[str, Any],
                      validate: bool) -> tuple[dict[str, Any], dict[str, int]]:
        """Prepared and checked by a member that can run it, keeping in its file inputs the
        files themselves instead of that member's names for them: each job submitted with it
        uploads them to the member it goes to (a sweep prepares its workflow once)."""
        member = await self.choose(workflow, overrides)
        prepared = await member.client.prepare(workflow, overrides=overrides, validate=validate)
        files = file_values(workflow, overrides, await self._definitions(member))
        return with_files(prepared.prompt, files), prepared.seeds

    async def cached_result(self, workflow: Any, overrides: dict[str, Any],
                            validate: bool) -> Result | None:
        for member in await self.candidates(workflow, overrides):
            hit = await member.client.cached_result(workflow, overrides=overrides,
                                                    validate=validate)
            if hit is not None:
                return hit
        return None

    async def follow(self, prompt_id: str) -> AsyncJob:
        owner = self._members.owner(prompt_id)
        if owner is None:
            for member in self._members.opened:
                known = await member.client.jobs(100) + await member.client.queue()
                if any(prompt_id in (entry.get("id"), entry.get("prompt_id"))
                       for entry in known):
                    owner = member
                    break
        if owner is None:
            raise NotFoundError(f"no server of the pool knows job {prompt_id}", status=404)
        return await owner.client.job(prompt_id)

    async def object_info(self, refresh: bool = False) -> dict[str, Any]:
        """The node classes any member has (each as the first member having it defines it);
        a member that serves no definitions (Comfy API v2) adds none."""
        merged: dict[str, Any] = {}
        lacking: FeatureUnavailable | None = None
        for member in self._members.opened:
            try:
                definitions = await member.client.object_info(refresh)
            except FeatureUnavailable as exc:
                lacking = exc
                continue
            for name, definition in definitions.items():
                merged.setdefault(name, definition)
        if not merged and lacking is not None:
            raise lacking
        return merged

    async def upload_image(self, image: Any, *, name: str | None, subfolder: str,
                           overwrite: bool, kind: str) -> str:
        """Uploaded to every member, so its name works whichever runs the job (a file passed
        to ``run``/``submit`` itself goes only to the member that runs it)."""
        names = {await member.client.upload_image(image, name=name, subfolder=subfolder,
                                                  overwrite=overwrite, kind=kind)
                 for member in self._members.opened}
        return _one_name(names)

    async def upload_mask(self, mask: Any, original: str, *, name: str | None,
                          subfolder: str, kind: str) -> str:
        names = {await member.client.upload_mask(mask, original, name=name,
                                                 subfolder=subfolder, kind=kind)
                 for member in self._members.opened}
        return _one_name(names)

    def settled(self, prompt_id: str, result: Result) -> bool:
        return True  # a pool's runs are settled by the member's own run

    async def settle(self, prompt_id: str, result: Result) -> None:
        pass

    async def flush(self, timeout: float = 10.0) -> None:
        pass  # each member flushes its own results as it closes

    async def wind_down(self) -> None:
        await self.failover.close()  # each member winds its own runs down as it closes


def _one_name(names: set[str]) -> str:
    if len(names) != 1:
        raise ComfyError(f"the servers of the pool named the upload differently ({sorted(names)})"
                         "; pass the file to run() or submit() instead, which uploads it to the "
                         "server that runs the job")
    return names.pop()


class AsyncPool(AsyncClient):
    """Several servers as one :class:`~comfy_nb.AsyncClient`: ``urls`` are their URLs (or
    ``"cloud"``). ``api_key``: one key for the one ``"cloud"`` member, or ``{url: key}``; the
    other options are :class:`~comfy_nb.AsyncClient`'s, for every member. ``capacity``: how many
    jobs a member runs at once, by URL (1 when not said)."""

    def __init__(
        self,
        urls: Iterable[str],
        *,
        api_key: KeyArgument = None,
        dialect: str | None = None,
        websocket: bool = True,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        poll_interval: float = 1.0,
        cache_dir: str | Path | None = None,
        client_id: str | None = None,
        emulator_options: dict[str, Any] | None = None,
        result_cache: ResultCache | None = None,
        download_timeout: float | None = DEFAULT_DOWNLOAD_TIMEOUT,
        capacity: Mapping[str, int] | None = None,
    ) -> None:
        names = pool_urls(list(urls))
        assert names is not None
        keys = member_keys(names, api_key)
        capacity = dict(capacity or {})
        unknown = [url for url in capacity if url not in names]
        if unknown:
            raise ValueError(f"capacity names servers that are not in the pool: {unknown}")
        if any(not isinstance(slots, int) or slots < 1 for slots in capacity.values()):
            raise ValueError("a member's capacity is a whole number of jobs, at least 1")
        members = [Member(AsyncClient(
            url, api_key=keys[url], dialect=dialect, websocket=websocket, timeout=timeout,
            connect_timeout=connect_timeout, retry=retry, poll_interval=poll_interval,
            cache_dir=cache_dir, client_id=client_id, emulator_options=emulator_options,
            result_cache=result_cache, download_timeout=download_timeout),
            capacity.get(url), index) for index, url in enumerate(names)]
        self._members = Members(members)
        self._pool_runs = PoolRuns(self._members)
        self._compose(PoolServer(self._members), self._pool_runs)

    @property
    def members(self) -> list[AsyncClient]:
        """The client of each member, in the pool's order."""
        return [member.client for member in self._members.all]

    @property
    def results_loop(self) -> LoopThread | None:
        """The loop thread the members' Results read their files through (the synchronous
        :class:`Pool`'s, set on every member)."""
        return self._members.all[0].client.results_loop

    @results_loop.setter
    def results_loop(self, loop: LoopThread | None) -> None:
        for member in self._members.all:
            member.client.results_loop = loop

    @property
    def capacity(self) -> int:
        """How many jobs the members run at once together (a sweep's default concurrency)."""
        return sum(member.capacity for member in self._members.all)

    def lanes(self) -> list[dict[str, Any]]:
        """Each member's ``server``, ``capacity`` and the jobs ``placed`` there not yet ended."""
        return [member.lane() for member in self._members.all]

    def server_of(self, prompt_id: str) -> str | None:
        """The URL of the member a job of this pool was placed on."""
        owner = self._members.owner(prompt_id)
        return owner.url if owner else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    async def __aenter__(self) -> AsyncPool:
        await self.open()
        return self

    async def open(self) -> AsyncPool:
        """Connect every member (each as a single client connects)."""
        await self._server.open()
        return self

    async def run(
        self,
        workflow: WorkflowLike,
        *,
        timeout: float | None = None,
        cache: bool | None = None,
        prompt_id: str | None = None,
        extra_data: dict[str, Any] | None = None,
        partner_key: bool | str | Secret = False,
        front: bool = False,
        validate: bool = True,
        overrides: dict[str, Any] | None = None,
        **params: Any,
    ) -> Result:
        """Run on the compatible member that will start it soonest (see
        :meth:`AsyncClient.run`); the Result's ``server`` says which."""
        runs = self._pool_runs
        wanted = {**(overrides or {}), **params}
        tried: list[Member] = []
        while True:
            member = await runs.choose(workflow, wanted, tried)
            member.reserved += 1  # counted before awaiting, so runs started at once spread
            submitted: list[AsyncJob] = []  # the job the member's run submits, once it has
            with noting_jobs(submitted):
                running = asyncio.ensure_future(member.client.run(
                    workflow, timeout=timeout, cache=cache, prompt_id=prompt_id,
                    extra_data=extra_data, partner_key=partner_key, front=front,
                    validate=validate, overrides=overrides, **params))
            gone_away = asyncio.ensure_future(gone(member))
            try:
                await asyncio.wait({running, gone_away}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:  # the caller gave up: the member's run cancels its job
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                raise
            finally:
                gone_away.cancel()
                member.reserved -= 1
            if running.done():
                try:
                    result = running.result()
                except TransportError as exc:
                    # moved only when nothing listens there: a server that is only slow to
                    # answer (or cut off) may still run the job, and it is never run twice
                    if tried or not exc.never_sent or not await refuses_connections(member.url):
                        raise
                    member.refused()
                    tried.append(member)
                    continue
                except JobCancelled as exc:  # by its server as it stopped, or by someone else
                    if tried or self._asked_to_end(submitted) or not await \
                            runs.failover.stopped_after_interruption(member, exc.prompt_id):
                        raise
                    tried.append(member)
                    log.warning("comfy_nb: %s stopped after interrupting this job; it runs "
                                "again on another server of the pool", member.url)
                    continue
                member.answered()
                self._members.owners[result.prompt_id] = member
                return result
            # the server refuses connections now: it stopped, and its queue with it
            if self._asked_to_end(submitted):  # it ends as on one server: never run twice
                log.info("comfy_nb: %s stopped with a job that was asked to end: it is not run "
                         "elsewhere", member.url)
                return await running
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            member.refused()
            tried.append(member)
            if len(tried) > 1:
                raise TransportError(f"the servers that took this job stopped answering: "
                                     f"{', '.join(m.url for m in tried)}")
            log.warning("comfy_nb: %s stopped answering while it had this job; it runs again "
                        "on another server of the pool", member.url)

    def _asked_to_end(self, jobs: list[AsyncJob]) -> bool:
        """Whether anyone asked to end one of ``jobs``: through the pool, the job, or the
        client of the member that has it."""
        return any(job.cancel_asked or self._members.asked_to_end(job.id) for job in jobs)

    async def describe(self) -> str:
        """Each member, as a single client describes it."""
        parts = [await member.client.describe() for member in self._members.opened]
        return f"A pool of {len(parts)} servers:\n" + "\n".join(parts)


class Pool(Client):
    """The synchronous pool: :class:`AsyncPool`'s methods, blocking, as :class:`~comfy_nb.Client`
    has :class:`~comfy_nb.AsyncClient`'s."""

    def __init__(
        self,
        urls: Iterable[str],
        *,
        api_key: KeyArgument = None,
        dialect: str | None = None,
        websocket: bool = True,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        poll_interval: float = 1.0,
        cache_dir: str | Path | None = None,
        client_id: str | None = None,
        emulator_options: dict[str, Any] | None = None,
        result_cache: ResultCache | None = None,
        download_timeout: float | None = DEFAULT_DOWNLOAD_TIMEOUT,
        capacity: Mapping[str, int] | None = None,
    ) -> None:
        urls = list(urls)
        keys = member_keys(pool_urls(urls) or urls, api_key)  # bad arguments fail before a thread

        def make() -> AsyncClient:
            return AsyncPool(
                urls, api_key=keys, dialect=dialect, websocket=websocket, timeout=timeout,
                connect_timeout=connect_timeout, retry=retry, poll_interval=poll_interval,
                cache_dir=cache_dir, client_id=client_id, emulator_options=emulator_options,
                result_cache=result_cache, download_timeout=download_timeout, capacity=capacity)

        self._start_core(make)

    @property
    def async_client(self) -> AsyncPool:
        assert isinstance(self._async, AsyncPool)
        return self._async

    @property
    def members(self) -> list[AsyncClient]:
        """The client of each member, in the pool's order."""
        return self.async_client.members

    @property
    def capacity(self) -> int:
        """How many jobs the members run at once together (a sweep's default concurrency)."""
        return self.async_client.capacity

    def lanes(self) -> list[dict[str, Any]]:
        """Each member's ``server``, ``capacity`` and the jobs ``placed`` there not yet ended
        (read on the pool's event loop, where its jobs come and go)."""
        async def read() -> list[dict[str, Any]]:
            return self.async_client.lanes()

        return self._run(read())

    def server_of(self, prompt_id: str) -> str | None:
        """The URL of the member a job of this pool was placed on."""
        return self.async_client.server_of(prompt_id)

    def __repr__(self) -> str:
        return f"<Pool {self.url}>"

    def run(self, workflow: WorkflowLike, *, timeout: float | None = None,
            cache: bool | None = None, prompt_id: str | None = None,
            extra_data: dict[str, Any] | None = None, partner_key: bool | str | Secret = False,
            front: bool = False, validate: bool = True,
            overrides: dict[str, Any] | None = None, **params: Any) -> Result:
        """Submit to the member that will start it soonest, and wait (see :meth:`Client.run`;
        interrupting the wait or a timeout cancels the remote job too)."""
        return self._run(self._async.run(
            workflow, timeout=timeout, cache=cache, prompt_id=prompt_id, extra_data=extra_data,
            partner_key=partner_key, front=front, validate=validate, overrides=overrides,
            **params))


"""The API client: :class:`AsyncClient` (the core, coroutines) and :class:`Client` (the same
surface, synchronous, running the core on one background event-loop thread).

One websocket per client carries the events of all its jobs; REST endpoints decide completion.
A job is always followed by the id the server answers the submission with. Submitting never
runs a workflow twice: a prompt is sent again only when the first request is known to have
failed, and when its answer is lost the job is looked for (by the ``prompt_id`` the client
chose on a local ComfyUI, which uses it; by a marker in ``extra_data`` on Comfy Cloud, which is
not known to) -- see :mod:`comfy_nb.client._submission` for each failure and why.
It knows dialects, transport and events; it never imports ipywidgets or touches the notebook.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import hashlib
import json
import logging
import random
import tempfile
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .. import provenance
from .._config import resolve, url_argument
from .._loop import LoopThread
from .._secret import Secret, hide_extra_data, hide_secrets
from ..cache import CacheEntry, ResultCache, cache_key, default_cache, server_identity
from ..cache import settings as cache_settings
from ..errors import AuthenticationError, ComfyError, JobTimeout
from ..events import Cached, Event, Status, Succeeded
from ..job import AsyncJob, Job
from ..result import OutputFile, Result
from ._backoff import Backoff, RetryPolicy
from ._caching import (
    MAX_PUBLISHING,
    UPLOAD_MARK,
    DeferredUploads,
    ResultStore,
    StoringFiles,
    Ticket,
    digest_of,
    keyed,
    swap_placeholder,
)
from ._connecting import identify, key_hint, start_emulator
from ._describe import describe_connection
from ._dialects import DIALECTS, Dialect, JobSnapshot, JobStatus, job_path
from ._events import EventSocket, WebSocketRefused
from ._files import ClientFiles as _Files  # (comfy_nb.replay's clients use it too)
from ._node_definitions import (
    DefinitionStore,
    StoredDefinitions,
    may_be_stale,
    server_key,
    version_of,
)
from ._submission import Submission, post_prompt
from ._transport import DEFAULT_DOWNLOAD_TIMEOUT, Transport
from ._uploads import upload_payload

_UPLOAD_MARK = UPLOAD_MARK  # (comfy_nb.replay matches recorded runs by these placeholders)

if TYPE_CHECKING:
    from ..errors import WorkflowInvalid
    from ..workflow import Workflow
    from ..workflow._models import ModelSwap

log = logging.getLogger("comfy_nb")
#: seconds after which node definitions read from disk are refreshed in the background
DEFINITIONS_REFRESH_AFTER = 600.0
T = TypeVar("T")
WorkflowLike = Any  # dict, JSON text, or a path to a JSON file
POLL_BACKOFF_CAP = 10.0  # seconds: the longest wait between reads of a job whose reads fail
UNCLAIMED_EVENTS = 512  # events kept, while submitting, for jobs whose id is not known yet


@dataclass
class _Staged:
    """A workflow prepared up to, not including, uploads and validation."""

    api: dict[str, Any]
    seeds: dict[str, int]
    uploads: DeferredUploads
    object_info: dict[str, Any] | None


JobObserver = Callable[["AsyncClient", AsyncJob, _Staged, list[str]], "Awaitable[None] | None"]
#: Told of every job any client of this process submits (comfy_nb.replay's recordings register
#: here): ``observer(client, job, staged, credentials)`` on the client's event loop, right after
#: submit (a result-cache hit has already succeeded then). An awaitable it returns runs as a task
#: that ``run`` waits for before returning and ``aclose`` lets finish (up to 10 s) once the job
#: ended. It must not raise; ``credentials`` (the keys sent) are for keeping them out of files.
job_observers: list[JobObserver] = []


class AsyncClient:
    """Talks to one ComfyUI server or Comfy Cloud. Use ``async with AsyncClient(...) as c``.

    Runs are cached (see :mod:`comfy_nb.cache`): ``run(..., cache=None)`` follows
    ``comfy_nb.cache.settings.enabled`` (on unless ``COMFY_NB_CACHE=off``); ``result_cache``
    chooses the cache (default: :func:`comfy_nb.cache.default_cache`). ``timeout`` and
    ``retry`` govern each request; ``connect_timeout`` bounds connecting (finding out what the
    server is, opening the websocket), so a server that never answers fails fast;
    ``download_timeout`` bounds each output download as a whole (None: no bound).

    The key (``api_key``, else ``COMFY_CLOUD_API_KEY`` for Comfy Cloud only, see
    :mod:`comfy_nb._config`) is sent only once the server has said, in the answer to a key-less
    ``GET /api/system_stats``, that it speaks the Cloud API (or with ``dialect="cloud"``); a
    local ComfyUI never receives it, in a header or in the websocket URL."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | Secret | None = None,
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
    ) -> None:
        api_key = Secret.of(api_key, "api_key")  # from here on no frame holds it in the clear
        if dialect not in (None, "local", "cloud"):
            raise ValueError("dialect must be 'local', 'cloud' or None (detect)")
        if not connect_timeout > 0:
            raise ValueError("connect_timeout must be a positive number of seconds")
        target = resolve(url, api_key, dialect)
        self._target = target
        self._offered_key = target.api_key  # may go to the server once it speaks Cloud
        self._api_key: Secret | None = None  # the key being sent (see open)
        self._forced_dialect = dialect
        self._use_websocket = websocket
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._retry = retry or RetryPolicy()
        self._download_timeout = download_timeout
        self.poll_interval = poll_interval
        self.client_id = client_id or uuid.uuid4().hex
        self._emulator_options = emulator_options or {}
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._emulator: Any = None
        self._transport: Transport | None = None
        self._socket: EventSocket | None = None
        self._dialect: Dialect | None = None
        self._jobs: dict[str, AsyncJob] = {}
        self._submitting = 0  # submissions waiting for the server's answer
        self._unclaimed: collections.deque[Event] = collections.deque(maxlen=UNCLAIMED_EVENTS)
        self._object_info: dict[str, Any] | None = None
        self._definitions_confirmed = False  # _object_info came from the server, not a copy
        self._definitions_fetched = 0.0  # time.monotonic() when the server gave them
        self._background: set[asyncio.Future[Any]] = set()  # node definitions fetched/written
        self._opened = False
        self._closed = False
        self._open_lock: asyncio.Lock | None = None
        self._files = _Files(self, None)
        self._uploaded: dict[str, str] = {}  # sha256 of uploaded bytes -> server-side name
        self._known_files: set[str] = set()  # names this client uploaded
        self._upload_digests: dict[str, str] = {}  # name from upload_image -> sha256 of bytes
        self._result_cache = result_cache
        self._stats: dict[str, Any] | None = None  # system_stats read when connecting
        self._identity: str | None = None  # the server as the result cache names it
        self._tickets: dict[str, Ticket] = {}  # prompt id -> where its result is cached
        self._storing: dict[str, asyncio.Task[CacheEntry | None]] = {}  # key -> store running
        self._observing: list[tuple[AsyncJob, asyncio.Future[None]]] = []  # job_observers' tasks
        self._told_swaps: set[tuple[str, ModelSwap]] = set()  # bundled model files replaced
        self.queue_remaining: int | None = None
        self.server_version: str | None = None  # from system_stats when the dialect is detected

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._transport is None:
            return self._target.url or "(emulator, not started)"
        return self._transport.base_url

    @property
    def dialect(self) -> str:
        return self._dialect.name if self._dialect else (self._forced_dialect or "unknown")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.dialect} {self.url}>"

    async def __aenter__(self) -> AsyncClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def open(self) -> AsyncClient:
        """Connect: start the emulator if needed, detect the dialect, open the websocket."""
        self._check_open()
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            self._check_open()
            if self._opened:
                return self
            url = self._target.url
            if url is None:
                self._emulator = await asyncio.to_thread(
                    start_emulator, self._target, self._forced_dialect, self._emulator_options)
                url = str(self._emulator.url)
                if self._emulator.api_key:  # its own key, for itself
                    self._offered_key = Secret(self._emulator.api_key)
            # no key until the server has shown that it speaks the Cloud API
            self._transport = Transport(url, timeout=self._timeout, retry=self._retry,
                                        download_timeout=self._download_timeout)
            try:
                self._dialect = DIALECTS[self._forced_dialect or await self._detect_dialect()]
                self._key_for(self._dialect.name)
                if self._use_websocket:
                    await self._open_socket()
            except BaseException:
                await self._release()
                raise
            self._opened = True
        return self

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this client is closed; create a new one")

    async def _detect_dialect(self) -> str:
        """``"cloud"`` or ``"local"``, asked without a key (see :func:`identify`)."""
        assert self._transport is not None
        found = await identify(self._transport, self._offered_key, self._target,
                               self._connect_timeout)
        self._stats = found.stats
        self.server_version = found.version
        return found.dialect

    def _key_for(self, dialect: str) -> None:
        """Send the offered key from now on if the server speaks the Cloud API; never to a
        local ComfyUI (not even one that asked for a key while connecting)."""
        assert self._transport is not None
        self._api_key = self._offered_key if dialect == "cloud" else None
        self._transport.api_key = self._api_key
        if dialect == "cloud" and self._api_key is None and self._target.key_withheld:
            log.warning("comfy_nb: %s speaks the Comfy Cloud API, but %s", self.url,
                        key_hint(self._target, self.url))

    async def _open_socket(self) -> None:
        assert self._dialect is not None and self._transport is not None
        # the URL carries the key on Cloud: made where it is used, never kept in a local
        self._socket = EventSocket(
            self._dialect.ws_url(self._transport.base_url, self.client_id,
                                 self._api_key.reveal() if self._api_key else None),
            on_event=self._route, on_reconnect=self._resync, open_timeout=self._connect_timeout)
        try:
            await self._socket.start()
        except ComfyError as exc:
            await self._socket.close()
            self._socket = None
            if isinstance(exc, WebSocketRefused) and exc.status == 401:
                # the key is wrong or missing: every later request would fail the same way
                if self._api_key is None:
                    raise AuthenticationError("the server wants an API key (401). "
                                              + key_hint(self._target, self.url),
                                              status=401) from None
                raise AuthenticationError(
                    "the server refused the API key (401): it is wrong. Pass api_key=... or "
                    "set COMFY_CLOUD_API_KEY.", status=401) from None
            log.warning("comfy_nb: websocket unavailable (%s); following jobs by polling", exc)

    async def aclose(self) -> None:
        """Close the websocket and connections (and stop an embedded emulator). The client
        refuses every later call. Results still being cached get up to 10 s to finish."""
        if not self._closed:
            await self._flush_stores()
            if self._background:
                await asyncio.wait(list(self._background), timeout=10)
        ending = [task for job, task in self._observing if job.done]
        if ending and not self._closed:
            await asyncio.wait(ending, timeout=10)
        self._closed = True
        await self._release()

    async def _release(self) -> None:
        for job in list(self._jobs.values()):
            job.stop_watching()
        if self._socket is not None:
            await self._socket.close()
            self._socket = None
        if self._transport is not None:
            await self._transport.aclose()
        if self._emulator is not None:
            await asyncio.to_thread(self._emulator.stop)
            self._emulator = None
        self._opened = False

    async def _ready(self) -> Transport:
        self._check_open()
        if not self._opened:
            await self.open()
        assert self._transport is not None
        return self._transport

    # -- events ------------------------------------------------------------------------------

    def _route(self, event: Event) -> None:
        if isinstance(event, Status):
            self.queue_remaining = event.queue_remaining
            return
        job = self._jobs.get(event.prompt_id or "")
        if job is not None:
            job.feed(event)
            if job.done:
                self._jobs.pop(job.id, None)
        elif self._submitting and event.prompt_id:  # maybe of a job whose answer is on its way
            self._unclaimed.append(event)

    async def _resync(self) -> None:
        """After a reconnect, events may have been lost: re-read every live job."""
        for job in list(self._jobs.values()):
            job.wake()

    def _poll_interval(self, completion_hinted: bool, unsure: bool = False,
                       failures: int = 0) -> float:
        """Seconds until a job is read again: soon after a completion hint; rarely while the
        websocket reports progress; at ``poll_interval`` without a websocket, or while the
        server does not know the job (the websocket cannot tell that it was lost). After
        ``failures`` failed reads in a row, exponentially longer (with jitter), up to
        :data:`POLL_BACKOFF_CAP`."""
        if completion_hinted:
            interval = 0.1
        elif not unsure and self._socket is not None and self._socket.connected:
            interval = max(self.poll_interval, 5.0)
        else:
            interval = self.poll_interval * random.uniform(0.9, 1.1)
        if failures > 0:
            backoff = Backoff(interval, max(interval, POLL_BACKOFF_CAP), (0.8, 1.0))
            interval = backoff.delay(failures)
        return interval

    # -- jobs --------------------------------------------------------------------------------

    async def submit(
        self,
        workflow: WorkflowLike,
        *,
        prompt_id: str | None = None,
        extra_data: dict[str, Any] | None = None,
        partner_key: bool | str | Secret = False,
        front: bool = False,
        validate: bool = True,
        overrides: dict[str, Any] | None = None,
        cache: bool | None = False,
        **params: Any,
    ) -> AsyncJob:
        """Queue a workflow and return its job at once.

        ``workflow`` is a :class:`~comfy_nb.workflow.Workflow`, a dict, JSON text or a path
        (editor-format workflows are converted with the server's node definitions). Parameters
        are set by name on a copy (``seed=42``, ``overrides={"KSampler.cfg": 7}``); Python
        objects given for file inputs (PIL images, arrays, bytes, paths, URLs) are uploaded
        first. With ``validate`` (the default) the workflow is checked against the server's
        node definitions and every problem is raised at once as ``WorkflowInvalid``.
        ``partner_key=True`` sends the API key this client sends to the server (none to a local
        ComfyUI) as ``extra_data.api_key_comfy_org`` for partner (API) nodes; a string (or a
        :class:`~comfy_nb._secret.Secret`) sends that key instead. ``prompt_id`` asks for that
        job id: a local ComfyUI uses it; Comfy Cloud is not known to, and the job always has the
        id the server answers.

        ``cache=True`` (or None: the global setting) uses the result cache: an identical run
        that was cached gives a job that has already succeeded (its result has ``from_cache``;
        nothing is uploaded or sent), and a new run's result is cached when it succeeds. The
        default here is False: a live job on the server."""
        if isinstance(partner_key, (str, Secret)):  # no frame below holds it in the clear
            partner_key = Secret.of(partner_key, "partner_key") or False
        if extra_data:
            extra_data = hide_extra_data(extra_data)
        http = await self._ready()
        assert self._dialect is not None
        wanted = {**(overrides or {}), **params}
        staged = await self._stage(workflow, wanted, validate)  # uploads rename in wanted
        ticket = await self._ticket(staged, cache)
        if ticket is not None:
            hit = await self._lookup(ticket, staged)
            if hit is not None:
                job = self._finished_job(hit, staged, wanted)
                self._tell_observers(job, staged, _revealed(self._api_key))
                return job
        if prompt_id is not None:
            job_path(prompt_id)  # refuses an id that could address another endpoint
        api = await self._complete(staged, wanted, validate)
        extra = dict(extra_data or {})
        if partner_key:
            key = partner_key if isinstance(partner_key, Secret) else self._api_key
            if not key:
                raise ValueError("partner_key=True sends the API key this client sends to the "
                                 "server, and it sends none to this one: pass the key, "
                                 "partner_key=...")
            extra["api_key_comfy_org"] = key
        credentials = _revealed(self._api_key, extra.get("api_key_comfy_org"))
        submission = Submission.prepare(self._dialect, api, self.client_id, extra, front,
                                        prompt_id)
        _check_sendable(submission.body)
        answer = await self._post(http, submission)
        job = AsyncJob(self, answer["prompt_id"], api)
        job.resolved_seeds = staged.seeds
        job.parameters = wanted
        self._follow(job)
        if ticket is not None:
            ticket.workflow = api
            ticket.credentials = credentials
            self._tickets[job.id] = ticket
        job.announce_queued(answer.get("number"))
        job.start_watching()
        self._tell_observers(job, staged, credentials)
        return job

    async def _post(self, http: Transport, submission: Submission) -> dict[str, Any]:
        """Post a submission (see :func:`~comfy_nb.client._submission.post_prompt`); events
        that arrive meanwhile for jobs this client does not follow are kept for
        :meth:`_follow`."""
        assert self._dialect is not None
        self._submitting += 1
        try:
            answer = await post_prompt(http, self._dialect, submission, self._retry,
                                       known_jobs=lambda: set(self._jobs))
        except BaseException:
            self._submitting -= 1
            if not self._submitting:
                self._unclaimed.clear()
            raise
        self._submitting -= 1
        return answer

    def _follow(self, job: AsyncJob) -> None:
        """Route the job's events to it, starting with those that came before its id did."""
        self._jobs[job.id] = job
        for event in [e for e in self._unclaimed if e.prompt_id == job.id]:
            job.feed(event)
        if not self._submitting:
            self._unclaimed.clear()

    def _tell_observers(self, job: AsyncJob, staged: _Staged, credentials: list[str]) -> None:
        """Give a submitted job to each of :data:`job_observers`; keep what they return."""
        for observer in list(job_observers):
            try:
                pending = observer(self, job, staged, credentials)
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

    async def _observed(self, prompt_id: str) -> None:
        """Wait until the :data:`job_observers` are done with a job."""
        tasks = [task for job, task in self._observing if job.id == prompt_id]
        if tasks:
            await asyncio.wait(tasks)

    async def _prepare(self, workflow: WorkflowLike, overrides: dict[str, Any],
                       validate: bool) -> tuple[dict[str, Any], dict[str, int]]:
        """The API-format dict to submit: converted, overridden, uploaded and checked; plus the
        seeds ``"random"`` resolved to. The caller's workflow is never changed."""
        staged = await self._stage(workflow, overrides, validate)
        return await self._complete(staged, overrides, validate), staged.seeds

    async def _stage(self, workflow: WorkflowLike, overrides: dict[str, Any],
                     validate: bool) -> _Staged:
        """:meth:`_prepare` up to the uploads: converted and overridden, ``"random"`` seeds
        resolved, each file to upload read and standing as a placeholder of its content (what
        the result cache keys on). Placeholders also replace upload values in ``overrides``."""
        from ..workflow import Workflow, WorkflowError
        from ..workflow._inputs import upload_inputs, wants_upload

        deferred = DeferredUploads()
        if isinstance(workflow, Workflow):
            loaded = workflow.copy()
        else:
            source = workflow
            if isinstance(source, dict):  # objects in it cannot go through Workflow.load
                source = await upload_inputs(source, None, deferred, cache=deferred.names)
            loaded = Workflow.load(source)
        # non-JSON values (images, arrays, bytes, paths) are uploaded before set(); strings
        # (file names, URLs, local paths) go through set() and the upload pass below
        uploads = {k: v for k, v in overrides.items()
                   if not isinstance(v, str) and wants_upload(v, [])}
        object_info: dict[str, Any] | None = None
        if loaded.format == "ui" or overrides or validate or loaded.bundled:
            # a bundled workflow takes the server's own model files: never from a copy
            object_info = await self.object_info(
                refresh=bool(loaded.bundled) and not self._definitions_confirmed)
        unconfirmed = object_info is not None and not self._definitions_confirmed
        try:
            return await self._stage_with(loaded.copy() if unconfirmed else loaded, overrides,
                                          uploads, deferred, object_info)
        except WorkflowError:
            if not unconfirmed:
                raise
            # a copy of the node definitions read from disk may not know what this names
            fresh = await self.object_info(refresh=True)
            return await self._stage_with(loaded, overrides, uploads, deferred, fresh)

    async def _stage_with(self, loaded: Workflow, overrides: dict[str, Any],
                          uploads: dict[str, Any], deferred: DeferredUploads,
                          object_info: dict[str, Any] | None) -> _Staged:
        """The rest of :meth:`_stage`, once the workflow is loaded and the node definitions
        known."""
        from ..workflow import Workflow
        from ..workflow._inputs import upload_inputs, upload_value

        if loaded.bundled and object_info is not None:  # before overrides: those are the user's
            self._tell_swaps(loaded.bundled, loaded.fit_models(object_info))
        if loaded.format == "ui":
            loaded = Workflow.load(loaded.to_api(object_info), object_info=object_info)
        for name, value in uploads.items():  # upload first, then set the server-side name
            overrides[name] = await upload_value(value, "image", f"the value of {name!r}",
                                                 deferred, cache=deferred.names)
        if overrides:
            loaded = Workflow.load(loaded, object_info=object_info).set(overrides)
        api = loaded.to_api(object_info)
        api = await upload_inputs(api, object_info, deferred, cache=deferred.names)
        return _Staged(api, dict(loaded.resolved_seeds), deferred, object_info)

    def _tell_swaps(self, workflow: str, swaps: list[ModelSwap]) -> None:
        """Say, once per client, which model files of a bundled workflow were swapped."""
        for swap in swaps:
            if (workflow, swap) not in self._told_swaps:
                self._told_swaps.add((workflow, swap))
                log.warning("comfy_nb: bundled workflow %s: %s (--set %s=NAME picks another)",
                            workflow, swap, swap.input)

    async def _complete(self, staged: _Staged, overrides: dict[str, Any],
                        validate: bool) -> dict[str, Any]:
        """Upload the staged files (identical bytes once per client), put their server-side
        names into the workflow and ``overrides``, and validate: the dict to submit."""
        from ..errors import WorkflowInvalid
        from ..workflow._check import validate_workflow

        names: dict[str, str] = {}
        for placeholder, (data, filename) in staged.uploads.pending.items():
            digest = digest_of(placeholder)
            if digest not in self._uploaded:
                self._uploaded[digest] = await self._upload_value(data, filename, digest)
            names[placeholder] = self._uploaded[digest]
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
            known = tuple(self._known_files)
            try:
                validate_workflow(api, staged.object_info, known_files=known)
            except WorkflowInvalid as problems:
                fresh = await self._checked_definitions(problems, staged.object_info)
                if fresh is None:
                    raise
                staged.object_info = fresh
                validate_workflow(api, fresh, known_files=known)
        return api

    # -- the result cache ----------------------------------------------------------------------

    async def _server_identity(self) -> str:
        if self._identity is None:
            stats = self._stats
            if stats is None:  # the dialect was given, so the server was not asked yet
                try:
                    stats = await self.system_stats()
                except ComfyError:
                    stats = {}
            self._identity = server_identity(self.url, self.dialect, stats)
        return self._identity

    def _keyed(self, api: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """``api`` as the result cache keys it, and the digests of its uploaded files (see
        :func:`~comfy_nb.client._caching.keyed`)."""
        return keyed(api, self._upload_digests)

    async def _ticket(self, staged: _Staged, cache: bool | None) -> Ticket | None:
        """Where this run's result is looked up and stored; None when not caching."""
        if not (cache_settings.enabled if cache is None else cache):
            return None
        store = self._result_cache if self._result_cache is not None else default_cache()
        server = await self._server_identity()
        keyed, inputs = self._keyed(staged.api)
        try:
            key = cache_key(server, keyed, inputs)
        except (TypeError, ValueError):  # values JSON cannot hold: the server would refuse too
            return None
        return Ticket(store, key, server, inputs)

    async def _lookup(self, ticket: Ticket, staged: _Staged) -> Result | None:
        """The cached Result for the ticket, after any store of the same key in progress."""
        storing = self._storing.get(ticket.key)
        if storing is not None:
            await asyncio.wait([storing])
        if not ticket.cache.may_hold(ticket.key):  # the common miss, without a thread
            return None
        return await asyncio.to_thread(ticket.cache.get, ticket.key, fallback=self._files,
                                       server=self.url, workflow=staged.api)

    def _finished_job(self, hit: Result, staged: _Staged, wanted: dict[str, Any]) -> AsyncJob:
        """A job that already succeeded with a cached result; its events say every node was
        cached, as ComfyUI reports a prompt it need not execute."""
        job = AsyncJob(self, hit.prompt_id, hit.workflow)
        job.resolved_seeds = staged.seeds
        job.parameters = {name: ("sha256:" + digest_of(value)
                                 if isinstance(value, str) and value.startswith(UPLOAD_MARK)
                                 else value)
                          for name, value in wanted.items()}
        job.feed(Cached(job.id, tuple(hit.workflow or ())))
        job.feed(Succeeded(job.id))
        job._finish(JobSnapshot(JobStatus.SUCCEEDED, outputs=hit.outputs, workflow=hit.workflow))
        job._result = hit
        return job

    def _start_store(self, ticket: Ticket, result: Result) -> None:
        """Cache a succeeded job's result in the background: its files are downloaded once,
        into the new entry, and read from there (from the server, through the download cache,
        if they could not be cached)."""
        try:
            writer = ticket.cache.writer(ticket.key)
        except OSError as exc:
            log.warning("comfy_nb: the result cache at %s cannot be written (%s); results are "
                        "not cached", ticket.cache.directory, exc)
            return
        store = ResultStore(ticket, writer, result)
        result.source = StoringFiles(self._files, store, self._files.loop)
        downloads, result.cache_dir = result.cache_dir, None  # the entry serves the files
        task = asyncio.ensure_future(store.run(self._download_to))
        self._storing[ticket.key] = task

        def ended(task: asyncio.Task[CacheEntry | None]) -> None:
            if self._storing.get(ticket.key) is task:
                del self._storing[ticket.key]
            failed = task.cancelled() or task.exception() is not None
            if failed or task.result() is None:
                result.cache_dir = downloads

        task.add_done_callback(ended)

    async def _download_to(self, file: OutputFile, path: Path) -> None:
        await self.download(file, to=path)

    async def _handed_over(self, result: Result) -> None:
        """Wait until a result being cached has its files in the new entry (publishing the
        entry goes on in the background), and, while this client has more than
        :data:`MAX_PUBLISHING` results being stored, for the oldest ones."""
        if isinstance(result.source, StoringFiles):
            await asyncio.wrap_future(result.source.store.downloaded)
        while len(self._storing) > MAX_PUBLISHING:
            await asyncio.wait([next(iter(self._storing.values()))])

    async def _flush_stores(self, timeout: float = 10.0) -> None:
        """Let the results being cached finish (up to ``timeout`` seconds); the late ones
        are given up."""
        if self._storing:
            _, late = await asyncio.wait(list(self._storing.values()), timeout=timeout)
            for task in late:
                task.cancel()

    async def _upload_value(self, value: Any, name: str | None, digest: str) -> str:
        """Upload a file of a run whose sha256 (``digest``) is known already."""
        return await self._upload("/api/upload/image", value, name, "", False, "input",
                                  digest=digest)

    async def run(self, workflow: WorkflowLike, *, timeout: float | None = None,
                  cache: bool | None = None, **submit_options: Any) -> Result:
        """Submit and wait: the job's :class:`Result`. On timeout or cancellation of the
        waiting coroutine the remote job is cancelled too, so nothing is left running.

        ``cache``: None follows ``comfy_nb.cache.settings.enabled`` (on by default); True or
        False decide for this call. With the cache, an identical earlier run's result comes back
        at once (``result.from_cache``); a new result's files are downloaded into its cache
        entry before this returns, and the entry is written in the background (any reader of
        the cache in this process, an identical run included, waits for it)."""
        submit_options = hide_secrets(submit_options)
        job = await self.submit(workflow, cache=cache, **submit_options)
        try:
            result = await job.wait(timeout)
        except JobTimeout as exc:
            cancelled = await asyncio.shield(self._cancel_quietly(job.id))
            raise JobTimeout(job.id, exc.timeout, cancelled=cancelled) from None
        except (asyncio.CancelledError, KeyboardInterrupt, TimeoutError):
            await asyncio.shield(self._cancel_quietly(job.id))
            raise
        await self._after_run(job.id, result)
        return result

    def _settled(self, prompt_id: str, result: Result) -> bool:
        """Whether :meth:`_after_run` has nothing to wait for (callable from any thread)."""
        if isinstance(result.source, StoringFiles) and not result.source.store.downloaded.done():
            return False
        return (len(self._storing) <= MAX_PUBLISHING
                and not any(job.id == prompt_id for job, _ in list(self._observing)))

    async def _after_run(self, prompt_id: str, result: Result) -> None:
        """What ``run`` waits for once the job ended: the result's files in the cache entry
        being written (not the entry itself), and the :data:`job_observers`."""
        await self._handed_over(result)
        await self._observed(prompt_id)

    async def cached_result(self, workflow: WorkflowLike, *,
                            overrides: dict[str, Any] | None = None, validate: bool = True,
                            **params: Any) -> Result | None:
        """The cached Result of this run (same arguments as :meth:`submit`), or None. Nothing
        is uploaded or submitted; the cache is used even if switched off globally."""
        await self._ready()
        staged = await self._stage(workflow, {**(overrides or {}), **params}, validate)
        ticket = await self._ticket(staged, True)
        return None if ticket is None else await self._lookup(ticket, staged)

    async def _cancel_quietly(self, prompt_id: str) -> bool:
        """Cancel a job, logging (not raising) a failure; whether the server took the cancel."""
        try:
            await self.cancel(prompt_id)
        except ComfyError as exc:
            log.warning("comfy_nb: could not cancel job %s: %s", prompt_id, exc)
            return False
        return True

    async def job(self, prompt_id: str) -> AsyncJob:
        """Follow a job submitted earlier (by this or another client)."""
        job_path(prompt_id)  # refuses an id that could address another endpoint
        await self._ready()
        job = self._jobs.get(prompt_id)
        if job is None:
            job = AsyncJob(self, prompt_id, None)
            self._jobs[prompt_id] = job
            await job.refresh()
            job.start_watching()
        return job

    async def _snapshot(self, prompt_id: str) -> JobSnapshot:
        http = await self._ready()
        assert self._dialect is not None
        return await self._dialect.snapshot(http, prompt_id)

    def _result(self, job: AsyncJob, outputs: dict[str, Any], workflow: dict[str, Any] | None,
                status: str) -> Result:
        record = provenance.record(
            prompt_id=job.id, server_url=self.url, dialect=self.dialect,
            server_version=self.server_version, parameters=job.parameters,
            resolved_seeds=job.resolved_seeds)
        result = Result(job.id, outputs, source=self._files, workflow=workflow,
                        cache_dir=self._downloads_dir(), status=status, server=self.url,
                        provenance=record)
        ticket = self._tickets.pop(job.id, None)
        if ticket is not None and status == JobStatus.SUCCEEDED.value:
            self._start_store(ticket, result)
        return result

    def _downloads_dir(self) -> Path:
        if self._cache_dir is None:
            self._cache_dir = Path(tempfile.mkdtemp(prefix="comfy-nb-downloads-"))
        return self._cache_dir

    async def jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        """Recent jobs as ``{"id", "status"}`` dicts, newest first."""
        http = await self._ready()
        assert self._dialect is not None
        return await self._dialect.recent_jobs(http, limit)

    async def queue(self) -> list[dict[str, Any]]:
        """The queue: running jobs (position 0) then pending ones in the order they will run."""
        http = await self._ready()
        assert self._dialect is not None
        return [{"id": e.prompt_id, "position": e.position, "running": e.running}
                for e in await self._dialect.queue(http)]

    async def cancel(self, prompt_id: str) -> bool:
        """Cancel one job: removed if pending, interrupted if running. True if it was live."""
        job_path(prompt_id)  # refuses an id that could address another endpoint
        http = await self._ready()
        assert self._dialect is not None
        cancelled = await self._dialect.cancel(http, prompt_id)
        if cancelled:
            self._removed_from_queue([prompt_id])
        return cancelled

    async def cancel_many(self, prompt_ids: list[str]) -> list[str]:
        """Cancel several jobs so that none of them starts meanwhile (on a local server the
        pending ones are removed before the running ones are interrupted); the ids of those
        that were live."""
        http = await self._ready()
        assert self._dialect is not None
        cancelled = await self._dialect.cancel_many(http, list(prompt_ids))
        self._removed_from_queue(cancelled)
        return cancelled

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt the running job (or the given one; on Cloud: every running job)."""
        http = await self._ready()
        assert self._dialect is not None
        await self._dialect.interrupt(http, prompt_id)

    async def clear_queue(self) -> None:
        """Remove every pending job (running ones carry on)."""
        http = await self._ready()
        assert self._dialect is not None
        await self._dialect.clear_queue(http)
        self._removed_from_queue([job.id for job in self._jobs.values()
                                  if job.status is JobStatus.QUEUED])

    async def delete(self, prompt_ids: list[str]) -> None:
        """Remove pending jobs from the queue."""
        http = await self._ready()
        assert self._dialect is not None
        await self._dialect.delete_pending(http, prompt_ids)
        self._removed_from_queue(prompt_ids)

    def _removed_from_queue(self, prompt_ids: list[str]) -> None:
        """Jobs this client deleted from the queue end as cancelled (a local server forgets
        them entirely, which would otherwise look like a lost job)."""
        for prompt_id in prompt_ids:
            job = self._jobs.get(prompt_id)
            if job is not None:
                job.removed_from_queue()

    def _forget(self, job: AsyncJob) -> None:
        """Stop routing events to a job that ended (the job calls this)."""
        if self._jobs.get(job.id) is job:
            del self._jobs[job.id]
        self._tickets.pop(job.id, None)  # lost: nothing to cache

    # -- files -------------------------------------------------------------------------------

    async def upload_image(self, image: Any, *, name: str | None = None, subfolder: str = "",
                           overwrite: bool = False, kind: str = "input") -> str:
        """Upload a path, bytes, PIL image or numpy array; returns the name to put into a
        LoadImage input."""
        return await self._upload("/api/upload/image", image, name, subfolder, overwrite, kind,
                                  digest="")

    async def upload_mask(self, mask: Any, original: str, *, name: str | None = None,
                          subfolder: str = "", kind: str = "input") -> str:
        """Upload a mask for an uploaded image (its name as returned by upload_image)."""
        folder, _, filename = original.rpartition("/")
        ref = json.dumps({"filename": filename, "subfolder": folder, "type": kind})
        return await self._upload("/api/upload/mask", mask, name, subfolder, False, kind,
                                  {"original_ref": ref})

    async def _upload(self, path: str, image: Any, name: str | None, subfolder: str,
                      overwrite: bool, kind: str, extra: dict[str, str] | None = None,
                      digest: str | None = None) -> str:
        """Upload; with ``digest`` (the sha256 of the bytes, or "" to compute it) the result
        cache keys the name returned by that content from now on."""
        http = await self._ready()
        filename, data, content_type = await asyncio.to_thread(upload_payload, image, name)
        fields = {"type": kind, "subfolder": subfolder, "overwrite": "true" if overwrite else "",
                  **(extra or {})}
        response = await http.request("POST", path, files={"image": (filename, data,
                                                                      content_type)},
                                      data=fields, what="uploading " + filename)
        answer = response.json()
        stored = str(answer.get("name", filename))
        folder = str(answer.get("subfolder") or "")
        name = f"{folder}/{stored}" if folder and self.dialect == "local" else stored
        self._known_files.add(name)
        if digest is not None:  # the result cache keys this name by the content it now has
            self._upload_digests[name] = digest or hashlib.sha256(data).hexdigest()
        return name

    async def download(self, file: OutputFile | dict[str, str],
                       to: str | Path | None = None) -> bytes | Path:
        """An output file's bytes, or the path it was written to (atomically, streamed in
        chunks). The whole download, retries included, must end within the client's
        ``download_timeout``, else :class:`DownloadTimeout` (and nothing is left at ``to``)."""
        http = await self._ready()
        params = file.params() if isinstance(file, OutputFile) else dict(file)
        return await http.download("/api/view", params, to=Path(to) if to else None)

    # -- server ------------------------------------------------------------------------------

    async def object_info(self, refresh: bool = False) -> dict[str, Any]:
        """The server's node definitions, read once per client. With the cache on
        (:mod:`comfy_nb.cache`), a new client of the same server (a kernel restarted) starts
        from the copy on disk (:mod:`comfy_nb.client._node_definitions`), refreshed in the
        background when older than :data:`DEFINITIONS_REFRESH_AFTER` seconds; a workflow
        problem that such a copy may be wrong about (an unknown node class, a value not in a
        list) is checked again against the server's own before it is reported. ``refresh``
        asks the server now."""
        http = await self._ready()
        if self._object_info is None and not refresh:
            stored = await self._stored_definitions()
            if stored is not None:
                self._object_info = stored.object_info
                if stored.age > DEFINITIONS_REFRESH_AFTER:
                    self._in_background(self._fetch_definitions(http))
                return self._object_info
        if self._object_info is None or refresh:
            return await self._fetch_definitions(http)
        return self._object_info

    async def _fetch_definitions(self, http: Transport) -> dict[str, Any]:
        info: dict[str, Any] = (await http.request("GET", "/api/object_info",
                                                   what="reading node definitions")).json()
        self._object_info = info
        self._definitions_confirmed = True
        self._definitions_fetched = time.monotonic()
        store = self._definition_store()
        key = await self._definitions_key() if store is not None else None
        if store is not None and key is not None:
            self._in_background(asyncio.to_thread(store.save, key, info,
                                                  credentials=_revealed(self._api_key)))
        return info

    async def _stored_definitions(self) -> StoredDefinitions | None:
        store = self._definition_store()
        key = await self._definitions_key() if store is not None else None
        if store is None or key is None:
            return None
        return await asyncio.to_thread(store.load, key)

    def _definition_store(self) -> DefinitionStore | None:
        """Where node definitions are kept on disk: beside the result cache; None when the
        cache is switched off."""
        if not cache_settings.enabled:
            return None
        cache = self._result_cache if self._result_cache is not None else default_cache()
        return DefinitionStore.beside(cache.directory)

    async def _definitions_key(self) -> str | None:
        """The key of this server's node definitions; None when its version is unknown."""
        if self.server_version is None and self._stats is None:
            with contextlib.suppress(ComfyError):
                stats = await self.system_stats()
                self._stats = stats if isinstance(stats, dict) else None
                self.server_version = version_of(stats)
        if self.server_version is None:
            return None
        return server_key(self.url, self.dialect, self.server_version)

    async def _checked_definitions(self, problems: WorkflowInvalid,
                                   used: dict[str, Any]) -> dict[str, Any] | None:
        """The server's node definitions, asked again when ``used`` may be why ``problems``
        were found (see :func:`may_be_stale`); else None."""
        confirmed_for = (time.monotonic() - self._definitions_fetched
                         if self._definitions_confirmed else None)
        if not may_be_stale(problems.problems, used, confirmed_for):
            return None
        return await self.object_info(refresh=True)

    def _in_background(self, work: Awaitable[Any]) -> None:
        """Run ``work`` (node definitions fetched or written) without waiting for it; a
        failure is logged. ``aclose`` lets it finish."""
        task = asyncio.ensure_future(work)
        self._background.add(task)

        def ended(task: asyncio.Future[Any]) -> None:
            self._background.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.debug("comfy_nb: background work failed: %s", task.exception())

        task.add_done_callback(ended)

    async def models(self, folder: str | None = "checkpoints") -> list[str]:
        """The model files the server has in ``folder`` (``"checkpoints"``, ``"loras"``,
        ``"vae"``…; empty when it has none), or its model folders with ``folder=None``."""
        http = await self._ready()
        assert self._dialect is not None
        return await self._dialect.models(http, folder)

    async def system_stats(self) -> dict[str, Any]:
        http = await self._ready()
        stats: dict[str, Any] = (await http.request("GET", "/api/system_stats",
                                                    what="reading system stats")).json()
        return stats

    async def describe(self) -> str:
        """A few lines for people: the server, its dialect and version, and the warnings that
        go with it (the emulator's stand-in pixels, a replay's date, a public Binder session).
        Reads ``/system_stats`` once if connecting did not."""
        stats = self._stats
        if stats is None:
            try:
                stats = await self.system_stats()
            except ComfyError as exc:
                return describe_connection(self.url, self.dialect, {"error": str(exc)})
            self._stats = stats if isinstance(stats, dict) else None
        return describe_connection(self.url, self.dialect, stats)

    async def user(self) -> dict[str, Any]:
        """Cloud: the account's status (checks the key). Local servers have no accounts."""
        http = await self._ready()
        if self.dialect != "cloud":
            return {"status": "local server (no account)"}
        user: dict[str, Any] = (await http.request("GET", "/api/user",
                                                   what="checking the API key")).json()
        return user


def _check_sendable(body: dict[str, Any]) -> None:
    """Refuse a request body JSON cannot carry (NaN, a lone surrogate, too deep) with a
    :class:`WorkflowError` saying where, before anything is sent."""
    from ..workflow import WorkflowError
    from ..workflow._values import problem

    found = problem(body, opaque=(Secret,))  # the transport encodes a Secret as its text
    if found is not None:
        raise WorkflowError(f"the request cannot be sent to the server: {found}")


_open_clients: weakref.WeakSet[Client] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """Results still being cached by synchronous clients nobody closed are finished before
    the interpreter exits (their loop threads are daemons that would just stop)."""
    for client in list(_open_clients):
        with contextlib.suppress(Exception):
            client._run(client._async._flush_stores(), timeout=30)


class Client:
    """The synchronous client: the same methods as :class:`AsyncClient`, blocking. Safe in
    notebooks, scripts and inside running event loops (it uses its own loop thread)."""

    def __init__(self, url: str | None = None, **options: Any) -> None:
        options = hide_secrets(options)  # from here on no frame holds a key in the clear
        url_argument(url)  # a malformed URL fails here, before a thread starts
        self._loop = LoopThread()
        try:
            self._async = self._loop.run(self._make(url, options))
        except BaseException:
            self._loop.close()
            raise
        _open_clients.add(self)

    async def _make(self, url: str | None, options: dict[str, Any]) -> AsyncClient:
        client = AsyncClient(url, **options)
        client._files = _Files(client, self._loop)
        await client.open()
        return client

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self._loop.run(coroutine, timeout)

    @property
    def url(self) -> str:
        return self._async.url

    @property
    def dialect(self) -> str:
        return self._async.dialect

    @property
    def async_client(self) -> AsyncClient:
        return self._async

    def __repr__(self) -> str:
        return f"<Client {self.dialect} {self.url}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release every socket and the background thread."""
        if self._loop.closed:
            return
        _open_clients.discard(self)
        try:
            self._run(self._async.aclose(), timeout=30)
        finally:
            self._loop.close()

    def submit(self, workflow: WorkflowLike, **options: Any) -> Job:
        options = hide_secrets(options)
        return Job(self._run(self._async.submit(workflow, **options)), self._loop)

    def run(self, workflow: WorkflowLike, *, timeout: float | None = None,
            cache: bool | None = None, **options: Any) -> Result:
        """Submit and wait. Interrupting the wait (Ctrl+C, the kernel's stop button) or a
        timeout cancels the remote job too. ``cache`` as in :meth:`AsyncClient.run`."""
        options = hide_secrets(options)
        job = self.submit(workflow, cache=cache, **options)
        try:
            result = job.wait(timeout)
        except JobTimeout as exc:  # (on Ctrl+C, job.wait() has cancelled the job itself)
            cancelled = self._run(self._async._cancel_quietly(job.id), timeout=30)
            raise JobTimeout(job.id, exc.timeout, cancelled=cancelled) from None
        except TimeoutError:
            self._run(self._async._cancel_quietly(job.id), timeout=30)
            raise
        if not self._async._settled(job.id, result):  # (else spare a trip to the loop)
            self._run(self._async._after_run(job.id, result))
        return result

    def cached_result(self, workflow: WorkflowLike, **options: Any) -> Result | None:
        """The cached Result of this run, or None (see :meth:`AsyncClient.cached_result`)."""
        return self._run(self._async.cached_result(workflow, **options))

    def job(self, prompt_id: str) -> Job:
        return Job(self._run(self._async.job(prompt_id)), self._loop)

    def jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._run(self._async.jobs(limit))

    def queue(self) -> list[dict[str, Any]]:
        return self._run(self._async.queue())

    def cancel(self, prompt_id: str) -> bool:
        return self._run(self._async.cancel(prompt_id))

    def cancel_many(self, prompt_ids: list[str]) -> list[str]:
        """Cancel several jobs so that none of them starts meanwhile (see
        :meth:`AsyncClient.cancel_many`); the ids of those that were live."""
        return self._run(self._async.cancel_many(prompt_ids))

    def interrupt(self, prompt_id: str | None = None) -> None:
        self._run(self._async.interrupt(prompt_id))

    def clear_queue(self) -> None:
        self._run(self._async.clear_queue())

    def delete(self, prompt_ids: list[str]) -> None:
        self._run(self._async.delete(prompt_ids))

    def upload_image(self, image: Any, **options: Any) -> str:
        return self._run(self._async.upload_image(image, **options))

    def upload_mask(self, mask: Any, original: str, **options: Any) -> str:
        return self._run(self._async.upload_mask(mask, original, **options))

    def download(self, file: OutputFile | dict[str, str],
                 to: str | Path | None = None) -> bytes | Path:
        return self._run(self._async.download(file, to))

    def object_info(self, refresh: bool = False) -> dict[str, Any]:
        return self._run(self._async.object_info(refresh))

    def models(self, folder: str | None = "checkpoints") -> list[str]:
        """The model files the server has in ``folder`` (see :meth:`AsyncClient.models`)."""
        return self._run(self._async.models(folder))

    def system_stats(self) -> dict[str, Any]:
        return self._run(self._async.system_stats())

    def describe(self) -> str:
        """What this client is connected to, with its warnings (see
        :meth:`AsyncClient.describe`); also what IPython shows for the client."""
        return self._run(self._async.describe())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        if cycle or self._loop.closed:
            printer.text(repr(self))
        else:
            printer.text(self.describe())

    def user(self) -> dict[str, Any]:
        return self._run(self._async.user())


def connect(url: str | None = None, *, api_key: str | Secret | None = None,
            **options: Any) -> Client:
    """A connected :class:`Client`. ``url`` is a server URL, ``"cloud"`` (Comfy Cloud) or
    ``"emulator"`` (the embedded emulator, whatever else runs). Without it: ``COMFY_URL`` /
    ``COMFY_CLOUD_API_KEY``, then a local ComfyUI at 127.0.0.1:8188 (``COMFY_NB_LOCAL_URL``), then
    the embedded emulator (with a notice); with ``dialect="cloud"`` never a local server, but
    Comfy Cloud with a key and the emulator of Comfy Cloud without one.

    ``api_key`` goes to the server it is passed for; ``COMFY_CLOUD_API_KEY`` goes only to Comfy
    Cloud. Either is sent only once the server has shown that it speaks the Cloud API."""
    api_key = Secret.of(api_key, "api_key")  # from here on no frame holds it in the clear
    options = hide_secrets(options)
    return Client(url, api_key=api_key, **options)


def _revealed(*keys: object) -> list[str]:
    """The values of the keys given (Secrets; others are skipped), for the consumers that must
    find them in text to keep them out of files (the result cache, recordings)."""
    return [key.reveal() for key in keys if isinstance(key, Secret) and key]

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
import collections
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import random
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .. import provenance
from .._config import resolve, url_argument
from .._content import check_file
from .._loop import LoopThread
from .._secret import Secret, hide_extra_data, hide_secrets
from ..cache import CacheEntry, ResultCache, cache_key, default_cache, server_identity
from ..cache import settings as cache_settings
from ..job import AsyncJob, Job
from ..result import OutputFile, Result
from ._connecting import identify, key_hint, start_emulator
from ._describe import describe_connection
from ._dialects import DIALECTS, Dialect, JobSnapshot, JobStatus, job_path
from ._errors import (
    AuthenticationError,
    ComfyError,
    JobTimeout,
)
from ._events import Cached, Event, EventSocket, Status, Succeeded, WebSocketRefused
from ._submission import Submission, post_prompt
from ._transport import DEFAULT_DOWNLOAD_TIMEOUT, RetryPolicy, Transport
from ._uploads import upload_payload

if TYPE_CHECKING:
    from ..workflow._models import ModelSwap

log = logging.getLogger("comfy_nb")
T = TypeVar("T")
WorkflowLike = Any  # dict, JSON text, or a path to a JSON file
POLL_BACKOFF_CAP = 10.0  # seconds: the longest wait between reads of a job whose reads fail
UNCLAIMED_EVENTS = 512  # events kept, while submitting, for jobs whose id is not known yet


class _Files:
    """The client as a :class:`~comfy_nb.result.FileSource`: ``/view`` (or Cloud's signed URL),
    into memory (``fetch``) or streamed into a file (``fetch_to``)."""

    def __init__(self, client: AsyncClient, loop: LoopThread | None) -> None:
        self._client = client
        self._loop = loop

    def _blocking(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("this Result came from an AsyncClient: use `await file.aread()` "
                               "or `await result.asave(dir)`")
        return self._loop.run(coroutine)

    async def _on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """``coroutine`` awaited on the client's own loop (a Result of a synchronous Client
        may be awaited from another one)."""
        if self._loop is not None and asyncio.get_running_loop() is not self._loop.loop:
            return await asyncio.wrap_future(self._loop.submit(coroutine))
        return await coroutine

    def fetch(self, file: OutputFile) -> bytes:
        data = self._blocking(self._client.download(file))
        assert isinstance(data, bytes)
        return data

    async def afetch(self, file: OutputFile) -> bytes:
        data = await self._on_loop(self._client.download(file))
        assert isinstance(data, bytes)
        return data

    def fetch_to(self, file: OutputFile, path: Path) -> None:
        self._blocking(self._client.download(file, to=path))

    async def afetch_to(self, file: OutputFile, path: Path) -> None:
        await self._on_loop(self._client.download(file, to=path))


# -- the result cache's side of the client -------------------------------------------------------

_UPLOAD_MARK = "comfy_nb-upload:sha256:"  # stands for a file not uploaded yet, by its content


class _DeferredUploads:
    """The ``upload`` callback of the workflow layer that uploads nothing yet: each file becomes
    a placeholder naming its content, so the cache key is known before any upload."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[bytes, str | None]] = {}  # placeholder -> bytes, name
        self.names: dict[str, str] = {}  # sha256 -> placeholder (the workflow layer's cache)

    async def __call__(self, data: Any, name: str | None) -> str:
        placeholder = _UPLOAD_MARK + hashlib.sha256(data).hexdigest()
        self.pending.setdefault(placeholder, (bytes(data), name))
        return placeholder


def _swap_placeholder(value: Any, names: dict[str, str]) -> Any:
    """``value`` with an upload placeholder replaced by the server-side name (a suffix such as
    ``" [input]"`` is kept)."""
    if isinstance(value, str) and value.startswith(_UPLOAD_MARK):
        placeholder = value[:len(_UPLOAD_MARK) + 64]
        if placeholder in names:
            return names[placeholder] + value[len(placeholder):]
    return value


@dataclass
class _Staged:
    """A workflow prepared up to, not including, uploads and validation."""

    api: dict[str, Any]
    seeds: dict[str, int]
    uploads: _DeferredUploads
    object_info: dict[str, Any] | None


@dataclass
class _Ticket:
    """Where and under which key a job's result is to be cached."""

    cache: ResultCache
    key: str
    server: str
    inputs: dict[str, str]
    workflow: dict[str, Any] = field(default_factory=dict)  # as submitted
    # never to be written into an entry (nor shown in a traceback's locals)
    credentials: list[str] = field(default_factory=list, repr=False)


class _StoringFiles:
    """The file source of a Result while it is being cached: reads wait for the store, then
    come from the cache entry (or from the server when the result could not be cached)."""

    def __init__(self, files: _Files, stored: concurrent.futures.Future[CacheEntry | None]):
        self._files = files
        self.stored = stored

    def wait(self) -> CacheEntry | None:
        """Block until the store ended; the entry, or None if nothing was cached."""
        return self.stored.result()

    def _entry(self) -> CacheEntry | None:
        """The stored entry (after waiting for the store), or None to ask the server; None at
        once on the loop's own thread, where waiting would block the store itself."""
        loop = self._files._loop
        if loop is None or loop.in_loop_thread:
            return None  # the client's own fetch explains what to do instead
        return self.wait()

    def fetch(self, file: OutputFile) -> bytes:
        entry = self._entry()
        if entry is not None:
            with contextlib.suppress(FileNotFoundError):
                return entry.read(file)
        return self._files.fetch(file)

    async def afetch(self, file: OutputFile) -> bytes:
        entry = await asyncio.wrap_future(self.stored)
        if entry is not None:
            with contextlib.suppress(FileNotFoundError):
                return await asyncio.to_thread(entry.read, file)
        return await self._files.afetch(file)

    def fetch_to(self, file: OutputFile, path: Path) -> None:
        entry = self._entry()
        if entry is not None:
            with contextlib.suppress(FileNotFoundError):
                entry.copy_to(file, path)
                return
        self._files.fetch_to(file, path)

    async def afetch_to(self, file: OutputFile, path: Path) -> None:
        entry = await asyncio.wrap_future(self.stored)
        if entry is not None:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(entry.copy_to, file, path)
                return
        await self._files.afetch_to(file, path)


class _TooLarge(Exception):
    pass


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
        self._tickets: dict[str, _Ticket] = {}  # prompt id -> where its result is cached
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
        if self._storing and not self._closed:
            _, late = await asyncio.wait(list(self._storing.values()), timeout=10)
            for task in late:
                task.cancel()
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
            longer = interval * 2.0 ** min(failures, 32)
            interval = min(longer, max(interval, POLL_BACKOFF_CAP)) * random.uniform(0.8, 1.0)
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
        from ..workflow import Workflow
        from ..workflow._inputs import upload_inputs, upload_value, wants_upload

        deferred = _DeferredUploads()
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
            object_info = await self.object_info()
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
        from ..workflow._check import validate_workflow

        names: dict[str, str] = {}
        for placeholder, (data, filename) in staged.uploads.pending.items():
            digest = placeholder[len(_UPLOAD_MARK):]
            if digest not in self._uploaded:
                self._uploaded[digest] = await self._upload_value(data, filename)
            names[placeholder] = self._uploaded[digest]
        api = staged.api
        if names:
            api = {node_id: ({**node, "inputs": {name: _swap_placeholder(value, names)
                                                 for name, value in node["inputs"].items()}}
                             if isinstance(node, dict) and isinstance(node.get("inputs"), dict)
                             else node)
                   for node_id, node in api.items()}
            for name, value in overrides.items():
                overrides[name] = _swap_placeholder(value, names)
        if validate and staged.object_info is not None:
            # files uploaded by this client exist, though the cached file lists predate them
            validate_workflow(api, staged.object_info, known_files=tuple(self._known_files))
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
        """``api`` with each uploaded file input standing as ``sha256:<digest>`` of its content,
        and those digests by ``"<node>.<input>"``."""
        keyed: dict[str, Any] = {}
        digests: dict[str, str] = {}
        for node_id, node in api.items():
            inputs = node.get("inputs") if isinstance(node, dict) else None
            if not isinstance(inputs, dict):
                keyed[node_id] = node
                continue
            changed = dict(inputs)
            for name, value in inputs.items():
                digest: str | None = None
                if isinstance(value, str) and value.startswith(_UPLOAD_MARK):
                    digest = value[len(_UPLOAD_MARK):len(_UPLOAD_MARK) + 64]
                elif isinstance(value, str):
                    digest = self._upload_digests.get(value.removesuffix(" [input]"))
                if digest is not None:
                    digests[f"{node_id}.{name}"] = digest
                    changed[name] = "sha256:" + digest
            keyed[node_id] = {**node, "inputs": changed}
        return keyed, digests

    async def _ticket(self, staged: _Staged, cache: bool | None) -> _Ticket | None:
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
        return _Ticket(store, key, server, inputs)

    async def _lookup(self, ticket: _Ticket, staged: _Staged) -> Result | None:
        """The cached Result for the ticket, after any store of the same key in progress."""
        storing = self._storing.get(ticket.key)
        if storing is not None:
            await asyncio.wait([storing])
        return await asyncio.to_thread(ticket.cache.get, ticket.key, fallback=self._files,
                                       server=self.url, workflow=staged.api)

    def _finished_job(self, hit: Result, staged: _Staged, wanted: dict[str, Any]) -> AsyncJob:
        """A job that already succeeded with a cached result; its events say every node was
        cached, as ComfyUI reports a prompt it need not execute."""
        job = AsyncJob(self, hit.prompt_id, hit.workflow)
        job.resolved_seeds = staged.seeds
        job.parameters = {name: ("sha256:" + value[len(_UPLOAD_MARK):]
                                 if isinstance(value, str) and value.startswith(_UPLOAD_MARK)
                                 else value)
                          for name, value in wanted.items()}
        job.feed(Cached(job.id, tuple(hit.workflow or ())))
        job.feed(Succeeded(job.id))
        job._finish(JobSnapshot(JobStatus.SUCCEEDED, outputs=hit.outputs, workflow=hit.workflow))
        job._result = hit
        return job

    def _start_store(self, ticket: _Ticket, result: Result) -> None:
        """Cache a succeeded job's result in the background; its files are read from the
        entry once it is written (from the server, through the download cache, if it was not)."""
        stored: concurrent.futures.Future[CacheEntry | None] = concurrent.futures.Future()
        result.source = _StoringFiles(self._files, stored)
        downloads, result.cache_dir = result.cache_dir, None  # the entry serves the files
        task = asyncio.ensure_future(self._store(ticket, result))
        self._storing[ticket.key] = task

        def ended(task: asyncio.Task[CacheEntry | None]) -> None:
            if self._storing.get(ticket.key) is task:
                del self._storing[ticket.key]
            failed = task.cancelled() or task.exception() is not None
            entry = None if failed else task.result()
            if entry is None:
                result.cache_dir = downloads
            if not stored.done():
                stored.set_result(entry)

        task.add_done_callback(ended)

    async def _store(self, ticket: _Ticket, result: Result) -> CacheEntry | None:
        """Download every file of ``result`` into a new entry and publish it; None (with a
        log line) if it could not be cached. Caching never fails the run."""
        try:
            writer = await asyncio.to_thread(ticket.cache.writer, ticket.key)
        except OSError as exc:
            log.warning("comfy_nb: the result cache at %s cannot be written (%s); results are "
                        "not cached", ticket.cache.directory, exc)
            return None
        limit = asyncio.Semaphore(4)

        async def fetch(file: OutputFile) -> None:
            async with limit:
                path = writer.file_path(file)
                await self.download(file, to=path)
                # an HTML page sent for an image must not be served from the cache later
                await asyncio.to_thread(check_file, file.filename, file.kind, path)
                if writer.too_large:
                    raise _TooLarge

        tasks = [asyncio.ensure_future(fetch(file)) for file in result.files]
        try:
            await asyncio.gather(*tasks)
            return await asyncio.to_thread(
                writer.commit, prompt_id=result.prompt_id, outputs=result.outputs,
                workflow=ticket.workflow, server=ticket.server, inputs=ticket.inputs,
                provenance=result.provenance, credentials=ticket.credentials)
        except _TooLarge:
            log.info("comfy_nb: the result of job %s is larger than the result cache; not "
                     "cached", result.prompt_id)
        except (ComfyError, OSError, ValueError, RuntimeError) as exc:
            log.warning("comfy_nb: the result of job %s was not cached: %s",
                        result.prompt_id, exc)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            writer.discard()
        return None

    async def _upload_value(self, value: Any, name: str | None) -> str:
        return await self.upload_image(value, name=name)

    async def run(self, workflow: WorkflowLike, *, timeout: float | None = None,
                  cache: bool | None = None, **submit_options: Any) -> Result:
        """Submit and wait: the job's :class:`Result`. On timeout or cancellation of the
        waiting coroutine the remote job is cancelled too, so nothing is left running.

        ``cache``: None follows ``comfy_nb.cache.settings.enabled`` (on by default); True or
        False decide for this call. With the cache, an identical earlier run's result comes back
        at once (``result.from_cache``), and a new result is cached before this returns."""
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
        if isinstance(result.source, _StoringFiles):
            await asyncio.wrap_future(result.source.stored)
        await self._observed(job.id)
        return result

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
                                  record=True)

    async def upload_mask(self, mask: Any, original: str, *, name: str | None = None,
                          subfolder: str = "", kind: str = "input") -> str:
        """Upload a mask for an uploaded image (its name as returned by upload_image)."""
        folder, _, filename = original.rpartition("/")
        ref = json.dumps({"filename": filename, "subfolder": folder, "type": kind})
        return await self._upload("/api/upload/mask", mask, name, subfolder, False, kind,
                                  {"original_ref": ref})

    async def _upload(self, path: str, image: Any, name: str | None, subfolder: str,
                      overwrite: bool, kind: str, extra: dict[str, str] | None = None,
                      record: bool = False) -> str:
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
        if record:  # the result cache keys this name by the content it now has
            self._upload_digests[name] = hashlib.sha256(data).hexdigest()
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
        """The server's node definitions (cached for this client)."""
        http = await self._ready()
        if self._object_info is None or refresh:
            self._object_info = (await http.request("GET", "/api/object_info",
                                                    what="reading node definitions")).json()
        return self._object_info

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
        if isinstance(result.source, _StoringFiles):
            result.source.wait()
        self._run(self._async._observed(job.id))
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

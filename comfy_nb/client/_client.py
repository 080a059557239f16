"""The API client: :class:`AsyncClient` (the core, coroutines) and :class:`Client` (the same
surface, synchronous, running the core on one background event-loop thread).

One websocket per client carries the events of all its jobs; REST endpoints decide completion.
It knows dialects, transport and events; it never imports ipywidgets or touches the notebook.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import tempfile
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from .. import provenance
from .._config import resolve
from .._loop import LoopThread
from ..job import AsyncJob, Job
from ..result import OutputFile, Result
from ._dialects import DIALECTS, Dialect, JobSnapshot, JobStatus
from ._errors import AuthenticationError, ComfyError, ServerError, TransportError
from ._events import Event, EventSocket, Status, WebSocketRefused
from ._transport import RetryPolicy, Transport
from ._uploads import upload_payload

log = logging.getLogger("comfy_nb")
T = TypeVar("T")
WorkflowLike = Any  # dict, JSON text, or a path to a JSON file


class _Files:
    """The client as a :class:`~comfy_nb.result.FileSource`."""

    def __init__(self, client: AsyncClient, loop: LoopThread | None) -> None:
        self._client = client
        self._loop = loop

    def fetch(self, file: OutputFile) -> bytes:
        if self._loop is None:
            raise RuntimeError("this Result came from an AsyncClient: use `await file.aread()` "
                               "or `await result.asave(dir)`")
        data = self._loop.run(self._client.download(file))
        assert isinstance(data, bytes)
        return data

    async def afetch(self, file: OutputFile) -> bytes:
        coroutine = self._client.download(file)
        if self._loop is not None and asyncio.get_running_loop() is not self._loop.loop:
            data = await asyncio.wrap_future(self._loop.submit(coroutine))
        else:
            data = await coroutine
        assert isinstance(data, bytes)
        return data


class AsyncClient:
    """Talks to one ComfyUI server or Comfy Cloud. Use ``async with AsyncClient(...) as c``."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        dialect: str | None = None,
        websocket: bool = True,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        poll_interval: float = 1.0,
        cache_dir: str | Path | None = None,
        client_id: str | None = None,
        emulator_options: dict[str, Any] | None = None,
    ) -> None:
        if dialect not in (None, "local", "cloud"):
            raise ValueError("dialect must be 'local', 'cloud' or None (detect)")
        target = resolve(url, api_key)
        self._target = target
        self._api_key = target.api_key
        self._forced_dialect = dialect
        self._use_websocket = websocket
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self.poll_interval = poll_interval
        self.client_id = client_id or uuid.uuid4().hex
        self._emulator_options = emulator_options or {}
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._emulator: Any = None
        self._transport: Transport | None = None
        self._socket: EventSocket | None = None
        self._dialect: Dialect | None = None
        self._jobs: dict[str, AsyncJob] = {}
        self._object_info: dict[str, Any] | None = None
        self._opened = False
        self._closed = False
        self._open_lock: asyncio.Lock | None = None
        self._files = _Files(self, None)
        self._uploaded: dict[str, str] = {}  # sha256 of uploaded bytes -> server-side name
        self._known_files: set[str] = set()  # names this client uploaded
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
                url = await asyncio.to_thread(self._start_emulator)
            self._transport = Transport(url, api_key=self._api_key, timeout=self._timeout,
                                        retry=self._retry)
            try:
                self._dialect = DIALECTS[self._forced_dialect or await self._detect_dialect()]
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

    def _start_emulator(self) -> str:
        from ..emulator import RunningEmulator
        from ..emulator._server import EmulatorOptions

        options = {"dialect": self._forced_dialect or "local", **self._emulator_options}
        self._emulator = RunningEmulator(EmulatorOptions(**options)).start()
        if self._emulator.api_key:
            self._api_key = self._emulator.api_key
        log.warning("comfy_nb: no ComfyUI server configured or found at 127.0.0.1:8188; using "
                    "the embedded emulator at %s (stand-in pixels, not model output)",
                    self._emulator.url)
        return str(self._emulator.url)

    async def _detect_dialect(self) -> str:
        assert self._transport is not None
        stats = (await self._transport.request("GET", "/api/system_stats",
                                               what="reaching the server")).json()
        system = stats.get("system", {}) if isinstance(stats, dict) else {}
        version = system.get("cloud_version") or system.get("comfyui_version")
        self.server_version = str(version) if version else None
        return "cloud" if "cloud_version" in system else "local"

    async def _open_socket(self) -> None:
        assert self._dialect is not None and self._transport is not None
        url = self._dialect.ws_url(self._transport.base_url, self.client_id, self._api_key)
        self._socket = EventSocket(url, on_event=self._route, on_reconnect=self._resync)
        try:
            await self._socket.start()
        except ComfyError as exc:
            await self._socket.close()
            self._socket = None
            if isinstance(exc, WebSocketRefused) and exc.status == 401:
                # the key is wrong or missing: every later request would fail the same way
                raise AuthenticationError(
                    "the server refused the API key (401): it is missing or wrong. Pass "
                    "api_key=... or set COMFY_CLOUD_API_KEY.", status=401) from None
            log.warning("comfy_nb: websocket unavailable (%s); following jobs by polling", exc)

    async def aclose(self) -> None:
        """Close the websocket and connections (and stop an embedded emulator). The client
        refuses every later call."""
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

    async def _resync(self) -> None:
        """After a reconnect, events may have been lost: re-read every live job."""
        for job in list(self._jobs.values()):
            job.wake()

    def _poll_interval(self, completion_hinted: bool, unsure: bool = False) -> float:
        """Seconds until a job is read again: soon after a completion hint; rarely while the
        websocket reports progress; at ``poll_interval`` without a websocket, or while the
        server does not know the job (the websocket cannot tell that it was lost)."""
        if completion_hinted:
            return 0.1
        if not unsure and self._socket is not None and self._socket.connected:
            return max(self.poll_interval, 5.0)
        return self.poll_interval * random.uniform(0.9, 1.1)

    # -- jobs --------------------------------------------------------------------------------

    async def submit(
        self,
        workflow: WorkflowLike,
        *,
        prompt_id: str | None = None,
        extra_data: dict[str, Any] | None = None,
        partner_key: bool | str = False,
        front: bool = False,
        validate: bool = True,
        overrides: dict[str, Any] | None = None,
        **params: Any,
    ) -> AsyncJob:
        """Queue a workflow and return its job at once.

        ``workflow`` is a :class:`~comfy_nb.workflow.Workflow`, a dict, JSON text or a path
        (editor-format workflows are converted with the server's node definitions). Parameters
        are set by name on a copy (``seed=42``, ``overrides={"KSampler.cfg": 7}``); Python
        objects given for file inputs (PIL images, arrays, bytes, paths, URLs) are uploaded
        first. With ``validate`` (the default) the workflow is checked against the server's
        node definitions and every problem is raised at once as ``WorkflowInvalid``.
        ``partner_key=True`` sends this client's API key as ``extra_data.api_key_comfy_org`` for
        partner (API) nodes; a string sends that key instead."""
        http = await self._ready()
        assert self._dialect is not None
        wanted = {**(overrides or {}), **params}
        api, seeds = await self._prepare(workflow, wanted, validate)  # uploads rename in wanted
        prompt_id = prompt_id or str(uuid.uuid4())
        extra = dict(extra_data or {})
        if partner_key:
            key = partner_key if isinstance(partner_key, str) else self._api_key
            if not key:
                raise ValueError("partner_key=True needs an API key (api_key=... or "
                                 "COMFY_CLOUD_API_KEY)")
            extra["api_key_comfy_org"] = key
        body = self._dialect.submit_body(api, prompt_id, self.client_id, extra, front)
        job = AsyncJob(self, prompt_id, api)
        job.resolved_seeds = seeds
        job.parameters = wanted
        self._jobs[prompt_id] = job
        try:
            answer = await self._post_once(http, body, prompt_id)
        except BaseException:
            self._jobs.pop(prompt_id, None)
            raise
        job.announce_queued(answer.get("number"))
        job.start_watching()
        return job

    async def _prepare(self, workflow: WorkflowLike, overrides: dict[str, Any],
                       validate: bool) -> tuple[dict[str, Any], dict[str, int]]:
        """The API-format dict to submit: converted, overridden, uploaded and checked; plus the
        seeds ``"random"`` resolved to. The caller's workflow is never changed."""
        from ..workflow import Workflow
        from ..workflow._check import validate_workflow
        from ..workflow._inputs import upload_inputs, upload_value, wants_upload

        if isinstance(workflow, Workflow):
            loaded = workflow.copy()
        else:
            source = workflow
            if isinstance(source, dict):  # objects in it cannot go through Workflow.load
                source = await upload_inputs(source, None, self._upload_value,
                                             cache=self._uploaded)
            loaded = Workflow.load(source)
        # non-JSON values (images, arrays, bytes, paths) are uploaded before set(); strings
        # (file names, URLs, local paths) go through set() and the upload pass below
        uploads = {k: v for k, v in overrides.items()
                   if not isinstance(v, str) and wants_upload(v, [])}
        object_info: dict[str, Any] | None = None
        if loaded.format == "ui" or overrides or validate:
            object_info = await self.object_info()
        if loaded.format == "ui":
            loaded = Workflow.load(loaded.to_api(object_info), object_info=object_info)
        for name, value in uploads.items():  # upload first, then set the server-side name
            overrides[name] = await upload_value(value, "image", f"the value of {name!r}",
                                                 self._upload_value, cache=self._uploaded)
        if overrides:
            loaded = Workflow.load(loaded, object_info=object_info).set(overrides)
        api = loaded.to_api(object_info)
        api = await upload_inputs(api, object_info, self._upload_value, cache=self._uploaded)
        if validate and object_info is not None:
            # files uploaded by this client exist, though the cached file lists predate them
            validate_workflow(api, object_info, known_files=tuple(self._known_files))
        return api, dict(loaded.resolved_seeds)

    async def _upload_value(self, value: Any, name: str | None) -> str:
        return await self.upload_image(value, name=name)

    async def _post_once(self, http: Transport, body: dict[str, Any],
                         prompt_id: str) -> dict[str, Any]:
        """POST the prompt; after a failure that may have reached the server, look the
        prompt id up before posting again, so a retry never runs the job twice."""
        attempts = max(1, self._retry.attempts)
        for attempt in range(attempts):
            try:
                response = await http.request("POST", "/api/prompt", json=body,
                                              what="submitting the workflow")
                answer: dict[str, Any] = response.json()
                return answer
            except (TransportError, ServerError):
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(min(self._retry.backoff * 2 ** attempt,
                                        self._retry.max_backoff))
                try:
                    known = await self._snapshot(prompt_id)
                except ComfyError:
                    continue
                if known.status is not JobStatus.UNKNOWN:
                    return {"prompt_id": prompt_id, "number": None, "node_errors": {}}
        raise AssertionError("unreachable")

    async def run(self, workflow: WorkflowLike, *, timeout: float | None = None,
                  **submit_options: Any) -> Result:
        """Submit and wait: the job's :class:`Result`. On timeout or cancellation of the
        waiting coroutine the remote job is cancelled too, so nothing is left running."""
        job = await self.submit(workflow, **submit_options)
        try:
            return await job.wait(timeout)
        except (asyncio.CancelledError, KeyboardInterrupt, TimeoutError):
            await asyncio.shield(self._cancel_quietly(job.id))
            raise

    async def _cancel_quietly(self, prompt_id: str) -> None:
        try:
            await self.cancel(prompt_id)
        except ComfyError as exc:
            log.warning("comfy_nb: could not cancel job %s: %s", prompt_id, exc)

    async def job(self, prompt_id: str) -> AsyncJob:
        """Follow a job submitted earlier (by this or another client)."""
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
        return Result(job.id, outputs, source=self._files, workflow=workflow,
                      cache_dir=self._downloads_dir(), status=status, server=self.url,
                      provenance=record)

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
        http = await self._ready()
        assert self._dialect is not None
        cancelled = await self._dialect.cancel(http, prompt_id)
        if cancelled:
            self._removed_from_queue([prompt_id])
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

    # -- files -------------------------------------------------------------------------------

    async def upload_image(self, image: Any, *, name: str | None = None, subfolder: str = "",
                           overwrite: bool = False, kind: str = "input") -> str:
        """Upload a path, bytes, PIL image or numpy array; returns the name to put into a
        LoadImage input."""
        return await self._upload("/api/upload/image", image, name, subfolder, overwrite, kind)

    async def upload_mask(self, mask: Any, original: str, *, name: str | None = None,
                          subfolder: str = "", kind: str = "input") -> str:
        """Upload a mask for an uploaded image (its name as returned by upload_image)."""
        folder, _, filename = original.rpartition("/")
        ref = json.dumps({"filename": filename, "subfolder": folder, "type": kind})
        return await self._upload("/api/upload/mask", mask, name, subfolder, False, kind,
                                  {"original_ref": ref})

    async def _upload(self, path: str, image: Any, name: str | None, subfolder: str,
                      overwrite: bool, kind: str, extra: dict[str, str] | None = None) -> str:
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
        return name

    async def download(self, file: OutputFile | dict[str, str],
                       to: str | Path | None = None) -> bytes | Path:
        """An output file's bytes, or the path it was written to (atomically)."""
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

    async def system_stats(self) -> dict[str, Any]:
        http = await self._ready()
        stats: dict[str, Any] = (await http.request("GET", "/api/system_stats",
                                                    what="reading system stats")).json()
        return stats

    async def user(self) -> dict[str, Any]:
        """Cloud: the account's status (checks the key). Local servers have no accounts."""
        http = await self._ready()
        if self.dialect != "cloud":
            return {"status": "local server (no account)"}
        user: dict[str, Any] = (await http.request("GET", "/api/user",
                                                   what="checking the API key")).json()
        return user


class Client:
    """The synchronous client: the same methods as :class:`AsyncClient`, blocking. Safe in
    notebooks, scripts and inside running event loops (it uses its own loop thread)."""

    def __init__(self, url: str | None = None, **options: Any) -> None:
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
        return Job(self._run(self._async.submit(workflow, **options)), self._loop)

    def run(self, workflow: WorkflowLike, *, timeout: float | None = None,
            **options: Any) -> Result:
        """Submit and wait. Interrupting the wait (Ctrl+C, the kernel's stop button) or a
        timeout cancels the remote job too."""
        job = self.submit(workflow, **options)
        try:
            return job.wait(timeout)
        except (KeyboardInterrupt, TimeoutError):
            self._run(self._async._cancel_quietly(job.id), timeout=30)
            raise

    def job(self, prompt_id: str) -> Job:
        return Job(self._run(self._async.job(prompt_id)), self._loop)

    def jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._run(self._async.jobs(limit))

    def queue(self) -> list[dict[str, Any]]:
        return self._run(self._async.queue())

    def cancel(self, prompt_id: str) -> bool:
        return self._run(self._async.cancel(prompt_id))

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

    def system_stats(self) -> dict[str, Any]:
        return self._run(self._async.system_stats())

    def user(self) -> dict[str, Any]:
        return self._run(self._async.user())


def connect(url: str | None = None, *, api_key: str | None = None, **options: Any) -> Client:
    """A connected :class:`Client`. Without arguments: ``COMFY_URL`` / ``COMFY_CLOUD_API_KEY``,
    then a local ComfyUI at 127.0.0.1:8188, then the embedded emulator (with a notice)."""
    return Client(url, api_key=api_key, **options)

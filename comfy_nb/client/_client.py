"""The API client: :class:`AsyncClient` (the core, coroutines) and :class:`Client` (the same
surface, synchronous, running the core on one background event-loop thread).

:class:`AsyncClient` is a façade over two parts (:mod:`comfy_nb.client._parts`): the server it
talks to -- a :class:`~comfy_nb.client._connection.Connection` (transport, dialect, key, the one
websocket whose events are routed to jobs by ``prompt_id``) -- and its run pipeline
(:mod:`comfy_nb.client._runs`: staging, uploads, validation, the result cache, and the jobs it
hosts). REST endpoints decide completion; a job is always followed by the id the server answers
the submission with, and a submission is never sent twice blind (see
:mod:`comfy_nb.client._submission`). A replaying client is an AsyncClient made of a recording's
parts instead (:mod:`comfy_nb.recordings`).

Must not: import ipywidgets or touch the notebook.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import weakref
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .. import ledger  # noqa: F401  (records every job submitted, through job_observers)
from .._config import resolve, url_argument
from .._loop import LoopThread
from .._secret import Secret, hide_extra_data
from ..errors import ComfyError, FeatureUnavailable, JobTimeout
from ..job import AsyncJob, Job
from ..result import OutputFile, Result
from ._backoff import RetryPolicy
from ._connection import Connection
from ._describe import describe_connection
from ._runs import PreparedPrompt, RunPipeline
from ._transport import DEFAULT_DOWNLOAD_TIMEOUT

if TYPE_CHECKING:
    from ..cache import ResultCache
    from ._files import ClientFiles
    from ._parts import Runs, Server

log = logging.getLogger("comfy_nb")
T = TypeVar("T")
WorkflowLike = Any  # a Workflow, a dict, JSON text, or a path to a JSON file


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
        if dialect not in (None, "local", "cloud", "v2"):
            raise ValueError("dialect must be 'local', 'cloud', 'v2' (Comfy API v2) or None "
                             "(detect)")
        if not connect_timeout > 0:
            raise ValueError("connect_timeout must be a positive number of seconds")
        connection = Connection(
            resolve(url, api_key, dialect), dialect=dialect, websocket=websocket,
            timeout=timeout, connect_timeout=connect_timeout, retry=retry or RetryPolicy(),
            poll_interval=poll_interval, client_id=client_id,
            emulator_options=emulator_options, download_timeout=download_timeout)
        pipeline = RunPipeline(self, connection, result_cache=result_cache,
                               cache_dir=Path(cache_dir) if cache_dir else None)
        self._compose(connection, pipeline, pipeline.files)

    def _compose(self, server: Server, runs: Runs, files: ClientFiles | None = None) -> None:
        """Make this client of ``server`` and ``runs`` (a subclass serving something else than
        a live server, the replaying client, gives its own). ``files``: where its Results read
        their files from the server (through :attr:`results_loop`)."""
        self._server = server
        self._runs = runs
        self._files = files

    @property
    def results_loop(self) -> LoopThread | None:
        """The loop thread its Results read files through without ``await`` (Client's own)."""
        return self._files.loop if self._files is not None else None

    @results_loop.setter
    def results_loop(self, loop: LoopThread | None) -> None:
        if self._files is not None:
            self._files.loop = loop

    # -- what it is connected to ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def dialect(self) -> str:
        return self._server.dialect

    @property
    def server_version(self) -> str | None:
        """The server's version, from ``/system_stats`` when the dialect was detected."""
        return self._server.server_version

    @property
    def client_id(self) -> str:
        return self._server.client_id

    @property
    def queue_remaining(self) -> int | None:
        """The server's queue length, as its websocket last said."""
        return self._server.queue_remaining

    @property
    def poll_interval(self) -> float:
        """Seconds between reads of a job's state when no websocket hints come."""
        return self._server.poll_interval

    @poll_interval.setter
    def poll_interval(self, seconds: float) -> None:
        self._server.poll_interval = seconds

    @property
    def emulator(self) -> Any:
        """The embedded emulator this client started (a
        :class:`~comfy_nb.emulator.RunningEmulator`), or None."""
        return self._server.emulator

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called: the client refuses every later call."""
        return self._server.closed

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.dialect} {self.url}>"

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def open(self) -> AsyncClient:
        """Connect: start the emulator if needed, detect the dialect, open the websocket."""
        await self._server.open()
        return self

    async def aclose(self) -> None:
        """Close the websocket and connections (and stop an embedded emulator). The client
        refuses every later call. Results still being cached get up to 10 s to finish."""
        if not self._server.closed:
            await self._runs.wind_down()
        await self._server.close()

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
        return await self._runs.submit(
            workflow, prompt_id=prompt_id, extra_data=extra_data, partner_key=partner_key,
            front=front, validate=validate, overrides=overrides, cache=cache, params=params)

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
        """Submit and wait: the job's :class:`Result`. On timeout or cancellation of the
        waiting coroutine the remote job is cancelled too, so nothing is left running.

        ``cache``: None follows ``comfy_nb.cache.settings.enabled`` (on by default); True or
        False decide for this call. With the cache, an identical earlier run's result comes back
        at once (``result.from_cache``); a new result's files are downloaded into its cache
        entry before this returns, and the entry is written in the background (any reader of
        the cache in this process, an identical run included, waits for it). The other
        arguments are :meth:`submit`'s."""
        if isinstance(partner_key, (str, Secret)):  # no frame below holds it in the clear
            partner_key = Secret.of(partner_key, "partner_key") or False
        if extra_data:
            extra_data = hide_extra_data(extra_data)
        job = await self.submit(workflow, prompt_id=prompt_id, extra_data=extra_data,
                                partner_key=partner_key, front=front, validate=validate,
                                overrides=overrides, cache=cache, **params)
        try:
            result = await job.wait(timeout)
        except JobTimeout as exc:
            cancelled = await asyncio.shield(self._cancel_quietly(job.id))
            raise JobTimeout(job.id, exc.timeout, cancelled=cancelled) from None
        except (asyncio.CancelledError, KeyboardInterrupt, TimeoutError):
            await asyncio.shield(self._cancel_quietly(job.id))
            raise
        await self._runs.settle(job.id, result)
        return result

    async def _cancel_quietly(self, prompt_id: str) -> bool:
        """Cancel a job, logging (not raising) a failure; whether the server took the cancel."""
        try:
            await self.cancel(prompt_id)
        except ComfyError as exc:
            log.warning("comfy_nb: could not cancel job %s: %s", prompt_id, exc)
            return False
        return True

    async def cached_result(self, workflow: WorkflowLike, *,
                            overrides: dict[str, Any] | None = None, validate: bool = True,
                            **params: Any) -> Result | None:
        """The cached Result of this run (same arguments as :meth:`submit`), or None. Nothing
        is uploaded or submitted; the cache is used even if switched off globally."""
        return await self._runs.cached_result(workflow, {**(overrides or {}), **params},
                                              validate)

    async def prepare(self, workflow: WorkflowLike, *,
                      overrides: dict[str, Any] | None = None, validate: bool = True,
                      **params: Any) -> PreparedPrompt:
        """What :meth:`submit` would send, without sending it: the API-format prompt converted,
        overridden, with its files uploaded (their server-side names in place) and checked
        against the server's node definitions, and the seeds ``"random"`` resolved to. A sweep
        checks each of its combinations this way before submitting any."""
        prompt, seeds = await self._runs.prepare(workflow, {**(overrides or {}), **params},
                                                 validate)
        return PreparedPrompt(prompt, seeds)

    async def job(self, prompt_id: str) -> AsyncJob:
        """Follow a job submitted earlier (by this or another client)."""
        return await self._runs.follow(prompt_id)

    async def jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        """Recent jobs as ``{"id", "status"}`` dicts, newest first."""
        return await self._server.jobs(limit)

    async def queue(self) -> list[dict[str, Any]]:
        """The queue: running jobs (position 0) then pending ones in the order they will run."""
        return await self._server.queue()

    async def cancel(self, prompt_id: str) -> bool:
        """Cancel one job: removed if pending, interrupted if running. True if it was live."""
        return await self._server.cancel(prompt_id)

    async def cancel_many(self, prompt_ids: list[str]) -> list[str]:
        """Cancel several jobs so that none of them starts meanwhile (on a local server the
        pending ones are removed before the running ones are interrupted); the ids of those
        that were live."""
        return await self._server.cancel_many(prompt_ids)

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt the running job (or the given one; on Cloud: every running job)."""
        await self._server.interrupt(prompt_id)

    async def clear_queue(self) -> None:
        """Remove every pending job (running ones carry on)."""
        await self._server.clear_queue()

    async def delete(self, prompt_ids: list[str]) -> None:
        """Remove pending jobs from the queue."""
        await self._server.delete(prompt_ids)

    # -- files -------------------------------------------------------------------------------

    async def upload_image(self, image: Any, *, name: str | None = None, subfolder: str = "",
                           overwrite: bool = False, kind: str = "input") -> str:
        """Upload a path, bytes, PIL image or numpy array; returns the name to put into a
        LoadImage input."""
        return await self._runs.upload_image(image, name=name, subfolder=subfolder,
                                             overwrite=overwrite, kind=kind)

    async def upload_mask(self, mask: Any, original: str, *, name: str | None = None,
                          subfolder: str = "", kind: str = "input") -> str:
        """Upload a mask for an uploaded image (its name as returned by upload_image)."""
        return await self._runs.upload_mask(mask, original, name=name, subfolder=subfolder,
                                            kind=kind)

    async def download(self, file: OutputFile | dict[str, str],
                       to: str | Path | None = None) -> bytes | Path:
        """An output file's bytes, or the path it was written to (atomically, streamed in
        chunks). The whole download, retries included, must end within the client's
        ``download_timeout``, else :class:`DownloadTimeout` (and nothing is left at ``to``)."""
        params = file.params() if isinstance(file, OutputFile) else dict(file)
        return await self._server.download(params, Path(to) if to else None)

    # -- the server ----------------------------------------------------------------------------

    async def object_info(self, refresh: bool = False) -> dict[str, Any]:
        """The server's node definitions, read once per client. With the cache on
        (:mod:`comfy_nb.cache`), a new client of the same server (a kernel restarted) starts
        from the copy on disk (:mod:`comfy_nb.client._node_definitions`), refreshed in the
        background when it is older than ten minutes; a workflow problem that such a copy may
        be wrong about (an unknown node class, a value not in a list) is checked again against
        the server's own before it is reported. ``refresh`` asks the server now."""
        return await self._runs.object_info(refresh)

    async def models(self, folder: str | None = "checkpoints") -> list[str]:
        """The model files the server has in ``folder`` (``"checkpoints"``, ``"loras"``,
        ``"vae"``…; empty when it has none), or its model folders with ``folder=None``."""
        return await self._server.models(folder)

    async def system_stats(self) -> dict[str, Any]:
        """The server's ``/system_stats``: versions, devices, memory."""
        return await self._server.system_stats()

    async def describe(self) -> str:
        """A few lines for people: the server, its dialect and version, and the warnings that
        go with it (the emulator's stand-in pixels, a replay's date, a public Binder session).
        Reads ``/system_stats`` once if connecting did not."""
        stats = self._server.stats
        if stats is None:
            try:
                stats = await self.system_stats()
            except FeatureUnavailable:  # a v2 server without v1 routes: no status to read
                stats = {}
            except ComfyError as exc:
                stats = {"error": str(exc)}
            else:
                self._server.stats = stats if isinstance(stats, dict) else None
        if self.emulator is not None and not stats.get("emulator"):
            # the embedded emulator this client started says what it is even where its
            # dialect has no status route (v2)
            from ..emulator import STAND_IN_NOTICE

            stats = {**stats, "emulator": {"notice": STAND_IN_NOTICE}}
        return describe_connection(self.url, self.dialect, stats)

    async def user(self) -> dict[str, Any]:
        """Cloud: the account's status (checks the key). Local servers have no accounts."""
        return await self._server.user()


_open_clients: weakref.WeakSet[Client] = weakref.WeakSet()


def _flush_at_exit() -> None:
    """Results still being cached by synchronous clients nobody closed are finished before
    the interpreter exits (their loop threads are daemons that would just stop)."""
    for client in list(_open_clients):
        with contextlib.suppress(Exception):
            client._run(client._async._runs.flush(), timeout=30)


# Flushing needs thread pools (DNS look-ups, file reads, an embedded emulator's file responses),
# and they stop taking work when the interpreter starts to exit, in threading's exit hooks,
# which run before atexit's: the flush is one of those hooks, registered after the pools' own,
# so it runs before them. Where threading has no such hooks, atexit is the next best.
_register_at_exit = getattr(threading, "_register_atexit", atexit.register)
_register_at_exit(_flush_at_exit)


class Client:
    """The synchronous client: the same methods as :class:`AsyncClient`, blocking. Safe in
    notebooks, scripts and inside running event loops (it uses its own loop thread)."""

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
        url_argument(url)  # a malformed URL fails here, before a thread starts

        def make() -> AsyncClient:
            return AsyncClient(
                url, api_key=api_key, dialect=dialect, websocket=websocket, timeout=timeout,
                connect_timeout=connect_timeout, retry=retry, poll_interval=poll_interval,
                cache_dir=cache_dir, client_id=client_id, emulator_options=emulator_options,
                result_cache=result_cache, download_timeout=download_timeout)

        self._start_core(make)

    def _start_core(self, make: Callable[[], AsyncClient]) -> None:
        """Start the loop thread, and make and open the async client ``make`` gives on it (a
        subclass whose core is another AsyncClient, the replaying client, gives its own)."""
        self._loop = LoopThread()

        async def opened() -> AsyncClient:
            client = make()
            client.results_loop = self._loop  # its Results read their files through it too
            return await client.open()

        try:
            self._async = self._loop.run(opened())
        except BaseException:
            self._loop.close()
            raise
        _open_clients.add(self)

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

    @property
    def loop(self) -> LoopThread:
        """The background event-loop thread this client's coroutines run on: code that drives
        :attr:`async_client` itself (sweeps) runs its coroutines there too."""
        return self._loop

    @property
    def emulator(self) -> Any:
        """The embedded emulator this client started, or None."""
        return self._async.emulator

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or the client's loop thread has ended)."""
        return self._loop.closed

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

    def submit(self, workflow: WorkflowLike, *, prompt_id: str | None = None,
               extra_data: dict[str, Any] | None = None,
               partner_key: bool | str | Secret = False, front: bool = False,
               validate: bool = True, overrides: dict[str, Any] | None = None,
               cache: bool | None = False, **params: Any) -> Job:
        """Queue a workflow and return its job at once (see :meth:`AsyncClient.submit`)."""
        if isinstance(partner_key, (str, Secret)):  # no frame below holds it in the clear
            partner_key = Secret.of(partner_key, "partner_key") or False
        if extra_data:
            extra_data = hide_extra_data(extra_data)
        return Job(self._run(self._async.submit(
            workflow, prompt_id=prompt_id, extra_data=extra_data, partner_key=partner_key,
            front=front, validate=validate, overrides=overrides, cache=cache, **params)),
            self._loop)

    def run(self, workflow: WorkflowLike, *, timeout: float | None = None,
            cache: bool | None = None, prompt_id: str | None = None,
            extra_data: dict[str, Any] | None = None, partner_key: bool | str | Secret = False,
            front: bool = False, validate: bool = True,
            overrides: dict[str, Any] | None = None, **params: Any) -> Result:
        """Submit and wait. Interrupting the wait (Ctrl+C, the kernel's stop button) or a
        timeout cancels the remote job too. ``cache`` as in :meth:`AsyncClient.run`."""
        if isinstance(partner_key, (str, Secret)):  # no frame below holds it in the clear
            partner_key = Secret.of(partner_key, "partner_key") or False
        if extra_data:
            extra_data = hide_extra_data(extra_data)
        job = self.submit(workflow, prompt_id=prompt_id, extra_data=extra_data,
                          partner_key=partner_key, front=front, validate=validate,
                          overrides=overrides, cache=cache, **params)
        try:
            result = job.wait(timeout)
        except JobTimeout as exc:  # (on Ctrl+C, job.wait() has cancelled the job itself)
            cancelled = self._run(self._async._cancel_quietly(job.id), timeout=30)
            raise JobTimeout(job.id, exc.timeout, cancelled=cancelled) from None
        except TimeoutError:
            self._run(self._async._cancel_quietly(job.id), timeout=30)
            raise
        runs = self._async._runs
        if not runs.settled(job.id, result):  # (else spare a trip to the loop)
            self._run(runs.settle(job.id, result))
        return result

    def cached_result(self, workflow: WorkflowLike, *,
                      overrides: dict[str, Any] | None = None, validate: bool = True,
                      **params: Any) -> Result | None:
        """The cached Result of this run, or None (see :meth:`AsyncClient.cached_result`)."""
        return self._run(self._async.cached_result(workflow, overrides=overrides,
                                                   validate=validate, **params))

    def prepare(self, workflow: WorkflowLike, *,
                overrides: dict[str, Any] | None = None, validate: bool = True,
                **params: Any) -> PreparedPrompt:
        """What :meth:`submit` would send, without sending it (see
        :meth:`AsyncClient.prepare`)."""
        return self._run(self._async.prepare(workflow, overrides=overrides, validate=validate,
                                             **params))

    def job(self, prompt_id: str) -> Job:
        """Follow a job submitted earlier (by this or another client)."""
        return Job(self._run(self._async.job(prompt_id)), self._loop)

    def jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        """Recent jobs as ``{"id", "status"}`` dicts, newest first."""
        return self._run(self._async.jobs(limit))

    def queue(self) -> list[dict[str, Any]]:
        """The queue: running jobs (position 0) then pending ones in the order they will run."""
        return self._run(self._async.queue())

    def cancel(self, prompt_id: str) -> bool:
        """Cancel one job: removed if pending, interrupted if running. True if it was live."""
        return self._run(self._async.cancel(prompt_id))

    def cancel_many(self, prompt_ids: list[str]) -> list[str]:
        """Cancel several jobs so that none of them starts meanwhile (see
        :meth:`AsyncClient.cancel_many`); the ids of those that were live."""
        return self._run(self._async.cancel_many(prompt_ids))

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt the running job (or the given one; on Cloud: every running job)."""
        self._run(self._async.interrupt(prompt_id))

    def clear_queue(self) -> None:
        """Remove every pending job (running ones carry on)."""
        self._run(self._async.clear_queue())

    def delete(self, prompt_ids: list[str]) -> None:
        """Remove pending jobs from the queue."""
        self._run(self._async.delete(prompt_ids))

    def upload_image(self, image: Any, *, name: str | None = None, subfolder: str = "",
                     overwrite: bool = False, kind: str = "input") -> str:
        """Upload a path, bytes, PIL image or numpy array; returns the name to put into a
        LoadImage input."""
        return self._run(self._async.upload_image(image, name=name, subfolder=subfolder,
                                                  overwrite=overwrite, kind=kind))

    def upload_mask(self, mask: Any, original: str, *, name: str | None = None,
                    subfolder: str = "", kind: str = "input") -> str:
        """Upload a mask for an uploaded image (its name as returned by upload_image)."""
        return self._run(self._async.upload_mask(mask, original, name=name,
                                                 subfolder=subfolder, kind=kind))

    def download(self, file: OutputFile | dict[str, str],
                 to: str | Path | None = None) -> bytes | Path:
        """An output file's bytes, or the path it was written to (see
        :meth:`AsyncClient.download`)."""
        return self._run(self._async.download(file, to))

    def object_info(self, refresh: bool = False) -> dict[str, Any]:
        """The server's node definitions (see :meth:`AsyncClient.object_info`)."""
        return self._run(self._async.object_info(refresh))

    def models(self, folder: str | None = "checkpoints") -> list[str]:
        """The model files the server has in ``folder`` (see :meth:`AsyncClient.models`)."""
        return self._run(self._async.models(folder))

    def system_stats(self) -> dict[str, Any]:
        """The server's ``/system_stats``: versions, devices, memory."""
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
        """Cloud: the account's status (checks the key). Local servers have no accounts."""
        return self._run(self._async.user())


"""One client's link to one server: :class:`Connection`.

It owns the transport (httpx, retries), the dialect (found out by asking the server, without the
key), the key (sent only once the server has shown that it speaks the Cloud API or Comfy API
v2), the embedded emulator when no server is named, the one websocket (or, on Comfy API v2, the
SSE stream of each followed job, :mod:`comfy_nb.client._sse`) and the routing of its events to
the jobs being followed, and every request about the server's queue, jobs, files and models.
Events that arrive while a submission waits for its answer are kept for the job the answer
names. On v2 the requests of its own routes go to :mod:`comfy_nb.client._v2` (jobs),
:mod:`~comfy_nb.client._v2_submit` and :mod:`~comfy_nb.client._v2_assets`; what v2 lacks (node
definitions, model lists, system stats) is asked of the v1 routes of the same origin, and is
:class:`~comfy_nb.errors.FeatureUnavailable` where the server has none.

Must not: stage, upload or validate workflows, or know the result cache (that is the run pipeline,
:mod:`comfy_nb.client._runs`); never put the key in a URL, a log line or an error it raises.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._config import Target
from .._secret import Secret
from ..errors import AuthenticationError, ComfyError, FeatureUnavailable, RequestError
from ..events import Event, Status
from ._backoff import Backoff, RetryPolicy
from ._connecting import identify, key_hint, start_emulator
from ._dialects import DIALECTS, Dialect, JobSnapshot, JobStatus, job_path
from ._events import EventSocket, WebSocketRefused
from ._sse import EventStreams
from ._submission import Submission, post_prompt
from ._transport import Transport
from ._v2 import PREFIX as V2_PREFIX
from ._v2 import V2_OUTCOMES, V2Dialect, unavailable
from ._v2_assets import download as v2_download
from ._v2_assets import upload as v2_upload
from ._v2_submit import post_job

if TYPE_CHECKING:
    from ..job import AsyncJob

log = logging.getLogger("comfy_nb")

POLL_BACKOFF_CAP = 10.0  # seconds: the longest wait between reads of a job whose reads fail
UNCLAIMED_EVENTS = 512  # events kept, while submitting, for jobs whose id is not known yet


class Connection:
    """The server of one client, and the jobs it follows there. ``target`` says where (and
    which key may go there); the other arguments are :class:`~comfy_nb.AsyncClient`'s."""

    def __init__(self, target: Target, *, dialect: str | None, websocket: bool, timeout: float,
                 connect_timeout: float, retry: RetryPolicy, poll_interval: float,
                 client_id: str | None, emulator_options: dict[str, Any] | None,
                 download_timeout: float | None) -> None:
        self._target = target
        self._offered_key = target.api_key  # may go to the server once it speaks Cloud
        self._api_key: Secret | None = None  # the key being sent (see open)
        self._forced_dialect = dialect
        self._use_websocket = websocket
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self.retry = retry
        self._download_timeout = download_timeout
        self.poll_interval = poll_interval
        self.client_id = client_id or uuid.uuid4().hex
        self._emulator_options = emulator_options or {}
        self.emulator: Any = None  # the embedded emulator this connection started, if any
        self._transport: Transport | None = None
        self._socket: EventSocket | None = None
        self._streams: EventStreams | None = None  # Comfy API v2: one SSE stream per job
        self._dialect: Dialect | None = None
        self._jobs: dict[str, AsyncJob] = {}
        self._submitting = 0  # submissions waiting for the server's answer
        self._unclaimed: collections.deque[Event] = collections.deque(maxlen=UNCLAIMED_EVENTS)
        self._opened = False
        self._closed = False
        self._open_lock: asyncio.Lock | None = None
        self.stats: dict[str, Any] | None = None  # system_stats, as read when connecting
        self.queue_remaining: int | None = None
        self.server_version: str | None = None  # from system_stats when the dialect is detected

    # -- what it is connected to ---------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._transport is None:
            return self._target.url or "(emulator, not started)"
        return self._transport.base_url

    @property
    def dialect(self) -> str:
        return self._dialect.name if self._dialect else (self._forced_dialect or "unknown")

    @property
    def api_key(self) -> Secret | None:
        """The key this connection sends the server (None to a local ComfyUI)."""
        return self._api_key

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def socket_connected(self) -> bool:
        return self._socket is not None and self._socket.connected

    @property
    def finished_follows_outcome(self) -> bool:
        """A local ComfyUI writes a job's history after announcing its outcome, just before
        ``Finished``."""
        return self.dialect == "local"

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect: start the emulator if needed, detect the dialect, open the websocket."""
        self._check_open()
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            self._check_open()
            if self._opened:
                return
            url = self._target.url
            forced = self._forced_dialect
            if url is not None and url.rstrip("/").endswith(V2_PREFIX):  # the v2 API's own URL
                url, forced = url.rstrip("/")[:-len(V2_PREFIX)], "v2"
            if url is None:
                self.emulator = await asyncio.to_thread(
                    start_emulator, self._target, self._forced_dialect, self._emulator_options)
                url = str(self.emulator.url)
                if self.emulator.api_key:  # its own key, for itself
                    self._offered_key = Secret(self.emulator.api_key)
            # no key until the server has shown that it speaks the Cloud API
            self._transport = Transport(url, timeout=self._timeout, retry=self.retry,
                                        download_timeout=self._download_timeout)
            try:
                name = forced or await self._detect_dialect()
                self._dialect = V2Dialect() if name == "v2" else DIALECTS[name]
                self._key_for(self._dialect.name)
                if isinstance(self._dialect, V2Dialect):
                    if self._use_websocket:
                        self._streams = EventStreams(self._transport, self._dialect,
                                                     self._route, self._nudge)
                elif self._use_websocket:
                    await self._open_socket()
            except BaseException:
                await self._release()
                raise
            self._opened = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this client is closed; create a new one")

    async def _detect_dialect(self) -> str:
        """``"cloud"`` or ``"local"``, asked without a key (see :func:`identify`)."""
        assert self._transport is not None
        found = await identify(self._transport, self._offered_key, self._target,
                               self._connect_timeout)
        self.stats = found.stats
        self.server_version = found.version
        return found.dialect

    def _key_for(self, dialect: str) -> None:
        """Send the offered key from now on if the server speaks the Cloud API (as
        ``X-API-Key``) or Comfy API v2 (as ``Authorization: Bearer``); never to a local ComfyUI
        (not even one that asked for a key while connecting)."""
        assert self._transport is not None
        self._api_key = self._offered_key if dialect in ("cloud", "v2") else None
        self._transport.api_key = self._api_key
        self._transport.bearer = dialect == "v2"
        if dialect in ("cloud", "v2") and self._api_key is None and self._target.key_withheld:
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

    async def close(self) -> None:
        """Stop following jobs, close the websocket and connections, stop an embedded
        emulator. Every later request is refused."""
        self._closed = True
        await self._release()

    async def _release(self) -> None:
        for job in list(self._jobs.values()):
            job.stop_watching()
        if self._socket is not None:
            await self._socket.close()
            self._socket = None
        if self._streams is not None:
            await self._streams.close()
            self._streams = None
        if self._transport is not None:
            await self._transport.aclose()
        if self.emulator is not None:
            await asyncio.to_thread(self.emulator.stop)
            self.emulator = None
        self._opened = False

    async def ready(self) -> Transport:
        """The transport, once connected (connecting first if needed)."""
        self._check_open()
        if not self._opened:
            await self.open()
        assert self._transport is not None
        return self._transport

    async def _ready_dialect(self) -> tuple[Transport, Dialect]:
        http = await self.ready()
        assert self._dialect is not None
        return http, self._dialect

    # -- events and the jobs they belong to --------------------------------------------------

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

    def _nudge(self, prompt_id: str) -> None:
        """Have a job read its state now (its event stream fell silent, or broke)."""
        job = self._jobs.get(prompt_id)
        if job is not None:
            job.wake()

    async def _resync(self) -> None:
        """After a reconnect, events may have been lost: re-read every live job."""
        for job in list(self._jobs.values()):
            job.wake()

    def submission(self, workflow: dict[str, Any], extra_data: dict[str, Any], front: bool,
                   prompt_id: str | None) -> Submission:
        """What posting ``workflow`` sends, in this server's dialect (see
        :meth:`~comfy_nb.client._submission.Submission.prepare`)."""
        assert self._dialect is not None, "connect first"
        return Submission.prepare(self._dialect, workflow, self.client_id, extra_data, front,
                                  prompt_id)

    async def post(self, submission: Submission) -> dict[str, Any]:
        """Post a submission (see :func:`~comfy_nb.client._submission.post_prompt`); events
        that arrive meanwhile for jobs this connection does not follow are kept for
        :meth:`follow`."""
        http, dialect = await self._ready_dialect()
        self._submitting += 1
        try:
            if isinstance(dialect, V2Dialect):
                answer = await post_job(http, dialect, submission, self.retry,
                                        known_jobs=lambda: set(self._jobs))
            else:
                answer = await post_prompt(http, dialect, submission, self.retry,
                                           known_jobs=lambda: set(self._jobs))
        except BaseException:
            self._submitting -= 1
            if not self._submitting:
                self._unclaimed.clear()
            raise
        self._submitting -= 1
        return answer

    def follow(self, job: AsyncJob) -> None:
        """Route the job's events to it, starting with those that came before its id did."""
        self._jobs[job.id] = job
        for event in [e for e in self._unclaimed if e.prompt_id == job.id]:
            job.feed(event)
        if not self._submitting:
            self._unclaimed.clear()
        if self._streams is not None and not job.done:
            self._streams.follow(job.id)

    def followed(self, prompt_id: str) -> AsyncJob | None:
        """The job of that id this connection follows, if any."""
        return self._jobs.get(prompt_id)

    def forget(self, job: AsyncJob) -> None:
        """Stop routing events to a job that ended."""
        if self._jobs.get(job.id) is job:
            del self._jobs[job.id]
            if self._streams is not None:
                self._streams.stop(job.id)

    def _asked_to_end(self, prompt_ids: list[str]) -> None:
        """Note, before the request goes, that this client was asked to end these jobs: an
        interruption read before its answer (or instead of it, the server gone) is theirs."""
        for prompt_id in prompt_ids:
            job = self._jobs.get(prompt_id)
            if job is not None:
                job.cancel_asked = True

    def _removed_from_queue(self, prompt_ids: list[str]) -> None:
        """Jobs this client deleted from the queue end as cancelled (a local server forgets
        them entirely, which would otherwise look like a lost job)."""
        for prompt_id in prompt_ids:
            job = self._jobs.get(prompt_id)
            if job is not None:
                job.removed_from_queue()

    def poll_delay(self, *, completion_hinted: bool, unsure: bool = False,
                   failures: int = 0) -> float:
        """Seconds until a job is read again: soon after a completion hint; rarely while the
        websocket reports progress; at ``poll_interval`` without a websocket, or while the
        server does not know the job (the websocket cannot tell that it was lost). After
        ``failures`` failed reads in a row, exponentially longer (with jitter), up to
        :data:`POLL_BACKOFF_CAP`."""
        if completion_hinted:
            interval = 0.1
        elif not unsure and self.socket_connected:
            interval = max(self.poll_interval, 5.0)
        else:
            interval = self.poll_interval * random.uniform(0.9, 1.1)
        if failures > 0:
            backoff = Backoff(interval, max(interval, POLL_BACKOFF_CAP), (0.8, 1.0))
            interval = backoff.delay(failures)
        return interval

    async def snapshot(self, prompt_id: str) -> JobSnapshot:
        http, dialect = await self._ready_dialect()
        snap = await dialect.snapshot(http, prompt_id)
        if self._streams is not None and snap.status.terminal:  # read before its stream said it
            self._streams.conclude(prompt_id, V2_OUTCOMES[snap.status])
        return snap

    # -- the queue -----------------------------------------------------------------------------

    async def jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        http, dialect = await self._ready_dialect()
        return await dialect.recent_jobs(http, limit)

    async def queue(self) -> list[dict[str, Any]]:
        http, dialect = await self._ready_dialect()
        return [{"id": e.prompt_id, "position": e.position, "running": e.running}
                for e in await dialect.queue(http)]

    async def cancel(self, prompt_id: str) -> bool:
        job_path(prompt_id)  # refuses an id that could address another endpoint
        http, dialect = await self._ready_dialect()
        self._asked_to_end([prompt_id])
        cancelled = await dialect.cancel(http, prompt_id)
        if cancelled:
            self._removed_from_queue([prompt_id])
        return cancelled

    async def cancel_many(self, prompt_ids: list[str]) -> list[str]:
        http, dialect = await self._ready_dialect()
        self._asked_to_end(prompt_ids)
        cancelled = await dialect.cancel_many(http, list(prompt_ids))
        self._removed_from_queue(cancelled)
        return cancelled

    async def interrupt(self, prompt_id: str | None = None) -> None:
        http, dialect = await self._ready_dialect()
        self._asked_to_end([prompt_id] if prompt_id else [
            job.id for job in self._jobs.values() if job.status is JobStatus.RUNNING])
        await dialect.interrupt(http, prompt_id)

    async def clear_queue(self) -> None:
        http, dialect = await self._ready_dialect()
        await dialect.clear_queue(http)
        self._removed_from_queue([job.id for job in self._jobs.values()
                                  if job.status is JobStatus.QUEUED])

    async def delete(self, prompt_ids: list[str]) -> None:
        http, dialect = await self._ready_dialect()
        self._asked_to_end(prompt_ids)
        await dialect.delete_pending(http, prompt_ids)
        self._removed_from_queue(prompt_ids)

    # -- files and the server ------------------------------------------------------------------

    async def upload(self, path: str, filename: str, data: bytes, content_type: str,
                     fields: dict[str, str]) -> dict[str, Any]:
        """POST one file to an upload route; the server's answer. On Comfy API v2 the file
        becomes an input asset (see :mod:`comfy_nb.client._v2_assets`)."""
        http, dialect = await self._ready_dialect()
        if isinstance(dialect, V2Dialect):
            if path != "/api/upload/image":
                raise FeatureUnavailable("Comfy API v2 has no mask uploads: paint the mask into "
                                         "the image's alpha channel and upload that")
            return await v2_upload(http, dialect, filename, data, content_type)
        response = await http.request("POST", path, files={"image": (filename, data,
                                                                      content_type)},
                                      data=fields, what="uploading " + filename)
        answer: dict[str, Any] = response.json()
        return answer

    async def download(self, params: dict[str, str], to: Path | None) -> bytes | Path:
        http, dialect = await self._ready_dialect()
        if isinstance(dialect, V2Dialect):
            return await v2_download(http, dialect, params, to)
        return await http.download("/api/view", params, to=to)

    async def object_info(self) -> dict[str, Any]:
        """The server's node definitions, asked now (on Comfy API v2, of the v1 route of the
        same origin: :class:`FeatureUnavailable` where there is none)."""
        http = await self.ready()
        info: dict[str, Any] = (await self._v1(http, "/api/object_info",
                                               "reading node definitions",
                                               "node definitions (interact, pre-submit "
                                               "validation, %comfy nodes)")).json()
        return info

    async def _v1(self, http: Transport, path: str, what: str, feature: str) -> Any:
        """GET a v1 route; on a v2 server without it, :class:`FeatureUnavailable`."""
        try:
            return await http.request("GET", path, what=what)
        except RequestError as exc:
            if self.dialect != "v2" or exc.status not in (404, 405):
                raise
        raise FeatureUnavailable(unavailable(feature))

    async def models(self, folder: str | None = "checkpoints") -> list[str]:
        http, dialect = await self._ready_dialect()
        return await dialect.models(http, folder)

    async def system_stats(self) -> dict[str, Any]:
        http = await self.ready()
        stats: dict[str, Any] = (await self._v1(http, "/api/system_stats",
                                                "reading system stats",
                                                "system stats")).json()
        return stats

    async def user(self) -> dict[str, Any]:
        http = await self.ready()
        if self.dialect == "v2":
            return {"status": "Comfy API v2 server (no account endpoint)"}
        if self.dialect != "cloud":
            return {"status": "local server (no account)"}
        user: dict[str, Any] = (await http.request("GET", "/api/user",
                                                   what="checking the API key")).json()
        return user

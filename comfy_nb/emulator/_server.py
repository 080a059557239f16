"""One emulated server: its options, folders, queue, workers, websocket hub and faults, the aiohttp
application of its dialect, and the thread that runs it for :func:`comfy_nb.emulator.serve`.

Everything a route handler needs is on :class:`EmulatorState` (``request.app[STATE]``).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from .._cloud_plans import TIER_CONCURRENCY
from ._executor import Worker, now_ms
from ._faults import Faults
from ._hub import SocketHub
from ._object_info import current_object_info
from ._queue import PromptQueue, QueueItem

Dialect = Literal["local", "cloud", "v2"]
STATE: web.AppKey[EmulatorState] = web.AppKey("comfy_nb_emulator_state")
STAND_IN_NOTICE = (
    "comfy_nb emulator: model nodes render deterministic stand-in pixels, not model output"
)


def bare_host(host: str) -> str:
    """``host`` as sockets take it: an IPv6 address without the brackets a URL needs."""
    host = host.strip()
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def netloc(host: str, port: int) -> str:
    """``host:port`` as a URL writes it: an IPv6 address in brackets (``[::1]:8188``), its zone
    (``%eth0``) percent-encoded."""
    host = bare_host(host)
    if ":" in host:
        return f"[{host.replace('%', '%25')}]:{port}"
    return f"{host}:{port}"


def http_url(host: str, port: int) -> str:
    """The base URL of a server listening on ``host`` and ``port``."""
    return f"http://{netloc(host, port)}"


@dataclass
class EmulatorOptions:
    """How an emulated server behaves. Every field can be passed to ``serve(**options)``."""

    dialect: Dialect = "local"
    host: str = "127.0.0.1"
    port: int = 0
    step_delay: float = 0.05  # seconds per sampler step (KSampler progress)
    node_delay: float = 0.0  # extra seconds for every executed node (slow servers, queue tests)
    preview_method: Literal["auto", "none"] = "auto"  # "none" = no sampler previews
    preview_size: int = 512
    data_dir: Path | None = None  # input/, output/, temp/ live here (a temporary folder if None)
    api_key: str | None = None  # cloud: the account's key (generated when None)
    tier: Literal["standard", "creator", "pro"] = "creator"  # cloud: 1, 3 or 5 concurrent jobs
    concurrency: int | None = None  # overrides the tier's limit
    signed_url_ttl: float = 3600.0  # cloud: seconds a storage URL stays valid
    max_upload_size: int = 104857600  # local --max-upload-size; cloud uses 50 MB
    checkpoints: tuple[str, ...] | None = None  # checkpoint files it has (None: the recorded's)
    # cloud: make a client-sent prompt_id the job's id (and answer a repeat with that job). Off:
    # the id is ignored and the server picks its own, as Cloud's PromptRequest (which has no
    # prompt_id) implies. Local always uses it, as ComfyUI does.
    cloud_honours_prompt_id: bool = False
    # v2: the bearer token /api/v2/* needs (None: no auth, as the proxy); kept out of the repr
    token: str | None = field(default=None, repr=False)
    sse_heartbeat: float = 15.0  # v2: seconds of silence before an event stream's keepalive

    def __post_init__(self) -> None:
        self.host = bare_host(self.host)
        if self.dialect not in ("local", "cloud", "v2"):
            raise ValueError(f"dialect must be 'local', 'cloud' or 'v2', not {self.dialect!r}")
        if self.sse_heartbeat <= 0:
            raise ValueError("sse_heartbeat must be > 0")
        if self.tier not in TIER_CONCURRENCY:
            raise ValueError(f"tier must be one of {sorted(TIER_CONCURRENCY)}, not {self.tier!r}")
        if self.step_delay < 0 or self.node_delay < 0:
            raise ValueError("step_delay and node_delay must be >= 0")


@dataclass
class JobRecord:
    """Cloud-side bookkeeping of one job (also kept for local prompts; local never serves it)."""

    prompt_id: str
    account: str
    prompt: dict[str, Any]
    create_time: int
    raw_status: str = "submitted"
    update_time: int = 0
    execution_start_time: int | None = None
    execution_end_time: int | None = None
    history: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class EmulatorState:
    """Shared state of one emulated server."""

    def __init__(self, options: EmulatorOptions) -> None:
        self.options = options
        self.faults = Faults()
        self.hub = SocketHub(options.dialect, self.faults)
        self.api_key = options.api_key or (
            "comfyui-emulator-" + secrets.token_hex(16) if options.dialect == "cloud" else None
        )
        if options.dialect == "v2":
            self.api_key = options.token
        self.account = "emulated-account" if options.dialect == "cloud" else ""
        self._owns_data_dir = options.data_dir is None
        root = Path(options.data_dir or tempfile.mkdtemp(prefix="comfy-nb-emulator-"))
        self.data_dir = root
        self.input_dir = root / "input"
        self.output_dir = root / "output"
        self.temp_dir = root / "temp"
        for folder in (self.input_dir, self.output_dir):
            folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.temp_dir, ignore_errors=True)  # ComfyUI wipes temp/ on start
        self.temp_dir.mkdir(parents=True)
        _seed_example_input(self.input_dir)
        self.number = 0
        self.number_lock = threading.Lock()
        self.jobs: dict[str, JobRecord] = {}
        self.jobs_lock = threading.Lock()
        self.started_at = time.time()
        self.storage_url = ""  # cloud: base URL of the storage origin
        self.storage_secret = secrets.token_bytes(32)
        self.queue = PromptQueue(on_change=self.queue_updated)
        concurrency = 1
        if options.dialect == "cloud":
            concurrency = options.concurrency or TIER_CONCURRENCY[options.tier]
        self.workers = [Worker(self, i) for i in range(concurrency)]
        self.max_concurrent_seen = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start_workers(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.interrupt()
        self.queue.close()
        for worker in self.workers:
            worker.join(timeout=5)

    def cleanup(self) -> None:
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- queue ---------------------------------------------------------------------------------

    def next_number(self, body: dict[str, Any]) -> float | int:
        """ComfyUI's numbering: an explicit ``number`` is used as a float; otherwise the
        counter, negated with ``front``; the counter moves only when it is used."""
        if "number" in body:
            return float(body["number"])
        with self.number_lock:
            number = self.number
            self.number += 1
        return -number if body.get("front") else number

    def enqueue(self, item: QueueItem) -> None:
        with self.jobs_lock:
            self.jobs[item.prompt_id] = JobRecord(
                prompt_id=item.prompt_id, account=item.account, prompt=item.prompt,
                create_time=item.create_time, raw_status="queued_waiting",
                update_time=item.create_time,
            )
        self.queue.put(item)

    def queue_updated(self) -> None:
        """Broadcast ``status`` (queue_remaining) to every socket, as ComfyUI does."""
        if self.options.dialect == "cloud":
            remaining = self.queue.remaining(self.account)
            self.hub.send_json("status", {"status": {"exec_info": {"queue_remaining": remaining}}},
                               self.account)
        else:
            self.hub.send_json(
                "status", {"status": {"exec_info": {"queue_remaining": self.queue.remaining()}}},
                None,
            )

    def job_started(self, item: QueueItem) -> None:
        with self.jobs_lock:
            running = sum(worker.job is not None for worker in self.workers)
            self.max_concurrent_seen = max(self.max_concurrent_seen, running)
            record = self.jobs.get(item.prompt_id)
            if record is not None:
                record.raw_status = "executing"
                record.execution_start_time = record.update_time = now_ms()

    def finish_job(
        self, item_id: int, item: QueueItem, history: dict[str, Any] | None, status: str
    ) -> None:
        with self.jobs_lock:
            record = self.jobs.get(item.prompt_id)
            if record is not None:
                record.raw_status = status
                record.execution_end_time = record.update_time = now_ms()
                record.history = history
        self.queue.task_done(item_id, history)

    def cancel_pending(self, prompt_ids: set[str] | None) -> list[str]:
        """Delete pending prompts (all when ``prompt_ids`` is None) of this server/account."""

        def matches(item: QueueItem) -> bool:
            return prompt_ids is None or item.prompt_id in prompt_ids

        removed = self.queue.delete_pending(matches)
        with self.jobs_lock:
            for pid in removed:
                record = self.jobs.get(pid)
                if record is not None and self.options.dialect == "cloud":
                    record.raw_status = "cancelled"
                    record.update_time = now_ms()
                elif record is not None:
                    del self.jobs[pid]
        return removed

    def interrupt(self, prompt_id: str | None = None) -> bool:
        return any([worker.interrupt(prompt_id) for worker in self.workers])

    def restart(self) -> None:
        """Emulate a server restart: running jobs stop, queue, history and caches are lost."""
        for worker in self.workers:
            worker.interrupt(discard=True)
            worker.cache.clear()
        self.queue.wipe()
        with self.jobs_lock:
            self.jobs.clear()
        with self.number_lock:
            self.number = 0
        self.hub.disconnect_all()

    # -- node definitions --------------------------------------------------------------------

    def object_info(self, classes: Iterable[str] | None = None) -> dict[str, Any]:
        """The served node definitions (only ``classes``, when named)."""
        return current_object_info(self.input_dir, classes, self.options.checkpoints)


def _seed_example_input(input_dir: Path) -> None:
    """ComfyUI ships ``input/example.png``; so does the emulator (a small gradient picture)."""
    target = input_dir / "example.png"
    if target.exists():
        return
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:64, 0:64]
    rgb = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).clip(0, 255).astype("uint8")
    Image.fromarray(rgb, "RGB").save(target)


class ServerThread:
    """Runs an emulator's aiohttp application(s) on an event loop in a background thread."""

    def __init__(self, state: EmulatorState, build: Any) -> None:
        self.state = state
        self._build = build
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="comfy-nb-emulator",
                                        daemon=True)
        self._runners: list[web.AppRunner] = []
        self._stopped = False
        self.url = ""

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        try:
            self.url = future.result(timeout=30)
        except BaseException:
            self.stop()
            raise
        self.state.start_workers()

    async def _start(self) -> str:
        apps: list[tuple[web.Application, int]] = self._build(self.state)
        self.state.hub.start(asyncio.get_running_loop())
        urls = []
        for app, port in apps:
            runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, self.state.options.host, port)
            await site.start()
            self._runners.append(runner)
            server = site._server
            assert server is not None
            bound = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            urls.append(http_url(self.state.options.host, bound))
        if len(urls) > 1:
            self.state.storage_url = urls[1]
        return urls[0]

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.state.stop_workers()
        if self._loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._stop(), self._loop)
            try:
                future.result(timeout=10)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=10)
        if not self._loop.is_running() and self._thread.ident is not None:
            self._loop.close()
        self.state.cleanup()

    async def _stop(self) -> None:
        await self.state.hub.stop()
        for runner in reversed(self._runners):
            await runner.cleanup()

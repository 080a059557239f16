"""Recording: :class:`Recording` (and :func:`record`) writes every job any client of this
process submits, once it ended, into a folder (the layout is drawn in :mod:`comfy_nb.recordings`).
It listens through the run pipeline's ``job_observers`` hook; each run is gathered on the client's
event loop and written on a worker thread, staged in a hidden folder and renamed into place.

Owns: what a recording keeps of a run, and writing it. Must not: write an API key, a signed URL
or ``extra_data`` into a recording (a run whose files or text would contain a key sent with it is
not recorded), or change how a job runs.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import json
import logging
import os
import secrets
import shutil
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._cache_keys import without_signed_urls
from .._version import package_version
from ..client._runs import SubmittedRun, job_observers
from ..errors import ComfyError, ExecutionFailed
from ..events import Cached, Event, NodeStarted, Preview, Progress
from ..provenance import public_url
from ..result import OutputFile, Result, safe_filename
from ._layout import (
    FORMAT,
    INDEX,
    JOB_FILE,
    NODE_DEFINITIONS,
    OUTPUTS_FOLDER,
    RUN_FOLDER,
    WORKFLOW_FILE,
    dump_json,
    now_stamp,
    sha256_hex,
    write_atomically,
)
from ._matching import match_form, match_key
from ._reading import load_recording, read_json

if TYPE_CHECKING:
    from ..client._client import AsyncClient
    from ..job import AsyncJob

log = logging.getLogger("comfy_nb")


def _json_safe(value: Any) -> Any:
    """Plain JSON: what is not (an uploaded image, say) becomes its type name."""
    return json.loads(json.dumps(value, default=lambda v: f"<{type(v).__name__}>"))


def _summary(events: list[Event]) -> dict[str, Any]:
    """What the progress display needs from a run's events: the nodes in the order they ran,
    the nodes the server had cached, each node's step count, how many previews came."""
    executed: list[str] = []
    cached: list[str] = []
    steps: dict[str, float] = {}
    previews = 0
    for event in events:
        if isinstance(event, NodeStarted) and event.node_id not in executed:
            executed.append(event.node_id)
        elif isinstance(event, Cached):
            cached += [node for node in event.nodes if node not in cached]
        elif isinstance(event, Progress):
            steps[event.node_id] = max(steps.get(event.node_id, 0), event.max)
        elif isinstance(event, Preview):
            previews += 1
    return {"executed": executed, "cached": cached, "steps": steps, "previews": previews}


@dataclass
class _Capture:
    """Everything about one ended job that goes into its folder."""

    index: int
    prompt_id: str
    status: str
    workflow: dict[str, Any]
    parameters: dict[str, Any]
    resolved_seeds: dict[str, int]
    random: list[str]
    inputs: dict[str, str]
    outputs: dict[str, Any]
    files: list[tuple[OutputFile, bytes]]
    events: dict[str, Any]
    error: dict[str, Any] | None
    server: dict[str, Any]
    node_definitions: dict[str, Any]
    credentials: list[str]


class Recording:
    """Writes every job of this process into a folder while active (see :func:`record`).

    A context manager (``with comfy_nb.record("recording"): ...``); :meth:`stop` ends it. Jobs
    are written once they end, on the client's event loop; ``client.run`` returns only after its
    job was written, and :meth:`stop` waits for jobs being written. A run identical to one
    recorded before, with identical output files, is not stored twice.

    Starting a recording into a folder that holds one replaces it once the first job is
    written (``append=True`` adds to it instead); a folder holding anything else is refused."""

    def __init__(self, path: str | os.PathLike[str] = "recording", *,
                 append: bool = False) -> None:
        self.path = Path(path)
        self._shown_as = os.fspath(path)
        if self.path.exists() and not self.path.is_dir():
            raise FileExistsError(f"{self._shown_as!r} is a file, not a recording folder")
        existing = (self.path / INDEX).is_file()
        if self.path.is_dir() and not existing and any(
                not child.name.startswith(".") for child in self.path.iterdir()):
            raise FileExistsError(f"{self._shown_as!r} holds files but no recording; record "
                                  "into a new or empty folder")
        self._check_writable()
        self._lock = threading.Lock()  # state shared by event loops and the caller
        self._write_lock = threading.Lock()  # one job written at a time
        self._active = False
        self._replace = existing and not append  # an older recording to clear first
        self._pending: dict[concurrent.futures.Future[None], asyncio.AbstractEventLoop] = {}
        self._stats: weakref.WeakKeyDictionary[AsyncClient, dict[str, Any]] = \
            weakref.WeakKeyDictionary()
        self._index: dict[str, Any] = {"format": FORMAT, "jobs": []}
        self._node_definitions: dict[str, Any] = {}
        self._stored: dict[str, list[tuple[str, list[str]]]] = {}  # key -> (status, file hashes)
        self._next = 1
        self.written: list[str] = []  # folders written by this recording, in order
        if existing and append:
            self._adopt()

    def _adopt(self) -> None:
        """Continue the recording already in the folder (``append=True``)."""
        loaded = load_recording(self.path, require_definitions=False)
        self._index = read_json(self.path / INDEX)
        self._node_definitions = dict(loaded.object_info or {})
        for run in loaded.runs:
            self._stored.setdefault(run.key, []).append(
                (run.status, [str(item.get("sha256")) for item in run.files]))
            match = RUN_FOLDER.match(run.name)
            if match:
                self._next = max(self._next, int(match.group(1)) + 1)

    def _check_writable(self) -> None:
        """Make the folder and write (then remove) a probe file in it, so a folder that cannot
        hold the recording is refused now rather than at the first job."""
        probe = self.path / f".comfy_nb-probe-{secrets.token_hex(4)}"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise type(exc)(f"cannot record into {self._shown_as!r}: {reason}; record into a "
                            "folder you can write to") from None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._active

    def start(self) -> Recording:
        """Start recording (:func:`record` does this)."""
        with self._lock:
            if not self._active:
                self._active = True
                job_observers.append(self._observe)
                atexit.register(self._at_exit)
        return self

    def stop(self, timeout: float | None = 60) -> None:
        """Stop recording; wait (up to ``timeout`` seconds) for jobs being written. Jobs still
        running are not recorded."""
        pending = self._halt()
        if not pending:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and running in pending.values():
            raise RuntimeError("stop() would block the event loop that writes the recording; "
                               "use `await recording.astop()`")
        concurrent.futures.wait(list(pending), timeout)

    async def astop(self, timeout: float | None = 60) -> None:
        """:meth:`stop` for coroutines."""
        pending = self._halt()
        if pending:
            await asyncio.wait([asyncio.wrap_future(f) for f in pending], timeout=timeout)

    def _halt(self) -> dict[concurrent.futures.Future[None], asyncio.AbstractEventLoop]:
        with self._lock:
            if self._active:
                self._active = False
                with contextlib.suppress(ValueError):
                    job_observers.remove(self._observe)
                atexit.unregister(self._at_exit)
            return dict(self._pending)

    def _at_exit(self) -> None:
        try:
            self.stop(timeout=10)
        except Exception:  # never fail interpreter shutdown
            log.exception("comfy_nb: finishing the recording %s failed", self._shown_as)

    def __enter__(self) -> Recording:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Recording:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    def __repr__(self) -> str:
        state = "recording" if self._active else "stopped"
        count = len(self._index.get("jobs", []))
        return f"<Recording {self._shown_as!r}: {count} run{'s' if count != 1 else ''}, {state}>"

    # -- capturing (on the client's event loop) ------------------------------------------------

    def _observe(self, run: SubmittedRun) -> Any:
        """The client's ``job_observers`` hook: called right after each submit."""
        with self._lock:
            if not self._active:
                return None
            index = self._next
            self._next += 1
        if run.server_stats is not None:
            self._stats.setdefault(run.client, run.server_stats)
        return self._capture(run.client, run.job, index, dict(run.inputs),
                             sorted(run.staged.seeds), list(run.credentials))

    async def _capture(self, client: AsyncClient, job: AsyncJob, index: int,
                       inputs: dict[str, str], random: list[str], credentials: list[str]) -> None:
        result: Result | None = None
        error: ExecutionFailed | None = None
        try:
            result = await job.wait()
        except ExecutionFailed as exc:
            error = exc
        except (ComfyError, RuntimeError):  # cancelled, lost, or the client closed: not a run
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._lock:
            if not self._active:
                return
            self._pending[done] = asyncio.get_running_loop()
        try:
            capture = await self._gather(client, job, index, inputs, random, credentials,
                                         result, error)
            if capture is not None:
                await asyncio.to_thread(self._write, capture)
        except Exception as exc:
            log.warning("comfy_nb: job %s was not recorded: %s", job.id, exc)
        finally:
            with self._lock:
                self._pending.pop(done, None)
            done.set_result(None)

    async def _server(self, client: AsyncClient) -> dict[str, Any]:
        """The server as a recording names it: public URL, dialect, version, emulator or not."""
        stats = self._stats.get(client)
        if stats is None:
            try:
                stats = await client.system_stats()
            except ComfyError:
                stats = {}
            self._stats[client] = stats
        emulator = stats.get("emulator") if isinstance(stats, dict) else None
        server: dict[str, Any] = {"dialect": client.dialect, "version": client.server_version,
                                  "emulator": isinstance(emulator, dict)}
        if isinstance(emulator, dict):  # its port changes with every start: not worth a diff
            if isinstance(emulator.get("notice"), str):
                server["notice"] = emulator["notice"]
        else:
            server["url"] = public_url(client.url)
        return server

    async def _gather(self, client: AsyncClient, job: AsyncJob, index: int,
                      inputs: dict[str, str], random: list[str], credentials: list[str],
                      result: Result | None, error: ExecutionFailed | None) -> _Capture | None:
        if not isinstance(job.workflow, dict):
            return None
        events: list[Event] = []
        job.on(events.append)  # the job's events so far: all of them, as it ended
        files: list[tuple[OutputFile, bytes]] = []
        if result is not None:
            limit = asyncio.Semaphore(4)

            async def read(file: OutputFile) -> bytes:
                async with limit:
                    return await file.aread()

            blobs = await asyncio.gather(*(read(file) for file in result.files))
            files = list(zip(result.files, blobs, strict=True))
        classes = {str(node.get("class_type")) for node in job.workflow.values()
                   if isinstance(node, dict)}
        try:
            info = await client.object_info()
        except ComfyError:
            info = {}
        failure = None
        if error is not None:
            failure = {"node_id": error.node_id, "node_type": error.node_type,
                       "node_title": error.node_title, "exception_type": error.exception_type,
                       "exception_message": error.exception_message,
                       "traceback": list(error.traceback)}
        return _Capture(
            index=index, prompt_id=job.id, status="failed" if error else "succeeded",
            workflow=job.workflow, parameters=_json_safe(job.parameters),
            resolved_seeds=dict(job.resolved_seeds), random=random, inputs=inputs,
            outputs=without_signed_urls(dict(result.outputs)) if result is not None else {},
            files=files, events=_summary(events), error=failure,
            server=await self._server(client),
            node_definitions={name: info[name] for name in classes if name in info},
            credentials=credentials)

    # -- writing (on a worker thread) ----------------------------------------------------------

    def _write(self, capture: _Capture) -> None:
        form = match_form(capture.workflow, capture.inputs, capture.random)
        key = match_key(form, capture.inputs)
        hashes = [sha256_hex(data) for _, data in capture.files]
        with self._write_lock:
            if (capture.status, hashes) in self._stored.get(key, []):
                return  # recorded already, byte for byte
            folder = f"{capture.index:02d}-{key[:8]}"
            recorded = now_stamp()
            counts: dict[str, int] = {}
            listed = []
            for file, data in capture.files:
                # named by node, not by the server's counter: a new recording of the same
                # runs has the same file names
                counts[file.node_id] = counts.get(file.node_id, 0) + 1
                suffix = os.path.splitext(safe_filename(file.filename))[1][:16]
                name = safe_filename(f"node{file.node_id}-{counts[file.node_id]}{suffix}")
                listed.append({"node_id": file.node_id, "filename": file.filename,
                               "subfolder": file.subfolder, "type": file.type,
                               "path": f"{OUTPUTS_FOLDER}/{name}", "size": len(data),
                               "sha256": sha256_hex(data)})
            job = {"format": FORMAT, "comfy_nb": package_version(), "prompt_id": capture.prompt_id,
                   "status": capture.status, "recorded": recorded, "server": capture.server,
                   "parameters": capture.parameters, "resolved_seeds": capture.resolved_seeds,
                   "random": capture.random, "inputs": capture.inputs,
                   "outputs": capture.outputs, "files": listed, "events": capture.events,
                   "error": capture.error}
            job_text, workflow_text = dump_json(job), dump_json(capture.workflow)
            secrets_found = [secret for secret in capture.credentials if secret and (
                secret in job_text or secret in workflow_text
                or any(secret.encode() in data for _, data in capture.files))]
            if secrets_found:
                log.warning("comfy_nb: job %s was not recorded: it contains a key it was sent "
                            "with", capture.prompt_id)
                return
            if self._replace:
                self._clear()
                self._replace = False
            self.path.mkdir(parents=True, exist_ok=True)
            staging = self.path / f".staging-{secrets.token_hex(6)}"
            try:
                (staging / OUTPUTS_FOLDER).mkdir(parents=True)
                for (_, data), item in zip(capture.files, listed, strict=True):
                    (staging / str(item["path"])).write_bytes(data)
                (staging / WORKFLOW_FILE).write_text(workflow_text, encoding="utf-8")
                (staging / JOB_FILE).write_text(job_text, encoding="utf-8")
                target = self.path / folder
                if target.exists():  # a run of an older recording under the same name
                    shutil.rmtree(target)
                os.rename(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            self._stored.setdefault(key, []).append((capture.status, hashes))
            self.written.append(folder)
            if not set(capture.node_definitions) <= set(self._node_definitions) \
                    or not (self.path / NODE_DEFINITIONS).is_file():  # even with none known
                self._node_definitions.update(capture.node_definitions)
                write_atomically(self.path / NODE_DEFINITIONS,
                                 dump_json(dict(sorted(self._node_definitions.items())),
                                           sort_keys=False))
            jobs = [entry for entry in self._index.get("jobs", []) if entry["folder"] != folder]
            jobs.append({"folder": folder, "status": capture.status})
            jobs.sort(key=lambda entry: int(str(entry["folder"]).split("-")[0]))
            self._index = {"format": FORMAT, "comfy_nb": package_version(),
                           "created": self._index.get("created") or recorded,
                           "server": self._index.get("server") or capture.server, "jobs": jobs}
            write_atomically(self.path / INDEX, dump_json(self._index))

    def _clear(self) -> None:
        """Remove the older recording in the folder: its index, node definitions and runs
        (nothing else)."""
        for name in (INDEX, NODE_DEFINITIONS):
            (self.path / name).unlink(missing_ok=True)
        for child in self.path.iterdir():
            if child.is_dir() and RUN_FOLDER.match(child.name) and (child / JOB_FILE).is_file():
                shutil.rmtree(child)


def record(path: str | os.PathLike[str] = "recording", *, append: bool = False) -> Recording:
    """Record every job this process runs into the folder ``path`` (next to the notebook when
    relative), until ``recording.stop()``; replay them with :func:`replay`. See
    :class:`Recording` for ``append`` and the folder's layout in :mod:`comfy_nb.recordings`."""
    return Recording(path, append=append).start()

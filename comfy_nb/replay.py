"""Record and replay: a notebook's runs kept as plain files, served again with no server.

``record(path)`` starts a :class:`Recording`: every job any client of this process submits is
written, once it ended (succeeded or failed; run on the server or served by the result cache),
into ``path``::

    recording/
      recording.json           the index: comfy_nb version, when, which server (no URL for the
                               emulator, whose port changes), the runs in order
      object_info.json         the server's definitions of the node classes the runs used
      01-1a2b3c4d/             one folder per run: <number>-<first 8 hex digits of its match key>
        workflow.json          the API-format workflow as submitted (sorted keys, one-space indent)
        job.json               prompt id, parameters, resolved seeds, status, outputs, a summary
                               of the events the progress display needs, the error of a failure;
                               each once (the outputs' provenance is rebuilt from them)
        outputs/node9-1.png    the output files, byte for byte as the server sent them

``replay(path)`` gives a :class:`ReplayClient`: the part of the :class:`~comfy_nb.Client` surface
the notebook layer uses, serving each submitted run from the recording. A run is served only if
its *match key* equals a recorded one's: the API workflow after overrides (node titles left out),
with each seed the run asked to be ``"random"`` standing as ``"random"`` (so a ``--seed random``
cell replays) and each uploaded file standing as the SHA-256 of its bytes. Anything else raises
:class:`ReplayMismatch`, naming the closest recorded run and the inputs that differ — a near
match is never served. Results are :class:`ReplayedResult` objects labelled "replayed from
<date>, <server>".

Owns: the recording's layout, the match key, recording through the client's ``job_observers``
hook, and the replaying client. Must not: make any network request while replaying (every
method that would needs a server raises :class:`ReplayError`), or write an API key, a signed URL
or ``extra_data`` into a recording (server URLs are stored without credentials or query, output
mappings without signed URLs, and a run whose files or text would contain a key sent with it is
not recorded).

Limits: a file input given as an http(s) URL cannot be replayed (it would be downloaded to be
compared); an editor-format workflow is converted with the recorded node definitions only.
``comfy_nb.replay`` is the function :func:`replay`; import this module's other names with
``from comfy_nb.replay import ...``.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import datetime
import hashlib
import html
import json
import logging
import os
import re
import secrets
import shutil
import threading
import uuid
import weakref
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ._version import package_version
from .cache import _without_signed_urls, cache_key
from .client._caching import UPLOAD_MARK, keyed
from .client._client import AsyncClient, Client
from .client._dialects import JobSnapshot, JobStatus, job_path
from .client._runs import SubmittedRun, job_observers
from .client._staging import Staged, Stager, WorkflowLike
from .client._uploads import upload_payload
from .errors import ComfyError, ExecutionFailed, ReplayError, ReplayMismatch
from .events import (
    Cached,
    Event,
    Failed,
    Finished,
    NodeExecuted,
    NodeStarted,
    Preview,
    Progress,
    Started,
    Succeeded,
)
from .job import AsyncJob
from .provenance import public_url
from .result import OutputFile, Result, safe_filename

__all__ = [
    "AsyncReplayClient",
    "RecordedRun",
    "Recording",
    "ReplayClient",
    "ReplayError",
    "ReplayMismatch",
    "ReplayedFrom",
    "ReplayedResult",
    "record",
    "replay",
]

log = logging.getLogger("comfy_nb")

FORMAT = 1  # of recording.json and job.json
INDEX = "recording.json"
NODE_DEFINITIONS = "object_info.json"
_JOB = "job.json"
_WORKFLOW = "workflow.json"
_OUTPUTS = "outputs"
_FOLDER = re.compile(r"^(\d{2,})-[0-9a-f]{8}$")
_KEY_SPACE = "comfy_nb-replay"  # the "server" of cache_key: a recording serves any server's runs
_MAX_DIFFERENCES = 8


# -- what a replayed result carries ------------------------------------------------------------


class ReplayedFrom(NamedTuple):
    """When and where a replayed run was recorded."""

    date: str  # "2025-01-31 14:05 UTC"
    server: str  # "http://127.0.0.1:8188 (local, ComfyUI 0.3.64)"

    @property
    def label(self) -> str:
        return f"replayed from {self.date}, {self.server}"


class ReplayedResult(Result):
    """A :class:`~comfy_nb.Result` served from a recording; :attr:`replayed_from` says when and
    where it was recorded, and every rendering of it says so too."""

    def __init__(self, prompt_id: str, outputs: dict[str, Any], *,
                 replayed_from: ReplayedFrom, **options: Any) -> None:
        super().__init__(prompt_id, outputs, **options)
        #: the recording's date and server (``result.replayed_from.label`` for a caption)
        self.replayed_from = replayed_from

    def _repr_mimebundle_(self, include: Collection[str] | None = None,
                          exclude: Collection[str] | None = None,
                          **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(include, exclude, **kwargs)
        label = self.replayed_from.label
        if "text/plain" in bundle and label not in bundle["text/plain"]:
            bundle["text/plain"] = f"{label}\n{bundle['text/plain']}"
        if "text/html" in bundle and "comfy-nb-replayed" not in bundle["text/html"]:
            bundle["text/html"] = (f'<div class="comfy-nb-replayed" style="color:#666;'
                                   f'font-size:smaller">⟲ {html.escape(label)}</div>'
                                   + bundle["text/html"])
        return bundle

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", {self.replayed_from.label}>"


# -- the recorded runs -----------------------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _date_label(stamp: str) -> str:
    """``2025-01-31T14:05:09+00:00`` as ``2025-01-31 14:05 UTC``."""
    try:
        moment = datetime.datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return str(stamp)
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _server_label(server: Mapping[str, Any]) -> str:
    dialect = server.get("dialect") or "unknown"
    if server.get("emulator"):
        return f"the comfy_nb emulator ({dialect})"
    url = server.get("url") or "an unknown server"
    version = server.get("version")
    product = "Comfy Cloud" if dialect == "cloud" else "ComfyUI"
    return f"{url} ({dialect}, {product} {version})" if version else f"{url} ({dialect})"


def _split(path: str) -> tuple[str, str]:
    """``"3.seed"`` as ``("3", "seed")`` (node ids may hold dots, input names do not)."""
    node, _, name = path.rpartition(".")
    return node, name


def _match_form(workflow: Mapping[str, Any], inputs: Mapping[str, str],
                random: Iterable[str]) -> dict[str, Any]:
    """``workflow`` as the match key sees it: no titles, each uploaded file input as
    ``sha256:<digest>`` of its bytes, each seed drawn at random as ``"random"``."""
    form: dict[str, Any] = {}
    for node_id, node in workflow.items():
        if isinstance(node, Mapping) and isinstance(node.get("inputs"), Mapping):
            form[str(node_id)] = {**{k: v for k, v in node.items() if k != "_meta"},
                                  "inputs": dict(node["inputs"])}
        else:
            form[str(node_id)] = node
    for changes in ({path: "sha256:" + digest for path, digest in inputs.items()},
                    dict.fromkeys(random, "random")):
        for path, value in changes.items():
            node_id, name = _split(path)
            node = form.get(node_id)
            if isinstance(node, dict) and isinstance(node.get("inputs"), dict):
                node["inputs"][name] = value
    return form


def _match_key(form: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
    return cache_key(_KEY_SPACE, form, inputs)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_key(node_id: str, filename: str, subfolder: str, kind: str) -> tuple[str, ...]:
    return (str(node_id), str(filename), str(subfolder), str(kind))


@dataclass
class RecordedRun:
    """One recorded run, as read from its folder."""

    folder: Path
    prompt_id: str
    status: str  # "succeeded" or "failed"
    recorded: str  # ISO 8601, UTC
    server: dict[str, Any]
    workflow: dict[str, Any]
    parameters: dict[str, Any]
    resolved_seeds: dict[str, int]
    random: list[str]
    inputs: dict[str, str]  # "<node>.<input>" -> sha256 of the uploaded bytes
    outputs: dict[str, Any]
    files: list[dict[str, Any]]
    events: dict[str, Any]
    error: dict[str, Any] | None
    provenance: dict[str, Any] | None
    key: str = ""
    form: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.form = _match_form(self.workflow, self.inputs, self.random)
        self.key = _match_key(self.form, self.inputs)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def replayed_from(self) -> ReplayedFrom:
        return ReplayedFrom(_date_label(self.recorded), _server_label(self.server))

    @classmethod
    def load(cls, folder: Path) -> RecordedRun:
        try:
            data = json.loads((folder / _JOB).read_text("utf-8"))
            workflow = json.loads((folder / _WORKFLOW).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ReplayError(f"the recorded run {folder.name} cannot be read ({exc}); record "
                              "the notebook again") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT \
                or not isinstance(workflow, dict):
            raise ReplayError(f"{folder / _JOB} is not a run recorded by this version of "
                              "comfy_nb; record the notebook again")
        return cls(
            folder=folder, prompt_id=str(data.get("prompt_id", "")),
            status=str(data.get("status", "succeeded")), recorded=str(data.get("recorded", "")),
            server=dict(data.get("server") or {}), workflow=workflow,
            parameters=dict(data.get("parameters") or {}),
            resolved_seeds=dict(data.get("resolved_seeds") or {}),
            random=list(data.get("random") or []), inputs=dict(data.get("inputs") or {}),
            outputs=dict(data.get("outputs") or {}), files=list(data.get("files") or []),
            events=dict(data.get("events") or {}), error=data.get("error"),
            provenance=data.get("provenance") or _provenance(data))

    def _recorded(self, file: OutputFile) -> tuple[Path, Any]:
        """Where one output file's recorded bytes are, and their recorded SHA-256."""
        wanted = _file_key(file.node_id, file.filename, file.subfolder, file.type)
        for item in self.files:
            if _file_key(item["node_id"], item["filename"], item["subfolder"],
                         item["type"]) == wanted:
                return self.folder / str(item["path"]), item.get("sha256")
        raise ReplayError(f"{file.filename!r} is not part of the recorded run {self.name}")

    @staticmethod
    def _changed(path: Path) -> ReplayError:
        return ReplayError(f"{path} was changed after it was recorded; record the notebook "
                           "again")

    @staticmethod
    def _missing(path: Path) -> ReplayError:
        return ReplayError(f"{path} is missing from the recording; record the notebook again")

    def read(self, file: OutputFile) -> bytes:
        """The recorded bytes of one output file; ReplayError if missing or changed."""
        path, digest = self._recorded(file)
        try:
            data = path.read_bytes()
        except OSError:
            raise self._missing(path) from None
        if _sha256(data) != digest:
            raise self._changed(path)
        return data

    def copy_to(self, file: OutputFile, target: Path) -> None:
        """Copy the recorded bytes of one output file into the existing file ``target``, a
        chunk at a time; ReplayError if missing or changed (``target`` then holds a part)."""
        path, digest = self._recorded(file)
        hasher = hashlib.sha256()
        if not path.is_file():
            raise self._missing(path)
        with open(path, "rb") as reader, open(target, "r+b") as writer:
            writer.truncate(0)
            while chunk := reader.read(1 << 20):
                hasher.update(chunk)
                writer.write(chunk)
        if hasher.hexdigest() != digest:
            raise self._changed(path)


def _provenance(job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The provenance of a succeeded run's outputs, from the fields of its ``job.json`` (which
    holds each of them once)."""
    if job.get("status", "succeeded") != "succeeded":
        return None
    server = job.get("server")
    server = server if isinstance(server, Mapping) else {}
    return {"comfy_nb": job.get("comfy_nb"), "created": job.get("recorded"),
            "prompt_id": job.get("prompt_id"),
            "server": {"url": server.get("url"), "dialect": server.get("dialect"),
                       "version": server.get("version")},
            "parameters": dict(job.get("parameters") or {}),
            "resolved_seeds": dict(job.get("resolved_seeds") or {})}


class _RecordedFiles:
    """A recorded run's folder as the :class:`~comfy_nb.result.FileSource` of its result (no
    client involved, so its files stay readable after the replaying client is closed)."""

    def __init__(self, run: RecordedRun) -> None:
        self._run = run

    def fetch(self, file: OutputFile) -> bytes:
        return self._run.read(file)

    async def afetch(self, file: OutputFile) -> bytes:
        return await asyncio.to_thread(self._run.read, file)

    def fetch_to(self, file: OutputFile, path: Path) -> None:
        self._run.copy_to(file, path)

    async def afetch_to(self, file: OutputFile, path: Path) -> None:
        await asyncio.to_thread(self._run.copy_to, file, path)


@dataclass
class _Loaded:
    """A whole recording, read from disk."""

    path: Path
    shown_as: str  # the path as the user gave it
    created: str
    server: dict[str, Any]
    runs: list[RecordedRun]
    object_info: dict[str, Any] | None

    @property
    def replayed_from(self) -> ReplayedFrom:
        return ReplayedFrom(_date_label(self.created), _server_label(self.server))


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def _load(path: str | os.PathLike[str], *, require_definitions: bool = True) -> _Loaded:
    """The recording in ``path``; ReplayError if it is missing or damaged. Every recording
    with runs has the node definitions its cells are staged and checked with (``--set``,
    sweeps, editor workflows need them): a missing file is damage, refused here rather than
    by every cell."""
    folder = Path(path)
    index_path = folder / INDEX
    if not index_path.is_file():
        raise ReplayError(f"no recording at {os.fspath(path)!r} (no {INDEX}); make one with "
                          f"comfy_nb.record({os.fspath(path)!r}) while a server runs the notebook")
    try:
        index = _read_json(index_path)
    except (OSError, ValueError) as exc:
        raise ReplayError(f"{index_path} cannot be read ({exc}); record the notebook again"
                          ) from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ReplayError(f"{index_path} is not a recording of this version of comfy_nb; "
                          "record the notebook again")
    runs = [RecordedRun.load(folder / str(entry["folder"])) for entry in index.get("jobs", [])
            if isinstance(entry, dict) and _FOLDER.match(str(entry.get("folder", "")))]
    object_info = None
    if runs and require_definitions and not (folder / NODE_DEFINITIONS).is_file():
        raise ReplayError(f"the recording {os.fspath(path)!r} is incomplete: "
                          f"{NODE_DEFINITIONS} (the server's node definitions) is missing; "
                          "restore it, or record the notebook again")
    if (folder / NODE_DEFINITIONS).is_file():
        try:
            found = _read_json(folder / NODE_DEFINITIONS)
        except (OSError, ValueError) as exc:
            raise ReplayError(f"{folder / NODE_DEFINITIONS} cannot be read ({exc})") from None
        if not isinstance(found, dict):
            raise ReplayError(f"{folder / NODE_DEFINITIONS} holds no node definitions; restore "
                              "it, or record the notebook again")
        object_info = found
    return _Loaded(path=folder, shown_as=os.fspath(path), created=str(index.get("created", "")),
                   server=dict(index.get("server") or {}), runs=runs, object_info=object_info)


# -- recording -------------------------------------------------------------------------------------


def _dump(value: Any, *, sort_keys: bool = True) -> str:
    """JSON that diffs well: sorted keys, one-space indent, one value a line. Node definitions
    keep the server's order (``sort_keys=False``): the order of a node's inputs is meaningful."""
    return json.dumps(value, indent=1, sort_keys=sort_keys, ensure_ascii=False) + "\n"


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


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
        loaded = _load(self.path, require_definitions=False)
        self._index = _read_json(self.path / INDEX)
        self._node_definitions = dict(loaded.object_info or {})
        for run in loaded.runs:
            self._stored.setdefault(run.key, []).append(
                (run.status, [str(item.get("sha256")) for item in run.files]))
            match = _FOLDER.match(run.name)
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
            outputs=_without_signed_urls(dict(result.outputs)) if result is not None else {},
            files=files, events=_summary(events), error=failure,
            server=await self._server(client),
            node_definitions={name: info[name] for name in classes if name in info},
            credentials=credentials)

    # -- writing (on a worker thread) ----------------------------------------------------------

    def _write(self, capture: _Capture) -> None:
        form = _match_form(capture.workflow, capture.inputs, capture.random)
        key = _match_key(form, capture.inputs)
        hashes = [_sha256(data) for _, data in capture.files]
        with self._write_lock:
            if (capture.status, hashes) in self._stored.get(key, []):
                return  # recorded already, byte for byte
            folder = f"{capture.index:02d}-{key[:8]}"
            recorded = _now()
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
                               "path": f"{_OUTPUTS}/{name}", "size": len(data),
                               "sha256": _sha256(data)})
            job = {"format": FORMAT, "comfy_nb": package_version(), "prompt_id": capture.prompt_id,
                   "status": capture.status, "recorded": recorded, "server": capture.server,
                   "parameters": capture.parameters, "resolved_seeds": capture.resolved_seeds,
                   "random": capture.random, "inputs": capture.inputs,
                   "outputs": capture.outputs, "files": listed, "events": capture.events,
                   "error": capture.error}
            job_text, workflow_text = _dump(job), _dump(capture.workflow)
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
                (staging / _OUTPUTS).mkdir(parents=True)
                for (_, data), item in zip(capture.files, listed, strict=True):
                    (staging / str(item["path"])).write_bytes(data)
                (staging / _WORKFLOW).write_text(workflow_text, encoding="utf-8")
                (staging / _JOB).write_text(job_text, encoding="utf-8")
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
                _write_text(self.path / NODE_DEFINITIONS,
                            _dump(dict(sorted(self._node_definitions.items())), sort_keys=False))
            jobs = [entry for entry in self._index.get("jobs", []) if entry["folder"] != folder]
            jobs.append({"folder": folder, "status": capture.status})
            jobs.sort(key=lambda entry: int(str(entry["folder"]).split("-")[0]))
            self._index = {"format": FORMAT, "comfy_nb": package_version(),
                           "created": self._index.get("created") or recorded,
                           "server": self._index.get("server") or capture.server, "jobs": jobs}
            _write_text(self.path / INDEX, _dump(self._index))

    def _clear(self) -> None:
        """Remove the older recording in the folder: its index, node definitions and runs
        (nothing else)."""
        for name in (INDEX, NODE_DEFINITIONS):
            (self.path / name).unlink(missing_ok=True)
        for child in self.path.iterdir():
            if child.is_dir() and _FOLDER.match(child.name) and (child / _JOB).is_file():
                shutil.rmtree(child)


def record(path: str | os.PathLike[str] = "recording", *, append: bool = False) -> Recording:
    """Record every job this process runs into the folder ``path`` (next to the notebook when
    relative), until ``recording.stop()``; replay them with :func:`replay`. See
    :class:`Recording` for ``append`` and the folder's layout in :mod:`comfy_nb.replay`."""
    return Recording(path, append=append).start()


# -- replaying -----------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
        return f"link from node {value[0]}"
    if isinstance(value, str) and value.startswith("sha256:"):
        return f"a file with sha256 {value[7:19]}…"
    if isinstance(value, str) and value.startswith(UPLOAD_MARK):
        return f"a file with sha256 {value[len(UPLOAD_MARK):][:12]}…"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "…"


def _node_label(node_id: str, node: Any, labels: dict[str, int]) -> str:
    meta = node.get("_meta") if isinstance(node, dict) else None
    title = meta.get("title") if isinstance(meta, dict) else None
    name = str(title or (node.get("class_type") if isinstance(node, dict) else None) or node_id)
    return name if labels.get(name, 0) <= 1 else f"{name} (node {node_id})"


def _differences(now: dict[str, Any], titled: dict[str, Any], then: dict[str, Any]
                 ) -> list[str]:
    """What differs between the match forms ``then`` (recorded) and ``now``, named by the
    titles of ``titled`` (the workflow as submitted now)."""
    counts: dict[str, int] = {}
    for node_id in now:
        label = _node_label(node_id, titled.get(node_id), {})
        counts[label] = counts.get(label, 0) + 1
    found = []
    for node_id in sorted(set(now) | set(then), key=lambda n: (len(n), n)):
        mine, theirs = now.get(node_id), then.get(node_id)
        label = _node_label(node_id, titled.get(node_id) or theirs, counts)
        if theirs is None:
            found.append(f"{label}: a node not in the recorded run")
            continue
        if mine is None:
            found.append(f"node {node_id} ({theirs.get('class_type')}): recorded, not in this "
                         "run")
            continue
        if mine.get("class_type") != theirs.get("class_type"):
            found.append(f"node {node_id}: recorded {theirs.get('class_type')}, now "
                         f"{mine.get('class_type')}")
            continue
        new, old = mine.get("inputs") or {}, theirs.get("inputs") or {}
        for name in sorted(set(new) | set(old)):
            if name not in old:
                found.append(f"{label}.{name}: not recorded, now {_describe(new[name])}")
            elif name not in new:
                found.append(f"{label}.{name}: recorded {_describe(old[name])}, now absent")
            elif new[name] != old[name]:
                found.append(f"{label}.{name}: recorded {_describe(old[name])}, now "
                             f"{_describe(new[name])}")
    return found


def _closest(form: dict[str, Any], runs: list[RecordedRun]) -> RecordedRun | None:
    """The recorded run most like ``form``: most nodes of the same id and class first, then
    fewest differing inputs; the latest of equals."""
    def score(run: RecordedRun) -> tuple[int, int]:
        same = sum(1 for node_id, node in form.items()
                   if isinstance(node, dict) and isinstance(run.form.get(node_id), dict)
                   and run.form[node_id].get("class_type") == node.get("class_type"))
        structure = len(form) + len(run.form) - 2 * same
        inputs = sum(_differing_inputs(node, run.form[node_id])
                     for node_id, node in form.items()
                     if isinstance(node, dict) and isinstance(run.form.get(node_id), dict))
        return structure, inputs

    best: RecordedRun | None = None
    best_score: tuple[int, int] | None = None
    for run in runs:
        current = score(run)
        if best_score is None or current <= best_score:
            best, best_score = run, current
    return best


def _differing_inputs(node: dict[str, Any], other: dict[str, Any]) -> int:
    """How many inputs of two nodes differ (present in one only, or with other values)."""
    mine, theirs = node.get("inputs"), other.get("inputs")
    mine = mine if isinstance(mine, dict) else {}
    theirs = theirs if isinstance(theirs, dict) else {}
    return sum(1 for name in set(mine) | set(theirs)
               if name not in mine or name not in theirs or mine[name] != theirs[name])


def _url_inputs(workflow: WorkflowLike, wanted: Mapping[str, Any],
                object_info: Mapping[str, Any] | None) -> list[str]:
    """File inputs given as http(s) URLs: replaying them would mean downloading them."""
    from .workflow import Workflow
    from .workflow._inputs import FILE_INPUTS, file_inputs

    def is_url(value: Any) -> bool:
        return isinstance(value, str) and value.lower().startswith(("http://", "https://"))

    files = dict(FILE_INPUTS)  # what _stage uses before the node definitions, and with them
    for class_type, found_names in file_inputs(object_info or {}).items():
        files[class_type] = (*files.get(class_type, ()), *found_names)
    names = {name for found in files.values() for name in found}
    found = [name for name, value in wanted.items() if is_url(value) and _split(name)[1] in names]
    api: Any = workflow
    if isinstance(workflow, (Workflow, str, os.PathLike)):
        try:
            source = Path(os.fspath(workflow)) if isinstance(workflow, os.PathLike) else workflow
            loaded = Workflow.load(source)
            api = loaded.to_api() if loaded.format == "api" else {}
        except ComfyError:
            api = {}
    if isinstance(api, Mapping):
        for node_id, node in api.items():
            inputs = node.get("inputs") if isinstance(node, Mapping) else None
            if isinstance(inputs, Mapping):
                found += [f"{node_id}.{name}" for name, value in inputs.items()
                          if is_url(value) and name in files.get(str(node.get("class_type")), ())]
    return found


def _needs_server(url: str) -> ReplayError:
    return ReplayError(f"this needs a server, and {url} replays a recording without one (no "
                       "network request is made); connect to a server for it")


class _RecordedServer:
    """The :class:`~comfy_nb.client._parts.Server` part of a replaying client: the recording
    answers what it can (its runs, its files, the recorded server's version); the queue is
    empty, cancelling does nothing, and what needs a server raises :class:`ReplayError`."""

    def __init__(self, loaded: _Loaded) -> None:
        self.recording = loaded
        dialect = loaded.server.get("dialect")
        self._dialect = dialect if dialect in ("local", "cloud") else "unknown"
        self.client_id = uuid.uuid4().hex
        self.poll_interval = 1.0
        self.queue_remaining: int | None = None
        self.server_version: str | None = loaded.server.get("version")
        self.stats: dict[str, Any] | None = None
        self.emulator: Any = None
        self._closed = False

    @property
    def url(self) -> str:
        return f"replay:{self.recording.shown_as}"

    @property
    def dialect(self) -> str:
        return self._dialect

    @property
    def closed(self) -> bool:
        return self._closed

    def check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this client is closed; create a new one")

    async def open(self) -> None:
        self.check_open()

    async def close(self) -> None:
        self._closed = True

    async def jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The recorded runs as ``{"id", "status"}`` dicts, newest first."""
        return [{"id": run.prompt_id, "status": run.status}
                for run in reversed(self.recording.runs)][:limit]

    async def queue(self) -> list[dict[str, Any]]:
        return []

    async def cancel(self, prompt_id: str) -> bool:
        return False

    async def cancel_many(self, prompt_ids: list[str]) -> list[str]:
        return []

    async def interrupt(self, prompt_id: str | None = None) -> None:
        return None

    async def clear_queue(self) -> None:
        return None

    async def delete(self, prompt_ids: list[str]) -> None:
        return None

    async def download(self, params: dict[str, str], to: Path | None) -> bytes | Path:
        """A recorded output file's bytes (or the path they were written to)."""
        for run in self.recording.runs:
            for item in run.files:
                if (item["filename"], item["subfolder"], item["type"]) == (
                        params.get("filename"), params.get("subfolder", ""),
                        params.get("type", "output")):
                    wanted = OutputFile(str(item["node_id"]), item["filename"],
                                        item["subfolder"], item["type"], "", "", "")
                    data = await asyncio.to_thread(run.read, wanted)
                    if to is None:
                        return data
                    await asyncio.to_thread(to.write_bytes, data)
                    return to
        raise ReplayError(f"{params.get('filename')!r} is not in the recording "
                          f"{self.recording.shown_as!r}")

    async def models(self, folder: str | None = "checkpoints") -> list[str]:
        raise _needs_server(self.url)

    async def system_stats(self) -> dict[str, Any]:
        """The recorded server's version, and a ``replay`` section with the label."""
        server = self.recording.server
        version_key = "cloud_version" if server.get("dialect") == "cloud" else "comfyui_version"
        stats: dict[str, Any] = {
            "system": {version_key: server.get("version")},
            "replay": {"path": self.recording.shown_as, "created": self.recording.created,
                       "server": dict(server), "runs": len(self.recording.runs),
                       "label": self.recording.replayed_from.label}}
        if server.get("notice"):
            stats["emulator"] = {"notice": server["notice"]}
        return stats

    async def user(self) -> dict[str, Any]:
        return {"status": "replay (no server, no account)"}


class _RecordedDefinitions:
    """The node definitions of the classes the recorded runs used (never the server's own)."""

    def __init__(self, loaded: _Loaded) -> None:
        self._recording = loaded

    @property
    def confirmed(self) -> bool:
        return False

    async def get(self, refresh: bool = False) -> dict[str, Any]:
        if self._recording.object_info is None:
            raise ReplayError(f"the recording {self._recording.shown_as!r} holds no node "
                              "definitions; record it again, or connect to a server")
        return self._recording.object_info


class _RecordedRuns:
    """The :class:`~comfy_nb.client._parts.Runs` part of a replaying client, and the
    :class:`~comfy_nb.client._host.JobHost` of its jobs: each run submitted is matched against
    the recorded ones and served as a job that has already ended, as recorded."""

    def __init__(self, loaded: _Loaded, server: _RecordedServer) -> None:
        self.recording = loaded
        self._server = server
        self._definitions = _RecordedDefinitions(loaded)
        self._stager = Stager(self._definitions)
        self._upload_digests: dict[str, str] = {}  # name from upload_image -> sha256
        self._served: dict[str, int] = {}  # match key -> how many runs of it were served
        self._recorded_uploads = {digest: name for run in loaded.runs
                                  for path, digest in run.inputs.items()
                                  if isinstance(name := _input_value(run.workflow, path), str)}

    # -- runs --------------------------------------------------------------------------------

    async def submit(self, workflow: WorkflowLike, *, prompt_id: str | None,
                     extra_data: dict[str, Any] | None, partner_key: object, front: bool,
                     validate: bool, overrides: dict[str, Any] | None, cache: bool | None,
                     params: dict[str, Any]) -> AsyncJob:
        """The recorded job of this run, already ended (``prompt_id``, ``extra_data``,
        ``partner_key``, ``front`` and ``cache`` change nothing). Raises
        :class:`ReplayMismatch` if the run was not recorded."""
        self._server.check_open()
        wanted = {**(overrides or {}), **params}
        run, staged = await self._find(workflow, wanted, validate)
        self._served[run.key] = self._served.get(run.key, 0) + 1
        return self._replayed_job(run, staged, wanted)

    async def _find(self, workflow: WorkflowLike, wanted: dict[str, Any],
                    validate: bool) -> tuple[RecordedRun, Staged]:
        """The recorded run to serve for this one (the next of its kind, by submit order). A run
        that was not recorded raises :class:`ReplayMismatch`, or, when ``validate`` and the
        recorded node definitions find it invalid, the ``WorkflowInvalid`` that recording it
        raised (invalid runs never reach a server, so they are never recorded)."""
        object_info = self.recording.object_info
        fetched = _url_inputs(workflow, wanted, object_info)
        if fetched:
            raise ReplayError(f"{', '.join(fetched)}: a file given by URL would have to be "
                              "downloaded, and a replay makes no network request; download it "
                              "and pass the local file (or its bytes) instead")
        staged = await self._stager.stage(workflow, wanted, object_info is not None)
        form, inputs = keyed(staged.api, self._upload_digests)
        form = _match_form(form, inputs, staged.seeds)
        key = _match_key(form, inputs)
        same = [run for run in self.recording.runs if run.key == key]
        if same:
            return same[min(self._served.get(key, 0), len(same) - 1)], staged
        if validate and staged.object_info is not None:
            self._validate(staged)
        closest = _closest(form, self.recording.runs)
        differences = (_differences(form, staged.api, closest.form) if closest else [])
        if len(differences) > _MAX_DIFFERENCES:
            more = len(differences) - _MAX_DIFFERENCES + 1
            differences = [*differences[:_MAX_DIFFERENCES - 1], f"… and {more} more"]
        raise ReplayMismatch(self.recording.shown_as, closest.name if closest else None,
                             differences or ["the uploaded files"],
                             len(self.recording.runs))

    def _validate(self, staged: Staged) -> None:
        """Raise ``WorkflowInvalid`` if the recorded node definitions find ``staged`` invalid;
        files uploaded while recording, or being uploaded now, count as on the server. A node
        class the recording has no definition of cannot be judged: then nothing is raised."""
        from .workflow._check import validate_workflow

        assert staged.object_info is not None
        classes = {node.get("class_type") if isinstance(node, dict) else None
                   for node in staged.api.values()}
        if not classes <= staged.object_info.keys():
            return
        uploading = {value for node in staged.api.values() if isinstance(node, dict)
                     for value in (node.get("inputs") or {}).values()
                     if isinstance(value, str) and value.startswith(UPLOAD_MARK)}
        recorded = {name.removesuffix(" [input]") for name in self._recorded_uploads.values()}
        validate_workflow(staged.api, staged.object_info,
                          known_files=(*uploading, *recorded, *self._recorded_uploads.values()))

    def _replayed_job(self, run: RecordedRun, staged: Staged,
                      wanted: dict[str, Any]) -> AsyncJob:
        """A job that has already ended as recorded; its events retell the recorded run."""
        titles = {node_id: node.get("_meta") for node_id, node in staged.api.items()
                  if isinstance(node, dict) and "_meta" in node}
        workflow = {node_id: ({**node, "_meta": titles[node_id]}
                              if node_id in titles and isinstance(node, dict) else node)
                    for node_id, node in run.workflow.items()}
        job = AsyncJob(self, run.prompt_id, workflow)
        job.resolved_seeds = {k: int(v) for k, v in run.resolved_seeds.items()}
        job.parameters = {name: ("sha256:" + value[len(UPLOAD_MARK):]
                                 if isinstance(value, str) and value.startswith(UPLOAD_MARK)
                                 else value)
                          for name, value in wanted.items()}
        for event in self._events(run):
            job.feed(event)
        error = None
        if run.status == "failed":
            details = run.error or {}
            error = ExecutionFailed(
                prompt_id=run.prompt_id, node_id=str(details.get("node_id", "")),
                node_type=str(details.get("node_type", "")),
                exception_type=str(details.get("exception_type", "")),
                exception_message=str(details.get("exception_message", "")),
                traceback=[str(line) for line in details.get("traceback") or []],
                node_title=details.get("node_title"))
        status = JobStatus.FAILED if error is not None else JobStatus.SUCCEEDED
        job.finish(JobSnapshot(status, outputs=run.outputs, error=error, workflow=workflow),
                   result=self._result(run, workflow, status.value))
        return job

    def _result(self, run: RecordedRun, workflow: dict[str, Any], status: str) -> Result:
        """The Result of a replayed run, its files read from the recording."""
        record = dict(run.provenance or {})
        record["replayed_from"] = {"date": run.replayed_from.date,
                                   "server": run.replayed_from.server}
        return ReplayedResult(run.prompt_id, run.outputs, replayed_from=run.replayed_from,
                              source=_RecordedFiles(run), workflow=workflow, status=status,
                              server=self._server.url, provenance=record)

    @staticmethod
    def _events(run: RecordedRun) -> list[Event]:
        pid = run.prompt_id
        summary = run.events
        events: list[Event] = [Started(pid)]
        cached = tuple(str(node) for node in summary.get("cached") or ())
        if cached:
            events.append(Cached(pid, cached))
        steps = summary.get("steps") or {}
        for node in summary.get("executed") or ():
            events.append(NodeStarted(pid, str(node)))
            if node in steps:
                events.append(Progress(pid, str(node), steps[node], steps[node]))
            if isinstance(run.outputs.get(node), dict):
                events.append(NodeExecuted(pid, str(node), run.outputs[node]))
        if run.status == "failed":
            error = run.error or {}
            events.append(Failed(pid, error.get("node_id"), error.get("node_type"),
                                 str(error.get("exception_type", "")),
                                 str(error.get("exception_message", "")),
                                 tuple(error.get("traceback") or ())))
        else:
            events += [Succeeded(pid), Finished(pid)]
        return events

    async def prepare(self, workflow: WorkflowLike, overrides: dict[str, Any],
                      validate: bool) -> tuple[dict[str, Any], dict[str, int]]:
        """The workflow as it would be submitted, checked against the recorded node
        definitions; a file to upload raises :class:`ReplayError` (nothing is uploaded)."""
        from .workflow._check import validate_workflow

        staged = await self._stager.stage(workflow, overrides, validate)
        if staged.uploads.pending:
            raise _needs_server(self._server.url)
        if validate and staged.object_info is not None:
            validate_workflow(staged.api, staged.object_info, known_files=())
        return staged.api, staged.seeds

    async def cached_result(self, workflow: WorkflowLike, overrides: dict[str, Any],
                            validate: bool) -> Result | None:
        """The recorded Result of this run, or None if it was not recorded."""
        try:
            run, staged = await self._find(workflow, overrides, validate=False)
        except ReplayMismatch:
            return None
        return await self._replayed_job(run, staged, overrides).wait()

    async def follow(self, prompt_id: str) -> AsyncJob:
        job_path(prompt_id)  # refuses an id that could address another endpoint
        raise _needs_server(self._server.url)

    async def object_info(self, refresh: bool = False) -> dict[str, Any]:
        """The recorded definitions of the node classes the recorded runs used."""
        return await self._definitions.get(refresh)

    async def upload_image(self, image: Any, *, name: str | None, subfolder: str,
                           overwrite: bool, kind: str) -> str:
        """Nothing is uploaded: the name the recording's server gave these bytes (a
        placeholder naming their content if they were never uploaded while recording)."""
        _, data, _ = await asyncio.to_thread(upload_payload, image, name)
        digest = _sha256(data)
        recorded = self._recorded_uploads.get(digest)
        if recorded is None:
            return UPLOAD_MARK + digest
        recorded = recorded.removesuffix(" [input]")
        self._upload_digests[recorded] = digest
        return recorded

    async def upload_mask(self, mask: Any, original: str, *, name: str | None,
                          subfolder: str, kind: str) -> str:
        raise _needs_server(self._server.url)

    def settled(self, prompt_id: str, result: Result) -> bool:
        return True  # nothing is cached or recorded from a replay

    async def settle(self, prompt_id: str, result: Result) -> None:
        return None

    async def flush(self, timeout: float = 10.0) -> None:
        return None

    async def wind_down(self) -> None:
        return None

    # -- the host of its jobs (each one ended before it is handed out) -------------------------

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def closed(self) -> bool:
        return self._server.closed

    @property
    def socket_connected(self) -> bool:
        return False

    @property
    def finished_follows_outcome(self) -> bool:
        return self._server.dialect == "local"

    def poll_delay(self, *, completion_hinted: bool, unsure: bool, failures: int) -> float:
        return self._server.poll_interval

    async def snapshot(self, prompt_id: str) -> JobSnapshot:
        raise _needs_server(self._server.url)

    async def cancel(self, prompt_id: str) -> bool:
        return False

    def forget(self, job: AsyncJob) -> None:
        return None

    def make_result(self, job: AsyncJob, outputs: dict[str, Any],
                    workflow: dict[str, Any] | None, status: str) -> Result:
        # every replayed job ends with its Result (see _replayed_job): never reach a server
        raise ReplayError(f"job {job.id} is not part of {self._server.url}")


class AsyncReplayClient(AsyncClient):
    """Serves the runs of a recording (see :mod:`comfy_nb.replay`) through the
    :class:`~comfy_nb.AsyncClient` surface, with no server and no network request: ``submit``
    and ``run`` give the recorded job (or raise :class:`ReplayMismatch`), ``queue`` is empty,
    ``cancel`` and ``interrupt`` do nothing, ``object_info`` holds the recorded classes only, and
    every call that needs a server raises :class:`ReplayError`. ``path`` is the recording's
    folder (or the recording, read already)."""

    def __init__(self, path: str | os.PathLike[str] | _Loaded) -> None:
        loaded = path if isinstance(path, _Loaded) else _load(path)
        server = _RecordedServer(loaded)
        self._compose(server, _RecordedRuns(loaded, server))
        self.recording = loaded

    @property
    def label(self) -> str:
        """``replayed from <date>, <server>`` for the whole recording."""
        return self.recording.replayed_from.label

    @property
    def runs(self) -> list[RecordedRun]:
        """The recorded runs, in the order they were submitted."""
        return list(self.recording.runs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.recording.shown_as!r}: {self.label}>"


def _input_value(workflow: Mapping[str, Any], path: str) -> Any:
    node_id, name = _split(path)
    node = workflow.get(node_id)
    inputs = node.get("inputs") if isinstance(node, Mapping) else None
    return inputs.get(name) if isinstance(inputs, Mapping) else None


class ReplayClient(Client):
    """The synchronous :class:`AsyncReplayClient`: what :func:`replay` returns."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        loaded = _load(path)
        self._loaded = loaded
        self._start_core(lambda: AsyncReplayClient(loaded))

    @property
    def replay_client(self) -> AsyncReplayClient:
        client = self._async
        assert isinstance(client, AsyncReplayClient)
        return client

    @property
    def label(self) -> str:
        """``replayed from <date>, <server>`` for the whole recording."""
        return self.replay_client.label

    @property
    def runs(self) -> list[RecordedRun]:
        """The recorded runs, in the order they were submitted."""
        return self.replay_client.runs

    def __repr__(self) -> str:
        return f"<ReplayClient {self._loaded.shown_as!r}: {self.label}>"


def replay(path: str | os.PathLike[str] = "recording") -> ReplayClient:
    """A client serving the runs recorded in ``path`` (see :func:`record`) with no server, no
    key and no network request; a run that was not recorded raises :class:`ReplayMismatch`."""
    return ReplayClient(path)

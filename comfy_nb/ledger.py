"""The job ledger: a small file in the working folder that remembers every job comfy_nb submits
to a server, so that a restarted kernel (or any other process) can find and follow them again
with :func:`jobs`.

Where: ``.comfy_nb/jobs.jsonl`` in the working folder (a notebook's kernel starts in the
notebook's folder); :data:`settings` ``.path``, else ``$COMFY_NB_JOBS``, chooses another file;
``off`` (or ``0``, ``false``, ``no``) records nothing. One JSON object per line::

    {"v": 1, "id": "<job id>", "server": "http://127.0.0.1:8188", "dialect": "local",
     "workflow": "sha256:<hex>", "label": "cell 12", "submitted": 1765100000.0,
     "comfy_nb": "<version>"}
    {"v": 1, "id": "<job id>", "saved": ["comfy_outputs/ComfyUI_00001_.png"]}

the second kind noting the files the notebook saved of a job's outputs. The server is stored
without user, password, query or fragment; the workflow only as the SHA-256 of its canonical
JSON; the label is the one given (:func:`label`, ``%%comfy_run --label``), the IPython cell's
number, and the short values the run set (a sweep item's), with any key sent with the job
redacted. The ledger never holds an API key, a signed URL, ``extra_data`` or the workflow
itself. Runs served by the result cache (no job on a server) and replayed runs are not
recorded.

Appends are one ``os.write`` of a whole line (under ``PIPE_BUF``) to a file opened with
``O_APPEND``, under an exclusive lock file where the platform has ``fcntl``, so kernels writing
at once never interleave; a damaged line is skipped when reading. Pruning (entries older than
``settings.max_age_days``, or beyond the newest ``settings.max_entries``) rewrites the file
whole (a temporary file, then ``os.replace``) under the same lock, when it is listed and every
:data:`PRUNE_EVERY` jobs a process records. (Without ``fcntl``, on Windows, an append that
meets a pruning in another process at that very moment can be lost.)

Owns: the ledger file, the label of the runs being submitted (:func:`label`), and
:func:`jobs`. Must not: speak HTTP (it asks the client: one listing of the server's recent
jobs, then a job's own state only for the jobs that listing does not show) or touch the
notebook (:mod:`comfy_nb.notebook.ledger_view` shows the ledger in cells).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._loop import LoopThread
from ._secret import REDACTED, redact
from ._session import shared_client
from ._version import package_version
from .client._dialects import JobStatus
from .client._runs import SubmittedRun, job_observers
from .errors import ComfyError
from .job import AsyncJob, Job
from .provenance import public_url

if TYPE_CHECKING:
    from .client import Client
    from .result import Result

try:
    import fcntl
except ImportError:  # Windows: appends stay single writes, without the lock file
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("comfy_nb")

__all__ = ["LedgerEntry", "LedgerJob", "append", "find", "jobs", "label", "ledger_path",
           "note_saved", "prune", "read_entries", "settings"]

PATH_VARIABLE = "COMFY_NB_JOBS"
DEFAULT_PATH = Path(".comfy_nb") / "jobs.jsonl"
LINE_LIMIT = 4000  # bytes of one line at most: under Linux's PIPE_BUF (4096), written at once
PRUNE_EVERY = 50  # a process prunes the file after every this many jobs it records
LISTING_WINDOW = 100  # the server's newest jobs read in one listing, at least
VERSION = 1
_OFF = {"0", "off", "false", "no", "disabled"}


class LedgerSettings:
    """Process-wide settings of the ledger: ``path`` (None: ``$COMFY_NB_JOBS``, else
    ``.comfy_nb/jobs.jsonl`` in the working folder; ``"off"`` records nothing), and what
    pruning keeps: ``max_age_days`` and ``max_entries``."""

    def __init__(self) -> None:
        self.path: str | os.PathLike[str] | None = None
        self.max_age_days: float = 30.0
        self.max_entries: int = 1000

    def __repr__(self) -> str:
        return (f"LedgerSettings(path={str(ledger_path())!r}, "
                f"max_age_days={self.max_age_days}, max_entries={self.max_entries})")


#: the process-wide ledger settings (``comfy_nb.ledger.settings.path = "off"``)
settings = LedgerSettings()


def ledger_path() -> Path | None:
    """The ledger file now, or None when the ledger is off."""
    chosen = settings.path if settings.path is not None else os.environ.get(PATH_VARIABLE)
    text = os.fspath(chosen).strip() if chosen is not None else ""
    if text.lower() in _OFF:
        return None
    return Path(text).expanduser() if text else Path.cwd() / DEFAULT_PATH


# -- entries ----------------------------------------------------------------------------------


@dataclass
class LedgerEntry:
    """One recorded job."""

    id: str
    server: str
    dialect: str
    workflow: str  # "sha256:<hex>" of the API workflow as submitted
    label: str
    submitted: float  # seconds since the epoch
    version: str  # of comfy_nb
    saved: list[str] = field(default_factory=list)  # files of its outputs the notebook saved

    @property
    def submitted_at(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.submitted)


def read_entries(path: Path | None = None) -> list[LedgerEntry]:
    """The entries of the ledger (``path``, default :func:`ledger_path`), oldest first. Lines
    that cannot be read (damaged, cut short, of another shape) are skipped."""
    path = ledger_path() if path is None else path
    if path is None:
        return []
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("comfy_nb: cannot read the job ledger %s: %s", path, exc)
        return []
    entries: dict[str, LedgerEntry] = {}
    saved: dict[str, list[str]] = {}
    for line in data.splitlines():
        record = _decoded(line)
        if record is None:
            continue
        if isinstance(record.get("saved"), list):
            paths = [item for item in record["saved"] if isinstance(item, str)]
            saved.setdefault(record["id"], []).extend(paths)
            continue
        entry = _entry(record)
        if entry is not None:
            entries.pop(entry.id, None)  # recorded twice: the later line counts
            entries[entry.id] = entry
    for job_id, paths in saved.items():
        if job_id in entries:
            entries[job_id].saved = list(dict.fromkeys(paths))
    return sorted(entries.values(), key=lambda entry: entry.submitted)


def _decoded(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"]:
        return None
    return record


def _entry(record: dict[str, Any]) -> LedgerEntry | None:
    text = {name: record.get(name) for name in ("server", "dialect", "workflow", "label",
                                                 "comfy_nb")}
    submitted = record.get("submitted")
    if not all(isinstance(value, str) for value in text.values()) or isinstance(
            submitted, bool) or not isinstance(submitted, (int, float)):
        return None
    return LedgerEntry(record["id"], str(text["server"]), str(text["dialect"]),
                       str(text["workflow"]), str(text["label"]), float(submitted),
                       str(text["comfy_nb"]))


# -- writing ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the ledger's lock file (where the platform has ``fcntl``)."""
    if fcntl is None:
        yield
        return
    handle = os.open(f"{path}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # (closing releases the lock)


def append(record: dict[str, Any], path: Path) -> None:
    """Add ``record`` to the ledger at ``path`` as one line, in one write."""
    line = _line(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(handle, line)
        finally:
            os.close(handle)


def _line(record: dict[str, Any]) -> bytes:
    """``record`` as one line of at most :data:`LINE_LIMIT` bytes (a long label is cut)."""
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    if len(line) > LINE_LIMIT and isinstance(record.get("label"), str):
        over = len(line) - LINE_LIMIT
        label = record["label"].encode()[:max(0, len(record["label"].encode()) - over - 8)]
        record = {**record, "label": label.decode(errors="ignore") + "…"}
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    if len(line) > LINE_LIMIT:
        raise ValueError("a ledger line would be too long")
    return line


def prune(path: Path | None = None) -> None:
    """Drop the entries older than ``settings.max_age_days`` and those beyond the newest
    ``settings.max_entries`` (and damaged lines), rewriting the file whole."""
    path = ledger_path() if path is None else path
    if path is None or not path.exists():
        return
    oldest = time.time() - settings.max_age_days * 86400
    with _locked(path):
        entries = [entry for entry in read_entries(path) if entry.submitted >= oldest]
        entries = entries[-settings.max_entries:] if settings.max_entries > 0 else []
        lines = [_line(_record_of(entry)) for entry in entries]
        lines += [_line({"v": VERSION, "id": entry.id, "saved": entry.saved})
                  for entry in entries if entry.saved]
        if path.read_bytes() == b"".join(lines):
            return  # nothing to drop: the file stays as it is
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".jobs-", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(b"".join(lines))
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


def _record_of(entry: LedgerEntry) -> dict[str, Any]:
    return {"v": VERSION, "id": entry.id, "server": entry.server, "dialect": entry.dialect,
            "workflow": entry.workflow, "label": entry.label, "submitted": entry.submitted,
            "comfy_nb": entry.version}


def note_saved(result: Result, paths: list[Path]) -> None:
    """Note where the notebook saved the outputs of a job of the ledger (``%comfy jobs``
    links them). Paths inside the working folder are kept relative to it. Results served by the
    result cache or replayed are not noted: no job of theirs ran."""
    path = ledger_path()
    if path is None or not paths or result.from_cache or \
            getattr(result, "replayed_from", None) is not None:
        return
    job_id = result.prompt_id
    if not any(entry.id == job_id for entry in read_entries(path)):
        return  # not a job of the ledger (submitted while it was off, or elsewhere)
    here = Path.cwd().resolve()
    shown = []
    for saved in paths:
        try:
            shown.append(str(saved.resolve().relative_to(here)))
        except ValueError:
            shown.append(str(saved.resolve()))
    record = {"v": VERSION, "id": job_id, "saved": shown}
    try:
        append(record, path)
    except (OSError, ValueError) as exc:
        log.warning("comfy_nb: cannot note saved files in the job ledger %s: %s", path, exc)


# -- labels and the observer --------------------------------------------------------------------


_labels: list[str] = []
_labels_lock = threading.Lock()
_recorded = 0  # jobs this process recorded (pruning every PRUNE_EVERY)


@contextlib.contextmanager
def label(text: str) -> Iterator[None]:
    """Record the jobs submitted inside the ``with`` block (by any thread of this process)
    under ``text``; the cell of a notebook is named anyway (``cell 12``), and so are the values
    the run set (``seed=3``)."""
    with _labels_lock:
        _labels.append(str(text))
    try:
        yield
    finally:
        with _labels_lock:
            _labels.remove(str(text))


def _current_label(run: SubmittedRun) -> str:
    parts = []
    with _labels_lock:
        if _labels:
            parts.append(_labels[-1])
    shell = _ipython()
    count = getattr(shell, "execution_count", None)
    if isinstance(count, int) and not isinstance(count, bool):
        parts.append(f"cell {count}")
    values = [f"{name}={value}" for name, value in run.job.parameters.items()
              if isinstance(value, (int, float, str)) and len(str(value)) <= 40
              and not any(key in str(value) for key in run.credentials)]
    if values:
        parts.append(", ".join(values))
    text = " · ".join(parts)
    for key in run.credentials:  # (a key typed into a label)
        text = text.replace(key, REDACTED)
    return redact(text)


def _ipython() -> Any:
    """The running IPython shell, if IPython is loaded and one runs (never imported here)."""
    module = sys.modules.get("IPython")
    getter = getattr(module, "get_ipython", None)
    return getter() if getter is not None else None


def workflow_hash(workflow: dict[str, Any] | None) -> str:
    """``sha256:<hex>`` of ``workflow``'s canonical JSON."""
    text = json.dumps(workflow or {}, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _observe(run: SubmittedRun) -> None:
    """The run pipeline's ``job_observers`` hook: record each job a server took."""
    global _recorded
    job = run.job
    if job.done:  # served by the result cache: no job on a server
        return
    path = ledger_path()
    if path is None:
        return
    record = {"v": VERSION, "id": job.id, "server": public_url(run.client.url) or "",
              "dialect": run.client.dialect, "workflow": workflow_hash(job.workflow),
              "label": _current_label(run), "submitted": round(time.time(), 3),
              "comfy_nb": package_version()}
    try:
        append(record, path)
    except (OSError, ValueError) as exc:
        log.warning("comfy_nb: cannot record job %s in the job ledger %s: %s", job.id, path,
                    exc)
        return
    _recorded += 1
    if _recorded % PRUNE_EVERY == 1:  # rewrites the file: off the client's event loop
        threading.Thread(target=_prune_quietly, args=(path,), name="comfy_nb-ledger-prune",
                         daemon=False).start()  # joined at exit: never cut mid-write


def _prune_quietly(path: Path) -> None:
    try:
        prune(path)
    except (OSError, ValueError) as exc:
        log.warning("comfy_nb: cannot prune the job ledger %s: %s", path, exc)


if _observe not in job_observers:
    job_observers.append(_observe)


# -- listing --------------------------------------------------------------------------------------


class LedgerJob(Job):
    """A job of the ledger: a :class:`~comfy_nb.Job` (``wait()``, iteration, ``cancel()``...),
    followed on the server the first time something needs more than its :attr:`status`, with
    what the ledger knows of it: :attr:`label`, :attr:`submitted`, :attr:`server`,
    :attr:`dialect`, :attr:`saved`. A job of another server (``all_servers=True``) cannot be
    followed with this client: following it raises :class:`~comfy_nb.ComfyError`."""

    def __init__(self, entry: LedgerEntry, client: Client | None, status: JobStatus,
                 followed: Job | None = None, problem: str | None = None) -> None:
        # (no Job.__init__: the job it wraps, and the loop, are the properties below)
        self.entry = entry
        self._client = client
        self._status = status
        self._followed = followed
        self.problem = problem  #: why its state could not be read, if it could not

    def _own_client(self) -> Client:
        if self._client is None:
            raise ComfyError(f"job {self.id} was submitted to {self.entry.server}: follow it "
                             "with a client of that server, comfy_nb.jobs(comfy_nb.connect("
                             f"{self.entry.server!r}))")
        return self._client

    @property
    def _loop(self) -> LoopThread:  # type: ignore[override]
        return self._own_client().loop

    @property
    def _job(self) -> AsyncJob:  # type: ignore[override]
        if self._followed is None:
            self._followed = self._own_client().job(self.id)
        return self._followed.async_job

    @property
    def id(self) -> str:
        return self.entry.id

    @property
    def status(self) -> JobStatus:
        """Its status: as the server listed it, then as followed."""
        return self._followed.status if self._followed is not None else self._status

    @property
    def known(self) -> bool:
        """Whether the server still knows the job."""
        return self.status is not JobStatus.UNKNOWN

    @property
    def label(self) -> str:
        return self.entry.label

    @property
    def submitted(self) -> datetime.datetime:
        """When it was submitted (local time)."""
        return self.entry.submitted_at

    @property
    def server(self) -> str:
        return self.entry.server

    @property
    def dialect(self) -> str:
        return self.entry.dialect

    @property
    def saved(self) -> list[str]:
        return list(self.entry.saved)

    @property
    def client_closed(self) -> bool:
        return self._client is None or self._client.closed

    def __repr__(self) -> str:
        where = "" if self._client is not None else f" on {self.server}"
        return f"<LedgerJob {self.id} {self.status.value}{where} {self.label!r}>"


def jobs(client: Client | None = None, *, limit: int = 20,
         all_servers: bool = False) -> list[LedgerJob]:
    """The jobs of the ledger (the ones comfy_nb submitted from this folder, by this process or
    an earlier one), newest first, at most ``limit``, each a :class:`LedgerJob` with its status
    on the server now. Only the jobs of ``client``'s server are listed (default: the client of
    the notebook's ``%comfy`` session, else :func:`comfy_nb.connect`): following a job needs a
    client of its server. ``all_servers=True`` lists the others too, with status ``unknown``.

    The status comes from one listing of the server's recent jobs; a job that listing does not
    show is read on its own, and a job the server no longer knows has status ``unknown`` (its
    ``known`` is False)."""
    if limit < 1:
        raise ValueError("limit must be a positive number of jobs")
    if client is None:
        client = shared_client()
    from .client import Client

    if not isinstance(client, Client):
        raise TypeError("comfy_nb.jobs() takes a comfy_nb.Client (from comfy_nb.connect()); "
                        "with an AsyncClient, follow a job of comfy_nb.ledger.read_entries() "
                        "with await client.job(entry.id)")
    path = ledger_path()
    if path is not None:
        try:
            prune(path)
        except OSError as exc:
            log.warning("comfy_nb: cannot prune the job ledger %s: %s", path, exc)
    servers = _servers_of(client)
    server = ", ".join(sorted(servers))
    chosen = [entry for entry in reversed(read_entries(path))
              if all_servers or entry.server in servers][:limit]
    mine = [entry for entry in chosen if entry.server in servers]
    listed: dict[str, JobStatus] = {}
    if mine:
        try:
            for item in client.jobs(max(len(mine), LISTING_WINDOW)):
                listed[str(item.get("id"))] = JobStatus(item.get("status"))
        except (ComfyError, ValueError) as exc:  # then each is read on its own
            log.debug("comfy_nb: listing the server's jobs failed: %s", exc)
    found = []
    for entry in chosen:
        if entry.server not in servers:
            found.append(LedgerJob(entry, None, JobStatus.UNKNOWN,
                                   problem=f"submitted to {entry.server}, not to {server}"))
        elif entry.id in listed:
            found.append(LedgerJob(entry, client, listed[entry.id]))
        else:
            found.append(_read_alone(entry, client))
    return found


def find(prefix: str, client: Client) -> LedgerJob:
    """The job of the ledger whose id starts with ``prefix`` (unique among the jobs of
    ``client``'s server), read on the server; a :class:`LookupError` says why there is none."""
    prefix = prefix.strip()
    servers = _servers_of(client)
    server = ", ".join(sorted(servers))
    entries = [entry for entry in read_entries() if entry.id.startswith(prefix)] if prefix \
        else []
    here = [entry for entry in entries if entry.server in servers]
    if len(here) == 1:
        return _read_alone(here[0], client)
    if len(here) > 1:
        shown = ", ".join(entry.id for entry in reversed(here[-5:]))
        raise LookupError(f"{prefix!r} starts the ids of {len(here)} jobs ({shown}): give more "
                          "of the id")
    if entries:
        raise LookupError(f"job {entries[-1].id} was submitted to {entries[-1].server}, not to "
                          f"{server}: connect there first (%comfy connect {entries[-1].server})")
    raise LookupError(f"no job of the ledger ({ledger_path() or 'off'}) has an id starting with "
                      f"{prefix!r}: %comfy jobs lists them")


def _servers_of(client: Client) -> set[str]:
    """The servers whose jobs ``client`` follows, as the ledger names them: its own, or each
    member's of a pool (a job is recorded with the member that took it)."""
    from .client import Pool

    urls = [member.url for member in client.members] if isinstance(client, Pool) \
        else [client.url]
    return {public_url(url) or "" for url in urls}


def _read_alone(entry: LedgerEntry, client: Client) -> LedgerJob:
    """A job the server's listing did not show, followed and read on its own."""
    try:
        followed = client.job(entry.id)
        # a job that has not ended says whether the server knows it in a read of its own
        status = followed.status if followed.done else followed.refresh().status
    except ComfyError as exc:
        return LedgerJob(entry, client, JobStatus.UNKNOWN, problem=str(exc))
    if status is JobStatus.UNKNOWN:  # the server does not know it (any more)
        return LedgerJob(entry, client, JobStatus.UNKNOWN,
                         problem="the server does not know this job (any more)")
    return LedgerJob(entry, client, status, followed)

"""The result cache: finished runs kept on disk, so an identical run returns its :class:`Result`
at once, in this kernel or the next one, with no server involved.

An entry is keyed (:func:`cache_key`) by the server's identity (:func:`server_identity`), the
API workflow as it would be submitted (overrides applied, ``"random"`` seeds already resolved,
node titles left out) and the content hashes of the files uploaded for it. It is one folder named
by the key, holding ``entry.json`` and the output files' bytes; the folder appears by one atomic
rename, and a hit touches ``entry.json``, whose modification time is the entry's last use. The
cache stays under ``max_bytes`` by removing the least recently used entries first. Unreadable
entries count as misses and are removed; entries that vanish under another process are misses.

Publishing an entry (``entry.json``, the rename, eviction) can happen in the background
(:meth:`EntryWriter.commit_later`, on one writer thread per process), so a run's Result is handed
out before its entry is written. Every reader of a cache in this process (:meth:`ResultCache.entry`,
``get``, ``entries``, ``size``, ``evict``…) first waits for the entries of that folder still being
published, so it never sees the cache without them; the writer thread finishes its work before
the interpreter exits.

Owns: the on-disk layout, writing and publishing entries, LRU eviction and the global switch
(:data:`settings`, ``COMFY_NB_CACHE=off``, ``COMFY_NB_CACHE_DIR``). The keys are made by
:mod:`comfy_nb._cache_keys`, an entry is read back (as a :class:`Result`) by
:mod:`comfy_nb._cache_entry`; their public names are exported here.
Must not: speak HTTP (the client downloads into :meth:`ResultCache.writer`), touch widgets, or
ever write an API key, a signed URL or ``extra_data`` into an entry.

Limitation: an input given as a file name already on the server (not uploaded by this client)
is keyed by its name only; if that file is replaced on the server, the cache cannot tell.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import re
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from ._cache_entry import ENTRY_FILE, CacheEntry, load_entry
from ._cache_keys import (
    FORMAT,
    cache_key,
    canonical_json,
    package_version,
    server_identity,
    without_signed_urls,
)
from ._naming import file_key
from .result import (
    FileSource,
    OutputFile,
    Result,
    safe_filename,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "CacheEntry",
    "CacheSettings",
    "EntryWriter",
    "ResultCache",
    "cache_key",
    "default_cache",
    "enable",
    "server_identity",
    "settings",
]

log = logging.getLogger("comfy_nb")

# recordings strip signed URLs from what they store the same way (comfy_nb.replay imports it)
_without_signed_urls = without_signed_urls

DEFAULT_MAX_BYTES = 2 * 1024**3
ENABLE_VARIABLE = "COMFY_NB_CACHE"
DIRECTORY_VARIABLE = "COMFY_NB_CACHE_DIR"
_KEY = re.compile(r"^[0-9a-f]{64}$")
_STALE_STAGING = 24 * 3600.0  # seconds before an abandoned staging folder is removed
_OFF = {"0", "off", "false", "no", "disabled"}
_SETTLE_TIMEOUT = 120.0  # seconds a reader waits for an entry being published, at most
_RESCAN_AFTER = 10.0  # seconds a commit may trust its running total instead of scanning


# -- settings ------------------------------------------------------------------------------------


class CacheSettings:
    """Process-wide defaults. ``enabled`` is what ``cache=None`` means in ``client.run``:
    set it, or leave it None to follow ``COMFY_NB_CACHE`` (``off``/``0``/``false`` turn the
    cache off; anything else, or nothing, leaves it on)."""

    def __init__(self) -> None:
        self._enabled: bool | None = None
        #: where entries go; None: ``$COMFY_NB_CACHE_DIR``, else the platform's cache folder
        self.directory: str | os.PathLike[str] | None = None
        #: the bound on the cache's size on disk
        self.max_bytes: int = DEFAULT_MAX_BYTES

    @property
    def enabled(self) -> bool:
        if self._enabled is not None:
            return self._enabled
        return os.environ.get(ENABLE_VARIABLE, "").strip().lower() not in _OFF

    @enabled.setter
    def enabled(self, value: bool | None) -> None:
        self._enabled = None if value is None else bool(value)

    def __repr__(self) -> str:
        return (f"CacheSettings(enabled={self.enabled}, directory={str(default_directory())!r}, "
                f"max_bytes={self.max_bytes})")


#: the process-wide cache settings (``comfy_nb.cache.settings.enabled = False``)
settings = CacheSettings()
_default: ResultCache | None = None


def enable(on: bool = True) -> None:
    """Turn the result cache on or off for every call that does not say ``cache=``."""
    settings.enabled = on


def default_directory() -> Path:
    """``settings.directory``, ``$COMFY_NB_CACHE_DIR``, or the platform's user cache folder
    (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux) + ``comfy_nb/results``."""
    chosen = settings.directory or os.environ.get(DIRECTORY_VARIABLE)
    if chosen:
        return Path(chosen).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "comfy_nb" / "Cache" / "results"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "comfy_nb" / "results"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "comfy_nb" / "results"


def default_cache() -> ResultCache:
    """The cache clients use unless given one (follows :data:`settings` and the environment)."""
    global _default
    directory = default_directory()
    if (_default is None or _default.directory != directory
            or _default.max_bytes != settings.max_bytes):
        _default = ResultCache(directory, max_bytes=settings.max_bytes)
    return _default


# -- entries being published in the background ---------------------------------------------------

_Publishing = concurrent.futures.Future  # of CacheEntry | None
_pending: dict[tuple[Path, str], _Publishing] = {}  # (cache folder, key) -> being published
_pending_lock = threading.Lock()
_publisher: concurrent.futures.ThreadPoolExecutor | None = None


def _publisher_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The one thread that publishes entries (commits are serialised: one folder scan at a
    time). Its queued work is done before the interpreter exits."""
    global _publisher
    with _pending_lock:
        if _publisher is None:
            _publisher = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="comfy-nb-cache")
        return _publisher


def _being_published(directory: Path, key: str | None) -> list[_Publishing]:
    """The publications still running in this process for ``key`` (None: every key) of the
    cache in ``directory``."""
    with _pending_lock:
        return [future for (folder, pending_key), future in _pending.items()
                if folder == directory and (key is None or pending_key == key)]


def _settle(directory: Path, key: str | None) -> None:
    """Wait until the entries being published for ``key`` (None: any) are on disk."""
    futures = _being_published(directory, key)
    if futures:
        concurrent.futures.wait(futures, _SETTLE_TIMEOUT)


# -- writing -------------------------------------------------------------------------------------


class EntryWriter:
    """A new entry being filled in a hidden staging folder of the cache; :meth:`commit` makes
    it visible at once, :meth:`discard` drops it. Get one from :meth:`ResultCache.writer`."""

    def __init__(self, cache: ResultCache, key: str) -> None:
        self.cache = cache
        self.key = key
        cache.directory.mkdir(parents=True, exist_ok=True)
        self.folder = cache.directory / f".staging-{secrets.token_hex(8)}"
        (self.folder / "files").mkdir(parents=True)
        self._blobs: dict[tuple[str, str, str, str], str] = {}
        self._done = False
        self._moving = threading.Lock()  # open() against the rename that publishes the entry
        self._published: Path | None = None  # the entry's folder once published

    def file_path(self, file: OutputFile) -> Path:
        """Where to write ``file``'s bytes (a new path for each file)."""
        blob = self._blobs.get(file_key(file))
        if blob is None:
            suffix = os.path.splitext(safe_filename(file.filename))[1][:16]
            blob = f"files/{len(self._blobs):04d}{suffix}"
            self._blobs[file_key(file)] = blob
        return self.folder / blob

    def write(self, file: OutputFile, data: bytes) -> None:
        """Store ``file``'s bytes (for callers that have them in memory)."""
        self.file_path(file).write_bytes(data)

    def open(self, file: OutputFile) -> BinaryIO:
        """``file``'s bytes as written so far, open for reading, wherever they are now: in the
        staging folder, or in the entry once published (FileNotFoundError once discarded, or
        if the file was not written)."""
        blob = self._blobs.get(file_key(file))
        if blob is None:
            raise FileNotFoundError(f"{file.filename!r} was not written to the entry")
        with self._moving:
            if self._published is not None:
                return open(self._published / blob, "rb")
            if self._done:
                raise FileNotFoundError(f"{file.filename!r}: the entry was not kept")
            return open(self.folder / blob, "rb")

    @property
    def size(self) -> int:
        """Bytes written so far."""
        total = 0
        for blob in self._blobs.values():
            with contextlib.suppress(OSError):
                total += (self.folder / blob).stat().st_size
        return total

    @property
    def too_large(self) -> bool:
        """Whether the entry already exceeds the cache's bound (then it cannot be kept)."""
        return self.size > self.cache.max_bytes

    def commit(self, *, prompt_id: str, outputs: Mapping[str, Any],
               workflow: Mapping[str, Any] | None, server: str,
               inputs: Mapping[str, str] | None = None,
               provenance: Mapping[str, Any] | None = None,
               credentials: Iterable[str] = ()) -> CacheEntry | None:
        """Write ``entry.json`` and publish the entry; then evict down to ``max_bytes``.
        Returns None (and keeps nothing) when the entry is larger than the bound or its text
        would contain one of ``credentials``. Every file of ``outputs`` must have been written."""
        try:
            return self._commit(prompt_id, outputs, workflow, server, inputs, provenance,
                                credentials)
        finally:
            self.discard()

    def commit_later(self, **fields: Any) -> concurrent.futures.Future[CacheEntry | None]:
        """:meth:`commit` on the cache's writer thread; the future of its outcome. Until it
        ends, readers of this cache in this process wait for it (see the module's docstring).
        Raises nothing: a failure is logged and the future's result is None."""
        published: concurrent.futures.Future[CacheEntry | None] = concurrent.futures.Future()
        slot = (self.cache.directory, self.key)
        with _pending_lock:
            _pending[slot] = published

        def run() -> None:
            try:
                entry = self.commit(**fields)
            except Exception as exc:  # caching never fails a run
                log.warning("comfy_nb: a result was not cached: %s", exc)
                entry = None
            finally:
                with _pending_lock:
                    if _pending.get(slot) is published:
                        del _pending[slot]
            published.set_result(entry)

        try:
            _publisher_pool().submit(run)
        except RuntimeError:  # the interpreter is exiting: publish here and now
            run()
        return published

    def _commit(self, prompt_id: str, outputs: Mapping[str, Any],
                workflow: Mapping[str, Any] | None, server: str,
                inputs: Mapping[str, str] | None, provenance: Mapping[str, Any] | None,
                credentials: Iterable[str]) -> CacheEntry | None:
        clean = without_signed_urls(dict(outputs))
        files: list[dict[str, Any]] = []
        for file in Result(prompt_id, clean, source=None).files:
            blob = self._blobs.get(file_key(file))
            if blob is None or not (self.folder / blob).is_file():
                raise FileNotFoundError(f"{file.filename!r} was not written to the entry")
            files.append({"node_id": file.node_id, "filename": file.filename,
                          "subfolder": file.subfolder, "type": file.type, "blob": blob,
                          "size": (self.folder / blob).stat().st_size})
        body: dict[str, Any] = {
            "format": FORMAT, "key": self.key, "prompt_id": prompt_id, "server": server,
            "created": time.time(), "comfy_nb_version": package_version(),
            "inputs": dict(inputs or {}),
            "outputs": clean, "workflow": dict(workflow) if workflow is not None else None,
            "provenance": without_signed_urls(dict(provenance)) if provenance else None,
            "files": files, "size": 0}
        text = canonical_json(body)
        if any(secret in text for secret in credentials if secret):
            log.warning("comfy_nb: a result was not cached because it contains a credential")
            return None
        size = sum(item["size"] for item in files) + len(text.encode("utf-8")) + 32
        if size > self.cache.max_bytes:
            log.info("comfy_nb: a result of %d bytes is larger than the cache (%d bytes); "
                     "not cached", size, self.cache.max_bytes)
            return None
        body["size"] = size
        (self.folder / ENTRY_FILE).write_text(canonical_json(body), "utf-8")
        target = self.cache._folder(self.key)
        for _ in range(2):
            try:
                with self._moving:
                    os.rename(self.folder, target)
                    self._published = target
                break
            except OSError:
                existing = self.cache._read_entry(self.key)  # removes it if damaged
                if existing is not None:  # stored meanwhile by another client: keep that one
                    return existing
        else:
            return None
        self._done = True
        self.cache._evict(self.cache.max_bytes, keep=self.key, added=size)
        return CacheEntry(
            key=self.key, directory=target, prompt_id=prompt_id, server=server,
            created=body["created"], last_used=body["created"], size=size, outputs=clean,
            workflow=body["workflow"], files=tuple(files), comfy_nb_version=package_version(),
            provenance=body["provenance"])

    def discard(self) -> None:
        """Remove the staging folder (nothing happens after a successful commit)."""
        with self._moving:
            if self._done:
                return
            self._done = True
        shutil.rmtree(self.folder, ignore_errors=True)


# -- the cache -----------------------------------------------------------------------------------


class ResultCache:
    """Finished runs on disk under ``directory`` (default: :func:`default_directory`), at most
    ``max_bytes`` in all; least recently used entries go first. Safe to share between clients
    and processes."""

    def __init__(self, directory: str | os.PathLike[str] | None = None, *,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = Path(directory).expanduser() if directory else default_directory()
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = int(max_bytes)
        # key -> (identity of its entry.json, size): entries never change once published,
        # so eviction reads each entry.json once, not on every commit
        self._sizes: dict[str, tuple[tuple[int, int], int]] = {}
        self._total: int | None = None  # bytes on disk at the last scan, plus commits since
        self._scanned_at = 0.0

    def __repr__(self) -> str:
        return f"<ResultCache {str(self.directory)!r} max_bytes={self.max_bytes}>"

    def _folder(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not a cache key: {key!r}")
        return self.directory / key

    # -- reading -----------------------------------------------------------------------------

    def entry(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` without marking it used; None if absent. A damaged entry is
        removed and counts as absent. Waits for the entry if this process is publishing it."""
        self._folder(key)
        _settle(self.directory, key)
        return self._read_entry(key)

    def may_hold(self, key: str) -> bool:
        """A quick look (no file is read): False when there is certainly no entry for ``key``,
        neither on disk nor being published by this process."""
        return (self._folder(key).is_dir()
                or bool(_being_published(self.directory, key)))

    def _read_entry(self, key: str) -> CacheEntry | None:
        folder = self._folder(key)
        try:
            return load_entry(key, folder)
        except FileNotFoundError:
            if (folder / ENTRY_FILE).exists():  # a blob is missing
                self._drop(folder)
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if folder.exists():
                log.warning("comfy_nb: removing a damaged result-cache entry %s (%s)",
                            key[:12], exc)
                self._drop(folder)
            return None

    def get(self, key: str, *, fallback: FileSource | None = None, server: str | None = None,
            workflow: dict[str, Any] | None = None) -> Result | None:
        """The cached :class:`Result` for ``key`` (marked as just used), or None. See
        :meth:`CacheEntry.result` for the arguments."""
        entry = self.entry(key)
        if entry is None:
            return None
        with contextlib.suppress(OSError):
            os.utime(entry.directory / ENTRY_FILE)
        return entry.result(fallback=fallback, server=server, workflow=workflow)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or not _KEY.match(key):
            return False
        return self.entry(key) is not None

    def entries(self) -> list[CacheEntry]:
        """Every readable entry, least recently used first (damaged ones are removed)."""
        _settle(self.directory, None)
        found = []
        for key in self._keys():
            entry = self._read_entry(key)
            if entry is not None:
                found.append(entry)
        return sorted(found, key=lambda e: e.last_used)

    def _keys(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return [name for name in names if _KEY.match(name)]

    def size(self) -> int:
        """Bytes the entries take on disk."""
        return sum(entry.size for entry in self.entries())

    # -- writing -----------------------------------------------------------------------------

    def writer(self, key: str) -> EntryWriter:
        """A new entry for ``key``, filled by the caller and published by its commit."""
        self._folder(key)
        return EntryWriter(self, key)

    def remove(self, key: str) -> bool:
        """Remove one entry; True if it was there."""
        folder = self._folder(key)
        _settle(self.directory, key)
        if not folder.exists():
            return False
        self._drop(folder)
        return True

    def clear(self) -> None:
        """Remove every entry."""
        _settle(self.directory, None)
        for key in self._keys():
            self._drop(self.directory / key)

    def evict(self, max_bytes: int | None = None, *, keep: str | None = None) -> int:
        """Remove least recently used entries until the cache holds at most ``max_bytes``
        (default: its bound), never ``keep``; also abandoned staging folders. Returns how
        many entries were removed."""
        _settle(self.directory, None)
        return self._evict(self.max_bytes if max_bytes is None else max_bytes, keep=keep)

    def _evict(self, limit: int, *, keep: str | None = None, added: int | None = None) -> int:
        """:meth:`evict`; after a commit (``added``: its size), the folder is scanned only
        when the running total says the bound is reached, or it was last scanned more than
        :data:`_RESCAN_AFTER` seconds ago (other processes write here too)."""
        now = time.monotonic()
        if (added is not None and self._total is not None
                and now - self._scanned_at < _RESCAN_AFTER and self._total + added <= limit):
            self._total += added
            return 0
        self._sweep_staging()
        usage = self._usage()
        total = sum(size for _, _, size in usage)
        removed = 0
        for _, key, size in usage:
            if total <= limit:
                break
            if key == keep:
                continue
            self._drop(self.directory / key)
            total -= size
            removed += 1
        self._total, self._scanned_at = total, now
        return removed

    def _usage(self) -> list[tuple[float, str, int]]:
        """``(last used, key, size)`` of every readable entry, least recently used first: a
        stat per entry, and its ``entry.json`` read only the first time it is seen (damaged
        entries are removed then)."""
        rows = []
        keys = self._keys()
        folder = os.fspath(self.directory)
        for key in keys:
            try:
                stat = os.stat(os.path.join(folder, key, ENTRY_FILE))
            except OSError:
                continue
            identity = (stat.st_ino, stat.st_dev)
            known = self._sizes.get(key)
            if known is None or known[0] != identity:
                entry = self._read_entry(key)
                if entry is None:
                    continue
                known = self._sizes[key] = (identity, entry.size)
            rows.append((stat.st_mtime, key, known[1]))
        for gone in set(self._sizes) - set(keys):
            self._sizes.pop(gone, None)
        return sorted(rows)

    def _drop(self, folder: Path) -> None:
        """Remove an entry folder: first renamed away (readers see it vanish at once)."""
        trash = self.directory / f".trash-{secrets.token_hex(8)}"
        try:
            os.rename(folder, trash)
        except OSError:
            return  # gone already, or removed by another process right now
        shutil.rmtree(trash, ignore_errors=True)

    def _sweep_staging(self) -> None:
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        now = time.time()
        for name in names:
            path = self.directory / name
            if name.startswith(".trash-"):
                shutil.rmtree(path, ignore_errors=True)
            elif name.startswith(".staging-"):
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime > _STALE_STAGING:
                        shutil.rmtree(path, ignore_errors=True)

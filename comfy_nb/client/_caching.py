"""The result cache's side of the client: what a run is keyed by, looking it up
(:class:`RunCache`), and storing a finished run.

A file to upload first stands in the workflow as a placeholder naming its content
(:class:`DeferredUploads`), so the key of a run (:func:`keyed`) is known before anything is
uploaded. A succeeded run is stored by a :class:`ResultStore`: each output file is downloaded once,
into the new entry's folder, on the client's event loop; the run's Result reads its files from
there (:class:`StoringFiles`) as soon as each one is in, and the entry is published afterwards on
the cache's writer thread (:meth:`comfy_nb.cache.EntryWriter.commit_later`), off the path that
hands the Result to the caller. Caching never fails a run: whatever goes wrong, the files come
from the server instead.

Must not: speak HTTP itself (the client's ``download`` fetches), or write a credential into an
entry (the ticket carries the keys sent, for :meth:`~comfy_nb.cache.EntryWriter.commit` to check).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .._content import check_file
from .._loop import LoopThread
from ..cache import CacheEntry, EntryWriter, ResultCache, cache_key, default_cache, server_identity
from ..cache import settings as cache_settings
from ..errors import ComfyError
from ..result import FileSource, OutputFile, Result

if TYPE_CHECKING:
    from ._connection import Connection
    from ._files import ClientFiles

log = logging.getLogger("comfy_nb")

UPLOAD_MARK = "comfy_nb-upload:sha256:"  # stands for a file not uploaded yet, by its content
CHUNK = 1 << 20
#: results whose entries may be waiting to be published per client before ``run`` waits for one
MAX_PUBLISHING = 8

FileKey = tuple[str, str, str, str]


def file_key(file: OutputFile) -> FileKey:
    return (file.node_id, file.filename, file.subfolder, file.type)


# -- keys ----------------------------------------------------------------------------------------


class DeferredUploads:
    """The ``upload`` callback of the workflow layer that uploads nothing yet: each file becomes
    a placeholder naming its content, so the cache key is known before any upload."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[bytes, str | None]] = {}  # placeholder -> bytes, name
        self.names: dict[str, str] = {}  # sha256 -> placeholder (the workflow layer's cache)

    async def __call__(self, data: Any, name: str | None) -> str:
        placeholder = UPLOAD_MARK + hashlib.sha256(data).hexdigest()
        self.pending.setdefault(placeholder, (bytes(data), name))
        return placeholder


def digest_of(placeholder: str) -> str:
    """The sha256 (hex) a placeholder names."""
    return placeholder[len(UPLOAD_MARK):len(UPLOAD_MARK) + 64]


def swap_placeholder(value: Any, names: dict[str, str]) -> Any:
    """``value`` with an upload placeholder replaced by the server-side name (a suffix such as
    ``" [input]"`` is kept)."""
    if isinstance(value, str) and value.startswith(UPLOAD_MARK):
        placeholder = value[:len(UPLOAD_MARK) + 64]
        if placeholder in names:
            return names[placeholder] + value[len(placeholder):]
    return value


def keyed(api: dict[str, Any], upload_digests: dict[str, str]
          ) -> tuple[dict[str, Any], dict[str, str]]:
    """``api`` with each uploaded file input standing as ``sha256:<digest>`` of its content
    (placeholders, and names in ``upload_digests``: files this client uploaded), and those
    digests by ``"<node>.<input>"``."""
    result: dict[str, Any] = {}
    digests: dict[str, str] = {}
    for node_id, node in api.items():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            result[node_id] = node
            continue
        changed = dict(inputs)
        for name, value in inputs.items():
            digest: str | None = None
            if isinstance(value, str) and value.startswith(UPLOAD_MARK):
                digest = digest_of(value)
            elif isinstance(value, str):
                digest = upload_digests.get(value.removesuffix(" [input]"))
            if digest is not None:
                digests[f"{node_id}.{name}"] = digest
                changed[name] = "sha256:" + digest
        result[node_id] = {**node, "inputs": changed}
    return result, digests


@dataclass
class Ticket:
    """Where and under which key a job's result is to be cached."""

    cache: ResultCache
    key: str
    server: str
    inputs: dict[str, str]
    workflow: dict[str, Any] = field(default_factory=dict)  # as submitted
    # never to be written into an entry (nor shown in a traceback's locals)
    credentials: list[str] = field(default_factory=list, repr=False)


# -- storing a result ----------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


Download = Callable[[OutputFile, Path], Awaitable[Any]]


class ResultStore:
    """One succeeded result being cached. ``ready`` says, per file, whether its checked bytes
    are in the entry being written; ``downloaded`` whether all of them are (set once the entry
    is handed to the writer thread, so a reader of the cache waits for it from then on);
    ``published`` is the entry, or None when the result was not cached."""

    def __init__(self, ticket: Ticket, writer: EntryWriter, result: Result) -> None:
        self.ticket = ticket
        self.writer = writer
        self.result = result
        self.ready: dict[FileKey, concurrent.futures.Future[bool]] = {
            file_key(file): concurrent.futures.Future() for file in result.files}
        self.downloaded: concurrent.futures.Future[bool] = concurrent.futures.Future()
        self.published: concurrent.futures.Future[CacheEntry | None] = \
            concurrent.futures.Future()

    async def run(self, download: Download) -> CacheEntry | None:
        """Download every file into the entry, then have it published; the entry, or None (with
        a log line) if it could not be cached."""
        handed = False
        try:
            if await self._download_all(download):
                publishing = self.writer.commit_later(**self._fields())
                handed = True
                self._end_downloads(True)
                entry = await asyncio.wrap_future(publishing)
                self._settle(entry)
                return entry
        finally:
            if not handed:  # cut short (the client closed): leave no staging folder behind
                self.writer.discard()
            self._end_downloads(False)
            self._settle(None)
        return None

    def _fields(self) -> dict[str, Any]:
        result, ticket = self.result, self.ticket
        return {"prompt_id": result.prompt_id, "outputs": result.outputs,
                "workflow": ticket.workflow, "server": ticket.server, "inputs": ticket.inputs,
                "provenance": result.provenance, "credentials": ticket.credentials}

    async def _download_all(self, download: Download) -> bool:
        limit = asyncio.Semaphore(4)
        writer = self.writer

        async def fetch(file: OutputFile) -> None:
            async with limit:
                path = writer.file_path(file)
                await download(file, path)
                # an HTML page sent for an image must not be served from the cache later
                check_file(file.filename, file.kind, path)
                if writer.too_large:
                    raise _TooLarge
                self.ready[file_key(file)].set_result(True)

        tasks = [asyncio.ensure_future(fetch(file)) for file in self.result.files]
        try:
            await asyncio.gather(*tasks)
            return True
        except _TooLarge:
            log.info("comfy_nb: the result of job %s is larger than the result cache; not "
                     "cached", self.result.prompt_id)
        except (ComfyError, OSError, ValueError, RuntimeError) as exc:
            log.warning("comfy_nb: the result of job %s was not cached: %s",
                        self.result.prompt_id, exc)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return False

    def _end_downloads(self, complete: bool) -> None:
        for future in self.ready.values():
            if not future.done():
                future.set_result(False)
        if not self.downloaded.done():
            self.downloaded.set_result(complete)

    def _settle(self, entry: CacheEntry | None) -> None:
        if not self.published.done():
            self.published.set_result(entry)


class StoringFiles:
    """The file source of a Result while it is being cached: a file is read from the entry
    being written as soon as it is in (waiting for its download, not for the others nor for the
    entry to be published), then from the published entry; from the server (``files``) when it
    did not make it into the cache."""

    def __init__(self, files: FileSource, store: ResultStore, loop: LoopThread | None) -> None:
        self._files = files
        self.store = store
        self._loop = loop

    def _can_wait(self) -> bool:
        """Whether this thread may block on the store: not the loop's own thread, where waiting
        would block the download itself (the client's fetch then explains what to do)."""
        return self._loop is not None and not self._loop.in_loop_thread

    def _open(self, file: OutputFile) -> BinaryIO | None:
        """The stored bytes of ``file``, open, once its download ended; None if they are not
        in the cache (or cannot be waited for here)."""
        ready = self.store.ready.get(file_key(file))
        if ready is None or not (ready.done() or self._can_wait()):
            return None
        if not LoopThread.wait(ready):
            return None
        with contextlib.suppress(FileNotFoundError):
            return self.store.writer.open(file)
        # the writer let go of it: another client's entry was kept instead, or none
        published = self.store.published
        if not (published.done() or self._can_wait()):
            return None
        return _open_entry(LoopThread.wait(published), file)

    async def _aopen(self, file: OutputFile) -> BinaryIO | None:
        ready = self.store.ready.get(file_key(file))
        if ready is None or not await asyncio.wrap_future(ready):
            return None
        with contextlib.suppress(FileNotFoundError):
            return self.store.writer.open(file)
        return _open_entry(await asyncio.wrap_future(self.store.published), file)

    def fetch(self, file: OutputFile) -> bytes:
        handle = self._open(file)
        if handle is None:
            return self._files.fetch(file)
        with handle:
            return handle.read()

    async def afetch(self, file: OutputFile) -> bytes:
        handle = await self._aopen(file)
        if handle is None:
            return await self._files.afetch(file)
        with handle:
            return await asyncio.to_thread(handle.read)

    def fetch_to(self, file: OutputFile, path: Path) -> None:
        handle = self._open(file)
        if handle is None:
            self._files.fetch_to(file, path)
            return
        _copy(handle, path)

    async def afetch_to(self, file: OutputFile, path: Path) -> None:
        handle = await self._aopen(file)
        if handle is None:
            await self._files.afetch_to(file, path)
            return
        await asyncio.to_thread(_copy, handle, path)


def _open_entry(entry: CacheEntry | None, file: OutputFile) -> BinaryIO | None:
    if entry is None:
        return None
    with contextlib.suppress(FileNotFoundError):
        return entry.open(file)
    return None


def _copy(handle: BinaryIO, path: Path) -> None:
    """Copy the rest of ``handle`` (then closed) into the existing file ``path``."""
    with handle, open(path, "r+b") as writer:
        writer.truncate(0)
        shutil.copyfileobj(handle, writer, CHUNK)


# -- one client's runs and the cache -------------------------------------------------------------


class RunCache:
    """The result cache as one client's runs use it: the :class:`Ticket` of a run, looking it
    up, and storing the Result of a job that succeeded (its files fetched through ``files``)."""

    def __init__(self, connection: Connection, files: ClientFiles,
                 result_cache: ResultCache | None) -> None:
        self._connection = connection
        self._files = files
        self._result_cache = result_cache
        self._identity: str | None = None  # the server as the result cache names it
        self._tickets: dict[str, Ticket] = {}  # prompt id -> where its result is cached
        self._storing: dict[str, asyncio.Task[CacheEntry | None]] = {}  # key -> store running

    async def _server_identity(self) -> str:
        if self._identity is None:
            connection = self._connection
            stats = connection.stats
            if stats is None:  # the dialect was given, so the server was not asked yet
                try:
                    stats = await connection.system_stats()
                except ComfyError:
                    stats = {}
            self._identity = server_identity(connection.url, connection.dialect, stats)
        return self._identity

    async def ticket(self, api: dict[str, Any], upload_digests: dict[str, str],
                     cache: bool | None) -> Ticket | None:
        """Where the run of ``api`` is looked up and stored; None when not caching (``cache``
        None follows ``comfy_nb.cache.settings.enabled``)."""
        if not (cache_settings.enabled if cache is None else cache):
            return None
        store = self._result_cache if self._result_cache is not None else default_cache()
        server = await self._server_identity()
        form, inputs = keyed(api, upload_digests)
        try:
            key = cache_key(server, form, inputs)
        except (TypeError, ValueError):  # values JSON cannot hold: the server would refuse too
            return None
        return Ticket(store, key, server, inputs)

    async def lookup(self, ticket: Ticket, workflow: dict[str, Any]) -> Result | None:
        """The cached Result for the ticket, after any store of the same key in progress."""
        storing = self._storing.get(ticket.key)
        if storing is not None:
            await asyncio.wait([storing])
        if not ticket.cache.may_hold(ticket.key):  # the common miss, without a thread
            return None
        return await asyncio.to_thread(ticket.cache.get, ticket.key, fallback=self._files,
                                       server=self._connection.url, workflow=workflow)

    def keep(self, prompt_id: str, ticket: Ticket) -> None:
        """Cache the result of job ``prompt_id`` under ``ticket`` if it succeeds."""
        self._tickets[prompt_id] = ticket

    def drop(self, prompt_id: str) -> None:
        """Job ``prompt_id`` was lost: nothing to cache."""
        self._tickets.pop(prompt_id, None)

    def ended(self, prompt_id: str, result: Result, status: str) -> None:
        """Job ``prompt_id`` ended with ``result``: cached if it succeeded and was to be."""
        ticket = self._tickets.pop(prompt_id, None)
        if ticket is not None and status == "succeeded":
            self._start_store(ticket, result)

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
        await self._connection.download(file.params(), path)

    def settled(self, result: Result) -> bool:
        """Whether :meth:`hand_over` has nothing to wait for (callable from any thread)."""
        if isinstance(result.source, StoringFiles) and not result.source.store.downloaded.done():
            return False
        return len(self._storing) <= MAX_PUBLISHING

    async def hand_over(self, result: Result) -> None:
        """Wait until a result being cached has its files in the new entry (publishing the
        entry goes on in the background), and, while this client has more than
        :data:`MAX_PUBLISHING` results being stored, for the oldest ones."""
        if isinstance(result.source, StoringFiles):
            await asyncio.wrap_future(result.source.store.downloaded)
        while len(self._storing) > MAX_PUBLISHING:
            await asyncio.wait([next(iter(self._storing.values()))])

    async def flush(self, timeout: float = 10.0) -> None:
        """Let the results being cached finish (up to ``timeout`` seconds); the late ones
        are given up."""
        if self._storing:
            _, late = await asyncio.wait(list(self._storing.values()), timeout=timeout)
            for task in late:
                task.cancel()

"""The result cache's side of the client: what a run is keyed by, and storing a finished run.

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
from typing import Any, BinaryIO

from .._content import check_file
from .._loop import LoopThread
from ..cache import CacheEntry, EntryWriter, ResultCache
from ..errors import ComfyError
from ..result import FileSource, OutputFile, Result

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

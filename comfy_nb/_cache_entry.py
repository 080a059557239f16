"""One entry of the result cache as read from disk: :class:`CacheEntry` (from its
``entry.json``, checked by :func:`load_entry`), its files, and the :class:`Result` it gives back
(reading from the entry's folder through :class:`EntryFiles`).

Owns: reading and checking an entry's folder. Must not: write, evict or publish entries (the
cache, :mod:`comfy_nb.cache`, does), or speak HTTP (a file whose entry is gone comes from the
``fallback`` source, the client).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ._cache_keys import FORMAT
from ._naming import file_key
from ._saving import copy_into
from .result import FileSource, OutputFile, Result, afetch_into, fetch_into

__all__ = ["ENTRY_FILE", "CacheEntry", "EntryFiles", "load_entry"]

ENTRY_FILE = "entry.json"


class EntryFiles:
    """An entry's folder as the :class:`FileSource` of a cached Result; ``fallback`` (the
    client) serves a file whose entry was removed meanwhile."""

    def __init__(self, entry: CacheEntry, fallback: FileSource | None) -> None:
        self._entry = entry
        self._fallback = fallback

    def _missing(self, file: OutputFile) -> FileNotFoundError:
        return FileNotFoundError(f"{file.filename!r} is gone from the result cache (entry "
                                 f"{self._entry.key[:12]}… was removed); run the workflow again")

    def fetch(self, file: OutputFile) -> bytes:
        try:
            return self._entry.read(file)
        except FileNotFoundError:
            if self._fallback is None:
                raise self._missing(file) from None
        return self._fallback.fetch(file)

    async def afetch(self, file: OutputFile) -> bytes:
        try:
            return await asyncio.to_thread(self._entry.read, file)
        except FileNotFoundError:
            if self._fallback is None:
                raise self._missing(file) from None
        return await self._fallback.afetch(file)

    def fetch_to(self, file: OutputFile, path: Path) -> None:
        try:
            self._entry.copy_to(file, path)
            return
        except FileNotFoundError:
            if self._fallback is None:
                raise self._missing(file) from None
        fetch_into(self._fallback, file, path)

    async def afetch_to(self, file: OutputFile, path: Path) -> None:
        try:
            await asyncio.to_thread(self._entry.copy_to, file, path)
            return
        except FileNotFoundError:
            if self._fallback is None:
                raise self._missing(file) from None
        await afetch_into(self._fallback, file, path)


@dataclass(frozen=True)
class CacheEntry:
    """One stored run, as read from its ``entry.json``."""

    key: str
    directory: Path
    prompt_id: str
    server: str
    created: float  # seconds since the epoch
    last_used: float
    size: int  # bytes on disk, entry.json included
    outputs: dict[str, Any]
    workflow: dict[str, Any] | None
    files: tuple[dict[str, Any], ...]  # node_id, filename, subfolder, type, blob, size
    comfy_nb_version: str
    provenance: dict[str, Any] | None = None  # of the run that made it (comfy_nb.provenance)

    def _blob(self, file: OutputFile) -> Path:
        for item in self.files:
            if file_key(item) == file_key(file):
                return self.directory / item["blob"]
        raise FileNotFoundError(f"{file.filename!r} is not part of cache entry {self.key[:12]}…")

    def read(self, file: OutputFile) -> bytes:
        """The stored bytes of one output file (FileNotFoundError if the entry is gone)."""
        return self._blob(file).read_bytes()

    def open(self, file: OutputFile) -> BinaryIO:
        """The stored bytes of one output file, open for reading (FileNotFoundError if the
        entry is gone)."""
        return open(self._blob(file), "rb")

    def copy_to(self, file: OutputFile, path: Path) -> None:
        """Copy the stored bytes of one output file into the existing file ``path``, a chunk
        at a time (FileNotFoundError if the entry is gone)."""
        copy_into(self._blob(file), path)

    def result(self, *, fallback: FileSource | None = None, server: str | None = None,
               workflow: dict[str, Any] | None = None) -> Result:
        """The stored run as a :class:`Result` (``from_cache=True``) reading from this entry.
        ``workflow`` replaces the stored one's node titles (``_meta``) where node ids match."""
        stored = self.workflow
        if stored is not None and workflow:
            stored = {node_id: _with_title(node, workflow.get(node_id))
                      for node_id, node in stored.items()}
        return Result(self.prompt_id, self.outputs, source=EntryFiles(self, fallback),
                      workflow=stored, status="succeeded", server=server,
                      provenance=self.provenance, from_cache=True, cached_at=self.created)


def _with_title(node: Any, current: Any) -> Any:
    """``node`` with the ``_meta`` (title) of ``current``, the node as submitted now."""
    if isinstance(node, dict) and isinstance(current, dict) and "_meta" in current:
        return {**node, "_meta": current["_meta"]}
    return node


def load_entry(key: str, folder: Path) -> CacheEntry:
    """The entry in ``folder``; ValueError if it is malformed or incomplete, OSError if it
    cannot be read (FileNotFoundError: it vanished)."""
    path = folder / ENTRY_FILE
    data = json.loads(path.read_text("utf-8"))
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != key:
        raise ValueError("not an entry of this format")
    files = data["files"]
    if not isinstance(files, list) or not isinstance(data["outputs"], dict):
        raise ValueError("malformed entry")
    for item in files:
        blob = folder / str(item["blob"])
        if blob.parent != folder / "files" or blob.stat().st_size != int(item["size"]):
            raise ValueError(f"file {item['blob']} is damaged")
    workflow = data.get("workflow")
    record = data.get("provenance")
    return CacheEntry(
        key=key, directory=folder, prompt_id=str(data["prompt_id"]), server=str(data["server"]),
        created=float(data["created"]), last_used=path.stat().st_mtime, size=int(data["size"]),
        outputs=data["outputs"], workflow=workflow if isinstance(workflow, dict) else None,
        files=tuple(files), comfy_nb_version=str(data.get("comfy_nb_version", "")),
        provenance=record if isinstance(record, dict) else None)

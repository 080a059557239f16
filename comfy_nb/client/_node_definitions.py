"""The server's node definitions (``/object_info``) kept on disk, one copy per server, so a new
client (a kernel restarted) checks its first workflow without waiting for the server to list
every node class again.

A copy is keyed by the server's URL (scheme, host, port, path; never a user, password or query),
its dialect and its version, and lives in ``<cache folder>/node-definitions/<hash>.json`` (the
cache folder is the result cache's: ``COMFY_NB_CACHE_DIR`` or the platform's cache folder). Copies
are written whole to a temporary file and renamed into place, so kernels sharing the folder
never read half a copy; a copy whose text would contain one of the client's keys is not written.
:class:`NodeDefinitions` holds one client's definitions and decides when a copy is too old or
may be wrong.

Must not: speak HTTP (the connection fetches), or keep anything but the definitions and their
key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ComfyError

if TYPE_CHECKING:
    from ..cache import ResultCache
    from ..errors import WorkflowInvalid
    from ._connection import Connection

log = logging.getLogger("comfy_nb")

FORMAT = 1
FOLDER = "node-definitions"
#: seconds after which node definitions read from disk are refreshed in the background
REFRESH_AFTER = 600.0


def server_key(url: str, dialect: str, version: str | None) -> str:
    """What a copy is filed under: ``<dialect>:<scheme>://<host>[:port]<path> <version>``."""
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if parts.port is not None and (scheme, parts.port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{parts.port}"
    return f"{dialect}:{scheme}://{host}{parts.path.rstrip('/')} {version or 'unknown'}"


def version_of(stats: Any) -> str | None:
    """The server's version in its ``/system_stats`` answer, or None."""
    system = stats.get("system") if isinstance(stats, Mapping) else None
    found = system.get("cloud_version") or system.get("comfyui_version") \
        if isinstance(system, Mapping) else None
    return str(found) if found else None


#: seconds during which definitions just read from the server are not asked for again
TRUSTED_FOR = 10.0


def may_be_stale(problems: Iterable[Any], used: Mapping[str, Any],
                 confirmed_for: float | None) -> bool:
    """Whether the definitions ``used`` may be why a workflow has ``problems`` (each with a
    ``type`` and a ``class_type``): a copy the server did not give this client
    (``confirmed_for`` None), or one it gave more than :data:`TRUSTED_FOR` seconds ago that
    lacks a node class or a value the workflow names (the server may have gained it since)."""
    if confirmed_for is None:
        return True
    return confirmed_for > TRUSTED_FOR and any(
        problem.type == "value_not_in_list"
        or (problem.class_type is not None and problem.class_type not in used)
        for problem in problems)


@dataclass(frozen=True)
class StoredDefinitions:
    """A copy read from disk."""

    object_info: dict[str, Any]
    fetched: float  # when the server gave it (seconds since the epoch)

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.fetched)


class DefinitionStore:
    """The copies in ``directory`` (a ``node-definitions`` folder)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def beside(cls, cache_directory: Path) -> DefinitionStore:
        """The store in the cache folder ``cache_directory``."""
        return cls(cache_directory / FOLDER)

    def _path(self, key: str) -> Path:
        return self.directory / (hashlib.sha256(key.encode("utf-8")).hexdigest()[:40] + ".json")

    def load(self, key: str) -> StoredDefinitions | None:
        """The copy filed under ``key``, or None (none, unreadable, or of another key)."""
        try:
            data = json.loads(self._path(key).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if (not isinstance(data, dict) or data.get("format") != FORMAT
                or data.get("server") != key or not isinstance(data.get("object_info"), dict)
                or not isinstance(data.get("fetched"), (int, float))):
            return None
        return StoredDefinitions(data["object_info"], float(data["fetched"]))

    def save(self, key: str, object_info: dict[str, Any], *,
             credentials: Iterable[str] = ()) -> bool:
        """File ``object_info`` under ``key`` (atomically); False (and a log line) if it was
        not written."""
        text = json.dumps({"format": FORMAT, "server": key, "fetched": time.time(),
                           "object_info": object_info}, separators=(",", ":"))
        if any(secret in text for secret in credentials if secret):
            log.warning("comfy_nb: the node definitions were not cached: they contain a key")
            return False
        target = self._path(key)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(dir=self.directory, prefix=".part-",
                                            suffix=".json")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    out.write(text)
                os.replace(name, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(name)
                raise
        except OSError as exc:
            log.warning("comfy_nb: the node definitions could not be cached in %s (%s)",
                        self.directory, exc)
            return False
        return True

    def remove(self, key: str) -> None:
        """Forget the copy filed under ``key``."""
        with contextlib.suppress(OSError):
            self._path(key).unlink()


class NodeDefinitions:
    """One client's node definitions (:meth:`get`): read once from the server; with the cache
    on (:mod:`comfy_nb.cache`), a new client of the same server (a kernel restarted) starts from
    the copy on disk, refreshed in the background when older than :data:`REFRESH_AFTER`
    seconds; a workflow problem such a copy may be wrong about (an unknown node class, a value
    not in a list) is checked again against the server's own (:meth:`checked`)."""

    def __init__(self, connection: Connection, result_cache: ResultCache | None) -> None:
        self._connection = connection
        self._result_cache = result_cache
        self._object_info: dict[str, Any] | None = None
        self._confirmed = False  # _object_info came from the server, not a copy
        self._fetched = 0.0  # time.monotonic() when the server gave them
        self._background: set[asyncio.Future[Any]] = set()  # definitions fetched or written
        self._fetching: asyncio.Future[dict[str, Any]] | None = None  # the request going now

    @property
    def confirmed(self) -> bool:
        return self._confirmed

    async def get(self, refresh: bool = False) -> dict[str, Any]:
        """The definitions: those held, else the copy on disk, else the server's; ``refresh``
        asks the server now."""
        await self._connection.ready()
        if self._object_info is None and not refresh:
            stored = await self._stored()
            if stored is not None:
                self._object_info = stored.object_info
                if stored.age > REFRESH_AFTER:
                    self._in_background(self._fetch())
                return self._object_info
        if self._object_info is None or refresh:
            return await self._fetch()
        return self._object_info

    async def _fetch(self) -> dict[str, Any]:
        """The server's definitions; callers at the same time share one request (a pool checks
        several runs started at once against the same member)."""
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.ensure_future(self._fetch_now())
            # (read here, so that a request every caller gave up on is not reported unread)
            self._fetching.add_done_callback(lambda done: done.cancelled() or done.exception())
        return await asyncio.shield(self._fetching)

    async def _fetch_now(self) -> dict[str, Any]:
        info = await self._connection.object_info()
        self._object_info = info
        self._confirmed = True
        self._fetched = time.monotonic()
        store = self._store()
        key = await self._key() if store is not None else None
        if store is not None and key is not None:
            api_key = self._connection.api_key
            credentials = [api_key.reveal()] if api_key else []
            self._in_background(asyncio.to_thread(store.save, key, info,
                                                  credentials=credentials))
        return info

    async def _stored(self) -> StoredDefinitions | None:
        store = self._store()
        key = await self._key() if store is not None else None
        if store is None or key is None:
            return None
        return await asyncio.to_thread(store.load, key)

    def _store(self) -> DefinitionStore | None:
        """Where node definitions are kept on disk: beside the result cache; None when the
        cache is switched off."""
        from ..cache import default_cache
        from ..cache import settings as cache_settings

        if not cache_settings.enabled:
            return None
        cache = self._result_cache if self._result_cache is not None else default_cache()
        return DefinitionStore.beside(cache.directory)

    async def _key(self) -> str | None:
        """The key of this server's node definitions; None when its version is unknown."""
        connection = self._connection
        if connection.server_version is None and connection.stats is None:
            with contextlib.suppress(ComfyError):
                stats = await connection.system_stats()
                connection.stats = stats if isinstance(stats, dict) else None
                connection.server_version = version_of(stats)
        if connection.server_version is None:
            return None
        return server_key(connection.url, connection.dialect, connection.server_version)

    async def checked(self, problems: WorkflowInvalid,
                      used: dict[str, Any]) -> dict[str, Any] | None:
        """The server's node definitions, asked again when ``used`` may be why ``problems``
        were found (see :func:`may_be_stale`); else None."""
        confirmed_for = time.monotonic() - self._fetched if self._confirmed else None
        if not may_be_stale(problems.problems, used, confirmed_for):
            return None
        return await self.get(refresh=True)

    def _in_background(self, work: Awaitable[Any]) -> None:
        """Run ``work`` (definitions fetched or written) without waiting for it; a failure is
        logged. :meth:`wind_down` lets it finish."""
        task = asyncio.ensure_future(work)
        self._background.add(task)

        def ended(task: asyncio.Future[Any]) -> None:
            self._background.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.debug("comfy_nb: background work failed: %s", task.exception())

        task.add_done_callback(ended)

    async def wind_down(self, timeout: float = 10.0) -> None:
        """Let definitions being fetched or written finish (up to ``timeout`` seconds)."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout)

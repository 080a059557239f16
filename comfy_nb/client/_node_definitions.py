"""The server's node definitions (``/object_info``) kept on disk, one copy per server, so a new
client (a kernel restarted) checks its first workflow without waiting for the server to list
every node class again.

A copy is keyed by the server's URL (scheme, host, port, path; never a user, password or query),
its dialect and its version, and lives in ``<cache folder>/node-definitions/<hash>.json`` (the
cache folder is the result cache's: ``COMFY_NB_CACHE_DIR`` or the platform's cache folder). Copies
are written whole to a temporary file and renamed into place, so kernels sharing the folder
never read half a copy; a copy whose text would contain one of the client's keys is not written.
The client decides when a copy is too old or wrong (see :meth:`AsyncClient.object_info`).

Must not: speak HTTP (the client fetches), or keep anything but the definitions and their key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("comfy_nb")

FORMAT = 1
FOLDER = "node-definitions"


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

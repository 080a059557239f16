"""The keys of the result cache: what identifies a server (:func:`server_identity`) and a run on
it (:func:`cache_key`), and what an entry must not keep (:func:`without_signed_urls`).

Owns: the key format (:data:`FORMAT`, shared with ``entry.json``) and the canonical JSON keys
are hashed from. Must not: touch the disk, or ever put a credential into a key.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from ._version import package_version

__all__ = ["FORMAT", "cache_key", "canonical_json", "server_identity", "without_signed_urls"]

FORMAT = 1  # of entry.json and of the key; a new format never reads old entries


def server_identity(url: str, dialect: str,
                    system_stats: Mapping[str, Any] | None = None) -> str:
    """What the cache calls a server: ``<dialect>:<normalized url>``, followed by the versions
    its system stats report (``comfyui_version``, and Comfy Cloud's ``cloud_version``), so the
    outputs of one build are not served for another at the same address; for the comfy_nb
    emulator (its system stats have an ``emulator`` section)
    ``comfy_nb-emulator/<dialect>/<version>``, whatever its port, so notebooks on the emulator
    hit across kernels. Never a credential."""
    emulator = system_stats.get("emulator") if isinstance(system_stats, Mapping) else None
    if isinstance(emulator, Mapping):
        return f"comfy_nb-emulator/{dialect}/{package_version()}"
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    identity = f"{dialect}:{scheme}://{host}{parts.path.rstrip('/')}"
    system = system_stats.get("system") if isinstance(system_stats, Mapping) else None
    if isinstance(system, Mapping):
        for name in ("comfyui_version", "cloud_version"):
            version = system.get(name)
            if isinstance(version, str) and version:
                identity += f" {name.split('_')[0]}/{version}"
    return identity


def canonical_json(value: Any) -> str:
    """``value`` as JSON with sorted keys and no spaces: the same text for the same data."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(server: str, workflow: Mapping[str, Any],
              inputs: Mapping[str, str] | None = None) -> str:
    """SHA-256 (hex) of the canonical JSON of the server identity, the API workflow without
    node ``_meta`` and ``inputs`` (``{"<node>.<input>": sha256 of the uploaded bytes}``).
    Raises TypeError for values JSON cannot hold."""
    nodes = {str(node_id): ({k: v for k, v in node.items() if k != "_meta"}
                            if isinstance(node, Mapping) else node)
             for node_id, node in workflow.items()}
    body = {"format": FORMAT, "server": server, "workflow": nodes,
            "inputs": dict(sorted((inputs or {}).items()))}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def without_signed_urls(value: Any) -> Any:
    """``value`` without mapping entries holding an http(s) URL with a query (signed storage
    URLs): the entry serves the bytes itself and must not keep a credential."""
    if isinstance(value, Mapping):
        return {k: without_signed_urls(v) for k, v in value.items()
                if not (isinstance(v, str) and v.lower().startswith(("http://", "https://"))
                        and "?" in v)}
    if isinstance(value, list):
        return [without_signed_urls(v) for v in value]
    return value

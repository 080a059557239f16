"""A recording's layout on disk and its labels: the file and folder names, JSON written so that
it diffs well (and atomically), and :class:`ReplayedFrom`, when and where a run was recorded.

Owns: the names of a recording's files and the way they are written. Must not: read runs, match
them or write a run's folder (:mod:`._reading`, :mod:`._matching`, :mod:`._writing`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

FORMAT = 1  # of recording.json and job.json
INDEX = "recording.json"
NODE_DEFINITIONS = "object_info.json"
JOB_FILE = "job.json"
WORKFLOW_FILE = "workflow.json"
OUTPUTS_FOLDER = "outputs"
RUN_FOLDER = re.compile(r"^(\d{2,})-[0-9a-f]{8}$")


class ReplayedFrom(NamedTuple):
    """When and where a replayed run was recorded."""

    date: str  # "2025-01-31 14:05 UTC"
    server: str  # "http://127.0.0.1:8188 (local, ComfyUI 0.3.64)"

    @property
    def label(self) -> str:
        return f"replayed from {self.date}, {self.server}"



def now_stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def date_label(stamp: str) -> str:
    """``2025-01-31T14:05:09+00:00`` as ``2025-01-31 14:05 UTC``."""
    try:
        moment = datetime.datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return str(stamp)
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def server_label(server: Mapping[str, Any]) -> str:
    dialect = server.get("dialect") or "unknown"
    if server.get("emulator"):
        return f"the comfy_nb emulator ({dialect})"
    url = server.get("url") or "an unknown server"
    version = server.get("version")
    product = "Comfy Cloud" if dialect == "cloud" else "ComfyUI"
    return f"{url} ({dialect}, {product} {version})" if version else f"{url} ({dialect})"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dump_json(value: Any, *, sort_keys: bool = True) -> str:
    """JSON that diffs well: sorted keys, one-space indent, one value a line. Node definitions
    keep the server's order (``sort_keys=False``): the order of a node's inputs is meaningful."""
    return json.dumps(value, indent=1, sort_keys=sort_keys, ensure_ascii=False) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)

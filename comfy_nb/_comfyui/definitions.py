"""The node definitions of ComfyUI 0.3.64 (``/object_info``, 496 classes), recorded from a real
server and packaged with comfy_nb: what the emulator serves, and what the workflow layer knows
of node classes before it has asked a server. Read once; never written."""

from __future__ import annotations

import functools
import gzip
import json
from importlib import resources
from typing import Any


@functools.lru_cache(maxsize=1)
def recorded_object_info() -> dict[str, Any]:
    """The recorded ``/object_info`` (callers must not change it)."""
    data = resources.files(__package__).joinpath("data/object_info.json.gz").read_bytes()
    parsed: dict[str, Any] = json.loads(gzip.decompress(data))
    return parsed

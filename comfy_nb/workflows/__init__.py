"""Workflows shipped with comfy_nb (API format), for demos and the command line."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def bundled(name: str = "txt2img") -> dict[str, Any]:
    """A bundled API-format workflow by name (``txt2img``: ComfyUI's default graph)."""
    text = resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    workflow: dict[str, Any] = json.loads(text)
    return workflow

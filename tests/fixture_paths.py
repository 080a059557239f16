"""Where the tests find the recorded reference material: ``tests/fixtures/`` in this repository
(see its README for where each file came from), or the folder named by ``COMFY_NB_FIXTURES``,
laid out the same way (``comfyui/``, ``comfy-api-v2/``, ``ui2api/``, ``ui2api-fe158/``,
``reference/``).

A missing folder fails only the tests that need it, each with the reason (:func:`not_found`),
and stops nothing else: tests/conftest.py turns a read under a missing folder (in a test, a
fixture, or a module's import) into that failure, and :func:`listing` lets a module parametrize
over a folder's contents without reading a missing folder at import.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

ROOT = Path(os.environ.get("COMFY_NB_FIXTURES") or Path(__file__).resolve().parent / "fixtures")
COMFYUI = ROOT / "comfyui"  # traffic of a real ComfyUI 0.3.64
RUNS = COMFYUI / "runs"
# Comfy API v2 traffic: comfy-api-proxy 0.1.6 in front of that ComfyUI, driven by comfy-sdk 0.5.0
COMFY_API_V2 = ROOT / "comfy-api-v2"
UI2API = ROOT / "ui2api"  # editor workflows and the API format the editor (1.27.10) made of them
UI2API_FE158 = ROOT / "ui2api-fe158"  # the same from the current editor (frontend 1.58.1)
CLOUD_SPEC = ROOT / "reference" / "openapi-cloud.yaml"  # the Comfy Cloud OpenAPI spec

MISSING = "(missing)"  # what :func:`listing` lists in a missing folder


def not_found(folder: Path) -> str:
    """Why a test that needs ``folder`` fails."""
    return (f"recorded fixtures not found at {folder} (tests/fixtures/ is part of the "
            "repository; COMFY_NB_FIXTURES, when set, must name a folder laid out the same way)")


def missing_folder(path: str | os.PathLike[str]) -> Path | None:
    """The outermost of ``path`` and the folders it lies in, ``ROOT`` or below, that is
    missing; None for a path outside the recorded fixtures, or one that exists."""
    path = Path(path).absolute()
    root = ROOT.absolute()
    if path != root and root not in path.parents:
        return None
    folder = root
    for part in (None, *path.relative_to(root).parts):
        folder = folder / part if part else folder
        if not folder.exists():
            return folder
    return None


def listing(folder: Path, pattern: str = "*",
            where: Callable[[Path], bool] | None = None) -> list[Path]:
    """The entries of ``folder`` that match ``pattern`` (and ``where``), sorted: what tests
    parametrize over at import time. A missing folder lists one entry, ``folder / MISSING``,
    so that each test over it fails with the reason when it reads there, instead of the module
    failing to import (which stops the whole run) or of nothing being collected (a skip)."""
    if not folder.is_dir():
        return [folder / MISSING]
    return sorted(path for path in folder.glob(pattern) if where is None or where(path))


def require(folder: Path) -> Path:
    """``folder``, or, if it is missing, a :class:`FileNotFoundError` for what it should hold
    (tests/conftest.py reports the reason)."""
    if not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, "No such directory", str(folder / MISSING))
    return folder

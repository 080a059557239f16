"""comfy_nb: run ComfyUI workflows on Comfy Cloud or your own ComfyUI server from Jupyter.

The public surface grows here; the embedded emulator lives in :mod:`comfy_nb.emulator`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("comfy-nb")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]

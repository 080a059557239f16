"""Node implementations the emulator really executes (model-free core nodes with Pillow, numpy and
PyAV, and a deterministic procedural stand-in for the text-to-image graph).

Importing this package registers every implementation in :data:`IMPLEMENTATIONS`. A node class
that is in object_info but not here validates normally and fails at execution with
:class:`NotEmulatedError`.
"""

from __future__ import annotations

from . import audio, image, latent, sampling, text, video  # noqa: F401  (registers the nodes)
from ._base import (
    IMPLEMENTATIONS,
    InterruptedByUser,
    NodeContext,
    NodeResult,
    NotEmulatedError,
    PreviewImage,
    node,
)

__all__ = [
    "IMPLEMENTATIONS",
    "InterruptedByUser",
    "NodeContext",
    "NodeResult",
    "NotEmulatedError",
    "PreviewImage",
    "node",
]

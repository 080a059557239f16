"""The contract between the emulator's executor and its node implementations.

A node implementation is a plain function ``fn(ctx, **inputs) -> NodeResult`` registered for a
ComfyUI class name with :func:`node`. It receives literal inputs as sent in the prompt and linked
inputs as the upstream node's output values. It must not touch the network, the queue or the
websocket: everything it may do to the outside world goes through :class:`NodeContext`.

Value conventions (the same as ComfyUI's, with numpy standing in for torch):

- IMAGE: ``np.float32`` array ``[batch, height, width, channels]`` in 0..1 (channels = 3).
- MASK: ``np.float32`` array ``[batch, height, width]`` in 0..1.
- LATENT: ``{"samples": np.float32 array [batch, 4, height // 8, width // 8]}``.
- AUDIO: ``{"waveform": np.float32 array [batch, channels, samples], "sample_rate": int}``.
- VIDEO: :class:`comfy_nb.emulator.nodes.video.EmulatedVideo`.
- MODEL, CLIP, VAE, CONDITIONING: the stand-in objects of ``sampling.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image


class NotEmulatedError(Exception):
    """Raised at execution time by a node class the emulator knows but does not run."""


class InterruptedByUser(Exception):
    """Raised inside a node when the job was interrupted; the executor turns it into
    ``execution_interrupted``. Nodes never catch it."""


@dataclass(frozen=True)
class PreviewImage:
    """A preview for the websocket: the image, its wire format and the largest side allowed
    (``None`` sends it at full size, as SaveImageWebsocket does)."""

    image: Image.Image
    format: str = "JPEG"  # "JPEG" or "PNG"
    max_size: int | None = 512


class NodeContext(Protocol):
    """What a running node may see and do. Implemented by the executor."""

    node_id: str
    prompt_id: str
    prompt: dict[str, Any]
    extra_pnginfo: dict[str, Any] | None
    input_dir: Path
    output_dir: Path
    temp_dir: Path
    step_delay: float

    def progress(self, value: int, total: int, preview: PreviewImage | None = None) -> None:
        """Report progress (sends ``progress_state``, ``progress`` and an optional binary
        preview frame, in ComfyUI's order). Raises InterruptedByUser when interrupted."""

    def send_text(self, text: str) -> None:
        """Send a binary type 3 (progress text) frame for this node."""

    def check_interrupted(self) -> None:
        """Raise InterruptedByUser if the job was interrupted."""

    def sleep(self, seconds: float) -> None:
        """Wait, waking early (and raising InterruptedByUser) when interrupted."""


@dataclass
class NodeResult:
    """What a node returns: its output values by slot, and the ``ui`` dict that becomes the
    ``executed`` message's ``output`` and the history ``outputs`` entry (output nodes only)."""

    outputs: tuple[Any, ...] = ()
    ui: dict[str, Any] | None = None


NodeFunction = Callable[..., NodeResult]

IMPLEMENTATIONS: dict[str, NodeFunction] = {}


def node(class_type: str) -> Callable[[NodeFunction], NodeFunction]:
    """Register ``fn`` as the implementation of the ComfyUI node class ``class_type``."""

    def register(fn: NodeFunction) -> NodeFunction:
        IMPLEMENTATIONS[class_type] = fn
        return fn

    return register

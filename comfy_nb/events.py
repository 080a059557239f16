"""What happens to a job, as typed events: the messages of ComfyUI's websocket (``status``,
``execution_start``, ``executing``, ``progress``, ``executed``, ``execution_success``,
``execution_error``...) and its binary preview and text frames, each as one frozen dataclass,
plus :class:`Queued`, which the client emits itself when a submission is accepted.

Every event has ``prompt_id`` (None when the message carries none) and ``raw`` (the message as
received, left out of comparisons and reprs). Events reach you through ``job.on(callback)``,
``for event in job`` / ``async for event in job``, and the progress displays.

Must not: read a socket or decode a frame (that is :mod:`comfy_nb.client._events`), nor import
anything heavy: Pillow is loaded only when a :class:`Preview`'s ``image`` is asked for.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "Cached",
    "Event",
    "Failed",
    "FeatureFlags",
    "Finished",
    "Interrupted",
    "NodeExecuted",
    "NodeStarted",
    "Preview",
    "Progress",
    "ProgressState",
    "Queued",
    "Started",
    "Status",
    "Succeeded",
    "Text",
    "Unknown",
]


class Event:
    """Base class of every event. ``prompt_id`` is None when the message carries none.

    ``str(event)`` (what ``print`` shows) is one short line: the class, the job's first eight
    characters and what happened (``Progress(job 1f0c9a2e: node 3, step 12/20)``); ``repr``
    shows every field."""

    __slots__ = ()
    prompt_id: str | None
    raw: dict[str, Any] | None

    def __str__(self) -> str:
        from .client._event_text import one_line

        return one_line(self)


@dataclass(frozen=True)
class Queued(Event):
    """Emitted by the client itself when a submit succeeded (not a server message)."""

    prompt_id: str | None
    number: int | float | None
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Status(Event):
    """``status``: the server's queue length (Cloud: this account's). ``sid`` only on connect."""

    prompt_id: str | None
    queue_remaining: int
    sid: str | None = None
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Started(Event):
    """``execution_start``."""

    prompt_id: str | None
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Cached(Event):
    """``execution_cached``: nodes served from the cache (they get no NodeStarted)."""

    prompt_id: str | None
    nodes: tuple[str, ...]
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class NodeStarted(Event):
    """``executing`` with a node. After a reconnect the server sends it without prompt_id."""

    prompt_id: str | None
    node_id: str
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Progress(Event):
    """``progress``: ``value`` of ``max`` steps of one node (a sampler, for instance)."""

    prompt_id: str | None
    node_id: str
    value: int | float
    max: int | float
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ProgressState(Event):
    """``progress_state``: per-node state so far, ``{node_id: {value, max, state, ...}}``."""

    prompt_id: str | None
    nodes: dict[str, Any]
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class NodeExecuted(Event):
    """``executed``: an output node's UI output (``{"images": [...]}``, ``{"text": [...]}``)."""

    prompt_id: str | None
    node_id: str
    output: dict[str, Any]
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Succeeded(Event):
    """``execution_success``. Locally the history may not be written yet: wait for Finished."""

    prompt_id: str | None
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Failed(Event):
    """``execution_error``: a node raised."""

    prompt_id: str | None
    node_id: str | None
    node_type: str | None
    exception_type: str
    exception_message: str
    traceback: tuple[str, ...]
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Interrupted(Event):
    """``execution_interrupted``."""

    prompt_id: str | None
    node_id: str | None
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Finished(Event):
    """``executing`` with ``node: null``: the last message of a prompt, sent (locally) after
    its history entry was written."""

    prompt_id: str | None
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Preview(Event):
    """A binary preview image (type 1, or type 4 with metadata). Type 1 frames carry no ids:
    they are attributed to the node last seen executing, which is ambiguous on Cloud when
    several jobs run at once."""

    prompt_id: str | None
    node_id: str | None
    mime: str
    data: bytes = field(repr=False)
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def image(self) -> PILImage.Image:
        """The preview decoded as a PIL image (decoded on every access)."""
        from PIL import Image

        image = Image.open(io.BytesIO(self.data))
        image.load()
        return image

    def __repr__(self) -> str:
        return (f"Preview(prompt_id={self.prompt_id!r}, node_id={self.node_id!r}, "
                f"mime={self.mime!r}, {len(self.data)} bytes)")


@dataclass(frozen=True)
class Text(Event):
    """Binary type 3: progress text a node sent (``GetImageSize`` does)."""

    prompt_id: str | None
    node_id: str
    text: str
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class FeatureFlags(Event):
    """``feature_flags``: the server's answer to ours."""

    prompt_id: str | None
    flags: dict[str, Any]
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Unknown(Event):
    """Anything else: an unknown type, malformed JSON, or a binary frame we cannot read
    (``type`` is then ``"binary"`` or ``"binary:<n>"`` and ``data`` the whole frame)."""

    prompt_id: str | None
    type: str
    data: Any
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)

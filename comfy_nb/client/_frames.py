"""ComfyUI's websocket frames: :func:`decode` turns one frame into an event of
:mod:`comfy_nb.events`: JSON text frames ``{"type", "data"}`` and the big-endian binary preview
and text frames; :data:`FEATURE_FLAGS_MESSAGE` is what a client says first.

Owns: the frame formats. Must not: open sockets, log, or raise (anything unreadable becomes
:class:`~comfy_nb.events.Unknown`); the socket is :mod:`comfy_nb.client._events`.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from ..events import (
    Cached,
    Event,
    Failed,
    FeatureFlags,
    Finished,
    Interrupted,
    NodeExecuted,
    NodeStarted,
    Preview,
    Progress,
    ProgressState,
    Started,
    Status,
    Succeeded,
    Text,
    Unknown,
)

__all__ = ["FEATURE_FLAGS_MESSAGE", "decode", "sniff_mime"]

# Binary frame types (first big-endian u32).
PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4
_IMAGE_FORMATS = {1: "image/jpeg", 2: "image/png"}
FEATURE_FLAGS_MESSAGE = json.dumps(
    {"type": "feature_flags", "data": {"supports_preview_metadata": True}}
)


# -- decoding -----------------------------------------------------------------------------------


def sniff_mime(data: bytes) -> str:
    """The image type from magic bytes, or ``application/octet-stream``."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "application/octet-stream"


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("not a number")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("not an object")
    return value


def _decode_json(message: dict[str, Any]) -> Event:
    kind = message["type"]
    data = _dict(message["data"])
    pid = _opt_str(data.get("prompt_id"))
    if kind == "status":
        info = _dict(_dict(data["status"])["exec_info"])
        remaining = _number(info["queue_remaining"])
        return Status(pid, int(remaining), _opt_str(data.get("sid")), raw=message)
    if kind == "execution_start":
        return Started(pid, raw=message)
    if kind == "execution_cached":
        nodes = data.get("nodes") or []
        if not isinstance(nodes, list):
            raise TypeError("nodes is not a list")
        return Cached(pid, tuple(str(n) for n in nodes), raw=message)
    if kind == "executing":
        node = data.get("node")
        if node is None:
            return Finished(pid, raw=message)
        return NodeStarted(pid, str(node), raw=message)
    if kind == "progress":
        return Progress(pid, str(data["node"]), _number(data["value"]), _number(data["max"]),
                        raw=message)
    if kind == "progress_state":
        return ProgressState(pid, _dict(data.get("nodes") or {}), raw=message)
    if kind == "executed":
        return NodeExecuted(pid, str(data["node"]), _dict(data.get("output") or {}), raw=message)
    if kind == "execution_success":
        return Succeeded(pid, raw=message)
    if kind == "execution_error":
        trace = data.get("traceback") or []
        if isinstance(trace, str):
            trace = [trace]
        return Failed(
            pid,
            node_id=_opt_str(data.get("node_id")),
            node_type=_opt_str(data.get("node_type")),
            exception_type=str(data.get("exception_type") or ""),
            exception_message=str(data.get("exception_message") or ""),
            traceback=tuple(str(line) for line in trace),
            raw=message,
        )
    if kind == "execution_interrupted":
        return Interrupted(pid, _opt_str(data.get("node_id")), raw=message)
    if kind == "feature_flags":
        return FeatureFlags(pid, data, raw=message)
    return Unknown(pid, str(kind), data, raw=message)


def _decode_text(message: str) -> Event:
    try:
        parsed = json.loads(message)
    except ValueError:
        return Unknown(None, "invalid_json", message)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
        return Unknown(None, "invalid_message", parsed)
    try:
        return _decode_json(parsed)
    except (KeyError, TypeError, ValueError):
        data = parsed.get("data")
        pid = data.get("prompt_id") if isinstance(data, dict) else None
        return Unknown(_opt_str(pid), parsed["type"], data, raw=parsed)


def _decode_binary(frame: bytes, last_prompt_id: str | None, last_node_id: str | None) -> Event:
    if len(frame) < 8:
        return Unknown(last_prompt_id, "binary", frame)
    event_type, second = struct.unpack_from(">II", frame)
    if event_type == PREVIEW_IMAGE:
        image = frame[8:]
        if not image:
            return Unknown(last_prompt_id, "binary", frame)
        mime = _IMAGE_FORMATS.get(second) or sniff_mime(image)
        return Preview(last_prompt_id, last_node_id, mime, image)
    if event_type == PREVIEW_IMAGE_WITH_METADATA:
        end = 8 + second
        if end > len(frame):
            return Unknown(last_prompt_id, "binary", frame)
        try:
            metadata = json.loads(frame[8:end].decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return Unknown(last_prompt_id, "binary", frame)
        if not isinstance(metadata, dict):
            return Unknown(last_prompt_id, "binary", frame)
        image = frame[end:]
        if not image:
            return Unknown(last_prompt_id, "binary", frame)
        image_type = metadata.get("image_type")
        if not isinstance(image_type, str) or not image_type.startswith("image/"):
            image_type = sniff_mime(image)
        return Preview(_opt_str(metadata.get("prompt_id")), _opt_str(metadata.get("node_id")),
                       image_type, image, raw=metadata)
    if event_type == TEXT:
        end = 8 + second
        if end > len(frame):
            return Unknown(last_prompt_id, "binary", frame)
        try:
            node_id = frame[8:end].decode("utf-8")
            text = frame[end:].decode("utf-8")
        except UnicodeDecodeError:
            return Unknown(last_prompt_id, "binary", frame)
        return Text(last_prompt_id, node_id, text)
    return Unknown(last_prompt_id, f"binary:{event_type}", frame)


def decode(message: str | bytes, *, last_prompt_id: str | None = None,
           last_node_id: str | None = None) -> Event:
    """Turn one websocket frame into an :class:`Event`; never raises.

    Text frames are JSON ``{"type", "data"}``. Binary frames are big-endian: type 1
    ``[1][1=JPEG|2=PNG][image]`` (no ids: ``last_prompt_id``/``last_node_id`` attribute it),
    type 4 ``[4][len][metadata JSON][image]``, type 3 ``[3][len][node_id][UTF-8 text]`` (the
    prompt is ``last_prompt_id``). Anything unreadable becomes :class:`Unknown`.
    """
    if isinstance(message, str):
        return _decode_text(message)
    if isinstance(message, (bytes, bytearray, memoryview)):
        return _decode_binary(bytes(message), last_prompt_id, last_node_id)
    return Unknown(None, "invalid_frame", message)

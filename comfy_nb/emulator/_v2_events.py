"""``GET /api/v2/jobs/{id}/events``: a job's live events as Server-Sent Events, the way
comfy-api-proxy 0.1.6 bridges ComfyUI's websocket (recorded):

- on connect, a ``status`` snapshot (with ``queue_position`` while queued); a finished job then
  gets its ``output`` frames and the stream ends; a running one gets the indeterminate
  ``progress`` ``{0, 0/0}``;
- then the job's own executor events: ``progress`` (from ``progress`` and ``progress_state``)
  and ``preview`` (base64 image with node id), each at most one per 0.5 s; when the job ends, a
  ``status`` frame of its final state and the ``output`` frames not sent yet, then the end;
- no ``id:`` fields, ``Last-Event-ID`` ignored: a reconnect gets a fresh snapshot;
- a ``: keepalive`` comment after ``sse_heartbeat`` seconds (15) without events, followed by a
  fresh read of the job (which ends the stream if the job is over), and, on a busy stream, after
  the first event that comes ``sse_heartbeat`` seconds after the last keepalive;
- one listener per job, as ComfyUI keys sockets by client id: a second stream on the same job
  silences the first until its heartbeat.

The ``sse_stall`` fault drops a stream's live events for that many seconds after the snapshot,
as when the proxy's socket connects only after the job ended; the heartbeat then reconciles.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ._hub import PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA
from ._v2_http import V2, error, external_base, is_uuid, v2_of
from ._v2_jobs import TERMINAL, V2Server, not_found

THROTTLE = 0.5  # seconds between two progress (and two preview) frames
MAX_STREAMS = 8
PREVIEW_MIME = {1: "image/jpeg", 2: "image/png"}
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
               "Connection": "keep-alive", "X-Accel-Buffering": "no"}


def frame(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


KEEPALIVE = b": keepalive\n\n"


def progress_of(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """A v2 ``progress`` frame from a ``progress`` or ``progress_state`` message."""
    if kind == "progress":
        value = float(data.get("value", 0))
        top = float(data.get("max", 1)) or 1.0
        return {"value": max(0.0, min(1.0, value / top)), "nodes_done": 0, "nodes_total": 0,
                "current_node": str(data["node"]) if data.get("node") is not None else None,
                "step": int(value), "steps": int(top)}
    nodes: dict[str, Any] = data.get("nodes") or {}
    total = len(nodes)
    done = sum(1 for node in nodes.values() if node.get("state") == "finished")
    running = next((nid for nid, node in nodes.items() if node.get("state") == "running"), None)
    current = nodes.get(running) if running is not None else None
    share = done / total if total else 0.0
    if current and current.get("max"):
        share = (done + current["value"] / current["max"]) / total
    return {"value": max(0.0, min(1.0, share)), "nodes_done": done, "nodes_total": total,
            "current_node": running,
            "step": int(current["value"]) if current and current.get("value") is not None
            else None,
            "steps": int(current["max"]) if current and current.get("max") is not None else None}


def preview_of(payload: bytes) -> dict[str, Any] | None:
    """A v2 ``preview`` frame from a binary preview message (type 1 or 4)."""
    if len(payload) < 8:
        return None
    kind, second = struct.unpack(">II", payload[:8])
    node_id = ""
    if kind == PREVIEW_IMAGE:
        mime, image = PREVIEW_MIME.get(second, "image/jpeg"), payload[8:]
    elif kind == PREVIEW_IMAGE_WITH_METADATA:
        try:
            meta = json.loads(payload[8:8 + second].decode("utf-8"))
        except ValueError:
            meta = {}
        mime, image = meta.get("image_type", "image/jpeg"), payload[8 + second:]
        node_id = str(meta.get("node_id", ""))
    else:
        return None
    return {"node_id": node_id, "content_type": mime,
            "data_base64": base64.b64encode(image).decode("ascii")}


class JobStream:
    """The frames of one event stream on one job."""

    def __init__(self, v2: V2Server, job_id: str, base: str) -> None:
        self.v2 = v2
        self.job_id = job_id
        self.base = base
        self.sent_outputs: set[str] = set()
        self.last_progress = self.last_preview = self.last_outputs = 0.0

    def snapshot(self) -> dict[str, Any]:
        return self.v2.job_json(self.job_id, self.v2.status_of(self.job_id, self.base), self.base)

    def status_frame(self, job: dict[str, Any]) -> bytes:
        data: dict[str, Any] = {"status": job["status"]}
        if job["queue_position"] is not None:
            data["queue_position"] = job["queue_position"]
        return frame("status", data)

    def new_outputs(self, job: dict[str, Any]) -> list[bytes]:
        frames = []
        for output in job["outputs"]:
            if output["id"] not in self.sent_outputs:
                self.sent_outputs.add(output["id"])
                frames.append(frame("output", output))
        return frames

    def ending(self) -> list[bytes] | None:
        """The closing frames if the job is over now, else None."""
        job = self.snapshot()
        if job["status"] not in TERMINAL:
            return None
        return [self.status_frame(job), *self.new_outputs(job)]

    def translate(self, kind: str, payload: Any) -> list[bytes] | None:
        """Frames for one executor message; None when it ends the stream (the job's final
        ``executing`` message comes once its history is written)."""
        if kind == "binary":
            now = time.monotonic()
            preview = preview_of(payload) if now - self.last_preview >= THROTTLE else None
            if preview is None:
                return []
            self.last_preview = now
            return [frame("preview", preview)]
        message_type, data = payload.get("type"), payload.get("data") or {}
        if data.get("prompt_id") not in (None, self.job_id):
            return []
        if message_type in ("progress", "progress_state"):
            now = time.monotonic()
            if now - self.last_progress < THROTTLE:
                return []
            self.last_progress = now
            return [frame("progress", progress_of(message_type, data))]
        if message_type == "executed":
            now = time.monotonic()
            if now - self.last_outputs < THROTTLE:
                return []
            self.last_outputs = now
            return self.new_outputs(self.snapshot())
        if message_type == "executing" and data.get("node") is None:
            return None
        return []

    async def frames(self, events: asyncio.Queue[tuple[str, Any]], heartbeat: float,
                     stall: float) -> AsyncIterator[bytes]:
        job = self.snapshot()
        yield self.status_frame(job)
        if job["status"] in TERMINAL:
            for output in self.new_outputs(job):
                yield output
            return
        if job["progress"]:
            yield frame("progress", job["progress"])
        if stall > 0:  # the job's events go by unseen, then the heartbeat reconciles
            deadline = time.monotonic() + stall
            while (left := deadline - time.monotonic()) > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(events.get(), left)
            yield KEEPALIVE
            ending = self.ending()
            if ending is not None:
                for closing in ending:
                    yield closing
                return
        last_beat = time.monotonic()
        while True:
            try:
                kind, payload = await asyncio.wait_for(events.get(), heartbeat)
            except asyncio.TimeoutError:
                yield KEEPALIVE
                last_beat = time.monotonic()
                ending = self.ending()
                if ending is not None:
                    for closing in ending:
                        yield closing
                    return
                continue
            translated = self.translate(kind, payload)
            if translated is None:
                for closing in self.ending() or []:
                    yield closing
                return
            for item in translated:
                yield item
            if time.monotonic() - last_beat > heartbeat:  # a busy stream beats too
                yield KEEPALIVE
                last_beat = time.monotonic()


async def close_streams(app: web.Application) -> None:
    """On shutdown: end the open streams (a stream whose client left is only noticed at its
    next write, as on the proxy, and would hold the server up until then)."""
    for task in list(app[V2].stream_tasks):
        task.cancel()


async def job_events(request: web.Request) -> web.StreamResponse:
    v2 = v2_of(request)
    job_id = request.match_info["id"]
    if not is_uuid(job_id):
        return not_found(job_id)
    base = external_base(request)
    if v2.status_of(job_id, base)["status"] == "unknown" and job_id not in v2.jobs:
        return not_found(job_id)
    if v2.open_streams >= MAX_STREAMS:
        refused = error(429, "too_many_streams",
                        "Maximum concurrent event streams reached; poll GET /jobs/{id} instead.")
        refused.headers["Retry-After"] = "5"
        return refused
    response = web.StreamResponse(status=200, headers=SSE_HEADERS)
    await response.prepare(request)
    hub = v2.state.hub
    events = hub.listen(job_id)
    v2.open_streams += 1
    task = asyncio.current_task()
    if task is not None:
        v2.stream_tasks.add(task)
    stream = JobStream(v2, job_id, base)
    try:
        async for item in stream.frames(events, v2.state.options.sse_heartbeat,
                                        v2.state.faults.sse_stall):
            await response.write(item)
    except (ConnectionResetError, RuntimeError):  # the client went away
        pass
    except asyncio.CancelledError:  # the server is stopping
        return response
    finally:
        v2.open_streams -= 1
        if task is not None:
            v2.stream_tasks.discard(task)
        hub.unlisten(job_id, events)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
    return response

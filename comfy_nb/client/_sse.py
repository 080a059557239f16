"""The live events of Comfy API v2 jobs: one Server-Sent Events stream per followed job
(``GET /api/v2/jobs/{id}/events``), its frames turned into the events of :mod:`comfy_nb.events`
(the same classes the websocket of the other dialects gives) and handed to the connection.

A stream is a hint, never the authority (``GET /api/v2/jobs/{id}`` is): a terminal ``status``
frame wakes the job, which then reads its state. Streams are known to fall silent (comfy-api-proxy
stalls until its 15 s heartbeat when a job ends just as the stream opens, or when a second stream
opens on the same job), so a silent stream nudges its job to read its state after
:data:`SILENCE_NUDGES` (and the job polls at its interval anyway): silence costs a poll, never the
outcome. A stream that breaks is opened again (with ``Last-Event-ID`` when the server gave ids;
v2 servers need not), after a backoff; ``429 too_many_streams`` waits its ``Retry-After``; a
server without streams (404, 501) leaves the job to polling.

Owns: the frame parser, the frame -> event mapping, one task per job. Must not: decide a job's
outcome, or hold a key (the transport sends it).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ComfyError, NotFoundError, RateLimitError, RequestError
from ..events import (
    Event,
    Failed,
    Interrupted,
    NodeExecuted,
    NodeStarted,
    Preview,
    Progress,
    Started,
    Succeeded,
    Unknown,
)
from ._backoff import Backoff
from ._dialects import job_path
from ._transport import Transport
from ._v2 import JOBS, V2Dialect

log = logging.getLogger("comfy_nb")

#: seconds of silence after which a job is told to read its state (then its polling goes on)
SILENCE_NUDGES = (0.1, 0.25, 0.5, 1.0)
RECONNECT = Backoff(0.2, 5.0, (0.8, 1.0))  # waits between attempts to reopen a broken stream
MAX_FAILURES = 8  # broken streams in a row before a job is left to polling alone
READ_TIMEOUT = 45.0  # seconds without a byte (heartbeats included) before a stream counts as broken
TERMINAL = frozenset({"succeeded", "failed", "canceled"})


@dataclass
class Frame:
    """One SSE frame: its ``event`` name, ``data`` (JSON when it parses), ``id`` if any."""

    event: str = "message"
    data: Any = None
    id: str | None = None


async def frames(lines: AsyncIterator[str]) -> AsyncIterator[Frame]:
    """The frames of an SSE stream given line by line (comments and heartbeats skipped)."""
    event, frame_id = "", None
    data: list[str] = []
    async for line in lines:
        if not line:
            if data or event:
                text = "\n".join(data)
                try:
                    parsed: Any = json.loads(text) if text else None
                except ValueError:
                    parsed = text
                yield Frame(event or "message", parsed, frame_id)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            frame_id = value


@dataclass
class StreamState:
    """What one job's stream has said so far, to turn frames into events once each."""

    prompt_id: str
    dialect: V2Dialect
    started: bool = False
    node: str | None = None
    ended: bool = False
    outputs_seen: set[str] = field(default_factory=set)

    def events_of(self, frame: Frame) -> list[Event]:
        data = frame.data if isinstance(frame.data, dict) else {}
        pid = self.prompt_id
        if frame.event == "status":
            return self._status(str(data.get("status", "")), data)
        if frame.event == "progress":
            return self._progress(data)
        if frame.event == "preview":
            try:
                image = base64.b64decode(str(data.get("data_base64", "")), validate=True)
            except (binascii.Error, ValueError):
                return []
            node = data.get("node_id")
            return [*self._start(), Preview(pid, str(node) if node is not None else None,
                                            str(data.get("content_type") or "image/jpeg"),
                                            image, raw=None)]
        if frame.event == "output":
            entry = self.dialect.file_of(data)
            if entry is None or str(data.get("id")) in self.outputs_seen:
                return []
            self.outputs_seen.add(str(data.get("id")))
            key, item = entry
            return [NodeExecuted(pid, str(data.get("node_id") or ""), {key: [item]}, raw=data)]
        if frame.event == "log":
            return []
        return [Unknown(pid, frame.event, frame.data, raw=None)]

    def _start(self) -> list[Event]:
        if self.started:
            return []
        self.started = True
        return [Started(self.prompt_id, raw=None)]

    def _status(self, status: str, data: dict[str, Any]) -> list[Event]:
        pid = self.prompt_id
        if status == "running":
            return self._start()
        if status not in TERMINAL:  # queued, canceling, expired (racy: the job reads again)
            return []
        self.ended = True
        if status == "succeeded":
            return [Succeeded(pid, raw=data)]
        if status == "canceled":
            return [Interrupted(pid, self.node, raw=data)]
        # the details are the job's (GET), which the job reads now
        return [Failed(pid, self.node, None, "", "", (), raw=data)]

    def _progress(self, data: dict[str, Any]) -> list[Event]:
        node = data.get("current_node")
        events: list[Event] = []
        if node is None:
            return events
        node = str(node)
        events += self._start()
        if node != self.node:
            self.node = node
            events.append(NodeStarted(self.prompt_id, node, raw=None))
        step, steps = data.get("step"), data.get("steps")
        if isinstance(step, (int, float)) and isinstance(steps, (int, float)) and steps > 0:
            events.append(Progress(self.prompt_id, node, step, steps, raw=data))
        else:
            value = data.get("value")
            if isinstance(value, (int, float)):
                events.append(Progress(self.prompt_id, node, value, 1.0, raw=data))
        return events


class EventStreams:
    """The SSE streams of one connection's followed jobs. ``route(event)`` takes each event;
    ``nudge(prompt_id)`` tells a job to read its state (after silence, or a stream's end)."""

    def __init__(self, transport: Transport, dialect: V2Dialect,
                 route: Callable[[Event], None], nudge: Callable[[str], None]) -> None:
        self._http = transport
        self._dialect = dialect
        self._route = route
        self._nudge = nudge
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._states: dict[str, StreamState] = {}
        self.connected: set[str] = set()  # jobs whose stream is open now

    def follow(self, prompt_id: str) -> None:
        """Open the job's stream (once)."""
        if prompt_id not in self._tasks:
            task = asyncio.ensure_future(self._run(prompt_id))
            self._tasks[prompt_id] = task
            task.add_done_callback(lambda _: self._ended(prompt_id, task))

    def _ended(self, prompt_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(prompt_id) is task:
            del self._tasks[prompt_id]
        self.connected.discard(prompt_id)
        if not task.cancelled() and task.exception() is not None:
            log.debug("comfy_nb: the event stream of job %s failed: %s", prompt_id,
                      task.exception())

    def conclude(self, prompt_id: str, status: str) -> None:
        """The job's state, read, says it ended (``status``: a terminal v2 status): if its
        stream has not said so yet, its last event is made from that, so every job's events
        end with its outcome; the stream is closed."""
        state = self._states.get(prompt_id)
        if state is not None and not state.ended:
            for event in state.events_of(Frame("status", {"status": status})):
                self._route(event)
        self.stop(prompt_id)

    def stop(self, prompt_id: str) -> None:
        self._states.pop(prompt_id, None)
        task = self._tasks.pop(prompt_id, None)
        if task is not None:
            task.cancel()
        self.connected.discard(prompt_id)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self.connected.clear()

    async def _run(self, prompt_id: str) -> None:
        """Keep the job's stream open until it says the job ended (or cannot be had)."""
        state = self._states.setdefault(prompt_id, StreamState(prompt_id, self._dialect))
        last_id: str | None = None
        failures = 0
        path = f"{JOBS}/{job_path(prompt_id)}/events"
        while not state.ended:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            wait: float | None = None
            try:
                async with self._http.stream_lines(path, headers=headers,
                                                   what="following the job's events",
                                                   read_timeout=READ_TIMEOUT) as lines:
                    self.connected.add(prompt_id)
                    failures = 0
                    last_id = await self._read(state, frames(lines), last_id)
            except RateLimitError as exc:  # too_many_streams: polling goes on meanwhile
                wait = exc.retry_after if exc.retry_after is not None else 5.0
            except NotFoundError:
                return  # not (yet) known: the job's reads decide
            except RequestError as exc:
                log.debug("comfy_nb: no event stream for job %s (%s); polling", prompt_id, exc)
                return
            except ComfyError as exc:
                failures += 1
                log.debug("comfy_nb: the event stream of job %s broke: %s", prompt_id, exc)
            finally:
                self.connected.discard(prompt_id)
            if state.ended:
                return
            self._nudge(prompt_id)  # events may have been missed: read the job
            if failures >= MAX_FAILURES:
                return
            await asyncio.sleep(wait if wait is not None else RECONNECT.delay(failures))

    async def _read(self, state: StreamState, stream: AsyncIterator[Frame],
                    last_id: str | None) -> str | None:
        """Route the stream's events until it ends or says the job ended; nudge the job
        whenever the stream is silent for each of :data:`SILENCE_NUDGES` in turn. (The frames
        are read by a task of their own: a wait that times out must not cut a read short.)"""
        inbox: asyncio.Queue[Frame | BaseException | None] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for frame in stream:
                    inbox.put_nowait(frame)
                inbox.put_nowait(None)
            except Exception as exc:  # handed to the loop below, which raises it
                inbox.put_nowait(exc)

        reader = asyncio.ensure_future(pump())
        silences = iter(SILENCE_NUDGES)
        limit = next(silences, None)
        try:
            while True:
                try:
                    item = await asyncio.wait_for(inbox.get(), limit)
                except asyncio.TimeoutError:
                    self._nudge(state.prompt_id)
                    limit = next(silences, None)
                    continue
                if item is None:
                    return last_id
                if isinstance(item, BaseException):
                    raise item
                if item.id is not None:
                    last_id = item.id
                for event in state.events_of(item):
                    self._route(event)
                if state.ended:
                    return last_id
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

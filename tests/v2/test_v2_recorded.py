"""The v2 dialect against recorded traffic of comfy-api-proxy over a real ComfyUI 0.3.64
(tests/fixtures/comfy-api-v2): SSE frames as events, the proxy's false ``expired`` confirmed
before it is believed, and its 15 s silent stream costing a poll, not the outcome. The races
cannot be produced on demand by the real proxy, so these replay what it was recorded doing."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

from comfy_nb import AsyncClient
from comfy_nb.client import _v2
from comfy_nb.client._dialects import JobStatus
from comfy_nb.client._sse import Frame, StreamState, frames
from comfy_nb.client._v2 import V2Dialect
from comfy_nb.events import (
    Event,
    NodeExecuted,
    NodeStarted,
    Preview,
    Progress,
    Started,
    Succeeded,
)
from tests import fixture_paths

from ..both_clients import WAIT
from ..http_server import http_server

V2 = fixture_paths.ROOT / "comfy-api-v2"


def exchange(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((V2 / name).read_text("utf-8"))
    return data


def wire_lines(recorded: dict[str, Any]) -> list[str]:
    """The SSE stream of a recorded exchange, line by line as it came (a preview's base64,
    which ``raw`` leaves out, put back from ``data``)."""
    lines: list[str] = []
    for frame in recorded["response"]["sse_events"]:
        if "comment" in frame:
            lines += [":" + frame["comment"], ""]
        else:
            lines += [f"event: {frame['event']}", "data: " + json.dumps(frame["data"]), ""]
    return lines


async def events_of(lines: list[str], prompt_id: str = "job") -> list[Event]:
    async def source() -> AsyncIterator[str]:
        for line in lines:
            yield line

    state = StreamState(prompt_id, V2Dialect())
    found: list[Event] = []
    async for frame in frames(source()):
        found += state.events_of(frame)
        if state.ended:
            break
    return found


async def test_a_recorded_txt2img_stream_gives_the_websocket_events() -> None:
    events = await events_of(wire_lines(exchange("08_sdk_txt2img_events/002.json")))
    names = [type(event).__name__ for event in events]
    assert names[0] == "Started" and names[-1] == "Succeeded"
    assert names.count("Started") == 1
    steps = [(event.value, event.max) for event in events
             if isinstance(event, Progress) and event.max == 4]
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [e.node_id for e in events if isinstance(e, NodeStarted)] == ["3"]
    previews = [event for event in events if isinstance(event, Preview)]
    assert len(previews) == 4 and all(p.data[:3] == b"\xff\xd8\xff" for p in previews)


async def test_outputs_before_the_terminal_status_become_node_executed() -> None:
    dialect = V2Dialect()
    lines = [f"event: {name}\ndata: {json.dumps(data)}\n" for name, data in (
        ("status", {"status": "running"}),
        ("output", {"node_id": "9", "name": "a.png", "type": "image", "id": "asset-1"}),
        ("status", {"status": "succeeded"}))]

    async def source() -> AsyncIterator[str]:
        for block in lines:
            for line in block.split("\n"):
                yield line

    state = StreamState("job", dialect)
    events = [event async for frame in frames(source()) for event in state.events_of(frame)]
    assert [type(event) for event in events] == [Started, NodeExecuted, Succeeded]
    executed = events[1]
    assert isinstance(executed, NodeExecuted)
    assert executed.output == {"images": [{"filename": "a.png", "subfolder": "",
                                           "type": "output"}]}
    assert dialect.asset_of(executed.output["images"][0]) == "asset-1"


def test_frames_join_data_lines_and_keep_ids() -> None:
    async def run() -> list[Frame]:
        async def source() -> AsyncIterator[str]:
            for line in ["id: 7", "event: status", 'data: {"status":', 'data: "queued"}', "",
                         ": keepalive", ""]:
                yield line

        return [frame async for frame in frames(source())]

    import asyncio

    (frame,) = asyncio.run(run())
    assert (frame.event, frame.data, frame.id) == ("status", {"status": "queued"}, "7")


class Answers:
    """A Requester that answers ``GET /api/v2/jobs/{id}`` with recorded job objects in turn."""

    def __init__(self, *bodies: dict[str, Any]) -> None:
        self.bodies = list(bodies)
        self.reads = 0

    async def request(self, method: str, path: str, **_: Any) -> Any:
        body = self.bodies[min(self.reads, len(self.bodies) - 1)]
        self.reads += 1
        return _Answer(body)


class _Answer:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def json(self) -> dict[str, Any]:
        return self.body


EXPIRED = exchange("90_race_poll_expired_webp/002.json")["response"]["body"]["json"]
SUCCEEDED = exchange("01_sdk_run_invert/003.json")["response"]["body"]["json"]


async def test_a_false_expired_is_read_again_and_the_job_succeeded() -> None:
    """comfy-sdk raised JobFailed on this answer (90); the job had succeeded."""
    answers = Answers(EXPIRED, SUCCEEDED)
    snap = await V2Dialect().snapshot(answers, EXPIRED["id"])  # type: ignore[arg-type]
    assert snap.status is JobStatus.SUCCEEDED
    assert snap.outputs["3"]["images"][0]["filename"] == "invert_00001_.png"


async def test_expired_on_every_read_is_believed_as_gone() -> None:
    answers = Answers(EXPIRED)
    snap = await V2Dialect().snapshot(answers, EXPIRED["id"])  # type: ignore[arg-type]
    assert snap.status is JobStatus.UNKNOWN
    assert answers.reads == 1 + len(_v2.CONFIRM_DELAYS)


def _stalling_server(stall: threading.Event) -> type[http.server.BaseHTTPRequestHandler]:
    """A v2 server replaying scenario 91: the job's stream says ``running``, then nothing
    (until ``stall`` is set); the job itself reads ``running``, then ``succeeded``."""
    posted = exchange("91_race_sse_stall_15s/001.json")["response"]["body"]["json"]
    stream = exchange("91_race_sse_stall_15s/002.json")["response"]["sse_events"]
    job_id = posted["id"]
    done = {**SUCCEEDED, "id": job_id, "outputs": []}
    reads: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/api/v2/health":
                self._json(200, {"status": "healthy"})
            elif self.path == f"/api/v2/jobs/{job_id}/events":
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for frame in stream[:2]:  # status running, progress; then the stall
                    self.wfile.write(frame["raw"].encode())
                self.wfile.flush()
                stall.wait(WAIT)
                self.close_connection = True
            elif self.path == f"/api/v2/jobs/{job_id}":
                reads.append(self.path)
                self._json(200, {**posted, "status": "running"} if len(reads) == 1 else done)
            else:
                self._json(404, {"error": {"code": "not_found", "message": "no"}})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._json(201, posted)

    return Handler


async def test_a_silent_stream_costs_a_read_not_the_outcome() -> None:
    stall = threading.Event()
    try:
        with http_server(_stalling_server(stall)) as url:
            async with AsyncClient(url, poll_interval=0.5) as client:
                job = await client.submit({"1": {"class_type": "X", "inputs": {}}},
                                          validate=False, cache=False)
                events: list[Event] = []
                job.on(events.append)
                result = await job.wait(WAIT)
                assert not stall.is_set()  # it ended while its stream was still silent
    finally:
        stall.set()
    assert result.status == "succeeded"
    assert isinstance(events[-1], Succeeded)


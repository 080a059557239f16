"""The event websocket: decoding of every recorded frame, typed event sequences against the
emulator (both dialects), previews, reconnects, refusals, shutdown and secrecy of the URL."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import logging
import struct
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from comfy_nb.client._events import EventSocket, WebSocketRefused
from comfy_nb.client._frames import decode
from comfy_nb.emulator import RunningEmulator, serve
from comfy_nb.errors import TransportError
from comfy_nb.events import (
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
    Queued,
    Started,
    Status,
    Succeeded,
    Text,
    Unknown,
)

from ..conformance._replay import FIXTURES, load
from ..factories import Emulators

WAIT = 20.0  # a safety net against hangs, never asserted on


def _workflow(run: str) -> dict[str, Any]:
    prompt: dict[str, Any] = load(f"runs/{run}/post_prompt.json")["request"]["body"]["prompt"]
    return copy.deepcopy(prompt)


def _txt2img(steps: int = 3) -> dict[str, Any]:
    prompt = _workflow("txt2img_random_sd15_legacy_previews")
    prompt["3"]["inputs"]["steps"] = steps
    return prompt


def _recordings() -> list[Path]:
    return sorted([*FIXTURES.glob("runs/*/ws_messages*.json"), *FIXTURES.glob("queue/*ws*.json")])


def _text_messages() -> list[dict[str, Any]]:
    messages = []
    for path in _recordings():
        recording = json.loads(path.read_text(encoding="utf-8"))
        frames = recording.get("frames") or []
        messages += [f["msg"] for f in frames if f["kind"] == "text"]
    return messages


# -- decode(): recorded text messages -------------------------------------------------------------

EXPECTED_CLASS: dict[str, type[Event]] = {
    "status": Status,
    "execution_start": Started,
    "execution_cached": Cached,
    "progress": Progress,
    "progress_state": ProgressState,
    "executed": NodeExecuted,
    "execution_success": Succeeded,
    "execution_error": Failed,
    "execution_interrupted": Interrupted,
    "feature_flags": FeatureFlags,
}


def test_every_recorded_text_message_decodes_to_its_typed_event() -> None:
    messages = _text_messages()
    seen = {m["type"] for m in messages}
    assert seen >= {*EXPECTED_CLASS, "executing"}
    for message in messages:
        event = decode(json.dumps(message))
        data = message["data"]
        kind = message["type"]
        if kind == "executing":
            expected: type[Event] = Finished if data["node"] is None else NodeStarted
        else:
            expected = EXPECTED_CLASS[kind]
        assert type(event) is expected, message
        assert event.prompt_id == data.get("prompt_id")
        assert event.raw == message
        if isinstance(event, Status):
            assert event.queue_remaining == data["status"]["exec_info"]["queue_remaining"]
            assert event.sid == data.get("sid")
        elif isinstance(event, Cached):
            assert event.nodes == tuple(data["nodes"])
        elif isinstance(event, NodeStarted):
            assert event.node_id == data["node"]
        elif isinstance(event, Progress):
            assert (event.node_id, event.value, event.max) == (data["node"], data["value"],
                                                              data["max"])
        elif isinstance(event, ProgressState):
            assert event.nodes == data["nodes"]
        elif isinstance(event, NodeExecuted):
            assert (event.node_id, event.output) == (data["node"], data["output"])
        elif isinstance(event, Failed):
            assert event.node_id == data["node_id"]
            assert event.node_type == data["node_type"]
            assert event.exception_type == data["exception_type"]
            assert event.exception_message == data["exception_message"]
            assert event.traceback == tuple(data["traceback"])
        elif isinstance(event, Interrupted):
            assert event.node_id == data["node_id"]
        elif isinstance(event, FeatureFlags):
            assert event.flags == data


def test_recorded_execution_error() -> None:
    frames = load("runs/runtime_error_regex/ws_messages.json")["frames"]
    message = next(f["msg"] for f in frames
                   if f["kind"] == "text" and f["msg"]["type"] == "execution_error")
    event = decode(json.dumps(message))
    assert isinstance(event, Failed)
    assert event.node_id == "1" and event.node_type == "RegexReplace"
    assert event.exception_type == "re.error"
    assert event.traceback and all(isinstance(line, str) for line in event.traceback)


def test_reconnect_message_without_prompt_id() -> None:
    recorded = load("ws/ws_reconnect_same_clientId_mid_run.json")
    messages = [f["msg"] for f in recorded["ws2_frames"] if f["kind"] == "text"]
    reconnect = next(m for m in messages if m["type"] == "executing" and "prompt_id" not in
                     m["data"])
    event = decode(json.dumps(reconnect), last_prompt_id="stale", last_node_id="10")
    assert event == NodeStarted(prompt_id=None, node_id=reconnect["data"]["node"])


def test_first_message_without_client_id() -> None:
    message = load("ws/ws_connect_without_clientId_first_message.json")
    event = decode(json.dumps(message))
    assert isinstance(event, Status)
    assert event.queue_remaining == 0 and event.sid == message["data"]["sid"]


# -- decode(): recorded binary frames -------------------------------------------------------------


def _frame(run: str) -> bytes:
    return (FIXTURES / "runs" / run / "binary_frame_0.bin").read_bytes()


def test_binary_type_1_png_from_save_image_websocket() -> None:
    frame = _frame("save_image_websocket_legacy")
    event = decode(frame, last_prompt_id="p1", last_node_id="2")
    assert isinstance(event, Preview)
    assert (event.prompt_id, event.node_id, event.mime) == ("p1", "2", "image/png")
    assert event.data == frame[8:]
    assert event.image.format == "PNG"
    assert event.raw is None


def test_binary_type_1_jpeg_sampler_preview() -> None:
    frame = _frame("txt2img_random_sd15_legacy_previews")
    event = decode(frame, last_prompt_id="p2", last_node_id="3")
    assert isinstance(event, Preview)
    assert (event.prompt_id, event.node_id, event.mime) == ("p2", "3", "image/jpeg")
    assert event.image.size == (512, 512)


def test_binary_type_1_without_context_has_no_ids() -> None:
    event = decode(_frame("save_image_websocket_legacy"))
    assert isinstance(event, Preview)
    assert event.prompt_id is None and event.node_id is None


@pytest.mark.parametrize("run", ["save_image_websocket_metadata",
                                 "txt2img_random_sd15_preview_metadata"])
def test_binary_type_4_takes_ids_from_its_metadata(run: str) -> None:
    frame = _frame(run)
    (length,) = struct.unpack_from(">I", frame, 4)
    metadata = json.loads(frame[8:8 + length])
    event = decode(frame, last_prompt_id="other", last_node_id="99")
    assert isinstance(event, Preview)
    assert event.prompt_id == metadata["prompt_id"]
    assert event.node_id == metadata["node_id"]
    assert event.mime == metadata["image_type"]
    assert event.raw == metadata
    assert event.data == frame[8 + length:]
    assert event.image.format == {"image/png": "PNG", "image/jpeg": "JPEG"}[event.mime]


def test_binary_type_3_text() -> None:
    event = decode(_frame("multi_output_text"), last_prompt_id="p3", last_node_id="6")
    assert event == Text(prompt_id="p3", node_id="6",
                         text="width: 16, height: 16\n batch size: 1")


def _png(size: tuple[int, int] = (4, 3)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 0, 0)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_type_4_without_image_type_sniffs_the_magic() -> None:
    # Cloud's documented metadata has no image_type.
    meta = json.dumps({"node_id": "9", "prompt_id": "p", "display_node_id": "9"}).encode()
    event = decode(struct.pack(">II", 4, len(meta)) + meta + _jpeg())
    assert isinstance(event, Preview)
    assert (event.prompt_id, event.node_id, event.mime) == ("p", "9", "image/jpeg")
    assert event.image.size == (8, 8)


def test_type_1_with_an_unknown_format_sniffs_the_magic() -> None:
    event = decode(struct.pack(">II", 1, 7) + _png())
    assert isinstance(event, Preview) and event.mime == "image/png"
    assert event.image.size == (4, 3)


MALFORMED: list[str | bytes] = [
    b"",
    b"\x00\x00\x00\x01",
    struct.pack(">II", 1, 1),  # a type 1 frame without an image
    struct.pack(">II", 4, 500) + b'{"node_id": "1"}',  # metadata longer than the frame
    struct.pack(">II", 4, 5) + b"nojso" + _png(),
    struct.pack(">II", 4, 2) + b"[]" + _png(),
    struct.pack(">II", 3, 50) + b"1hello",  # node id longer than the frame
    struct.pack(">II", 3, 1) + b"1" + b"\xff\xfe",  # text is not UTF-8
    struct.pack(">II", 2, 1) + _jpeg(),  # UNENCODED_PREVIEW_IMAGE never goes on the wire
    struct.pack(">II", 77, 0),
    "not json",
    "[1, 2]",
    '{"data": {}}',
    '{"type": 5, "data": {}}',
    '{"type": "status"}',
    '{"type": "status", "data": {"status": {}}}',
    '{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": "x"}}}}',
    '{"type": "progress", "data": {"node": "3", "prompt_id": "p"}}',
    '{"type": "executed", "data": {"node": "3", "output": [1]}}',
    '{"type": "execution_cached", "data": {"nodes": 3}}',
    '{"type": "executing", "data": null}',
    '{"type": "notification", "data": {"value": "Executing workflow..."}}',
    '{"type": "brand_new_type", "data": {"prompt_id": "p"}}',
]


@pytest.mark.parametrize("message", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_or_unknown_frames_become_unknown(message: str | bytes) -> None:
    event = decode(message, last_prompt_id="p", last_node_id="1")
    assert isinstance(event, Unknown)
    assert isinstance(event.type, str)
    repr(event)


def test_unknown_keeps_type_and_data() -> None:
    assert decode('{"type": "brand_new_type", "data": {"prompt_id": "p", "x": 1}}') == Unknown(
        prompt_id="p", type="brand_new_type", data={"prompt_id": "p", "x": 1})
    assert decode(struct.pack(">II", 77, 0)) == Unknown(None, "binary:77",
                                                        struct.pack(">II", 77, 0))


def test_events_are_frozen_and_their_repr_hides_raw_and_bytes() -> None:
    event = decode(_frame("txt2img_random_sd15_preview_metadata"))
    assert "raw" not in repr(event) and "\\x" not in repr(event) and "bytes" in repr(event)
    with pytest.raises(AttributeError):
        event.prompt_id = "x"  # type: ignore[misc]
    status = decode('{"type": "status", "data": {"status": {"exec_info": '
                    '{"queue_remaining": 2}}, "sid": "s"}}')
    assert repr(status) == "Status(prompt_id=None, queue_remaining=2, sid='s')"
    assert Queued("p", 3).number == 3


# -- the socket against the emulator --------------------------------------------------------------


class Events:
    """Collects events (the on_event callback) and lets a test wait for one."""

    def __init__(self) -> None:
        self.items: list[Event] = []
        self._arrived = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.items.append(event)
        self._arrived.set()

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float = WAIT) -> Event:
        async def scan() -> Event:
            index = 0
            while True:
                while index < len(self.items):
                    event = self.items[index]
                    index += 1
                    if predicate(event):
                        return event
                self._arrived.clear()
                await self._arrived.wait()

        return await asyncio.wait_for(scan(), timeout)

    def of(self, prompt_id: str) -> list[Event]:
        return [e for e in self.items if e.prompt_id == prompt_id]


def finished(prompt_id: str) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, Finished) and e.prompt_id == prompt_id


class States:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.changed = asyncio.Event()

    def __call__(self, state: str) -> None:
        self.items.append(state)
        self.changed.set()

    async def wait_for(self, state: str) -> None:
        async def scan() -> None:
            while state not in self.items:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(scan(), WAIT)


class Target:
    """One emulator plus how to reach it: the socket URL and the submit request."""

    def __init__(self, server: RunningEmulator) -> None:
        self.server = server
        self.client_id = f"test-{uuid.uuid4()}"
        self.cloud = server.dialect == "cloud"

    @property
    def ws_url(self) -> str:
        url = f"{self.server.ws_url}?clientId={self.client_id}"
        return f"{url}&token={self.server.api_key}" if self.cloud else url

    async def submit(self, prompt: dict[str, Any]) -> str:
        path, headers = "/prompt", {}
        if self.cloud:
            path, headers = "/api/prompt", {"X-API-Key": str(self.server.api_key)}
        async with httpx.AsyncClient(base_url=self.server.url, timeout=30) as http:
            response = await http.post(path, headers=headers,
                                       json={"prompt": prompt, "client_id": self.client_id})
        assert response.status_code == 200, response.text
        prompt_id: str = response.json()["prompt_id"]
        return prompt_id


@pytest.fixture(params=["local", "cloud"])
def target(request: pytest.FixtureRequest, emulators: Emulators) -> Target:
    return Target(emulators(request.param, step_delay=0.01))


@pytest.fixture
def local(emulators: Emulators) -> Target:
    return Target(emulators("local", step_delay=0.01))


@pytest.fixture
def cloud(emulators: Emulators) -> Target:
    return Target(emulators("cloud", step_delay=0.01))


def _kinds(events: list[Event]) -> list[tuple[str, str | None]]:
    """(class name, node id) of the events that make up a job's sequence."""
    out: list[tuple[str, str | None]] = []
    for e in events:
        if isinstance(e, (ProgressState, Progress, Preview, Text, Status)):
            continue
        out.append((type(e).__name__, getattr(e, "node_id", None)))
    return out


def _pending_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}


async def test_full_job_sequence(target: Target) -> None:
    events, states = Events(), States()
    socket = EventSocket(target.ws_url, on_event=events, on_state=states)
    await socket.start()
    try:
        assert socket.connected and states.items == ["connected"]
        first = await events.wait_for(lambda e: isinstance(e, Status))
        assert events.items[0] is first
        assert socket.sid is not None and socket.sid == first.sid  # type: ignore[attr-defined]
        if not target.cloud:
            assert socket.sid == target.client_id
        flags = await events.wait_for(lambda e: isinstance(e, FeatureFlags))
        assert flags.flags["supports_preview_metadata"] is True  # type: ignore[attr-defined]

        prompt_id = await target.submit(_workflow("empty_invert_save"))
        await events.wait_for(finished(prompt_id))
        job = events.of(prompt_id)
        assert _kinds(job) == [
            ("Started", None), ("Cached", None),
            ("NodeStarted", "1"), ("NodeStarted", "2"), ("NodeStarted", "3"),
            ("NodeExecuted", "3"), ("Succeeded", None), ("Finished", None),
        ]
        executed = next(e for e in job if isinstance(e, NodeExecuted))
        assert executed.output["images"][0]["filename"].startswith("invert_")
        assert any(isinstance(e, ProgressState) for e in job)
    finally:
        await socket.close()
    assert states.items == ["connected", "closed"]
    assert not socket.connected


async def test_failed_job(local: Target) -> None:
    events = Events()
    socket = EventSocket(local.ws_url, on_event=events)
    await socket.start()
    try:
        prompt_id = await local.submit(_workflow("runtime_error_regex"))
        await events.wait_for(finished(prompt_id))
    finally:
        await socket.close()
    failed = next(e for e in events.of(prompt_id) if isinstance(e, Failed))
    assert failed.node_id == "1" and failed.exception_type == "re.error"
    assert not any(isinstance(e, Succeeded) for e in events.of(prompt_id))


async def test_previews_with_metadata_are_type_4(target: Target) -> None:
    events = Events()
    socket = EventSocket(target.ws_url, on_event=events, preview_metadata=True)
    await socket.start()
    try:
        prompt_id = await target.submit(_txt2img(steps=3))
        await events.wait_for(finished(prompt_id))
    finally:
        await socket.close()
    previews = [e for e in events.items if isinstance(e, Preview)]
    assert len(previews) == 3
    for preview in previews:
        assert preview.raw is not None  # type 4: came with metadata
        assert (preview.prompt_id, preview.node_id) == (prompt_id, "3")
        assert preview.mime == "image/jpeg"
    assert previews[0].image.size[0] > 0
    progress = [e for e in events.of(prompt_id) if isinstance(e, Progress)]
    assert [(p.value, p.max) for p in progress] == [(1, 3), (2, 3), (3, 3)]


async def test_previews_without_metadata_are_attributed_type_1(target: Target) -> None:
    events = Events()
    socket = EventSocket(target.ws_url, on_event=events, preview_metadata=False)
    await socket.start()
    try:
        prompt_id = await target.submit(_txt2img(steps=3))
        await events.wait_for(finished(prompt_id))
    finally:
        await socket.close()
    assert not any(isinstance(e, FeatureFlags) for e in events.items)
    previews = [e for e in events.items if isinstance(e, Preview)]
    assert len(previews) == 3
    for preview in previews:
        assert preview.raw is None  # type 1: no metadata, ids from the preceding messages
        assert (preview.prompt_id, preview.node_id) == (prompt_id, "3")
        assert preview.image.format == "JPEG"


async def test_text_frames_are_attributed(local: Target) -> None:
    events = Events()
    socket = EventSocket(local.ws_url, on_event=events)
    await socket.start()
    try:
        prompt_id = await local.submit(_workflow("multi_output_text"))
        await events.wait_for(finished(prompt_id))
    finally:
        await socket.close()
    texts = [e for e in events.items if isinstance(e, Text)]
    assert texts == [Text(prompt_id, "6", "width: 16, height: 16\n batch size: 1")]


async def test_a_failing_callback_does_not_stop_the_reader(local: Target) -> None:
    seen = Events()

    def on_event(event: Event) -> None:
        seen(event)
        if isinstance(event, Status):
            raise RuntimeError("callback bug")

    socket = EventSocket(local.ws_url, on_event=on_event)
    await socket.start()
    try:
        prompt_id = await local.submit(_workflow("empty_invert_save"))
        await seen.wait_for(finished(prompt_id))
        assert socket.connected
    finally:
        await socket.close()


# -- reconnects -----------------------------------------------------------------------------------


async def test_reconnect_after_a_dropped_connection(target: Target) -> None:
    events, states = Events(), States()
    reconnects: list[bool] = []

    async def on_reconnect() -> None:
        await asyncio.sleep(0)  # really awaited
        reconnects.append(socket.connected)

    # Frames 1 and 2 are status and the feature_flags reply; the 3rd kills the socket.
    target.server.faults.update(ws_drop_after_frames=3)
    socket = EventSocket(target.ws_url, on_event=events, on_reconnect=on_reconnect,
                         on_state=states, max_backoff=0.5)
    await socket.start()
    try:
        await events.wait_for(lambda e: isinstance(e, FeatureFlags))
        # Only sockets opened from now on are healthy.
        target.server.faults.update(ws_drop_after_frames=None)
        await target.submit(_workflow("empty_invert_save"))  # its status broadcast drops us
        await states.wait_for("reconnecting")
        await asyncio.wait_for(_until(lambda: bool(reconnects)), WAIT)
        assert reconnects == [True]
        assert states.items[:3] == ["connected", "reconnecting", "connected"]
        assert await socket.wait_connected(WAIT)

        later = await target.submit(_workflow("multi_output_text"))
        await events.wait_for(finished(later))
        assert ("Succeeded", None) in _kinds(events.of(later))
        assert [e for e in events.items if isinstance(e, FeatureFlags)][1:], "flags re-sent"
    finally:
        await socket.close()
    assert states.items[-1] == "closed"
    assert not _pending_tasks()


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


async def test_refused_reconnects_give_up(local: Target) -> None:
    events, states = Events(), States()
    reconnects: list[int] = []

    async def on_reconnect() -> None:
        reconnects.append(1)

    local.server.faults.update(ws_drop_after_frames=2)
    socket = EventSocket(local.ws_url, on_event=events, on_reconnect=on_reconnect,
                         on_state=states, give_up_after=2, max_backoff=0.2)
    await socket.start()
    local.server.faults.update(ws_refuse=True)
    try:
        await states.wait_for("failed")
        assert not socket.connected
        assert not await socket.wait_connected(WAIT)
        assert states.items[-1] == "failed"
        assert "reconnecting" in states.items
    finally:
        await socket.close()
    assert states.items[-1] == "closed"
    assert not _pending_tasks()


async def test_close_while_reconnecting_is_prompt_and_clean(local: Target) -> None:
    states = States()
    local.server.faults.update(ws_drop_after_frames=2)
    socket = EventSocket(local.ws_url, on_event=Events(), on_state=states, max_backoff=3600)
    await socket.start()
    local.server.faults.update(ws_refuse=True)
    await states.wait_for("reconnecting")
    await asyncio.wait_for(socket.close(), WAIT)
    assert states.items[-1] == "closed"
    assert not _pending_tasks()
    await socket.close()  # idempotent
    assert states.items.count("closed") == 1


async def test_close_from_on_reconnect_does_not_deadlock(local: Target) -> None:
    states = States()

    async def on_reconnect() -> None:
        await socket.close()

    local.server.faults.update(ws_drop_after_frames=2)  # status, feature_flags, then dropped
    socket = EventSocket(local.ws_url, on_event=Events(), on_state=states,
                         on_reconnect=on_reconnect, max_backoff=0.2)
    await socket.start()
    await states.wait_for("closed")
    assert states.items == ["connected", "reconnecting", "connected", "closed"]
    await asyncio.wait_for(socket.close(), WAIT)
    assert not _pending_tasks()


# -- start failures, shutdown, secrecy ------------------------------------------------------------


async def test_wrong_cloud_token_fails_cleanly(cloud: Target, caplog: pytest.LogCaptureFixture
                                               ) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "sk-wrong-token-0123456789abcdef"
    url = f"{cloud.server.ws_url}?clientId={cloud.client_id}&token={secret}"
    states = States()
    socket = EventSocket(url, on_event=Events(), on_state=states)
    with pytest.raises(TransportError) as info:
        await socket.start()
    error = info.value
    assert isinstance(error, WebSocketRefused) and error.status == 401
    port = cloud.server.url.rsplit(":", 1)[1]
    assert f"127.0.0.1:{port}" in str(error)
    shown = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    for text in (str(error), repr(error), shown, caplog.text, repr(socket)):
        assert secret not in text and "token=" not in text and cloud.client_id not in text
    assert states.items == []
    assert not _pending_tasks()
    await socket.close()


async def test_refused_first_connect_and_unreachable_server(local: Target) -> None:
    local.server.faults.update(ws_refuse=True)
    with pytest.raises(WebSocketRefused) as info:
        await EventSocket(local.ws_url, on_event=Events()).start()
    assert info.value.status == 503

    with serve(dialect="local") as other:
        dead_url = other.ws_url + "?clientId=x"
    with pytest.raises(TransportError) as unreachable:
        await EventSocket(dead_url, on_event=Events(), open_timeout=5).start()
    assert "clientId" not in str(unreachable.value)


async def test_close_is_idempotent_and_leaves_no_tasks(local: Target) -> None:
    states = States()
    socket = EventSocket(local.ws_url, on_event=Events(), on_state=states)
    assert not await socket.wait_connected(0.01)
    await socket.start()
    assert await socket.wait_connected(WAIT)
    await socket.close()
    await socket.close()
    assert states.items == ["connected", "closed"]
    assert not socket.connected
    assert not await socket.wait_connected(WAIT)
    assert not _pending_tasks()
    with pytest.raises(RuntimeError):
        await socket.start()

    never_started = EventSocket(local.ws_url, on_event=Events())
    await never_started.close()
    assert not never_started.connected


async def test_the_url_never_shows(cloud: Target, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = str(cloud.server.api_key)
    events, states = Events(), States()

    async def on_reconnect() -> None:
        pass

    cloud.server.faults.update(ws_drop_after_frames=3)
    socket = EventSocket(cloud.ws_url, on_event=events, on_state=states,
                         on_reconnect=on_reconnect, max_backoff=0.5)
    await socket.start()
    try:
        await events.wait_for(lambda e: isinstance(e, FeatureFlags))
        cloud.server.faults.update(ws_drop_after_frames=None)
        await cloud.submit(_workflow("empty_invert_save"))
        await states.wait_for("reconnecting")
        assert await socket.wait_connected(WAIT)
        prompt_id = await cloud.submit(_workflow("empty_invert_save"))
        await events.wait_for(finished(prompt_id))
        shown = [repr(socket), str(socket), caplog.text, *(repr(e) for e in events.items)]
    finally:
        await socket.close()
    shown.append(caplog.text)
    assert "127.0.0.1" in repr(socket)
    assert caplog.records, "debug logging was captured"
    for text in shown:
        assert key not in text and "token=" not in text and "clientId=" not in text

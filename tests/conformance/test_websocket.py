"""Conformance of websocket connection behaviour against ``ws/``: the first message, feature-flag
negotiation, and what reconnecting with the same clientId does while a prompt runs."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from comfy_nb.emulator import RunningEmulator

from ..factories import Emulators
from ._replay import SocketRecorder, finished, load, shape
from .deviations import CLIENT_IDS, EXECUTION_SPEED

COVERS = ["ws/*.json"]
RELIES_ON = (CLIENT_IDS, EXECUTION_SPEED)


@pytest.fixture
def slow_server(emulators: Emulators) -> RunningEmulator:
    # EXECUTION_SPEED: the recorded 1024² blurs took about a second per node.
    return emulators("local", step_delay=0.01, node_delay=0.3)


def _summary(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """Each message as (type, node), the deterministic part of the sequences compared here."""
    return [(m["type"], m["data"].get("node")) for m in messages]


def test_first_message_without_client_id(server: RunningEmulator) -> None:
    recorded = load("ws/ws_connect_without_clientId_first_message.json")
    with SocketRecorder(server.ws_url) as socket:
        first = socket.messages()[0]
    assert shape(first) == shape(recorded)
    assert first["data"]["status"] == recorded["data"]["status"]
    # CLIENT_IDS: a fresh uuid4 hex string without dashes, like the recorded one.
    assert re.fullmatch(r"[0-9a-f]{32}", recorded["data"]["sid"])
    assert re.fullmatch(r"[0-9a-f]{32}", first["data"]["sid"])
    assert first["data"]["sid"] != recorded["data"]["sid"]


def test_feature_flags_negotiation(server: RunningEmulator) -> None:
    recorded = load("ws/ws_feature_flags_negotiation.json")
    flags = recorded["client_sent_first"]["data"]
    with SocketRecorder(server.ws_url, client_id="flags-client", feature_flags=flags) as socket:
        connect, reply = socket.messages()[:2]
    expected_connect = recorded["received_on_connect"]
    assert shape(connect) == shape(expected_connect)
    assert connect["data"]["sid"] == "flags-client"  # CLIENT_IDS: ours, echoed as recorded
    assert reply == recorded["server_reply"]


def _post(http: httpx.Client, body: dict[str, Any], client_id: str) -> str:
    response = http.post("/prompt", json={**body, "client_id": client_id})
    assert response.status_code == 200
    prompt_id: str = response.json()["prompt_id"]
    return prompt_id


@pytest.mark.slow
def test_reconnect_with_same_client_id_mid_run(slow_server: RunningEmulator) -> None:
    recorded = load("ws/ws_reconnect_same_clientId_mid_run.json")
    body = recorded["post"]["request"]["body"]
    recorded_ws1 = [f["msg"] for f in recorded["ws1_frames"] if f["kind"] == "text"]
    recorded_ws2 = [f["msg"] for f in recorded["ws2_frames"] if f["kind"] == "text"]
    client = "reconnect-client"
    with httpx.Client(base_url=slow_server.url) as http, \
            SocketRecorder(slow_server.ws_url, client_id=client) as ws1:
        prompt_id = _post(http, body, client)
        ws1.wait_for(lambda m: m["type"] == "executing" and m["data"].get("node") == "11")
        with SocketRecorder(slow_server.ws_url, client_id=client) as ws2:
            ws2.wait_for(finished(prompt_id), timeout=20)
            ws1.wait_quiet(0.3)
            first, second = ws1.messages(), ws2.messages()
    assert _summary(first) == _summary(recorded_ws1)
    # The new socket: status, then the node being executed without prompt_id, then the rest.
    assert second[1] == recorded_ws2[1] == {"type": "executing", "data": {"node": "11"}}
    assert _summary(second) == _summary(recorded_ws2)
    assert second[0]["data"]["sid"] == client


def test_closing_the_old_socket_unregisters_the_client_id(server: RunningEmulator) -> None:
    recorded = load("ws/ws_old_socket_closed_after_reconnect.json")
    body = load("runs/empty_invert_save/post_prompt.json")["request"]["body"]
    client = "closed-client"
    with httpx.Client(base_url=server.url) as http:
        ws1 = SocketRecorder(server.ws_url, client_id=client).__enter__()
        with SocketRecorder(server.ws_url, client_id=client) as ws2:
            ws1.close()
            time.sleep(0.2)  # let the server see the close
            prompt_id = _post(http, body, client)
            deadline = time.monotonic() + 10
            while not http.get(f"/history/{prompt_id}").json():
                assert time.monotonic() < deadline, "the prompt never finished"
                time.sleep(0.05)
            ws2.wait_quiet(0.3)
            received = ws2.messages()
    recorded_frames = [f["msg"] for f in recorded["ws2_frames"] if f["kind"] == "text"]
    assert recorded["prompt_finished_per_history"] is True
    # The new socket got its connect status and nothing for the prompt (not even status
    # broadcasts: it is no longer registered), exactly as recorded.
    assert _summary(received) == _summary(recorded_frames)
    assert received[0]["data"]["sid"] == client


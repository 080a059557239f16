"""Conformance of queue behaviour against ``queue/``: heap-ordered pending list, ``front`` and
``number`` priorities, delete, clear, targeted interrupt, history while running, and the
websocket frames those produce."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from comfy_nb.emulator import RunningEmulator

from ..factories import Emulators
from ._replay import SocketRecorder, finished, load, send, wait_history
from .deviations import EXECUTION_SPEED, NUMBERS, PROMPT_IDS, SET_ORDER, TIMESTAMPS

COVERS = ["queue/*.json"]
RELIES_ON = (EXECUTION_SPEED, NUMBERS, PROMPT_IDS, SET_ORDER, TIMESTAMPS)
NODE_DELAY = 0.25  # EXECUTION_SPEED: keeps the recorded 1024² blur prompts running long enough


@pytest.fixture
def slow_server(emulators: Emulators) -> RunningEmulator:
    return emulators("local", step_delay=0.01, node_delay=NODE_DELAY)


def _post(http: httpx.Client, step: dict[str, Any], client_id: str) -> dict[str, Any]:
    body = dict(step["request"]["body"])
    if "client_id" in body:
        body["client_id"] = client_id
    response = send(http, step["request"], body=body)
    assert response.status_code == step["response"]["status"]
    result: dict[str, Any] = response.json()
    assert set(result) == set(step["response"]["body"])
    return result


def _status_values(messages: list[dict[str, Any]]) -> list[int]:
    return [m["data"]["status"]["exec_info"]["queue_remaining"]
            for m in messages if m["type"] == "status"]


def _recorded_messages(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f["msg"] for f in frames if f["kind"] == "text"]


def _events(messages: list[dict[str, Any]], ids: dict[str, str]) -> list[tuple[str, Any]]:
    """Non-status messages as (type, prompt index, node); ids maps prompt ids to labels."""
    out = []
    for m in messages:
        if m["type"] == "status":
            continue
        data = m["data"]
        out.append((m["type"], ids.get(data.get("prompt_id", ""), "?"), data.get("node")))
    return out


@pytest.mark.slow
def test_delete_pending_then_interrupt_running(slow_server: RunningEmulator) -> None:
    steps_file = load("queue/queue_delete_interrupt_steps.json")
    ws_file = load("queue/queue_delete_interrupt_ws.json")
    steps = {s["step"]: s for s in steps_file["steps"]}
    recorded_ids = steps_file["prompt_ids"]
    with httpx.Client(base_url=slow_server.url) as http, \
            SocketRecorder(slow_server.ws_url, client_id="queue-client") as socket:
        # As recorded, the worker takes #1 before #2 arrives (the status sequence shows it).
        posted = [_post(http, steps["POST /prompt #1"], "queue-client")]
        socket.wait_for(lambda m: m["type"] == "execution_start")
        posted += [_post(http, steps[f"POST /prompt #{n}"], "queue-client") for n in (2, 3)]
        ids = [p["prompt_id"] for p in posted]
        # NUMBERS: consecutive counter values, whatever the first one is.
        assert [p["number"] for p in posted] == [posted[0]["number"] + i for i in range(3)]

        queue = http.get("/queue").json()
        recorded_queue = steps["GET /queue after 3 posts"]["response"]["body"]
        assert [len(queue["queue_running"]), len(queue["queue_pending"])] == [
            len(recorded_queue["queue_running"]), len(recorded_queue["queue_pending"])]
        pending = {item[1]: item for item in queue["queue_pending"]}
        # /queue shows extra_data as sent, partner-node key included (as recorded).
        recorded_second = next(i for i in recorded_queue["queue_pending"]
                               if i[1] == recorded_ids[1])
        assert pending[ids[1]][3]["api_key_comfy_org"] == recorded_second[3]["api_key_comfy_org"]
        assert [len(i) for i in queue["queue_pending"]] == [5, 5]

        assert http.get("/prompt").json() == steps["GET /prompt (queue_remaining)"]["response"][
            "body"]

        delete = steps["POST /queue delete #3"]
        response = send(http, delete["request"], body={"delete": [ids[2]]})
        assert (response.status_code, response.content) == (delete["response"]["status"], b"")
        after = http.get("/queue").json()
        assert [i[1] for i in after["queue_pending"]] == [ids[1]]

        # the 1024² blurs before node 11 are real work: a busy machine needs more than 10 s
        socket.wait_for(lambda m: m["type"] == "executing" and m["data"].get("node") == "11"
                        and m["data"].get("prompt_id") == ids[0], timeout=60)
        interrupt = steps["POST /interrupt {prompt_id:#1} while #1 runs node 11"]
        response = send(http, interrupt["request"], body={"prompt_id": ids[0]})
        assert (response.status_code, response.content) == (200, b"")

        socket.wait_for(finished(ids[1]), timeout=20)
        first, second = wait_history(http, ids[0]), wait_history(http, ids[1])
        assert http.get(f"/history/{ids[2]}").json() == {}
        assert http.get("/queue").json() == steps["GET /queue at end"]["response"]["body"]
        messages = socket.messages()

    recorded_first = steps["GET /history/#1"]["response"]["body"][recorded_ids[0]]
    recorded_second_h = steps["GET /history/#2"]["response"]["body"][recorded_ids[1]]
    for entry, recorded in ((first, recorded_first), (second, recorded_second_h)):
        assert entry["status"]["status_str"] == recorded["status"]["status_str"]
        assert entry["status"]["completed"] == recorded["status"]["completed"]
        assert [m[0] for m in entry["status"]["messages"]] == [
            m[0] for m in recorded["status"]["messages"]]
        assert set(entry) == set(recorded)
    # History strips the partner-node key.
    assert "api_key_comfy_org" not in second["prompt"][3]
    assert second["prompt"][3] == {"client_id": "queue-client"}
    interrupted = first["status"]["messages"][-1][1]
    recorded_interrupted = recorded_first["status"]["messages"][-1][1]
    assert (interrupted["node_id"], interrupted["node_type"]) == (
        recorded_interrupted["node_id"], recorded_interrupted["node_type"])
    assert set(interrupted["executed"]) == set(recorded_interrupted["executed"])  # SET_ORDER
    assert set(interrupted) == set(recorded_interrupted)  # TIMESTAMPS, PROMPT_IDS differ

    recorded_messages = _recorded_messages(ws_file["frames"])
    assert _status_values(messages) == _status_values(recorded_messages)
    labels = {ids[0]: "#1", ids[1]: "#2"}
    recorded_labels = {recorded_ids[0]: "#1", recorded_ids[1]: "#2"}
    assert _events(messages, labels) == _events(recorded_messages, recorded_labels)


@pytest.mark.slow
def test_front_and_number_priorities(slow_server: RunningEmulator) -> None:
    recorded = load("queue/queue_front_number_steps.json")
    steps = recorded["steps"]
    with httpx.Client(base_url=slow_server.url) as http, \
            SocketRecorder(slow_server.ws_url, client_id="front-client") as socket:
        first = _post(http, steps[0], "front-client")
        socket.wait_for(lambda m: m["type"] == "execution_start")
        posted = [first] + [_post(http, step, "front-client") for step in steps[1:4]]
        counter = posted[1]["number"]  # NUMBERS: the counter, wherever it stands
        assert posted[2]["number"] == -(counter + 1)
        assert posted[3]["number"] == steps[3]["response"]["body"]["number"] == -1000.0
        assert isinstance(posted[3]["number"], float)

        queue = http.get("/queue").json()
        recorded_queue = steps[4]["response"]["body"]
        label = {p["prompt_id"]: n for n, p in enumerate(posted, 1)}
        recorded_label = {s["response"]["body"]["prompt_id"]: n for n, s in enumerate(steps[:4], 1)}
        assert [label[i[1]] for i in queue["queue_running"]] == [
            recorded_label[i[1]] for i in recorded_queue["queue_running"]]
        # Heap order, not sorted: the recorded [-1000.0, 46, -47].
        assert [label[i[1]] for i in queue["queue_pending"]] == [
            recorded_label[i[1]] for i in recorded_queue["queue_pending"]]

        for prompt in posted:
            socket.wait_for(finished(prompt["prompt_id"]), timeout=20)
        starts = [label[m["data"]["prompt_id"]] for m in socket.messages()
                  if m["type"] == "execution_start"]
    assert starts == recorded["execution_start_order"]


def test_clear_drops_pending_only(slow_server: RunningEmulator) -> None:
    recorded = load("queue/queue_clear_steps.json")
    steps = {s["step"]: s for s in recorded["steps"]}
    with httpx.Client(base_url=slow_server.url) as http, \
            SocketRecorder(slow_server.ws_url, client_id="clear-client") as socket:
        posted = [_post(http, steps["POST /prompt #1"], "clear-client")]
        socket.wait_for(lambda m: m["type"] == "execution_start")  # as recorded, see above
        posted += [_post(http, steps[f"POST /prompt #{n}"], "clear-client") for n in (2, 3)]
        before = http.get("/queue").json()
        recorded_before = steps["GET /queue"]["response"]["body"]
        assert [len(before["queue_running"]), len(before["queue_pending"])] == [
            len(recorded_before["queue_running"]), len(recorded_before["queue_pending"])]
        clear = steps["POST /queue clear"]
        response = send(http, clear["request"])
        assert (response.status_code, response.content) == (clear["response"]["status"], b"")
        after = http.get("/queue").json()
        recorded_after = steps["GET /queue after clear"]["response"]["body"]
        assert [len(after["queue_running"]), len(after["queue_pending"])] == [
            len(recorded_after["queue_running"]), len(recorded_after["queue_pending"])]
        assert after["queue_running"][0][1] == posted[0]["prompt_id"]
        socket.wait_for(finished(posted[0]["prompt_id"]), timeout=20)
        for cleared in posted[1:]:  # a deleted prompt never reaches history
            assert http.get(f"/history/{cleared['prompt_id']}").json() == {}
        messages = socket.messages()
    recorded_messages = _recorded_messages(recorded["ws_frames"])
    assert _status_values(messages) == _status_values(recorded_messages)
    recorded_id = steps["POST /prompt #1"]["response"]["body"]["prompt_id"]
    assert _events(messages, {posted[0]["prompt_id"]: "#1"}) == _events(
        recorded_messages, {recorded_id: "#1"})


def test_history_is_empty_until_the_prompt_finishes(slow_server: RunningEmulator) -> None:
    recorded = load("queue/history_poll_while_running.json")
    steps = recorded["steps"]
    with httpx.Client(base_url=slow_server.url) as http:
        posted = _post(http, steps[0], "unused")
        prompt_id = posted["prompt_id"]
        assert http.get(f"/history/{prompt_id}").json() == steps[1]["response"]["body"] == {}
        deadline = time.monotonic() + 5  # the worker takes it within moments, as recorded
        while not (queue := http.get("/queue").json())["queue_running"]:
            assert time.monotonic() < deadline, "the prompt never started"
            time.sleep(0.01)
        assert [i[1] for i in queue["queue_running"]] == [prompt_id]
        recorded_running = steps[2]["response"]["body"]["queue_running"][0]
        assert queue["queue_running"][0][3] == recorded_running[3] == {}  # no client_id sent
        entry = wait_history(http, prompt_id)
    recorded_entry = steps[3]["response"]["body"][recorded["prompt_id"]]
    assert set(entry) == set(recorded_entry)
    assert entry["prompt"][2] == recorded_entry["prompt"][2]
    assert entry["outputs"].keys() == recorded_entry["outputs"].keys()
    assert entry["status"]["status_str"] == recorded_entry["status"]["status_str"] == "success"


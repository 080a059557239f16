"""The v2 dialect's faults, each the recorded behaviour of comfy-api-proxy 0.1.6 switched on at
will, and what the dialect does without them: ``expired_race`` (a just-finished job reads as
``expired``), ``sse_stall`` (a stream misses the end of its job until the heartbeat), and
``cancel_noop`` (cancel answers but cancels nothing); also the event-stream limit, the
heartbeat, and a server without a token."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from comfy_nb.emulator import RunningEmulator

from ..factories import Emulators

TOKEN = "v2-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def invert(color: int) -> dict[str, Any]:
    return {"workflow": {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": color}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage",
              "inputs": {"images": ["2", 0], "filename_prefix": "v2test/invert"}},
    }}


@pytest.fixture
def slow(emulators: Emulators) -> RunningEmulator:
    """Jobs of three nodes that take about 0.6 s."""
    return emulators("v2", token=TOKEN, node_delay=0.2)


@pytest.fixture
def http(slow: RunningEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=slow.url, headers=AUTH, timeout=30) as client:
        yield client


def submit(http: httpx.Client, color: int) -> str:
    created = http.post("/api/v2/jobs", json=invert(color))
    assert created.status_code == 201, created.text
    job_id: str = created.json()["id"]
    return job_id


def status(http: httpx.Client, job_id: str) -> str:
    found: str = http.get(f"/api/v2/jobs/{job_id}").json()["status"]
    return found


def wait_until(http: httpx.Client, job_id: str, wanted: set[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while (now := status(http, job_id)) not in wanted:
        assert time.monotonic() < deadline, f"job {job_id} stayed {now}"
        time.sleep(0.01)
    return now


def history_has(server: RunningEmulator, job_id: str) -> bool:
    return server.state.queue.history_entry(job_id) is not None


def wait_history(server: RunningEmulator, job_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not history_has(server, job_id):
        assert time.monotonic() < deadline, f"job {job_id} never finished"
        time.sleep(0.01)


def events(http: httpx.Client, job_id: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The frames of one whole event stream: ``{"event", "data"}`` or ``{"comment"}``."""
    frames: list[dict[str, Any]] = []
    with http.stream("GET", f"/api/v2/jobs/{job_id}/events", timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        for block in response.read().decode().split("\n\n"):
            if block.startswith(":"):
                frames.append({"comment": block[1:].strip()})
            elif block:
                lines = dict(line.split(": ", 1) for line in block.split("\n"))
                assert "id" not in lines
                frames.append({"event": lines["event"], "data": json.loads(lines["data"])})
    return frames


def kinds(frames: list[dict[str, Any]]) -> list[str]:
    return [f.get("event") or ":" + f["comment"] for f in frames]


# -- expired_race ------------------------------------------------------------------------------


def test_without_expired_race_a_finished_job_reads_succeeded(slow: RunningEmulator,
                                                            http: httpx.Client) -> None:
    job_id = submit(http, 1)
    wait_history(slow, job_id)
    assert status(http, job_id) == "succeeded"


def test_expired_race_reads_a_just_finished_job_as_expired_then_succeeded(
        slow: RunningEmulator, http: httpx.Client) -> None:
    slow.set_faults(expired_race=60.0)
    job_id = submit(http, 2)
    wait_history(slow, job_id)
    expired = http.get(f"/api/v2/jobs/{job_id}").json()
    assert expired["status"] == "expired"
    assert expired["outputs"] == [] and expired["error"] is None
    stream = events(http, job_id)
    assert kinds(stream) == ["status"] and stream[0]["data"] == {"status": "expired"}
    slow.set_faults(expired_race=0.0)  # the window has passed
    assert status(http, job_id) == "succeeded"


def test_expired_race_is_only_right_after_the_end(slow: RunningEmulator,
                                                  http: httpx.Client) -> None:
    slow.set_faults(expired_race=0.05)
    job_id = submit(http, 3)
    wait_history(slow, job_id)
    time.sleep(0.1)
    assert status(http, job_id) == "succeeded"


# -- sse_stall ---------------------------------------------------------------------------------


def test_without_sse_stall_a_stream_follows_its_job(http: httpx.Client) -> None:
    job_id = submit(http, 4)
    wait_until(http, job_id, {"running"})
    stream = events(http, job_id)
    assert kinds(stream)[:2] == ["status", "progress"]
    assert stream[0]["data"] == {"status": "running"}
    live = [f for f in stream[2:] if f.get("event") == "progress"]
    assert live and "current_node" in live[0]["data"]  # the executor's own progress
    assert not any("comment" in f for f in stream)  # no 15 s silence
    assert {"event": "status", "data": {"status": "succeeded"}} in stream
    assert [f["event"] for f in stream if f.get("event") == "output"] == ["output"]


def test_sse_stall_misses_the_end_until_the_keepalive(slow: RunningEmulator,
                                                     http: httpx.Client) -> None:
    slow.set_faults(sse_stall=1.5)
    job_id = submit(http, 5)
    wait_until(http, job_id, {"running"})
    stream = events(http, job_id)
    assert kinds(stream) == ["status", "progress", ":keepalive", "status", "output"]
    assert stream[1]["data"] == {"value": 0.0, "nodes_done": 0, "nodes_total": 0}
    assert stream[3]["data"] == {"status": "succeeded"}
    assert stream[4]["data"]["job_id"] == job_id


def test_a_stream_of_a_longer_job_goes_on_after_the_stall(emulators: Emulators) -> None:
    server = emulators("v2", token=TOKEN, node_delay=0.5, faults={"sse_stall": 0.3})
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
        job_id = submit(http, 6)
        wait_until(http, job_id, {"running"})
        stream = events(http, job_id)
    assert kinds(stream)[:3] == ["status", "progress", ":keepalive"]
    assert "progress" in kinds(stream)[3:]  # live again after the silence
    assert {"event": "status", "data": {"status": "succeeded"}} in stream


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_interrupts_a_running_job(slow: RunningEmulator, http: httpx.Client) -> None:
    job_id = submit(http, 7)
    wait_until(http, job_id, {"running"})
    answer = http.post(f"/api/v2/jobs/{job_id}/cancel")
    assert answer.status_code == 200
    assert answer.json()["status"] == "canceling"
    seen = status(http, job_id)  # until the interrupt lands: canceling, never running again
    assert seen in ("canceling", "canceled"), seen
    assert wait_until(http, job_id, {"canceled", "succeeded", "failed"}) == "canceled"


def test_cancel_takes_a_queued_job_off_the_queue(slow: RunningEmulator,
                                                 http: httpx.Client) -> None:
    first = submit(http, 8)
    second = submit(http, 9)
    wait_until(http, first, {"running"})  # then the second is first in the queue
    assert http.get(f"/api/v2/jobs/{second}").json()["queue_position"] == 1
    answer = http.post(f"/api/v2/jobs/{second}/cancel").json()
    assert answer["status"] == "canceled"
    wait_until(http, first, {"succeeded"})
    assert status(http, second) == "canceled"
    assert not history_has(slow, second)  # it never ran
    again = http.post(f"/api/v2/jobs/{second}/cancel").json()
    assert again["status"] == "canceled"  # idempotent


def test_cancel_noop_answers_canceling_and_the_job_succeeds(slow: RunningEmulator,
                                                             http: httpx.Client) -> None:
    slow.set_faults(cancel_noop=True)
    job_id = submit(http, 10)
    wait_until(http, job_id, {"running"})
    assert http.post(f"/api/v2/jobs/{job_id}/cancel").json()["status"] == "canceling"
    assert status(http, job_id) == "running"
    assert wait_until(http, job_id, {"canceled", "succeeded", "failed"}) == "succeeded"
    assert http.post(f"/api/v2/jobs/{job_id}/cancel").json()["status"] == "succeeded"


def test_cancel_noop_leaves_a_queued_job_queued(slow: RunningEmulator,
                                                http: httpx.Client) -> None:
    slow.set_faults(cancel_noop=True)
    first = submit(http, 11)
    second = submit(http, 12)
    wait_until(http, first, {"running"})  # then the second is first in the queue
    answer = http.post(f"/api/v2/jobs/{second}/cancel").json()
    assert answer["status"] == "queued" and answer["queue_position"] == 1
    assert wait_until(http, second, {"canceled", "succeeded", "failed"}) == "succeeded"


def test_faults_are_set_over_http_too(slow: RunningEmulator) -> None:
    with httpx.Client(base_url=slow.url, timeout=30) as http:
        answer = http.post("/_emulator/faults", json={"cancel_noop": True, "sse_stall": 2})
        assert answer.status_code == 200
        assert answer.json()["cancel_noop"] is True
    assert slow.faults.cancel_noop is True and slow.faults.sse_stall == 2


# -- streams and auth --------------------------------------------------------------------------


def test_a_ninth_stream_is_refused_until_one_closes(emulators: Emulators) -> None:
    server = emulators("v2", token=TOKEN, node_delay=5.0)
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
        job_id = submit(http, 13)
        opened = [http.stream("GET", f"/api/v2/jobs/{job_id}/events") for _ in range(8)]
        try:
            for stream in opened:
                assert stream.__enter__().status_code == 200
            refused = http.get(f"/api/v2/jobs/{job_id}/events")
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "5"
            assert refused.json()["error"]["code"] == "too_many_streams"
        finally:
            for stream in opened:
                stream.__exit__(None, None, None)
            http.post(f"/api/v2/jobs/{job_id}/cancel")


def test_the_heartbeat_keeps_a_quiet_stream_alive(emulators: Emulators) -> None:
    server = emulators("v2", token=TOKEN, node_delay=1.2, sse_heartbeat=0.3)
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
        job_id = submit(http, 14)
        wait_until(http, job_id, {"running"})
        stream = events(http, job_id)
    assert ":keepalive" in kinds(stream)
    assert {"event": "status", "data": {"status": "succeeded"}} in stream


def test_without_a_token_every_request_is_let_in(emulators: Emulators) -> None:
    server = emulators("v2")
    assert server.api_key is None
    with httpx.Client(base_url=server.url, timeout=30) as http:
        job_id = submit(http, 15)
        assert http.get("/api/v2/jobs").status_code == 200
        assert http.get(f"/api/v2/jobs/{job_id}",
                        headers={"Authorization": "Bearer anything"}).status_code == 200


def test_with_a_token_it_is_the_server_key_and_required(slow: RunningEmulator) -> None:
    assert slow.api_key == TOKEN
    with httpx.Client(base_url=slow.url, timeout=30) as http:
        assert http.get("/api/v2/jobs").status_code == 401
        assert http.get("/api/v2/health").status_code == 200
        assert http.get("/api/v2/jobs", headers=AUTH).status_code == 200


def test_a_range_past_the_end_is_the_proxys_upstream_error(slow: RunningEmulator,
                                                          http: httpx.Client) -> None:
    job_id = submit(http, 16)
    wait_until(http, job_id, {"succeeded"})
    output = http.get(f"/api/v2/jobs/{job_id}").json()["outputs"][0]
    whole = http.get(f"/api/v2/assets/{output['id']}/content")
    assert whole.status_code == 200 and whole.headers["Accept-Ranges"] == "bytes"
    tail = http.get(f"/api/v2/assets/{output['id']}/content", headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == whole.content[-5:]
    past = http.get(f"/api/v2/assets/{output['id']}/content",
                    headers={"Range": f"bytes={len(whole.content)}-"})
    assert past.status_code == 502
    assert past.json()["error"]["code"] == "upstream_error"


# -- the emulator's general faults, in the v2 dialect ----------------------------------------


def test_injected_errors_come_in_the_v2_envelope(slow: RunningEmulator,
                                                 http: httpx.Client) -> None:
    slow.set_faults(http_error_count=1, http_error_status=503, retry_after=2)
    failed = http.get("/api/v2/jobs")
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "2"
    assert failed.json() == {"error": {"code": "emulated_fault", "message": "injected HTTP 503",
                                       "details": None}}
    assert http.get("/api/v2/jobs").status_code == 200


def test_a_lost_answer_leaves_the_job_queued_and_its_key_used(slow: RunningEmulator,
                                                              http: httpx.Client) -> None:
    slow.set_faults(lose_prompt_answers=1)
    headers = {"Idempotency-Key": "lost-answer-key"}
    with pytest.raises(httpx.TransportError):
        http.post("/api/v2/jobs", json=invert(17), headers=headers)
    listed = http.get("/api/v2/jobs").json()["jobs"]
    assert len(listed) == 1  # the job was queued all the same
    again = http.post("/api/v2/jobs", json=invert(17), headers=headers)
    assert again.status_code == 422
    assert again.json()["error"]["code"] == "idempotency_key_reuse"


def test_the_token_is_not_in_the_options_repr(slow: RunningEmulator) -> None:
    assert TOKEN not in repr(slow.options)
    assert TOKEN not in repr(slow)


def test_a_busy_stream_beats_too(emulators: Emulators) -> None:
    """Events every 0.1 s for 1.5 s, a 0.4 s heartbeat: keepalives among them, none of them
    ending the stream early."""
    server = emulators("v2", token=TOKEN, node_delay=0.1, sse_heartbeat=0.4)
    workflow = {"workflow": {
        "1": {"class_type": "StringConcatenate",
              "inputs": {"string_a": "a", "string_b": "b", "delimiter": ""}},
        **{str(n): {"class_type": "StringConcatenate",
                    "inputs": {"string_a": [str(n - 1), 0], "string_b": "x", "delimiter": ""}}
           for n in range(2, 16)},
        "16": {"class_type": "PreviewAny", "inputs": {"source": ["15", 0]}},
    }}
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
        job_id = http.post("/api/v2/jobs", json=workflow).json()["id"]
        wait_until(http, job_id, {"running"})
        stream = events(http, job_id)
    beats = [i for i, f in enumerate(stream) if "comment" in f]
    assert beats, kinds(stream)
    assert any(f.get("event") == "progress" for f in stream[beats[0] + 1:])  # still live after
    assert stream[-1] == {"event": "status", "data": {"status": "succeeded"}}

"""Fault injection: each fault does what a client under test must survive, and the server keeps
serving afterwards. Also: malformed requests never kill the emulator."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import httpx
import pytest
import websockets

from comfy_nb.emulator import RunningEmulator, serve

from ..conformance._replay import SocketRecorder, finished, load, wait_history
from ..factories import Emulators

WORKFLOW = load("runs/empty_invert_save/post_prompt.json")["request"]["body"]["prompt"]


@pytest.fixture
def server(emulators: Emulators) -> RunningEmulator:
    return emulators("local", step_delay=0.01)


def _run(http: httpx.Client, client_id: str | None = None) -> str:
    body: dict[str, Any] = {"prompt": WORKFLOW}
    if client_id:
        body["client_id"] = client_id
    response = http.post("/prompt", json=body)
    assert response.status_code == 200, response.text
    prompt_id: str = response.json()["prompt_id"]
    return prompt_id


def test_http_errors_for_the_next_requests_then_normal(server: RunningEmulator) -> None:
    server.faults.update(http_error_count=2, http_error_status=503)
    with httpx.Client(base_url=server.url) as http:
        assert [http.get("/queue").status_code for _ in range(3)] == [503, 503, 200]


@pytest.mark.parametrize("path", ["/prompt", "/api/prompt"])
def test_a_lost_prompt_answer_queues_the_prompt_and_drops_the_connection(
        server: RunningEmulator, path: str) -> None:
    server.faults.update(lose_prompt_answers=1, http_error_count=1)
    with httpx.Client(base_url=server.url) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(path, json={"prompt": WORKFLOW, "prompt_id": "lost-1"})
        assert http.get("/queue").status_code == 503  # errors wait for the next request
        assert wait_history(http, "lost-1")["status"]["status_str"] == "success"
        assert server.faults.lose_prompt_answers == 0
        assert http.get(f"/history/{_run(http)}").status_code == 200  # the next one is answered


def test_429_carries_retry_after(server: RunningEmulator) -> None:
    server.faults.update(http_error_count=1, http_error_status=429, retry_after=3)
    with httpx.Client(base_url=server.url) as http:
        response = http.post("/prompt", json={"prompt": WORKFLOW})
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"
        assert http.get(f"/history/{_run(http)}").status_code == 200


def test_latency_delays_every_answer(server: RunningEmulator) -> None:
    with httpx.Client(base_url=server.url) as http:
        server.faults.update(latency=0.3)
        started = time.monotonic()
        http.get("/queue")
        slow = time.monotonic() - started
        server.faults.update(latency=0.0)
    assert slow >= 0.3


def test_truncated_view_fails_the_download(server: RunningEmulator) -> None:
    with httpx.Client(base_url=server.url) as http:
        entry = wait_history(http, _run(http))
        image = entry["outputs"]["3"]["images"][0]
        server.faults.update(truncate_view=True)
        with pytest.raises(httpx.HTTPError):
            http.get("/view", params=image)
        server.faults.update(truncate_view=False)
        assert http.get("/view", params=image).status_code == 200


def test_websocket_dropped_after_n_frames(server: RunningEmulator) -> None:
    server.set_faults(ws_drop_after_frames=3)

    async def count_frames() -> int:
        received = 0
        async with websockets.connect(server.ws_url + "?clientId=drop") as ws:
            async with httpx.AsyncClient(base_url=server.url) as http:
                await http.post("/prompt", json={"prompt": WORKFLOW, "client_id": "drop"})
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
                    received += 1
        return received

    assert asyncio.run(count_frames()) == 3
    server.set_faults(ws_drop_after_frames=None)
    with SocketRecorder(server.ws_url, client_id="after") as socket, \
            httpx.Client(base_url=server.url) as http:
        socket.wait_for(finished(_run(http, "after")))


def test_websocket_upgrade_refused(server: RunningEmulator) -> None:
    server.faults.update(ws_refuse=True)

    async def connect() -> None:
        async with websockets.connect(server.ws_url):
            pass

    with pytest.raises(websockets.InvalidStatus) as refused:
        asyncio.run(connect())
    assert refused.value.response.status_code == 503


def test_restart_loses_queue_history_and_sockets() -> None:
    with serve(dialect="local", node_delay=0.5) as server, \
            httpx.Client(base_url=server.url) as http, \
            SocketRecorder(server.ws_url, client_id="restart") as socket:
        running = _run(http, "restart")
        pending = _run(http, "restart")
        socket.wait_for(lambda m: m["type"] == "execution_start")
        server.restart()
        assert http.get("/queue").json() == {"queue_running": [], "queue_pending": []}
        time.sleep(0.8)  # the running job would have finished by now
        assert http.get("/history").json() == {}
        assert http.get(f"/history/{running}").json() == {}
        assert http.get(f"/history/{pending}").json() == {}
        socket.wait_quiet(0.2)
        types = [m["type"] for m in socket.messages()]
        assert "execution_interrupted" not in types and "execution_success" not in types
        assert socket.closed  # the server went away
        assert http.post("/prompt", json={"prompt": WORKFLOW}).json()["number"] == 0


def test_faults_over_http_control_endpoint(server: RunningEmulator) -> None:
    with httpx.Client(base_url=server.url) as http:
        assert http.post("/_emulator/faults", json={"http_error_count": 1}).status_code == 200
        assert http.get("/queue").status_code == 503
        assert http.get("/queue").status_code == 200
        refused = http.post("/_emulator/faults", json={"no_such_fault": 1})
        assert refused.status_code == 400
        assert "no_such_fault" in refused.json()["message"]


MALFORMED: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/prompt", {"content": b"\xff\xfe not json"}),
    ("POST", "/prompt", {"json": {"prompt": "a string"}}),
    ("POST", "/prompt", {"json": {"prompt": {"1": {"class_type": "EmptyImage"}}}}),
    ("POST", "/prompt", {"json": {"prompt": {"1": None}}}),
    ("POST", "/prompt", {"json": [1, 2, 3]}),
    ("POST", "/prompt", {"json": {"prompt": {}, "number": "abc"}}),
    ("POST", "/queue", {"content": b"{"}),
    ("POST", "/queue", {"json": {"delete": "not-a-list"}}),
    ("POST", "/history", {"json": {"delete": 5}}),
    ("POST", "/interrupt", {"content": b"[1]"}),
    ("POST", "/upload/image", {"content": b"not multipart",
                               "headers": {"Content-Type": "multipart/form-data; boundary=x"}}),
    ("POST", "/upload/image", {"files": {"image": ("x.png", b"data")}, "data": {"type": "bogus"}}),
    ("POST", "/upload/mask", {"files": {"image": ("m.png", b"data")},
                              "data": {"original_ref": "{not json"}}),
    ("GET", "/view?filename=%00&type=output", {}),
    ("GET", "/history?max_items=abc", {}),
    ("GET", "/object_info/" + "A" * 5000, {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), MALFORMED)
def test_malformed_requests_never_kill_the_server(
    server: RunningEmulator, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    with httpx.Client(base_url=server.url) as http:
        response = http.request(method, path, **kwargs)
        assert response.status_code in (200, 400, 403, 404, 500)
        if response.status_code == 500:  # ComfyUI's own answer to a crashing handler
            assert response.headers["content-type"].startswith("text/plain")
            assert response.text == "500 Internal Server Error\n\nServer got itself in trouble"
        entry = wait_history(http, _run(http))
        assert entry["status"]["status_str"] == "success"


def test_garbage_on_the_socket_and_websocket_never_kills_the_server(
    server: RunningEmulator,
) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(b"\x16\x03\x01 this is not http\r\n\r\n")
        raw.recv(1024)

    async def junk_messages() -> None:
        async with websockets.connect(server.ws_url + "?clientId=junk") as ws:
            await ws.recv()
            await ws.send(b"\x00\x01binary")
            await ws.send("{not json")
            await ws.send(json.dumps({"type": "feature_flags", "data": None}))

    asyncio.run(junk_messages())
    with httpx.Client(base_url=server.url) as http:
        assert wait_history(http, _run(http))["status"]["status_str"] == "success"


def test_faults_set_at_start() -> None:
    with serve(faults={"http_error_count": 1, "http_error_status": 500}) as server, \
            httpx.Client(base_url=server.url) as http:
        assert [http.get("/queue").status_code for _ in range(2)] == [500, 200]


def test_unknown_fault_at_start_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault"), serve(faults={"explode": True}):
        pass


def test_cli_fault_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from comfy_nb.cli import main

    assert main(["emulator", "--port", "0", "--fault", "nonsense"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err

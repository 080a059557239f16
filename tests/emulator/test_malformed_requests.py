"""Malformed requests get a client error from the emulator, never a 500: every route is swept
with wrong JSON types for each top-level field, bodies that are not JSON, broken multipart
uploads, and overlong or odd query and path values (hypothesis), on both dialects.

The one exception is what the recordings show real ComfyUI 0.3.64 doing
(``tests/fixtures/comfyui/errors``, checked in ``tests/conformance/test_errors.py``): its
``POST /prompt`` handler crashes (aiohttp's plain-text 500) on a body that is not JSON, an empty
body, a ``prompt`` that is a list, and an editor workflow sent as ``prompt``; the local dialect
keeps those. Everything else is a 4xx, and the server keeps serving afterwards.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from comfy_nb.emulator import RunningEmulator

from ..factories import Emulators

SWEEP = settings(max_examples=120, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])
RECORDED_CRASH = "500 Internal Server Error\n\nServer got itself in trouble"


@pytest.fixture(scope="module", params=["local", "cloud"])
def server(request: pytest.FixtureRequest, module_emulators: Emulators) -> RunningEmulator:
    return module_emulators(request.param, step_delay=0)


@pytest.fixture(scope="module")
def http(server: RunningEmulator) -> Iterator[httpx.Client]:
    headers = {"X-API-Key": server.api_key} if server.api_key else {}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        yield client


# -- what may be sent --------------------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
           | st.floats() | st.text(max_size=12))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
CLASSES = st.sampled_from(["SaveImage", "EmptyImage", "KSampler", "LoadImage", "PreviewAny",
                           "NoSuchNode", ""])
NODE = st.fixed_dictionaries({}, optional={
    "class_type": CLASSES | JSON,
    "inputs": st.dictionaries(st.sampled_from(["image", "images", "width", "source", "seed",
                                                "filename_prefix", "x"]), JSON, max_size=4)
    | JSON,
    "_meta": JSON,
})
PROMPT = st.dictionaries(st.text(max_size=4), NODE | JSON, max_size=4) | JSON
PROMPT_BODY = st.fixed_dictionaries({}, optional={
    "prompt": PROMPT, "client_id": JSON, "prompt_id": JSON, "extra_data": JSON, "front": JSON,
    "number": JSON, "partial_execution_targets": JSON, "workflow_id": JSON,
}) | JSON
MANAGE_BODY = st.fixed_dictionaries({}, optional={
    "delete": JSON | st.lists(JSON, max_size=3), "clear": JSON, "prompt_id": JSON}) | JSON
RAW = st.binary(max_size=40) | st.sampled_from([b"", b"{", b"nul", b"[1,", b"\xff\xfe"])
# query and path values: short odd text, or long runs the file system cannot take
ODD = (st.text(max_size=20)
       | st.builds(lambda unit, count: unit * count,
                   st.sampled_from(["a", "x/", "../", "%", "\u00e9", "\x00", "/", " "]),
                   st.integers(min_value=100, max_value=1500)))


def encoded(body: Any) -> bytes:
    """JSON the way a careless client sends it (NaN included)."""
    return json.dumps(body, allow_nan=True).encode()


def recorded_crash(path: str, body: bytes, dialect: str) -> bool:
    """Whether real ComfyUI answered this ``POST /prompt`` with its 500 in the recordings."""
    if dialect != "local" or not path.endswith("/prompt"):
        return False
    try:
        data = json.loads(body)
    except ValueError:
        return True  # not JSON, or empty
    if not isinstance(data, dict) or "prompt" not in data:
        return False
    prompt = data["prompt"]
    return isinstance(prompt, list) or (isinstance(prompt, dict) and "nodes" in prompt
                                        and "links" in prompt)


def check(server: RunningEmulator, response: httpx.Response, body: bytes = b"") -> None:
    path = response.request.url.path
    if response.status_code == 500 and recorded_crash(path, body, server.dialect):
        assert response.text == RECORDED_CRASH
        return
    assert response.status_code < 500, (response.request.method, response.request.url,
                                        body[:300], response.status_code, response.text[:300])


def path_part(value: str) -> str:
    return urllib.parse.quote(value, safe="") or "x"


# -- the cases that answered 500 -------------------------------------------------------------


@pytest.mark.parametrize("extra_data", [[1, 2], "text", 5, True])
def test_extra_data_that_is_not_an_object_is_a_400(server: RunningEmulator, http: httpx.Client,
                                                   extra_data: Any) -> None:
    prompt = {"1": {"class_type": "PreviewAny", "inputs": {"source": "x"}}}
    response = http.post("/api/prompt", json={"prompt": prompt, "client_id": "me",
                                              "extra_data": extra_data})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_prompt" and "extra_data must be an object" in \
        error["message"] and set(error) == {"type", "message", "details", "extra_info"}
    assert http.get("/api/queue").json()["queue_pending"] == []


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary="])
def test_an_upload_without_a_boundary_is_a_400(server: RunningEmulator, http: httpx.Client,
                                               content_type: str) -> None:
    for route in ("/api/upload/image", "/api/upload/mask"):
        response = http.post(route, content=b"--x\r\n\r\nabc\r\n--x--\r\n",
                             headers={"Content-Type": content_type})
        assert response.status_code == 400, (route, response.text)


@pytest.mark.parametrize("subfolder", ["a" * 300, "nul\x00"], ids=["too long", "NUL"])
def test_a_view_subfolder_the_file_system_cannot_take_is_a_client_error(
        server: RunningEmulator, http: httpx.Client, subfolder: str) -> None:
    response = http.get("/api/view", params={"filename": "example.png", "type": "input",
                                             "subfolder": subfolder})
    # the local dialect refuses it; Cloud ignores subfolders and finds the file by name
    assert response.status_code == (400 if server.dialect == "local" else 302)


# -- JSON bodies -------------------------------------------------------------------------------


@SWEEP
@example(body={"prompt": {}, "number": 10**400})  # beyond any float
@example(body={"prompt": {"1": {"class_type": ["a list"], "inputs": {}}}})
@given(body=PROMPT_BODY)
def test_post_prompt_with_wrong_types(server: RunningEmulator, http: httpx.Client,
                                      body: Any) -> None:
    data = encoded(body)
    check(server, http.post("/api/prompt", content=data,
                            headers={"Content-Type": "application/json"}), data)


@SWEEP
@given(route=st.sampled_from(["/api/prompt", "/api/queue", "/api/history", "/api/interrupt"]),
       data=RAW)
def test_bodies_that_are_not_json(server: RunningEmulator, http: httpx.Client, route: str,
                                  data: bytes) -> None:
    check(server, http.post(route, content=data, headers={"Content-Type": "application/json"}),
          data)


@SWEEP
@given(route=st.sampled_from(["/api/queue", "/api/history", "/api/interrupt"]),
       body=MANAGE_BODY)
def test_queue_history_and_interrupt_with_wrong_types(server: RunningEmulator,
                                                      http: httpx.Client, route: str,
                                                      body: Any) -> None:
    data = encoded(body)
    check(server, http.post(route, content=data, headers={"Content-Type": "application/json"}),
          data)


@SWEEP
@given(body=st.fixed_dictionaries({}, optional={
    "latency": JSON, "http_error_count": JSON, "ws_drop_after_frames": JSON,
    "truncate_view": JSON, "no_such_fault": JSON}) | JSON)
def test_the_fault_switch_with_wrong_types(server: RunningEmulator, http: httpx.Client,
                                           body: Any) -> None:
    data = encoded(body)
    check(server, http.post("/_emulator/faults", content=data,
                            headers={"Content-Type": "application/json"}), data)
    http.post("/_emulator/faults", json={"latency": 0, "http_error_count": 0,
                                         "ws_drop_after_frames": None, "truncate_view": False})
    check(server, http.get("/api/queue"))  # a fault accepted above breaks nothing


# -- uploads -------------------------------------------------------------------------------------

CONTENT_TYPES = st.sampled_from([
    "multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=x",
    "multipart/form-data; boundary=\"\"", "multipart/mixed; boundary=x",
    "application/x-www-form-urlencoded", "application/json", "text/plain",
])
FIELD = st.text(max_size=12) | ODD


@SWEEP
@given(route=st.sampled_from(["/api/upload/image", "/api/upload/mask"]),
       content_type=CONTENT_TYPES, data=RAW | st.just(b"--x\r\nContent-Disposition: form-data; "
                                                     b"name=\"image\"\r\n\r\nabc"))
def test_uploads_that_are_not_multipart(server: RunningEmulator, http: httpx.Client, route: str,
                                        content_type: str, data: bytes) -> None:
    check(server, http.post(route, content=data, headers={"Content-Type": content_type}))


@SWEEP
@given(route=st.sampled_from(["/api/upload/image", "/api/upload/mask"]),
       fields=st.dictionaries(st.sampled_from(["type", "subfolder", "overwrite", "original_ref",
                                               "image"]), FIELD, max_size=5),
       files=st.dictionaries(st.sampled_from(["image", "type", "subfolder", "original_ref"]),
                             st.tuples(FIELD, st.binary(max_size=30)), max_size=2))
def test_uploads_with_odd_fields(server: RunningEmulator, http: httpx.Client, route: str,
                                 fields: dict[str, str], files: dict[str, tuple[str, bytes]]
                                 ) -> None:
    parts = {name: (filename, content, "application/octet-stream")
             for name, (filename, content) in files.items()}
    check(server, http.post(route, data={k: v for k, v in fields.items() if k not in files},
                            files=parts or None))


# -- queries and paths ---------------------------------------------------------------------------


@SWEEP
@given(query=st.dictionaries(st.sampled_from(["filename", "subfolder", "type", "preview",
                                              "channel"]), ODD, max_size=5))
def test_view_with_odd_queries(server: RunningEmulator, http: httpx.Client,
                               query: dict[str, str]) -> None:
    check(server, http.get("/api/view", params=query))


def test_view_of_a_real_file_with_odd_options(server: RunningEmulator,
                                              http: httpx.Client) -> None:
    """Image options on a file that is no image, and odd ones on one that is."""
    (server.output_dir / "notes.txt").write_text("not an image")
    for name in ("notes.txt", "example.png"):
        kind = "output" if name == "notes.txt" else "input"
        for options in ({"preview": "webp"}, {"preview": "jpeg;abc"}, {"channel": "a"},
                        {"channel": "rgb"}, {"preview": ";;;"}, {"channel": "x" * 3000}):
            check(server, http.get("/api/view", params={"filename": name, "type": kind,
                                                        **options}))


@SWEEP
@given(template=st.sampled_from([
    "/api/history?max_items={v}", "/api/history?offset={v}", "/api/history/{v}",
    "/api/object_info/{v}", "/api/models/{v}", "/api/view_metadata/{v}?filename={v}",
    "/api/experiment/models/{v}", "/api/jobs?limit={v}", "/api/jobs?offset={v}",
    "/api/jobs?status={v}&sort_by={v}", "/api/jobs?output_type={v}", "/api/jobs/{v}",
    "/api/job/{v}/status", "/api/history_v2?max_items={v}", "/api/history_v2?offset={v}",
    "/api/history_v2/{v}", "/api/prompt?{v}={v}", "/api/queue?{v}",
]), value=ODD)
def test_gets_with_odd_values(server: RunningEmulator, http: httpx.Client, template: str,
                              value: str) -> None:
    check(server, http.get(template.format(v=path_part(value))))


@SWEEP
@given(value=ODD)
def test_cancel_with_odd_ids(server: RunningEmulator, http: httpx.Client, value: str) -> None:
    check(server, http.post(f"/api/jobs/{path_part(value)}/cancel"))


def test_the_server_still_serves(server: RunningEmulator, http: httpx.Client) -> None:
    assert http.get("/api/queue").status_code == 200
    assert http.get("/api/object_info").status_code == 200

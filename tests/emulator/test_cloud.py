"""The cloud dialect of the emulator against Comfy Cloud's OpenAPI spec and its documentation.

Real sockets throughout: each test starts its own emulator (a few milliseconds) and talks to it
with httpx and ``websockets``. Responses are validated against ``openapi-cloud.yaml``; where the
emulator deliberately follows the docs instead of the spec (raw job states on
``/api/job/{id}/status``, millisecond ``create_time``), the tests say so and check the docs' form.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import io
import itertools
import json
import struct
import time
import urllib.parse
import uuid
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from PIL import Image
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from comfy_nb.emulator import RunningEmulator, serve
from tests import fixture_paths

from ..factories import Emulators

SPEC_PATH = fixture_paths.CLOUD_SPEC
RUNS = fixture_paths.RUNS
ERRORS = fixture_paths.COMFYUI / "errors"
SPEC_URI = "urn:comfy-cloud-openapi"
TIMEOUT = 10.0

# The raw internal states /api/job/{id}/status answers (docs §4.1), instead of the spec's enum.
RAW_STATES = ["submitted", "queued_waiting", "executing", "success", "error", "cancelled"]
EXECUTION_EVENTS = {"execution_start", "execution_cached", "executing", "progress",
                    "progress_state", "executed", "execution_success", "execution_error",
                    "execution_interrupted"}


# -- the spec as JSON Schema --------------------------------------------------------------------


def _nullable_to_type_list(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` → JSON Schema ``type: [..., "null"]`` (recursively)."""
    if isinstance(node, list):
        return [_nullable_to_type_list(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _nullable_to_type_list(value) for key, value in node.items()
           if key != "nullable"}
    if node.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            out["type"] = [*kind, "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def _load_spec() -> dict[str, Any]:
    spec: dict[str, Any] = _nullable_to_type_list(yaml.safe_load(SPEC_PATH.read_text()))
    return spec


SPEC = _load_spec()
SCHEMAS = SPEC["components"]["schemas"]


def _validator_for(document: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    registry: Registry = Registry().with_resource(
        SPEC_URI, Resource.from_contents(document, default_specification=DRAFT202012))
    schema = {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(
        schema, registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _emulator_spec() -> dict[str, Any]:
    """The spec with the two places the emulator (deliberately or by necessity) departs from:

    * ``JobStatusResponse.status``: raw internal states, as the docs say, not the spec's enum;
    * ``QueueItem``: its ``oneOf`` lists two bare ``type: object`` branches (workflow and
      metadata), so *every* object element matches both and no real queue item can satisfy
      ``oneOf``; ``anyOf`` is what the spec means (positions are checked separately).
    """
    document = copy.deepcopy(SPEC)
    schemas = document["components"]["schemas"]
    schemas["JobStatusResponse"]["properties"]["status"]["enum"] = RAW_STATES
    item_types = schemas["QueueItem"]["items"]
    item_types["anyOf"] = item_types.pop("oneOf")
    return document


EMULATOR_SPEC = _emulator_spec()


def validate(instance: Any, name: str) -> None:
    """Validate ``instance`` against ``#/components/schemas/<name>`` (with refs resolved)."""
    _validator_for(EMULATOR_SPEC, name).validate(instance)


def assert_error_response(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    validate(body, "ErrorResponse")
    return body


def test_spec_quirks_the_validation_works_around() -> None:
    """Document (and pin) the two spec problems handled above, so the workaround stays honest."""
    status_enum = SCHEMAS["JobStatusResponse"]["properties"]["status"]["enum"]
    assert "success" not in status_enum and "queued_waiting" not in status_enum
    item = [1, str(uuid.uuid4()), {"1": {}}, ["9"], {"create_time": 1}]
    strict = _validator_for(SPEC, "QueueItem")
    assert not strict.is_valid(item)  # the spec's oneOf rejects every real item
    validate(item, "QueueItem")
    assert not _validator_for(EMULATOR_SPEC, "QueueItem").is_valid([1, 2.5])
    # nullable became a type list
    assert SCHEMAS["JobStatusResponse"]["properties"]["error_message"]["type"] == [
        "string", "null"]


# -- workflows and helpers ----------------------------------------------------------------------


def invert_workflow(color: int = 0x3366CC, prefix: str = "cloud/invert",
                    size: int = 8) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": size, "height": size, "batch_size": 1, "color": color}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage",
              "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def failing_workflow() -> dict[str, Any]:
    prompt: dict[str, Any] = json.loads(
        (RUNS / "runtime_error_regex" / "post_prompt.json").read_text())["request"]["body"][
        "prompt"]
    assert prompt["1"]["inputs"]["regex_pattern"] == "(unclosed["
    return prompt


def txt2img_workflow(steps: int = 3) -> dict[str, Any]:
    prompt: dict[str, Any] = json.loads(
        (RUNS / "txt2img_random_sd15_legacy_previews" / "post_prompt.json").read_text())[
        "request"]["body"]["prompt"]
    prompt["3"]["inputs"]["steps"] = steps
    prompt["5"]["inputs"].update(width=64, height=64)
    return prompt


def png_bytes(size: tuple[int, int], color: tuple[int, ...] = (200, 30, 60),
              mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (Pillow reads the size without decoding
    the pixel data, so huge sizes cost nothing)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def wait_for(condition: Callable[[], Any], timeout: float = TIMEOUT,
             interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def submit(client: httpx.Client, prompt: dict[str, Any], **extra: Any) -> str:
    response = client.post("/api/prompt", json={"prompt": prompt, **extra})
    assert response.status_code == 200, response.text
    body = response.json()
    validate(body, "PromptResponse")
    prompt_id: str = body["prompt_id"]
    return prompt_id


def status_of(client: httpx.Client, prompt_id: str) -> dict[str, Any]:
    response = client.get(f"/api/job/{prompt_id}/status")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    validate(body, "JobStatusResponse")
    return body


def wait_terminal(client: httpx.Client, prompt_id: str) -> dict[str, Any]:
    def terminal() -> dict[str, Any] | None:
        body = status_of(client, prompt_id)
        return body if body["status"] in ("success", "error", "cancelled") else None

    result: dict[str, Any] = wait_for(terminal)
    return result


def detail_of(client: httpx.Client, prompt_id: str) -> dict[str, Any]:
    response = client.get(f"/api/jobs/{prompt_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    validate(body, "JobDetailResponse")
    return body


def jobs_list(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/api/jobs", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    validate(body, "JobsListResponse")
    for entry in body["jobs"]:
        validate(entry, "JobEntry")
    return body


def first_image(client: httpx.Client, prompt_id: str, node: str = "3") -> dict[str, Any]:
    image: dict[str, Any] = detail_of(client, prompt_id)["outputs"][node]["images"][0]
    return image


@pytest.fixture
def cloud(emulators: Emulators) -> RunningEmulator:
    return emulators("cloud", step_delay=0.01)


@pytest.fixture
def client(cloud: RunningEmulator) -> Iterator[httpx.Client]:
    assert cloud.api_key
    with httpx.Client(base_url=cloud.url, headers={"X-API-Key": cloud.api_key},
                      timeout=30.0) as http:
        yield http


@pytest.fixture
def anonymous(cloud: RunningEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cloud.url, timeout=30.0) as http:
        yield http


# -- 1. auth ------------------------------------------------------------------------------------

JOB = "00000000-0000-4000-8000-000000000000"
PRIVATE_ROUTES = [
    ("GET", "/api/prompt"), ("POST", "/api/prompt"), ("GET", f"/api/job/{JOB}/status"),
    ("GET", "/api/jobs"), ("GET", f"/api/jobs/{JOB}"), ("POST", f"/api/jobs/{JOB}/cancel"),
    ("GET", "/api/queue"), ("POST", "/api/queue"), ("POST", "/api/interrupt"),
    ("POST", "/api/history"), ("POST", "/api/upload/image"), ("POST", "/api/upload/mask"),
    ("GET", "/api/view"), ("GET", "/api/object_info"), ("GET", "/api/user"),
    ("GET", "/api/history_v2"), ("GET", f"/api/history_v2/{JOB}"),
]


@pytest.mark.parametrize(("method", "path"), PRIVATE_ROUTES)
def test_private_routes_need_the_key(cloud: RunningEmulator, method: str, path: str) -> None:
    assert cloud.api_key
    with httpx.Client(base_url=cloud.url, timeout=30.0) as http:
        for headers in ({}, {"X-API-Key": "comfyui-wrong"}, {"X-API-Key": ""},
                        {"Authorization": f"Bearer {cloud.api_key}"},
                        {"X-API-Key": cloud.api_key + "x"}):
            response = http.request(method, path, headers=headers, json={})
            body = assert_error_response(response, 401)
            assert cloud.api_key not in json.dumps(body)
        # and the right key gets past authentication (whatever the route then answers)
        allowed = http.request(method, path, headers={"X-API-Key": cloud.api_key}, json={})
        assert allowed.status_code != 401


def test_public_routes_need_no_key(anonymous: httpx.Client) -> None:
    stats = anonymous.get("/api/system_stats")
    assert stats.status_code == 200
    validate(stats.json(), "SystemStatsResponse")
    features = anonymous.get("/api/features")
    assert features.status_code == 200
    assert isinstance(features.json()["supports_preview_metadata"], bool)
    assert isinstance(features.json()["max_upload_size"], int)
    models = anonymous.get("/api/experiment/models")
    assert models.status_code == 200
    for folder in models.json():
        validate(folder, "ModelFolder")
    assert {"name": "checkpoints", "folders": ["checkpoints"]} in models.json()
    checkpoints = anonymous.get("/api/experiment/models/checkpoints")
    assert checkpoints.status_code == 200
    for model in checkpoints.json():
        validate(model, "ModelFile")
    assert_error_response(anonymous.get("/api/experiment/models/no_such_folder"), 404)


@pytest.mark.parametrize("path", ["/prompt", "/history", "/queue", "/view", "/object_info"])
def test_local_paths_are_not_served(client: httpx.Client, anonymous: httpx.Client,
                                    path: str) -> None:
    assert_error_response(client.get(path), 404)
    assert_error_response(anonymous.get(path), 404)
    assert_error_response(client.post(path, json={}), 404)


def test_unknown_api_route_and_wrong_method(client: httpx.Client,
                                            anonymous: httpx.Client) -> None:
    assert_error_response(client.get("/api/no_such_route"), 404)
    assert_error_response(anonymous.get("/api/no_such_route"), 401)
    assert_error_response(client.delete("/api/prompt"), 405)


async def test_websocket_needs_the_token(cloud: RunningEmulator) -> None:
    base = cloud.ws_url + f"?clientId={uuid.uuid4()}"
    for url in (base, base + "&token=comfyui-wrong", base + "&token="):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, open_timeout=TIMEOUT):
                pass
        assert refused.value.response.status_code == 401
    async with connect(base + f"&token={cloud.api_key}", open_timeout=TIMEOUT) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert first["type"] == "status"
        assert first["data"]["status"]["exec_info"]["queue_remaining"] == 0
        assert isinstance(first["data"]["sid"], str)


# -- 2. POST /api/prompt ------------------------------------------------------------------------


def test_post_prompt_accepts_and_runs(client: httpx.Client) -> None:
    response = client.post("/api/prompt", json={
        "prompt": invert_workflow(), "number": 5, "front": True, "client_id": "ignored",
        "extra_data": {"extra_pnginfo": {"workflow": {"note": "x"}}}})
    assert response.status_code == 200
    body = response.json()
    validate(body, "PromptResponse")
    uuid.UUID(body["prompt_id"])
    assert body["node_errors"] == {}
    assert wait_terminal(client, body["prompt_id"])["status"] == "success"
    info = client.get("/api/prompt")
    assert info.status_code == 200
    validate(info.json(), "PromptInfo")
    assert info.json()["exec_info"]["queue_remaining"] == 0


@pytest.mark.parametrize("fixture", [
    "POST_prompt_missing_required_input.json", "POST_prompt_unknown_class_type.json",
    "POST_prompt_combo_value_not_in_list.json", "POST_prompt_no_output_nodes.json",
    "POST_prompt_link_to_nonexistent_node.json", "POST_prompt_no_prompt_key.json",
])
def test_invalid_prompt_answers_the_local_error_shape(client: httpx.Client,
                                                      fixture: str) -> None:
    recorded = json.loads((ERRORS / fixture).read_text())
    assert recorded["response"]["status"] == 400
    response = client.post("/api/prompt", json=recorded["request"]["body"])
    assert response.status_code == 400, response.text
    body = response.json()
    validate(body, "PromptErrorResponse")
    expected = recorded["response"]["body"]
    assert set(body) == {"error", "node_errors"}
    assert body["error"]["type"] == expected["error"]["type"]
    assert set(body["error"]) >= {"type", "message", "details", "extra_info"}
    assert set(body["node_errors"]) == set(expected["node_errors"])
    for node_id, node_error in body["node_errors"].items():
        assert node_error["class_type"] == expected["node_errors"][node_id]["class_type"]
        assert [e["type"] for e in node_error["errors"]] == [
            e["type"] for e in expected["node_errors"][node_id]["errors"]]
    assert jobs_list(client)["pagination"]["total"] == 0


def test_malformed_prompts_are_400_not_500(client: httpx.Client) -> None:
    ui_format = json.loads((ERRORS / "POST_prompt_ui_format_wrapped_in_prompt.json").read_text())
    for body in ({"prompt": [1, 2, 3]}, {"prompt": "x"}, ui_format["request"]["body"]):
        response = client.post("/api/prompt", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["type"] == "invalid_prompt"
        assert response.json()["node_errors"] == {}
    for raw in (b"{not json", b"[1, 2]", b""):
        response = client.post("/api/prompt", content=raw,
                               headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
    assert jobs_list(client)["pagination"]["total"] == 0


def test_no_credits_is_402(cloud: RunningEmulator, client: httpx.Client) -> None:
    cloud.faults.update(no_credits=True)
    response = client.post("/api/prompt", json={"prompt": invert_workflow()})
    assert response.status_code == 402
    validate(response.json(), "PromptErrorResponse")
    assert response.json()["code"] == "insufficient_credits"
    assert jobs_list(client)["pagination"]["total"] == 0
    cloud.faults.update(no_credits=False)
    submit(client, invert_workflow())
    assert jobs_list(client)["pagination"]["total"] == 1


def test_rate_limited_is_429_with_retry_after(cloud: RunningEmulator,
                                              client: httpx.Client) -> None:
    cloud.set_faults(rate_limited=True)
    response = client.post("/api/prompt", json={"prompt": invert_workflow()})
    assert response.status_code == 429
    assert float(response.headers["Retry-After"]) > 0
    validate(response.json(), "PromptErrorResponse")
    assert jobs_list(client)["pagination"]["total"] == 0
    cloud.set_faults(rate_limited=False)
    assert client.post("/api/prompt", json={"prompt": invert_workflow()}).status_code == 200


def test_injected_http_errors_are_counted_down(cloud: RunningEmulator,
                                               client: httpx.Client) -> None:
    cloud.set_faults(http_error_count=2, http_error_status=503, retry_after=3)
    for _ in range(2):
        response = client.get("/api/user")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "3"
    assert client.get("/api/user").status_code == 200


def test_a_client_prompt_id_is_ignored_by_default(cloud: RunningEmulator,
                                                  client: httpx.Client) -> None:
    """The spec's PromptRequest has no prompt_id: the job gets the server's own id, and a
    request sent twice runs twice."""
    prompt_id = str(uuid.uuid4())
    prompt = invert_workflow(prefix="cloud/twice")
    first = submit(client, prompt, prompt_id=prompt_id)
    second = submit(client, prompt, prompt_id=prompt_id)
    assert len({first, second, prompt_id}) == 3
    uuid.UUID(first)
    uuid.UUID(second)
    for job_id in (first, second):
        assert wait_terminal(client, job_id)["status"] == "success"
    assert client.get(f"/api/jobs/{prompt_id}").status_code == 404
    assert sorted(job["id"] for job in jobs_list(client)["jobs"]) == sorted([first, second])


def test_resubmitted_prompt_id_runs_once_when_honoured() -> None:
    with serve(dialect="cloud", step_delay=0.01, cloud_honours_prompt_id=True) as cloud, \
            httpx.Client(base_url=cloud.url, headers={"X-API-Key": str(cloud.api_key)},
                         timeout=30.0) as client:
        prompt_id = str(uuid.uuid4())
        body = {"prompt": invert_workflow(prefix="cloud/once"), "prompt_id": prompt_id}
        assert submit(client, body["prompt"], prompt_id=prompt_id) == prompt_id
        again = client.post("/api/prompt", json=body)  # a retry while it may still run
        assert again.status_code == 200
        assert again.json()["prompt_id"] == prompt_id
        assert wait_terminal(client, prompt_id)["status"] == "success"
        after = client.post("/api/prompt", json=body)  # and once it has finished
        assert after.json()["prompt_id"] == prompt_id
        listing = jobs_list(client)
        assert [job["id"] for job in listing["jobs"]] == [prompt_id]
        assert listing["pagination"]["total"] == 1
        time.sleep(0.2)
        saved = list((cloud.output_dir / "cloud").glob("once_*.png"))
        assert len(saved) == 1


def test_job_detail_shows_extra_data_without_partner_keys(client: httpx.Client) -> None:
    extra = {"comfy_nb_submission": "marker-1", "extra_pnginfo": {"note": "x"},
             "api_key_comfy_org": "comfyui-partner-secret", "auth_token_comfy_org": "tok"}
    prompt = invert_workflow(prefix="cloud/extra")
    job_id = submit(client, prompt, extra_data=extra)
    workflow = detail_of(client, job_id)["workflow"]
    assert workflow == {"prompt": prompt, "extra_data": {"comfy_nb_submission": "marker-1",
                                                         "extra_pnginfo": {"note": "x"}}}
    wait_terminal(client, job_id)
    assert detail_of(client, job_id)["workflow"] == workflow


def test_a_lost_prompt_answer_still_queues_the_job(cloud: RunningEmulator,
                                                    client: httpx.Client) -> None:
    cloud.set_faults(lose_prompt_answers=1, http_error_count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/api/prompt", json={"prompt": invert_workflow(prefix="cloud/lost")})
    assert client.get("/api/jobs").status_code == 503  # the injected error waited for it
    (job,) = jobs_list(client)["jobs"]
    assert wait_terminal(client, job["id"])["status"] == "success"
    assert cloud.faults.lose_prompt_answers == 0


# -- 3. /api/job/{id}/status --------------------------------------------------------------------


def test_job_status_goes_queued_executing_success() -> None:
    with serve(dialect="cloud", tier="standard", node_delay=0.3) as cloud, httpx.Client(
            base_url=cloud.url, headers={"X-API-Key": str(cloud.api_key)}) as client:
        first = submit(client, invert_workflow(color=1))
        second = submit(client, invert_workflow(color=2))
        waiting = status_of(client, second)
        assert waiting["status"] == "queued_waiting"  # one slot, the first job holds it
        assert waiting["assigned_inference"] is None
        assert waiting["error_message"] is None
        assert waiting["id"] == second
        seen: list[str] = []

        def finished() -> bool:
            state = status_of(client, second)["status"]
            if not seen or seen[-1] != state:
                seen.append(state)
            return state in ("success", "error", "cancelled")

        wait_for(finished)
        assert seen[0] == "queued_waiting"
        assert "executing" in seen
        assert seen[-1] == "success"
        assert seen.index("queued_waiting") < seen.index("executing") < seen.index("success")
        final = status_of(client, second)
        assert final["assigned_inference"]
        created = datetime.fromisoformat(final["created_at"].replace("Z", "+00:00"))
        updated = datetime.fromisoformat(final["updated_at"].replace("Z", "+00:00"))
        assert final["created_at"].endswith("Z")
        assert updated >= created
        assert status_of(client, first)["status"] == "success"


def test_job_status_error_for_a_failing_node(client: httpx.Client) -> None:
    prompt_id = submit(client, failing_workflow())
    final = wait_terminal(client, prompt_id)
    assert final["status"] == "error"
    structured = json.loads(final["error_message"])
    validate(structured, "ExecutionError")
    assert structured["node_type"] == "RegexReplace"
    detail = detail_of(client, prompt_id)
    assert detail["status"] == "failed"
    failure = detail["execution_error"]
    validate(failure, "ExecutionError")
    assert failure["node_id"] == "1"
    assert failure["node_type"] == "RegexReplace"
    assert failure["exception_type"] == "re.error"
    assert "unterminated" in failure["exception_message"]
    assert failure["current_inputs"]["regex_pattern"] == ["(unclosed["]
    assert failure["traceback"]
    assert detail["execution_status"]["status_str"] == "error"
    assert detail["outputs"] == {}


def test_job_status_cancelled_by_cancel_endpoint() -> None:
    with serve(dialect="cloud", tier="standard", node_delay=0.5) as cloud, httpx.Client(
            base_url=cloud.url, headers={"X-API-Key": str(cloud.api_key)}) as client:
        running = submit(client, invert_workflow(color=1))
        pending = submit(client, invert_workflow(color=2))
        wait_for(lambda: status_of(client, running)["status"] == "executing")
        cancel = client.post(f"/api/jobs/{pending}/cancel")
        assert cancel.status_code == 200 and cancel.json() == {"cancelled": True}
        assert status_of(client, pending)["status"] == "cancelled"
        cancel = client.post(f"/api/jobs/{running}/cancel")
        assert cancel.json() == {"cancelled": True}
        assert wait_terminal(client, running)["status"] == "cancelled"
        # idempotent: cancelling a finished job changes nothing
        assert client.post(f"/api/jobs/{running}/cancel").json() == {"cancelled": False}
        assert status_of(client, running)["status"] == "cancelled"
        never_ran = status_of(client, pending)
        assert never_ran["assigned_inference"] is None
        assert never_ran["error_message"] is None
        detail = detail_of(client, pending)
        assert detail["status"] == "cancelled"
        assert "execution_start_time" not in detail
        assert detail_of(client, running)["status"] == "cancelled"
        assert "execution_error" not in detail_of(client, running)
        time.sleep(0.3)
        assert not list(cloud.output_dir.rglob("invert_*.png"))  # neither saved anything


def test_job_status_cancelled_by_interrupt(client: httpx.Client) -> None:
    prompt_id = submit(client, txt2img_workflow(steps=400))
    wait_for(lambda: status_of(client, prompt_id)["status"] == "executing")
    response = client.post("/api/interrupt")
    assert response.status_code == 200
    assert wait_terminal(client, prompt_id)["status"] == "cancelled"
    assert detail_of(client, prompt_id)["status"] == "cancelled"


def test_unknown_job_is_404(client: httpx.Client) -> None:
    unknown = str(uuid.uuid4())
    assert_error_response(client.get(f"/api/job/{unknown}/status"), 404)
    assert_error_response(client.get(f"/api/jobs/{unknown}"), 404)
    assert_error_response(client.post(f"/api/jobs/{unknown}/cancel"), 404)


# -- 4. /api/jobs and /api/jobs/{id} ------------------------------------------------------------


def test_jobs_list_filters_sorts_and_pages(client: httpx.Client) -> None:
    ids = [submit(client, invert_workflow(color=c, prefix=f"cloud/list{c}")) for c in range(4)]
    ids.append(submit(client, failing_workflow()))
    for prompt_id in ids:
        wait_terminal(client, prompt_id)

    everything = jobs_list(client)
    assert everything["pagination"] == {"offset": 0, "limit": 100, "total": 5,
                                        "has_more": False}
    assert [job["id"] for job in everything["jobs"]] == ids[::-1]  # newest first by default
    for job in everything["jobs"]:
        assert job["create_time"] > 10**12  # milliseconds (deliberate; the spec says seconds)
        assert job["outputs_count"] >= 0
        assert job["execution_end_time"] >= job["execution_start_time"]
    oldest_first = jobs_list(client, sort_order="asc")
    assert [job["id"] for job in oldest_first["jobs"]] == ids
    times = [job["create_time"] for job in oldest_first["jobs"]]
    assert times == sorted(times)

    completed = jobs_list(client, status="completed")
    assert {job["id"] for job in completed["jobs"]} == set(ids[:4])
    for job in completed["jobs"]:
        assert job["outputs_count"] == 1
        assert job["preview_output"]["filename"].endswith(".png")
        assert "execution_error" not in job
    failed = jobs_list(client, status="failed")
    assert [job["id"] for job in failed["jobs"]] == [ids[4]]
    validate(failed["jobs"][0]["execution_error"], "ExecutionError")
    assert jobs_list(client, status="completed,failed")["pagination"]["total"] == 5
    assert jobs_list(client, status="pending,in_progress")["pagination"]["total"] == 0
    assert jobs_list(client, output_type="image")["pagination"]["total"] == 4
    assert jobs_list(client, output_type="video")["pagination"]["total"] == 0
    assert jobs_list(client, sort_by="execution_time")["pagination"]["total"] == 5

    pages: list[str] = []
    for offset in (0, 2, 4):
        page = jobs_list(client, offset=offset, limit=2)
        assert page["pagination"]["offset"] == offset
        assert page["pagination"]["limit"] == 2
        assert page["pagination"]["total"] == 5
        assert page["pagination"]["has_more"] is (offset + 2 < 5)
        pages += [job["id"] for job in page["jobs"]]
    assert pages == ids[::-1]
    beyond = jobs_list(client, offset=10, limit=2)
    assert beyond["jobs"] == [] and beyond["pagination"]["has_more"] is False

    for params in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "x"},
                   {"sort_by": "name"}, {"sort_order": "up"}):
        assert_error_response(client.get("/api/jobs", params=params), 400)


def test_jobs_carry_workflow_id(client: httpx.Client) -> None:
    workflow_id = str(uuid.uuid4())
    tagged = submit(client, invert_workflow(color=7), workflow_id=workflow_id)
    untagged = submit(client, invert_workflow(color=8))
    wait_terminal(client, tagged)
    wait_terminal(client, untagged)
    listing = jobs_list(client, workflow_id=workflow_id)
    assert [job["id"] for job in listing["jobs"]] == [tagged]
    assert listing["jobs"][0]["workflow_id"] == workflow_id
    assert detail_of(client, tagged)["workflow_id"] == workflow_id
    assert "workflow_id" not in detail_of(client, untagged)


def test_resubmission_with_cached_upstream_nodes_runs() -> None:
    """Upstream nodes served from the worker's cache must still feed the node that runs."""
    with serve(dialect="cloud", tier="standard") as cloud, httpx.Client(
            base_url=cloud.url, headers={"X-API-Key": str(cloud.api_key)}) as client:
        first = submit(client, invert_workflow(prefix="cloud/first"))
        assert wait_terminal(client, first)["status"] == "success"
        second = submit(client, invert_workflow(prefix="cloud/second"))  # only node 3 differs
        assert wait_terminal(client, second)["status"] == "success"
        assert first_image(client, second)["filename"].startswith("second_")
        first_bytes = (cloud.output_dir / "cloud" / first_image(client, first)["filename"])
        second_bytes = (cloud.output_dir / "cloud" / first_image(client, second)["filename"])
        assert first_bytes.read_bytes() != b"" and second_bytes.is_file()


def test_job_detail_has_outputs_only_when_terminal() -> None:
    with serve(dialect="cloud", node_delay=0.4) as cloud, httpx.Client(
            base_url=cloud.url, headers={"X-API-Key": str(cloud.api_key)}) as client:
        prompt = invert_workflow(prefix="cloud/detail")
        prompt_id = submit(client, prompt)
        wait_for(lambda: status_of(client, prompt_id)["status"] == "executing")
        running = detail_of(client, prompt_id)
        assert running["status"] == "in_progress"
        for terminal_only in ("outputs", "outputs_count", "preview_output", "execution_status",
                              "execution_meta", "execution_error"):
            assert terminal_only not in running
        listed = jobs_list(client, status="in_progress")["jobs"]
        assert [job["id"] for job in listed] == [prompt_id]
        assert "outputs_count" not in listed[0]
        wait_terminal(client, prompt_id)
        done = detail_of(client, prompt_id)
        assert done["status"] == "completed"
        assert done["workflow"] == {"prompt": prompt, "extra_data": {}}
        assert done["create_time"] > 10**12 and done["update_time"] >= done["create_time"]
        images = done["outputs"]["3"]["images"]
        assert len(images) == 1 and images[0]["type"] == "output"
        assert images[0]["subfolder"] == "cloud"
        assert (cloud.output_dir / "cloud" / images[0]["filename"]).is_file()
        assert done["outputs_count"] == 1
        assert done["preview_output"]["filename"] == images[0]["filename"]
        assert done["execution_status"]["status_str"] == "success"
        assert done["execution_status"]["completed"] is True
        assert "3" in done["execution_meta"]
        assert "execution_error" not in done


# -- 5. /api/view and the storage origin --------------------------------------------------------


_colors = itertools.count(0x102030)


def finished_image(client: httpx.Client, prefix: str = "cloud/view") -> dict[str, Any]:
    """Run a fresh (never cached) 16x16 job and return its saved image descriptor."""
    prompt_id = submit(client, invert_workflow(color=next(_colors), prefix=prefix, size=16))
    assert wait_terminal(client, prompt_id)["status"] == "success"
    return first_image(client, prompt_id)


def test_view_redirects_to_storage(cloud: RunningEmulator, client: httpx.Client) -> None:
    image = finished_image(client)
    response = client.get("/api/view", params=image)
    assert response.status_code == 302
    location = response.headers["Location"]
    target, api = urllib.parse.urlsplit(location), urllib.parse.urlsplit(cloud.url)
    assert location.startswith(cloud.storage_url + "/")
    assert target.port != api.port
    assert {"X-Goog-Date", "X-Goog-Expires", "X-Goog-Signature"} <= set(
        urllib.parse.parse_qs(target.query))
    with httpx.Client(timeout=30.0) as plain:
        fetched = plain.get(location)
    assert fetched.status_code == 200
    on_disk = (cloud.output_dir / image["subfolder"] / image["filename"]).read_bytes()
    assert fetched.content == on_disk
    assert fetched.headers["content-type"] == "image/png"
    # the same file without subfolder/type (Cloud ignores them) and via the annotated name
    for params in ({"filename": image["filename"]},
                   {"filename": image["filename"], "subfolder": "elsewhere", "type": "temp"},
                   {"filename": f"{image['filename']} [output]"}):
        again = client.get("/api/view", params=params)
        assert again.status_code == 302, params
        assert httpx.get(again.headers["Location"]).content == on_disk


def test_storage_refuses_requests_carrying_the_key(cloud: RunningEmulator,
                                                   client: httpx.Client) -> None:
    key = str(cloud.api_key)
    location = client.get("/api/view", params=finished_image(client)).headers["Location"]
    leaks: list[dict[str, Any]] = [
        {"headers": {"X-API-Key": key}},
        {"headers": {"X-API-Key": "not-even-the-right-key"}},
        {"headers": {"Authorization": f"Bearer {key}"}},
        {"headers": {"Cookie": f"session={key}"}},
        {"params": {"token": key}},
    ]
    with httpx.Client(timeout=30.0) as plain:
        for leak in leaks:
            response = plain.get(location, **leak)
            assert response.status_code == 400, leak
            assert b"InvalidArgument" in response.content
            assert not response.content.startswith(b"\x89PNG")
        assert plain.get(location).status_code == 200  # the same URL, clean, still works


def test_httpx_following_the_redirect_with_the_key_fails(cloud: RunningEmulator,
                                                         client: httpx.Client) -> None:
    image = finished_image(client)
    with httpx.Client(base_url=cloud.url, headers={"X-API-Key": str(cloud.api_key)},
                      follow_redirects=True, timeout=30.0) as leaky:
        response = leaky.get("/api/view", params=image)
    assert response.history and response.history[0].status_code == 302
    assert response.status_code == 400  # httpx kept X-API-Key across origins: caught
    assert not response.content.startswith(b"\x89PNG")
    # the correct client: no redirects, then a header-less GET of Location
    with httpx.Client(base_url=cloud.url, headers={"X-API-Key": str(cloud.api_key)},
                      follow_redirects=False, timeout=30.0) as careful:
        redirect = careful.get("/api/view", params=image)
    assert redirect.status_code == 302
    content = httpx.get(redirect.headers["Location"]).content
    assert content == (cloud.output_dir / image["subfolder"] / image["filename"]).read_bytes()


def test_signed_url_expires() -> None:
    with serve(dialect="cloud", signed_url_ttl=1) as cloud, httpx.Client(
            base_url=cloud.url, headers={"X-API-Key": str(cloud.api_key)}) as client:
        image = finished_image(client)
        location = client.get("/api/view", params=image).headers["Location"]
        assert urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)[
            "X-Goog-Expires"] == ["1"]
        time.sleep(2.1)
        expired = httpx.get(location)
        assert expired.status_code == 400
        assert b"ExpiredToken" in expired.content
        fresh = client.get("/api/view", params=image).headers["Location"]
        assert httpx.get(fresh).status_code == 200


def test_tampered_signed_urls_are_refused(cloud: RunningEmulator,
                                          client: httpx.Client) -> None:
    image = finished_image(client)
    location = client.get("/api/view", params=image).headers["Location"]
    parts = urllib.parse.urlsplit(location)
    query = dict(urllib.parse.parse_qsl(parts.query))

    def url(path: str = parts.path, **changes: str | None) -> str:
        changed = {**query, **changes}
        kept = {k: v for k, v in changed.items() if v is not None}
        return urllib.parse.urlunsplit(parts._replace(path=path,
                                                      query=urllib.parse.urlencode(kept)))

    signature = query["X-Goog-Signature"]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    other = finished_image(client, prefix="cloud/other")
    other_path = parts.path.replace(image["filename"], other["filename"])
    with httpx.Client(timeout=30.0) as plain:
        assert plain.get(url()).status_code == 200
        for bad in (url(**{"X-Goog-Signature": flipped}),
                    url(**{"X-Goog-Expires": "999999"}),
                    url(**{"X-Goog-Date": "20990101T000000Z"}),
                    url(path=other_path)):
            refused = plain.get(bad)
            assert refused.status_code == 403, bad
            assert b"SignatureDoesNotMatch" in refused.content
        for missing in (url(**{"X-Goog-Signature": None}), url(**{"X-Goog-Date": "yesterday"})):
            assert plain.get(missing).status_code == 400


def test_view_of_a_file_name_with_spaces(cloud: RunningEmulator, client: httpx.Client) -> None:
    image = finished_image(client, prefix="my pics/a b")
    assert image["filename"].startswith("a b_") and image["subfolder"] == "my pics"
    location = client.get("/api/view", params=image).headers["Location"]
    fetched = httpx.get(location)
    assert fetched.status_code == 200
    assert fetched.content == (cloud.output_dir / "my pics" / image["filename"]).read_bytes()


def test_view_channel_answers_png_directly(client: httpx.Client) -> None:
    image = finished_image(client)
    for channel, mode in (("rgb", "RGB"), ("a", "RGBA"), ("alpha", "RGBA")):
        response = client.get("/api/view", params={**image, "channel": channel})
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(response.content)) as decoded:
            assert decoded.format == "PNG" and decoded.mode == mode
            assert decoded.size == (16, 16)
            if channel == "rgb":
                on_disk = client.get("/api/view", params=image).headers["Location"]
                with Image.open(io.BytesIO(httpx.get(on_disk).content)) as saved:
                    assert decoded.getpixel((3, 3)) == saved.convert("RGB").getpixel((3, 3))


def test_view_of_unknown_or_bad_files(client: httpx.Client) -> None:
    finished_image(client)  # something exists, so a glob-like name could match it
    for name in ("no_such_file.png", "*", "*.png", "invert_0000?_.png", "[a-z]*"):
        body = assert_error_response(client.get("/api/view", params={"filename": name}), 404)
        assert body["code"] == "not_found"
    for name in ("../secret.png", "/etc/passwd", "", "nul\0.png", "a\\..\\b.png"):
        assert_error_response(client.get("/api/view", params={"filename": name}), 400)
    assert_error_response(client.get("/api/view"), 400)


# -- 6. uploads ---------------------------------------------------------------------------------


def upload(client: httpx.Client, data: bytes, filename: str = "picture.png",
           route: str = "/api/upload/image", **fields: str) -> httpx.Response:
    return client.post(route, files={"image": (filename, data, "image/png")}, data=fields)


def test_upload_is_content_addressed(cloud: RunningEmulator, client: httpx.Client) -> None:
    data = png_bytes((12, 10))
    first = upload(client, data)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body == {"name": hashlib.sha256(data).hexdigest() + ".png", "subfolder": "",
                    "type": "output"}  # Cloud's default type is output (local: input)
    same = upload(client, data, filename="other name.png", overwrite="true",
                  subfolder="clipspace", type="input")
    assert same.json() == {"name": body["name"], "subfolder": "clipspace", "type": "input"}
    same_again = upload(client, data, overwrite="false")
    assert same_again.json()["name"] == body["name"]
    different = upload(client, png_bytes((12, 10), (1, 2, 3)))
    assert different.json()["name"] != body["name"]
    odd = upload(client, png_bytes((2, 2)), filename="x.P?N*G").json()["name"]
    assert odd.endswith(".png") and (cloud.input_dir / odd).is_file()
    nameless = upload(client, png_bytes((3, 3)), filename="")  # as locally: no file name, 400
    assert assert_error_response(nameless, 400)["code"] == "missing_file"
    assert (cloud.input_dir / body["name"]).read_bytes() == data
    location = client.get("/api/view", params={"filename": body["name"]}).headers["Location"]
    assert httpx.get(location).content == data


def test_upload_limits(client: httpx.Client) -> None:
    too_big = b"\0" * (50 * 1024 * 1024 + 1)
    body = assert_error_response(upload(client, too_big, filename="big.bin"), 400)
    assert body["code"] == "file_too_large"
    # refused from Content-Length alone, and chunked (no Content-Length) past the body limit
    body = assert_error_response(upload(client, too_big + b"\0" * 2**20, filename="b.bin"), 400)
    assert body["code"] == "file_too_large"
    boundary = "comfy-nb-boundary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n').encode()

    def chunked() -> Iterator[bytes]:
        yield head
        for _ in range(52):
            yield b"\0" * 2**20
        yield f"\r\n--{boundary}--\r\n".encode()

    streamed = client.post("/api/upload/image", content=chunked(), headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert "content-length" not in streamed.request.headers
    assert assert_error_response(streamed, 400)["code"] == "file_too_large"
    tall = Image.new("L", (1, 16385))
    buffer = io.BytesIO()
    tall.save(buffer, format="PNG")
    assert_error_response(upload(client, buffer.getvalue()), 400)
    assert_error_response(upload(client, png_header_only(16385, 1)), 400)
    assert upload(client, png_header_only(16384, 1)).status_code == 200  # the limit is inclusive
    assert_error_response(upload(client, png_header_only(8192, 8193)), 400)  # > 64 MP
    assert upload(client, png_header_only(8192, 8192)).status_code == 200  # exactly 64 MP
    # so big that Pillow refuses to open it (a decompression bomb): still a 400, not accepted
    assert_error_response(upload(client, png_header_only(16384, 16384)), 400)
    assert_error_response(upload(client, png_header_only(30000, 30000)), 400)
    assert_error_response(client.post("/api/upload/image", data={"image": "not a file"}), 400)
    assert_error_response(client.post("/api/upload/image", files={"other": ("x.png", b"x")}),
                          400)


def test_uploaded_image_feeds_load_image(cloud: RunningEmulator, client: httpx.Client) -> None:
    data = png_bytes((16, 12), (10, 200, 30))
    name = upload(client, data, type="input").json()["name"]
    prompt_id = submit(client, {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    })
    assert wait_terminal(client, prompt_id)["status"] == "success"
    preview = first_image(client, prompt_id, node="2")
    assert preview["type"] == "temp"
    location = client.get("/api/view", params=preview).headers["Location"]
    with Image.open(io.BytesIO(httpx.get(location).content)) as shown:
        assert shown.size == (16, 12)
        assert shown.convert("RGB").getpixel((5, 5)) == (10, 200, 30)


def test_upload_mask(cloud: RunningEmulator, client: httpx.Client) -> None:
    original = upload(client, png_bytes((8, 6), (50, 100, 150))).json()
    mask = png_bytes((8, 6), (0, 0, 0, 0), mode="RGBA")
    ref = json.dumps({"filename": original["name"], "subfolder": original["subfolder"],
                      "type": original["type"]})  # as returned: type "output"
    response = upload(client, mask, route="/api/upload/mask", original_ref=ref,
                      subfolder="clipspace", type="input")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["subfolder"] == "clipspace" and body["type"] == "input"
    metadata = body["metadata"]
    assert metadata["is_mask"] is True and metadata["mask_type"] == "painted_masked"
    assert metadata["original_hash"] == original["name"].split(".")[0]
    for value in metadata["related_files"].values():
        assert isinstance(value, str)  # the spec types these as (non-nullable) strings
    stored = (cloud.input_dir / body["name"]).read_bytes()
    assert body["name"] == hashlib.sha256(stored).hexdigest() + ".png"  # content-addressed
    with Image.open(io.BytesIO(stored)) as masked:
        assert masked.mode == "RGBA" and masked.getpixel((1, 1)) == (50, 100, 150, 0)
    # another original with the same mask must not overwrite the first result
    other = upload(client, png_bytes((8, 6), (1, 2, 3))).json()
    other_ref = json.dumps({"filename": other["name"], "type": "input"})
    second = upload(client, mask, route="/api/upload/mask", original_ref=other_ref).json()
    assert second["name"] != body["name"]
    assert (cloud.input_dir / body["name"]).read_bytes() == stored
    prompt_id = submit(client, {
        "1": {"class_type": "LoadImage", "inputs": {"image": body["name"]}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    })
    assert wait_terminal(client, prompt_id)["status"] == "success"
    for bad_ref in ("not json", json.dumps({"filename": "missing.png"}), json.dumps([1]),
                    json.dumps({"filename": "../x.png"})):
        assert_error_response(upload(client, mask, route="/api/upload/mask",
                                     original_ref=bad_ref), 400)
    assert_error_response(upload(client, mask, route="/api/upload/mask"), 400)
    wrong_size = png_bytes((3, 3), (0, 0, 0, 0), mode="RGBA")
    assert_error_response(upload(client, wrong_size, route="/api/upload/mask",
                                 original_ref=ref), 400)


# -- 7. websocket -------------------------------------------------------------------------------


async def receive_until(ws: ClientConnection, done: Callable[[Any], bool],
                        timeout: float = TIMEOUT) -> list[Any]:
    """Frames (decoded JSON dicts, or bytes) up to and including the one ``done`` accepts."""
    frames: list[Any] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        raw = await asyncio.wait_for(ws.recv(), max(remaining, 0.01))
        frame = raw if isinstance(raw, bytes) else json.loads(raw)
        frames.append(frame)
        if done(frame):
            return frames


def is_event(kind: str, prompt_id: str) -> Callable[[Any], bool]:
    def matches(frame: Any) -> bool:
        return (isinstance(frame, dict) and frame["type"] == kind
                and frame["data"].get("prompt_id") == prompt_id)

    return matches


async def open_socket(cloud: RunningEmulator, client_id: str,
                      preview_metadata: bool = False) -> ClientConnection:
    ws = await connect(f"{cloud.ws_url}?clientId={client_id}&token={cloud.api_key}",
                       open_timeout=TIMEOUT, max_size=None)
    if preview_metadata:
        await ws.send(json.dumps({"type": "feature_flags",
                                  "data": {"supports_preview_metadata": True}}))
    first = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert first["type"] == "status" and "sid" in first["data"]
    if preview_metadata:
        await receive_until(ws, lambda f: isinstance(f, dict) and f["type"] == "feature_flags")
    return ws


async def submit_async(cloud: RunningEmulator, prompt: dict[str, Any]) -> str:
    async with httpx.AsyncClient(base_url=cloud.url,
                                 headers={"X-API-Key": str(cloud.api_key)}) as http:
        response = await http.post("/api/prompt", json={"prompt": prompt})
    assert response.status_code == 200, response.text
    prompt_id: str = response.json()["prompt_id"]
    return prompt_id


async def test_every_socket_of_the_account_sees_every_job(cloud: RunningEmulator) -> None:
    sockets = [await open_socket(cloud, "client-a"), await open_socket(cloud, "client-b")]
    try:
        prompt_id = await submit_async(cloud, invert_workflow(prefix="cloud/ws"))
        for ws in sockets:
            frames = await receive_until(ws, is_event("execution_success", prompt_id))
            messages = [f for f in frames if isinstance(f, dict)]
            kinds = [m["type"] for m in messages if m["type"] in EXECUTION_EVENTS]
            assert kinds[0] == "execution_start"
            for kind in ("execution_cached", "executing", "executed", "progress_state"):
                assert kind in kinds
            assert kinds[-1] == "execution_success"
            for message in messages:
                assert message["type"] in SCHEMAS["WebSocketMessageType"]["enum"]
                if message["type"] in EXECUTION_EVENTS:
                    assert message["data"]["prompt_id"] == prompt_id, message
            executed = next(m for m in messages if m["type"] == "executed")
            assert executed["data"]["node"] == "3"
            assert executed["data"]["output"]["images"][0]["type"] == "output"
            status = [m for m in messages if m["type"] == "status"]
            assert status and "sid" not in status[-1]["data"]
    finally:
        for ws in sockets:
            await ws.close()


async def test_failed_and_interrupted_jobs_on_the_socket(cloud: RunningEmulator) -> None:
    ws = await open_socket(cloud, "observer")
    try:
        failing = await submit_async(cloud, failing_workflow())
        frames = await receive_until(ws, is_event("execution_error", failing))
        error = frames[-1]["data"]
        assert error["node_type"] == "RegexReplace" and error["exception_message"]
        slow = await submit_async(cloud, txt2img_workflow(steps=400))
        await receive_until(ws, is_event("progress", slow))
        async with httpx.AsyncClient(base_url=cloud.url,
                                     headers={"X-API-Key": str(cloud.api_key)}) as http:
            assert (await http.post("/api/interrupt")).status_code == 200
        frames = await receive_until(ws, is_event("execution_interrupted", slow))
        assert frames[-1]["data"]["prompt_id"] == slow
    finally:
        await ws.close()


def preview_kind(frame: bytes) -> int:
    kind: int = struct.unpack(">I", frame[:4])[0]
    return kind


async def test_preview_frames_type_1_by_default_type_4_when_negotiated(
        cloud: RunningEmulator) -> None:
    legacy = await open_socket(cloud, "legacy")
    modern = await open_socket(cloud, "modern", preview_metadata=True)
    try:
        prompt_id = await submit_async(cloud, txt2img_workflow(steps=3))
        old_frames = await receive_until(legacy, is_event("execution_success", prompt_id))
        new_frames = await receive_until(modern, is_event("execution_success", prompt_id))
    finally:
        await legacy.close()
        await modern.close()
    old_binary = [f for f in old_frames if isinstance(f, bytes)]
    new_binary = [f for f in new_frames if isinstance(f, bytes)]
    assert old_binary and new_binary
    assert {preview_kind(f) for f in old_binary} == {1}
    assert {preview_kind(f) for f in new_binary} == {4}
    for frame in old_binary:
        image_format = struct.unpack(">I", frame[4:8])[0]
        assert image_format in (1, 2)
        with Image.open(io.BytesIO(frame[8:])) as picture:
            assert picture.format == ("JPEG" if image_format == 1 else "PNG")
    for frame in new_binary:
        length = struct.unpack(">I", frame[4:8])[0]
        metadata = json.loads(frame[8:8 + length])
        assert metadata["prompt_id"] == prompt_id
        assert metadata["node_id"] == "3"
        for key in ("display_node_id", "real_node_id", "parent_node_id"):
            assert key in metadata
        with Image.open(io.BytesIO(frame[8 + length:])) as picture:
            assert picture.format in ("JPEG", "PNG")
    progress = [f for f in old_frames if isinstance(f, dict) and f["type"] == "progress"]
    assert [p["data"]["value"] for p in progress] == [1, 2, 3]
    assert all(p["data"]["max"] == 3 and p["data"]["prompt_id"] == prompt_id for p in progress)


# -- 8. concurrency and the queue ---------------------------------------------------------------


@pytest.mark.parametrize(("tier", "limit", "jobs"), [("creator", 3, 6), ("standard", 1, 3),
                                                     ("pro", 5, 7)])
def test_tier_concurrency(tier: str, limit: int, jobs: int) -> None:
    with serve(dialect="cloud", tier=tier, node_delay=0.15) as cloud, httpx.Client(
            base_url=cloud.url, headers={"X-API-Key": str(cloud.api_key)}) as client:
        ids = [submit(client, invert_workflow(color=n, prefix=f"cloud/c{n}"))
               for n in range(jobs)]
        for prompt_id in ids:
            assert wait_terminal(client, prompt_id)["status"] == "success"
        assert cloud.max_concurrent_jobs_seen == limit
        assert jobs_list(client, status="completed")["pagination"]["total"] == jobs


def test_concurrency_option_overrides_the_tier() -> None:
    with serve(dialect="cloud", tier="standard", concurrency=2, node_delay=0.15) as cloud, \
            httpx.Client(base_url=cloud.url, headers={"X-API-Key": str(cloud.api_key)}) as client:
        ids = [submit(client, invert_workflow(color=n)) for n in range(4)]
        for prompt_id in ids:
            wait_terminal(client, prompt_id)
        assert cloud.max_concurrent_jobs_seen == 2


def test_queue_layout_delete_and_clear() -> None:
    with serve(dialect="cloud", tier="standard", node_delay=0.5) as cloud, httpx.Client(
            base_url=cloud.url, headers={"X-API-Key": str(cloud.api_key)}) as client:
        prompts = [invert_workflow(color=n) for n in range(4)]
        ids = [submit(client, prompt) for prompt in prompts]
        wait_for(lambda: status_of(client, ids[0])["status"] == "executing")
        queue = client.get("/api/queue")
        assert queue.status_code == 200
        body = queue.json()
        validate(body, "QueueInfo")
        assert len(body["queue_running"]) == 1 and len(body["queue_pending"]) == 3
        rows = body["queue_running"] + body["queue_pending"]
        assert [row[0] for row in rows] == [1, 2, 3, 4]  # 1-based positions
        assert [row[1] for row in rows] == ids  # pending oldest first
        for row, prompt in zip(rows, prompts, strict=True):
            assert len(row) == 5
            assert row[2] == prompt  # the workflow
            assert row[3] == ["3"]  # output node ids (local: extra_data sits here)
            assert set(row[4]) == {"create_time"} and row[4]["create_time"] > 10**12
        assert client.get("/api/prompt").json()["exec_info"]["queue_remaining"] == 4

        deleted = client.post("/api/queue", json={"delete": [ids[1], ids[0], "unknown"]})
        assert deleted.status_code == 200
        validate(deleted.json(), "QueueManageResponse")
        assert deleted.json() == {"deleted": [ids[1]], "cleared": False}  # running is not pending
        assert status_of(client, ids[1])["status"] == "cancelled"
        assert status_of(client, ids[0])["status"] == "executing"
        cleared = client.post("/api/queue", json={"clear": True})
        validate(cleared.json(), "QueueManageResponse")
        assert cleared.json()["cleared"] is True
        assert sorted(cleared.json()["deleted"]) == sorted(ids[2:])
        pending = client.get("/api/queue").json()["queue_pending"]
        assert pending == []
        for body_json in ({"delete": "abc"}, {"delete": [1]}, {"clear": "yes"}, {"other": 1},
                          [1]):
            assert_error_response(client.post("/api/queue", json=body_json), 400)
        assert_error_response(client.post("/api/queue", content=b"{",
                                          headers={"Content-Type": "application/json"}), 400)
        assert wait_terminal(client, ids[0])["status"] == "success"
        assert client.get("/api/queue").json() == {"queue_running": [], "queue_pending": []}


def test_interrupt_cancels_every_running_job_only() -> None:
    with serve(dialect="cloud", tier="creator", node_delay=1.0) as cloud, httpx.Client(
            base_url=cloud.url, headers={"X-API-Key": str(cloud.api_key)}) as client:
        ids = [submit(client, invert_workflow(color=n)) for n in range(4)]
        wait_for(lambda: all(status_of(client, i)["status"] == "executing" for i in ids[:3]))
        assert status_of(client, ids[3])["status"] == "queued_waiting"
        assert len(client.get("/api/queue").json()["queue_running"]) == 3
        response = client.post("/api/interrupt")
        assert response.status_code == 200
        for prompt_id in ids[:3]:
            assert wait_terminal(client, prompt_id)["status"] == "cancelled"
        assert wait_terminal(client, ids[3])["status"] == "success"  # it was pending
        assert cloud.max_concurrent_jobs_seen == 3


def test_history_delete_and_clear(client: httpx.Client) -> None:
    ids = [submit(client, invert_workflow(color=n)) for n in range(3)]
    for prompt_id in ids:
        wait_terminal(client, prompt_id)
    response = client.post("/api/history", json={"delete": [ids[0]]})
    assert response.status_code == 200
    assert {job["id"] for job in jobs_list(client)["jobs"]} == set(ids[1:])
    assert_error_response(client.get(f"/api/jobs/{ids[0]}"), 404)
    assert client.post("/api/history", json={"clear": True}).status_code == 200
    assert jobs_list(client)["pagination"]["total"] == 0
    for body_json in ({"delete": "x"}, {"bogus": True}):
        assert_error_response(client.post("/api/history", json=body_json), 400)
    assert_error_response(client.post("/api/history", content=b"nope"), 400)


# -- 9. the rest --------------------------------------------------------------------------------


def test_user_object_info_and_system_stats(client: httpx.Client) -> None:
    user = client.get("/api/user")
    assert user.status_code == 200
    validate(user.json(), "UserResponse")
    assert user.json() == {"status": "active"}
    info = client.get("/api/object_info")
    assert info.status_code == 200
    assert len(info.json()) == 496
    for name in ("SaveImage", "KSampler", "LoadImage"):
        validate(info.json()[name], "NodeInfo")
    stats = client.get("/api/system_stats")
    validate(stats.json(), "SystemStatsResponse")
    assert stats.json()["system"]["cloud_version"]
    features = client.get("/api/features").json()
    assert features["supports_preview_metadata"] is True


def test_deprecated_history_v2(client: httpx.Client) -> None:
    first = submit(client, invert_workflow(color=1))
    wait_terminal(client, first)
    second = submit(client, invert_workflow(color=2), extra_data={
        "extra_pnginfo": {"workflow": {"nodes": []}, "note": "kept"}})
    wait_terminal(client, second)
    listing = client.get("/api/history_v2").json()
    validate(listing, "HistoryResponse")
    assert [e["prompt_id"] for e in listing["history"]] == [second, first]  # newest first
    assert listing["history"][0]["prompt"]["extra_data"]["extra_pnginfo"] == {"note": "kept"}
    page = client.get("/api/history_v2", params={"max_items": 1, "offset": 1}).json()
    assert [e["prompt_id"] for e in page["history"]] == [first]
    detail = client.get(f"/api/history_v2/{first}").json()
    validate(detail, "HistoryDetailResponse")
    assert detail[first]["prompt"]["prompt"]["2"]["class_type"] == "ImageInvert"
    assert detail[first]["outputs"]["3"]["images"]
    assert_error_response(client.get("/api/history_v2/no-such-job"), 404)

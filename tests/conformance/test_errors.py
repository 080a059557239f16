"""Conformance of failing and no-op requests against ``errors/``: every recorded request is
replayed exactly (``raw_body`` with its headers for the invalid-JSON and empty-body 500s) and the
status, recorded headers and body are compared; after each one the server must keep serving.

One parametrized test per recorded file dispatches on its name; a file in ``errors/`` no rule
here knows fails, so nothing there is silently left unchecked.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfy_nb.emulator import RunningEmulator

from ._exchanges import assert_body, assert_exchange, assert_headers, assert_keeps_serving
from ._replay import FIXTURES, load, send
from .deviations import NUMBERS, PATHS, PROMPT_IDS

COVERS = ["errors/*.json"]
RELIES_ON = (NUMBERS, PATHS, PROMPT_IDS)
ERRORS_DIR = FIXTURES / "errors"

SERVER_TROUBLE = "500 Internal Server Error\n\nServer got itself in trouble"
# Requests that make ComfyUI's handler raise (aiohttp's plain-text 500).
CRASHES = {"invalid_json_body", "empty_body", "ui_format_wrapped_in_prompt", "prompt_is_list"}
# 400 answers of POST /prompt; their bodies are deterministic and compared byte for byte.
REJECTED = {
    "unknown_class_type", "missing_class_type", "missing_required_input", "int_out_of_range_max",
    "int_out_of_range_min", "int_wrong_type_string", "combo_value_not_in_list",
    "missing_checkpoint_model", "link_to_nonexistent_node", "link_output_index_out_of_range",
    "link_type_mismatch", "load_image_missing_file", "no_output_nodes", "empty_prompt",
    "node_without_inputs_key", "no_prompt_key", "ui_format_body_as_is",
}
# 200 answers: the prompt is queued (and runs).
ACCEPTED = {"one_output_valid_one_invalid", "duplicate_prompt_id"}
# Empty 200/4xx answers, replayed as they are.
PLAIN = {"GET_misc_errors.json", "POST_queue_delete_unknown_id.json",
         "POST_history_delete_unknown_id.json", "POST_interrupt_empty_object.json",
         "POST_interrupt_prompt_id_not_running.json", "POST_interrupt_no_body.json"}
RECORDED_ROOT = "/srv/ComfyUI/"


@pytest.mark.parametrize("name", sorted(p.name for p in ERRORS_DIR.iterdir()))
def test_errors_fixture(name: str, server: RunningEmulator, http: httpx.Client) -> None:
    if name in PLAIN:
        check_plain(name, http)
    elif name.startswith("POST_prompt_") and name.endswith(".json"):
        case = name.removeprefix("POST_prompt_").removesuffix(".json")
        if case in CRASHES:
            check_crash(name, http)
        elif case in REJECTED:
            check_rejected(name, case, server, http)
        elif case in ACCEPTED:
            check_accepted(name, case, http)
        else:
            pytest.fail(f"errors/{name}: a POST /prompt case {__name__} does not know")
    else:
        pytest.fail(f"errors/{name} has no conformance check in {__name__}")
    assert_keeps_serving(http)


def test_every_rule_names_a_recorded_file() -> None:
    names = {p.name for p in ERRORS_DIR.iterdir()}
    cases = CRASHES | REJECTED | ACCEPTED
    assert {f"POST_prompt_{c}.json" for c in cases} | PLAIN == names


def check_plain(name: str, http: httpx.Client) -> None:
    recorded = load(f"errors/{name}")
    for exchange in recorded if isinstance(recorded, list) else [recorded]:
        assert_exchange(http, exchange)
        assert_keeps_serving(http)


def check_crash(name: str, http: httpx.Client) -> None:
    """ComfyUI's handler raised: aiohttp's text/plain 500, and the server carries on."""
    exchange = load(f"errors/{name}")
    assert exchange["response"]["body_text"] == SERVER_TROUBLE
    assert_exchange(http, exchange)
    assert http.get("/queue").json() == {"queue_running": [], "queue_pending": []}


def check_rejected(name: str, case: str, server: RunningEmulator, http: httpx.Client) -> None:
    """400 with the recorded body, exactly: error types, messages, details, extra_info, and the
    tracebacks of ``exception_during_validation`` (the validator reproduces them byte for byte,
    so they are not relaxed as traceback text). Nothing is queued."""
    exchange = load(f"errors/{name}")
    if case == "load_image_missing_file":
        image = exchange["request"]["body"]["prompt"]["1"]["inputs"]["image"]
        assert not (Path(server.input_dir) / image).exists()
    response = send(http, exchange["request"])
    recorded = exchange["response"]
    assert response.status_code == recorded["status"] == 400
    text = json.dumps(recorded["body"])
    # PATHS: the recording's tracebacks name /srv/ComfyUI, but its Content-Length counted the
    # capture machine's real, longer root; the body (same text as the emulator's) is compared
    # whole instead, and its length is the recorded body's own.
    sized = RECORDED_ROOT not in text
    assert_headers(response, recorded, length=sized, where=name)
    assert_body(response, recorded, name)
    assert http.get("/queue").json() == {"queue_running": [], "queue_pending": []}
    assert http.get("/history").json() == {}


def _wait_idle(http: httpx.Client, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        queue = http.get("/queue").json()
        if not queue["queue_running"] and not queue["queue_pending"]:
            return
        assert time.monotonic() < deadline, f"queue never emptied: {queue}"
        time.sleep(0.02)


def _accepted_response(response: httpx.Response, exchange: dict[str, Any]) -> dict[str, Any]:
    """200: the recorded body except the server-made ``prompt_id`` (PROMPT_IDS; a client-made
    one is kept and compared) and the counter ``number`` (NUMBERS). The length is the recorded
    body's with the emulator's id and number put in."""
    recorded = exchange["response"]
    assert response.status_code == recorded["status"] == 200
    got: dict[str, Any] = response.json()
    client_id = exchange["request"]["body"].get("prompt_id")
    if client_id is not None:
        assert got["prompt_id"] == client_id
    assert isinstance(got["number"], int)
    expected = {**recorded["body"], "prompt_id": got["prompt_id"], "number": got["number"]}
    assert json.dumps(got) == json.dumps(expected)  # key order included
    assert len(json.dumps(recorded["body"])) == int(recorded["headers"]["Content-Length"])
    assert_headers(response, {"headers": {**recorded["headers"],
                                          "Content-Length": str(len(json.dumps(expected)))}})
    return got


def check_accepted(name: str, case: str, http: httpx.Client) -> None:
    exchange = load(f"errors/{name}")
    first = _accepted_response(send(http, exchange["request"]), exchange)
    if case == "duplicate_prompt_id":
        # the same client-made prompt_id again: accepted, and its history entry overwritten
        _wait_idle(http)
        second = _accepted_response(send(http, exchange["request"]), exchange)
        assert second["prompt_id"] == first["prompt_id"]
        assert second["number"] == first["number"] + 1  # NUMBERS: consecutive, not recorded
        _wait_idle(http)
        history = http.get("/history").json()
        assert list(history) == [first["prompt_id"]]
        assert history[first["prompt_id"]]["prompt"][0] == second["number"]
        assert history[first["prompt_id"]]["status"]["status_str"] == "success"
    else:
        # only the valid output (SaveImage "2") runs; the invalid branch (3 → 4) does not
        _wait_idle(http)
        entry = http.get(f"/history/{first['prompt_id']}").json()[first["prompt_id"]]
        assert entry["prompt"][4] == ["2"]
        assert list(entry["outputs"]) == ["2"]
        assert entry["status"]["status_str"] == "success"

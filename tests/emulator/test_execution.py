"""Execution through the server: the stand-in text-to-image graph is deterministic and says what
it is, sampler progress and previews arrive per step, and a node that is not emulated fails with
an execution_error that says so."""

from __future__ import annotations

import io
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from comfy_nb.emulator import RunningEmulator, serve
from comfy_nb.workflows import bundled

from ..conformance._replay import SocketRecorder, finished, wait_history
from ..factories import Emulators


@pytest.fixture
def server(emulators: Emulators) -> RunningEmulator:
    return emulators("local", step_delay=0.0)


def _txt2img(seed: int, text: str = "a lighthouse", steps: int = 3) -> dict[str, Any]:
    workflow = bundled("txt2img")
    workflow["3"]["inputs"].update(seed=seed, steps=steps)
    workflow["5"]["inputs"].update(width=128, height=96)
    workflow["6"]["inputs"]["text"] = text
    return workflow


def _run(server: RunningEmulator, workflow: dict[str, Any],
         socket: SocketRecorder | None = None) -> dict[str, Any]:
    with httpx.Client(base_url=server.url) as http:
        body: dict[str, Any] = {"prompt": workflow}
        if socket is not None:
            body["client_id"] = "exec-client"
        response = http.post("/prompt", json=body)
        assert response.status_code == 200, response.text
        prompt_id = response.json()["prompt_id"]
        if socket is not None:
            socket.wait_for(finished(prompt_id))
        return {"prompt_id": prompt_id, **wait_history(http, prompt_id)}


def _pixels(server: RunningEmulator, entry: dict[str, Any]) -> np.ndarray:
    image = next(iter(entry["outputs"].values()))["images"][0]
    with httpx.Client(base_url=server.url) as http:
        data = http.get("/view", params=image).content
    with Image.open(io.BytesIO(data)) as picture:
        return np.asarray(picture.convert("RGB"))


def test_stand_in_is_deterministic_and_seed_sensitive(server: RunningEmulator) -> None:
    first = _pixels(server, _run(server, _txt2img(seed=1)))
    again = _pixels(server, _run(server, _txt2img(seed=1, steps=3) | {}))
    other_seed = _pixels(server, _run(server, _txt2img(seed=2)))
    other_text = _pixels(server, _run(server, _txt2img(seed=1, text="a forest")))
    assert first.shape == (96, 128, 3)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other_seed)
    assert not np.array_equal(first, other_text)
    assert first.std() > 5  # a picture, not a flat fill


def test_sampler_reports_every_step_with_a_preview(server: RunningEmulator) -> None:
    with SocketRecorder(server.ws_url, client_id="exec-client") as socket:
        _run(server, _txt2img(seed=5, steps=4), socket)
        frames = list(socket.frames)
    progress = [p["data"]["value"] for k, p in frames if k == "text" and p["type"] == "progress"]
    assert progress == [1, 2, 3, 4]
    previews = [p for k, p in frames if k == "binary"]
    assert len(previews) == 4
    for frame in previews:
        assert frame[:8] == b"\x00\x00\x00\x01\x00\x00\x00\x01"  # type 1, JPEG
        with Image.open(io.BytesIO(frame[8:])) as preview:
            assert preview.format == "JPEG"
            assert max(preview.size) == 512


@pytest.mark.parametrize("with_client_id", [True, False], ids=["client_id", "no-client_id"])
def test_previews_by_socket_and_prompt(server: RunningEmulator, with_client_id: bool) -> None:
    """A socket that negotiated ``supports_preview_metadata`` gets type 4 frames for its own
    prompts. A prompt posted without ``client_id`` is broadcast with type 1 frames to every
    socket: ComfyUI checks the feature flag of the prompt's client, and it has none."""
    flags = {"supports_preview_metadata": True}
    with SocketRecorder(server.ws_url, "exec-client", feature_flags=flags) as negotiated, \
            SocketRecorder(server.ws_url, "plain-client") as plain:
        with httpx.Client(base_url=server.url) as http:
            body: dict[str, Any] = {"prompt": _txt2img(seed=5, steps=3)}
            if with_client_id:
                body["client_id"] = "exec-client"
            prompt_id = http.post("/prompt", json=body).json()["prompt_id"]
            wait_history(http, prompt_id)
        watched = (negotiated,) if with_client_id else (negotiated, plain)
        for socket in watched:  # the queue's last status follows the last preview
            socket.wait_for(lambda m, socket=socket: m.get("type") == "status" and m["data"][
                "status"]["exec_info"]["queue_remaining"] == 0 and _after_last_step(socket))
        types = {name: [frame[3] for kind, frame in socket.frames if kind == "binary"]
                 for name, socket in (("negotiated", negotiated), ("plain", plain))}
    if with_client_id:
        assert types == {"negotiated": [4, 4, 4], "plain": []}
    else:
        assert types == {"negotiated": [1, 1, 1], "plain": [1, 1, 1]}


def _after_last_step(socket: SocketRecorder) -> bool:
    """Whether the socket has seen a message after the last sampler step's ``progress``."""
    kinds = [payload.get("type") == "progress" and payload["data"]["value"] == 3
             for kind, payload in socket.frames if kind == "text"]
    return True in kinds and kinds.index(True) < len(kinds) - 1


def test_no_previews_with_preview_method_none() -> None:
    with serve(step_delay=0.0, preview_method="none") as quiet, \
            SocketRecorder(quiet.ws_url, client_id="exec-client") as socket:
        _run(quiet, _txt2img(seed=5, steps=2), socket)
        kinds = [k for k, _ in socket.frames]
    assert "binary" not in kinds


def test_a_node_that_is_not_emulated_fails_clearly(server: RunningEmulator) -> None:
    workflow = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ImageSharpen",
              "inputs": {"image": ["1", 0], "sharpen_radius": 1, "sigma": 1.0, "alpha": 1.0}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    with SocketRecorder(server.ws_url, client_id="exec-client") as socket:
        entry = _run(server, workflow, socket)
        error = socket.wait_for(lambda m: m["type"] == "execution_error")["data"]
    assert entry["status"]["status_str"] == "error"
    assert error["node_id"] == "2" and error["node_type"] == "ImageSharpen"
    assert error["exception_type"].endswith("NotEmulatedError")
    assert "ImageSharpen is not emulated" in error["exception_message"]
    assert "real ComfyUI server or on Comfy Cloud" in error["exception_message"]
    assert error["executed"] == ["1"]


def test_partial_execution_targets_run_only_those_outputs(server: RunningEmulator) -> None:
    workflow = _txt2img(seed=3, steps=1)
    workflow["10"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    with httpx.Client(base_url=server.url) as http:
        response = http.post("/prompt", json={"prompt": workflow,
                                              "partial_execution_targets": ["10"]})
        prompt_id = response.json()["prompt_id"]
        entry = wait_history(http, prompt_id)
    assert list(entry["outputs"]) == ["10"]

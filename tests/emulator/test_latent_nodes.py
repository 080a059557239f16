"""EmptyLatentAudio and SaveLatent: the ``.latent`` file the emulator writes for the recorded
graph (comfy-api-v2 scenario 07, a real ComfyUI 0.3.64) is byte for byte the recorded one."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import numpy as np
import pytest

from comfy_nb.emulator.nodes.latent import empty_latent_audio
from tests.fixture_paths import COMFY_API_V2

from ..factories import Emulators


def recorded(seq: int) -> dict[str, Any]:
    path = COMFY_API_V2 / "07_sdk_latent_emptylatentaudio" / f"{seq:03d}.json"
    exchange: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return exchange


def test_the_saved_latent_is_the_recorded_file(emulators: Emulators) -> None:
    server = emulators("local")
    workflow = recorded(1)["request"]["body"]["json"]["workflow"]
    expected = base64.b64decode(recorded(3)["response"]["body"]["base64"])
    with httpx.Client(base_url=server.url, timeout=30) as http:
        prompt_id = http.post("/prompt", json={"prompt": workflow}).json()["prompt_id"]
        for _ in range(2000):
            entry = http.get(f"/history/{prompt_id}").json()
            if entry:
                break
            time.sleep(0.01)
        outputs = entry[prompt_id]["outputs"]
        assert outputs == {"2": {"latents": [
            {"filename": "latent_00001_.latent", "subfolder": "v2ref", "type": "output"}]}}
        saved = http.get("/view", params={"filename": "latent_00001_.latent",
                                          "subfolder": "v2ref", "type": "output"})
    assert saved.content == expected


@pytest.mark.parametrize(("seconds", "length"), [(1.18, 26), (47.6, 1024), (1.0, 22)])
def test_empty_latent_audio_has_comfyuis_length(seconds: float, length: int) -> None:
    (latent,) = empty_latent_audio(None, seconds=seconds, batch_size=2).outputs  # type: ignore[arg-type]
    assert latent["samples"].shape == (2, 64, length)
    assert latent["type"] == "audio"
    assert not np.any(latent["samples"])

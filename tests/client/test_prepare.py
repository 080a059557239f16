"""``client.prepare(workflow, ...)``: what ``submit`` would send, without sending it — overridden,
files uploaded and named, checked against the server's node definitions, random seeds
resolved — on both clients and both dialects."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from comfy_nb import WorkflowInvalid
from comfy_nb.client import PreparedPrompt
from comfy_nb.workflows import bundled

from ..factories import Clients, Emulators


@pytest.mark.parametrize("dialect", ["local", "cloud"])
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_prepare_gives_the_prompt_and_sends_nothing(mode: str, dialect: str,
                                                          emulators: Emulators,
                                                          clients: Clients) -> None:
    server = emulators(dialect)
    api = await clients.api(mode, server)
    picture = Image.new("RGB", (8, 8), (200, 10, 10))
    workflow = bundled("txt2img")
    workflow["20"] = {"class_type": "LoadImage", "inputs": {"image": "placeholder.png"}}
    workflow["21"] = {"class_type": "SaveImage",
                      "inputs": {"images": ["20", 0], "filename_prefix": "copy"}}
    prepared = await api.prepare(workflow, image=picture, seed="random", steps=3)
    assert isinstance(prepared, PreparedPrompt)
    prompt, seeds = prepared
    sampler = next(node for node in prompt.values() if node["class_type"] == "KSampler")
    assert sampler["inputs"]["steps"] == 3
    assert sampler["inputs"]["seed"] in seeds.values()
    loaded = next(node for node in prompt.values() if node["class_type"] == "LoadImage")
    name = loaded["inputs"]["image"]
    assert isinstance(name, str) and name.endswith(".png")
    uploaded = await api.download({"filename": name, "subfolder": "", "type": "input"})
    assert Image.open(io.BytesIO(uploaded)).getpixel((0, 0)) == (200, 10, 10)
    assert await api.queue() == []
    assert await api.jobs() == []


async def test_prepare_checks_the_workflow_like_submit(emulators: Emulators,
                                                       clients: Clients) -> None:
    api = await clients.api("async", emulators())
    with pytest.raises(WorkflowInvalid):
        await api.prepare(bundled("txt2img"), steps=0)
    prompt = (await api.prepare(bundled("txt2img"), steps=0, validate=False)).prompt
    assert prompt["3"]["inputs"]["steps"] == 0

"""The client on Comfy API v2, through the vendor's comfy-api-proxy over the local emulator:
detection, runs, events, outputs, uploads, validation errors, cancelling, and what v2 lacks."""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
import pytest
from PIL import Image

import comfy_nb
from comfy_nb import FeatureUnavailable, WorkflowError, WorkflowInvalid
from comfy_nb.events import NodeStarted, Preview, Progress, Queued, Started, Succeeded

from ..both_clients import WAIT, Api, make_client
from .conftest import V2Server
from .workflows import invert, kinds, load_image, txt2img


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def api(mode: str, v2: V2Server) -> Any:
    client = Api(mode, await make_client(mode, v2.url, api_key=v2.token, poll_interval=0.5))
    try:
        yield client
    finally:
        await client.close()


async def test_a_server_answering_api_v2_health_is_detected_as_v2(api: Api) -> None:
    assert api.client.dialect == "v2"
    result = await api.run(invert(), cache=False)
    assert result.status == "succeeded"
    assert len(result.files) == 1


async def test_a_url_ending_in_api_v2_means_v2(v2: V2Server) -> None:
    client = await make_client("async", v2.url + "/api/v2", api_key=v2.token)
    try:
        assert client.dialect == "v2"
        result = await client.run(invert(), cache=False)
        assert (await result.files[0].aread()).startswith(b"\x89PNG")
    finally:
        await client.aclose()


async def test_submit_then_wait_gives_the_outputs(api: Api) -> None:
    job = await api.submit(invert(), cache=False)
    result = await api.wait(job)
    data = await api.read(result.files[0])
    assert Image.open(io.BytesIO(data)).size == (8, 8)
    assert result.prompt_id == job.id


async def test_events_come_in_order_with_progress_and_previews(api: Api) -> None:
    job = await api.submit(txt2img(steps=4), cache=False)
    events = await api.events(job)
    await api.wait(job)
    kinds_seen = [type(event) for event in events]
    assert kinds_seen[0] is Queued
    assert kinds_seen[-1] is Succeeded
    assert Started in kinds_seen and Preview in kinds_seen
    started = kinds_seen.index(Started)
    assert started < kinds_seen.index(NodeStarted) < kinds_seen.index(Progress)
    steps = [event for event in events if isinstance(event, Progress) and event.max == 4]
    assert steps and all(0 < event.value <= 4 for event in steps)
    preview = next(event for event in events if isinstance(event, Preview))
    assert Image.open(io.BytesIO(preview.data)).format == "JPEG"


async def test_outputs_of_several_kinds_are_downloaded(api: Api, tmp_path: Any) -> None:
    result = await api.run(kinds(), cache=False)
    found = {file.mime_type: file for file in result.files}
    assert set(found) == {"image/webp", "audio/flac", "video/mp4"}
    assert (await api.read(found["image/webp"]))[8:12] == b"WEBP"
    assert (await api.read(found["audio/flac"])).startswith(b"fLaC")
    saved = await api.save(result, tmp_path)
    assert sorted(path.suffix for path in saved) == [".flac", ".mp4", ".webp"]
    assert all(path.stat().st_size > 0 for path in saved)


async def test_an_uploaded_image_feeds_load_image(api: Api) -> None:
    pixels = np.zeros((6, 5, 3), dtype=np.uint8)
    pixels[..., 1] = 200 + (1 if api.sync else 2)
    result = await api.run(load_image(pixels), cache=False)
    image = Image.open(io.BytesIO(await api.read(result.files[0])))
    assert image.size == (5, 6)
    assert image.convert("RGB").getpixel((0, 0)) == (0, int(pixels[0, 0, 1]), 0)


async def test_upload_image_returns_a_name_runs_can_use(api: Api) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (3, 4), (9, 8, 7 + (1 if api.sync else 0))).save(buffer, format="PNG")
    name = await api.upload_image(buffer.getvalue())
    result = await api.run(load_image(name), cache=False)
    image = Image.open(io.BytesIO(await api.read(result.files[0])))
    assert image.size == (3, 4)


async def test_a_refused_workflow_is_workflow_invalid_with_its_table(api: Api) -> None:
    broken = invert()
    broken["1"]["inputs"].update(width=-5, height="tall")
    with pytest.raises(WorkflowInvalid) as caught:
        await api.run(broken, cache=False)
    rows = caught.value.rows()
    assert {(row[0], row[3]) for row in rows} == {("1", "width"), ("1", "height")}
    assert any("smaller than min" in row[5] for row in rows)
    assert "nothing was submitted" in caught.value.notebook_lines()[0]


async def test_an_unknown_node_class_is_workflow_invalid(api: Api) -> None:
    broken = invert()
    broken["2"]["class_type"] = "NoSuchNode"
    with pytest.raises(WorkflowInvalid, match="NoSuchNode"):
        await api.run(broken, cache=False)


async def test_an_editor_format_workflow_says_it_needs_node_definitions(api: Api) -> None:
    editor = {"nodes": [{"id": 1, "type": "EmptyImage", "inputs": [], "outputs": [],
                         "widgets_values": [8, 8, 1, 0]}], "links": [], "version": 0.4}
    with pytest.raises(FeatureUnavailable, match="Export \\(API\\)"):
        await api.run(editor, cache=False)


async def test_node_definitions_are_unavailable_and_say_so(api: Api) -> None:
    with pytest.raises(FeatureUnavailable, match="interact, pre-submit validation, %comfy nodes"):
        await api.object_info()
    with pytest.raises(FeatureUnavailable, match="model lists"):
        await api.models()


async def test_extra_data_beyond_the_partner_key_is_refused_before_sending(api: Api) -> None:
    with pytest.raises(WorkflowError, match="only api_key_comfy_org"):
        await api.submit(invert(), extra_data={"client_note": "x"}, cache=False)


async def test_cancelling_a_running_job_reports_that_the_server_did_not(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    job = await api.submit(txt2img(steps=12), cache=False)
    async for event in _events(api, job):
        if isinstance(event, Progress):
            break
    with caplog.at_level(logging.WARNING, logger="comfy_nb"):
        cancelled = await api.cancel_job(job)
    assert cancelled is False
    assert f"the server did not cancel job {job.id}" in caplog.text
    result = await api.wait(job)  # it ran on, as the server let it
    assert result.status == "succeeded"


async def test_cancelling_a_queued_job_reports_that_the_server_did_not(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    first = await api.submit(txt2img(steps=10), cache=False)
    queued = await api.submit(invert(), cache=False)
    with caplog.at_level(logging.WARNING, logger="comfy_nb"):
        cancelled = await api.cancel_job(queued)
    assert cancelled is False
    assert f"the server did not cancel job {queued.id}" in caplog.text
    assert "queued" in caplog.text
    assert (await api.wait(queued)).status == "succeeded"
    assert (await api.wait(first)).status == "succeeded"


async def test_the_queue_lists_running_then_waiting_jobs(api: Api) -> None:
    first = await api.submit(txt2img(steps=10), cache=False)
    second = await api.submit(invert(), cache=False)
    queue = await api.queue()
    ids = [entry["id"] for entry in queue]
    assert ids.index(first.id) < ids.index(second.id)
    assert next(e for e in queue if e["id"] == second.id)["position"] >= 1
    await api.wait(second)
    await api.wait(first)
    listed = {job["id"]: job["status"] for job in await api.jobs(limit=10)}
    assert listed[first.id] == listed[second.id] == "succeeded"


async def test_thirty_quick_jobs_all_succeed(api: Api) -> None:
    for _ in range(30):
        result = await api.run(invert(), cache=False, timeout=WAIT)
        assert result.status == "succeeded" and len(result.files) == 1


def test_connect_cloud_with_dialect_v2_speaks_v2(v2: V2Server,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFY_NB_CLOUD_URL", v2.url)
    client = comfy_nb.connect("cloud", dialect="v2", api_key=v2.token)
    try:
        assert client.dialect == "v2"
        assert client.run(invert(), cache=False).status == "succeeded"
    finally:
        client.close()


async def _events(api: Api, job: Any) -> Any:
    """The job's events as they come (sync jobs iterate on this thread)."""
    if api.sync:
        for event in job:
            yield event
    else:
        async for event in job:
            yield event


def test_bytes_the_server_has_are_not_sent_again(v2: V2Server) -> None:
    from ..wiretap import Wiretap

    picture = io.BytesIO()
    Image.new("RGB", (7, 7), (1, 2, 3)).save(picture, format="PNG")
    data = picture.getvalue()
    tap = Wiretap(v2.url).start()
    try:
        for _ in range(2):  # two clients: nothing is remembered between them
            with comfy_nb.connect(tap.url, api_key=v2.token) as client:
                name = client.upload_image(data, name="same.png")
                assert client.run(load_image(name), cache=False).status == "succeeded"
        heads = tap.requests()
    finally:
        tap.close()
    asked = [h for h in heads if h.startswith(b"HEAD /api/v2/assets/by-hash/blake3:")]
    uploaded = [h for h in heads if h.startswith(b"POST /api/v2/assets ")]
    minted = [h for h in heads if h.startswith(b"POST /api/v2/assets/from-hash ")]
    assert (len(asked), len(uploaded), len(minted)) == (2, 1, 1)
    assert tap.sent.count(data) == 1  # the bytes went once

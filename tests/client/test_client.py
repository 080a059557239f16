"""The API client end to end against the emulator, over real sockets: every scenario through the
synchronous :class:`~comfy_nb.Client` and the :class:`~comfy_nb.AsyncClient` (the ``mode``
fixture), on a local ComfyUI and on Comfy Cloud (the ``dialect`` fixture) where the server has
the feature.

Tests are ``async def``: the :class:`~tests.both_clients.Api` adapter gives both clients the same
awaitable methods.
For the sync client it calls the blocking method directly, so every sync test also shows that
the sync client works inside a running event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import io
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import IPython.lib.pretty
import numpy as np
import pytest
from PIL import Image

import comfy_nb
from comfy_nb import (
    AsyncClient,
    AuthenticationError,
    ComfyError,
    ExecutionFailed,
    JobCancelled,
    JobLost,
    JobStatus,
    JobTimeout,
    PaymentRequiredError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    ValidationError,
    _config,
)
from comfy_nb.emulator import RunningEmulator
from comfy_nb.errors import WorkflowError, WorkflowInvalid
from comfy_nb.events import (
    Event,
    Finished,
    NodeExecuted,
    NodeStarted,
    Preview,
    Progress,
    Queued,
    Started,
    Succeeded,
)
from tests import fixture_paths

from ..both_clients import WAIT, Api, load_and_save, make_client
from ..factories import Clients, Emulators

FIXTURES = fixture_paths.COMFYUI
FAST_RETRY = RetryPolicy(backoff=0.02, max_backoff=0.1, max_retry_after=0.2)
SIGNED_URL_MARK = "X-Goog-Signature"


# -- workflows ------------------------------------------------------------------------------------


def workflow(run: str) -> dict[str, Any]:
    """The API-format prompt of a recorded run."""
    body = json.loads((FIXTURES / "runs" / run / "post_prompt.json").read_text("utf-8"))
    return copy.deepcopy(body["request"]["body"]["prompt"])


def recorded_outputs(run: str) -> dict[str, Any]:
    history = json.loads((FIXTURES / "runs" / run / "history.json").read_text("utf-8"))
    body = history["response"]["body"] if "response" in history else history
    (entry,) = body.values()
    outputs: dict[str, Any] = entry["outputs"]
    return outputs


def txt2img(steps: int = 3) -> dict[str, Any]:
    prompt = workflow("txt2img_random_sd15_preview_metadata")
    prompt["3"]["inputs"]["steps"] = steps
    return prompt


def invert(color: int = 0x336699, prefix: str = "client_test") -> dict[str, Any]:
    """EmptyImage -> ImageInvert -> SaveImage; a new ``color`` defeats the server's cache."""
    prompt = workflow("empty_invert_save")
    prompt["1"]["inputs"].update(color=color, width=8, height=8)
    prompt["3"]["inputs"]["filename_prefix"] = prefix
    return prompt


@pytest.fixture(params=["local", "cloud"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(request: pytest.FixtureRequest, dialect: str, emulators: Emulators) -> RunningEmulator:
    marker = request.node.get_closest_marker("emulator")
    options: dict[str, Any] = {"step_delay": 0.01, **(marker.kwargs if marker else {})}
    return emulators(dialect, **options)


@pytest.fixture
def connect_api(mode: str, server: RunningEmulator, clients: Clients
                ) -> Callable[..., Awaitable[Api]]:
    """Make clients of the server (closed at the end): ``await connect_api(websocket=False)``."""
    return functools.partial(clients.api, mode, server, retry=FAST_RETRY, poll_interval=0.2)


@pytest.fixture
async def api(connect_api: Callable[..., Awaitable[Api]]) -> Api:
    return await connect_api()


# -- helpers --------------------------------------------------------------------------------------


async def eventually(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Poll ``check`` until it returns something truthy (a safety deadline, not a timing)."""
    deadline = time.monotonic() + WAIT
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


def assert_secret_free(error: BaseException, secrets: list[str]) -> None:
    """No text of the error (or of what it was raised from) shows a key or a signed URL."""
    seen: BaseException | None = error
    while seen is not None:
        for text in (str(seen), repr(seen), str(getattr(seen, "body", ""))):
            assert SIGNED_URL_MARK not in text
            for secret in secrets:
                assert secret not in text
        seen = seen.__cause__ or seen.__context__


@contextlib.contextmanager
def raises(kind: type[BaseException], api: Api | list[str]) -> Iterator[Any]:
    """``pytest.raises`` that also checks the error text for secrets."""
    secrets = api.secrets if isinstance(api, Api) else api
    with pytest.raises(kind) as caught:
        yield caught
    if isinstance(caught.value, ComfyError):
        assert_secret_free(caught.value, secrets)


async def slow_job(api: Api, color: int) -> Any:
    """Submit a job that takes a while (the test's server has ``node_delay``) and wait until
    it runs."""
    job = await api.submit(invert(color))
    await eventually(lambda: _is(job, JobStatus.RUNNING), "the job runs")
    return job


async def _is(job: Any, status: JobStatus) -> bool:
    return bool(job.status is status)


async def queue_ids(api: Api) -> list[str]:
    return [entry["id"] for entry in await api.queue()]


def client_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("comfy-nb")}


# -- connecting -----------------------------------------------------------------------------------


async def test_connect_detects_the_dialect(mode: str, server: RunningEmulator) -> None:
    api = Api(mode, await make_client(mode, server.url, api_key=server.api_key), server)
    try:
        assert api.dialect == server.dialect
        assert api.url == server.url
        shown = repr(api.client)
        assert server.url in shown and server.dialect in shown
        for secret in api.secrets:
            assert secret not in shown
    finally:
        await api.close()


async def test_forced_dialect(mode: str, server: RunningEmulator) -> None:
    api = Api(mode, await make_client(mode, server.url, api_key=server.api_key,
                                      dialect=server.dialect), server)
    try:
        assert api.dialect == server.dialect
        assert (await api.run(invert(), timeout=WAIT)).images
    finally:
        await api.close()
    with pytest.raises(ValueError, match="dialect"):
        await make_client(mode, server.url, dialect="nonsense")


@pytest.mark.parametrize("forced", [False, True], ids=["detected", "forced-dialect"])
async def test_describe_names_the_server_and_its_warnings(
        mode: str, server: RunningEmulator, forced: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BINDER_LAUNCH_HOST", raising=False)
    monkeypatch.delenv("BINDER_REPO_URL", raising=False)
    monkeypatch.delenv("BINDER_REQUEST", raising=False)
    options = {"dialect": server.dialect} if forced else {}
    api = Api(mode, await make_client(mode, server.url, api_key=server.api_key, **options),
              server)
    try:
        shown = await api.describe()
        first, notice = shown.splitlines()
        version = ("Comfy Cloud comfy_nb-emulator, ComfyUI 0.3.64" if server.dialect == "cloud"
                   else "version 0.3.64")  # the Cloud emulator's cloud_version says what it is
        assert first == f"comfy_nb: connected to {server.url} ({server.dialect}, {version})"
        assert "stand-in pixels" in notice and "COMFY_URL" in notice
        monkeypatch.setenv("BINDER_REQUEST", "v2/gh/example/repo/HEAD")
        shown = await api.describe()
        assert shown.splitlines()[-1] == "⚠ This is a public Binder session: do not enter API " \
                                         "keys here."
        if api.sync:  # what IPython shows for the client; its repr stays one line
            assert IPython.lib.pretty.pretty(api.client) == shown
            assert "\n" not in repr(api.client)
        for secret in api.secrets:
            assert secret not in shown
    finally:
        await api.close()
    if api.sync:
        assert IPython.lib.pretty.pretty(api.client) == repr(api.client)  # closed: no request


async def test_connect_from_the_environment(mode: str, server: RunningEmulator,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFY_URL", server.url)
    if server.api_key:  # the key from the environment goes to Comfy Cloud only: this is it
        monkeypatch.setenv("COMFY_NB_CLOUD_URL", server.url)
        monkeypatch.setenv("COMFY_CLOUD_API_KEY", server.api_key)
    else:
        monkeypatch.delenv("COMFY_CLOUD_API_KEY", raising=False)
    api = Api(mode, await make_client(mode), server)
    try:
        assert (api.url, api.dialect) == (server.url, server.dialect)
        for secret in api.secrets:
            assert secret not in repr(api.client)
        assert (await api.run(invert(), timeout=WAIT)).images
    finally:
        await api.close()


async def test_emulator_fallback(mode: str, dialect: str, monkeypatch: pytest.MonkeyPatch,
                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("COMFY_URL", raising=False)
    monkeypatch.delenv("COMFY_CLOUD_API_KEY", raising=False)
    monkeypatch.setattr(_config, "answers_quickly", lambda url, timeout=0.3: False)
    before = client_threads()
    with caplog.at_level(logging.WARNING, logger="comfy_nb"):
        api = Api(mode, await make_client(mode, dialect=dialect), None)
    try:
        notices = [r for r in caplog.records if "embedded emulator" in r.getMessage()]
        assert len(notices) == 1 and api.url in notices[0].getMessage()
        assert api.dialect == dialect
        result = await api.run(invert(), timeout=WAIT)
        assert (await api.read(result.images[0])).startswith(b"\x89PNG")
        assert any(t.name.startswith("comfy-nb-emulator") for t in client_threads() - before)
    finally:
        await api.close()
    await eventually(lambda: _no_new_threads(before), "the emulator's threads end")


async def _no_new_threads(before: set[threading.Thread]) -> bool:
    return not {t for t in client_threads() - before if t.is_alive()}


# -- running and results --------------------------------------------------------------------------

MAGIC: dict[str, Callable[[bytes], bool]] = {
    ".png": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
    ".webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    ".mp4": lambda b: b[4:8] == b"ftyp",
    ".webm": lambda b: b.startswith(b"\x1a\x45\xdf\xa3"),
    ".flac": lambda b: b.startswith(b"fLaC"),
    ".mp3": lambda b: b.startswith(b"ID3") or b[:1] == b"\xff",
}
KINDS = {".png": "image", ".webp": "image", ".mp4": "video", ".webm": "video", ".flac": "audio",
         ".mp3": "audio"}

# run -> the inputs it loads: (node id, input, recorded file, upload options)
RUN_INPUTS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "upload_load_scale_save": ("10", "image", "gradient_64x48.png",
                               {"name": "comfy_nb_gradient.png"}),
    "load_subfolder_preview": ("10", "image", "gradient_64x48.png",
                               {"name": "grad.png", "subfolder": "comfy_nb"}),
    "audio_load_save": ("1", "audio", "sine_440hz_0.5s.wav", {"name": "comfy_nb_sine.wav"}),
}


def output_signature(outputs: dict[str, Any]) -> list[tuple[str, str, str, str, bool]]:
    """(node, key, type, extension, animated) of every file of a history ``outputs``."""
    signature = []
    for node_id, output in outputs.items():
        animated = bool(output.get("animated") and output["animated"][0])
        for key, items in output.items():
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and "filename" in item:
                    ext = Path(item["filename"]).suffix
                    signature.append((node_id, key, item["type"], ext, animated))
    return sorted(signature)


@pytest.mark.parametrize("run", [
    "empty_invert_save", "preview_image_temp", "animated_webp_png", "video_save",
    "audio_empty_save", "multi_output_text", "upload_load_scale_save", "load_subfolder_preview",
    "audio_load_save",
])
async def test_run_gives_every_kind_of_output(api: Api, run: str, tmp_path: Path) -> None:
    prompt = workflow(run)
    if run in RUN_INPUTS:
        node, name, recorded, options = RUN_INPUTS[run]
        prompt[node]["inputs"][name] = await api.upload_image(FIXTURES / "inputs" / recorded,
                                                              **options)
    result = await api.run(prompt, timeout=WAIT)

    expected = recorded_outputs(run)
    got = sorted((f.node_id, f.key, f.type, Path(f.filename).suffix, f.animated)
                 for f in result.files)
    assert got == output_signature(expected)
    assert result.text == {node: output["text"] for node, output in expected.items()
                           if "text" in output}
    for file in result.files:
        ext = Path(file.filename).suffix
        assert file.kind == KINDS[ext]
        assert file.is_preview == (file.type == "temp")
        data = await api.read(file)
        assert MAGIC[ext](data), f"{file.filename} is not a {ext} file"
    if run == "upload_load_scale_save":
        assert Image.open(io.BytesIO(await api.read(result.images[0]))).size == (128, 96)

    saved = await api.save(result, tmp_path / "out")
    assert len(saved) == len(result.files)
    assert all(path.parent == tmp_path / "out" and path.stat().st_size > 0 for path in saved)


async def test_download_to_a_file_never_sends_the_key_to_storage(api: Api,
                                                                 tmp_path: Path) -> None:
    # On Cloud /api/view redirects to a storage origin that refuses any request carrying
    # the key: these downloads succeed only if the key stays behind.
    result = await api.run(invert(), timeout=WAIT)
    (file,) = result.images
    target = await api.download(file, to=tmp_path / "copy.png")
    assert target == tmp_path / "copy.png"
    assert target.read_bytes() == await api.download(file) == await api.read(file)


async def test_missing_file_download_is_a_clean_error(api: Api) -> None:
    with raises(comfy_nb.NotFoundError, api):
        await api.download({"filename": "nope.png", "subfolder": "", "type": "output"})


# -- events ---------------------------------------------------------------------------------------


def assert_job_story(events: list[Event], prompt_id: str) -> None:
    kinds = [type(e) for e in events]
    assert kinds[:2] == [Queued, Started], kinds[:3]
    assert all(e.prompt_id == prompt_id for e in events)
    assert NodeStarted in kinds and Progress in kinds
    assert kinds.index(Started) < kinds.index(NodeExecuted)
    ends = [i for i, kind in enumerate(kinds) if kind in (Succeeded, Finished)]
    assert ends and ends[0] > kinds.index(NodeExecuted)
    executed = [e for e in events if isinstance(e, NodeExecuted)]
    assert [e.node_id for e in executed] == ["9"]
    assert executed[0].output["images"][0]["filename"].endswith(".png")


async def test_iterating_a_job_gives_its_events(api: Api) -> None:
    job = await api.submit(txt2img(steps=3))
    events = await api.events(job)
    assert_job_story(events, job.id)

    previews = [e for e in events if isinstance(e, Preview)]
    assert len(previews) == 3
    for preview in previews:
        assert (preview.prompt_id, preview.node_id) == (job.id, "3")
        assert preview.raw is not None  # type 4: metadata came with the image
        assert preview.image.size[0] > 0
    result = await api.wait(job)
    assert job.status is JobStatus.SUCCEEDED
    assert job.latest_preview == previews[-1]
    assert job.node_progress["3"] == (3, 3)
    assert {"3", "8", "9"} <= job.nodes_done
    assert job.current_node is None and job.elapsed > 0
    assert len(result.images) == 1
    # a finished job replays its events
    assert await api.events(job) == events


async def test_callbacks_see_every_event(api: Api) -> None:
    seen: list[Event] = []
    job = await api.submit(txt2img(steps=2))
    job.on(seen.append)
    await api.wait(job)
    await eventually(lambda: _has(seen, (Succeeded, Finished)), "the end event")
    assert_job_story(seen, job.id)
    assert sum(isinstance(e, Preview) for e in seen) == 2


async def _has(events: list[Event], kinds: tuple[type[Event], ...]) -> bool:
    return any(isinstance(e, kinds) for e in events)


async def test_a_failing_callback_does_not_break_the_job(api: Api,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("callback bug")

    with caplog.at_level(logging.ERROR, logger="comfy_nb"):
        job = await api.submit(txt2img(steps=2))
        job.on(broken)
        assert (await api.wait(job)).images
    assert job.status is JobStatus.SUCCEEDED
    assert "callback failed" in caplog.text


async def test_dropped_websocket_loses_nothing(connect_api: Callable[..., Awaitable[Api]],
                                               server: RunningEmulator) -> None:
    server.faults.update(ws_drop_after_frames=4)  # every socket, reconnected ones too
    api = await connect_api()
    job = await api.submit(txt2img(steps=4))
    multi = await api.submit(workflow("multi_output_text"))
    result = await api.wait(job)
    assert job.status is JobStatus.SUCCEEDED
    assert (await api.read(result.images[0])).startswith(b"\x89PNG")
    other = await api.wait(multi)
    assert other.text == {"5": ["hello, comfy"], "7": ["16"]}
    assert output_signature(other.outputs) == output_signature(
        recorded_outputs("multi_output_text"))


async def test_polling_only(connect_api: Callable[..., Awaitable[Api]],
                            server: RunningEmulator) -> None:
    api = await connect_api(websocket=False)
    job = await api.submit(txt2img(steps=2))
    result = await api.wait(job)
    assert job.status is JobStatus.SUCCEEDED and len(result.images) == 1
    assert server.state.hub.connection_count() == 0
    # no websocket: only the client's own Queued event; the iteration still ends
    assert [type(e) for e in await api.events(job)] == [Queued]


async def test_refused_websocket_falls_back_to_polling(
        connect_api: Callable[..., Awaitable[Api]], server: RunningEmulator,
        caplog: pytest.LogCaptureFixture) -> None:
    server.faults.update(ws_refuse=True)
    with caplog.at_level(logging.WARNING, logger="comfy_nb"):
        api = await connect_api()
    assert "polling" in caplog.text
    for secret in api.secrets:
        assert secret not in caplog.text
    result = await api.run(invert(), timeout=WAIT)
    assert len(result.images) == 1


# -- HTTP errors and retries ----------------------------------------------------------------------


async def test_a_503_on_submit_is_retried_and_runs_once(api: Api,
                                                        server: RunningEmulator) -> None:
    server.faults.update(http_error_count=1, http_error_status=503)
    job = await api.submit(invert())
    await api.wait(job)
    assert server.faults.http_error_count == 0  # the fault was hit
    assert server.state.number == 1  # one submission reached the server
    assert [j["id"] for j in await api.jobs(50)] == [job.id]
    started = [e for e in await api.events(job) if isinstance(e, Started)]
    assert len(started) == 1


async def test_a_429_with_retry_after_is_retried(api: Api, server: RunningEmulator) -> None:
    server.faults.update(http_error_count=1, http_error_status=429, retry_after=0.05)
    result = await api.run(invert(), timeout=WAIT)
    assert result.images and server.faults.http_error_count == 0
    assert [j["id"] for j in await api.jobs(50)] == [result.prompt_id]


async def test_persistent_server_errors_surface(api: Api, server: RunningEmulator) -> None:
    server.faults.update(http_error_count=100, http_error_status=500)
    with raises(ServerError, api) as caught:
        await api.submit(invert())
    assert caught.value.status == 500
    server.faults.update(http_error_count=0)


@pytest.mark.parametrize("dialect", ["cloud"])
async def test_wrong_key_is_an_authentication_error(mode: str, server: RunningEmulator) -> None:
    secrets = [server.api_key or "", "wrong-key-0123456789"]
    with raises(AuthenticationError, secrets):
        await make_client(mode, server.url, api_key="wrong-key-0123456789")
    with raises(AuthenticationError, secrets):
        await make_client(mode, server.url)  # no key at all
    # without a websocket the first API request finds out
    api = Api(mode, await make_client(mode, server.url, api_key="wrong-key-0123456789",
                                      websocket=False), server)
    try:
        with raises(AuthenticationError, secrets) as caught:
            await api.submit(invert())
        assert caught.value.status == 401
        with raises(AuthenticationError, secrets):
            await api.user()
    finally:
        await api.close()


@pytest.mark.parametrize("dialect", ["cloud"])
async def test_no_credits_is_a_payment_error(api: Api, server: RunningEmulator) -> None:
    server.faults.update(no_credits=True)
    with raises(PaymentRequiredError, api) as caught:
        await api.run(invert(), timeout=WAIT)
    assert caught.value.status == 402
    assert await api.jobs(10) == []


@pytest.mark.parametrize("dialect", ["cloud"])
async def test_rate_limit_is_an_error_with_retry_after(api: Api,
                                                       server: RunningEmulator) -> None:
    server.faults.update(rate_limited=True)
    with raises(RateLimitError, api) as caught:
        await api.submit(invert())
    assert caught.value.retry_after == 1.0
    server.faults.update(rate_limited=False)
    assert (await api.run(invert(), timeout=WAIT)).images


async def test_invalid_workflow_is_a_validation_error(api: Api) -> None:
    prompt = invert()
    del prompt["1"]["inputs"]["width"]
    prompt["1"]["inputs"]["height"] = -5
    expected = {("1", "EmptyImage", "width"), ("1", "EmptyImage", "height")}
    with raises(WorkflowInvalid, api) as found:  # caught before sending, by default
        await api.submit(prompt)
    assert {(p.node_id, p.class_type, p.input_name) for p in found.value.problems} == expected
    with raises(ValidationError, api) as caught:  # the server's own verdict agrees
        await api.submit(prompt, validate=False)
    problems = {(e.node_id, e.class_type, e.input_name) for e in caught.value.node_errors}
    assert problems == expected
    assert all(e.message for e in caught.value.node_errors)
    assert "width" in str(caught.value) and "EmptyImage" in str(caught.value)
    assert await queue_ids(api) == []


async def test_an_empty_editor_workflow_is_refused_before_sending(api: Api) -> None:
    with raises(WorkflowError, api) as found:
        await api.submit({"nodes": [], "links": []})
    assert "no nodes" in str(found.value)
    assert await queue_ids(api) == []


# -- execution errors -----------------------------------------------------------------------------


async def test_a_node_error_is_execution_failed(api: Api) -> None:
    job = await api.submit(workflow("runtime_error_regex"))
    with raises(ExecutionFailed, api) as caught:
        await api.wait(job)
    error = caught.value
    assert (error.prompt_id, error.node_id, error.node_type) == (job.id, "1", "RegexReplace")
    assert error.exception_type == "re.error"
    assert "unterminated character set" in error.exception_message
    assert "RegexReplace" in str(error)
    assert job.status is JobStatus.FAILED and job.error == error
    with raises(ExecutionFailed, api):
        await api.run(workflow("runtime_error_regex"), timeout=WAIT)


async def test_a_node_the_emulator_lacks_is_execution_failed(api: Api) -> None:
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8,
                                                     "batch_size": 1, "color": 0}},
        "2": {"class_type": "ImageSharpen", "inputs": {"image": ["1", 0], "sharpen_radius": 1,
                                                       "sigma": 1.0, "alpha": 1.0}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    with raises(ExecutionFailed, api) as caught:
        await api.run(prompt, timeout=WAIT)
    assert (caught.value.node_id, caught.value.node_type) == ("2", "ImageSharpen")
    assert "not emulated" in caught.value.exception_message


# -- timeouts, cancelling, the queue --------------------------------------------------------------


@pytest.mark.emulator(node_delay=0.3)
async def test_wait_timeout_leaves_the_job_running(api: Api) -> None:
    job = await api.submit(invert())
    with raises(JobTimeout, api) as caught:
        await api.wait(job, timeout=0.05)
    assert caught.value.prompt_id == job.id and isinstance(caught.value, TimeoutError)
    assert not job.done
    result = await api.wait(job)
    assert job.status is JobStatus.SUCCEEDED and result.images


@pytest.mark.emulator(node_delay=1.0)
async def test_run_timeout_cancels_the_remote_job(api: Api) -> None:
    with raises(JobTimeout, api) as caught:
        await api.run(invert(), timeout=0.4)
    prompt_id = caught.value.prompt_id
    assert caught.value.cancelled is True
    assert str(caught.value) == (f"job {prompt_id} did not finish within 0.4 s and was "
                                 "cancelled on the server")
    await eventually(lambda: _queue_empty(api), "the queue empties")
    listed = [j for j in await api.jobs(50) if j["id"] == prompt_id]
    assert all(j["status"] == JobStatus.CANCELLED.value for j in listed)


async def _queue_empty(api: Api) -> bool:
    return await queue_ids(api) == []


@pytest.mark.emulator(node_delay=0.5, tier="standard")
async def test_cancel_a_pending_job(api: Api) -> None:
    blocker = await slow_job(api, 1)
    pending = await api.submit(invert(2))
    assert await queue_ids(api) == [blocker.id, pending.id]
    assert await api.cancel_job(pending) is True
    assert await queue_ids(api) == [blocker.id]
    with raises(JobCancelled, api) as caught:
        await api.wait(pending)
    assert caught.value.prompt_id == pending.id
    assert pending.status is JobStatus.CANCELLED
    await api.wait(blocker)
    statuses = {j["id"]: j["status"] for j in await api.jobs(50)}
    assert statuses[blocker.id] == "succeeded"
    assert statuses.get(pending.id, "cancelled") == "cancelled"
    assert await api.cancel_job(pending) is False  # already over


@pytest.mark.emulator(node_delay=1.0, tier="standard")
async def test_client_cancel_of_a_pending_job_by_id(api: Api) -> None:
    blocker = await slow_job(api, 1)
    pending = await api.submit(invert(2))
    assert await api.cancel(pending.id) is True
    with raises(JobCancelled, api):
        await api.wait(pending)
    await api.cancel(blocker.id)
    with raises(JobCancelled, api):
        await api.wait(blocker)


@pytest.mark.emulator(node_delay=1.0, tier="standard")
async def test_cancel_many_leaves_none_of_them_to_start(api: Api) -> None:
    """A running job and two pending ones: the pending ones go before the running one is
    stopped, so the server never starts one of them (on a local server, one by one could)."""
    running = await slow_job(api, 1)
    pending = [await api.submit(invert(color)) for color in (2, 3)]
    ids = [running.id, *(job.id for job in pending)]
    assert sorted(await api.cancel_many(ids)) == sorted(ids)
    for job in (running, *pending):
        with raises(JobCancelled, api):
            await api.wait(job)
    await eventually(lambda: _queue_empty(api), "the queue empties")
    started = {job["id"] for job in await api.jobs(50)
               if job["status"] != JobStatus.CANCELLED.value}
    assert started.isdisjoint(ids)
    assert await api.cancel_many(ids) == []  # nothing live any more


@pytest.mark.emulator(node_delay=1.0)
async def test_cancel_a_running_job(api: Api) -> None:
    job = await slow_job(api, 1)
    assert await api.cancel_job(job) is True
    with raises(JobCancelled, api):
        await api.wait(job)
    assert job.status is JobStatus.CANCELLED
    await eventually(lambda: _queue_empty(api), "the queue empties")


@pytest.mark.emulator(node_delay=0.5, tier="standard")
async def test_queue_positions_delete_and_clear(api: Api) -> None:
    blocker = await slow_job(api, 1)
    second = await api.submit(invert(2))
    third = await api.submit(invert(3))
    fourth = await api.submit(invert(4))
    queue = await api.queue()
    assert [(e["id"], e["position"], e["running"]) for e in queue] == [
        (blocker.id, 0, True), (second.id, 1, False), (third.id, 2, False),
        (fourth.id, 3, False)]

    await api.delete([third.id])
    assert await queue_ids(api) == [blocker.id, second.id, fourth.id]
    await api.clear_queue()
    assert await queue_ids(api) == [blocker.id]
    for job in (second, third, fourth):
        with raises(JobCancelled, api):
            await api.wait(job)
        assert job.status is JobStatus.CANCELLED
    assert (await api.wait(blocker)).images


@pytest.mark.emulator(node_delay=1.0)
@pytest.mark.parametrize("by_id", [False, True], ids=["everything", "one-job"])
async def test_interrupt(api: Api, by_id: bool) -> None:
    job = await slow_job(api, 1)
    await api.interrupt(job.id if by_id else None)
    with raises(JobCancelled, api):
        await api.wait(job)
    assert job.status is JobStatus.CANCELLED


@pytest.mark.emulator(node_delay=1.0)
async def test_a_restarted_server_loses_the_job(api: Api, server: RunningEmulator) -> None:
    job = await slow_job(api, 1)
    server.restart()
    with raises(JobLost, api) as caught:
        await api.wait(job)
    assert caught.value.prompt_id == job.id
    assert not job.done


async def test_follow_a_job_by_id(api: Api) -> None:
    first = await api.submit(invert())
    await api.wait(first)
    again = await api.job(first.id)
    result = await api.wait(again)
    assert again.status is JobStatus.SUCCEEDED and len(result.images) == 1


# -- event loops ----------------------------------------------------------------------------------


def test_sync_client_works_under_asyncio_run(server: RunningEmulator) -> None:
    async def main() -> bytes:
        assert asyncio.get_running_loop().is_running()
        with comfy_nb.connect(server.url, api_key=server.api_key) as client:
            result = client.run(invert(), timeout=WAIT)
            return result.images[0].read()

    assert asyncio.run(main()).startswith(b"\x89PNG")


async def test_async_client_runs_on_the_callers_loop(server: RunningEmulator) -> None:
    before = client_threads()
    async with AsyncClient(server.url, api_key=server.api_key) as client:
        job = await client.submit(invert())
        assert job._watcher is not None
        assert job._watcher.get_loop() is asyncio.get_running_loop()
        result = await job.wait(WAIT)
        assert (await result.images[0].aread()).startswith(b"\x89PNG")
        assert client_threads() == before  # no loop thread of its own


# -- uploads --------------------------------------------------------------------------------------


def _rgb(width: int, height: int, color: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (width, height), color)


def _first_pixel(path: Path) -> Any:
    """The top left pixel of a recorded image; None without the recorded fixtures (the tests
    that upload it then fail with the reason)."""
    return Image.open(path).convert("RGB").getpixel((0, 0)) if path.exists() else None


GRADIENT = FIXTURES / "inputs" / "gradient_64x48.png"
UPLOADS: dict[str, tuple[Callable[[], Any], tuple[int, int], tuple[int, int, int]]] = {
    # source -> (the thing to upload, its size, its first pixel)
    "path": (lambda: GRADIENT, (64, 48), _first_pixel(GRADIENT)),
    "str-path": (lambda: str(GRADIENT), (64, 48), _first_pixel(GRADIENT)),
    "bytes": (lambda: GRADIENT.read_bytes(), (64, 48), _first_pixel(GRADIENT)),
    "pil": (lambda: _rgb(20, 10, (10, 200, 30)), (20, 10), (10, 200, 30)),
    "uint8": (lambda: np.full((10, 20, 3), (1, 2, 3), dtype=np.uint8), (20, 10), (1, 2, 3)),
    "float": (lambda: np.full((12, 6, 3), (0.0, 0.5, 1.0), dtype=np.float32), (6, 12),
              (0, 128, 255)),
    "batch": (lambda: np.full((1, 4, 4, 3), 0.25), (4, 4), (64, 64, 64)),
}


@pytest.mark.parametrize("source", list(UPLOADS))
async def test_upload_image(api: Api, source: str) -> None:
    make, size, pixel = UPLOADS[source]
    name = await api.upload_image(make())
    result = await api.run(load_and_save(name), timeout=WAIT)
    image = Image.open(io.BytesIO(await api.read(result.images[0]))).convert("RGB")
    assert image.size == size
    assert image.getpixel((0, 0)) == pixel


async def test_upload_audio_bytes_for_load_audio(api: Api) -> None:
    name = await api.upload_image((FIXTURES / "inputs" / "sine_440hz_0.5s.wav").read_bytes())
    assert name.endswith(".wav")
    prompt = workflow("audio_load_save")
    prompt["1"]["inputs"]["audio"] = name
    result = await api.run(prompt, timeout=WAIT)
    assert [f.kind for f in result.files] == ["audio"]


async def test_upload_names_and_subfolders(api: Api, server: RunningEmulator) -> None:
    first = await api.upload_image(_rgb(4, 4, (1, 1, 1)), name="same.png", subfolder="sub")
    second = await api.upload_image(_rgb(4, 4, (2, 2, 2)), name="same.png", subfolder="sub")
    assert first != second  # never silently replaced
    replaced = await api.upload_image(_rgb(4, 4, (3, 3, 3)), name="same.png", subfolder="sub",
                                      overwrite=True)
    result = await api.run(load_and_save(replaced), timeout=WAIT)
    image = Image.open(io.BytesIO(await api.read(result.images[0]))).convert("RGB")
    assert image.getpixel((0, 0)) == (3, 3, 3)


async def test_upload_mask(api: Api, server: RunningEmulator) -> None:
    original = await api.upload_image(_rgb(16, 16, (200, 100, 50)))
    mask = Image.new("RGBA", (16, 16), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 8, 16))
    masked = await api.upload_mask(mask, original)
    assert masked != original
    stored = [p for p in server.input_dir.rglob(Path(masked).name) if p.is_file()]
    assert len(stored) == 1
    with Image.open(stored[0]) as image:
        assert image.mode == "RGBA"
        assert image.getpixel((0, 0)) == (200, 100, 50, 0)
        assert image.getpixel((15, 0)) == (200, 100, 50, 255)
    prompt = load_and_save(masked)
    result = await api.run(prompt, timeout=WAIT)
    assert len(result.images) == 1


async def test_bad_uploads_are_refused_locally(api: Api, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await api.upload_image(tmp_path / "missing.png")
    with pytest.raises(TypeError, match="shape"):
        await api.upload_image(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="empty"):
        await api.upload_image(b"")
    for value in (12345, None, {"image": 1}):
        with pytest.raises(TypeError, match="pass a file path, bytes, a PIL image or a numpy "
                                            "array") as caught:
            await api.upload_image(value)
        assert "shape" not in str(caught.value)


# -- server information ---------------------------------------------------------------------------


async def test_object_info_is_cached(api: Api, server: RunningEmulator) -> None:
    info = await api.object_info()
    assert "KSampler" in info and "SaveImage" in info
    server.faults.update(http_error_count=1, http_error_status=503)  # the next request fails
    assert await api.object_info() is info
    assert server.faults.http_error_count == 1  # no request was made
    refreshed = await api.object_info(refresh=True)  # a GET: retried past the 503
    assert server.faults.http_error_count == 0
    assert refreshed.keys() == info.keys()


async def test_system_stats_and_user(api: Api, server: RunningEmulator) -> None:
    stats = await api.system_stats()
    assert "comfyui_version" in stats["system"]
    assert ("cloud_version" in stats["system"]) == (server.dialect == "cloud")
    user = await api.user()
    if server.dialect == "cloud":
        assert user == {"status": "active"}
    else:
        assert "local" in user["status"]


# -- closing --------------------------------------------------------------------------------------


async def test_close_releases_everything(mode: str, server: RunningEmulator) -> None:
    before = set(threading.enumerate())
    api = Api(mode, await make_client(mode, server.url, api_key=server.api_key), server)
    await api.run(invert(), timeout=WAIT)
    assert server.state.hub.connection_count() == 1
    await api.close()
    await api.close()  # idempotent
    await eventually(lambda: _no_sockets(server), "the websocket is closed")
    # the sync client owns its threads; the async one runs on the caller's loop
    leftover = set(threading.enumerate()) - before
    if mode == "async":
        leftover = {t for t in leftover if t.name.startswith("comfy-nb")}
    assert not leftover

    for call in (lambda: api.run(invert(), timeout=WAIT), api.queue, api.object_info,
                 lambda: api.upload_image(b"\x89PNG")):
        with pytest.raises(RuntimeError, match="closed"):
            await call()


async def _no_sockets(server: RunningEmulator) -> bool:
    return server.state.hub.connection_count() == 0


@pytest.mark.emulator(node_delay=1.0)
async def test_closing_while_waiting(mode: str, server: RunningEmulator) -> None:
    api = Api(mode, await make_client(mode, server.url, api_key=server.api_key), server)
    job = await slow_job(api, 1)
    if api.sync:
        waiter = asyncio.ensure_future(asyncio.to_thread(job.wait, WAIT))
    else:
        waiter = asyncio.ensure_future(job.wait(WAIT))
    await asyncio.sleep(0.05)
    await api.close()
    with pytest.raises(RuntimeError, match="closed"):
        await waiter


async def test_context_managers(mode: str, server: RunningEmulator) -> None:
    if mode == "sync":
        with comfy_nb.connect(server.url, api_key=server.api_key) as client:
            assert client.run(invert(), timeout=WAIT).images
        with pytest.raises(RuntimeError, match="closed"):
            client.queue()
    else:
        async with AsyncClient(server.url, api_key=server.api_key) as aclient:
            assert (await aclient.run(invert(), timeout=WAIT)).images
        with pytest.raises(RuntimeError, match="closed"):
            await aclient.queue()
    await eventually(lambda: _no_sockets(server), "the websocket is closed")

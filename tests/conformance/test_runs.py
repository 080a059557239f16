"""Conformance of whole runs against ``runs/``: each recorded run is replayed on a fresh emulator
the way it was recorded (same client ids, feature flags, observer socket, input files, earlier
runs that filled the cache, the requests sent while it ran), and every recorded file of the run
is compared:
the POST response, the websocket frames of the prompt's socket and of the observer, the binary
frames, the history entry, every ``/view`` response and the bytes it returned.

A run is replayed once (lazily, by the first of its files' tests) and its results are shared by the
tests of its files.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from PIL import Image, ImageSequence

from comfy_nb.emulator import RunningEmulator, serve

from ._replay import (
    FIXTURES,
    TEMP_NAME,
    SocketRecorder,
    file_pattern,
    finished,
    load,
    message_types,
    recorded_types,
    replace_ids,
    send,
    shape,
    without,
)
from .deviations import (
    ENCODED_BYTES,
    EXECUTION_SPEED,
    NUMBERS,
    PATHS,
    PROMPT_IDS,
    SET_ORDER,
    STAND_IN_PIXELS,
    TEMP_LETTERS,
    TIMESTAMPS,
    TRACEBACK_TEXT,
)

COVERS: list[str] = ["runs/**/*"]
RELIES_ON = (EXECUTION_SPEED, PATHS, TRACEBACK_TEXT, STAND_IN_PIXELS, ENCODED_BYTES, TEMP_LETTERS,
             TIMESTAMPS, SET_ORDER, PROMPT_IDS, NUMBERS)

RUNS_DIR = FIXTURES / "runs"
RUNS = sorted(p.name for p in RUNS_DIR.iterdir() if p.is_dir())
RUN_FILES = [(run, f.name) for run in RUNS for f in sorted((RUNS_DIR / run).iterdir())]

# Runs of the random-weights checkpoint: recorded with --preview-method latent2rgb. Every other run
# is model-free and was recorded with --preview-method none (README "Where they come from").
MODEL_RUNS = {
    "txt2img_random_sd15_legacy_previews",
    "txt2img_random_sd15_preview_metadata",
    "txt2img_random_sd15_warm_seed_change",
    "txt2img_interrupt_mid_sampling",
    "no_client_id_txt2img_interrupt",
}
# Runs that were recorded on a server on which these runs had happened before (cache, counters).
# Replaying them first makes the output file counters match the recording too, so saved file
# names are compared exactly here (only the temp letters differ: TEMP_LETTERS).
PREREQUISITES = {
    "cache_second_run_identical": ["cache_first_run"],
    "cache_partial_change": ["cache_first_run", "cache_second_run_identical"],
    "save_image_websocket_metadata": ["save_image_websocket_legacy"],
    "txt2img_random_sd15_preview_metadata": ["txt2img_random_sd15_legacy_previews"],
    "txt2img_random_sd15_warm_seed_change": [
        "txt2img_random_sd15_legacy_previews", "txt2img_random_sd15_preview_metadata"],
    "txt2img_interrupt_mid_sampling": ["txt2img_random_sd15_legacy_previews"],
}
# EXECUTION_SPEED: delays that make the interrupt (or the slow prompt ahead) land where recorded.
STEP_DELAY = {"txt2img_interrupt_mid_sampling": 0.2, "no_client_id_txt2img_interrupt": 0.2}
NODE_DELAY = {"interrupt_global": 0.2, "runtime_error_deleted_input": 0.4}
# When the requests of during.json were sent: after this message on the prompt's socket.
INTERRUPT_AFTER = {
    # after progress 2 (of 20 / of 8): the interrupt lands in step 3
    "txt2img_interrupt_mid_sampling": lambda m: m["type"] == "progress" and m["data"]["value"] == 2,
    "no_client_id_txt2img_interrupt": lambda m: m["type"] == "progress" and m["data"]["value"] == 2,
    # after node 11 finished: the interrupt lands at node 12, after its `executing`
    "interrupt_global": lambda m: m["type"] == "executing" and m["data"].get("node") == "12",
}
# Input files the runs load (README "inputs/").
GRADIENT = FIXTURES / "inputs" / "gradient_64x48.png"
INPUT_FILES = {
    "comfy_nb_gradient.png": GRADIENT,
    "comfy_nb/grad.png": GRADIENT,
    "comfy_nb_sine.wav": FIXTURES / "inputs" / "sine_440hz_0.5s.wav",
    "comfy_nb_ephemeral.png": GRADIENT,
}
EPHEMERAL = "comfy_nb_ephemeral.png"
RECORDED_ROOT = "/srv/ComfyUI"
WEBSOCKET_IMAGE_RUNS = {"save_image_websocket_legacy", "save_image_websocket_metadata"}


@dataclass
class Replay:
    """Everything the emulator answered during one replayed run."""

    run: str
    post_status: int
    post_body: Any
    prompt_id: str
    ids: dict[str, str]  # recorded prompt ids -> the emulator's
    frames: list[tuple[str, Any]]
    observer_frames: list[tuple[str, Any]] | None
    history_status: int
    history: Any
    history_while_running: Any = None
    during: list[httpx.Response] = field(default_factory=list)
    views: list[httpx.Response] = field(default_factory=list)
    view_names: list[str] = field(default_factory=list)  # the emulator's file of each view
    input_dir: Path = Path()
    ephemeral_missing_at_run: bool = False


_REPLAYS: dict[str, Replay | BaseException] = {}


def replayed(run: str) -> Replay:
    """The run's replay, made by the first test that needs it (a failed replay fails every test
    of the run with the same error, without replaying again)."""
    if run not in _REPLAYS:
        try:
            _REPLAYS[run] = _replay(run)
        except Exception as exc:
            _REPLAYS[run] = exc
    result = _REPLAYS[run]
    if isinstance(result, BaseException):
        raise AssertionError(f"replaying runs/{run} failed: {result!r}") from result
    return result


# -- replaying --------------------------------------------------------------------------------


def _wait_history(http: httpx.Client, prompt_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry: dict[str, Any] = http.get(f"/history/{prompt_id}").json()
        if entry:
            return entry
        time.sleep(0.02)
    raise TimeoutError(f"{prompt_id} never reached history")


def _recorded_output_orders() -> dict[str, list[str]]:
    orders = {}
    for run in RUNS:
        for entry in load(f"runs/{run}/history.json")["response"]["body"].values():
            orders[json.dumps(entry["prompt"][2], sort_keys=True)] = entry["prompt"][4]
    return orders


def _use_recorded_output_order(server: RunningEmulator) -> None:
    """SET_ORDER: ComfyUI's outputs_to_execute comes from a Python set, whose order changes
    between server starts, and that order decides which output branch runs first. The replay
    hands the emulator the recorded order of each recorded prompt, so that everything that
    follows from it (the message sequence, history output order) is compared exactly."""
    orders = _recorded_output_orders()
    enqueue = server.state.enqueue

    def enqueue_in_recorded_order(item: Any) -> None:
        order = orders.get(json.dumps(item.prompt, sort_keys=True))
        if order is not None and sorted(order) == sorted(item.outputs_to_execute):
            item.outputs_to_execute = list(order)
        enqueue(item)

    server.state.enqueue = enqueue_in_recorded_order  # type: ignore[method-assign]


def _run_before(http: httpx.Client, run: str) -> None:
    """An earlier run on the same server, without sockets (it fills caches and counters)."""
    response = send(http, load(f"runs/{run}/post_prompt.json")["request"])
    assert response.status_code == 200, response.text
    _wait_history(http, response.json()["prompt_id"])


def _start_slow_prompt(server: RunningEmulator, http: httpx.Client) -> tuple[str, SocketRecorder]:
    """runtime_error_deleted_input: a slow prompt without client_id (nodes 1, 10, 99, 100, as in
    the recorded progress_state) runs ahead; the recorded socket connected while node 1 ran."""
    slow = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 16767257}},
        "10": {"class_type": "ImageBlur",
               "inputs": {"image": ["1", 0], "blur_radius": 31, "sigma": 10.0}},
        "99": {"class_type": "ImageScale",
               "inputs": {"image": ["10", 0], "upscale_method": "nearest-exact", "width": 32,
                          "height": 32, "crop": "disabled"}},
        "100": {"class_type": "PreviewImage", "inputs": {"images": ["99", 0]}},
    }
    helper = SocketRecorder(server.ws_url, client_id="slow-prompt-watcher").__enter__()
    response = http.post("/prompt", json={"prompt": slow})
    assert response.status_code == 200, response.text
    slow_id: str = response.json()["prompt_id"]
    helper.wait_for(lambda m: m["type"] == "progress_state"
                    and m["data"]["nodes"].get("1", {}).get("state") == "running")
    return slow_id, helper


def _other_prompt_ids(frames: list[dict[str, Any]], prompt_id: str) -> list[str]:
    seen: list[str] = []
    for frame in frames:
        if frame["kind"] != "text":
            continue
        other = frame["msg"]["data"].get("prompt_id")
        if other and other != prompt_id and other not in seen:
            seen.append(other)
    return seen


def _output_files(outputs: dict[str, Any]) -> dict[tuple[str, str, int], dict[str, Any]]:
    files = {}
    for node_id, output in outputs.items():
        for key, items in output.items():
            for index, item in enumerate(items):
                if isinstance(item, dict) and "filename" in item:
                    files[(node_id, key, index)] = item
    return files


def _replay(run: str) -> Replay:
    base = f"runs/{run}"
    post_rec = load(f"{base}/post_prompt.json")
    ws_rec = load(f"{base}/ws_messages.json")
    observer_path = RUNS_DIR / run / "ws_messages_observer.json"
    observer_rec = load(f"{base}/ws_messages_observer.json") if observer_path.exists() else None
    during_path = RUNS_DIR / run / "during.json"
    during_rec = load(f"{base}/during.json") if during_path.exists() else None
    options: dict[str, Any] = {
        "step_delay": STEP_DELAY.get(run, 0.02),
        "node_delay": NODE_DELAY.get(run, 0.0),
        "preview_method": "auto" if run in MODEL_RUNS else "none",
    }
    recorded_id = post_rec["response"]["body"]["prompt_id"]
    with serve(dialect="local", **options) as server, \
            httpx.Client(base_url=server.url, timeout=30.0) as http, \
            contextlib.ExitStack() as stack:
        _use_recorded_output_order(server)
        for name, source in INPUT_FILES.items():
            target = server.input_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
        for before in PREREQUISITES.get(run, []):
            _run_before(http, before)
        ids: dict[str, str] = {}
        if run == "runtime_error_deleted_input":
            slow_id, helper = _start_slow_prompt(server, http)
            stack.callback(helper.close)
            (recorded_slow,) = _other_prompt_ids(ws_rec["frames"], recorded_id)
            ids[recorded_slow] = slow_id
        main = stack.enter_context(SocketRecorder(
            server.ws_url, ws_rec["client_id"], ws_rec.get("feature_flags_sent")))
        if run == "runtime_error_deleted_input":
            # recorded: the slow prompt moved on to node 10 before this prompt was posted
            main.wait_for(lambda m: m["type"] == "progress_state"
                          and m["data"]["nodes"].get("10", {}).get("state") == "running")
        observer = None
        if observer_rec is not None:
            observer = stack.enter_context(SocketRecorder(server.ws_url, observer_rec["client_id"]))
        post = send(http, post_rec["request"])
        prompt_id = post.json()["prompt_id"] if post.status_code == 200 else ""
        ids[recorded_id] = prompt_id
        ephemeral = server.input_dir / EPHEMERAL
        if run == "runtime_error_deleted_input":
            ephemeral.unlink()  # right after POST returned 200, as recorded
        history_while_running = None
        during: list[httpx.Response] = []
        if isinstance(during_rec, list):
            main.wait_for(INTERRUPT_AFTER[run], timeout=30)
            history_while_running = http.get(f"/history/{prompt_id}").json()
            for exchange in during_rec:
                request = exchange["request"]
                body = request.get("body")
                if body is not None:
                    during.append(send(http, request, body=replace_ids(body, ids)))
                else:
                    during.append(send(http, request))
        if "client_id" in post_rec["request"]["body"]:
            main.wait_for(finished(prompt_id), timeout=30)
        else:  # nothing tells this socket that the prompt ended: poll history, as recorded
            _wait_history(http, prompt_id)
        main.wait_quiet(0.2)
        if observer is not None:
            observer.wait_quiet(0.1)
        ephemeral_missing = not ephemeral.exists()
        history = http.get(f"/history/{prompt_id}")
        recorded_history = load(f"{base}/history.json")["response"]["body"][recorded_id]
        mine = history.json().get(prompt_id, {}) if history.status_code == 200 else {}
        file_map = {}
        actual_files = _output_files(mine.get("outputs", {}))
        for key, item in _output_files(recorded_history["outputs"]).items():
            if key in actual_files:
                file_map[(item["filename"], item["subfolder"], item["type"])] = actual_files[key]
        views: list[httpx.Response] = []
        view_names: list[str] = []
        views_path = RUNS_DIR / run / "view_responses.json"
        for exchange in load(f"{base}/view_responses.json") if views_path.exists() else []:
            path = exchange["request"]["path"]
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query,
                                                keep_blank_values=True))
            item = file_map.get((query["filename"], query["subfolder"], query["type"]))
            name = item["filename"] if item is not None else query["filename"]
            query["filename"] = name
            view_names.append(name)
            views.append(http.get("/view?" + urllib.parse.urlencode(query)))
        return Replay(
            run=run,
            post_status=post.status_code,
            post_body=post.json() if post.status_code == 200 else post.text,
            prompt_id=prompt_id,
            ids=ids,
            frames=list(main.frames),
            observer_frames=list(observer.frames) if observer is not None else None,
            history_status=history.status_code,
            history=history.json(),
            history_while_running=history_while_running,
            during=during,
            views=views,
            view_names=view_names,
            input_dir=server.input_dir,
            ephemeral_missing_at_run=ephemeral_missing,
        )


# -- normalising --------------------------------------------------------------------------------


def typed(value: Any) -> Any:
    """A JSON value in which 1, 1.0 and true differ (Python's == would not tell them apart)."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, float):
        return ("float", value)
    return value


def file_names(value: Any) -> Any:
    """TEMP_LETTERS: temp file names without their random letters and counter."""
    if isinstance(value, dict):
        out = {k: file_names(v) for k, v in value.items()}
        name = value.get("filename")
        if isinstance(name, str) and TEMP_NAME.match(name):
            out["filename"] = file_pattern(name)  # TEMP_LETTERS
        return out
    if isinstance(value, list):
        return [file_names(v) for v in value]
    return value


def normalized_event(event: str, data: dict[str, Any], replay: Replay,
                     recorded: bool) -> dict[str, Any]:
    """An event's data as compared: recorded ids mapped (PROMPT_IDS), TIMESTAMPS dropped,
    temp names (TEMP_LETTERS), SET_ORDER lists sorted, PATHS mapped, TRACEBACK_TEXT checked
    for its form only."""
    if recorded:
        data = replace_ids(data, replay.ids)
    data = without(data, {"timestamp"})  # TIMESTAMPS
    data = file_names(data)
    if event in ("execution_error", "execution_interrupted"):
        for key in ("executed", "current_outputs"):  # SET_ORDER
            if key in data:
                data[key] = sorted(data[key])
    if event == "execution_error":
        traceback = data.pop("traceback")  # TRACEBACK_TEXT: the emulator's own frames
        assert isinstance(traceback, list) and traceback, traceback
        assert all(isinstance(line, str) for line in traceback), traceback
        if recorded:  # PATHS: the recording server's folders are the emulator's
            data["exception_message"] = data["exception_message"].replace(
                f"{RECORDED_ROOT}/input", str(replay.input_dir))
    return data


def compare_text(recorded: dict[str, Any], actual: dict[str, Any], replay: Replay,
                 where: str) -> list[str]:
    problems = []
    if list(recorded) != list(actual):
        problems.append(f"{where}: message keys {list(actual)} != recorded {list(recorded)}")
    event = recorded["type"]
    rec_data, act_data = recorded.get("data", {}), actual.get("data", {})
    if list(rec_data) != list(act_data):
        problems.append(f"{where} {event}: fields {list(act_data)} != recorded {list(rec_data)}")
    expected = normalized_event(event, rec_data, replay, recorded=True)
    got = normalized_event(event, act_data, replay, recorded=False)
    if typed(expected) != typed(got):
        problems.append(f"{where} {event}: {json.dumps(got)[:600]}\n   recorded (normalized): "
                        f"{json.dumps(expected)[:600]}")
    return problems


def recorded_first_frame(run: str) -> tuple[dict[str, Any] | None, Image.Image | None]:
    """The metadata (type 4) and image of the run's binary_frame_0.bin, if it has one."""
    path = RUNS_DIR / run / "binary_frame_0.bin"
    if not path.exists():
        return None, None
    data = path.read_bytes()
    event_type, second = struct.unpack(">II", data[:8])
    if event_type == 4:
        return json.loads(data[8:8 + second]), Image.open(io.BytesIO(data[8 + second:]))
    if event_type == 1:
        return None, Image.open(io.BytesIO(data[8:]))
    return None, None


def compare_binary(recorded: dict[str, Any], payload: bytes, replay: Replay,
                   where: str) -> list[str]:
    """Layout of a binary frame: event type, second word, metadata, node id and text, the image
    format and size (ENCODED_BYTES / STAND_IN_PIXELS: not the image bytes). Every preview of a
    run comes from one node, so each is also held against the run's binary_frame_0.bin."""
    problems = []
    first_metadata, first_image = recorded_first_frame(replay.run)
    if first_image is not None and event_type_of(payload) in (1, 4):
        image = Image.open(io.BytesIO(preview_bytes(payload)))
        if (image.format, image.size, image.mode) != (
                first_image.format, first_image.size, first_image.mode):
            problems.append(f"{where}: preview {image.format} {image.size} {image.mode} != "
                            f"{first_image.format} {first_image.size} {first_image.mode}")
    event_type, second = struct.unpack(">II", payload[:8])
    if event_type != recorded["event_type"]:
        return [f"{where}: binary event type {event_type} != {recorded['event_type']}"]
    head = bytes.fromhex(recorded["head_hex"])
    if event_type == 1:
        if second != recorded["second_u32"]:
            problems.append(f"{where}: type 1 format {second} != {recorded['second_u32']}")
        image = Image.open(io.BytesIO(payload[8:]))
        expected_format = {1: "JPEG", 2: "PNG"}[recorded["second_u32"]]
        if image.format != expected_format:
            problems.append(f"{where}: type 1 image is {image.format}, not {expected_format}")
        if payload[:12] != head[:12]:  # header and the image's magic bytes
            problems.append(f"{where}: head {payload[:16].hex()} != {recorded['head_hex']}")
    elif event_type == 4:
        metadata = json.loads(payload[8:8 + second])
        if second != recorded["second_u32"]:
            problems.append(f"{where}: type 4 metadata length {second} != "
                            f"{recorded['second_u32']}")
        if payload[:16] != head:
            problems.append(f"{where}: head {payload[:16].hex()} != {recorded['head_hex']}")
        image = Image.open(io.BytesIO(payload[8 + second:]))
        if Image.MIME.get(image.format or "") != metadata.get("image_type"):
            problems.append(f"{where}: image {image.format} but image_type "
                            f"{metadata.get('image_type')}")
        if metadata.get("prompt_id") != replay.prompt_id:
            problems.append(f"{where}: metadata prompt_id {metadata.get('prompt_id')}")
        if first_metadata is not None:
            expected = replace_ids(first_metadata, replay.ids)
            if list(metadata) != list(expected) or metadata != expected:
                problems.append(f"{where}: metadata {metadata} != recorded {expected}")
    elif event_type == 3:
        if len(payload) != recorded["length"] or payload[:16] != head:
            problems.append(f"{where}: type 3 frame {payload[:16].hex()} ({len(payload)} bytes) "
                            f"!= {recorded['head_hex']} ({recorded['length']} bytes)")
    else:
        problems.append(f"{where}: unknown binary event type {event_type}")
    return problems


def event_type_of(payload: bytes) -> int:
    return int(struct.unpack(">I", payload[:4])[0])


def preview_bytes(payload: bytes) -> bytes:
    """The image inside a type 1 or type 4 frame."""
    event_type, second = struct.unpack(">II", payload[:8])
    return payload[8 + second:] if event_type == 4 else payload[8:]


def compare_socket(recorded_frames: list[dict[str, Any]], frames: list[tuple[str, Any]],
                   replay: Replay, label: str) -> None:
    expected_types = recorded_types(recorded_frames)
    actual_types = message_types(frames)
    assert actual_types == expected_types, (
        f"{label}: frame sequence differs\n emulator: {actual_types}\n recorded: {expected_types}")
    problems: list[str] = []
    for index, (rec, (kind, payload)) in enumerate(zip(recorded_frames, frames, strict=True)):
        where = f"{label} frame {index}"
        if kind == "text":
            problems += compare_text(rec["msg"], payload, replay, where)
        else:
            problems += compare_binary(rec, payload, replay, where)
    assert not problems, "\n".join(problems)


# -- media ----------------------------------------------------------------------------------------


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def png_text(image: Image.Image) -> dict[str, Any]:
    return {k: json.loads(v) for k, v in getattr(image, "text", {}).items()
            if k in ("prompt", "workflow")}


def compare_image(recorded: bytes, actual: bytes, stand_in: bool, label: str) -> None:
    rec, act = Image.open(io.BytesIO(recorded)), Image.open(io.BytesIO(actual))
    assert (act.format, act.size, act.mode) == (rec.format, rec.size, rec.mode), label
    rec_frames = getattr(rec, "n_frames", 1)
    assert getattr(act, "n_frames", 1) == rec_frames, label
    if rec.format == "PNG":
        # the prompt/workflow text chunks, with the prompt ids nowhere in them
        assert png_text(act) == png_text(rec), label
    if rec_frames > 1 or rec.format == "WEBP":
        rec_durations = [f.info.get("duration") for f in ImageSequence.Iterator(rec)]
        act_durations = [f.info.get("duration") for f in ImageSequence.Iterator(act)]
        assert act_durations == rec_durations, label
        assert act.info.get("loop") == rec.info.get("loop"), label
    if rec.format == "WEBP":
        # ENCODED_BYTES: lossy frames; the EXIF prompt is compared instead of pixels
        assert _webp_prompt(act) == _webp_prompt(rec), label
        return
    if stand_in:  # STAND_IN_PIXELS
        return
    for index, (r, a) in enumerate(zip(ImageSequence.Iterator(rec), ImageSequence.Iterator(act),
                                       strict=True)):
        assert np.array_equal(pixels(a.convert(rec.mode)), pixels(r.convert(rec.mode))), (
            f"{label}: pixels of frame {index} differ")


def _webp_prompt(image: Image.Image) -> Any:
    exif = image.getexif()
    value = exif.get(0x0110)  # Model: "prompt:<json>", as ComfyUI writes it
    if not isinstance(value, str) or not value.startswith("prompt:"):
        return value
    return json.loads(value[len("prompt:"):].rstrip("\x00"))


def media_facts(data: bytes) -> dict[str, Any]:
    """ENCODED_BYTES: what is compared of encoded audio and video."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams[0]
        facts: dict[str, Any] = {
            "container": container.format.name,
            "streams": [s.type for s in container.streams],
            "codec": stream.codec_context.name,
            "duration": container.duration,
        }
        decoded = list(container.decode(stream))
        if stream.type == "audio":
            facts["sample_rate"] = stream.codec_context.sample_rate
            facts["channels"] = stream.codec_context.channels
            facts["samples"] = sum(frame.samples for frame in decoded)
        else:
            facts["frames"] = len(decoded)
            facts["size"] = {(frame.width, frame.height) for frame in decoded}
    return facts


def compare_media(recorded: bytes, actual: bytes, label: str) -> None:
    rec, act = media_facts(recorded), media_facts(actual)
    if rec["codec"] == "mp3float":
        # MP3 encoders pad with their own delay frames: the decoded length is not exact
        rec_samples, act_samples = rec.pop("samples"), act.pop("samples")
        assert abs(act_samples - rec_samples) <= 2304, (label, act_samples, rec_samples)
    assert act == rec, label


# -- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("run", "name"), RUN_FILES, ids=[f"{r}/{n}" for r, n in RUN_FILES])
def test_run_file(run: str, name: str) -> None:
    replay = replayed(run)
    if name == "post_prompt.json":
        check_post(replay)
    elif name == "ws_messages.json":
        check_socket(replay)
    elif name == "ws_messages_observer.json":
        check_observer(replay)
    elif name == "history.json":
        check_history(replay)
    elif name == "view_responses.json":
        check_view_responses(replay)
    elif name.startswith("view_"):
        check_view_bytes(replay, name)
    elif name == "binary_frame_0.bin":
        check_first_binary_frame(replay)
    elif name == "during.json":
        check_during(replay)
    else:
        raise AssertionError(f"runs/{run}/{name}: a kind of run file this suite does not know")


def check_post(replay: Replay) -> None:
    recorded = load(f"runs/{replay.run}/post_prompt.json")
    assert replay.post_status == recorded["response"]["status"]
    body, rec_body = replay.post_body, recorded["response"]["body"]
    assert list(body) == list(rec_body)
    assert shape(body) == shape(rec_body)
    supplied = recorded["request"]["body"].get("prompt_id")
    if supplied is not None:  # a client-supplied id is kept exactly
        assert body["prompt_id"] == supplied == rec_body["prompt_id"]
    else:  # PROMPT_IDS: a fresh uuid4
        assert uuid.UUID(body["prompt_id"]).version == 4
    assert isinstance(body["number"], int) and body["number"] >= 0  # NUMBERS
    assert body["node_errors"] == rec_body["node_errors"]


def check_socket(replay: Replay) -> None:
    recorded = load(f"runs/{replay.run}/ws_messages.json")
    assert replay.frames[0][1]["data"]["sid"] == recorded["client_id"]
    compare_socket(recorded["frames"], replay.frames, replay, "prompt socket")


def check_observer(replay: Replay) -> None:
    recorded = load(f"runs/{replay.run}/ws_messages_observer.json")
    assert replay.observer_frames is not None
    compare_socket(recorded["frames"], replay.observer_frames, replay, "observer socket")


def check_first_binary_frame(replay: Replay) -> None:
    recorded = (RUNS_DIR / replay.run / "binary_frame_0.bin").read_bytes()
    binaries = [payload for kind, payload in replay.frames if kind == "binary"]
    assert binaries, "no binary frame"
    actual = binaries[0]
    event_type, second = struct.unpack(">II", recorded[:8])
    assert struct.unpack(">II", actual[:8])[0] == event_type
    if event_type == 3:  # node id and text: byte-exact
        assert actual == recorded
        return
    if event_type == 4:
        rec_meta = replace_ids(json.loads(recorded[8:8 + second]), replay.ids)
        act_second = struct.unpack(">I", actual[4:8])[0]
        act_meta = json.loads(actual[8:8 + act_second])
        assert list(act_meta) == list(rec_meta)
        assert act_meta == rec_meta
        rec_image, act_image = recorded[8 + second:], actual[8 + act_second:]
    else:
        assert actual[:8] == recorded[:8]
        rec_image, act_image = recorded[8:], actual[8:]
    rec, act = Image.open(io.BytesIO(rec_image)), Image.open(io.BytesIO(act_image))
    assert (act.format, act.size, act.mode) == (rec.format, rec.size, rec.mode)
    if replay.run in WEBSOCKET_IMAGE_RUNS:  # EmptyImage pixels: model-free, exact
        assert np.array_equal(pixels(act), pixels(rec))
        # the batch is two identical EmptyImage images (both recorded frames have one length)
        for payload in binaries[1:]:
            other = Image.open(io.BytesIO(preview_bytes(payload)))
            assert np.array_equal(pixels(other), pixels(rec))
    else:
        assert replay.run in MODEL_RUNS  # STAND_IN_PIXELS: sampler previews are stand-ins


def check_history(replay: Replay) -> None:
    recorded = load(f"runs/{replay.run}/history.json")
    assert replay.history_status == recorded["response"]["status"]
    rec_body = recorded["response"]["body"]
    assert list(replay.history) == [replay.ids[k] for k in rec_body]
    (rec_entry,) = rec_body.values()
    entry = replay.history[replay.prompt_id]
    assert list(entry) == list(rec_entry)
    number, prompt_id, prompt, extra_data, outputs_to_execute = entry["prompt"]
    _, rec_id, rec_prompt, rec_extra, rec_outputs = rec_entry["prompt"]
    assert isinstance(number, int) and number == replay.post_body["number"]  # NUMBERS
    assert prompt_id == replay.ids[rec_id]
    assert prompt == rec_prompt
    assert extra_data == rec_extra
    assert outputs_to_execute == rec_outputs  # SET_ORDER: the recorded order was handed over
    # SET_ORDER: history outputs (and meta) come from a set of node ids: order not compared
    assert typed(file_names(entry["outputs"])) == typed(file_names(rec_entry["outputs"]))
    status, rec_status = entry["status"], rec_entry["status"]
    assert list(status) == list(rec_status)
    assert status["status_str"] == rec_status["status_str"]
    assert status["completed"] == rec_status["completed"]
    assert [m[0] for m in status["messages"]] == [m[0] for m in rec_status["messages"]]
    for (event, data), (_, rec_data) in zip(status["messages"], rec_status["messages"],
                                           strict=True):
        problems = compare_text({"type": event, "data": rec_data}, {"type": event, "data": data},
                                replay, "history")
        assert not problems, "\n".join(problems)
    assert entry["meta"] == rec_entry["meta"]
    if replay.history_while_running is not None:
        assert replay.history_while_running == {}  # filled only when the prompt finishes


def check_during(replay: Replay) -> None:
    recorded = load(f"runs/{replay.run}/during.json")
    if isinstance(recorded, dict):  # a note on what was done while the prompt waited
        assert "deleted" in recorded["note"] and EPHEMERAL in recorded["note"], recorded
        assert replay.ephemeral_missing_at_run
        return
    assert len(replay.during) == len(recorded)
    for response, exchange in zip(replay.during, recorded, strict=True):
        rec_response = exchange["response"]
        assert response.status_code == rec_response["status"]
        assert response.text == rec_response["body_text"]
        assert response.headers.get("content-length") == rec_response["headers"][
            "Content-Length"]


def check_view_responses(replay: Replay) -> None:
    recorded = load(f"runs/{replay.run}/view_responses.json")
    assert len(replay.views) == len(recorded)
    for response, name, exchange in zip(replay.views, replay.view_names, recorded, strict=True):
        rec_response = exchange["response"]
        assert response.status_code == rec_response["status"], name
        headers = rec_response["headers"]
        assert response.headers.get("content-type") == headers["Content-Type"], name
        assert response.headers.get("content-disposition") == f'filename="{name}"', name
        rec_name = headers["Content-Disposition"][len('filename="'):-1]
        assert file_pattern(name) == file_pattern(rec_name) or name == rec_name
        if name != rec_name:
            assert TEMP_NAME.match(name)  # TEMP_LETTERS
        # ENCODED_BYTES: Content-Length is the size of this machine's encoding
        assert response.headers.get("content-length") == str(len(response.content))


def check_view_bytes(replay: Replay, name: str) -> None:
    recorded = load(f"runs/{replay.run}/view_responses.json")
    (index,) = [i for i, exchange in enumerate(recorded) if exchange["saved_as"] == name]
    data = (RUNS_DIR / replay.run / name).read_bytes()
    assert len(data) == recorded[index]["response"]["body_len"]
    response = replay.views[index]
    assert response.status_code == 200, (name, response.status_code)
    extension = Path(name).suffix
    if extension in (".png", ".webp"):
        compare_image(data, response.content, stand_in=replay.run in MODEL_RUNS, label=name)
    elif extension in (".flac", ".mp3", ".mp4", ".webm"):
        compare_media(data, response.content, name)
    else:
        raise AssertionError(f"{name}: a kind of output file this suite does not know")


def test_every_run_is_replayed_with_a_plan() -> None:
    """Each run folder's needs are known: runs recorded mid-run (during.json) have a trigger."""
    for run in RUNS:
        during = RUNS_DIR / run / "during.json"
        if during.exists() and isinstance(load(f"runs/{run}/during.json"), list):
            assert run in INTERRUPT_AFTER, run

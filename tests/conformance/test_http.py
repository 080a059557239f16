"""Conformance of the plain HTTP endpoints against ``http/``: every recorded exchange is replayed
against the emulator and compared (status, recorded headers, body), bare and under ``/api``.

One parametrized test per recorded file dispatches to the check registered for it; a file in
``http/`` with no registered check fails, so nothing there is silently left unchecked. The
uploaded files of ``inputs/`` are checked against the uploads that sent them, and replayed.
"""

from __future__ import annotations

import inspect
import io
import itertools
import json
import shutil
import time
import urllib.parse
import uuid
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from PIL import Image
from websockets.sync.client import connect as ws_connect
from websockets.typing import Origin

from comfy_nb.emulator import RunningEmulator

from ..factories import Emulators
from ._exchanges import (
    assert_body,
    assert_exchange,
    assert_headers,
    assert_keeps_serving,
    body_of,
)
from ._replay import FIXTURES, SocketRecorder, finished, load, replace_ids, send, shape, without
from .deviations import (
    CLIENT_IDS,
    ENCODED_BYTES,
    INPUT_FILES,
    MACHINE_STATS,
    MODEL_FILES,
    NO_FRONTEND,
    PATHS,
    PROMPT_IDS,
    STAND_IN_PIXELS,
    TIMESTAMPS,
)

COVERS = ["http/*.json", "inputs/*"]
HTTP_DIR = FIXTURES / "http"
INPUTS = FIXTURES / "inputs"

Check = Callable[..., None]
CHECKS: dict[str, Check] = {}


def checks(*names: str) -> Callable[[Check], Check]:
    """Register ``function`` as the check of the recorded files ``names``. It is called with the
    file name and, for every other parameter, the pytest fixture of that name."""

    def register(function: Check) -> Check:
        for name in names:
            assert name not in CHECKS, f"{name} registered twice"
            CHECKS[name] = function
        return function

    return register


@pytest.mark.parametrize("name", sorted(p.name for p in HTTP_DIR.iterdir()))
def test_http_fixture(name: str, request: pytest.FixtureRequest) -> None:
    check = CHECKS.get(name)
    if check is None:
        pytest.fail(f"http/{name} has no conformance check in {__name__}")
    parameters = list(inspect.signature(check).parameters)[1:]
    check(name, **{p: request.getfixturevalue(p) for p in parameters})


def test_every_registered_check_has_a_file() -> None:
    assert sorted(CHECKS) == sorted(p.name for p in HTTP_DIR.iterdir())


@pytest.mark.parametrize("name", sorted(p.name for p in (FIXTURES / "inputs").iterdir()))
def test_recorded_input_file(name: str) -> None:
    """inputs/ holds the files the recorded uploads sent (same sizes), and they are what their
    names say. The upload and object_info checks above replay them."""
    path = INPUTS / name
    uploads = [*load("http/POST_upload_image.json"), load("http/POST_upload_image_wav.json")]
    declared = [e["request"]["multipart_fields"]["image"] for e in uploads
                if "image" in e["request"]["multipart_fields"]]
    if name == "gradient_64x48.png":
        with Image.open(path) as img:
            assert (img.format, img.size) == ("PNG", (64, 48))
        sent = {d["filename"] for d in declared if d["bytes"] == path.stat().st_size}
        assert sent == {"comfy_nb_gradient.png", "grad.png"}
    elif name == "sine_440hz_0.5s.wav":
        with wave.open(str(path)) as wav:
            frames = wav.readframes(wav.getnframes())
            rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        assert (width, channels) == (2, 1)
        assert len(frames) / (rate * width) == 0.5
        samples = [int.from_bytes(frames[i:i + 2], "little", signed=True)
                   for i in range(0, len(frames), 2)]
        rising = sum(1 for a, b in itertools.pairwise(samples) if a < 0 <= b)
        assert abs(rising - 220) <= 1  # 440 Hz for 0.5 s
        sent = {d["filename"] for d in declared if d["bytes"] == path.stat().st_size}
        assert sent == {"comfy_nb_sine.wav"}
    else:
        pytest.fail(f"inputs/{name} has no conformance check in {__name__}")


# -- shared servers -----------------------------------------------------------------------------

OTHER_PNG_SIZE = (5, 3)


def other_png() -> bytes:
    """A valid PNG with bytes different from inputs/gradient_64x48.png (the recording's 130-byte
    "other bytes" upload was not kept)."""
    buffer = io.BytesIO()
    Image.new("RGB", OTHER_PNG_SIZE, (200, 10, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def put_recorded_inputs(input_dir: Path) -> None:
    """The input folder the recording server had (README "inputs/"), so that the file combos of
    LoadImage, LoadAudio, ... list what was recorded instead of the emulator's own folder
    (INPUT_FILES). The emulator seeds ``example.png`` itself."""
    assert (input_dir / "example.png").is_file(), INPUT_FILES
    shutil.copyfile(INPUTS / "gradient_64x48.png", input_dir / "comfy_nb_gradient.png")
    (input_dir / "comfy_nb_gradient (1).png").write_bytes(other_png())
    (input_dir / "comfy_nb").mkdir(exist_ok=True)
    shutil.copyfile(INPUTS / "gradient_64x48.png", input_dir / "comfy_nb" / "grad.png")
    shutil.copyfile(INPUTS / "sine_440hz_0.5s.wav", input_dir / "comfy_nb_sine.wav")


@pytest.fixture(scope="module")
def inputs_server(module_emulators: Emulators) -> RunningEmulator:
    """One emulator for the module's read-only checks, with the recorded input folder. A slower
    sampler (50 ms a step) keeps the interrupted history prompt running long enough."""
    emulator = module_emulators("local", step_delay=0.05)
    put_recorded_inputs(Path(emulator.input_dir))
    return emulator


HISTORY = load("http/GET_history.json")["response"]["body"]
TXT2IMG = load("runs/txt2img_random_sd15_legacy_previews/post_prompt.json")
INTERRUPT = load("runs/txt2img_interrupt_mid_sampling/during.json")[0]


def _wait_history(http: httpx.Client, prompt_id: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not http.get(f"/history/{prompt_id}").json():
        assert time.monotonic() < deadline, f"{prompt_id} never reached history"
        time.sleep(0.02)


def _run_history_prompt(server: RunningEmulator, http: httpx.Client, recorded_id: str) -> str:
    """Post one of the four recorded history prompts as recorded (same graph, same client_id);
    interrupt the one recorded as interrupted after sampler step 2, as the recording did."""
    entry = HISTORY[recorded_id]
    client_id = entry["prompt"][3]["client_id"]
    with SocketRecorder(server.ws_url, client_id) as socket:
        response = http.post("/prompt", json={"prompt": entry["prompt"][2],
                                              "client_id": client_id})
        assert response.status_code == 200, response.text
        prompt_id: str = response.json()["prompt_id"]
        if entry["status"]["status_str"] == "error":
            socket.wait_for(lambda m: m["type"] == "progress" and m["data"]["value"] >= 2)
            assert INTERRUPT["request"]["body"] == {"prompt_id": recorded_id}
            interrupted = send(http, INTERRUPT["request"], body={"prompt_id": prompt_id})
            assert interrupted.status_code == 200
        socket.wait_for(finished(prompt_id), timeout=5)
    _wait_history(http, prompt_id)
    return prompt_id


@pytest.fixture(scope="module")
def history_ids() -> dict[str, str]:
    """Recorded prompt id → the emulator's id for the same replayed prompt (PROMPT_IDS)."""
    return {}


@pytest.fixture(scope="module")
def txt2img_server(inputs_server: RunningEmulator, history_ids: dict[str, str]) -> RunningEmulator:
    """``inputs_server`` after the recorded txt2img workflow ran once (the first history entry,
    which wrote comfy_nb_fixture/txt2img_00001_.png)."""
    first = next(iter(HISTORY))
    assert HISTORY[first]["prompt"][2] == TXT2IMG["request"]["body"]["prompt"]
    assert HISTORY[first]["prompt"][3]["client_id"] == TXT2IMG["request"]["body"]["client_id"]
    with httpx.Client(base_url=inputs_server.url, timeout=30) as http:
        history_ids[first] = _run_history_prompt(inputs_server, http, first)
    return inputs_server


@pytest.fixture(scope="module")
def history_server(txt2img_server: RunningEmulator,
                   history_ids: dict[str, str]) -> RunningEmulator:
    """``txt2img_server`` after the other three recorded history prompts (seeds 43 and 44, then
    seed 45 with 20 steps, interrupted): four history entries, as when http/ was recorded."""
    with httpx.Client(base_url=txt2img_server.url, timeout=30) as http:
        for recorded_id in list(HISTORY)[1:]:
            history_ids[recorded_id] = _run_history_prompt(txt2img_server, http, recorded_id)
    return txt2img_server


@pytest.fixture
def shared_http(inputs_server: RunningEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=inputs_server.url, timeout=30.0) as client:
        yield client


def api_twin(path: str) -> str:
    return "/api" + path


# -- exact replays ------------------------------------------------------------------------------


@checks("GET_embeddings.json", "GET_features.json", "GET_models.json",
        "GET_models_checkpoints.json", "GET_models_nonexistent_folder.json", "GET_settings.json",
        "GET_users.json", "GET_prompt.json", "GET_queue.json", "GET_object_info_SaveImage.json",
        "GET_object_info_NoSuchNode.json", "GET_jobs.json", "GET_jobs_abc.json",
        "GET_job_abc_status.json")
def check_exact(name: str, http: httpx.Client) -> None:
    """Deterministic endpoints on an idle, fresh server: the same bytes, bare and under /api."""
    exchange = load(f"http/{name}")
    path = exchange["request"]["path"]
    assert_exchange(http, exchange)
    assert_exchange(http, exchange, path=api_twin(path))


# -- object_info --------------------------------------------------------------------------------


@checks("object_info.json")
def check_object_info_body(name: str, inputs_server: RunningEmulator,
                           shared_http: httpx.Client) -> None:
    """With the recorded input folder (INPUT_FILES), the whole body is the recorded one, byte for
    byte, file combos of LoadImage/LoadImageMask/LoadAudio/LoadVideo/Load3D included."""
    recorded = (HTTP_DIR / name).read_bytes()
    for path in ("/object_info", "/api/object_info"):
        response = shared_http.get(path)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        if response.content != recorded:  # say where, not only that
            mine, theirs = response.json(), json.loads(recorded)
            assert list(mine) == list(theirs)
            for node_class in theirs:
                assert mine[node_class] == theirs[node_class], node_class
        assert response.content == recorded


@checks("GET_object_info.json")
def check_object_info_exchange(name: str, shared_http: httpx.Client) -> None:
    """The pointer exchange: status, headers (506,160 bytes) and the body it points to."""
    exchange = load(f"http/{name}")
    assert exchange["response"]["body"] == "<see object_info.json>"
    response = send(shared_http, exchange["request"])
    assert response.status_code == exchange["response"]["status"]
    assert_headers(response, exchange["response"])
    assert response.content == (HTTP_DIR / "object_info.json").read_bytes()


# -- the /api prefix ----------------------------------------------------------------------------

# Sizes that depend on the machine or on the missing frontend, not on the protocol.
SIZE_DEVIATIONS = {
    "/system_stats": MACHINE_STATS,
    "/extensions": NO_FRONTEND,
    "/internal/folder_paths": PATHS,
}


@checks("api_prefix_check.json")
def check_api_prefix(name: str, history_server: RunningEmulator) -> None:
    """Every recorded GET, bare and under /api: status, content type and size. On the module
    server the state matches the recording's (recorded inputs, four history entries, idle
    queue), so every size is deterministic except those in SIZE_DEVIATIONS."""
    entries = load(f"http/{name}")
    with httpx.Client(base_url=history_server.url, timeout=30) as http:
        for entry in entries:
            path = entry["path"]
            response = http.get(path)
            assert response.status_code == entry["status"], path
            assert response.headers.get("Content-Type") == entry["content_type"], path
            bare = path.removeprefix("/api").split("?")[0]
            if bare in SIZE_DEVIATIONS:
                continue  # deviation: SIZE_DEVIATIONS[bare]
            assert len(response.content) == entry["bytes"], path
        # every recorded bare path has its /api twin recorded and answered alike
        paths = {e["path"] for e in entries}
        for path in paths:
            if not path.startswith("/api"):
                assert api_twin(path) in paths, path
        assert_keeps_serving(http)


# -- history ------------------------------------------------------------------------------------


@checks("GET_history.json", "GET_history__max_items-1.json", "GET_history__max_items-2.json",
        "GET_history__max_items-1_offset-0.json")
def check_history(name: str, history_server: RunningEmulator,
                  history_ids: dict[str, str]) -> None:
    """With the four recorded prompts replayed, the listing holds the recorded entries, in the
    recorded order, equal to the recorded ones except prompt ids (PROMPT_IDS; mapped back) and
    timestamps (TIMESTAMPS; removed). Their lengths match too (uuid4s and 13-digit clocks)."""
    exchange = load(f"http/{name}")
    assert list(history_ids) == list(HISTORY)
    back = {mine: recorded for recorded, mine in history_ids.items()}
    ignored = {"timestamp"}  # TIMESTAMPS
    with httpx.Client(base_url=history_server.url, timeout=30) as http:
        for path in (exchange["request"]["path"], api_twin(exchange["request"]["path"])):
            response = http.get(path)
            assert response.status_code == exchange["response"]["status"]
            assert_headers(response, exchange["response"], where=path)
            mapped = replace_ids(response.json(), back)  # PROMPT_IDS
            assert shape(mapped) == shape(exchange["response"]["body"]), path
            got = without(mapped, ignored)
            expected = without(exchange["response"]["body"], ignored)
            assert list(got) == list(expected), f"{path}: entries or their order"
            assert json.dumps(got) == json.dumps(expected), path  # key order included


# -- /view --------------------------------------------------------------------------------------

VIEW_FILE = ("comfy_nb_fixture", "txt2img_00001_.png")
# How ComfyUI's /view renders each variant (server.py view_image): preview=webp keeps the PNG's
# mode, preview=jpeg converts to RGB, channel=rgb drops alpha, channel=a is an RGBA picture
# holding only the alpha channel. The txt2img PNG is a 128x128 RGB picture.
IMAGE_FORMATS = {"image/png": "PNG", "image/webp": "WEBP", "image/jpeg": "JPEG"}


def expected_mode(query: dict[str, list[str]]) -> str:
    if query.get("channel") == ["a"]:
        return "RGBA"
    return "RGB"


@checks("GET_view_variants.json")
def check_view_variants(name: str, txt2img_server: RunningEmulator) -> None:
    """Each recorded /view variant of the txt2img output: status, Content-Type,
    Content-Disposition and, for 200s, the decoded format, size and mode. Pixels and therefore
    sizes of the encoded files are the emulator's (STAND_IN_PIXELS)."""
    exchanges = load(f"http/{name}")
    on_disk = Path(txt2img_server.output_dir).joinpath(*VIEW_FILE).read_bytes()
    with Image.open(io.BytesIO(on_disk)) as original:
        assert (original.format, original.size, original.mode) == ("PNG", (128, 128), "RGB")
        original_rgb = original.convert("RGB").tobytes()
    with httpx.Client(base_url=txt2img_server.url, timeout=30) as http:
        for exchange in exchanges:
            path = exchange["request"]["path"]
            recorded = exchange["response"]
            response = http.get(path)
            assert response.status_code == recorded["status"], path
            # STAND_IN_PIXELS, ENCODED_BYTES: the emulator's pictures have their own sizes
            assert_headers(response, recorded, length=False, where=path)
            if recorded["status"] != 200:
                assert_headers(response, recorded, where=path)
                assert_body(response, recorded, path)
                continue
            content = response.content
            assert response.headers["Content-Length"] == str(len(content))
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
            content_type = response.headers["Content-Type"]
            head = bytes.fromhex(exchange["response"].get("first_bytes_hex") or "")
            if content_type == "image/webp":  # RIFF <size> WEBP
                assert content[:4] == head[:4] and content[8:12] == head[8:12], path
                assert int.from_bytes(content[4:8], "little") == len(content) - 8
            else:  # the PNG signature and IHDR length, or JPEG's SOI + JFIF APP0
                assert content[:len(head)] == head, path
            with Image.open(io.BytesIO(content)) as img:
                assert img.format == IMAGE_FORMATS[content_type], path
                assert img.size == (128, 128), path
                assert img.mode == expected_mode(query), path
                if query.get("channel") == ["a"]:
                    assert img.getchannel("A").getextrema() == (255, 255), path
                    assert img.convert("RGB").getextrema() == ((0, 0),) * 3, path
                elif content_type == "image/png":
                    assert img.convert("RGB").tobytes() == original_rgb, path
                if content_type == "image/jpeg":  # quality 50: the unscaled standard tables
                    quality = int(query["preview"][0].split(";")[-1])
                    assert quality == 50
                    assert img.quantization[0][0] == 16, path
            if "preview" not in query and "channel" not in query:
                # the file itself: STAND_IN_PIXELS make its bytes the emulator's own
                assert content == on_disk, path
        assert_keeps_serving(http)


# -- uploads ------------------------------------------------------------------------------------


def upload_bytes(declared: dict[str, Any]) -> bytes:
    """The bytes of a recorded upload part, from inputs/ (by size)."""
    if declared["bytes"] == 130:  # "other bytes": not recorded; another valid PNG stands in
        return other_png()
    for path in INPUTS.iterdir():
        if path.stat().st_size == declared["bytes"]:
            return path.read_bytes()
    raise AssertionError(f"no recorded input file of {declared['bytes']} bytes")


def replay_upload(http: httpx.Client, exchange: dict[str, Any]) -> httpx.Response:
    """The multipart request with its parts in the recorded order."""
    parts: list[tuple[str, Any]] = []
    for field, value in exchange["request"]["multipart_fields"].items():
        if isinstance(value, dict):
            parts.append((field, (value["filename"], upload_bytes(value), value["content_type"])))
        else:
            parts.append((field, (None, value)))
    if not any(isinstance(v, tuple) and v[0] is not None for _, v in parts):
        # no file part: httpx would send a urlencoded body; force multipart/form-data
        boundary = uuid.uuid4().hex
        body = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n{v[1]}\r\n'
            for field, v in parts) + f"--{boundary}--\r\n"
        return http.post(exchange["request"]["path"], content=body.encode(),
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    return http.post(exchange["request"]["path"], files=parts)


def assert_upload(http: httpx.Client, exchange: dict[str, Any]) -> None:
    response = replay_upload(http, exchange)
    recorded = exchange["response"]
    where = json.dumps(exchange["request"]["multipart_fields"])
    assert response.status_code == recorded["status"], where
    assert_headers(response, recorded, where=where)
    assert_body(response, recorded, where)


@checks("POST_upload_image.json")
def check_upload_image(name: str, server: RunningEmulator, http: httpx.Client) -> None:
    """The six recorded uploads in order: overwrite, identical duplicate (same name), other bytes
    (renamed), subfolder, no type field, no image part (400). Then the files on disk."""
    for exchange in load(f"http/{name}"):
        assert_upload(http, exchange)
        assert_keeps_serving(http)
    input_dir = Path(server.input_dir)
    gradient = (INPUTS / "gradient_64x48.png").read_bytes()
    assert (input_dir / "comfy_nb_gradient.png").read_bytes() == gradient
    assert (input_dir / "comfy_nb_gradient (1).png").read_bytes() == other_png()
    assert (input_dir / "comfy_nb" / "grad.png").read_bytes() == gradient


@checks("POST_upload_image_wav.json")
def check_upload_wav(name: str, server: RunningEmulator, http: httpx.Client) -> None:
    exchange = load(f"http/{name}")
    assert_upload(http, exchange)
    wav = (INPUTS / "sine_440hz_0.5s.wav").read_bytes()
    assert (Path(server.input_dir) / "comfy_nb_sine.wav").read_bytes() == wav
    # and LoadAudio now lists it
    spec = http.get("/object_info/LoadAudio").json()["LoadAudio"]["input"]["required"]["audio"]
    assert "comfy_nb_sine.wav" in spec[0]


# -- origin and auth ----------------------------------------------------------------------------

RECORDED_HOST = "127.0.0.1:8188"  # the recording server's Host; the emulator listens elsewhere


def local_origin(origin: str, server: RunningEmulator) -> str:
    """An Origin naming the recording server itself names the emulator instead (the test server
    runs on another port); foreign origins stay as recorded."""
    if urllib.parse.urlsplit(origin).netloc == RECORDED_HOST:
        return server.url
    return origin


@checks("origin_auth_checks.json")
def check_origin_auth(name: str, server: RunningEmulator, http: httpx.Client) -> None:
    """Foreign Origin → 403 with an empty body (GET, POST, OPTIONS, websocket handshake); the
    same origin, X-API-Key and Authorization pass; ``token=`` and ``/api/ws`` are plain sockets."""
    netloc = urllib.parse.urlsplit(server.url).netloc
    assert netloc not in ("127.0.0.1:8888", "localhost:8888"), "port clash with recorded origins"
    entries = load(f"http/{name}")
    for entry in entries:
        request = dict(entry["request"])
        headers = dict(request.get("headers") or {})
        if "Origin" in headers:
            headers["Origin"] = local_origin(headers["Origin"], server)
        if "ws" in request:
            check_socket(server, request["ws"], headers, entry["result"])
            continue
        request["headers"] = headers
        response = send(http, request)
        recorded = entry["response"]
        where = f"{request['method']} {request['path']} {headers}"
        assert response.status_code == recorded["status"], where
        # MACHINE_STATS: the size of a 200 /system_stats is the emulator's machine's
        sized = recorded["status"] != 200
        assert_headers(response, recorded, length=sized, where=where)
        if recorded["status"] == 403:
            assert response.content == b"", where
            assert "Content-Type" not in response.headers, where
        else:
            assert set(response.json()) >= {"system", "devices"}, where
        assert_keeps_serving(http)


def check_socket(server: RunningEmulator, recorded_path: str, headers: dict[str, str],
                 result: dict[str, Any]) -> None:
    """One recorded websocket handshake; ``<uuid>`` is our own client id (CLIENT_IDS)."""
    client_id = str(uuid.uuid4())
    base = server.url.replace("http", "ws", 1)
    path = recorded_path.replace("<uuid>", client_id).replace("clientId=...",
                                                              f"clientId={client_id}")
    url = base + path
    if "handshake_error_status" in result:
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            ws_connect(url, origin=Origin(headers["Origin"]), open_timeout=10)
        response = refused.value.response
        assert response.status_code == result["handshake_error_status"], url
        assert response.body in (b"", None), url
        return
    with ws_connect(url, open_timeout=10) as socket:
        first = json.loads(socket.recv(timeout=10))
    recorded_sid = result["data"]["sid"]
    assert first == replace_ids(result, {recorded_sid: client_id}), url  # CLIENT_IDS


# -- everything else ----------------------------------------------------------------------------


@checks("GET_cloud_only_paths_and_models.json")
def check_cloud_only_paths(name: str, server: RunningEmulator, http: httpx.Client) -> None:
    """Cloud-only paths are ComfyUI's empty 404; the model endpoints answer, with the emulator's
    stand-in checkpoint (MODEL_FILES: its metadata note, size and dates)."""
    for exchange in load(f"http/{name}"):
        path = exchange["request"]["path"]
        recorded = exchange["response"]
        if path.startswith("/view_metadata/"):
            response = send(http, exchange["request"])
            assert response.status_code == recorded["status"], path
            assert_headers(response, recorded, length=False, where=path)
            assert shape(response.json()) == shape(recorded["body"]), path  # MODEL_FILES
        elif path.startswith("/experiment/models/"):
            response = send(http, exchange["request"])
            assert response.status_code == recorded["status"], path
            assert_headers(response, recorded, length=False, where=path)
            got = response.json()
            assert shape(got) == shape(recorded["body"]), path
            relaxed = {"modified", "created", "size"}  # MODEL_FILES
            assert without(got, relaxed) == without(recorded["body"], relaxed), path
        else:
            assert_exchange(http, exchange)
        assert_keeps_serving(http)


@checks("GET_internal_folder_paths.json")
def check_folder_paths(name: str, http: httpx.Client) -> None:
    """The same folder keys in the same order; the paths are the emulator's (PATHS), and so is
    the size. /internal has no /api twin."""
    exchange = load(f"http/{name}")
    recorded = exchange["response"]
    response = send(http, exchange["request"])
    assert response.status_code == recorded["status"]
    assert_headers(response, recorded, length=False)  # PATHS: their length differs
    got = response.json()
    assert list(got) == list(recorded["body"])
    for key, paths in got.items():
        assert isinstance(paths, list) and paths, key
        assert all(isinstance(p, str) and p for p in paths), key
    twin = http.get(api_twin(exchange["request"]["path"]))
    assert twin.status_code == 404
    assert twin.headers.get("Content-Type") == "application/octet-stream"
    assert twin.content == b""


@checks("GET_system_stats.json")
def check_system_stats(name: str, http: httpx.Client) -> None:
    """The recorded structure plus the emulator's ``emulator`` key. The versions ComfyUI reports
    about itself are exact; RAM, python, pytorch and argv describe the emulator (MACHINE_STATS)."""
    exchange = load(f"http/{name}")
    recorded = exchange["response"]
    for path in (exchange["request"]["path"], api_twin(exchange["request"]["path"])):
        response = http.get(path)
        assert response.status_code == recorded["status"]
        assert_headers(response, recorded, length=False, where=path)  # MACHINE_STATS
        got = response.json()
        emulator = got.pop("emulator")
        assert emulator["stand_in_pixels"] is True
        machine = {"argv"}  # MACHINE_STATS: a different command line (another length)
        assert shape(without(got, machine)) == shape(without(recorded["body"], machine))
        assert all(isinstance(a, str) for a in got["system"]["argv"])
        for key in ("os", "comfyui_version", "required_frontend_version",
                    "installed_templates_version", "required_templates_version",
                    "embedded_python"):
            assert got["system"][key] == recorded["body"]["system"][key], key
        for key in ("name", "type", "index"):
            assert got["devices"][0][key] == recorded["body"]["devices"][0][key], key


@checks("GET_extensions.json")
def check_extensions(name: str, http: httpx.Client) -> None:
    """A JSON list of extension script paths; the emulator has no frontend, so it is empty
    (NO_FRONTEND)."""
    exchange = load(f"http/{name}")
    recorded = exchange["response"]
    for path in (exchange["request"]["path"], api_twin(exchange["request"]["path"])):
        response = http.get(path)
        assert response.status_code == recorded["status"]
        assert_headers(response, recorded, length=False, where=path)  # NO_FRONTEND
        assert body_of(response) == []  # NO_FRONTEND
        assert all(isinstance(p, str) for p in recorded["body"])


RELIES_ON = (CLIENT_IDS, ENCODED_BYTES, INPUT_FILES, MACHINE_STATS, MODEL_FILES, NO_FRONTEND,
             PATHS, PROMPT_IDS, STAND_IN_PIXELS, TIMESTAMPS)

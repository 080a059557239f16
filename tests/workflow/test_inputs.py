"""Python objects as file-input values (comfy_nb.workflow._inputs): which values are uploaded,
that identical bytes go up once, URLs and local paths, clear errors, and a real run on the
emulator in both dialects."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from comfy_nb import AsyncClient, Result
from comfy_nb.emulator import serve
from comfy_nb.errors import WorkflowError
from comfy_nb.workflow._check import check_workflow
from comfy_nb.workflow._inputs import (
    FILE_INPUTS,
    file_inputs,
    pending_uploads,
    upload_inputs,
)
from tests import fixture_paths

from ..http_server import http_server

FIXTURES = fixture_paths.COMFYUI


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    info: dict[str, Any] = json.loads((FIXTURES / "http" / "object_info.json").read_text())
    return info


class FakeUpload:
    """An ``upload`` that records its calls and names files ``up_<n>_<name>``."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str | None]] = []

    async def __call__(self, data: Any, name: str | None) -> str:
        assert isinstance(data, bytes)
        self.calls.append((data, name))
        return f"up_{len(self.calls)}_{name}"


def _png(color: tuple[int, int, int] = (200, 30, 40)) -> Image.Image:
    return Image.new("RGB", (8, 6), color)


def _png_bytes(color: tuple[int, int, int] = (1, 2, 3)) -> bytes:
    buffer = io.BytesIO()
    _png(color).save(buffer, format="PNG")
    return buffer.getvalue()


def _load_preview(value: Any) -> dict[str, Any]:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": value}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}


def test_file_inputs_come_from_the_upload_flags(object_info: dict[str, Any]) -> None:
    derived = file_inputs(object_info)
    assert derived["LoadImage"] == ("image",)
    assert derived["LoadImageMask"] == ("image",)
    assert derived["LoadImageOutput"] == ("image",)
    assert derived["LoadAudio"] == ("audio",)
    assert derived["LoadVideo"] == ("file",)
    assert "Load3D" not in derived  # file_upload: a 3D model, not uploaded through /upload/image
    assert derived == FILE_INPUTS


def test_pending_uploads_finds_python_objects(tmp_path: Path, object_info: dict[str, Any]
                                              ) -> None:
    local = tmp_path / "photo.png"
    local.write_bytes(_png_bytes())
    array = np.zeros((4, 4, 3), dtype=np.uint8)
    api = {
        "1": {"class_type": "LoadImage", "inputs": {"image": _png()}},
        "2": {"class_type": "LoadImage", "inputs": {"image": array}},
        "3": {"class_type": "LoadImage", "inputs": {"image": b"\x89PNG..."}},
        "4": {"class_type": "LoadImage", "inputs": {"image": local}},
        "5": {"class_type": "LoadImage", "inputs": {"image": str(local)}},
        "6": {"class_type": "LoadImage", "inputs": {"image": local.as_uri()}},
        "7": {"class_type": "LoadAudio", "inputs": {"audio": "https://example.com/a.wav"}},
        "8": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},  # on the server
        "9": {"class_type": "LoadImage", "inputs": {"image": "not_here.png"}},  # left to check
        "10": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0],
                                                      "filename_prefix": str(local)}},
        "12": {"class_type": "LoadImage", "inputs": {"image": "/no/such/dir/x.png"}},
    }
    found = pending_uploads(api, object_info)
    assert [(node, name) for node, name, _ in found] == [
        ("1", "image"), ("2", "image"), ("3", "image"), ("4", "image"), ("5", "image"),
        ("6", "image"), ("7", "audio"), ("12", "image")]
    assert found[1][2] is array
    # Without object_info the packaged definitions say which inputs take files.
    assert [node for node, _, _ in pending_uploads(api, None)] == [
        "1", "2", "3", "4", "5", "6", "7", "12"]
    assert pending_uploads([1, 2], object_info) == []  # type: ignore[arg-type]


async def test_upload_inputs_replaces_values_and_dedupes(object_info: dict[str, Any]) -> None:
    array = np.full((4, 5, 3), 0.5, dtype=np.float32)
    api: dict[str, Any] = {
        "1": {"class_type": "LoadImage", "inputs": {"image": array}},
        "2": {"class_type": "LoadImage", "inputs": {"image": array.copy()}},  # same pixels
        "3": {"class_type": "LoadImage", "inputs": {"image": _png()}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "5": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["3", 0]}},
    }
    upload = FakeUpload()
    cache: dict[str, str] = {}
    new = await upload_inputs(api, object_info, upload, cache=cache)
    assert len(upload.calls) == 2
    first, second = upload.calls
    assert first[1] is not None and first[1].endswith(".png")
    assert first[0].startswith(b"\x89PNG")
    assert new["1"]["inputs"]["image"] == new["2"]["inputs"]["image"] == f"up_1_{first[1]}"
    assert new["3"]["inputs"]["image"] == f"up_2_{second[1]}"
    assert new["4"] is api["4"] and new["5"] is api["5"]  # untouched nodes are shared
    assert api["1"]["inputs"]["image"] is array  # the caller's workflow is not changed
    assert cache == {hashlib.sha256(first[0]).hexdigest(): f"up_1_{first[1]}",
                     hashlib.sha256(second[0]).hexdigest(): f"up_2_{second[1]}"}

    again = await upload_inputs(api, object_info, upload, cache=cache)
    assert len(upload.calls) == 2  # one cache per server: nothing goes up twice
    assert again == new


async def test_nothing_pending_returns_a_copy(object_info: dict[str, Any]) -> None:
    api = _load_preview("example.png")
    upload = FakeUpload()
    new = await upload_inputs(api, object_info, upload, cache={})
    assert new == api and new is not api and upload.calls == []


async def test_local_paths_and_file_urls(tmp_path: Path, object_info: dict[str, Any]) -> None:
    local = tmp_path / "my photo.png"
    data = _png_bytes()
    local.write_bytes(data)
    upload = FakeUpload()
    for value in (local, str(local), local.as_uri()):
        new = await upload_inputs(_load_preview(value), object_info, upload, cache={})
        assert new["1"]["inputs"]["image"] == f"up_{len(upload.calls)}_my photo.png"
    assert upload.calls == [(data, "my photo.png")] * 3


async def test_bytes_get_a_sniffed_name(object_info: dict[str, Any]) -> None:
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(28)
    api = {"1": {"class_type": "LoadAudio", "inputs": {"audio": wav}},
           "2": {"class_type": "LoadImage", "inputs": {"image": _png_bytes()}}}
    upload = FakeUpload()
    await upload_inputs(api, object_info, upload, cache={})
    names = [name for _, name in upload.calls]
    assert names[0] is not None and names[0].endswith(".wav")
    assert names[1] is not None and names[1].endswith(".png")


async def test_load_image_output_reads_the_upload_from_input(object_info: dict[str, Any]
                                                             ) -> None:
    api = {"1": {"class_type": "LoadImageOutput", "inputs": {"image": _png()}}}
    new = await upload_inputs(api, object_info, FakeUpload(), cache={})
    assert new["1"]["inputs"]["image"].endswith(".png [input]")


async def test_missing_local_file_is_a_clear_error(tmp_path: Path, object_info: dict[str, Any]
                                                  ) -> None:
    missing = tmp_path / "gone.png"
    for value in (missing, str(missing), missing.as_uri()):
        with pytest.raises(WorkflowError, match=r"no file at .*gone\.png"):
            await upload_inputs(_load_preview(value), object_info, FakeUpload(), cache={})


async def test_an_image_object_for_audio_is_refused(object_info: dict[str, Any]) -> None:
    api = {"1": {"class_type": "LoadAudio", "inputs": {"audio": _png()}}}
    with pytest.raises(WorkflowError, match="audio"):
        await upload_inputs(api, object_info, FakeUpload(), cache={})


@pytest.fixture
def web_server() -> Iterator[str]:
    """A local HTTP server: /pic.png is an image, anything else is a 404."""
    body = _png_bytes((9, 9, 9))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/pic.png"):
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, *args: Any) -> None:
            pass

    with http_server(Handler) as url:
        yield url


async def test_http_urls_are_fetched(web_server: str, object_info: dict[str, Any]) -> None:
    upload = FakeUpload()
    new = await upload_inputs(_load_preview(f"{web_server}/pic.png?x=1"), object_info, upload,
                              cache={})
    assert upload.calls == [(_png_bytes((9, 9, 9)), "pic.png")]
    assert new["1"]["inputs"]["image"] == "up_1_pic.png"


async def test_failed_fetch_is_a_clear_error(web_server: str, object_info: dict[str, Any]
                                            ) -> None:
    with pytest.raises(WorkflowError, match=r"could not fetch .*/missing\.png"):
        await upload_inputs(_load_preview(f"{web_server}/missing.png"), object_info,
                            FakeUpload(), cache={})


@pytest.mark.parametrize("dialect", ["local", "cloud"])
@pytest.mark.parametrize("kind", ["pil", "numpy"])
async def test_end_to_end_on_the_emulator(dialect: str, kind: str) -> None:
    value: Any = _png((10, 120, 240))
    if kind == "numpy":
        value = np.linspace(0.0, 1.0, 6 * 8 * 3, dtype=np.float32).reshape(6, 8, 3)
    with serve(dialect=dialect) as server:
        async with AsyncClient(server.url, api_key=server.api_key) as client:
            object_info = await client.object_info()
            api = _load_preview(value)

            async def upload(data: Any, name: str | None) -> str:
                return await client.upload_image(data, name=name)

            cache: dict[str, str] = {}
            ready = await upload_inputs(api, object_info, upload, cache=cache)
            name = ready["1"]["inputs"]["image"]
            assert isinstance(name, str) and list(cache.values()) == [name]
            assert check_workflow(ready, object_info, known_files=cache.values()) == []
            # The client validates against its cached node definitions: refresh them, so their
            # file lists show the upload made behind its back.
            fresh = await client.object_info(refresh=True)
            assert check_workflow(ready, fresh) == []
            result = await asyncio.wait_for(client.run(ready), timeout=60)
            assert isinstance(result, Result)
            again = await upload_inputs(api, object_info, upload, cache=cache)
            assert again["1"]["inputs"]["image"] == name

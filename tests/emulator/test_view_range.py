"""``Range`` on the local dialect's ``/view`` and ``/api/view``: a plain file is served the way
ComfyUI serves it (aiohttp's FileResponse): 200 with the whole file and ``Accept-Ranges``, 206
with ``Content-Range`` for a satisfiable range, 416 with ``Content-Range: bytes */size`` for one
that is not. Previews and channel views are made in memory and ignore Range, as ComfyUI's do."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from comfy_nb.emulator import RunningEmulator

from ..factories import Emulators

QUERY = {"filename": "example.png", "type": "input"}


@pytest.fixture(scope="module")
def server(module_emulators: Emulators) -> RunningEmulator:
    return module_emulators("local")


@pytest.fixture
def http(server: RunningEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        yield client


@pytest.fixture(scope="module")
def whole(server: RunningEmulator) -> bytes:
    return (server.input_dir / "example.png").read_bytes()


@pytest.mark.parametrize("path", ["/view", "/api/view"])
def test_without_range_the_whole_file_says_it_takes_ranges(http: httpx.Client, whole: bytes,
                                                          path: str) -> None:
    response = http.get(path, params=QUERY)
    assert response.status_code == 200
    assert response.content == whole
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"] == 'filename="example.png"'
    assert "Content-Range" not in response.headers


@pytest.mark.parametrize("path", ["/view", "/api/view"])
@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=0-15", 0, 15),
    ("bytes=10-", 10, None),
    ("bytes=-7", None, None),
    ("bytes=5-99999999", 5, None),
])
def test_a_satisfiable_range_is_206_with_its_bytes(http: httpx.Client, whole: bytes, path: str,
                                                   header: str, first: int | None,
                                                   last: int | None) -> None:
    response = http.get(path, params=QUERY, headers={"Range": header})
    size = len(whole)
    start = size - 7 if first is None else first
    end = size - 1 if last is None else last
    assert response.status_code == 206
    assert response.content == whole[start:end + 1]
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.headers["Content-Type"] == "image/png"


@pytest.mark.parametrize("path", ["/view", "/api/view"])
@pytest.mark.parametrize("header", ["bytes=999999-", "bytes=5-2", "bytes=0-1,4-5", "lines=1-2"])
def test_an_unsatisfiable_range_is_416_with_the_size(http: httpx.Client, whole: bytes, path: str,
                                                     header: str) -> None:
    response = http.get(path, params=QUERY, headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(whole)}"
    assert response.content == b""


def test_a_preview_is_made_whole_and_ignores_range(http: httpx.Client) -> None:
    response = http.get("/view", params={**QUERY, "preview": "webp;50"},
                        headers={"Range": "bytes=0-3"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/webp"
    assert response.content[:4] == b"RIFF"
    assert len(response.content) > 4


def test_file_faults_still_apply(server: RunningEmulator, http: httpx.Client) -> None:
    server.set_faults(html_view=True)
    try:
        response = http.get("/view", params=QUERY, headers={"Range": "bytes=0-3"})
    finally:
        server.set_faults(html_view=False)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")

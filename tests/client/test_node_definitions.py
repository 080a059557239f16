"""Node definitions kept on disk per server (comfy_nb.client._node_definitions): a new client of
the same server reads them from disk instead of asking the server, and asks again before it
reports a problem the copy may be wrong about. Requests are counted by a recording proxy in
front of the emulator, through the synchronous and the asynchronous client."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import comfy_nb
from comfy_nb.cache import ResultCache, settings
from comfy_nb.client import _node_definitions as node_definitions
from comfy_nb.client._node_definitions import FOLDER
from comfy_nb.emulator import RunningEmulator, serve
from comfy_nb.errors import WorkflowInvalid

from ..both_clients import WAIT, Api, load_and_save, make_client
from ..factories import Emulators
from ..wiretap import Wiretap


def invert(color: int = 0x123456) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                    "filename_prefix": "defs"}},
    }


@pytest.fixture(autouse=True)
def cache_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The cache as users get it (the test session turns it off)."""
    monkeypatch.delenv("COMFY_NB_CACHE", raising=False)
    settings.enabled = None
    yield
    settings.enabled = None


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(emulators: Emulators) -> RunningEmulator:
    return emulators(step_delay=0.0)


@pytest.fixture
def tap(server: RunningEmulator) -> Iterator[Wiretap]:
    wiretap = Wiretap(server.url).start()
    try:
        yield wiretap
    finally:
        wiretap.close()


@pytest.fixture
def store(tmp_path: Path) -> ResultCache:
    return ResultCache(tmp_path / "cache")


def definition_reads(tap: Wiretap) -> int:
    return sum(1 for head in tap.requests() if head.startswith(b"GET /api/object_info "))


async def client(mode: str, tap: Wiretap, store: ResultCache, **options: Any) -> Api:
    return Api(mode, await make_client(mode, tap.url, result_cache=store, **options))


def stored_copies(store: ResultCache) -> list[Path]:
    folder = store.directory / FOLDER
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, "PNG")
    return buffer.getvalue()


async def test_a_second_client_reads_them_from_disk(mode: str, tap: Wiretap,
                                                    store: ResultCache) -> None:
    first = await client(mode, tap, store)
    assert (await first.run(invert(1), cache=False, timeout=WAIT)).files
    await first.close()  # lets the copy be written
    assert definition_reads(tap) == 1 and len(stored_copies(store)) == 1

    second = await client(mode, tap, store)
    try:
        assert (await second.run(invert(2), cache=False, timeout=WAIT)).files
        assert "ImageInvert" in await second.object_info()
        assert definition_reads(tap) == 1  # the new client did not ask the server
        await second.object_info(refresh=True)  # on demand
        assert definition_reads(tap) == 2
    finally:
        await second.close()


async def test_a_node_the_copy_lacks_is_asked_for(mode: str, tap: Wiretap,
                                                  store: ResultCache) -> None:
    first = await client(mode, tap, store)
    await first.object_info()
    await first.close()
    (path,) = stored_copies(store)
    copy = json.loads(path.read_text("utf-8"))
    del copy["object_info"]["ImageInvert"]  # a class the server gained since the copy
    path.write_text(json.dumps(copy), "utf-8")

    second = await client(mode, tap, store)
    try:
        result = await second.run(invert(3), cache=False, timeout=WAIT)
        assert result.files and definition_reads(tap) == 2  # asked again, then ran
        assert "ImageInvert" in await second.object_info()
        await second.close()
        assert "ImageInvert" in json.loads(path.read_text("utf-8"))["object_info"]
    finally:
        await second.close()


async def test_a_file_the_copy_does_not_list_is_asked_for(mode: str, tap: Wiretap,
                                                          server: RunningEmulator,
                                                          store: ResultCache) -> None:
    first = await client(mode, tap, store)
    await first.object_info()
    await first.close()
    # another kernel put a file on the server since the copy was written
    (server.state.input_dir / "later.png").write_bytes(png((1, 2, 3)))
    second = await client(mode, tap, store)
    try:
        result = await second.run(load_and_save("later.png"), cache=False, timeout=WAIT)
        assert result.files and definition_reads(tap) == 2
    finally:
        await second.close()


async def test_a_real_problem_is_reported_after_one_look(mode: str, tap: Wiretap,
                                                         store: ResultCache,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    first = await client(mode, tap, store)
    await first.object_info()
    await first.close()
    second = await client(mode, tap, store)
    try:
        broken = invert()
        broken["2"]["class_type"] = "NoSuchNode"
        with pytest.raises(WorkflowInvalid, match="NoSuchNode"):
            await second.run(broken, cache=False, timeout=WAIT)
        assert definition_reads(tap) == 2  # the server's own list, not the copy, said so
        with pytest.raises(WorkflowInvalid, match="NoSuchNode"):
            await second.run(broken, cache=False, timeout=WAIT)
        assert definition_reads(tap) == 2  # a list just read is trusted for a while
        monkeypatch.setattr(node_definitions, "TRUSTED_FOR", 0.0)
        with pytest.raises(WorkflowInvalid, match="NoSuchNode"):
            await second.run(broken, cache=False, timeout=WAIT)
        assert definition_reads(tap) == 3  # then a class the list lacks is asked for again
    finally:
        await second.close()


async def test_the_copy_belongs_to_one_server_and_version(mode: str, tap: Wiretap,
                                                          store: ResultCache) -> None:
    first = await client(mode, tap, store)
    await first.object_info()
    await first.close()
    with serve(step_delay=0.0) as other:  # another server: its own copy
        other_tap = Wiretap(other.url).start()
        try:
            third = Api(mode, await make_client(mode, other_tap.url, result_cache=store))
            await third.object_info()
            await third.close()
            assert definition_reads(other_tap) == 1
        finally:
            other_tap.close()
    assert len(stored_copies(store)) == 2
    (path, _) = sorted(stored_copies(store), key=lambda p: p.stat().st_mtime)
    copy = json.loads(path.read_text("utf-8"))
    assert copy["server"].startswith("local:http://127.0.0.1:")
    copy["server"] = copy["server"].rsplit(" ", 1)[0] + " 0.0.1"  # filed for another version
    path.write_text(json.dumps(copy), "utf-8")
    again = await client(mode, tap, store)
    try:
        await again.object_info()
        assert definition_reads(tap) == 2
    finally:
        await again.close()


async def test_a_damaged_copy_is_read_again_from_the_server(mode: str, tap: Wiretap,
                                                            store: ResultCache) -> None:
    first = await client(mode, tap, store)
    await first.object_info()
    await first.close()
    (path,) = stored_copies(store)
    path.write_text('{"format": 1, "server"', "utf-8")  # cut short
    second = await client(mode, tap, store)
    try:
        assert "SaveImage" in await second.object_info()
        assert definition_reads(tap) == 2
    finally:
        await second.close()
    assert "SaveImage" in json.loads(path.read_text("utf-8"))["object_info"]
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


async def test_with_the_cache_off_nothing_is_kept(mode: str, tap: Wiretap, store: ResultCache,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFY_NB_CACHE", "off")
    for _ in range(2):
        api = await client(mode, tap, store)
        await api.object_info()
        await api.close()
    assert definition_reads(tap) == 2 and stored_copies(store) == []


async def test_the_cloud_key_is_never_kept(mode: str, store: ResultCache) -> None:
    with serve(dialect="cloud", step_delay=0.0) as cloud:
        api = Api(mode, await make_client(mode, cloud.url, api_key=cloud.api_key,
                                          result_cache=store))
        assert "SaveImage" in await api.object_info()
        await api.close()
        (path,) = stored_copies(store)
        assert cloud.api_key and cloud.api_key not in path.read_text("utf-8")
        assert cloud.api_key not in str(path)


async def test_runs_started_at_once_share_one_read_of_the_definitions(
        tap: Wiretap, store: ResultCache) -> None:
    async with comfy_nb.AsyncClient(tap.url, result_cache=store) as fresh:
        results = await asyncio.gather(*(fresh.run(invert(color), cache=False, timeout=WAIT)
                                         for color in range(30, 34)))
        assert all(result.files for result in results)
        assert definition_reads(tap) == 1  # one request, its answer shared by the four
        await asyncio.gather(fresh.object_info(refresh=True), fresh.object_info(refresh=True))
        assert definition_reads(tap) == 2

"""comfy_nb.cache: the result cache on disk, and the client using it against the emulator over
real sockets, through the synchronous Client and the AsyncClient (the ``mode`` fixture).

Every test uses its own cache folder under ``tmp_path``; the session's conftest keeps the global
cache off and away from the user's folder, and the autouse fixture here restores the product's
default (on) for these tests.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import comfy_nb
from comfy_nb import ExecutionFailed, Result
from comfy_nb.cache import (
    CacheEntry,
    EntryWriter,
    ResultCache,
    cache_key,
    default_cache,
    default_directory,
    server_identity,
    settings,
)
from comfy_nb.emulator import RunningEmulator, serve
from comfy_nb.events import Cached, Succeeded
from comfy_nb.workflows import bundled

from .both_clients import WAIT, Api, load_and_save
from .factories import Clients, Emulators
from .wiretap import Wiretap

SIGNED_URL_MARK = "X-Goog-Signature"


# -- workflows and files --------------------------------------------------------------------------


def solid(color: int = 0x336699, prefix: str = "cache_test") -> dict[str, Any]:
    """EmptyImage -> SaveImage."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                     "color": color},
              "_meta": {"title": "Canvas"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                    "filename_prefix": prefix}},
    }


def small_txt2img() -> dict[str, Any]:
    """The bundled text-to-image graph, small and short."""
    workflow = bundled("txt2img")
    workflow["3"]["inputs"]["steps"] = 1
    workflow["5"]["inputs"].update(width=64, height=64)
    return workflow


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, "PNG")
    return buffer.getvalue()


def jobs_on(server: RunningEmulator) -> int:
    """How many prompts the emulator was given."""
    return len(server.state.jobs)


def folder_text(folder: Path) -> bytes:
    """Every byte under ``folder``, to search for what must never be stored."""
    return b"".join(path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file())


# -- clients, both ways ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def product_defaults(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The cache as users get it: on unless switched off (the session turned it off)."""
    monkeypatch.delenv("COMFY_NB_CACHE", raising=False)
    settings.enabled = None
    yield
    settings.enabled = None


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(emulators: Emulators) -> RunningEmulator:
    return emulators(step_delay=0.01)


@pytest.fixture
def store(tmp_path: Path) -> ResultCache:
    return ResultCache(tmp_path / "results")


@pytest.fixture
def connect(mode: str, server: RunningEmulator, store: ResultCache, clients: Clients
            ) -> Callable[..., Awaitable[Api]]:
    """Make clients (closed at the end): ``await connect()``, ``await connect(url, ...)``."""

    async def make(url: str | None = None, **options: Any) -> Api:
        options = {"result_cache": store, "poll_interval": 0.2, **options}
        return await clients.api(mode, server, url=url, **options)

    return make


@pytest.fixture
async def api(connect: Callable[..., Awaitable[Api]]) -> Api:
    return await connect()


# -- the cache on its own -------------------------------------------------------------------------


def fake_result(prompt_id: str = "p1", names: tuple[str, ...] = ("a.png",)) -> Result:
    outputs = {"9": {"images": [{"filename": n, "subfolder": "", "type": "output"}
                                for n in names]}}
    return Result(prompt_id, outputs, source=None)


def put(cache: ResultCache, key: str, blobs: dict[str, bytes], *, prompt_id: str = "p1",
        **extra: Any) -> CacheEntry | None:
    result = fake_result(prompt_id, tuple(blobs))
    writer = cache.writer(key)
    for file in result.files:
        writer.write(file, blobs[file.filename])
    return writer.commit(prompt_id=prompt_id, outputs=result.outputs, workflow=solid(),
                         server="local:http://x", **extra)


def key_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_keys_are_stable_and_follow_what_matters() -> None:
    workflow = solid()
    key = cache_key("local:http://a", workflow)
    assert key == cache_key("local:http://a", json.loads(json.dumps(workflow)))
    retitled = solid()
    retitled["1"]["_meta"]["title"] = "Another title"
    assert cache_key("local:http://a", retitled) == key  # titles do not change what runs
    assert cache_key("local:http://b", workflow) != key
    assert cache_key("local:http://a", solid(color=1)) != key
    assert cache_key("local:http://a", workflow, {"1.image": "ab" * 32}) != key


def test_server_identity() -> None:
    emulator = {"system": {}, "emulator": {"name": "comfy_nb emulator"}}
    assert server_identity("http://127.0.0.1:41234", "local", emulator) \
        == server_identity("http://127.0.0.1:50000", "local", emulator)
    assert server_identity("http://127.0.0.1:1", "cloud", emulator).startswith(
        "comfy_nb-emulator/cloud/")
    assert server_identity("HTTP://Example.org:80/comfy/", "local", {}) \
        == "local:http://example.org/comfy"
    assert server_identity("https://cloud.comfy.org", "cloud", {"system": {}}) \
        == "cloud:https://cloud.comfy.org"


def test_the_same_address_serving_another_build_is_another_server() -> None:
    def stats(**system: str) -> dict[str, Any]:
        return {"system": {"os": "posix", "python_version": "3.12", **system}}

    old = server_identity("http://gpu1:8188", "local", stats(comfyui_version="0.3.64"))
    new = server_identity("http://gpu1:8188", "local", stats(comfyui_version="0.3.65"))
    assert old == "local:http://gpu1:8188 comfyui/0.3.64" and new != old
    assert cache_key(old, solid()) != cache_key(new, solid())
    assert server_identity("http://gpu1:8188", "local", stats(comfyui_version="0.3.64")) == old
    cloud = server_identity("https://cloud.comfy.org", "cloud",
                            stats(comfyui_version="0.3.64", cloud_version="2026.11.3"))
    assert cloud == "cloud:https://cloud.comfy.org comfyui/0.3.64 cloud/2026.11.3"


def test_store_and_read_back(store: ResultCache) -> None:
    key = key_of("one")
    entry = put(store, key, {"a.png": png((1, 2, 3)), "b.png": png((4, 5, 6))})
    assert entry is not None and entry.size > 0
    result = store.get(key)
    assert result is not None and result.from_cache and result.status == "succeeded"
    assert result.cached_at == pytest.approx(time.time(), abs=60)
    assert [f.read() for f in result.files] == [png((1, 2, 3)), png((4, 5, 6))]
    assert "from cache" in repr(result)
    assert store.get(key_of("other")) is None
    assert key in store and len(store.entries()) == 1
    assert not [p for p in store.directory.iterdir() if p.name.startswith(".")]


def test_least_recently_used_entries_go_first(tmp_path: Path) -> None:
    blob = os.urandom(1000)
    cache = ResultCache(tmp_path / "c")
    first, second, third, fourth = (key_of(str(i)) for i in range(4))
    for key in (first, second, third):
        entry = put(cache, key, {"a.png": blob})
        assert entry is not None
        time.sleep(0.02)
    cache.max_bytes = 3 * entry.size + 10  # room for three entries
    assert cache.get(first) is not None  # used: now the most recent
    time.sleep(0.02)
    assert put(cache, fourth, {"a.png": blob}) is not None
    kept = {entry.key for entry in cache.entries()}
    assert kept == {first, third, fourth}  # second was the least recently used
    assert cache.size() <= cache.max_bytes


def test_an_entry_larger_than_the_cache_is_not_kept(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "c", max_bytes=500)
    assert put(cache, key_of("big"), {"a.png": os.urandom(2000)}) is None
    assert cache.entries() == [] and cache.get(key_of("big")) is None
    assert list(cache.directory.iterdir()) == []  # no staging left behind


def test_damaged_entries_are_misses_and_removed(store: ResultCache) -> None:
    garbled, truncated, orphan = key_of("garbled"), key_of("truncated"), key_of("orphan")
    for key in (garbled, truncated, orphan):
        put(store, key, {"a.png": png((9, 9, 9))})
    (store.directory / garbled / "entry.json").write_text("{not json")
    blob = next((store.directory / truncated / "files").iterdir())
    blob.write_bytes(blob.read_bytes()[:10])
    blob = next((store.directory / orphan / "files").iterdir())
    blob.unlink()
    for key in (garbled, truncated, orphan):
        assert store.get(key) is None
        assert not (store.directory / key).exists()


def test_an_entry_removed_under_a_reader(store: ResultCache) -> None:
    key = key_of("vanishing")
    put(store, key, {"a.png": png((1, 1, 1))})
    result = store.get(key)
    assert result is not None
    assert store.remove(key) and not store.remove(key)  # another process evicted it
    with pytest.raises(FileNotFoundError, match="gone from the result cache"):
        result.files[0].read()
    assert store.get(key) is None


def test_two_writers_of_one_key(store: ResultCache) -> None:
    key = key_of("race")
    result = fake_result()
    writers = [store.writer(key), store.writer(key)]
    for writer in writers:
        writer.write(result.files[0], png((2, 2, 2)))
    entries = [w.commit(prompt_id="p1", outputs=result.outputs, workflow=None,
                        server="s") for w in writers]
    assert all(entry is not None and entry.key == key for entry in entries)
    assert [e.key for e in store.entries()] == [key]
    assert not [p for p in store.directory.iterdir() if p.name.startswith(".")]


def test_signed_urls_and_credentials_are_never_stored(store: ResultCache) -> None:
    outputs = {"9": {"images": [{"filename": "a.png", "subfolder": "", "type": "output",
                                 "url": f"https://storage.example/a.png?{SIGNED_URL_MARK}=x"}]}}
    writer = store.writer(key_of("signed"))
    writer.write(Result("p", outputs, source=None).files[0], png((3, 3, 3)))
    entry = writer.commit(prompt_id="p", outputs=outputs, workflow=None, server="s")
    assert entry is not None and SIGNED_URL_MARK.encode() not in folder_text(store.directory)
    workflow = {"1": {"class_type": "ApiNode", "inputs": {"api_key": "sk-live-secret"}}}
    writer = store.writer(key_of("keyed"))
    assert writer.commit(prompt_id="p", outputs={}, workflow=workflow, server="s",
                         credentials=["sk-live-secret"]) is None
    assert store.get(key_of("keyed")) is None


def test_abandoned_staging_folders_are_swept(store: ResultCache) -> None:
    stale = store.directory / ".staging-0123456789abcdef"
    (stale / "files").mkdir(parents=True)
    old = time.time() - 3 * 24 * 3600
    os.utime(stale, (old, old))
    fresh = store.writer(key_of("fresh"))
    store.evict()
    assert not stale.exists() and fresh.folder.exists()
    fresh.discard()
    assert not fresh.folder.exists()


def test_settings_and_the_environment(monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    assert settings.enabled
    monkeypatch.setenv("COMFY_NB_CACHE", "off")
    assert not settings.enabled
    comfy_nb.cache.enable(True)
    assert settings.enabled  # an explicit choice wins over the environment
    comfy_nb.cache.enable(False)
    assert not settings.enabled
    monkeypatch.setenv("COMFY_NB_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert default_directory() == tmp_path / "elsewhere"
    assert default_cache().directory == tmp_path / "elsewhere"
    monkeypatch.delenv("COMFY_NB_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert default_directory() == tmp_path / "xdg" / "comfy_nb" / "results"


# -- the client -----------------------------------------------------------------------------------


async def test_an_identical_run_is_a_hit(api: Api, server: RunningEmulator,
                                         store: ResultCache) -> None:
    first = await api.run(solid(), timeout=WAIT)
    assert not first.from_cache and len(store.entries()) == 1
    jobs = jobs_on(server)
    second = await api.run(solid(), timeout=WAIT)
    assert second.from_cache and second.prompt_id == first.prompt_id
    assert jobs_on(server) == jobs  # nothing was sent
    assert await api.read(second.images[0]) == await api.read(first.images[0])
    assert second.workflow is not None and second.workflow["1"]["_meta"]["title"] == "Canvas"
    assert (await api.cached_result(solid())).from_cache
    renamed = solid()
    renamed["1"]["_meta"]["title"] = "Renamed"
    third = await api.run(renamed, timeout=WAIT)  # titles are not part of the key
    assert third.from_cache and third.workflow["1"]["_meta"]["title"] == "Renamed"


async def test_a_different_run_is_a_miss(api: Api, server: RunningEmulator) -> None:
    await api.run(solid(color=1), timeout=WAIT)
    jobs = jobs_on(server)
    other = await api.run(solid(color=2), timeout=WAIT)
    assert not other.from_cache and jobs_on(server) == jobs + 1
    assert await api.cached_result(solid(color=3)) is None
    overridden = await api.run(solid(color=1), overrides={"Canvas.color": 2}, timeout=WAIT)
    assert overridden.from_cache  # the same workflow once the override is applied


async def test_a_changed_input_file_is_a_miss(api: Api, server: RunningEmulator,
                                              tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(png((255, 0, 0)))
    red = await api.run(load_and_save(str(photo)), timeout=WAIT)
    photo.write_bytes(png((0, 0, 255)))  # same path, other content
    blue = await api.run(load_and_save(str(photo)), timeout=WAIT)
    assert not blue.from_cache and jobs_on(server) == 2
    assert await api.read(blue.images[0]) != await api.read(red.images[0])
    photo.write_bytes(png((255, 0, 0)))
    again = await api.run(load_and_save(str(photo)), timeout=WAIT)
    assert again.from_cache and jobs_on(server) == 2
    assert await api.read(again.images[0]) == await api.read(red.images[0])


async def test_a_file_replaced_under_the_same_server_name_is_a_miss(
        api: Api, server: RunningEmulator) -> None:
    name = await api.upload_image(png((0, 255, 0)), name="same.png", overwrite=True)
    await api.run(load_and_save(name), timeout=WAIT)
    again = await api.upload_image(png((0, 0, 0)), name="same.png", overwrite=True)
    assert again == name
    replaced = await api.run(load_and_save(name), timeout=WAIT)
    assert not replaced.from_cache and jobs_on(server) == 2


async def test_a_hit_uploads_nothing(api: Api, server: RunningEmulator) -> None:
    picture = Image.new("RGB", (5, 5), (10, 200, 30))
    await api.run(load_and_save("example.png"), image=picture, timeout=WAIT)
    uploaded = sorted(p.name for p in server.state.input_dir.iterdir())
    hit = await api.run(load_and_save("example.png"), image=picture.copy(), timeout=WAIT)
    assert hit.from_cache and jobs_on(server) == 1
    assert sorted(p.name for p in server.state.input_dir.iterdir()) == uploaded


async def test_random_seeds_never_hit(api: Api, server: RunningEmulator) -> None:
    one = await api.run(small_txt2img(), seed="random", timeout=WAIT)
    two = await api.run(small_txt2img(), seed="random", timeout=WAIT)
    assert not one.from_cache and not two.from_cache and jobs_on(server) == 2
    fixed = await api.run(small_txt2img(), seed=7, timeout=WAIT)
    again = await api.run(small_txt2img(), seed=7, timeout=WAIT)
    assert not fixed.from_cache and again.from_cache and jobs_on(server) == 3


async def test_the_cache_survives_a_new_client(connect: Callable[..., Awaitable[Api]],
                                               server: RunningEmulator) -> None:
    first = await connect()
    made = await first.run(solid(), timeout=WAIT)
    expected = await first.read(made.images[0])
    await first.close()
    second = await connect()
    served = await second.run(solid(), timeout=WAIT)
    assert served.from_cache and jobs_on(server) == 1
    server.stop()  # a hit needs no server
    offline = await second.run(solid(), validate=False, timeout=WAIT)
    assert offline.from_cache and await second.read(offline.images[0]) == expected


def test_the_cache_survives_a_kernel_restart(tmp_path: Path) -> None:
    """A new process with a new emulator (another port) is served from the same folder."""
    script = (
        "import hashlib, json, sys\n"
        "import comfy_nb\n"
        "from comfy_nb.cache import ResultCache\n"
        "from comfy_nb.emulator import serve\n"
        "with serve() as server, comfy_nb.connect(server.url,\n"
        "        result_cache=ResultCache(sys.argv[1])) as client:\n"
        "    result = client.run(json.loads(sys.argv[2]), timeout=30)\n"
        "    print(json.dumps({'from_cache': result.from_cache, 'jobs': len(server.state.jobs),\n"
        "        'sha': hashlib.sha256(result.images[0].read()).hexdigest()}))\n"
    )
    folder, workflow = str(tmp_path / "results"), json.dumps(solid(color=77))
    env = {**os.environ, "COMFY_NB_CACHE": "on"}
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", script, folder, workflow], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert [r["from_cache"] for r in runs] == [False, True]
    assert [r["jobs"] for r in runs] == [1, 0]
    assert runs[0]["sha"] == runs[1]["sha"]


async def test_cache_false_bypasses_it(api: Api, server: RunningEmulator,
                                       store: ResultCache) -> None:
    await api.run(solid(), cache=False, timeout=WAIT)
    assert store.entries() == []
    await api.run(solid(), timeout=WAIT)
    fresh = await api.run(solid(), cache=False, timeout=WAIT)
    assert not fresh.from_cache and jobs_on(server) == 3


async def test_the_global_switch(api: Api, server: RunningEmulator, store: ResultCache,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    comfy_nb.cache.enable(False)
    await api.run(solid(), timeout=WAIT)
    await api.run(solid(), timeout=WAIT)
    assert jobs_on(server) == 2 and store.entries() == []
    assert (await api.run(solid(), cache=True, timeout=WAIT)).from_cache is False
    assert (await api.run(solid(), cache=True, timeout=WAIT)).from_cache  # per call wins
    settings.enabled = None
    monkeypatch.setenv("COMFY_NB_CACHE", "off")
    assert not (await api.run(solid(), timeout=WAIT)).from_cache
    monkeypatch.setenv("COMFY_NB_CACHE", "on")
    assert (await api.run(solid(), timeout=WAIT)).from_cache


async def test_submit_with_the_cache(api: Api, server: RunningEmulator) -> None:
    job = await api.submit(solid(), cache=True)
    made = await api.wait(job)
    assert not made.from_cache
    assert await api.read(made.images[0])  # read from the entry once it is written
    hit = await api.submit(solid(), cache=True)
    assert hit.done and hit.id == job.id and jobs_on(server) == 1
    events = await api.events(hit)
    assert [type(e) for e in events] == [Cached, Succeeded]
    assert set(events[0].nodes) == {"1", "2"}
    progress = hit.progress()
    assert progress.nodes_done == progress.nodes_total == 2
    assert (await api.wait(hit)).from_cache
    assert not (await api.wait(await api.submit(solid()))).from_cache  # submit's default


async def test_a_damaged_entry_is_run_again(api: Api, server: RunningEmulator,
                                            store: ResultCache) -> None:
    await api.run(solid(), timeout=WAIT)
    (entry,) = store.entries()
    (entry.directory / "entry.json").write_text("garbage")
    again = await api.run(solid(), timeout=WAIT)
    assert not again.from_cache and jobs_on(server) == 2
    assert (await api.run(solid(), timeout=WAIT)).from_cache


async def test_failed_runs_are_not_cached(api: Api, store: ResultCache) -> None:
    broken = solid()
    broken["3"] = {"class_type": "ImageSharpen", "inputs": {
        "image": ["1", 0], "sharpen_radius": 1, "sigma": 1.0, "alpha": 1.0}}
    broken["4"] = {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}
    with pytest.raises(ExecutionFailed):
        await api.run(broken, timeout=WAIT)
    assert store.entries() == []


async def test_a_result_too_large_for_the_cache_still_arrives(
        connect: Callable[..., Awaitable[Api]], tmp_path: Path) -> None:
    small = ResultCache(tmp_path / "small", max_bytes=100)
    api = await connect(result_cache=small)
    result = await api.run(solid(), timeout=WAIT)
    assert (await api.read(result.images[0])).startswith(b"\x89PNG")
    assert small.entries() == []
    assert not [p for p in small.directory.iterdir() if p.name.startswith(".staging")]


async def test_a_hit_whose_entry_is_evicted_reads_from_the_server(
        api: Api, store: ResultCache) -> None:
    made = await api.run(solid(), timeout=WAIT)
    expected = await api.read(made.images[0])
    hit = await api.run(solid(), timeout=WAIT)
    store.clear()
    assert await api.read(hit.images[0]) == expected


async def test_the_cloud_key_signed_urls_and_extra_data_stay_out(
        mode: str, store: ResultCache, connect: Callable[..., Awaitable[Api]]) -> None:
    with serve(dialect="cloud", step_delay=0.01) as cloud:
        api = await connect(cloud.url, api_key=cloud.api_key)
        made = await api.run(solid(), extra_data={"note": "extra-data-marker"},
                             partner_key="partner-key-marker", timeout=WAIT)
        assert (await api.read(made.images[0])).startswith(b"\x89PNG")
        assert len(store.entries()) == 1
        stored = folder_text(store.directory)
        for secret in (cloud.api_key or "", "partner-key-marker", "extra-data-marker",
                       SIGNED_URL_MARK, cloud.storage_url):
            assert secret and secret.encode() not in stored, secret
        hit = await api.run(solid(), timeout=WAIT)
        assert hit.from_cache and await api.read(hit.images[0]) == await api.read(
            made.images[0])
        await api.close()


async def test_an_unwritable_cache_never_fails_a_run(connect: Callable[..., Awaitable[Api]],
                                                     tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    api = await connect(result_cache=ResultCache(blocker / "results"))
    for _ in range(2):
        result = await api.run(solid(), timeout=WAIT)
        assert not result.from_cache
        assert (await api.read(result.images[0])).startswith(b"\x89PNG")
    assert "cannot be written" in caplog.text


# -- files served from the cache ------------------------------------------------------------------


async def test_saving_a_hit_again_names_the_files_saved_before(api: Api, server: RunningEmulator,
                                                               tmp_path: Path) -> None:
    """Re-running a notebook: the cell's result comes from the cache, and its files are the
    ones already on disk, not ``name (1).png`` copies."""
    made = await api.run(small_txt2img(), timeout=WAIT)
    first = await api.save(made, tmp_path / "out")
    hit = await api.run(small_txt2img(), timeout=WAIT)
    assert hit.from_cache and jobs_on(server) == 1
    assert await api.save(hit, tmp_path / "out") == first
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [p.name for p in first]


async def test_a_hit_streams_its_files_from_the_entry(api: Api, store: ResultCache,
                                                      tmp_path: Path) -> None:
    made = await api.run(solid(), timeout=WAIT)
    expected = await api.read(made.images[0])
    hit = await api.run(solid(), timeout=WAIT)
    (entry,) = store.entries()
    target = tmp_path / "copy"
    target.touch()
    entry.copy_to(hit.images[0], target)
    assert target.read_bytes() == expected
    with hit.images[0].open() as handle:
        assert handle.read() == expected
    store.clear()  # gone under the reader: the server serves the file
    (path,) = await api.save(hit, tmp_path / "out")
    assert path.read_bytes()[:8] == expected[:8]


async def test_a_page_sent_for_an_image_is_not_cached(api: Api, server: RunningEmulator,
                                                      store: ResultCache) -> None:
    server.faults.update(html_view=True)  # a proxy's login page for every file
    result = await api.run(solid(), timeout=WAIT)
    assert store.entries() == []
    server.faults.update(html_view=False)
    assert (await api.read(result.images[0])).startswith(b"\x89PNG")
    again = await api.run(solid(), timeout=WAIT)
    assert not again.from_cache and jobs_on(server) == 2  # the page was never served as a hit
    assert len(store.entries()) == 1


# -- entries written in the background ------------------------------------------------------------


class HeldCache(ResultCache):
    """A cache whose new entries are published only once ``release`` is set."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.release = threading.Event()

    def writer(self, key: str) -> EntryWriter:
        writer = super().writer(key)
        commit = writer.commit

        def held(**fields: Any) -> CacheEntry | None:
            assert self.release.wait(WAIT)
            return commit(**fields)

        writer.commit = held  # type: ignore[method-assign]
        return writer


def published(cache: ResultCache) -> list[str]:
    """The entry folders on disk, without waiting for any being published."""
    return sorted(p.name for p in cache.directory.iterdir() if len(p.name) == 64)


async def test_the_result_comes_before_its_entry(connect: Callable[..., Awaitable[Api]],
                                                 server: RunningEmulator,
                                                 tmp_path: Path) -> None:
    """``run`` hands out the Result while its entry still waits to be written; its file is read
    from the entry being written (downloaded once), and the entry is there afterwards."""
    held = HeldCache(tmp_path / "held")
    tap = Wiretap(server.url).start()
    try:
        api = await connect(tap.url, result_cache=held)
        try:
            result = await api.run(solid(color=5), timeout=WAIT)
            assert not result.from_cache and published(held) == []
            data = await api.read(result.images[0])
            assert data.startswith(b"\x89PNG") and published(held) == []
            views = [h for h in tap.requests() if h.startswith(b"GET /api/view?")]
            assert len(views) == 1  # the download into the entry, read by the caller too
        finally:
            held.release.set()
        (entry,) = held.entries()  # waits for the entry being published
        assert entry.prompt_id == result.prompt_id and published(held) == [entry.key]
        hit = await api.run(solid(color=5), timeout=WAIT)
        assert hit.from_cache and await api.read(hit.images[0]) == data
    finally:
        tap.close()


async def test_a_lookup_waits_for_the_entry_being_written(
        connect: Callable[..., Awaitable[Api]], server: RunningEmulator,
        tmp_path: Path) -> None:
    held = HeldCache(tmp_path / "held")
    first, second = await connect(result_cache=held), await connect(result_cache=held)
    made = await first.run(solid(color=6), timeout=WAIT)
    assert published(held) == []
    threading.Timer(0.2, held.release.set).start()
    hit = await second.run(solid(color=6), timeout=WAIT)  # another client, same process
    assert hit.from_cache and hit.prompt_id == made.prompt_id and jobs_on(server) == 1


@pytest.mark.slow
def test_results_being_stored_are_kept_at_exit(tmp_path: Path) -> None:
    """A script that never closes its client still leaves its results in the cache."""
    script = (
        "import json, sys\n"
        "import comfy_nb\n"
        "from comfy_nb.cache import ResultCache\n"
        "from comfy_nb.emulator import serve\n"
        "running = serve()\n"
        "server = running.__enter__()  # left running, like the client\n"
        "client = comfy_nb.connect(server.url, result_cache=ResultCache(sys.argv[1]))\n"
        "job = client.submit(json.loads(sys.argv[2]), cache=True)\n"
        "print(json.dumps({'from_cache': job.wait(30).from_cache}))\n"
    )
    folder, workflow = str(tmp_path / "results"), json.dumps(solid(color=78))
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", script, folder, workflow],
                              env={**os.environ, "COMFY_NB_CACHE": "on"},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert [r["from_cache"] for r in runs] == [False, True]


def test_publishing_reads_the_package_metadata_once_at_most(
        store: ResultCache, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    reads: list[str] = []
    real = importlib.metadata.version

    def counted(name: str) -> str:
        reads.append(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", counted)
    for index in range(3):
        entry = put(store, key_of(f"meta{index}"), {"a.png": png((index, 0, 0))})
        assert entry is not None and entry.comfy_nb_version
    assert len(reads) <= 1

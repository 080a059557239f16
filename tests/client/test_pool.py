"""Pools: several emulators behind one client, over real sockets. Runs spread over the members
by free capacity, go only to members that have what they need (else the error names what each
lacks), and each member's key goes to that member only."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import inspect
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

import comfy_nb
from comfy_nb import AsyncPool, Pool
from comfy_nb.emulator import RunningEmulator
from comfy_nb.errors import NoMemberCanRun

from ..cable import Cable
from ..factories import Emulators
from ..fixture_paths import COMFYUI
from ..hiding_proxy import HidingProxy
from ..tiny_workflows import invert
from ..wiretap import Wiretap


def txt2img(checkpoint: str) -> dict[str, Any]:
    """A recorded txt2img prompt, two steps, loading ``checkpoint``."""
    body = json.loads((COMFYUI / "runs" / "txt2img_random_sd15_preview_metadata"
                       / "post_prompt.json").read_text("utf-8"))
    prompt: dict[str, Any] = copy.deepcopy(body["request"]["body"]["prompt"])
    for node in prompt.values():
        if node["class_type"] == "KSampler":
            node["inputs"]["steps"] = 2
        if node["class_type"] == "CheckpointLoaderSimple":
            node["inputs"]["ckpt_name"] = checkpoint
    return prompt


async def pool_of(*servers: RunningEmulator, **options: Any) -> AsyncPool:
    return await AsyncPool([server.url for server in servers], poll_interval=0.1,
                           **options).open()


async def history_ids(server: RunningEmulator) -> list[str]:
    """The ids of the jobs ``server`` ran, read from it by a client of its own."""
    async with comfy_nb.AsyncClient(server.url, api_key=server.api_key) as client:
        return [job["id"] for job in await client.jobs(100)]


# -- making a pool --------------------------------------------------------------------------------

def test_connect_makes_a_pool_of_several_servers_and_a_client_of_one(
        emulators: Emulators, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = emulators(), emulators()
    with comfy_nb.connect(first.url) as single:
        assert type(single) is comfy_nb.Client
        assert single.url == first.url
    with comfy_nb.connect([first.url]) as listed:
        assert type(listed) is comfy_nb.Client
    with comfy_nb.connect([first.url, second.url]) as pool:
        assert isinstance(pool, Pool)
        assert [member.url for member in pool.members] == [first.url, second.url]
        assert pool.dialect == "pool"
    monkeypatch.setenv("COMFY_URL", f"{first.url}, {second.url}")
    with comfy_nb.connect() as pool:
        assert isinstance(pool, Pool)
        assert [member.url for member in pool.members] == [first.url, second.url]


def test_bad_pool_arguments_fail_before_connecting(emulators: Emulators) -> None:
    server = emulators()
    with pytest.raises(ValueError, match="named twice"):
        comfy_nb.connect([server.url, server.url])
    with pytest.raises(ValueError, match="none of them empty"):
        comfy_nb.connect(f"{server.url},,{server.url}")
    with pytest.raises(ValueError, match="api_key=\\{url: key"):
        comfy_nb.connect([server.url, "http://127.0.0.1:9"], api_key="sk-one-key-for-two")
    with pytest.raises(ValueError, match="not in the pool"):
        Pool([server.url], capacity={"http://elsewhere:8188": 2})


# -- scheduling -----------------------------------------------------------------------------------

async def test_runs_started_at_once_spread_one_per_free_member(emulators: Emulators) -> None:
    servers = [emulators(node_delay=0.5) for _ in range(3)]
    pool = await pool_of(*servers)
    try:
        results = await asyncio.gather(*(pool.run(invert(color)) for color in range(6)))
        assert all(len(result.files) == 1 for result in results)
        ran_on = collections.Counter(result.server for result in results)
        assert ran_on == {server.url: 2 for server in servers}
        for server in servers:  # each ran exactly the jobs the pool says it sent there
            mine = {result.prompt_id for result in results if result.server == server.url}
            assert set(await history_ids(server)) == mine
            assert server.max_concurrent_jobs_seen <= 1
        assert all(lane["placed"] == 0 for lane in pool.lanes())
    finally:
        await pool.aclose()


async def test_a_member_gets_a_second_job_only_when_every_member_is_busy(
        emulators: Emulators) -> None:
    first, second = emulators(node_delay=1.0), emulators(node_delay=1.0)
    pool = await pool_of(first, second)
    try:
        jobs = [await pool.submit(invert(color)) for color in range(3)]
        assert [pool.server_of(job.id) for job in jobs] == [first.url, second.url, first.url]
        assert [lane["placed"] for lane in pool.lanes()] == [2, 1]
        results = [await job.wait(30) for job in jobs]
        assert [result.server for result in results] == [first.url, second.url, first.url]
        # once they ended, the first member is free again and comes first
        await asyncio.sleep(0)  # the pool counts a job out as its wait ends
        for _ in range(50):
            if [lane["placed"] for lane in pool.lanes()] == [0, 0]:
                break
            await asyncio.sleep(0.05)
        assert [lane["placed"] for lane in pool.lanes()] == [0, 0]
        assert (await pool.run(invert(99))).server == first.url
    finally:
        await pool.aclose()


async def test_capacity_lets_a_member_take_several_jobs_before_the_others(
        emulators: Emulators) -> None:
    cloud = emulators("cloud", node_delay=1.0, tier="creator")  # three jobs at once
    local = emulators(node_delay=1.0)
    pool = await AsyncPool([cloud.url, local.url], api_key={cloud.url: cloud.api_key},
                           capacity={cloud.url: 3}, poll_interval=0.1).open()
    try:
        jobs = [await pool.submit(invert(color)) for color in range(5)]
        placed = [pool.server_of(job.id) for job in jobs]
        # a free slot first (the cloud's three, the local one); then the fewest jobs ahead
        # per slot: one ahead of three slots starts sooner than one ahead of one
        assert placed == [cloud.url, local.url, cloud.url, cloud.url, cloud.url]
        assert [lane["placed"] for lane in pool.lanes()] == [4, 1]
        assert sorted(await pool.cancel_many([job.id for job in jobs])) == sorted(
            job.id for job in jobs)
    finally:
        await pool.aclose()


# -- routing by what a member has ------------------------------------------------------------------

async def test_a_run_goes_to_the_only_member_with_its_model(emulators: Emulators) -> None:
    plain = emulators(checkpoints=("plain.safetensors",), step_delay=0.0)
    special = emulators(checkpoints=("special.safetensors",), step_delay=0.0)
    pool = await pool_of(plain, special)
    try:
        for _ in range(2):  # though the other member is free, twice
            result = await pool.run(txt2img("special.safetensors"))
            assert result.server == special.url
        assert await history_ids(plain) == []
        assert (await pool.run(txt2img("plain.safetensors"))).server == plain.url
    finally:
        await pool.aclose()


async def test_a_run_no_member_can_take_says_what_each_lacks(emulators: Emulators) -> None:
    first = emulators(checkpoints=("one.safetensors",))
    second = emulators(checkpoints=("two.safetensors",))
    pool = await pool_of(first, second)
    try:
        prompt = txt2img("one.safetensors")
        prompt["99"] = {"class_type": "NodeNobodyHas", "inputs": {}}
        with pytest.raises(NoMemberCanRun) as raised:
            await pool.submit(prompt)
        message = str(raised.value)
        assert f"{first.url}: lacks node NodeNobodyHas\n" in message
        assert (f"{second.url}: lacks node NodeNobodyHas, model one.safetensors "
                "(CheckpointLoaderSimple.ckpt_name)") in message
        assert raised.value.lacks == {
            first.url: ["node NodeNobodyHas"],
            second.url: ["node NodeNobodyHas",
                         "model one.safetensors (CheckpointLoaderSimple.ckpt_name)"]}
        with pytest.raises(NoMemberCanRun, match=r"three\.safetensors"):
            await pool.run(txt2img("one.safetensors"), ckpt_name="three.safetensors")
        assert await pool.queue() == []
        assert await history_ids(first) == [] and await history_ids(second) == []
    finally:
        await pool.aclose()


# -- files and keys -------------------------------------------------------------------------------

async def test_an_image_passed_to_a_run_is_uploaded_only_where_it_runs(
        emulators: Emulators) -> None:
    from PIL import Image

    first, second = emulators(node_delay=1.0), emulators()
    pool = await pool_of(first, second)
    try:
        prompt = {
            "1": {"class_type": "LoadImage", "inputs": {"image": Image.new("RGB", (4, 4), "red")}},
            "2": {"class_type": "SaveImage",
                  "inputs": {"images": ["1", 0], "filename_prefix": "pool_upload"}},
        }
        before = {server.url: set(server.input_dir.iterdir()) for server in (first, second)}
        busy = await pool.submit(invert(1))  # the first member is busy: the run goes second
        result = await pool.run(prompt)
        assert result.server == second.url
        await busy.wait(30)
        assert set(first.input_dir.iterdir()) == before[first.url]
        assert len(set(second.input_dir.iterdir()) - before[second.url]) == 1
    finally:
        await pool.aclose()


async def test_each_key_goes_to_its_own_member_only(emulators: Emulators) -> None:
    # jobs that take a while, so that the three runs started at once take one member each
    local = emulators(node_delay=0.5)
    cloud = emulators("cloud", api_key="sk-cloud-key-of-the-pool", node_delay=0.5)
    other_cloud = emulators("cloud", api_key="sk-other-cloud-key", node_delay=0.5)
    taps = [Wiretap(server.url) for server in (local, cloud, other_cloud)]
    for tap in taps:
        tap.start()
    try:
        urls = [tap.url for tap in taps]
        pool = await AsyncPool(urls, poll_interval=0.1, api_key={
            urls[1]: "sk-cloud-key-of-the-pool", urls[2]: "sk-other-cloud-key"}).open()
        try:
            results = await asyncio.gather(*(pool.run(invert(color)) for color in range(3)))
            assert {result.server for result in results} == set(urls)
            for result in results:  # the files come from the member that made them
                assert (await result.files[0].aread()).startswith(b"\x89PNG")
        finally:
            await pool.aclose()
        local_tap, cloud_tap, other_tap = taps
        assert local_tap.requests()
        assert not local_tap.carries("sk-cloud-key-of-the-pool")
        assert not local_tap.carries("sk-other-cloud-key")
        assert cloud_tap.carries("sk-cloud-key-of-the-pool")
        assert not cloud_tap.carries("sk-other-cloud-key")
        assert other_tap.carries("sk-other-cloud-key")
        assert not other_tap.carries("sk-cloud-key-of-the-pool")
    finally:
        for tap in taps:
            tap.close()


async def test_a_run_goes_to_the_only_member_with_its_node_class(emulators: Emulators) -> None:
    lacking, having = emulators(), emulators(node_delay=0.5)
    with HidingProxy(lacking.url, {"ImageInvert"}) as proxy:
        pool = await AsyncPool([proxy.url, having.url], poll_interval=0.1).open()
        try:
            busy = await pool.submit(invert(1))  # though the first member comes first
            assert pool.server_of(busy.id) == having.url
            # and though the second member is busy now
            assert (await pool.run(invert(2))).server == having.url
            await busy.wait(30)
            assert await history_ids(lacking) == []
            # a run without that node class may go to either: here the free one
            blank = {"1": {"class_type": "EmptyImage", "inputs": {
                         "width": 8, "height": 8, "batch_size": 1, "color": 5}},
                     "2": {"class_type": "SaveImage",
                           "inputs": {"images": ["1", 0], "filename_prefix": "pool_test"}}}
            assert (await pool.run(blank)).server == proxy.url
        finally:
            await pool.aclose()


# -- the synchronous pool -------------------------------------------------------------------------

def test_the_pools_are_twins_with_the_clients_methods() -> None:
    def public(cls: type) -> dict[str, Any]:
        return {name: inspect.signature(member) for name, member
                in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}

    asynchronous, synchronous = public(AsyncPool), public(Pool)
    assert set(public(comfy_nb.AsyncClient)) <= set(asynchronous)
    assert set(asynchronous) - set(public(comfy_nb.AsyncClient)) == {"lanes", "server_of"}
    assert set(synchronous) - set(public(comfy_nb.Client)) == {"lanes", "server_of"}
    for name in ("run", "lanes", "server_of"):
        mine, theirs = asynchronous[name], synchronous[name]
        assert list(mine.parameters.values()) == list(theirs.parameters.values()), name
    options = list(inspect.signature(AsyncPool).parameters.values())
    assert list(inspect.signature(Pool).parameters.values()) == options
    client_options = list(inspect.signature(comfy_nb.AsyncClient).parameters.values())
    assert [option.name for option in options] == [
        "urls", *[option.name for option in client_options[1:]], "capacity"]


def test_the_synchronous_pool_runs_queues_and_cancels(emulators: Emulators,
                                                      tmp_path: Path) -> None:
    first, second = emulators(node_delay=3.0), emulators(node_delay=0.2)
    with comfy_nb.connect([first.url, second.url], poll_interval=0.1) as pool:
        assert isinstance(pool, Pool)
        long = pool.submit(invert(1))
        result = pool.run(invert(2))
        assert result.server == second.url and pool.server_of(long.id) == first.url
        saved = result.save(tmp_path)  # its files come from the member that made it
        assert [path.read_bytes()[:4] for path in saved] == [b"\x89PNG"]
        later = pool.submit(invert(3))
        assert pool.server_of(later.id) == second.url
        queued = {entry["id"]: entry["server"] for entry in pool.queue()}
        assert queued[long.id] == first.url
        assert sorted(pool.cancel_many([long.id, later.id])) == sorted([long.id, later.id])
        with pytest.raises(comfy_nb.JobCancelled):
            long.wait(30)


# -- failover -------------------------------------------------------------------------------------

async def test_a_server_stopped_mid_run_has_its_runs_done_elsewhere_once(
        emulators: Emulators) -> None:
    servers = [emulators(node_delay=0.4) for _ in range(3)]
    doomed = servers[1]
    cable = Cable(doomed.url).start()  # unplugged: the server is gone at once, as if killed
    pool = await AsyncPool([servers[0].url, cable.url, servers[2].url],
                           poll_interval=0.1).open()
    try:
        runs = [asyncio.ensure_future(pool.run(invert(color), cache=False))
                for color in range(6)]
        for _ in range(100):  # until the doomed server runs one of them
            if (await asyncio.to_thread(lambda: doomed.max_concurrent_jobs_seen)) >= 1:
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(cable.unplug)
        doomed.stop()
        results = await asyncio.wait_for(asyncio.gather(*runs), 60)
        assert sorted(result.workflow["1"]["inputs"]["color"] for result in results) == list(
            range(6))
        assert {result.server for result in results} <= {servers[0].url, servers[2].url}
        ran = [await history_ids(server) for server in (servers[0], servers[2])]
        assert sorted(ran[0] + ran[1]) == sorted(result.prompt_id for result in results)
        lanes = {lane["server"]: lane for lane in pool.lanes()}
        assert lanes[cable.url]["up"] is False
        # later runs go to the servers that answer, at once
        more = await asyncio.gather(*(pool.run(invert(color)) for color in range(6, 9)))
        assert {result.server for result in more} <= {servers[0].url, servers[2].url}
    finally:
        await pool.aclose()
        await asyncio.to_thread(cable.close)


# -- sweeps ---------------------------------------------------------------------------------------

def test_a_sweep_over_a_pool_keeps_every_server_busy(emulators: Emulators) -> None:
    servers = [emulators(node_delay=0.3) for _ in range(4)]
    with comfy_nb.connect([server.url for server in servers], poll_interval=0.1) as pool:
        swept = comfy_nb.sweep(invert(0), {"EmptyImage.color": list(range(8))}, client=pool,
                               concurrency=4, progress="off", cache=False)
        assert [row["status"] for row in swept.rows()] == ["succeeded"] * 8
        ran_on = collections.Counter(item.result.server for item in swept.items
                                     if item.result is not None)
        assert ran_on == {server.url: 2 for server in servers}
        assert all(server.max_concurrent_jobs_seen == 1 for server in servers)


def test_a_sweep_over_a_pool_keeps_as_many_jobs_in_flight_as_its_members_run(
        emulators: Emulators) -> None:
    first, second = emulators(node_delay=0.3), emulators(node_delay=0.3)
    assert comfy_nb.sweeps.resolve_concurrency("pool", capacity=5) == 5
    assert comfy_nb.sweeps.resolve_concurrency("pool", 2, capacity=5) == 2
    with Pool([first.url, second.url], poll_interval=0.1, capacity={first.url: 2}) as pool:
        assert pool.async_client.capacity == 3
        swept = comfy_nb.sweep(invert(0), {"EmptyImage.color": list(range(6))}, client=pool,
                               progress="off", cache=False)
        assert swept.concurrency == 3
        assert [row["status"] for row in swept.rows()] == ["succeeded"] * 6
        assert swept.max_in_flight == 3


def test_a_sweeps_file_input_is_uploaded_to_each_member_its_jobs_go_to(
        emulators: Emulators, tmp_path: Path) -> None:
    from PIL import Image

    servers = [emulators(node_delay=0.3), emulators(node_delay=0.3)]
    picture = tmp_path / "swept_input.png"
    Image.new("RGB", (4, 4), "blue").save(picture)
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": str(picture)}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
    }
    before = {server.url: set(server.input_dir.iterdir()) for server in servers}
    with Pool([server.url for server in servers], poll_interval=0.1) as pool:
        swept = comfy_nb.sweep(workflow, {"SaveImage.filename_prefix": ["a", "b", "c", "d"]},
                               client=pool, progress="off", cache=False)
        assert [row["status"] for row in swept.rows()] == ["succeeded"] * 4, swept.rows()
        ran_on = collections.Counter(item.result.server for item in swept.items
                                     if item.result is not None)
        assert ran_on == {server.url: 2 for server in servers}
        for server in servers:  # the file went to each member once
            added = set(server.input_dir.iterdir()) - before[server.url]
            assert [path.name for path in added] == ["swept_input.png"]
        # the file as a fixed parameter (a Path object) instead of in the workflow
        swept = comfy_nb.sweep(workflow, {"SaveImage.filename_prefix": ["e", "f", "g", "h"]},
                               overrides={"LoadImage.image": picture}, client=pool,
                               progress="off", cache=False)
        assert [row["status"] for row in swept.rows()] == ["succeeded"] * 4, swept.rows()
        assert {item.result.server for item in swept.items if item.result is not None} == {
            server.url for server in servers}


async def test_the_cloud_key_goes_only_to_the_cloud_member(
        emulators: Emulators, monkeypatch: pytest.MonkeyPatch) -> None:
    local = emulators(node_delay=0.5)
    cloud = emulators("cloud", api_key="sk-cloud-key-from-the-environment", node_delay=0.5)
    local_tap, cloud_tap = Wiretap(local.url), Wiretap(cloud.url)
    for tap in (local_tap, cloud_tap):
        tap.start()
    try:
        monkeypatch.setenv("COMFY_NB_CLOUD_URL", cloud_tap.url)
        for key in (None, "sk-cloud-key-from-the-environment"):  # from the environment, given
            if key is None:
                monkeypatch.setenv("COMFY_CLOUD_API_KEY", "sk-cloud-key-from-the-environment")
            else:
                monkeypatch.delenv("COMFY_CLOUD_API_KEY")
            pool = await AsyncPool([local_tap.url, "cloud"], api_key=key,
                                   poll_interval=0.1).open()
            try:
                await pool.object_info()  # each member's definitions read: both runs go at once
                results = await asyncio.gather(pool.run(invert(1)), pool.run(invert(2)))
                assert {result.server for result in results} == {local_tap.url, cloud_tap.url}
            finally:
                await pool.aclose()
        assert local_tap.requests() and cloud_tap.requests()
        assert not local_tap.carries("sk-cloud-key-from-the-environment")
        assert cloud_tap.carries("sk-cloud-key-from-the-environment")
    finally:
        local_tap.close()
        cloud_tap.close()


async def test_a_key_for_the_cloud_never_reaches_a_v2_member(emulators: Emulators,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    v2 = emulators("v2", node_delay=0.5)
    cloud = emulators("cloud", api_key="sk-cloud-key-not-for-v2", node_delay=0.5)
    v2_tap, cloud_tap = Wiretap(v2.url), Wiretap(cloud.url)
    for tap in (v2_tap, cloud_tap):
        tap.start()
    try:
        monkeypatch.setenv("COMFY_NB_CLOUD_URL", cloud_tap.url)
        pool = await AsyncPool([v2_tap.url, "cloud"], api_key="sk-cloud-key-not-for-v2",
                               poll_interval=0.1).open()
        try:
            assert [member.dialect for member in pool.members] == ["v2", "cloud"]
            await pool.object_info()  # each member's definitions read: both runs go at once
            results = await asyncio.gather(pool.run(invert(1)), pool.run(invert(2)))
            assert {result.server for result in results} == {v2_tap.url, cloud_tap.url}
        finally:
            await pool.aclose()
        assert v2_tap.requests()
        assert not v2_tap.carries("sk-cloud-key-not-for-v2")
        assert cloud_tap.carries("sk-cloud-key-not-for-v2")
    finally:
        v2_tap.close()
        cloud_tap.close()


async def test_a_server_down_when_the_pool_opens_joins_when_it_answers(
        emulators: Emulators, monkeypatch: pytest.MonkeyPatch) -> None:
    from comfy_nb.client import _pool_members

    monkeypatch.setattr(_pool_members, "REJOIN_AFTER", 0.3)
    with socket.socket() as probe:  # a port nothing listens on, for now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    up = emulators(node_delay=0.5)
    later = f"http://127.0.0.1:{port}"
    pool = await AsyncPool([up.url, later], poll_interval=0.1, connect_timeout=2).open()
    try:
        assert [lane["up"] for lane in pool.lanes()] == [True, False]
        results = await asyncio.gather(*(pool.run(invert(color)) for color in range(2)))
        assert [result.server for result in results] == [up.url, up.url]
        assert [entry["server"] for entry in await pool.queue()] == []
        emulators(port=port, node_delay=0.5)
        await asyncio.sleep(0.4)
        results = await asyncio.gather(*(pool.run(invert(color)) for color in range(2, 4)))
        assert sorted(result.server for result in results) == sorted([up.url, later])
        assert [lane["up"] for lane in pool.lanes()] == [True, True]
    finally:
        await pool.aclose()


async def test_a_pool_none_of_whose_servers_answers_fails_to_open() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = AsyncPool([f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/other"],
                     connect_timeout=1)
    with pytest.raises(comfy_nb.TransportError, match=str(port)):
        await pool.open()
    assert pool.closed


def test_a_server_argument_of_the_wrong_type_is_explained_as_for_one_server() -> None:
    with pytest.raises(TypeError, match=r"must be a string.*got int"):
        comfy_nb.connect(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="URLs"):
        comfy_nb.connect(["http://127.0.0.1:1", 8188])  # type: ignore[list-item]


def test_a_server_stopped_mid_sweep_has_its_jobs_done_elsewhere_once(
        emulators: Emulators) -> None:
    servers = [emulators(node_delay=0.3) for _ in range(3)]
    doomed = servers[1]
    survivors = [servers[0], servers[2]]
    colors = list(range(100, 112))
    cable = Cable(doomed.url).start()  # unplugged: the server is gone at once, as if killed
    urls = [servers[0].url, cable.url, servers[2].url]
    with contextlib.closing(cable), comfy_nb.connect(urls, poll_interval=0.1) as pool:
        swept = comfy_nb.sweep(invert(0), {"EmptyImage.color": colors}, client=pool,
                               concurrency=3, progress="off", cache=False, wait=False)
        for _ in range(200):  # until the doomed server has a job
            if doomed.max_concurrent_jobs_seen >= 1:
                break
            time.sleep(0.05)
        cable.unplug()
        doomed.stop()
        swept.wait(60)
        assert [row["status"] for row in swept.rows()] == ["succeeded"] * len(colors)
        results = [item.result for item in swept.items]
        assert all(result is not None for result in results)
        made = sorted(result.workflow["1"]["inputs"]["color"]
                      for result in results if result is not None)
        assert made == colors
        assert {result.server for result in results if result is not None} <= {
            server.url for server in survivors}
        ran = [job_id for server in survivors
               for job_id in pool.loop.run(history_ids(server))]
        assert sorted(ran) == sorted(result.prompt_id for result in results
                                     if result is not None)

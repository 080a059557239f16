"""How many jobs each member of a pool runs at once: as given, from the Comfy Cloud plan named
in ``$COMFY_CLOUD_TIER``, or learnt from a member that runs more of its jobs at once than
assumed. Over real sockets, on emulators."""

from __future__ import annotations

import asyncio

import pytest

import comfy_nb
from comfy_nb import AsyncPool

from ..factories import Emulators
from ..tiny_workflows import invert
from ..wiretap import Wiretap


async def running(job: comfy_nb.AsyncJob) -> None:
    """Until the server has started ``job``."""
    async for _ in job:
        if job.status is not comfy_nb.JobStatus.QUEUED:
            return


async def test_a_cloud_member_runs_as_many_jobs_as_the_plan_named_in_the_environment(
        emulators: Emulators, monkeypatch: pytest.MonkeyPatch) -> None:
    cloud, local = emulators("cloud", tier="pro"), emulators()
    monkeypatch.setenv("COMFY_CLOUD_TIER", "Pro")
    pool = await AsyncPool([local.url, cloud.url], api_key={cloud.url: cloud.api_key}).open()
    try:
        assert [lane["capacity"] for lane in pool.lanes()] == [1, 5]
        assert pool.capacity == 6
    finally:
        await pool.aclose()
    monkeypatch.delenv("COMFY_CLOUD_TIER")
    pool = await AsyncPool([local.url, cloud.url], api_key={cloud.url: cloud.api_key},
                           capacity={cloud.url: 2}).open()
    try:  # said outright; and without a plan, the smallest one's single job
        assert [lane["capacity"] for lane in pool.lanes()] == [1, 2]
    finally:
        await pool.aclose()


async def test_a_member_that_runs_more_jobs_at_once_than_assumed_gets_more(
        emulators: Emulators, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMFY_CLOUD_TIER", raising=False)
    local = emulators(node_delay=2.0)
    cloud = emulators("cloud", node_delay=2.0, tier="creator")  # runs three at once
    pool = await AsyncPool([local.url, cloud.url], api_key={cloud.url: cloud.api_key},
                           poll_interval=0.1).open()
    try:
        assert [lane["capacity"] for lane in pool.lanes()] == [1, 1]  # no plan named
        jobs = [await pool.submit(invert(color)) for color in range(4)]
        # one per member, then one queued on each: the first has fewer ahead at a tie
        assert [pool.server_of(job.id) for job in jobs] == [local.url, cloud.url, local.url,
                                                            cloud.url]
        on_cloud = [job for job in jobs if pool.server_of(job.id) == cloud.url]
        await asyncio.wait_for(asyncio.gather(*(running(job) for job in on_cloud)), 30)
        # the cloud started its second job at once: it has at least two slots
        assert [lane["capacity"] for lane in pool.lanes()] == [1, 2]
        fifth = await pool.submit(invert(5))
        assert pool.server_of(fifth.id) == cloud.url
        results = await asyncio.gather(*(job.wait(60) for job in [*jobs, fifth]))
        assert all(len(result.files) == 1 for result in results)
        assert cloud.max_concurrent_jobs_seen >= 2 and local.max_concurrent_jobs_seen == 1
    finally:
        await pool.aclose()


def test_connect_passes_capacity_to_a_pool(emulators: Emulators) -> None:
    first, second = emulators(), emulators()
    with comfy_nb.connect([first.url, second.url], capacity={second.url: 3}) as pool:
        assert isinstance(pool, comfy_nb.Pool)
        assert [lane["capacity"] for lane in pool.lanes()] == [1, 3]
        assert pool.capacity == 4


def test_connect_gives_each_member_the_key_named_for_it(emulators: Emulators) -> None:
    cloud = emulators("cloud", api_key="sk-key-of-the-cloud-member")
    local = emulators()
    taps = [Wiretap(server.url).start() for server in (local, cloud)]
    local_tap, cloud_tap = taps
    try:
        with comfy_nb.connect([local_tap.url, cloud_tap.url],
                              api_key={cloud_tap.url: "sk-key-of-the-cloud-member"}) as pool:
            assert [member.dialect for member in pool.members] == ["local", "cloud"]
            assert pool.loop.run(pool.members[1].user())  # the cloud member has its key
        assert cloud_tap.carries("sk-key-of-the-cloud-member")
        assert not local_tap.carries("sk-key-of-the-cloud-member")
        # keys by server for one server: its own, and a key for another is refused
        with comfy_nb.connect(cloud.url, api_key={cloud.url: "sk-key-of-the-cloud-member"}) \
                as single:
            assert type(single) is comfy_nb.Client and single.dialect == "cloud"
            assert single.user() is not None
        with pytest.raises(ValueError, match="not the one connected to"):
            comfy_nb.connect(local.url, api_key={cloud.url: "sk-key-of-the-cloud-member"})
    finally:
        for tap in taps:
            tap.close()

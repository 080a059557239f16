"""A pool with a Comfy API v2 member: the vendor's comfy-api-proxy (over an emulator) beside a
local server. Runs and a sweep spread over both, each Result names its member, and the proxy's
token reaches the proxy alone."""

from __future__ import annotations

import asyncio
import collections

import comfy_nb
from comfy_nb import AsyncPool

from ..factories import Emulators
from ..wiretap import Wiretap
from .conftest import v2_server
from .workflows import invert

WAIT = 60.0  # a safety net against hangs, never asserted on


async def test_runs_spread_over_a_local_member_and_a_v2_member(emulators: Emulators) -> None:
    local = emulators(node_delay=0.3)
    local_tap = Wiretap(local.url).start()
    with v2_server(node_delay=0.3) as v2:
        try:
            pool = await AsyncPool([local_tap.url, v2.url], api_key={v2.url: v2.token},
                                   poll_interval=0.1).open()
            try:
                assert [member.dialect for member in pool.members] == ["local", "v2"]
                # the local member's definitions (v2 serves none), read before: the four runs
                # go at once
                assert "ImageInvert" in await pool.object_info()
                results = await asyncio.wait_for(
                    asyncio.gather(*(pool.run(invert("v2_pool")) for _ in range(4))), WAIT)
                assert collections.Counter(result.server for result in results) == {
                    local_tap.url: 2, v2.url: 2}
                assert all(len(result.files) == 1 for result in results)
                for result in results:  # each file comes from the member that made it
                    assert (await result.files[0].aread())[:8] == b"\x89PNG\r\n\x1a\n"
            finally:
                await pool.aclose()
            assert local_tap.requests()
            assert not local_tap.carries(v2.token)  # the token went to the proxy only
        finally:
            local_tap.close()


def test_a_sweep_over_a_local_member_and_a_v2_member_names_each(emulators: Emulators) -> None:
    local = emulators(node_delay=0.3)
    with v2_server(node_delay=0.3) as v2, comfy_nb.connect(
            [local.url, v2.url], api_key={v2.url: v2.token}, poll_interval=0.1) as pool:
        swept = comfy_nb.sweep(invert("v2_pool_sweep"), {"EmptyImage.width": [8, 9, 10, 11]},
                               client=pool, cache=False, progress="off")
        rows = swept.rows()
        assert [row["status"] for row in rows] == ["succeeded"] * 4
        assert {row["server"] for row in rows} == {local.url, v2.url}
        assert {lane["server"]: lane["done"] for lane in swept.lanes()} == {
            local.url: sum(row["server"] == local.url for row in rows),
            v2.url: sum(row["server"] == v2.url for row in rows)}

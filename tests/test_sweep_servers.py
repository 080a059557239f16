"""Which server ran each item of a sweep, over real sockets: the ``server`` column of
``sweep.rows()`` (a pool's member, or the one server), a pool's lanes (each member's items by
status), and the provenance of every saved file, which names the server that produced it."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import httpx
import pytest

import comfy_nb
from comfy_nb import provenance

from .factories import Emulators
from .tiny_workflows import invert


@pytest.fixture(autouse=True)
def core_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No progress panel and no result cache: every job runs on a server."""
    monkeypatch.setenv("COMFY_NB_PROGRESS", "off")
    monkeypatch.setenv("COMFY_NB_CACHE", "off")



def history_ids(url: str) -> set[str]:
    """The ids of the jobs the server at ``url`` ran, read from it directly."""
    return set(httpx.get(f"{url}/history", timeout=10).json())


def test_rows_name_the_member_of_a_pool_that_ran_each_item(emulators: Emulators,
                                                           tmp_path: Path) -> None:
    first, second = emulators(node_delay=0.2), emulators(node_delay=0.2)
    with comfy_nb.connect([first.url, second.url], poll_interval=0.1) as pool:
        swept = comfy_nb.sweep(invert(0), {"EmptyImage.color": [1, 2, 3, 4]}, client=pool,
                               cache=False)
        rows = swept.rows()
        assert [row["status"] for row in rows] == ["succeeded"] * 4
        assert {row["server"] for row in rows} == {first.url, second.url}
        for server in (first, second):  # each row names the server whose history has its job
            mine = {row["prompt_id"] for row in rows if row["server"] == server.url}
            assert mine == history_ids(server.url)
        assert [row["server"] for row in rows] == [item.result.server for item in swept.items
                                                   if item.result is not None]
        ran = collections.Counter(row["server"] for row in rows)
        assert swept.lanes() == [
            {"server": first.url, "capacity": 1, "queued": 0, "running": 0,
             "done": ran[first.url], "failed": 0, "cancelled": 0},
            {"server": second.url, "capacity": 1, "queued": 0, "running": 0,
             "done": ran[second.url], "failed": 0, "cancelled": 0}]
        swept.save(tmp_path)
        for row in swept.rows():  # every saved file says which member produced it
            (path,) = row["files"]
            found = provenance.read(path)
            assert found is not None
            record = found["comfy_nb"]
            assert (record["prompt_id"], record["server"]["url"]) == (row["prompt_id"],
                                                                       row["server"])


def test_rows_name_the_one_server_of_a_client(emulators: Emulators, tmp_path: Path) -> None:
    server = emulators(step_delay=0.0)
    with comfy_nb.connect(server.url) as client:
        swept = comfy_nb.sweep(invert(0), {"EmptyImage.color": [5, 6]}, client=client,
                               cache=False)
        assert [row["server"] for row in swept.rows()] == [server.url] * 2
        assert swept.lanes() == []  # lanes are a pool's
        for path in swept.save(tmp_path):
            found = provenance.read(path)
            assert found is not None and found["comfy_nb"]["server"]["url"] == server.url


def test_an_item_never_submitted_names_no_server(emulators: Emulators) -> None:
    server = emulators(step_delay=0.0)
    with comfy_nb.connect(server.url) as client:
        # a width the node definitions refuse: that item is rejected before anything is sent
        swept = comfy_nb.sweep(invert(0), {"EmptyImage.width": [8, 10**9]}, client=client,
                               cache=False)
        rows = swept.rows()
        assert [row["status"] for row in rows] == ["succeeded", "failed"]
        assert [row["server"] for row in rows] == [server.url, None]


def test_a_pools_lanes_count_cancelled_items_apart_from_failed_ones(
        emulators: Emulators) -> None:
    first, second = emulators(node_delay=0.5), emulators(node_delay=0.5)
    with comfy_nb.connect([first.url, second.url], poll_interval=0.1) as pool:
        swept = comfy_nb.sweep(invert(0), {"EmptyImage.color": [11, 12, 13, 14, 15, 16]},
                               client=pool, cache=False, wait=False)
        for _ in range(200):  # until both members run one
            if first.max_concurrent_jobs_seen and second.max_concurrent_jobs_seen:
                break
            time.sleep(0.05)
        swept.cancel()
        rows = swept.rows()
        lanes = swept.lanes()
        cancelled = [row for row in rows if row["status"] == "cancelled"]
        assert cancelled and not [row for row in rows if row["status"] == "failed"]
        assert sum(lane["cancelled"] for lane in lanes) == sum(
            1 for row in cancelled if row["server"] is not None)
        assert all(lane["failed"] == 0 for lane in lanes)

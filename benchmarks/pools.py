"""Pools: how much faster a sweep runs over 2 and 4 servers than over 1, measured in the same run.

Each emulator runs in a process of its own (so servers and client do not share a GIL), as a
local ComfyUI that runs one job at a time, with ``--node-delay`` seconds added to every node it
executes (the stand-in for a GPU's work). The same sweep of N small jobs (EmptyImage ->
SaveImage, a colour each) runs on a pool of 1, 2 and 4 fresh emulators, at the pool's default
concurrency (the sum of its members' capacities), with the result cache off. The table gives the
time of each, its speed-up against the 1-server pool of this run, and how the jobs were spread.

Usage: python benchmarks/pools.py [--jobs N] [--node-delay SECONDS]
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from _common import small_workflow

import comfy_nb
from comfy_nb.emulator import serve


def _host(node_delay: float, connection: Any) -> None:
    """The child process: an emulator until told to stop."""
    with serve(node_delay=node_delay) as server:
        connection.send(server.url)
        connection.recv()


@contextmanager
def emulator(node_delay: float) -> Iterator[str]:
    """An emulator in another process; its URL."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_host, args=(node_delay, theirs), daemon=True)
    process.start()
    try:
        yield ours.recv()
    finally:
        ours.send("stop")
        process.join(10)


def swept(servers: int, jobs: int, node_delay: float) -> tuple[float, int, list[int]]:
    """Seconds for the sweep over a pool of ``servers`` emulators; its concurrency; the jobs
    each server ran."""
    with ExitStack() as stack:
        urls = [stack.enter_context(emulator(node_delay)) for _ in range(servers)]
        pool = stack.enter_context(comfy_nb.Pool(urls, poll_interval=0.05))
        # warm up every member (connection, node definitions): one job each
        comfy_nb.sweep(small_workflow(0, "pools_warmup"),
                       {"EmptyImage.color": list(range(1_000_000, 1_000_000 + servers))},
                       client=pool, progress="off", cache=False)
        started = time.perf_counter()
        result = comfy_nb.sweep(small_workflow(0, "pools"), {"EmptyImage.color": list(range(jobs))},
                                client=pool, progress="off", cache=False)
        elapsed = time.perf_counter() - started
        assert len(result.results) == jobs, result.summary()
        spread = collections.Counter(item.result.server for item in result.items
                                     if item.result is not None)
        return elapsed, result.concurrency, [spread[url] for url in urls]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--node-delay", type=float, default=0.1,
                        help="emulated seconds added to every executed node")
    args = parser.parse_args()
    print(f"a sweep of {args.jobs} jobs (2 nodes each, {args.node_delay * 1000:g} ms a node), "
          "emulators on loopback\n")
    header = f"{'servers':>7} {'in flight':>9} {'seconds':>8} {'speed-up':>8}  jobs per server"
    print(header)
    print("-" * len(header))
    base: float | None = None
    for servers in (1, 2, 4):
        elapsed, concurrency, spread = swept(servers, args.jobs, args.node_delay)
        base = base if base is not None else elapsed
        print(f"{servers:>7} {concurrency:>9} {elapsed:>8.2f} {base / elapsed:>7.2f}x  "
              f"{spread}")


if __name__ == "__main__":
    main()

"""The result cache against a run on the emulator (run in its own process), in the same run:

1. a small graph (EmptyImage 8x8 -> SaveImage): ``run`` + reading the output bytes with the
   cache off, against the same run served from the cache, through the synchronous ``Client``
   (what notebooks use) and the ``AsyncClient``;
2. the cost of storing: the first run with the cache on (run, download into the cache) against
   a run with the cache off;
3. the text-to-image graph (512x512, 20 sampler steps at the emulator's default 0.05 s a step),
   run against served from the cache.

Each run uses a workflow of its own (the server caches nodes too), and every cached run is the
exact repeat of one measured before. The cache lives in a temporary folder.

Usage: python benchmarks/cache_latency.py [--runs N] [--txt2img-runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import small_workflow, start_emulator

from comfy_nb import AsyncClient, Client, Result
from comfy_nb.cache import ResultCache
from comfy_nb.workflows import bundled


def small(index: int) -> dict:
    return small_workflow(index, "c")


def txt2img(index: int) -> dict:
    workflow = bundled("txt2img")
    workflow["3"]["inputs"].update(seed=index, steps=20)
    return workflow


def timed(client: Client, workflow: dict, cache: bool) -> tuple[float, Result]:
    """Seconds until the outputs' bytes are in hand, and the result."""
    started = time.perf_counter()
    result = client.run(workflow, cache=cache)
    for file in result.files:
        file.read()
    return time.perf_counter() - started, result


def sync_latencies(url: str, store: ResultCache, make: Callable[[int], dict], runs: int,
                   offset: int) -> tuple[list[float], list[float], list[float]]:
    """(cache off, first run with the cache, served from the cache) seconds per run."""
    plain, first, hits = [], [], []
    with Client(url, result_cache=store) as client:
        for index in range(3):  # warm: connections, node definitions
            client.run(make(offset - 1 - index), cache=False)
        for index in range(runs):
            seconds, result = timed(client, make(offset + 2 * index), False)
            plain.append(seconds)
            assert not result.from_cache
            seconds, result = timed(client, make(offset + 2 * index + 1), True)
            first.append(seconds)
            assert not result.from_cache
            seconds, result = timed(client, make(offset + 2 * index + 1), True)
            hits.append(seconds)
            assert result.from_cache
    return plain, first, hits


async def async_latencies(url: str, store: ResultCache, runs: int,
                          offset: int) -> tuple[list[float], list[float]]:
    """(cache off, served from the cache) seconds per run, through the AsyncClient."""

    async def timed_async(workflow: dict, cache: bool) -> tuple[float, Result]:
        started = time.perf_counter()
        result = await client.run(workflow, cache=cache)
        for file in result.files:
            await file.aread()
        return time.perf_counter() - started, result

    plain, hits = [], []
    async with AsyncClient(url, result_cache=store) as client:
        for index in range(3):
            await client.run(small(offset - 1 - index), cache=False)
        for index in range(runs):
            seconds, result = await timed_async(small(offset + 2 * index), False)
            plain.append(seconds)
            await client.run(small(offset + 2 * index + 1), cache=True)  # store it
            seconds, result = await timed_async(small(offset + 2 * index + 1), True)
            hits.append(seconds)
            assert result.from_cache
    return plain, hits


def row(label: str, base: list[float], measured: list[float]) -> str:
    b, m = statistics.median(base), statistics.median(measured)
    return f"{label:<52} {b * 1e3:10.2f} {m * 1e3:10.2f} {m / b:8.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--txt2img-runs", type=int, default=10)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="comfy-nb-bench-"))
    store = ResultCache(tempfile.mkdtemp(prefix="comfy-nb-bench-cache-"))
    process, url = start_emulator(data_dir)
    try:
        plain, first, hits = sync_latencies(url, store, small, args.runs, 1_000)
        async_plain, async_hits = asyncio.run(async_latencies(url, store, args.runs, 100_000))
        big_plain, _, big_hits = sync_latencies(url, store, txt2img, args.txt2img_runs, 10_000)
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(store.directory, ignore_errors=True)
    n, t = args.runs, args.txt2img_runs
    print(f"{'measure (median, run + reading the outputs)':<52} {'run (ms)':>10} "
          f"{'cache (ms)':>10} {'ratio':>8}")
    print(row(f"small graph, Client, served from the cache, n={n}", plain, hits))
    print(row(f"small graph, AsyncClient, served from the cache, n={n}", async_plain,
              async_hits))
    print(row(f"small graph, Client, first run storing it, n={n}", plain, first))
    print(row(f"txt2img 512x512 20 steps, Client, from the cache, n={t}", big_plain, big_hits))
    print("run: the same kind of run with cache=False on the emulator, in this process; "
          "cache: cache=True")


if __name__ == "__main__":
    main()

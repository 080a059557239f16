"""Sweep throughput against the emulator: jobs per second of ``comfy_nb.sweep`` against the same
jobs run one after another with ``client.run`` (the baseline), measured in the same run.

For each server (a local ComfyUI, which runs one job at a time; Comfy Cloud on the Creator and
Pro plans, 3 and 5 at once) the same N text-to-image jobs (a seed sweep) run twice, each time on
a fresh emulator in its own process (so server and client do not share a GIL, and the server's
cache helps neither run), with the result cache off: once one after another, once as a sweep at
the sweep's default concurrency for that server and plan. The table gives jobs/s for both and
their ratio; the emulator's count of the jobs it ran at once shows the limit held.

Usage: python benchmarks/sweep_throughput.py [--jobs N] [--steps S] [--step-delay SECONDS]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import comfy_nb
from comfy_nb.emulator import serve
from comfy_nb.workflows import bundled


def workflow(steps: int) -> dict[str, Any]:
    graph = bundled("txt2img")
    graph["3"]["inputs"]["steps"] = steps
    return graph


def _host(options: dict[str, Any], connection: Any) -> None:
    """The child process: an emulator until told to stop; then how many jobs it ran at once."""
    with serve(**options) as server:
        connection.send((server.url, server.api_key))
        connection.recv()
        connection.send(server.max_concurrent_jobs_seen)


class Remote:
    """An emulator in another process: ``url``, ``api_key``; ``max_concurrent_jobs_seen`` once
    stopped."""

    url: str
    api_key: str | None
    max_concurrent_jobs_seen = 0


@contextmanager
def emulator(**options: Any) -> Iterator[Remote]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_host, args=(options, theirs), daemon=True)
    process.start()
    remote = Remote()
    remote.url, remote.api_key = ours.recv()
    try:
        yield remote
    finally:
        ours.send("stop")
        remote.max_concurrent_jobs_seen = ours.recv()
        process.join(10)


def sequential(options: dict[str, Any], jobs: int, steps: int, step_delay: float) -> float:
    """Seconds to run the jobs one after another (each waits for the previous)."""
    with emulator(step_delay=step_delay, **options) as server, \
            comfy_nb.Client(server.url, api_key=server.api_key) as client:
        client.run(workflow(steps), seed=10_000, cache=False)  # warm up: connection, nodes
        started = time.perf_counter()
        for seed in range(jobs):
            client.run(workflow(steps), seed=seed, cache=False)
        return time.perf_counter() - started


def swept(options: dict[str, Any], tier: str | None, jobs: int, steps: int,
          step_delay: float) -> tuple[float, int, int]:
    """Seconds for the same jobs as one sweep; its concurrency; the most the server ran at
    once."""
    with emulator(step_delay=step_delay, **options) as server, \
            comfy_nb.Client(server.url, api_key=server.api_key) as client:
        client.run(workflow(steps), seed=10_000, cache=False)
        started = time.perf_counter()
        result = comfy_nb.sweep(workflow(steps), seed=list(range(jobs)), client=client,
                                tier=tier, progress="off", cache=False)
        elapsed = time.perf_counter() - started
        assert len(result.results) == jobs, result.summary()
    # the emulator reports what it saw once it stopped (the with block above)
    return elapsed, result.concurrency, server.max_concurrent_jobs_seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--step-delay", type=float, default=0.05,
                        help="emulated seconds per sampler step")
    args = parser.parse_args()
    servers = [("local ComfyUI", {"dialect": "local"}, None),
               ("Cloud, Creator (3)", {"dialect": "cloud", "tier": "creator"}, "creator"),
               ("Cloud, Pro (5)", {"dialect": "cloud", "tier": "pro"}, "pro")]
    print(f"{args.jobs} txt2img jobs of {args.steps} steps, {args.step_delay * 1000:g} ms a step "
          "(emulator on loopback)\n")
    header = (f"{'server':<20} {'in flight':>9} {'ran at once':>11} {'one by one':>12} "
              f"{'sweep':>12} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for name, options, tier in servers:
        base = sequential(options, args.jobs, args.steps, args.step_delay)
        elapsed, concurrency, seen = swept(options, tier, args.jobs, args.steps, args.step_delay)
        print(f"{name:<20} {concurrency:>9} {seen:>11} {args.jobs / base:>8.2f} j/s "
              f"{args.jobs / elapsed:>8.2f} j/s {base / elapsed:>5.2f}x")


if __name__ == "__main__":
    main()

"""The client against a minimal raw client, on the emulator (run in its own process):

1. submit-to-outputs latency of one small job: ``AsyncClient.run`` against a raw
   httpx + websockets loop (POST, wait for ``executing {node: null}``, GET history);
2. 200 jobs in flight at once over the client's one websocket, against the raw client doing
   the same 200 jobs over its one socket;
3. memory growth while downloading a 500 MB output to a file, against reading it into memory.

Usage: python benchmarks/client_latency.py [--runs N] [--jobs N] [--size-mb N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import websockets
from _common import small_workflow, start_emulator

from comfy_nb import AsyncClient


def workflow(index: int) -> dict:
    return small_workflow(index, "b")


class RawClient:
    """The least a client can do: one socket, POST, wait for the end, read history."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client_id = uuid.uuid4().hex
        self.waiters: dict[str, asyncio.Future[None]] = {}

    async def __aenter__(self) -> RawClient:
        self.http = httpx.AsyncClient(base_url=self.url)
        ws_url = "ws" + self.url[4:] + f"/ws?clientId={self.client_id}"
        self.ws = await websockets.connect(ws_url, max_size=None)
        await self.ws.recv()
        self.reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.reader.cancel()
        await self.ws.close()
        await self.http.aclose()

    async def _read(self) -> None:
        async for message in self.ws:
            if isinstance(message, bytes):
                continue
            data = json.loads(message)
            if data["type"] == "executing" and data["data"].get("node") is None:
                waiter = self.waiters.get(data["data"].get("prompt_id"))
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    async def run(self, prompt: dict) -> dict:
        prompt_id = str(uuid.uuid4())
        self.waiters[prompt_id] = asyncio.get_running_loop().create_future()
        await self.http.post("/api/prompt", json={"prompt": prompt, "prompt_id": prompt_id,
                                                  "client_id": self.client_id})
        await self.waiters[prompt_id]
        del self.waiters[prompt_id]
        history = (await self.http.get(f"/api/history/{prompt_id}")).json()
        return history[prompt_id]["outputs"]


async def latencies(url: str, runs: int) -> tuple[list[float], list[float]]:
    ours, raw = [], []
    async with AsyncClient(url) as client, RawClient(url) as baseline:
        for index in range(5):  # warm both
            await client.run(workflow(10_000 + index))
            await baseline.run(workflow(20_000 + index))
        for index in range(runs):
            started = time.perf_counter()
            result = await client.run(workflow(index))
            ours.append(time.perf_counter() - started)
            assert result.files
            started = time.perf_counter()
            outputs = await baseline.run(workflow(100_000 + index))
            raw.append(time.perf_counter() - started)
            assert outputs
    return ours, raw


async def in_flight(url: str, jobs: int) -> tuple[float, float]:
    async with AsyncClient(url) as client:
        started = time.perf_counter()
        submitted = await asyncio.gather(*(client.submit(workflow(200_000 + i))
                                           for i in range(jobs)))
        results = await asyncio.gather(*(job.wait(300) for job in submitted))
        ours = time.perf_counter() - started
        assert all(r.files for r in results)
    async with RawClient(url) as baseline:
        started = time.perf_counter()
        await asyncio.gather(*(baseline.run(workflow(300_000 + i)) for i in range(jobs)))
        raw = time.perf_counter() - started
    return ours, raw


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRss:
    def __enter__(self) -> PeakRss:
        self.start = self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())

    @property
    def growth(self) -> float:
        return self.peak - self.start


async def download_memory(url: str, data_dir: Path, size_mb: int) -> tuple[float, float]:
    name = "big_output.bin"
    with open(data_dir / "output" / name, "wb") as big:
        chunk = os.urandom(1 << 20)
        for _ in range(size_mb):
            big.write(chunk)
    params = {"filename": name, "subfolder": "", "type": "output"}
    target = Path(tempfile.mkdtemp()) / name
    async with AsyncClient(url) as client:
        with PeakRss() as ours:
            await client.download(params, to=target)
    assert target.stat().st_size == size_mb << 20
    target.unlink()
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        with PeakRss() as naive:
            body = (await http.get("/api/view", params=params)).content
        assert len(body) == size_mb << 20
        del body
    return ours.growth, naive.growth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--size-mb", type=int, default=500)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="comfy-nb-bench-"))
    process, url = start_emulator(data_dir)
    try:
        ours, raw = asyncio.run(latencies(url, args.runs))
        flight_ours, flight_raw = asyncio.run(in_flight(url, args.jobs))
        growth, naive_growth = asyncio.run(download_memory(url, data_dir, args.size_mb))
    finally:
        process.terminate()
        process.wait(10)
    median_ours, median_raw = statistics.median(ours), statistics.median(raw)
    print(f"{'measure':<46} {'comfy_nb':>10} {'baseline':>10} {'ratio':>7}")
    print(f"{f'submit-to-outputs, median of {args.runs} (ms)':<46} {median_ours * 1e3:10.2f} "
          f"{median_raw * 1e3:10.2f} {median_ours / median_raw:7.2f}")
    print(f"{'  difference (ms)':<46} {(median_ours - median_raw) * 1e3:10.2f}")
    print(f"{f'{args.jobs} jobs in flight, one websocket (s)':<46} {flight_ours:10.2f} "
          f"{flight_raw:10.2f} {flight_ours / flight_raw:7.2f}")
    print(f"{f'memory growth, {args.size_mb} MB download (MB)':<46} {growth:10.1f} "
          f"{naive_growth:10.1f} {growth / naive_growth:7.3f}")
    print("baselines: a raw httpx+websockets client; memory: the same file read into memory")


if __name__ == "__main__":
    main()

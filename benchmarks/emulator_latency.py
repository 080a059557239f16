"""How fast the emulator starts and runs a one-node workflow on loopback.

Each figure is printed next to a baseline measured in the same run on the same machine:
- start-up against a bare aiohttp application started the same way (AppRunner + TCPSite on a
  background event loop);
- a one-node run (POST /prompt → the final ``executing {node: null}`` on the websocket) against
  one plain HTTP round trip (GET /prompt) to the same server.

Usage: python benchmarks/emulator_latency.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
import uuid

import httpx
import websockets
from aiohttp import web

from comfy_nb.emulator import RunningEmulator
from comfy_nb.emulator._server import EmulatorOptions

ONE_NODE = {"1": {"class_type": "PreviewAny", "inputs": {"source": "hello"}}}


def bare_aiohttp_start() -> float:
    """Seconds to start (and serve one request from) a one-route aiohttp app in a thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    started = time.perf_counter()
    thread.start()

    async def start() -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_get("/", lambda _: web.json_response({}))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    runner, port = asyncio.run_coroutine_threadsafe(start(), loop).result()
    httpx.get(f"http://127.0.0.1:{port}/")
    elapsed = time.perf_counter() - started
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()
    return elapsed


def emulator_start() -> float:
    started = time.perf_counter()
    emulator = RunningEmulator(EmulatorOptions()).start()
    httpx.get(emulator.url + "/prompt")
    elapsed = time.perf_counter() - started
    emulator.stop()
    return elapsed


async def run_latencies(url: str, runs: int) -> tuple[list[float], list[float]]:
    client_id = uuid.uuid4().hex
    ws_url = "ws" + url[len("http"):] + f"/ws?clientId={client_id}"
    round_trips, one_node = [], []
    async with httpx.AsyncClient(base_url=url) as http, websockets.connect(ws_url) as ws:
        await ws.recv()
        for index in range(runs):
            started = time.perf_counter()
            await http.get("/prompt")
            round_trips.append(time.perf_counter() - started)

            workflow = {"1": {**ONE_NODE["1"], "inputs": {"source": f"hello {index}"}}}
            started = time.perf_counter()
            response = await http.post("/prompt", json={"prompt": workflow,
                                                        "client_id": client_id})
            prompt_id = response.json()["prompt_id"]
            while True:
                message = json.loads(await ws.recv())
                data = message["data"]
                if (message["type"] == "executing" and data.get("node") is None
                        and data.get("prompt_id") == prompt_id):
                    break
            one_node.append(time.perf_counter() - started)
    return round_trips, one_node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    bare_aiohttp_start()  # warm imports
    emulator_start()
    bare = statistics.median(bare_aiohttp_start() for _ in range(5))
    start = statistics.median(emulator_start() for _ in range(5))

    emulator = RunningEmulator(EmulatorOptions()).start()
    try:
        round_trips, one_node = asyncio.run(run_latencies(emulator.url, args.runs))
    finally:
        emulator.stop()
    trip, run = statistics.median(round_trips), statistics.median(one_node)
    worst = max(one_node)

    print(f"{'measure':<40} {'ms':>9} {'baseline ms':>12} {'ratio':>7}")
    print(f"{'emulator start-up (median of 5)':<40} {start * 1e3:9.2f} {bare * 1e3:12.2f} "
          f"{start / bare:7.2f}")
    print(f"{f'one-node run, median of {args.runs}':<40} {run * 1e3:9.2f} {trip * 1e3:12.2f} "
          f"{run / trip:7.2f}")
    print(f"{f'one-node run, slowest of {args.runs}':<40} {worst * 1e3:9.2f} {trip * 1e3:12.2f} "
          f"{worst / trip:7.2f}")
    print("baselines: bare aiohttp app start-up; one GET /prompt round trip to the emulator")


if __name__ == "__main__":
    main()

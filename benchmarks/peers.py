"""comfy_nb against its floor and its peers, in one process, runs interleaved:

- ``floor``: the least a client can do over the websocket (httpx + websockets: POST /prompt,
  wait for ``executing {node: null}``, GET /history, GET /view for each output);
- ``comfy_nb``: ``Client.run`` + reading every output's bytes, with the defaults (result cache
  on, in a throw-away folder) and with ``cache=False``;
- ``comfy_api_simplified`` (``queue_and_wait_images``), if installed;
- ``comfy-sdk`` (``Comfy.run`` + ``to_bytes``) through the vendor's ``comfy-api-proxy`` started
  in front of the same server on 127.0.0.1, if both are installed, and comfy_nb on Comfy API v2
  through the same proxy (``connect(proxy_url, api_key=token)``, ``cache=False``).

Then the v2 duel: comfy_nb (dialect ``v2``) and comfy-sdk through the same proxy, ``--v2-runs``
quick jobs each (taking turns), each run tried once: how many succeeded, and the median and p95
of those that did (comfy-sdk fails a run the proxy falsely reports ``expired``; comfy_nb reads
such a state again before believing it).

Two jobs: EmptyImage 64x64 -> ImageInvert -> SaveImage (a few ms on the server) and EmptyImage
768x768 -> ImageBlur (radius 6) -> SaveImage (about 90-100 ms on the emulator). Every run has a
colour of its own, so the server executes it (no node cache). The server time of each job is read
from its history (``execution_start`` to ``execution_success``). Then the time to
``import comfy_nb`` against ``import httpx``, each in fresh processes.

The peers are extras: ``pip install -e ".[bench]"``. A peer that is not installed is skipped
with a notice.

Usage: python benchmarks/peers.py [--url URL] [--runs N] [--imports N] [--blur-radius R]
                                 [--v2-runs N] [--v2-only]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import websockets
from _common import start_emulator

Workflow = dict[str, Any]
Runner = Callable[[Workflow], None]


def invert(index: int) -> Workflow:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": index % 0xFFFFFF},
              "_meta": {"title": "Canvas"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]},
              "_meta": {"title": "Invert"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                    "filename_prefix": "peers/invert"},
              "_meta": {"title": "Save Image"}},
    }


def blur(index: int, radius: int) -> Workflow:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 768, "height": 768, "batch_size": 1,
                         "color": index % 0xFFFFFF},
              "_meta": {"title": "Canvas"}},
        "2": {"class_type": "ImageBlur",
              "inputs": {"image": ["1", 0], "blur_radius": radius, "sigma": 1.0},
              "_meta": {"title": "Blur"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                    "filename_prefix": "peers/blur"},
              "_meta": {"title": "Save Image"}},
    }


# -- the floor -----------------------------------------------------------------------------------


class Floor:
    """One websocket, POST, wait for the end, read history, download the outputs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client_id = uuid.uuid4().hex
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._open())
        self.server_ms: list[float] = []

    async def _open(self) -> None:
        self.http = httpx.AsyncClient(base_url=self.url)
        self.ws = await websockets.connect(
            "ws" + self.url[4:] + f"/ws?clientId={self.client_id}", max_size=None)

    def close(self) -> None:
        async def close() -> None:
            await self.ws.close()
            await self.http.aclose()
        self.loop.run_until_complete(close())
        self.loop.close()

    async def _run(self, prompt: Workflow) -> None:
        prompt_id = str(uuid.uuid4())
        await self.http.post("/api/prompt", json={"prompt": prompt, "prompt_id": prompt_id,
                                                  "client_id": self.client_id})
        while True:
            message = await self.ws.recv()
            if isinstance(message, bytes):
                continue
            data = json.loads(message)
            if (data["type"] == "executing" and data["data"].get("node") is None
                    and data["data"].get("prompt_id") == prompt_id):
                break
        entry = (await self.http.get(f"/api/history/{prompt_id}")).json()[prompt_id]
        for output in entry["outputs"].values():
            for image in output.get("images", []):
                response = await self.http.get("/api/view", params=image)
                assert response.status_code == 200 and response.content
        stamps = {name: body.get("timestamp") for name, body in entry["status"]["messages"]}
        if stamps.get("execution_start") and stamps.get("execution_success"):
            self.server_ms.append(stamps["execution_success"] - stamps["execution_start"])

    def __call__(self, prompt: Workflow) -> None:
        self.loop.run_until_complete(self._run(prompt))


# -- comfy_nb ------------------------------------------------------------------------------------


def comfy_nb_runner(client: Any, cache: bool | None) -> Runner:
    def run(prompt: Workflow) -> None:
        result = client.run(prompt, cache=cache)
        assert not result.from_cache
        for file in result.files:
            assert file.read()
    return run


# -- peers ---------------------------------------------------------------------------------------


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def simplified_runner(url: str) -> Runner:
    from comfy_api_simplified import ComfyApiWrapper

    api = ComfyApiWrapper(url)

    def run(prompt: Workflow) -> None:
        images = api.queue_and_wait_images(prompt, "Save Image")
        assert images and all(images.values())
    return run


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_proxy(url: str, token: str) -> tuple[subprocess.Popen[bytes], str]:
    """``comfy-api-proxy run`` on 127.0.0.1 in front of ``url``, once it answers."""
    port = free_port()
    proxy = shutil.which("comfy-api-proxy")
    assert proxy is not None
    process = subprocess.Popen(
        [proxy, "run", "--comfyui", url, "--host", "127.0.0.1", "--port", str(port),
         "--token", token], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/api/v2/jobs", headers={"Authorization": f"Bearer {token}"},
                      timeout=2)
            return process, base
        except httpx.TransportError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("comfy-api-proxy did not start within 30 s")


def sdk_runner(base: str, token: str) -> tuple[Runner, Callable[[], None], list[int]]:
    os.environ["COMFY_BASE_URL"] = base
    from comfy_sdk import Comfy
    from comfy_sdk.exceptions import JobFailed

    client = Comfy(api_key=token)
    failures = [0]

    def run(prompt: Workflow) -> None:
        for _ in range(3):  # the proxy may report a job ending right then as "expired"
            try:
                job = client.run(client.workflows.from_json(prompt))
                break
            except JobFailed:
                failures[0] += 1
        else:
            raise RuntimeError("comfy-sdk: three failed runs in a row")
        assert job.outputs and all(output.to_bytes() for output in job.outputs)
    return run, client.close, failures


def sdk_once(base: str, token: str) -> tuple[Runner, Callable[[], None]]:
    """comfy-sdk's ``run``, tried once (its failures count as failures)."""
    os.environ["COMFY_BASE_URL"] = base
    from comfy_sdk import Comfy

    client = Comfy(api_key=token)

    def run(prompt: Workflow) -> None:
        job = client.run(client.workflows.from_json(prompt))
        assert job.outputs and all(output.to_bytes() for output in job.outputs)
    return run, client.close


def v2_client(base: str, token: str) -> Any:
    import comfy_nb

    client = comfy_nb.connect(base, api_key=token)
    assert client.dialect == "v2", client.dialect
    return client


def duel(columns: dict[str, Runner], runs: int, offset: int
         ) -> dict[str, tuple[int, list[float]]]:
    """Each column's successes and the seconds of its successful runs, ``runs`` quick jobs
    each, taking turns; a run that raises counts as a failure."""
    names = list(columns)
    outcome: dict[str, tuple[list[int], list[float]]] = {name: ([0], []) for name in names}
    counter = offset
    for round_ in range(runs):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            counter += 1
            prompt = invert(counter)
            started = time.perf_counter()
            try:
                columns[name](prompt)
            except Exception as exc:  # a failed run is counted, not retried
                print(f"{name}: run failed: {type(exc).__name__}: {exc}"[:200])
                continue
            outcome[name][1].append(time.perf_counter() - started)
            outcome[name][0][0] += 1
    return {name: (ok[0], times) for name, (ok, times) in outcome.items()}


def duel_table(runs: int, results: dict[str, tuple[int, list[float]]]) -> None:
    print(f"\nComfy API v2 through comfy-api-proxy: {runs} quick jobs each (64x64 invert), "
          "each tried once")
    print(f"{'client':<30} {'succeeded':>10} {'median ms':>10} {'p95 ms':>8}")
    for name, (successes, times) in results.items():
        median = f"{statistics.median(times) * 1e3:10.1f}" if times else f"{'-':>10}"
        tail = f"{p95(times) * 1e3:8.1f}" if times else f"{'-':>8}"
        print(f"{name:<30} {f'{successes}/{runs}':>10} {median} {tail}")


# -- measuring -----------------------------------------------------------------------------------


def measure(columns: dict[str, Runner], make: Callable[[int], Workflow], runs: int,
            warm: int, offset: int) -> dict[str, list[float]]:
    """Seconds per run of each column, the columns taking turns (rotated each round)."""
    names = list(columns)
    times: dict[str, list[float]] = {name: [] for name in names}
    counter = offset
    for round_ in range(warm + runs):
        turn = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in turn:
            counter += 1
            prompt = make(counter)
            started = time.perf_counter()
            columns[name](prompt)
            elapsed = time.perf_counter() - started
            if round_ >= warm:
                times[name].append(elapsed)
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def table(title: str, times: dict[str, list[float]], server_ms: list[float]) -> None:
    floor = statistics.median(times["floor"])
    server = f"{statistics.median(server_ms):.0f} ms" if server_ms else "unknown"
    print(f"\n{title} (server time, median: {server}; n={len(times['floor'])})")
    print(f"{'client':<30} {'median ms':>10} {'p95 ms':>8} {'vs floor':>9} {'+ms':>7}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<30} {median * 1e3:10.1f} {p95(values) * 1e3:8.1f} "
              f"{median / floor:8.2f}x {(median - floor) * 1e3:+7.1f}")


def import_times(count: int) -> dict[str, float]:
    """Median wall time of fresh processes importing each module (taking turns)."""
    statements = {"import httpx": "import httpx", "import comfy_nb": "import comfy_nb",
                  "import comfy_nb; comfy_nb.Client": "import comfy_nb; comfy_nb.Client",
                  "python -c pass": "pass"}
    samples: dict[str, list[float]] = {name: [] for name in statements}
    for _ in range(count):
        for name, code in statements.items():
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="a ComfyUI server (default: the emulator)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warm", type=int, default=3)
    parser.add_argument("--imports", type=int, default=15, help="fresh processes per import")
    parser.add_argument("--blur-radius", type=int, default=6,
                        help="ImageBlur radius of the second job (decides its server time)")
    parser.add_argument("--v2-runs", type=int, default=30,
                        help="quick jobs per client in the Comfy API v2 duel")
    parser.add_argument("--v2-only", action="store_true",
                        help="only the Comfy API v2 duel (comfy_nb v2 against comfy-sdk)")
    args = parser.parse_args()
    if args.v2_only:
        v2_only(args)
        return

    data_dir = Path(tempfile.mkdtemp(prefix="comfy-nb-bench-"))
    cache_dir = Path(tempfile.mkdtemp(prefix="comfy-nb-bench-cache-"))
    os.environ["COMFY_NB_CACHE_DIR"] = str(cache_dir)  # the defaults, in a throw-away folder
    os.environ.pop("COMFY_NB_CACHE", None)
    emulator = None
    url = args.url
    if url is None:
        emulator, url = start_emulator(data_dir)
    processes: list[subprocess.Popen[Any]] = []
    closers: list[Callable[[], None]] = []
    try:
        import comfy_nb

        floor = Floor(url)
        closers.append(floor.close)
        client = comfy_nb.connect(url)
        closers.append(client.close)
        columns: dict[str, Runner] = {
            "floor": floor,
            "comfy_nb (defaults)": comfy_nb_runner(client, None),
            "comfy_nb (cache off)": comfy_nb_runner(client, False),
        }
        if installed("comfy_api_simplified"):
            columns["comfy_api_simplified"] = simplified_runner(url)
        else:
            print("comfy_api_simplified is not installed: its column is skipped "
                  "(pip install comfy-api-simplified)")
        sdk_failures: list[int] = []
        if installed("comfy_sdk") and shutil.which("comfy-api-proxy"):
            token = secrets.token_urlsafe(24)
            proxy, base = start_proxy(url, token)
            processes.append(proxy)
            run, close, sdk_failures = sdk_runner(base, token)
            closers.append(close)
            columns["comfy-sdk via comfy-api-proxy"] = run
            v2 = v2_client(base, token)
            closers.append(v2.close)
            columns["comfy_nb v2 via comfy-api-proxy"] = comfy_nb_runner(v2, False)
        else:
            print("comfy-sdk or comfy-api-proxy is not installed: its column is skipped "
                  "(pip install comfy-sdk comfy-api-proxy)")

        small = measure(columns, invert, args.runs, args.warm, 1_000_000)
        small_server = list(floor.server_ms)
        floor.server_ms.clear()
        large = measure(columns, lambda i: blur(i, args.blur_radius), args.runs, args.warm,
                        2_000_000)
        large_server = list(floor.server_ms)
        duelled = None
        if "comfy_nb v2 via comfy-api-proxy" in columns:
            sdk_run, sdk_close = sdk_once(base, token)
            closers.append(sdk_close)
            duelled = duel({"comfy_nb v2": columns["comfy_nb v2 via comfy-api-proxy"],
                            "comfy-sdk": sdk_run}, args.v2_runs, 3_000_000)
    finally:
        for close in reversed(closers):
            close()
        for process in [*processes, *([emulator] if emulator else [])]:
            stop(process)
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(cache_dir, ignore_errors=True)

    print(f"server: {args.url or 'the comfy_nb emulator'}; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    table("64x64 EmptyImage -> ImageInvert -> SaveImage", small, small_server)
    table(f"768x768 EmptyImage -> ImageBlur (radius {args.blur_radius}) -> SaveImage", large,
          large_server)
    if sdk_failures and sdk_failures[0]:
        print(f"comfy-sdk: {sdk_failures[0]} runs ended 'expired' (a known proxy race) and were "
              "run again; their time counts")
    if duelled is not None:
        duel_table(args.v2_runs, duelled)
    imports = import_times(args.imports)
    print(f"\nimport (fresh processes, median of {args.imports})")
    for name, seconds in imports.items():
        print(f"{name:<34} {seconds * 1e3:8.1f} ms")
    print(f"{'ratio import comfy_nb / import httpx':<34} "
          f"{imports['import comfy_nb'] / imports['import httpx']:8.2f}")


def v2_only(args: argparse.Namespace) -> None:
    """The Comfy API v2 duel alone, on the emulator (or ``--url``) behind comfy-api-proxy."""
    data_dir = Path(tempfile.mkdtemp(prefix="comfy-nb-bench-"))
    emulator, url = (None, args.url) if args.url else start_emulator(data_dir)
    token = secrets.token_urlsafe(24)
    proxy, base = start_proxy(url, token)
    closers: list[Callable[[], None]] = []
    try:
        client = v2_client(base, token)
        closers.append(client.close)
        sdk_run, sdk_close = sdk_once(base, token)
        closers.append(sdk_close)
        columns = {"comfy_nb v2": comfy_nb_runner(client, False), "comfy-sdk": sdk_run}
        duel(columns, args.warm, 4_000_000)  # warm up both
        results = duel(columns, args.v2_runs, 3_000_000)
    finally:
        for close in reversed(closers):
            close()
        for process in [proxy, *([emulator] if emulator else [])]:
            stop(process)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"server: {args.url or 'the comfy_nb emulator'}; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    duel_table(args.v2_runs, results)


def stop(process: subprocess.Popen[Any]) -> None:
    """Terminate a child process; kill it if it lingers (comfy-api-proxy may, on open
    streams)."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


if __name__ == "__main__":
    main()

"""The vendor's Comfy API v2 implementation, started for tests: :func:`serve_proxy` runs
``comfy-api-proxy run`` (a test dependency) on a free loopback port in front of a local-dialect
server (the emulator), with a bearer token, waits until ``/api/v2/health`` answers, and stops it
after."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

STARTUP = 30.0  # seconds the proxy may take to answer its health check (a safety net)


@dataclass(frozen=True)
class RunningProxy:
    """A started comfy-api-proxy: its ``url`` and the ``token`` it wants as Bearer."""

    url: str
    token: str
    upstream: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command() -> list[str]:
    found = shutil.which("comfy-api-proxy")
    if found:
        return [found]
    return [sys.executable, "-m", "comfy_api_proxy.cli"]


@contextlib.contextmanager
def serve_proxy(upstream: str, *, token: str | None = None) -> Iterator[RunningProxy]:
    """comfy-api-proxy in front of ``upstream`` (a local ComfyUI or the local emulator)."""
    token = token or "tok-" + secrets.token_hex(12)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFY_")}
    process = subprocess.Popen(
        [*_command(), "run", "--comfyui", upstream, "--host", "127.0.0.1", "--port", str(port),
         "--token", token], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP
        while True:
            if process.poll() is not None:
                error = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise RuntimeError(f"comfy-api-proxy exited ({process.returncode}): {error}")
            try:
                if httpx.get(url + "/api/v2/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("comfy-api-proxy did not answer /api/v2/health")
            time.sleep(0.05)
        yield RunningProxy(url, token, upstream)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

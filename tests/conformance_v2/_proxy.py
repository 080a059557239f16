"""The real comfy-api-proxy (the vendor's v2 implementation, installed with the ``test`` extra)
started on a free loopback port in front of a server the test started, and stopped after."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def comfy_api_proxy(comfyui_url: str, token: str) -> Iterator[str]:
    """``comfy-api-proxy run`` in front of ``comfyui_url``; yields its base URL."""
    command = shutil.which("comfy-api-proxy")
    assert command is not None, "comfy-api-proxy is not installed (pip install -e '.[test]')"
    port = free_port()
    process = subprocess.Popen(
        [command, "run", "--comfyui", comfyui_url, "--host", "127.0.0.1", "--port", str(port),
         "--token", token],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                said = process.stderr.read().decode() if process.stderr else ""
                raise AssertionError(f"comfy-api-proxy exited: {said}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/api/v2/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "comfy-api-proxy did not start within 30 s"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stderr is not None:
            process.stderr.close()

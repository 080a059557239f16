"""``comfy-nb emulator --dialect v2``: the v2 emulator as a server process, with and without
``--token``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


@contextmanager
def emulator_process(*arguments: str) -> Iterator[tuple[str, list[str]]]:
    """The command started on a free port; its URL and the lines it printed after the first."""
    process = subprocess.Popen(
        [sys.executable, "-m", "comfy_nb.cli", "emulator", "--port", "0", "--dialect", "v2",
         *arguments],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "comfy_nb emulator (v2 dialect) listening on http://127.0.0.1:" in first, first
        lines = [process.stdout.readline() for _ in range(2)]
        yield first.strip().rsplit(" ", 1)[-1], lines
    finally:
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert process.returncode == 0


def test_with_a_token_the_v2_api_needs_it() -> None:
    with emulator_process("--token", "cli-token") as (url, lines):
        assert any("Bearer token required" in line for line in lines)
        assert all("cli-token" not in line for line in lines)  # the secret is not printed
        assert httpx.get(url + "/api/v2/health", timeout=5).status_code == 200
        refused = httpx.get(url + "/api/v2/jobs", timeout=5)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        allowed = httpx.get(url + "/api/v2/jobs", timeout=5,
                            headers={"Authorization": "Bearer cli-token"})
        assert allowed.json() == {"jobs": [], "truncated": False}


def test_without_a_token_the_v2_api_is_open() -> None:
    with emulator_process() as (url, lines):
        assert any("no auth" in line for line in lines)
        assert httpx.get(url + "/api/v2/jobs", timeout=5).status_code == 200


def test_the_proxys_races_can_be_switched_on_from_the_command_line() -> None:
    with emulator_process("--fault", "cancel_noop=true", "--fault", "sse_stall=15",
                          "--fault", "expired_race=0.5") as (url, _):
        faults = httpx.get(url + "/_emulator/faults", timeout=5).json()
    assert faults["cancel_noop"] is True
    assert faults["sse_stall"] == 15
    assert faults["expired_race"] == 0.5

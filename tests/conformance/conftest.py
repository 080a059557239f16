"""Fixtures of the conformance suite: a fresh local-dialect emulator per test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from comfy_nb.emulator import RunningEmulator

from ..factories import Emulators


@pytest.fixture
def server(emulators: Emulators) -> RunningEmulator:
    return emulators("local", step_delay=0.01)


@pytest.fixture
def http(server: RunningEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        yield client

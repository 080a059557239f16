"""Fixtures of the conformance suite: a fresh local-dialect emulator per test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from comfy_nb.emulator import RunningEmulator

from ..factories import Emulators
from ._replay import FIXTURES


def pytest_configure(config: pytest.Config) -> None:
    if not FIXTURES.is_dir():
        raise pytest.UsageError(
            f"recorded fixtures not found at {FIXTURES}: they are part of the repository "
            "(tests/fixtures/); COMFY_NB_FIXTURES, when set, must name a folder laid out the "
            "same way"
        )


@pytest.fixture
def server(emulators: Emulators) -> RunningEmulator:
    return emulators("local", step_delay=0.01)


@pytest.fixture
def http(server: RunningEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        yield client

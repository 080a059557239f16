"""Markers of the client tests."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "emulator(**options): options for the emulator of tests/client/test_client.py "
        "(EmulatorOptions fields, e.g. node_delay=0.3, tier='standard')")

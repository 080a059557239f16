"""Settings for the whole test session: the result cache (comfy_nb.cache) is off and points at a
throw-away folder, for this process and every kernel or subprocess it starts, so one test's run
never comes back from another test's cache, nor from the user's. tests/test_cache.py turns the
cache on explicitly, with its own folders."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_FOLDER = tempfile.mkdtemp(prefix="comfy-nb-test-cache-")


def pytest_configure(config: pytest.Config) -> None:
    os.environ["COMFY_NB_CACHE"] = "off"
    os.environ["COMFY_NB_CACHE_DIR"] = _FOLDER


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_FOLDER, ignore_errors=True)

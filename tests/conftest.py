"""Settings for the whole test session, for this process and every kernel or subprocess it
starts (they inherit the environment):

- the result cache (comfy_nb.cache) is off and points at a throw-away folder, so one test's run
  never comes back from another test's cache, nor from the user's (tests/test_cache.py turns it
  on explicitly, with its own folders);
- the tests are hermetic: nothing is probed on 127.0.0.1:8188 (``COMFY_NB_LOCAL_URL=off``; tests
  of that discovery point it at a server they started), "cloud" names an address that can never
  resolve (``COMFY_NB_CLOUD_URL``; tests of Cloud point it at a Cloud-dialect emulator), and the
  user's own ``COMFY_URL`` and ``COMFY_CLOUD_API_KEY`` are not seen.

It also holds the factory fixtures every test module starts its servers and clients with
(:mod:`tests.factories`): ``emulators`` and ``clients`` end with the test, ``module_emulators``
and ``module_clients`` with the module; the ``browser`` and ``conformance`` markers (``slow`` is
set on each slow test).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from .factories import Clients, Emulators

_FOLDER = tempfile.mkdtemp(prefix="comfy-nb-test-cache-")
UNREACHABLE_CLOUD = "https://comfy-cloud.invalid"  # RFC 2606: .invalid never resolves


def pytest_configure(config: pytest.Config) -> None:
    os.environ["COMFY_NB_CACHE"] = "off"
    os.environ["COMFY_NB_CACHE_DIR"] = _FOLDER
    os.environ["COMFY_NB_LOCAL_URL"] = "off"
    os.environ["COMFY_NB_CLOUD_URL"] = UNREACHABLE_CLOUD
    for name in ("COMFY_URL", "COMFY_CLOUD_API_KEY"):
        os.environ.pop(name, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_FOLDER, ignore_errors=True)


@pytest.fixture
def emulators() -> Iterator[Emulators]:
    """``emulators(dialect="local", **options)``: a started emulator, stopped after the test."""
    with contextlib.ExitStack() as stack:
        yield Emulators(stack)


@pytest.fixture(scope="module")
def module_emulators() -> Iterator[Emulators]:
    """``module_emulators(dialect="local", **options)``: a started emulator, stopped after the
    module (for the servers a module's tests share)."""
    with contextlib.ExitStack() as stack:
        yield Emulators(stack)


@pytest.fixture
async def clients(emulators: Emulators) -> AsyncIterator[Clients]:
    """Sync and async clients of emulators, closed after the test (before ``emulators`` stops
    its servers)."""
    made = Clients()
    try:
        yield made
    finally:
        await made.aclose()


@pytest.fixture(scope="module")
def module_clients(module_emulators: Emulators) -> Iterator[Clients]:
    """Synchronous clients (``connect``) of emulators, closed after the module."""
    made = Clients()
    try:
        yield made
    finally:
        made.close()


# -- markers ------------------------------------------------------------------------------------

CONFORMANCE = Path(__file__).resolve().parent / "conformance"


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``conformance`` on every test of tests/conformance/, ``browser`` on every test that uses
    the ``browser`` fixture (a Chromium page, through Playwright)."""
    for item in items:
        if CONFORMANCE in item.path.parents:
            item.add_marker(pytest.mark.conformance)
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)

"""Settings for the whole test session, for this process and every kernel or subprocess it
starts (they inherit the environment):

- the result cache (comfy_nb.cache) is off and points at a throw-away folder, so one test's run
  never comes back from another test's cache, nor from the user's (tests/test_cache.py turns it
  on explicitly, with its own folders); the job ledger (comfy_nb.ledger) is written there too,
  never into the working folder;
- the tests are hermetic: nothing is probed on 127.0.0.1:8188 (``COMFY_NB_LOCAL_URL=off``; tests
  of that discovery point it at a server they started), "cloud" names an address that can never
  resolve (``COMFY_NB_CLOUD_URL``; tests of Cloud point it at a Cloud-dialect emulator), and the
  user's own ``COMFY_URL`` and ``COMFY_CLOUD_API_KEY`` (nor the v2 SDK's ``COMFY_BASE_URL``
  and ``COMFY_API_KEY``) are not seen;
- Ctrl+C works as in a terminal or in a kernel running a cell: SIGINT raises KeyboardInterrupt
  in the main thread, and the subprocesses the tests start (the CLI) get SIGINT's default. A
  run started in the background by a shell without job control (``pytest ... &`` in a script)
  inherits SIGINT ignored, and then ``_thread.interrupt_main()`` (the tests' Ctrl+C) does
  nothing at all.

It also holds the factory fixtures every test module starts its servers and clients with
(:mod:`tests.factories`): ``emulators`` and ``clients`` end with the test, ``module_emulators``
and ``module_clients`` with the module; the ``browser`` and ``conformance`` markers (``slow`` is
set on each slow test); and what makes a missing folder of recorded fixtures
(:mod:`tests.fixture_paths`) fail only the tests that need it, each with the reason: a test
or fixture that reads under it fails so (as does any failing test of a module that names a
path under it), and a module that reads under it at import is collected as one test
(``recorded_fixtures``) that fails so, instead of stopping the run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from . import fixture_paths
from .factories import Clients, Emulators

_FOLDER = tempfile.mkdtemp(prefix="comfy-nb-test-cache-")
UNREACHABLE_CLOUD = "https://comfy-cloud.invalid"  # RFC 2606: .invalid never resolves
_SIGINT_BEFORE: list[Any] = []  # the SIGINT handler to put back, when it was changed


def pytest_configure(config: pytest.Config) -> None:
    os.environ["COMFY_NB_CACHE"] = "off"
    os.environ["COMFY_NB_CACHE_DIR"] = _FOLDER
    os.environ["COMFY_NB_JOBS"] = os.path.join(_FOLDER, "jobs.jsonl")
    os.environ["COMFY_NB_LOCAL_URL"] = "off"
    os.environ["COMFY_NB_CLOUD_URL"] = UNREACHABLE_CLOUD
    for name in ("COMFY_URL", "COMFY_CLOUD_API_KEY", "COMFY_BASE_URL", "COMFY_API_KEY"):
        os.environ.pop(name, None)
    handler = signal.getsignal(signal.SIGINT)
    if handler in (signal.SIG_IGN, signal.SIG_DFL):
        _SIGINT_BEFORE.append(handler)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_FOLDER, ignore_errors=True)
    if _SIGINT_BEFORE:
        signal.signal(signal.SIGINT, _SIGINT_BEFORE.pop())


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

CONFORMANCE = [Path(__file__).resolve().parent / name for name in ("conformance", "conformance_v2")]
V2 = Path(__file__).resolve().parent / "v2"  # the client through the vendor's comfy-api-proxy


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``conformance`` on every test of tests/conformance/ and tests/conformance_v2/, ``v2`` on
    every test of tests/v2/,
    ``browser`` on every test that uses the ``browser`` fixture (a Chromium page, through
    Playwright)."""
    for item in items:
        if any(folder in item.path.parents for folder in CONFORMANCE):
            item.add_marker(pytest.mark.conformance)
        if V2 in item.path.parents:
            item.add_marker(pytest.mark.v2)
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


# -- a missing folder of recorded fixtures ------------------------------------------------------


def _missing_fixtures(error: BaseException | None) -> Path | None:
    """The missing folder of recorded fixtures behind ``error``: a :class:`FileNotFoundError`
    for a path in it (a missing file in a folder that exists is an ordinary error), raised or
    causing what was raised."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, FileNotFoundError) and error.filename:
            folder = fixture_paths.missing_folder(Path(error.filename).parent)
            if folder is not None:
                return folder
        error = error.__cause__ or error.__context__
    return None


def _missing_for_module(item: pytest.Item) -> Path | None:
    """The missing folder of recorded fixtures that a path among the globals of ``item``'s
    module lies in (the module counts on what is there, e.g. ``len(PAIRS) == 8``)."""
    module = getattr(item, "module", None)
    for value in vars(module).values() if module is not None else ():
        folder = fixture_paths.missing_folder(value) if isinstance(value, Path) else None
        if folder is not None:
            return folder
    return None


def _fail_for_missing_fixtures(item: pytest.Item, error: Exception) -> None:
    """Fail with the reason if recorded fixtures ``item`` needs are missing; else return."""
    folder = _missing_fixtures(error)
    if folder is not None:
        pytest.fail(fixture_paths.not_found(folder), pytrace=False)
    folder = _missing_for_module(item)
    if folder is not None:
        pytest.fail(f"{fixture_paths.not_found(folder)}; the test failed with:\n"
                    f"{type(error).__name__}: {error}", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    try:
        return (yield)
    except Exception as error:
        _fail_for_missing_fixtures(item, error)
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    try:
        return (yield)
    except Exception as error:
        _fail_for_missing_fixtures(item, error)
        raise


class MissingFixtures(pytest.Item):
    """The tests of a module that cannot be imported without a missing folder of recorded
    fixtures: one test that fails with the reason."""

    def __init__(self, *, folder: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.folder = folder

    def runtest(self) -> None:
        pytest.fail(fixture_paths.not_found(self.folder), pytrace=False)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


class ModuleReadingFixtures(pytest.Module):
    """A test module whose import may need recorded fixtures (see :class:`MissingFixtures`)."""

    def collect(self) -> Any:
        try:
            self.obj  # noqa: B018 (imports the module)
        except Exception as error:
            folder = _missing_fixtures(error)
            if folder is None:
                raise
            return [MissingFixtures.from_parent(self, name="recorded_fixtures", folder=folder)]
        return super().collect()


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> Any:
    if module_path.name == "__init__.py":
        return None  # a package: pytest's own
    return ModuleReadingFixtures.from_parent(parent, path=module_path)

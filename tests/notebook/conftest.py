"""Fixtures of the notebook tests: emulators, recorded widget messages and display updates
(:mod:`.comms`), a JupyterLab server (and a Notebook 7 one) and a Chromium page.

The browser fixtures start once per module and always stop what they started (server, kernels,
browser). Screenshots go to ``ARTIFACTS`` (``<repo>/test-output/browser/``, ignored by git).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comm
import pytest

from comfy_nb.emulator import RunningEmulator
from comfy_nb.notebook import progress

from ..factories import Emulators
from .browser_support import CHROMIUM, CHROMIUM_ARGS, TIMEOUT, JupyterLab, jupyter_lab
from .comms import FakeHandle, Message, RecordingComm

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-output" / "browser"
LAB_STEP_DELAY = 0.1  # seconds per sampler step: a 40-step job runs long enough to watch


@pytest.fixture(scope="module")
def notebook_emulator(module_emulators: Emulators) -> RunningEmulator:
    """A fast local-ComfyUI emulator for notebooks run by nbclient."""
    return module_emulators(step_delay=0.01)


@pytest.fixture(scope="module")
def lab_emulator(module_emulators: Emulators) -> RunningEmulator:
    """The emulator the JupyterLab kernels reach through ``COMFY_URL``."""
    return module_emulators(step_delay=LAB_STEP_DELAY)


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> list[Message]:
    """Every message of the widgets made in the test, recorded instead of sent."""
    RecordingComm.log = []
    monkeypatch.setattr(comm, "create_comm", RecordingComm)
    return RecordingComm.log


@pytest.fixture
def handles(monkeypatch: pytest.MonkeyPatch) -> list[FakeHandle]:
    """The display handles of the live views (job, sweep) shown in the test, in order."""
    made: list[FakeHandle] = []

    def fake_display(obj: Any, **kwargs: Any) -> FakeHandle:
        made.append(FakeHandle(obj))
        return made[-1]

    monkeypatch.setattr(progress, "_display", fake_display)
    return made


@pytest.fixture(scope="module")
def lab(lab_emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[JupyterLab]:
    """A JupyterLab server on a free loopback port, without token, kernels on ``lab_emulator``."""
    with jupyter_lab(tmp_path_factory.mktemp("jupyterlab"),
                     {"COMFY_URL": lab_emulator.url}) as server:
        yield server


@pytest.fixture(scope="module")
def notebook7(lab_emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[JupyterLab]:
    """A Notebook 7 server on a free loopback port, without token, kernels on
    ``lab_emulator``."""
    with jupyter_lab(tmp_path_factory.mktemp("notebook7"), {"COMFY_URL": lab_emulator.url},
                     app="notebook") as server:
        yield server


# module scope: Playwright's sync API keeps an event loop running in the main thread while it
# is open, which would break every later test that starts an event loop of its own
@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium (Debian's, never a downloaded one) with a fresh profile."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT * 1000)
        try:
            yield context
        finally:
            context.close()


_FAILED = pytest.StashKey[bool]()  # set on each test item: did its call phase fail?


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


@pytest.fixture
def page(browser: Any, artifacts: Path, lab: JupyterLab, request: pytest.FixtureRequest
         ) -> Iterator[Any]:
    """A new tab, closed after the test; a failed test leaves a screenshot, the cell outputs and
    the server log next to the other artifacts."""
    tab = browser.new_page()
    try:
        yield tab
        if request.node.stash.get(_FAILED, False):
            name = f"failed-{request.node.name}"
            tab.screenshot(path=artifacts / f"{name}.png")
            outputs = tab.locator(".jp-OutputArea-output").all_inner_texts()
            (artifacts / f"{name}.txt").write_text(
                "\n---\n".join(outputs) + "\n\n=== JupyterLab log ===\n" + lab.log_tail(200))
    finally:
        tab.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where browser tests save screenshots; the folder ignores itself in git."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ignore = ARTIFACTS.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# written by tests/notebook/conftest.py: test artifacts only\n*\n")
    return ARTIFACTS


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Close the widgets tests left alive, before interpreter shutdown makes ipywidgets' own
    clean-up fail noisily."""
    import ipywidgets

    ipywidgets.Widget.close_all()

"""``%%comfy_run`` in a real JupyterLab, watched from Chromium: the live panel (progress bars that
move, a preview), its replacement by the static gallery, and the Cancel button of a
``--no-wait`` job and of a cell that waits, checked against what the emulator saw.

Needs Debian's chromium (``apt-get install chromium``); screenshots go to ``test-output/browser/``.
"""

from __future__ import annotations

import json
import re
import urllib.error
from pathlib import Path
from typing import Any

from comfy_nb.emulator import RunningEmulator

from .browser_support import (
    JupyterLab,
    get_json,
    open_notebook,
    poll,
    progress_values,
    run_all_cells,
    stderr_outputs,
    write_notebook,
)

WORKFLOW = Path(__file__).resolve().parents[2] / "comfy_nb" / "workflows" / "txt2img.json"
PREVIEW = 'img.comfy-nb-preview[src^="blob:"], .comfy-nb-preview img[src^="blob:"]'


def comfy_run_cell(options: str) -> str:
    """A ``%%comfy_run`` cell holding the bundled workflow, compact so screenshots show outputs."""
    return f"%%comfy_run {options}\n{json.dumps(json.loads(WORKFLOW.read_text()))}"


def screenshot(page: Any, selector: str, path: Path) -> None:
    page.locator(selector).first.scroll_into_view_if_needed()
    page.screenshot(path=path)


def test_panel_shows_progress_and_preview_then_the_result(
        page: Any, lab: JupyterLab, artifacts: Path) -> None:
    write_notebook(lab.root_dir, "panel.ipynb", [
        "%load_ext comfy_nb",
        comfy_run_cell("--set KSampler.steps=40"),
    ])
    open_notebook(page, lab, "panel.ipynb")
    run_all_cells(page)

    page.wait_for_selector(".comfy-nb-panel progress.comfy-nb-graph", state="attached")
    first = progress_values(page)
    poll(lambda: _moved_on(first, progress_values(page)),
         f"a progress bar to move on from {first}")
    page.wait_for_selector(PREVIEW)
    screenshot(page, ".comfy-nb-panel", artifacts / "panel-running.png")

    page.wait_for_selector(".comfy-nb-result img")
    page.wait_for_selector(".comfy-nb-panel", state="detached")
    screenshot(page, ".comfy-nb-result", artifacts / "panel-finished.png")
    assert stderr_outputs(page) == []


def test_cancel_button_interrupts_the_job(
        page: Any, lab: JupyterLab, lab_emulator: RunningEmulator, artifacts: Path) -> None:
    write_notebook(lab.root_dir, "cancel.ipynb", [
        "%load_ext comfy_nb",
        comfy_run_cell("--no-wait --set KSampler.steps=200 job"),
        "print('prompt id:', job.id)",
    ])
    open_notebook(page, lab, "cancel.ipynb")
    run_all_cells(page)

    printed = page.locator(".jp-OutputArea-output", has_text="prompt id:")
    printed.wait_for()
    match = re.search(r"prompt id: (\S+)", printed.inner_text())
    assert match, printed.inner_text()
    prompt_id = match.group(1)
    poll(lambda: prompt_id in _queued(lab_emulator, "queue_running"),
         f"job {prompt_id} to run on the emulator")

    page.click(".comfy-nb-cancel")
    page.wait_for_selector(".comfy-nb-cancelled")
    page.wait_for_selector(".comfy-nb-panel", state="detached")
    screenshot(page, ".comfy-nb-cancelled", artifacts / "cancelled.png")

    status = poll(lambda: _history_status(lab_emulator, prompt_id),
                  f"the emulator's history of {prompt_id}")
    assert status["status_str"] == "error", status
    assert "execution_interrupted" in [kind for kind, _ in status["messages"]], status
    assert prompt_id not in _queued(lab_emulator, "queue_running", "queue_pending")
    assert stderr_outputs(page) == []


def test_cancel_button_of_a_waiting_cell_cancels_the_job(
        page: Any, lab: JupyterLab, lab_emulator: RunningEmulator, artifacts: Path) -> None:
    cancel_a_waiting_cell(page, lab, lab_emulator, artifacts / "cancelled-waiting.png")


def test_cancel_button_of_a_waiting_cell_in_notebook_7(
        browser: Any, notebook7: JupyterLab, lab_emulator: RunningEmulator,
        artifacts: Path) -> None:
    page = browser.new_page()
    try:
        cancel_a_waiting_cell(page, notebook7, lab_emulator,
                              artifacts / "cancelled-waiting-notebook7.png", app="notebook")
    except Exception:
        page.screenshot(path=artifacts / "failed-notebook7.png")
        raise
    finally:
        page.close()


def cancel_a_waiting_cell(page: Any, server: JupyterLab, emulator: RunningEmulator,
                          picture: Path, app: str = "jupyterlab") -> None:
    """Run All on a notebook whose %%comfy_run cell waits for a long job, click the Cancel
    button of its panel, and check the job, the cell and the cell after it."""
    name = f"cancel_waiting_{app}.ipynb"
    write_notebook(server.root_dir, name, [
        "%load_ext comfy_nb",
        comfy_run_cell("waited --set KSampler.steps=400"),
        "print('the next cell ran')",
    ])
    open_notebook(page, server, name, app=app)
    run_all_cells(page)

    page.wait_for_selector(".comfy-nb-panel .comfy-nb-cancel")
    prompt_id = poll(lambda: next(iter(_queued(emulator, "queue_running")), None),
                     "the job to run on the emulator")
    page.click(".comfy-nb-panel .comfy-nb-cancel")
    page.wait_for_selector(".comfy-nb-cancelled")
    page.wait_for_selector(".comfy-nb-panel", state="detached")
    screenshot(page, ".comfy-nb-cancelled", picture)

    status = poll(lambda: _history_status(emulator, prompt_id),
                  f"the emulator's history of {prompt_id}")
    assert "execution_interrupted" in [kind for kind, _ in status["messages"]], status
    assert prompt_id not in _queued(emulator, "queue_running", "queue_pending")
    note = page.locator(".comfy-nb-cancelled").inner_text()
    assert note.strip() == f"comfy_nb: job {prompt_id} was cancelled (Cancel button)", note
    # the cell fails, so Run All stops there, as it does with the kernel's stop button
    errors = poll(lambda: stderr_outputs(page), "the cell's error")
    assert [line for text in errors for line in text.splitlines()][:1] == [
        f"JobCancelled: job {prompt_id} was cancelled"], errors
    assert page.locator(".jp-OutputArea-output", has_text="the next cell ran").count() == 0


def _moved_on(before: list[float], now: list[float]) -> bool:
    return len(now) == len(before) and any(b > a for a, b in zip(before, now, strict=True))


def _queued(emulator: RunningEmulator, *lists: str) -> list[str]:
    """Prompt ids in the emulator's ``/queue`` lists (``queue_running``, ``queue_pending``)."""
    queue = get_json(emulator.url + "/queue")
    return [item[1] for name in lists for item in queue[name]]


def _history_status(emulator: RunningEmulator, prompt_id: str) -> dict[str, Any] | None:
    try:
        history = get_json(f"{emulator.url}/history/{prompt_id}")
    except (urllib.error.URLError, json.JSONDecodeError):
        return None
    return history.get(prompt_id, {}).get("status")


def test_the_banner_wraps_between_words(page: Any, lab: JupyterLab, artifacts: Path) -> None:
    page.set_viewport_size({"width": 640, "height": 900})
    write_notebook(lab.root_dir, "banner.ipynb", ["%load_ext comfy_nb", "%comfy status"])
    open_notebook(page, lab, "banner.ipynb")
    run_all_cells(page)
    banner = page.locator(".comfy-nb-banner").first
    banner.wait_for()
    screenshot(page, ".comfy-nb-banner", artifacts / "banner-narrow.png")
    lines = banner.evaluate(SCREEN_LINES)
    assert len(lines) > 2, lines  # narrow enough to wrap
    assert [word for word in banner.inner_text().split()
            if not any(word in line.split() for line in lines)] == [], lines


# The text of an element as the browser laid it out, one string per screen line.
SCREEN_LINES = """element => {
    const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    const lines = new Map();
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (let i = 0; i < node.length; i++) {
            const range = document.createRange();
            range.setStart(node, i);
            range.setEnd(node, i + 1);
            const rect = range.getClientRects()[0];
            if (!rect) continue;
            const top = Math.round(rect.top);
            lines.set(top, (lines.get(top) || "") + node.data[i]);
        }
    }
    return [...lines.entries()].sort((a, b) => a[0] - b[0]).map(entry => entry[1]);
}"""

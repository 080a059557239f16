"""A cell that waits for its job still hears its own panel: the Cancel button of a blocking
``%%comfy_run`` cancels the job, and whatever else the front end sent meanwhile (the next cells,
clicks on other widgets) reaches the kernel afterwards, in order. Real kernels, driven over
their sockets as a front end drives them (the browser test clicks the same button in
JupyterLab)."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from comfy_nb.emulator import RunningEmulator
from comfy_nb.notebook.cell_events import cell_events

from ..factories import Emulators
from .kernel_session import KernelSession, kernel_session


@pytest.fixture(scope="module")
def emulator(module_emulators: Emulators) -> RunningEmulator:
    return module_emulators(step_delay=0.02)


@pytest.fixture
def kernel(emulator: RunningEmulator, tmp_path: Path) -> Iterator[KernelSession]:
    # JPY_SESSION_NAME: as under a Jupyter server, progress goes to widgets
    with kernel_session(tmp_path, {"COMFY_URL": emulator.url,
                                   "JPY_SESSION_NAME": "cells.ipynb"}) as session:
        session.run("%load_ext comfy_nb")
        yield session


def history(emulator: RunningEmulator) -> dict[str, Any]:
    with urllib.request.urlopen(emulator.url + "/history", timeout=10) as response:
        found: dict[str, Any] = json.load(response)
    return found


def test_the_cancel_button_of_a_waiting_cell_cancels_its_job(
        kernel: KernelSession, emulator: RunningEmulator) -> None:
    before = set(history(emulator))
    cell = kernel.execute("%%comfy_run out --file txt2img --set KSampler.steps=2000\n# txt2img")
    button = kernel.wait_for(lambda: kernel.comm_with_class("comfy-nb-cancel"),
                             "the panel's Cancel button")
    kernel.wait_for(lambda: _running(emulator), "the job to run")
    kernel.click(button)
    kernel.wait_for(lambda: cell.idle, "the cell to end", timeout=30)

    [prompt_id] = set(history(emulator)) - before
    status = history(emulator)[prompt_id]["status"]
    assert "execution_interrupted" in [kind for kind, _ in status["messages"]], status
    assert cell.errors == [f"JobCancelled: job {prompt_id} was cancelled"]
    endings = cell.of_type("update_display_data")
    assert endings, "the panel was not replaced"
    note = endings[-1]["content"]["data"]
    assert "comfy-nb-cancelled" in note["text/html"]
    assert note["text/plain"] == f"comfy_nb: job {prompt_id} was cancelled (Cancel button)"


def _running(emulator: RunningEmulator) -> bool:
    with urllib.request.urlopen(emulator.url + "/queue", timeout=10) as response:
        return bool(json.load(response)["queue_running"])


def test_what_else_arrives_while_a_cell_waits_runs_afterwards_in_order(
        kernel: KernelSession) -> None:
    kernel.run("import ipywidgets\norder = []\nother = ipywidgets.Button()\n"
               "other.on_click(lambda _: order.append('click'))\nprint(other.model_id)")
    other = kernel.requests[list(kernel.requests)[-1]].stdout.strip()
    first = kernel.execute("%%comfy_run out --file txt2img --set KSampler.steps=100\n# txt2img")
    kernel.wait_for(lambda: kernel.comm_with_class("comfy-nb-cancel"), "the panel")
    second = kernel.execute("order.append('second')")
    kernel.click(other)
    third = kernel.execute("order.append('third'); print(order, type(out).__name__)")
    kernel.wait_for(lambda: third.idle, "the third cell to end")

    assert first.errors == second.errors == third.errors == []
    assert third.stdout.strip() == "['second', 'click', 'third'] Result"
    assert [m["content"]["execution_count"] for m in
            (first.of_type("execute_input") + second.of_type("execute_input")
             + third.of_type("execute_input"))] == [3, 4, 5]


def test_no_events_outside_a_kernel_or_off_the_main_thread() -> None:
    shell = InteractiveShell.instance()
    assert shell is not None
    assert cell_events() is None  # terminal IPython, scripts: the stop button / Ctrl+C
    found: list[Any] = ["unset"]
    thread = threading.Thread(target=lambda: found.__setitem__(0, cell_events()))
    thread.start()
    thread.join()
    assert found == [None]


def test_the_cancel_button_of_a_waiting_sweep_cancels_its_jobs(
        kernel: KernelSession, emulator: RunningEmulator) -> None:
    before = set(history(emulator))
    cell = kernel.execute("%%comfy_run grid --sweep seed=1,2,3 --concurrency 1 --file txt2img "
                          "--set KSampler.steps=2000\n# txt2img")
    button = kernel.wait_for(lambda: kernel.comm_with_class("comfy-nb-cancel"),
                             "the panel's Cancel button")
    kernel.wait_for(lambda: _running(emulator), "the first job to run")
    kernel.click(button)
    kernel.wait_for(lambda: cell.idle, "the cell to end", timeout=30)

    assert cell.errors == []
    ran = [entry for prompt_id, entry in history(emulator).items() if prompt_id not in before]
    assert [entry["status"]["status_str"] for entry in ran] == ["error"]  # the others never ran
    grid = cell.of_type("update_display_data")[-1]["content"]["data"]["text/plain"]
    assert grid.startswith("<Sweep 3 jobs (seed, product): 3 cancelled>"), grid
    run = kernel.run("print([item.status for item in grid.items])")
    assert run.stdout.strip() == "['cancelled', 'cancelled', 'cancelled']"

"""The notebook view of sweeps against the emulator: the summary panel's widget message budget
(counted with a recording comm), the html and text back ends, the labelled grid that replaces
the panel (rows and columns by parameter, captions, errors in their cells, 50+ jobs), and
:func:`run_sweep_in_cell`, what ``%%comfy_run --sweep`` calls."""

from __future__ import annotations

import _thread
import base64
import io
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ipywidgets
import pytest
from PIL import Image

import comfy_nb
from comfy_nb.emulator import RunningEmulator, serve
from comfy_nb.notebook import display, sweep_view
from comfy_nb.notebook.progress import MAX_WIDGET_MESSAGES
from comfy_nb.notebook.sweep_view import (
    SweepWidgetPanel,
    grid_settings,
    layout,
    render_sweep,
    run_sweep_in_cell,
)
from comfy_nb.sweeps import parse_sweep_values
from comfy_nb.workflows import bundled

from ..factories import Clients, Emulators
from .comms import FakeHandle, Message, most_in_one_second, update_times

WAIT = 60.0


def txt2img(steps: int = 2) -> dict[str, Any]:
    workflow = bundled("txt2img")
    workflow["3"]["inputs"]["steps"] = steps
    return workflow


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test in its own folder (full-size files go to comfy_outputs/ there)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMFY_NB_CACHE", "off")  # every job runs
    yield tmp_path
    display.settings.__init__()  # type: ignore[misc]
    grid_settings.__init__()  # type: ignore[misc]


@pytest.fixture(scope="module")
def emulator(module_emulators: Emulators) -> RunningEmulator:
    return module_emulators(step_delay=0.002)


@pytest.fixture(scope="module")
def client(emulator: RunningEmulator, module_clients: Clients) -> comfy_nb.Client:
    return module_clients.connect(emulator)


def thumbnails(markup: str) -> list[Image.Image]:
    """The images embedded in ``markup``."""
    found = re.findall(r'src="data:image/(?:jpeg|png);base64,([^"]+)"', markup)
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in found]


# -- the summary panel ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_sweep_panel_stays_within_10_widget_messages_a_second(
        comms: list[Message], handles: list[FakeHandle]) -> None:
    # 5 jobs at once, each sending a progress event and a preview per step
    with serve(dialect="cloud", tier="pro", step_delay=0.005) as server, \
            comfy_nb.Client(server.url, api_key=server.api_key) as cloud:
        done = comfy_nb.sweep(txt2img(60), seed=list(range(5)), cfg=[4.0, 7.0], client=cloud,
                              tier="pro", progress="widget", timeout=WAIT)
        assert server.max_concurrent_jobs_seen == 5
    updates = update_times(comms)
    rate = most_in_one_second(updates)
    assert len(updates) >= 4  # the panel did move
    assert rate <= MAX_WIDGET_MESSAGES, f"{rate} widget messages in one second"
    assert len(done.results) == 10
    (handle,) = handles  # one panel for the whole sweep...
    assert handle.updates[-1][1] is done  # ...replaced by the grid at the end
    assert isinstance(handle.shown, ipywidgets.VBox)


def test_the_cancel_button_of_a_sweep_that_does_not_wait(
        client: comfy_nb.Client, comms: list[Message], handles: list[FakeHandle]) -> None:
    # 5000 steps: long enough (10 s a job) that no job can end between the check and the click
    running = comfy_nb.sweep(txt2img(5000), seed=[1, 2, 3], client=client, progress="widget",
                             wait=False)
    deadline = time.monotonic() + WAIT
    while not running.counts().running and time.monotonic() < deadline:
        time.sleep(0.01)
    panel_box = handles[0].shown
    button = panel_box.children[-1]
    button.click()
    assert button.disabled and button.description == "Cancelling…"
    while not (handles[0].updates and handles[0].updates[-1][1] is running) \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    assert {item.status for item in running.items} == {"cancelled"}
    assert client.queue() == []
    rate = most_in_one_second(update_times(comms))
    assert rate <= MAX_WIDGET_MESSAGES


def test_the_html_back_end_updates_in_place_and_becomes_the_grid(
        client: comfy_nb.Client, handles: list[FakeHandle]) -> None:
    done = comfy_nb.sweep(txt2img(150), seed=[1, 2], cfg=[4.0], client=client, progress="html",
                          timeout=WAIT)
    (handle,) = handles
    first = handle.shown
    assert "<progress" in first["text/html"] and "queued" in first["text/plain"]
    assert "done <b>0</b>" in first["text/html"]
    assert len(handle.updates) >= 2
    live = [obj for _, obj in handle.updates[:-1]]
    assert all(isinstance(obj, dict) for obj in live)
    assert any("running <b>" in obj["text/html"] and "running <b>0</b>" not in obj["text/html"]
               for obj in live)
    assert handle.updates[-1][1] is done
    # the files went to comfy_outputs/ and the grid links them
    paths = [Path(row["files"][0]) for row in done.rows()]
    assert all(p.parent.name == "comfy_outputs" and p.is_file() for p in paths)
    markup = render_sweep(done)["text/html"]
    assert 'href="comfy_outputs/' in markup


def test_the_text_back_end_writes_a_line_per_change(
        client: comfy_nb.Client, capsys: pytest.CaptureFixture[str]) -> None:
    comfy_nb.sweep(txt2img(), seed=[1, 2], cfg=[4.0, 150.0], client=client, progress="text",
                   timeout=WAIT)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("comfy_nb sweep of 4 jobs (seed × cfg, product, 2 at once)")
    assert "done 2 · running 0 · queued 0 · failed 2 · 100%" in lines[-3]
    assert lines[-2].startswith("  failed: seed=1, cfg=150.0: node 3 (KSampler), input 'cfg'")
    assert len(lines) < 15


def test_interrupting_a_followed_sweep_cancels_it_and_shows_the_grid(
        client: comfy_nb.Client, handles: list[FakeHandle]) -> None:
    def interrupt_when_running() -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if handles and any("running <b>1</b>" in obj["text/html"]
                               for _, obj in handles[0].updates if isinstance(obj, dict)):
                _thread.interrupt_main()
                return
            time.sleep(0.01)

    threading.Thread(target=interrupt_when_running, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        comfy_nb.sweep(txt2img(400), seed=[7, 8, 9], client=client, progress="html",
                       timeout=WAIT)
    swept = handles[0].updates[-1][1]
    assert isinstance(swept, comfy_nb.Sweep)
    assert {item.status for item in swept.items} == {"cancelled"}
    assert "<i>cancelled</i>" in render_sweep(swept)["text/html"]
    assert client.queue() == []


# -- the grid ------------------------------------------------------------------------------------


def test_two_parameters_make_rows_and_columns_with_errors_in_place(
        client: comfy_nb.Client) -> None:
    done = comfy_nb.sweep(txt2img(), seed=[1, 2], cfg=[4.0, 7.0, 150.0], client=client,
                          timeout=WAIT)
    grid = layout(done)
    assert grid.column_labels == ["cfg=4.0", "cfg=7.0", "cfg=150.0"]
    assert grid.row_labels == ["seed=1", "seed=2"]
    assert [[item.label for item in row if item] for row in grid.cells] == [
        ["seed=1, cfg=4.0", "seed=1, cfg=7.0", "seed=1, cfg=150.0"],
        ["seed=2, cfg=4.0", "seed=2, cfg=7.0", "seed=2, cfg=150.0"]]
    bundle = render_sweep(done)
    markup = bundle["text/html"]
    assert '<th scope="col"' in markup and ">cfg=150.0</th>" in markup
    assert '<th scope="row"' in markup and ">seed=2</th>" in markup
    assert markup.count("comfy-nb-sweep-cell comfy-nb-failed") == 2
    failed_cells = re.findall(r'comfy-nb-failed".*?</td>', markup, re.S)
    assert all("bigger than max of 100.0" in cell and "seed=" in cell for cell in failed_cells)
    assert "seed=1 · cfg=7.0" in markup  # captions carry the values
    images = thumbnails(markup)
    assert len(images) == 4 and all(max(im.size) <= 256 for im in images)  # never full size
    plain = bundle["text/plain"]
    assert plain.splitlines()[0] == repr(done)
    assert "bigger than max" in plain
    sheet = Image.open(io.BytesIO(bundle["image/jpeg"]))
    assert sheet.width <= 1536


def test_one_parameter_is_one_row_headed_by_its_values(client: comfy_nb.Client) -> None:
    done = comfy_nb.sweep(txt2img(), {"Positive Prompt.text": ["a fox", "a cat", "a owl"]},
                          client=client, timeout=WAIT)
    grid = layout(done)
    assert grid.row_labels is None and len(grid.cells) == 1
    assert grid.column_labels == ["Positive Prompt.text=a fox", "Positive Prompt.text=a cat",
                                  "Positive Prompt.text=a owl"]


def test_zip_cells_wrap_with_their_values_as_captions(client: comfy_nb.Client) -> None:
    grid_settings.max_columns = 2
    done = comfy_nb.sweep(txt2img(), seed=[1, 2, 3], cfg=[4.0, 5.0, 6.0], mode="zip",
                          client=client, timeout=WAIT)
    grid = layout(done)
    assert grid.column_labels is None and grid.row_labels is None
    assert [len(row) for row in grid.cells] == [2, 1]
    assert "seed=3 · cfg=6.0" in render_sweep(done)["text/html"]


@pytest.mark.slow
def test_fifty_jobs_stay_readable(client: comfy_nb.Client) -> None:
    done = comfy_nb.sweep(txt2img(1), seed=list(range(6)), cfg=[3.0 + i for i in range(9)],
                          client=client, concurrency=4, timeout=WAIT)
    assert len(done.results) == 54
    bundle = render_sweep(done)
    markup = bundle["text/html"]
    images = thumbnails(markup)
    assert len(images) == 54 and max(max(im.size) for im in images) <= 112
    assert len(markup) < 600_000  # small thumbnails, not 54 full pictures
    assert "<details><summary>parameters → files (54 rows" in markup  # folded
    assert len(bundle["text/plain"].splitlines()) == 56
    assert layout(done).column_labels == [f"cfg={3.0 + i}" for i in range(9)]
    # the panel's summary stays one short block, whatever the number of jobs
    assert len(sweep_view.summary_html(done)) < 2_000


def test_run_sweep_in_cell(client: comfy_nb.Client, handles: list[FakeHandle],
                           isolated: Path) -> None:
    values = parse_sweep_values(["seed=1,2", "cfg=4.0,5.0"])
    done = run_sweep_in_cell(client, txt2img(), values, overrides={"steps": 1},
                             backend="html", save="renders")
    assert isinstance(done, comfy_nb.Sweep) and len(done.results) == 4
    assert all(row["files"][0].startswith("renders/") for row in done.rows())  # relative
    assert all((isolated / row["files"][0]).is_file() for row in done.rows())
    assert handles[-1].updates[-1][1] is done
    for item in done.items:
        assert item.job is not None and item.job.workflow["3"]["inputs"]["steps"] == 1


def test_the_grid_is_not_shown_twice_as_the_cells_value(client: comfy_nb.Client,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        handles: list[FakeHandle]) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    written: list[dict[str, Any]] = []
    monkeypatch.setattr(shell.displayhook, "write_format_data",
                        lambda data, metadata=None: written.append(data))
    done = comfy_nb.sweep(txt2img(), seed=[1], client=client, progress="html", timeout=WAIT)
    shell.displayhook(done)  # Out[n] of the cell whose panel became the grid: nothing more
    assert written == []
    assert shell.user_ns["_"] is done  # still the cell's value
    assert set(render_sweep(done)) == {"text/plain", "text/html", "image/jpeg"}
    shell.execution_count += 1  # the next cell shows it again
    shell.displayhook(done)
    assert set(written[0]) == {"text/plain", "text/html", "image/jpeg"}


def test_a_panel_never_sends_more_than_its_budget_even_when_ticked_hard(
        client: comfy_nb.Client, comms: list[Message], handles: list[FakeHandle]) -> None:
    running = comfy_nb.sweep(txt2img(300), seed=[1, 2, 3, 4], client=client, wait=False,
                             progress="off")
    now = [0.0]
    panel = SweepWidgetPanel(running, clock=lambda: now[0])
    panel.show()
    for _ in range(400):  # 4000 ticks a "second" of a fake clock
        now[0] += 0.0025
        panel.tick()
        time.sleep(0.001)
    running.cancel()
    sent = update_times(comms)
    assert len(sent) <= MAX_WIDGET_MESSAGES  # one fake second: at most 10
    panel.finish(running)

"""The comparison grid of a sweep against the emulator: which inputs go on which axis (pages,
cells no combination fills, failed cells), the static HTML (no script, thumbnails, axis labels),
the contact sheet and the standalone page that ``save`` writes, pick (into ``sweep.picked`` and
interact controls), a grid that fills in while its sweep runs (html and widget back ends), and
``%%comfy_run --sweep ... --grid``."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comm
import pytest
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image, ImageChops, ImageStat

import comfy_nb
from comfy_nb.emulator import RunningEmulator
from comfy_nb.notebook import _grid_widget, display
from comfy_nb.notebook.sweep_grid import (
    GridError,
    SweepGrid,
    check_axes,
    grid_layout,
    parse_grid_option,
    set_line,
)
from comfy_nb.workflows import bundled

from ..factories import Clients, Emulators
from .comms import FakeHandle, RecordingComm, most_in_one_second, update_times

WAIT = 60.0


def txt2img(steps: int = 2) -> dict[str, Any]:
    workflow = bundled("txt2img")
    workflow["3"]["inputs"]["steps"] = steps
    return workflow


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMFY_NB_CACHE", "off")
    yield tmp_path
    display.settings.__init__()  # type: ignore[misc]


@pytest.fixture(scope="module")
def emulator(module_emulators: Emulators) -> RunningEmulator:
    return module_emulators(step_delay=0.002)


@pytest.fixture(scope="module")
def client(emulator: RunningEmulator, module_clients: Clients) -> comfy_nb.Client:
    return module_clients.connect(emulator)


@pytest.fixture(scope="module")
def finished(client: comfy_nb.Client) -> comfy_nb.Sweep:
    """seed × cfg × steps, where cfg=150 is refused by the server (those cells fail)."""
    return comfy_nb.sweep(txt2img(), seed=[1, 2, 3], cfg=[4.0, 150.0], steps=[1, 2],
                          client=client, progress="off", timeout=WAIT)


@pytest.fixture
def handles(monkeypatch: pytest.MonkeyPatch) -> list[FakeHandle]:
    made: list[FakeHandle] = []

    def fake_display(obj: Any, **kwargs: Any) -> FakeHandle:
        made.append(FakeHandle(obj))
        return made[-1]

    monkeypatch.setattr(_grid_widget, "_display", fake_display)
    return made


def images(markup: str) -> list[Image.Image]:
    found = re.findall(r'src="data:image/(?:jpeg|png);base64,([^"]+)"', markup)
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in found]


# -- layout --------------------------------------------------------------------------------------


def test_the_axes_come_from_the_swept_inputs(finished: comfy_nb.Sweep) -> None:
    grid = grid_layout(finished, x="seed", y="cfg", z="steps")
    assert grid.shape == (2, 2, 3)
    assert grid.x.labels == ("seed=1", "seed=2", "seed=3")
    assert grid.y is not None and grid.y.labels == ("cfg=4.0", "cfg=150.0")
    assert grid.z is not None and grid.z.labels == ("steps=1", "steps=2")
    for (page, row, column), item in grid.cells():
        assert item is not None
        assert item.params == {"seed": [1, 2, 3][column], "cfg": [4.0, 150.0][row],
                               "steps": [1, 2][page]}
    # axes not given fill y, then z, in the sweep's order
    default = grid_layout(finished, x="cfg")
    assert (default.x.name, default.y and default.y.name, default.z and default.z.name) == (
        "cfg", "seed", "steps")
    everything = grid_layout(finished)  # nothing given: x, y, z in the sweep's order
    assert (everything.x.name, everything.shape) == ("seed", (2, 2, 3))


def test_axes_that_do_not_fit_the_sweep_are_refused(finished: comfy_nb.Sweep) -> None:
    with pytest.raises(GridError, match="'denoise' is not swept here"):
        finished.grid("denoise")
    with pytest.raises(GridError, match="each input goes on one axis"):
        finished.grid("seed", "seed")
    assert check_axes(finished.axes, "product", "seed", "cfg") == ("seed", "cfg", "steps")
    with pytest.raises(GridError, match="also varies 'denoise'"):
        check_axes([*finished.axes, ("denoise", [0.5, 1.0])], "product", "seed", "cfg", "steps")
    assert check_axes([*finished.axes, ("denoise", [1.0])], "product") == ("seed", "cfg", "steps")
    assert parse_grid_option("seed, cfg") == ("seed", "cfg", None)
    with pytest.raises(GridError, match="--grid takes X"):
        parse_grid_option("a,b,c,d")


def test_a_zip_sweep_leaves_the_cells_it_did_not_run_empty(client: comfy_nb.Client) -> None:
    zipped = comfy_nb.sweep(txt2img(), seed=[1, 2], cfg=[4.0, 7.0], mode="zip", client=client,
                            progress="off", timeout=WAIT)
    grid = grid_layout(zipped, x="seed", y="cfg")
    assert [[item and item.params for item in row] for row in grid.pages[0]] == [
        [{"seed": 1, "cfg": 4.0}, None], [None, {"seed": 2, "cfg": 7.0}]]
    markup = zipped.grid("seed", "cfg").html()
    assert markup.count("not in this sweep") == 2
    assert grid_layout(zipped).shape == (1, 1, 2)  # one axis tells zipped combinations apart


# -- static HTML ---------------------------------------------------------------------------------


def test_the_static_grid_has_thumbnails_labels_and_errors_and_no_script(
        finished: comfy_nb.Sweep) -> None:
    grid = finished.grid("seed", "cfg", "steps", size=96)
    markup = grid.html()
    assert "<script" not in markup.lower() and "onclick" not in markup.lower()
    pictures = images(markup)
    assert len(pictures) == 6  # the succeeded cells (cfg=4.0)
    assert all(max(p.size) <= 96 for p in pictures)
    assert len({p.tobytes() for p in pictures}) == 3  # the emulator's pixels follow the seed
    for label in ("seed=1", "seed=3", "cfg=4.0", "cfg=150.0", "steps=1", "steps=2",
                  "cfg \\ seed"):
        assert f">{label}<" in markup, label
    assert markup.count("<table") == 2  # a page per steps value
    assert markup.count("<b>failed</b>") == 6
    assert "bigger than max of 100.0" in markup
    assert len(markup) < 60_000  # small thumbnails: the saved notebook stays light


def test_values_are_text_in_the_grid_never_markup(client: comfy_nb.Client) -> None:
    swept = comfy_nb.sweep(txt2img(), {"Positive Prompt.text": ["<b>a fox</b>", "a cat"]},
                           client=client, progress="off", timeout=WAIT)
    grid = swept.grid()
    markup = grid.html()
    assert "<b>a fox</b>" not in markup and "Positive Prompt.text=&lt;b&gt;a fox&lt;/b&gt;" in \
        markup
    assert grid.cells()[0]["set_line"] == "--set 'Positive Prompt.text=<b>a fox</b>'"
    with pytest.raises(GridError, match="16 to 1024, not 4"):
        swept.grid(size=4)


def test_the_static_grid_links_the_saved_files(client: comfy_nb.Client) -> None:
    swept = comfy_nb.sweep(txt2img(), seed=[1, 2], client=client, progress="off", timeout=WAIT)
    for result in swept.results:
        display.save_for_notebook(result)
    markup = swept.grid().html()
    assert markup.count('<a href="comfy_outputs/') == 2


# -- saving --------------------------------------------------------------------------------------


def test_save_png_writes_one_labelled_contact_sheet(finished: comfy_nb.Sweep,
                                                    tmp_path: Path) -> None:
    grid = finished.grid("seed", "cfg", size=128)  # steps fills z: two pages
    path = grid.save(tmp_path / "grid.png")
    with Image.open(path) as sheet:
        assert sheet.format == "PNG"
        width, height = sheet.size
        sheet = sheet.convert("RGB")
    assert width >= 3 * 128 and height >= 2 * 2 * 128  # 3 columns, 2 rows, 2 pages
    # the three images of the first row differ; a failed tile is reddish
    tiles = [_tile_at(sheet, picture) for picture in images(grid.html())[:3]]
    assert all(tile is not None for tile in tiles)
    assert len({tile for tile in tiles}) == 3
    colours = dict((colour, count) for count, colour in sheet.getcolors(1 << 24) or [])
    assert colours.get((0xF6, 0xD4, 0xD4), 0) > 128 * 64
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _tile_at(sheet: Image.Image, thumb: Image.Image) -> tuple[int, int] | None:
    """Where ``thumb`` (about) appears in ``sheet``: top-left corner, scanning a coarse grid."""
    thumb = thumb.convert("RGB")
    for top in range(0, sheet.height - thumb.height + 1, 2):
        for left in range(0, sheet.width - thumb.width + 1, 2):
            region = sheet.crop((left, top, left + thumb.width, top + thumb.height))
            if max(ImageStat.Stat(ImageChops.difference(region, thumb)).mean) < 6:
                return left, top
    return None


def test_save_html_writes_a_standalone_page(finished: comfy_nb.Sweep, tmp_path: Path) -> None:
    path = finished.grid("seed", "cfg", "steps").save(tmp_path / "grid.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and len(images(page)) == 6 and ">steps=2<" in page


def test_save_refuses_what_it_cannot_write(finished: comfy_nb.Sweep, tmp_path: Path) -> None:
    grid = finished.grid("seed", "cfg", "steps")
    with pytest.raises(GridError, match=r"writes \.png, \.jpg, \.webp"):
        grid.save(tmp_path / "grid.gif")
    with pytest.raises(GridError, match="is not a folder"):
        grid.save(tmp_path / "missing" / "grid.png")
    assert list(tmp_path.iterdir()) == []


# -- pick ----------------------------------------------------------------------------------------


def test_pick_puts_the_values_back(finished: comfy_nb.Sweep) -> None:
    grid = finished.grid("seed", "cfg", "steps")
    seen: list[dict[str, Any]] = []
    grid.on_pick(seen.append)
    assert grid.pick({"seed": 2, "cfg": 4.0, "steps": 1}) == {"seed": 2, "cfg": 4.0, "steps": 1}
    assert finished.picked == grid.picked == seen[-1] == {"seed": 2, "cfg": 4.0, "steps": 1}
    assert grid.picked_set_line == "--set seed=2 --set cfg=4.0 --set steps=1"
    last = grid.pick(len(finished.items) - 1)
    assert last == finished.items[-1].params
    with pytest.raises(GridError, match="matches 6 cells"):
        grid.pick({"cfg": 4.0})
    with pytest.raises(GridError, match="no cell 99"):
        grid.pick(99)
    assert set_line({"Positive Prompt.text": "a red fox"}) == \
        "--set 'Positive Prompt.text=a red fox'"


def test_pick_sets_the_interact_controls(client: comfy_nb.Client) -> None:
    controls = comfy_nb.interact(txt2img(), "seed", "cfg", client=client)
    try:
        swept = comfy_nb.sweep(txt2img(), seed=[5, 6], cfg=[3.0, 8.0], client=client,
                               progress="off", timeout=WAIT)
        grid = swept.grid("seed", "cfg", controls=controls)
        grid.pick({"seed": 6, "cfg": 8.0})
        assert controls.values == {"seed": 6, "cfg": 8.0}
    finally:
        controls.close()


# -- filling in while the sweep runs -------------------------------------------------------------


def test_the_html_grid_fills_in_while_the_sweep_runs(
        module_emulators: Emulators, module_clients: Clients,
        handles: list[FakeHandle]) -> None:
    slow = module_clients.connect(module_emulators(step_delay=0.02))
    running = comfy_nb.sweep(txt2img(15), seed=[1, 2], cfg=[4.0, 150.0], client=slow,
                             progress="off", wait=False)
    grid = running.grid("seed", "cfg")
    grid.show(wait=True, timeout=WAIT, backend="html")
    (handle,) = handles
    shown = [handle.shown, *(obj for _, obj in handle.updates)]
    filled = [len(images(bundle["text/html"])) for bundle in shown]
    assert filled[0] == 0 and filled[-1] == 2  # empty at first, both images at the end
    assert filled == sorted(filled)
    assert any("running" in bundle["text/html"] or "queued" in bundle["text/html"]
               for bundle in shown[:-1])
    assert shown[-1]["text/html"].count("<b>failed</b>") == 2
    assert "<script" not in shown[-1]["text/html"]
    # the full-size files were saved next to the notebook, and the grid links them
    assert shown[-1]["text/html"].count('<a href="comfy_outputs/') == 2
    assert grid.view is not None and grid.view.finished


def test_a_grid_that_times_out_cancels_the_sweep(
        module_emulators: Emulators, module_clients: Clients,
        handles: list[FakeHandle]) -> None:
    slow = module_clients.connect(module_emulators(step_delay=0.02))
    running = comfy_nb.sweep(txt2img(500), seed=[1, 2, 3], client=slow, progress="off",
                             wait=False)
    with pytest.raises(comfy_nb.SweepTimeout, match=r"within 0\.5 s"):
        running.grid().show(wait=True, timeout=0.5, backend="html")
    assert {item.status for item in running.items} == {"cancelled"}
    assert slow.queue() == []
    (handle,) = handles
    final = handle.updates[-1][1]["text/html"]
    assert final.count("comfy-nb-cancelled") == 3 and "<i>cancelled</i>" in final


def test_the_text_back_end_shows_the_grid_once_at_the_end(
        finished: comfy_nb.Sweep, handles: list[FakeHandle]) -> None:
    finished.grid("seed", "cfg", "steps").show(backend="text")
    (handle,) = handles
    assert handle.shown["text/plain"].startswith("<SweepGrid x: seed · y: cfg · z: steps;")
    assert handle.updates == []


def test_the_widget_grid_fills_in_within_its_message_budget(
        module_emulators: Emulators, module_clients: Clients, handles: list[FakeHandle],
        monkeypatch: pytest.MonkeyPatch) -> None:
    RecordingComm.log = []
    monkeypatch.setattr(comm, "create_comm", RecordingComm)
    slow = module_clients.connect(module_emulators(step_delay=0.02))
    running = comfy_nb.sweep(txt2img(10), seed=[1, 2, 3], cfg=[4.0], client=slow,
                             progress="off", wait=False, concurrency=1)
    grid = running.grid("seed", "cfg")
    grid.show(wait=True, timeout=WAIT, backend="widget")
    view = grid.view
    assert isinstance(view, _grid_widget.GridWidgetView)
    (handle,) = handles
    assert "application/vnd.jupyter.widget-view+json" in handle.shown
    assert "<script" not in handle.shown["text/html"]
    sent = [data["state"]["cells"] for _, _, kind, data in RecordingComm.log
            if kind == "send" and "cells" in data.get("state", {})]
    with_images = [sum(1 for cell in cells if cell["thumb"]) for cells in sent]
    assert with_images[0] == 0 and with_images[-1] == 3 and with_images == sorted(with_images)
    assert len(set(with_images)) >= 3  # cells filled one by one (one job at a time)
    assert most_in_one_second(update_times(RecordingComm.log)) <= 10
    # the final output holds the finished static grid
    assert len(images(handle.updates[-1][1]["text/html"])) == 3

    # a pick from the page
    view.widget._handle_custom_msg({"type": "pick", "index": 1}, [])
    assert running.picked == {"seed": 2, "cfg": 4.0}
    assert "--set seed=2 --set cfg=4.0" in view.widget.message
    view.widget._handle_custom_msg({"type": "enlarge", "index": 0}, [])
    large = [data for _, _, kind, data in RecordingComm.log
             if kind == "send" and data.get("method") == "custom"]
    assert large and large[-1]["content"]["src"].startswith("data:image/jpeg;base64,")
    view.widget.close()


# -- %%comfy_run --grid --------------------------------------------------------------------------


@pytest.fixture
def shell(emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("COMFY_URL", emulator.url)
    monkeypatch.setenv("COMFY_NB_PROGRESS", "html")
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "comfy_nb")
    yield ip
    ip.run_line_magic("unload_ext", "comfy_nb")


def test_comfy_run_sweep_with_a_grid(shell: InteractiveShell,
                                     handles: list[FakeHandle]) -> None:
    outcome = shell.run_cell("%comfy_run txt2img --sweep seed=1,2 --sweep cfg=4,7 "
                             "--grid cfg,seed --set steps=2")
    outcome.raise_error()
    (handle,) = handles
    final = handle.updates[-1][1]["text/html"] if handle.updates else handle.shown["text/html"]
    assert len(images(final)) == 4 and ">cfg=4<" in final and ">seed=2<" in final
    assert "seed \\ cfg" in final
    bad = shell.run_cell("%comfy_run txt2img --sweep seed=1,2 --grid steps")
    assert bad.error_in_exec is not None and "'steps' is not swept here" in str(
        bad.error_in_exec)
    alone = shell.run_cell("%comfy_run txt2img --grid seed")
    assert alone.error_in_exec is not None and "--grid only goes with --sweep" in str(
        alone.error_in_exec)


def test_a_grid_of_a_finished_sweep_shows_at_once(finished: comfy_nb.Sweep,
                                                  handles: list[FakeHandle]) -> None:
    grid = SweepGrid(finished, "seed", "cfg", "steps")
    grid.show(backend="html")
    (handle,) = handles
    assert len(images(handle.shown["text/html"])) == 6
    assert grid.view is not None and grid.view.finished and handle.updates == []

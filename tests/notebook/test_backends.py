"""The progress back-end registry (comfy_nb.notebook.backends): the panels each back end makes
for jobs and sweeps, and the command line's status line (the ``line`` back end)."""

from __future__ import annotations

import io

import pytest

import comfy_nb
from comfy_nb.notebook.backends import (
    JOB,
    SWEEP,
    ProgressBackend,
    cell_backends,
    choose_backend,
    progress_backend,
    register_backend,
)
from comfy_nb.notebook.progress import HtmlPanel, Panel, TextPanel, WidgetPanel, make_panel
from comfy_nb.notebook.status_line import StatusLine
from comfy_nb.notebook.sweep_view import (
    SweepHtmlPanel,
    SweepPanel,
    SweepTextPanel,
    SweepWidgetPanel,
    make_sweep_panel,
)
from comfy_nb.sweeps import Sweep
from comfy_nb.workflows import bundled

from ..factories import Clients, Emulators


@pytest.fixture(scope="module")
def client(module_emulators: Emulators, module_clients: Clients) -> comfy_nb.Client:
    return module_clients.connect(module_emulators(step_delay=0.002))


def test_cells_are_offered_the_four_back_ends_in_order() -> None:
    assert cell_backends() == ("widget", "html", "text", "off")
    with pytest.raises(ValueError, match="use one of widget, html, text, off"):
        progress_backend("fancy")
    with pytest.raises(ValueError, match="or auto"):
        choose_backend("line")  # the command line's, not a cell's


def test_what_each_back_end_says_about_its_views() -> None:
    displayed = {name for name in cell_backends() if progress_backend(name).displayed}
    clickable = {name for name in cell_backends() if progress_backend(name).clickable}
    assert displayed == {"widget", "html"}
    assert clickable == {"widget"}
    assert not progress_backend("line").in_cells


@pytest.mark.parametrize(("name", "job_panel", "sweep_panel"), [
    ("widget", WidgetPanel, SweepWidgetPanel), ("html", HtmlPanel, SweepHtmlPanel),
    ("text", TextPanel, SweepTextPanel), ("off", Panel, SweepPanel)])
def test_each_back_end_makes_its_job_and_sweep_panels(
        client: comfy_nb.Client, name: str, job_panel: type, sweep_panel: type) -> None:
    job = client.submit(bundled("txt2img"), overrides={"KSampler.steps": 2})
    cancel = job.cancel
    panel = make_panel(job, name, hint="h", cancel=cancel)
    assert type(panel) is job_panel and panel.hint == "h"
    assert (getattr(panel, "cancel_button", None) is not None) == (name == "widget")
    sweep = comfy_nb.sweep("txt2img", {"seed": [1, 2]}, client=client, progress="off",
                           overrides={"steps": 1})
    assert isinstance(sweep, Sweep)
    assert type(make_sweep_panel(sweep, name, hint="h")) is sweep_panel
    job.wait()


def test_a_back_end_without_a_panel_for_sweeps_says_so(client: comfy_nb.Client) -> None:
    sweep = comfy_nb.sweep("txt2img", {"seed": [3]}, client=client, progress="off",
                           overrides={"steps": 1})
    with pytest.raises(ValueError, match="the line progress back end has no panel for a sweep"):
        progress_backend("line").make(SWEEP, sweep)


def test_a_registered_back_end_is_offered_to_cells() -> None:
    added = register_backend(ProgressBackend(
        "plain", panels={JOB: "comfy_nb.notebook.progress:TextPanel"}))
    try:
        assert cell_backends()[-1] == "plain" and choose_backend("plain") == "plain"
        assert added.panel_class(JOB) is TextPanel
    finally:
        from comfy_nb.notebook import backends

        del backends._REGISTRY["plain"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_status_line_writes_a_line_per_node_in_logs(client: comfy_nb.Client) -> None:
    stream = io.StringIO()
    job = client.submit(bundled("txt2img"), overrides={"KSampler.steps": 50})
    line = progress_backend("line").make(JOB, job, stream=stream)
    assert isinstance(line, StatusLine)
    job.on(lambda _event: line.tick())
    job.wait()
    line.finish(None)
    lines = stream.getvalue().splitlines()
    assert lines and all(text.startswith("[") and " nodes" in text for text in lines)
    assert any(" | KSampler " in text for text in lines)
    nodes = [text.split(" | ")[1].split(" ")[0] for text in lines if text.count(" | ") == 2]
    assert len(nodes) == len(set(nodes))  # one line per node, not one per step


def test_the_status_line_is_redrawn_in_place_on_a_terminal(client: comfy_nb.Client) -> None:
    stream = _Terminal()
    job = client.submit(bundled("txt2img"), overrides={"KSampler.steps": 5})
    line = progress_backend("line").make(JOB, job, stream=stream)
    job.on(lambda _event: line.tick())
    job.wait()
    line.tick()
    line.finish(None)
    line.finish(None)  # once
    text = stream.getvalue()
    assert text.startswith("\r[") and text.endswith("\n") and text.count("\n") == 1
    last = text.rstrip("\n").split("\r")[-1]
    assert last.startswith("[####################] 7/7 nodes") and len(last) == 79

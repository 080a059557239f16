"""The notebook runner itself: which kernel it starts, and that every kind of failure, including
the ones nbclient lets pass, reaches :func:`notebook_problems`."""

from __future__ import annotations

import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from .nbrun import WIDGET_VIEW, execute_notebook, notebook_problems, unfinished_panels

CELLS = [
    "import os, sys\nprint(sys.executable)\nprint(os.environ.get('COMFY_URL'))\n"
    "print(os.environ.get('JPY_SESSION_NAME'))",
    "import ipywidgets\nfrom IPython.display import display\nout = ipywidgets.Output()\n"
    "display(out)\nwith out:\n    raise ValueError('swallowed by the widget')",
    "print('Traceback (most recent call last): printed by a library', file=sys.stderr)",
    "raise KeyError('plain')",
    "1 / 0",  # tagged raises-exception below
    "print('a harmless warning', file=sys.stderr)",
]


@pytest.fixture(scope="module")
def executed() -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_code_cell(source) for source in CELLS])
    nb.cells[4].metadata["tags"] = ["raises-exception"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JPY_SESSION_NAME", "inherited.ipynb")
        return execute_notebook(nb, env={"COMFY_URL": "http://127.0.0.1:9"}, timeout=60)


def test_the_kernel_runs_this_interpreter_with_the_given_environment(
        executed: nbformat.NotebookNode) -> None:
    printed = executed.cells[0].outputs[0].text.splitlines()
    assert printed == [sys.executable, "http://127.0.0.1:9", "None"]


def test_every_failure_is_reported_once(executed: nbformat.NotebookNode) -> None:
    problems = notebook_problems(executed)
    assert len(problems) == 3, problems
    assert problems[0].startswith("cell 2: stderr: Traceback")
    assert problems[1] == "cell 3: KeyError: 'plain'"
    assert problems[2].startswith("Output widget ")
    assert problems[2].endswith("(cell 1): ValueError: swallowed by the widget")


def test_a_clean_notebook_has_no_problems() -> None:
    nb = new_notebook(cells=[new_code_cell("import ipywidgets\nout = ipywidgets.Output()\n"
                                           "display(out)\nwith out:\n    print('fine')")])
    assert notebook_problems(execute_notebook(nb, timeout=60)) == []


def _comfy_run_notebook(*outputs: dict[str, object], magic: str = "%%comfy_run",
                        tags: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    cell = new_code_cell(f"{magic}\n{{}}", outputs=[new_output(**o) for o in outputs])
    cell.metadata["tags"] = list(tags)
    return new_notebook(cells=[new_code_cell("%load_ext comfy_nb"), cell])


GALLERY = {"output_type": "display_data",
           "data": {"text/html": '<div class="comfy-nb-result"><img></div>', "text/plain": "r"}}
PANEL = {"output_type": "display_data",
         "data": {WIDGET_VIEW: {"model_id": "abc", "version_major": 2, "version_minor": 0},
                  "text/plain": "VBox()"}}
STATUS = {"output_type": "display_data", "data": {"text/html": "<progress value=3 max=7>"}}


ECHO = {"output_type": "execute_result", "execution_count": 2,
        "data": {"text/plain": "<Result 1 image>"}}


def test_a_finished_comfy_run_cell_ends_with_the_gallery() -> None:
    assert unfinished_panels(_comfy_run_notebook(GALLERY)) == []
    assert unfinished_panels(_comfy_run_notebook(
        {"output_type": "stream", "name": "stdout", "text": "saved"}, GALLERY, ECHO)) == []


def test_a_left_over_panel_is_reported() -> None:
    assert unfinished_panels(_comfy_run_notebook(PANEL, GALLERY)) == [
        "cell 1: a widget is left in the saved outputs"]
    assert unfinished_panels(_comfy_run_notebook(STATUS, GALLERY)) == [
        "cell 1: a progress bar is left in the saved outputs"]
    assert unfinished_panels(_comfy_run_notebook(STATUS)) == [
        "cell 1: a progress bar is left in the saved outputs",
        "cell 1: the last output is not the comfy-nb-result gallery"]
    assert unfinished_panels(_comfy_run_notebook(GALLERY, ECHO, STATUS))[-1] == (
        "cell 1: the last output is not the comfy-nb-result gallery")
    assert unfinished_panels(_comfy_run_notebook()) == [
        "cell 1: the last output is not the comfy-nb-result gallery"]


def test_cells_that_do_not_wait_or_may_fail_are_not_checked() -> None:
    assert unfinished_panels(_comfy_run_notebook(PANEL, magic="%%comfy_run --no-wait job")) == []
    assert unfinished_panels(_comfy_run_notebook(STATUS, tags=("raises-exception",))) == []

"""What a cell leaves in the notebook, in a real kernel (nbclient), under the html back end
(nbclient's own) and the widget one: a cell's result appears once. The gallery that replaced
the panel is the whole output of a ``%%comfy_run`` cell or a ``%comfy_run`` line (no ``Out[n]``
repeating it as text); ``client.run(...)`` as the last expression is one rich output; the value
shown in a later cell still shows the gallery."""

from __future__ import annotations

import re
from typing import Any

import nbformat
import pytest

from comfy_nb.emulator import RunningEmulator

from .nbrun import execute_notebook, notebook_problems, unfinished_panels

pytestmark = pytest.mark.slow  # each test reads a notebook run in a kernel (seconds: `executed`)

CELLS = [
    "%load_ext comfy_nb",
    "%%comfy_run out --file txt2img --set KSampler.seed=1\n# the bundled workflow",
    "%%comfy_run --file txt2img --set KSampler.seed=2\n# no variable",
    "%comfy_run txt2img --set KSampler.seed=3",
    "line = %comfy_run txt2img --set KSampler.seed=4",
    "%%comfy_run grid --sweep seed=5,6 --file txt2img\n# a sweep",
    "import comfy_nb\nclient = comfy_nb.connect()\nclient.run('txt2img', seed=7)",
    "out",
    "%%comfy_run again --file txt2img --set KSampler.seed=1\n# as cell 1: from the cache",
    "%comfy status",
]
MAGIC_CELLS = [1, 2, 3, 4, 5, 8]


def rich(cell: Any) -> list[dict[str, Any]]:
    """The outputs of a cell that hold more than text."""
    return [o for o in cell.outputs if o.output_type in ("display_data", "execute_result")
            and set(o.get("data", {})) - {"text/plain"}]


def galleries(cell: Any) -> list[str]:
    return [kind for o in rich(cell) for kind in ("comfy-nb-result", "comfy-nb-sweep")
            if kind in "".join(o["data"].get("text/html", ""))]


@pytest.fixture(scope="module", params=["html", "widget"])
def executed(request: pytest.FixtureRequest, notebook_emulator: RunningEmulator,
             tmp_path_factory: pytest.TempPathFactory) -> nbformat.NotebookNode:
    workdir = tmp_path_factory.mktemp(f"outputs-{request.param}")
    env = {"COMFY_URL": notebook_emulator.url, "COMFY_NB_CACHE": "on",
           "COMFY_NB_CACHE_DIR": str(workdir / "cache")}
    if request.param == "widget":
        env["JPY_SESSION_NAME"] = "outputs.ipynb"  # as under a Jupyter server: widgets
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    executed = execute_notebook(nb, env=env, cwd=workdir, timeout=120)
    assert notebook_problems(executed) == []
    # the sweep's panel becomes its grid, not a result gallery
    assert unfinished_panels(executed) == [
        "cell 5: the last output is not the comfy-nb-result gallery"]
    return executed


@pytest.mark.parametrize("index", MAGIC_CELLS)
def test_a_magic_shows_its_result_once_and_echoes_nothing(
        executed: nbformat.NotebookNode, index: int) -> None:
    cell = executed.cells[index]
    kinds = [o.output_type for o in cell.outputs]
    assert "execute_result" not in kinds, cell.outputs[-1]
    assert len(galleries(cell)) == 1, kinds


def test_client_run_as_the_last_expression_is_one_rich_output(
        executed: nbformat.NotebookNode) -> None:
    cell = executed.cells[6]
    assert [o.output_type for o in cell.outputs] == ["execute_result"]
    assert galleries(cell) == ["comfy-nb-result"]


def test_the_value_in_a_later_cell_shows_the_gallery(executed: nbformat.NotebookNode) -> None:
    cell = executed.cells[7]
    assert [o.output_type for o in cell.outputs] == ["execute_result"]
    assert galleries(cell) == ["comfy-nb-result"]
    assert cell.outputs[0]["data"]["text/plain"].startswith("<Result ")


def test_a_cached_run_says_so_with_its_date_and_how_to_run_it_again(
        executed: nbformat.NotebookNode) -> None:
    [gallery] = rich(executed.cells[8])
    html = "".join(gallery["data"]["text/html"])
    match = re.search(r'<div class="comfy-nb-cache-note"><small>([^<]*)</small>', html)
    assert match, html[:500]
    assert re.fullmatch(r"from the result cache \(run on \d{4}-\d\d-\d\d \d\d:\d\d\); to run "
                        r"it again on the server: --no-cache \(%%comfy_run, comfy-nb run\) or "
                        r"cache=False \(client\.run\)", match.group(1)), match.group(1)
    assert match.group(1) in "".join(gallery["data"]["text/plain"])
    first = "".join(rich(executed.cells[1])[0]["data"]["text/html"])
    assert "comfy-nb-cache-note" not in first


def test_status_counts_the_jobs_of_this_kernel(executed: nbformat.NotebookNode) -> None:
    text = "".join(o.get("data", {}).get("text/plain", "") for o in executed.cells[9].outputs)
    assert "jobs from this kernel: 7" in text, text

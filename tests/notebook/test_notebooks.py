"""Every notebook in ``notebooks/`` runs top to bottom on the emulator without a single problem,
under nbclient's default progress (html) and with the widget panel forced; and it is committed
clean (no outputs, no execution counts)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import nbformat
import pytest

from comfy_nb.emulator import RunningEmulator

from .nbrun import execute_notebook, notebook_problems, unfinished_panels

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
# README's first command writes quickstart.executed.ipynb beside the source (git-ignored)
NOTEBOOKS = sorted(p for p in NOTEBOOK_DIR.glob("*.ipynb")
                   if not p.name.endswith(".executed.ipynb"))
each_notebook = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


@each_notebook
def test_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    dirty = [index for index, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None)]
    assert dirty == [], f"{path.name}: cells {dirty} have outputs or execution counts"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state"


@pytest.mark.slow
@each_notebook
@pytest.mark.parametrize("progress", ["auto", "widget"])
@pytest.mark.timeout(600)
def test_runs_on_the_emulator(path: Path, progress: str, notebook_emulator: RunningEmulator,
                              tmp_path: Path) -> None:
    """Run a copy of the folder, so files the notebook writes land in ``tmp_path``."""
    workdir = tmp_path / NOTEBOOK_DIR.name
    shutil.copytree(NOTEBOOK_DIR, workdir)
    env = {"COMFY_URL": notebook_emulator.url}
    if progress != "auto":
        env["COMFY_NB_PROGRESS"] = progress
    nb = execute_notebook(workdir / path.name, env=env, timeout=300)
    assert notebook_problems(nb) == []
    assert unfinished_panels(nb) == []


@pytest.mark.parametrize("name", ["quickstart", "inputs"])
@pytest.mark.timeout(600)
def test_runs_on_a_server_with_other_checkpoints(name: str, tmp_path: Path) -> None:
    """The notebooks name no model file of their own: they take the server's (a real ComfyUI
    or Comfy Cloud has other checkpoints than the emulator's stand-in)."""
    from comfy_nb.emulator import serve

    workdir = tmp_path / NOTEBOOK_DIR.name
    shutil.copytree(NOTEBOOK_DIR, workdir)
    with serve(step_delay=0.001, checkpoints=("sd_xl_base_1.0.safetensors",)) as server:
        nb = execute_notebook(workdir / f"{name}.ipynb", env={"COMFY_URL": server.url},
                              timeout=300)
        history = httpx.get(server.url + "/history", timeout=10).json()
    submitted = [entry["prompt"][2] for entry in history.values()]
    assert notebook_problems(nb) == []
    assert submitted
    checkpoints = {node["inputs"]["ckpt_name"] for workflow in submitted
                   for node in workflow.values() if node["class_type"] == "CheckpointLoaderSimple"}
    assert checkpoints == {"sd_xl_base_1.0.safetensors"}

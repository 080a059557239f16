"""What Binder builds works: ``binder/requirements.txt`` installed into a fresh virtual
environment (from the repository root, as repo2docker does, plus the Jupyter pieces its base
image brings) runs the quickstart notebook headless on the embedded emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]


def test_binder_files() -> None:
    assert (REPO / "binder" / "requirements.txt").read_text().split() == ["."]
    assert (REPO / "binder" / "runtime.txt").read_text().strip() == "python-3.12"
    assert not (REPO / "binder" / "postBuild").exists()  # JupyterLab 4 + ipywidgets 8 need none


@pytest.mark.timeout(900)
def test_requirements_install_into_a_fresh_venv_and_run_the_quickstart(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COMFY_", "VIRTUAL_ENV", "JUPYTER", "PYTHON", "JPY_"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["COMFY_NB_CACHE"] = "off"
    install = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", "-r", "binder/requirements.txt",
         "ipykernel", "nbconvert"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=800)
    assert install.returncode == 0, install.stderr[-3000:]
    out = tmp_path / "quickstart.out.ipynb"
    run = subprocess.run(
        [str(bin_dir / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
         str(REPO / "notebooks" / "quickstart.ipynb"), "--output", str(out),
         "--ExecutePreprocessor.timeout=300"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    notebook = nbformat.read(out, as_version=4)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    text = "".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "comfy-nb-result" in html and "stand-in pixels" in text
    # the package came from the repository, not from a local checkout on sys.path
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import comfy_nb; print(comfy_nb.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert str(venv) in where.stdout

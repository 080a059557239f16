"""What Binder builds works: ``binder/requirements.txt`` installed into a fresh virtual
environment (from the repository root, as repo2docker does, plus the Jupyter pieces its base
image brings), with the Python ``runtime.txt`` names when this machine has it, runs every notebook
headless on the embedded emulator, with mybinder.org's environment variables set."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from .notebook.nbrun import notebook_problems

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb")
                   if not p.name.endswith(".executed.ipynb"))
# what mybinder.org sets in every session's environment
BINDER_ENVIRONMENT = {
    "BINDER_LAUNCH_HOST": "https://mybinder.org/",
    "BINDER_REPO_URL": "https://github.com/example/comfy-nb",
    "BINDER_REQUEST": "v2/gh/example/comfy-nb/HEAD",
}
BINDER_WARNING = "public Binder session: do not enter API keys"


def test_binder_files() -> None:
    assert (REPO / "binder" / "requirements.txt").read_text().split() == ["."]
    assert (REPO / "binder" / "runtime.txt").read_text().strip() == "python-3.12"
    assert not (REPO / "binder" / "postBuild").exists()  # JupyterLab 4 + ipywidgets 8 need none


def runtime_python() -> str:
    """The interpreter ``runtime.txt`` asks for (``python-3.12`` → ``python3.12``) when this
    machine has a working one (on the PATH or installed by pyenv), else the one running the
    tests."""
    wanted = (REPO / "binder" / "runtime.txt").read_text().strip().replace("-", "")
    version = wanted.removeprefix("python")
    candidates = [shutil.which(wanted) or "",
                  *map(str, sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/{wanted}")))]
    for candidate in filter(None, candidates):
        check = subprocess.run([candidate, "-c", "import venv"], capture_output=True, timeout=60)
        if check.returncode == 0:
            return candidate
    return sys.executable


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_requirements_install_into_a_fresh_venv_and_run_every_notebook(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([runtime_python(), "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COMFY_", "VIRTUAL_ENV", "JUPYTER", "PYTHON", "JPY_", "PYENV"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["COMFY_NB_CACHE"] = "off"
    env["COMFY_NB_LOCAL_URL"] = "off"  # hermetic: a ComfyUI on this machine's 8188 is not Binder's
    install = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", "-r", "binder/requirements.txt",
         "ipykernel", "nbconvert"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=800)
    assert install.returncode == 0, install.stderr[-3000:]
    # the package came from the repository, not from a local checkout on sys.path
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import comfy_nb; print(comfy_nb.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert str(venv) in where.stdout, where.stderr

    workdir = tmp_path / "notebooks"  # a copy: what the notebooks write stays in tmp_path
    shutil.copytree(REPO / "notebooks", workdir,
                    ignore=shutil.ignore_patterns("*.executed.ipynb", "comfy_outputs"))
    run = subprocess.run(
        [str(bin_dir / "jupyter"), "nbconvert", "--to", "notebook", "--execute", *NOTEBOOKS,
         "--output-dir", str(tmp_path / "executed"), "--ExecutePreprocessor.timeout=300"],
        cwd=workdir, env={**env, **BINDER_ENVIRONMENT}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]

    for name in NOTEBOOKS:
        notebook = nbformat.read(tmp_path / "executed" / name, as_version=4)
        assert notebook_problems(notebook) == [], name
        outputs = [o for cell in notebook.cells if cell.cell_type == "code"
                   for o in cell.outputs]
        text = "".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", ""))
                       for o in outputs)
        assert text.count(BINDER_WARNING) >= 1, f"{name}: no Binder warning"
        assert "stand-in pixels" in text or "replayed from" in text, f"{name}: {text[:500]}"
    quickstart = nbformat.read(tmp_path / "executed" / "quickstart.ipynb", as_version=4)
    html = "".join(o.get("data", {}).get("text/html", "")
                   for cell in quickstart.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "comfy-nb-result" in html

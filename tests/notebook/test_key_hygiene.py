"""A canary API key run through every notebook on the Cloud-dialect emulator never shows up in a
saved notebook, an output file, the result cache, a provenance record or a debug log."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import nbformat
import pytest

from comfy_nb.emulator import serve

from .nbrun import execute_notebook, notebook_problems
from .test_notebooks import NOTEBOOK_DIR, NOTEBOOKS

CANARY = "canary-key-3b8f0c6e2d9a4f71"

# every logger at DEBUG into a file the test reads (an IPython startup file of the kernel)
LOG_SETUP = """\
import logging
logging.basicConfig(filename={log!r}, level=logging.DEBUG, force=True,
                    format="%(name)s %(levelname)s %(message)s")
"""


@pytest.mark.timeout(900)
def test_a_canary_key_appears_nowhere(tmp_path: Path) -> None:
    workdir = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, workdir,
                    ignore=shutil.ignore_patterns("*.executed.ipynb", "comfy_outputs"))
    log = tmp_path / "kernel-debug.log"
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-debug-log.py").write_text(LOG_SETUP.format(log=str(log)))
    with serve(dialect="cloud", api_key=CANARY, step_delay=0.0) as cloud:
        env = {"COMFY_URL": cloud.url, "COMFY_CLOUD_API_KEY": CANARY,
               "COMFY_NB_CACHE": "on", "COMFY_NB_CACHE_DIR": str(tmp_path / "cache"),
               "IPYTHONDIR": str(tmp_path / "ipython")}
        for source in NOTEBOOKS:
            path = workdir / source.name
            nb = execute_notebook(path, env=env, timeout=300)
            assert notebook_problems(nb) == [], source.name
            nbformat.write(nb, path)  # saved as a user would save it
    assert log.stat().st_size > 0  # the kernels did log
    assert any((tmp_path / "cache").rglob("*"))  # results were cached
    marks = [CANARY.encode(), base64.b64encode(CANARY.encode())[:24]]
    leaks = [str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*")
             if path.is_file() and any(mark in path.read_bytes() for mark in marks)]
    assert leaks == []

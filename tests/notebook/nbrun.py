"""Run notebooks in a fresh kernel (nbclient) and list everything that went wrong in them.

`execute_notebook` always runs the interpreter running the tests, whatever kernelspecs the machine
has; `notebook_problems` also finds the failures nbclient lets pass: stderr tracebacks and
errors swallowed by ``ipywidgets.Output`` (research §6.1).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from traitlets import default

KERNEL_NAME = "python3"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
ALLOW_ERRORS_TAG = "raises-exception"
# Inherited variables that would change what a notebook connects to or how it shows progress.
ISOLATED_VARIABLES = ("COMFY_URL", "COMFY_CLOUD_API_KEY", "COMFY_NB_PROGRESS", "JPY_SESSION_NAME")

_jupyter_path: Path | None = None


def jupyter_path() -> Path:
    """A directory for ``JUPYTER_PATH`` whose ``kernels/python3`` runs ``sys.executable``."""
    global _jupyter_path
    if _jupyter_path is None:
        root = Path(tempfile.mkdtemp(prefix="comfy-nb-jupyter-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        spec_dir = root / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (tests)",
            "language": "python",
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
        _jupyter_path = root
    return _jupyter_path


def kernel_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ``ISOLATED_VARIABLES``, plus ``env``."""
    merged = {k: v for k, v in os.environ.items() if k not in ISOLATED_VARIABLES}
    merged.update(env or {})
    merged["PYTHONUNBUFFERED"] = "1"
    return merged


class _ThisPythonKernelManager(AsyncKernelManager):
    """A kernel manager that only knows the kernelspec of :func:`jupyter_path`."""

    @default("kernel_spec_manager")
    def _kernel_spec_manager_default(self) -> KernelSpecManager:
        return KernelSpecManager(kernel_dirs=[str(jupyter_path() / "kernels")])


def execute_notebook(
    path_or_nb: str | os.PathLike[str] | nbformat.NotebookNode,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: str | os.PathLike[str] | None = None,
) -> nbformat.NotebookNode:
    """Execute a copy of the notebook in a fresh ``python3`` kernel and return it with outputs.

    Errors do not stop the run (read them with :func:`notebook_problems`); a cell running longer
    than ``timeout`` seconds raises. ``env`` is added to :func:`kernel_env`; the kernel starts
    in ``cwd`` (default: the notebook's folder, or the current one).
    """
    if isinstance(path_or_nb, nbformat.NotebookNode):
        nb = nbformat.from_dict(json.loads(json.dumps(path_or_nb)))
    else:
        nb = nbformat.read(os.fspath(path_or_nb), as_version=4)
        if cwd is None:
            cwd = Path(path_or_nb).parent
    client = NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        kernel_manager_class=_ThisPythonKernelManager,
        timeout=int(timeout),
        startup_timeout=60,
        allow_errors=True,
        store_widget_state=True,
        record_timing=False,
        resources={"metadata": {"path": os.fspath(cwd or Path.cwd())}},
    )
    client.execute(env=kernel_env(env))
    return nb


def notebook_problems(nb: nbformat.NotebookNode) -> list[str]:
    """Every failure in an executed notebook, one line each (empty when it ran cleanly).

    Counts error outputs, stderr that mentions ``Error`` or ``Traceback``, and the same inside
    ``Output`` widgets, whose errors never fail a cell. Cells tagged ``raises-exception`` may fail.
    """
    problems: list[str] = []
    shown_in: dict[str, int] = {}  # Output widget model id -> cell that displays it
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            model_id = output.get("data", {}).get(WIDGET_VIEW, {}).get("model_id")
            if model_id:
                shown_in.setdefault(model_id, index)
        if ALLOW_ERRORS_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        problems += _output_problems(f"cell {index}", cell.get("outputs", []))
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for model_id, model in state.items():
        if model.get("model_name") != "OutputModel":
            continue
        where = f"Output widget {model_id}"
        if model_id in shown_in:
            where += f" (cell {shown_in[model_id]})"
        problems += _output_problems(where, model.get("state", {}).get("outputs", []))
    return problems


def _output_problems(where: str, outputs: list[Any]) -> list[str]:
    problems = []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "error":
            problems.append(f"{where}: {output.get('ename')}: {output.get('evalue')}")
        elif kind == "stream" and output.get("name") == "stderr":
            text = "".join(output.get("text", ""))
            if "Error" in text or "Traceback" in text:
                problems.append(f"{where}: stderr: {_last_lines(text)}")
    return problems


def _last_lines(text: str, count: int = 3) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-count:])


def comfy_run_cells(nb: nbformat.NotebookNode) -> list[tuple[int, Any]]:
    """``(index, cell)`` of the code cells that run ``%%comfy_run`` and wait for the job:
    not ``--no-wait``, not tagged ``raises-exception``."""
    found = []
    for index, cell in enumerate(nb.cells):
        source = cell.source.lstrip() if cell.cell_type == "code" else ""
        magic_line = source.split("\n", 1)[0]
        if (source.startswith("%%comfy_run") and "--no-wait" not in magic_line.split()
                and ALLOW_ERRORS_TAG not in cell.get("metadata", {}).get("tags", [])):
            found.append((index, cell))
    return found


def unfinished_panels(nb: nbformat.NotebookNode) -> list[str]:
    """What is wrong with the saved outputs of :func:`comfy_run_cells`: a widget or a progress bar
    left behind, or a last rich output (text-only ones aside) that is not the static
    ``comfy-nb-result`` gallery."""
    problems = []
    for index, cell in comfy_run_cells(nb):
        rich = [o.get("data", {}) for o in cell.get("outputs", [])
                if o.get("output_type") in ("display_data", "execute_result")
                and set(o.get("data", {})) - {"text/plain"}]
        htmls = ["".join(data.get("text/html", "")) for data in rich]
        if any(WIDGET_VIEW in data for data in rich):
            problems.append(f"cell {index}: a widget is left in the saved outputs")
        if any("<progress" in text for text in htmls):
            problems.append(f"cell {index}: a progress bar is left in the saved outputs")
        if not htmls or "comfy-nb-result" not in htmls[-1]:
            problems.append(f"cell {index}: the last output is not the comfy-nb-result gallery")
    return problems

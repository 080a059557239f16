"""JupyterLab (or Notebook 7) and Chromium for the browser tests: start and stop a real server,
and drive its page with Playwright (sync API, Debian's /usr/bin/chromium; ``playwright install``
is never needed). Research §6.3 describes the route.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import nbformat

from .nbrun import KERNEL_NAME, jupyter_path, kernel_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT = 60.0  # seconds; every wait polls and returns as soon as its condition holds
# JupyterLab user settings: no news toast, no update check.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False,
    },
}

T = TypeVar("T")


@dataclass
class JupyterLab:
    """A running JupyterLab server: where it answers, what it serves, where it logs."""

    url: str
    root_dir: Path
    log: Path
    process: subprocess.Popen[bytes]

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(condition: Callable[[], T | None], what: str, timeout: float = TIMEOUT) -> T:
    """Call ``condition`` until it returns something truthy; fail saying ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@contextmanager
def jupyter_lab(workdir: Path, env: dict[str, str], *,
                app: str = "jupyterlab") -> Iterator[JupyterLab]:
    """Run ``jupyter lab`` (``app="notebook"``: Notebook 7) on a free loopback port with no
    token, its notebooks in ``workdir/root``, its config and data isolated in ``workdir``;
    ``env`` reaches its kernels. Stops the server and any kernel it started on exit."""
    root = workdir / "root"
    settings = workdir / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    inherited = os.environ.get("JUPYTER_PATH")
    server_env = kernel_env({
        **env,
        "JUPYTER_PATH": os.pathsep.join(filter(None, [str(jupyter_path()), inherited])),
        "JUPYTER_CONFIG_DIR": str(workdir / "config"),
        "JUPYTER_DATA_DIR": str(workdir / "data"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        "IPYTHONDIR": str(workdir / "ipython"),
    })
    command = [
        sys.executable, "-m", app, "--allow-root", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        "--IdentityProvider.token=", "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
    ]
    if app == "jupyterlab":
        command += [
            "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly", f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={workdir / 'workspaces'}",
        ]
    else:
        command += ["--JupyterNotebookApp.expose_app_in_browser=True",
                    f"--JupyterNotebookApp.user_settings_dir={settings}"]
    log = workdir / "jupyterlab.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, env=server_env, cwd=root, stdout=log_file,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    lab = JupyterLab(url, root, log, process)
    try:
        poll(lambda: _answers(lab), "JupyterLab to answer on " + url)
        yield lab
    finally:
        _stop(lab)


def _answers(lab: JupyterLab) -> bool:
    if lab.process.poll() is not None:
        raise AssertionError(f"JupyterLab exited with {lab.process.returncode}:\n"
                             + lab.log_tail())
    try:
        get_json(lab.url + "/api/status")
    except (OSError, ValueError):
        return False
    return True


def _stop(lab: JupyterLab) -> None:
    """Ask the server to shut down (it stops its kernels), then kill whatever is left."""
    descendants = _descendants(lab.process.pid)
    try:
        request = urllib.request.Request(lab.url + "/api/shutdown", method="POST")
        urllib.request.urlopen(request, timeout=10).close()
        lab.process.wait(timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        pass
    if lab.process.poll() is None:
        os.killpg(lab.process.pid, signal.SIGKILL)
        lab.process.wait()
    for pid in descendants + _descendants(lab.process.pid):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (kernels run in their own session), from /proc on Linux."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def write_notebook(directory: Path, name: str, sources: list[str]) -> Path:
    """Write a notebook of code cells, bound to the ``python3`` kernel, and return its path."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    path = directory / name
    nbformat.write(nb, path)
    return path


def open_notebook(page: Any, lab: JupyterLab, name: str, *, app: str = "jupyterlab") -> None:
    """Open ``name`` alone in a workspace of its own and wait until its kernel is idle (a shared
    workspace would reopen the notebooks of earlier tests in hidden tabs); ``app="notebook"``:
    in Notebook 7, one notebook a page."""
    if app == "jupyterlab":
        page.goto(f"{lab.url}/lab/workspaces/{Path(name).stem}/tree/{name}")
    else:
        page.goto(f"{lab.url}/notebooks/{name}")
    page.wait_for_selector(".jp-NotebookPanel", timeout=TIMEOUT * 1000)
    page.wait_for_function(
        "() => window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel"
        "?.status === 'idle'",
        timeout=TIMEOUT * 1000, polling=100,
    )
    dismiss_news(page)


def run_all_cells(page: Any) -> None:
    """Start running every cell; returns at once (the command's promise waits for the end)."""
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def dismiss_news(page: Any) -> None:
    """Close JupyterLab's "official Jupyter news?" toast if it shows (settings should stop it)."""
    toast = page.locator(".Toastify__toast").filter(has_text="news")
    if toast.count():
        toast.get_by_role("button", name="No").first.click()


def stderr_outputs(page: Any) -> list[str]:
    """Texts of the stderr and error outputs the page shows."""
    selector = ('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    return list(page.locator(selector).all_inner_texts())


def progress_values(page: Any) -> list[float]:
    """Values of the graph and node ``<progress>`` bars in the panel, in document order."""
    return list(page.eval_on_selector_all(
        ".comfy-nb-panel progress.comfy-nb-graph, .comfy-nb-panel progress.comfy-nb-node",
        "bars => bars.map(bar => bar.value)",
    ))

"""A real ipykernel driven over its sockets, as a front end drives it: send cells, click widgets
(``comm_msg`` on the shell channel, what JupyterLab sends for a button click) while a cell is
still running, and collect what the kernel published for each request.

Plain Python, no pytest; :func:`kernel_session` starts the interpreter running the tests, with
the environment of :func:`.nbrun.kernel_env`, and always shuts the kernel down.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from traitlets import default

from .nbrun import KERNEL_NAME, jupyter_path, kernel_env

TIMEOUT = 60.0


class _ThisPythonKernelManager(KernelManager):
    @default("kernel_spec_manager")
    def _kernel_spec_manager_default(self) -> KernelSpecManager:
        return KernelSpecManager(kernel_dirs=[str(jupyter_path() / "kernels")])


@dataclass
class Request:
    """What the kernel published for one execute request, in order."""

    msg_id: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    idle: bool = False

    def of_type(self, *kinds: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] in kinds]

    @property
    def stdout(self) -> str:
        return "".join(m["content"]["text"] for m in self.of_type("stream")
                       if m["content"]["name"] == "stdout")

    @property
    def errors(self) -> list[str]:
        return [f"{m['content']['ename']}: {m['content']['evalue']}" for m in self.of_type("error")]


class KernelSession:
    """A started kernel and a client of it; iopub messages are sorted by the request they
    answer (:attr:`requests`), widget openings kept by comm id (:attr:`comms`)."""

    def __init__(self, client: BlockingKernelClient) -> None:
        self.client = client
        self.requests: dict[str, Request] = {}
        self.comms: dict[str, dict[str, Any]] = {}  # comm id -> state at opening

    def execute(self, code: str) -> Request:
        """Send a cell; returns at once (see :meth:`wait_idle`)."""
        request = Request(self.client.execute(code, allow_stdin=False))
        self.requests[request.msg_id] = request
        return request

    def run(self, code: str, timeout: float = TIMEOUT) -> Request:
        """Run a cell to its end."""
        request = self.execute(code)
        self.wait_for(lambda: request.idle, f"the cell {code[:40]!r} to end", timeout)
        return request

    def click(self, comm_id: str) -> None:
        """Click the button of ``comm_id``, as a front end does."""
        message = self.client.session.msg("comm_msg", {
            "comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}})
        self.client.shell_channel.send(message)

    def comm_with_class(self, css_class: str) -> str | None:
        """The comm id of the first widget opened with ``css_class`` in its ``_dom_classes``."""
        for comm_id, state in self.comms.items():
            if css_class in state.get("_dom_classes", []):
                return comm_id
        return None

    def wait_for(self, condition: Callable[[], Any], what: str,
                 timeout: float = TIMEOUT) -> Any:
        """Read iopub until ``condition()`` is truthy; fail saying ``what`` otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            self._read(0.1)

    def _read(self, timeout: float) -> None:
        try:
            message = self.client.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return
        content = message["content"]
        if message["msg_type"] == "comm_open":
            self.comms[content["comm_id"]] = content.get("data", {}).get("state", {})
        request = self.requests.get(message["parent_header"].get("msg_id", ""))
        if request is None:
            return
        request.messages.append(message)
        if message["msg_type"] == "status" and content["execution_state"] == "idle":
            request.idle = True


@contextmanager
def kernel_session(cwd: str | os.PathLike[str],
                   env: dict[str, str] | None = None) -> Iterator[KernelSession]:
    """A fresh kernel of this interpreter in ``cwd``, with :func:`.nbrun.kernel_env` plus
    ``env``."""
    manager = _ThisPythonKernelManager(kernel_name=KERNEL_NAME)
    manager.start_kernel(env=kernel_env(env), cwd=os.fspath(cwd))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT)
        yield KernelSession(client)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)

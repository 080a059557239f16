"""comfy_nb: run ComfyUI workflows on Comfy Cloud or your own ComfyUI server from Jupyter.

``comfy_nb.connect()`` gives a :class:`Client`; ``client.run(workflow)`` gives a :class:`Result`.
The embedded emulator lives in :mod:`comfy_nb.emulator`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .client import (
    AsyncClient,
    AuthenticationError,
    Client,
    ComfyError,
    ExecutionFailed,
    JobCancelled,
    JobLost,
    JobStatus,
    JobTimeout,
    NodeError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    RequestError,
    ServerError,
    TransportError,
    ValidationError,
    connect,
)
from .job import AsyncJob, Job
from .result import OutputFile, Result
from .workflow import ParameterError, Workflow, WorkflowError
from .workflow._errors import WorkflowInvalid

try:
    __version__ = version("comfy-nb")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"



def load_ipython_extension(shell: Any) -> None:
    """``%load_ext comfy_nb``: the ``%%comfy_run`` and ``%comfy`` magics."""
    from .notebook.magics import load_ipython_extension as load

    load(shell)


def unload_ipython_extension(shell: Any) -> None:
    """``%unload_ext comfy_nb`` (``%reload_ext`` calls it too)."""
    from .notebook.magics import unload_ipython_extension as unload

    unload(shell)


__all__ = [
    "AsyncClient",
    "AsyncJob",
    "AuthenticationError",
    "Client",
    "ComfyError",
    "ExecutionFailed",
    "Job",
    "JobCancelled",
    "JobLost",
    "JobStatus",
    "JobTimeout",
    "NodeError",
    "NotFoundError",
    "OutputFile",
    "ParameterError",
    "PaymentRequiredError",
    "RateLimitError",
    "RequestError",
    "Result",
    "ServerError",
    "TransportError",
    "ValidationError",
    "Workflow",
    "WorkflowError",
    "WorkflowInvalid",
    "__version__",
    "connect",
]

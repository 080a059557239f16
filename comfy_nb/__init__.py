"""comfy_nb: run ComfyUI workflows on Comfy Cloud or your own ComfyUI server from Jupyter.

``comfy_nb.connect()`` gives a :class:`Client`; ``client.run(workflow)`` gives a :class:`Result`.
The embedded emulator lives in :mod:`comfy_nb.emulator`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from . import cache
from .cache import ResultCache
from .client import (
    AsyncClient,
    AuthenticationError,
    Client,
    ComfyError,
    DownloadTimeout,
    ExecutionFailed,
    InvalidJobId,
    InvalidURL,
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
    SubmissionUncertain,
    TransportError,
    UnexpectedContent,
    ValidationError,
    connect,
)
from .job import AsyncJob, Job
from .replay import (  # the function comfy_nb.replay shadows the module: import from it
    AsyncReplayClient,
    Recording,
    ReplayClient,
    ReplayError,
    ReplayMismatch,
    record,
    replay,
)
from .result import OutputFile, Result
from .sweep import AsyncSweep, Sweep, SweepItem, SweepTimeout, asweep, sweep
from .workflow import ParameterError, Workflow, WorkflowError
from .workflow._errors import WorkflowInvalid

if TYPE_CHECKING:  # the notebook layer (ipywidgets) loads on first use
    from .notebook.interact import Interact

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


def interact(workflow: Any, *names: str, **options: Any) -> Interact:
    """Sliders, boxes and dropdowns for inputs of a workflow, built from the server's node
    definitions, with a Run button, live progress and earlier results (ipywidgets)::

        comfy_nb.interact("txt2img", "seed", "cfg", "Positive Prompt.text", steps=(1, 50))

    See :func:`comfy_nb.notebook.interact.interact` for every option."""
    from .notebook.interact import interact as build

    return build(workflow, *names, **options)


__all__ = [
    "AsyncClient",
    "AsyncJob",
    "AsyncReplayClient",
    "AsyncSweep",
    "AuthenticationError",
    "Client",
    "ComfyError",
    "DownloadTimeout",
    "ExecutionFailed",
    "InvalidJobId",
    "InvalidURL",
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
    "Recording",
    "ReplayClient",
    "ReplayError",
    "ReplayMismatch",
    "RequestError",
    "Result",
    "ResultCache",
    "ServerError",
    "SubmissionUncertain",
    "Sweep",
    "SweepItem",
    "SweepTimeout",
    "TransportError",
    "UnexpectedContent",
    "ValidationError",
    "Workflow",
    "WorkflowError",
    "WorkflowInvalid",
    "__version__",
    "asweep",
    "cache",
    "connect",
    "interact",
    "record",
    "replay",
    "sweep",
]

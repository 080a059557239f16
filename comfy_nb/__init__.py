"""comfy_nb: run ComfyUI workflows on Comfy Cloud or your own ComfyUI server from Jupyter.

``comfy_nb.connect()`` gives a :class:`Client`; ``client.run(workflow)`` gives a :class:`Result`.
The embedded emulator lives in :mod:`comfy_nb.emulator`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public names are loaded on first use (PEP 562), so ``import comfy_nb`` costs next to nothing and
# a script pays only for what it uses: the client (httpx, websockets) on the first
# ``comfy_nb.connect``, the result cache, recordings, sweeps and workflows when they are needed.
_LAZY: dict[str, str] = {
    # name -> the module that defines it
    **dict.fromkeys(
        ("AuthenticationError", "ComfyError", "DownloadTimeout", "ExecutionFailed",
         "FeatureUnavailable", "InvalidJobId", "InvalidURL", "JobCancelled", "JobLost",
         "JobTimeout", "NoMemberCanRun", "NodeError",
         "NotFoundError", "ParameterError", "PaymentRequiredError", "RateLimitError",
         "ReplayError", "ReplayMismatch", "RequestError", "ServerError", "SubmissionUncertain",
         "SweepTimeout", "TransportError", "UnexpectedContent", "ValidationError",
         "WorkflowError", "WorkflowInvalid"),
        ".errors"),
    **dict.fromkeys(("AsyncClient", "AsyncPool", "Client", "JobStatus", "Pool", "connect"),
                    ".client"),
    "RetryPolicy": ".client._backoff",
    "ResultCache": ".cache",
    "AsyncJob": ".job", "Job": ".job", "JobProgress": ".job",
    **dict.fromkeys(("AsyncReplayClient", "Recording", "ReplayClient", "record", "replay"),
                    ".recordings"),
    "OutputFile": ".result", "Result": ".result",
    **dict.fromkeys(("AsyncSweep", "Sweep", "SweepItem", "asweep", "sweep"), ".sweeps"),
    "Workflow": ".workflow",
    "jobs": ".ledger",
    "WorkflowFunction": ".workflow_function", "use": ".workflow_function",
}
# loaded on first use too
_SUBMODULES = {"cache", "errors", "events", "ledger", "recordings", "sweeps"}

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from . import cache, errors, events, ledger, recordings, sweeps
    from .cache import ResultCache
    from .client import AsyncClient, AsyncPool, Client, JobStatus, Pool, connect
    from .client._backoff import RetryPolicy
    from .errors import (
        AuthenticationError,
        ComfyError,
        DownloadTimeout,
        ExecutionFailed,
        FeatureUnavailable,
        InvalidJobId,
        InvalidURL,
        JobCancelled,
        JobLost,
        JobTimeout,
        NodeError,
        NoMemberCanRun,
        NotFoundError,
        ParameterError,
        PaymentRequiredError,
        RateLimitError,
        ReplayError,
        ReplayMismatch,
        RequestError,
        ServerError,
        SubmissionUncertain,
        SweepTimeout,
        TransportError,
        UnexpectedContent,
        ValidationError,
        WorkflowError,
        WorkflowInvalid,
    )
    from .job import AsyncJob, Job, JobProgress
    from .ledger import jobs
    from .notebook.interact import Interact
    from .recordings import AsyncReplayClient, Recording, ReplayClient, record, replay
    from .result import OutputFile, Result
    from .sweeps import AsyncSweep, Sweep, SweepItem, asweep, sweep
    from .workflow import Workflow
    from .workflow_function import WorkflowFunction, use


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    elif name == "__version__":
        from ._version import package_version

        value = package_version()
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # the next look-up does not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
    "AsyncPool",
    "AsyncReplayClient",
    "AsyncSweep",
    "AuthenticationError",
    "Client",
    "ComfyError",
    "DownloadTimeout",
    "ExecutionFailed",
    "FeatureUnavailable",
    "InvalidJobId",
    "InvalidURL",
    "Job",
    "JobCancelled",
    "JobLost",
    "JobProgress",
    "JobStatus",
    "JobTimeout",
    "NoMemberCanRun",
    "NodeError",
    "NotFoundError",
    "OutputFile",
    "ParameterError",
    "PaymentRequiredError",
    "Pool",
    "RateLimitError",
    "Recording",
    "ReplayClient",
    "ReplayError",
    "ReplayMismatch",
    "RequestError",
    "Result",
    "ResultCache",
    "RetryPolicy",
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
    "WorkflowFunction",
    "WorkflowInvalid",
    "__version__",
    "asweep",
    "cache",
    "connect",
    "errors",
    "events",
    "interact",
    "jobs",
    "ledger",
    "record",
    "recordings",
    "replay",
    "sweep",
    "sweeps",
    "use",
]

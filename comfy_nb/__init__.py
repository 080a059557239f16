"""comfy_nb: run ComfyUI workflows on Comfy Cloud or your own ComfyUI server from Jupyter.

``comfy_nb.connect()`` gives a :class:`Client`; ``client.run(workflow)`` gives a :class:`Result`.
The embedded emulator lives in :mod:`comfy_nb.emulator`.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# Public names are loaded on first use (PEP 562), so ``import comfy_nb`` costs next to nothing and
# a script pays only for what it uses: the client (httpx, websockets) on the first
# ``comfy_nb.connect``, the result cache, recordings, sweeps and workflows when they are needed.
_LAZY: dict[str, str] = {
    # name -> the module that defines it
    **dict.fromkeys(
        ("AsyncClient", "AuthenticationError", "Client", "ComfyError", "DownloadTimeout",
         "ExecutionFailed", "InvalidJobId", "InvalidURL", "JobCancelled", "JobLost", "JobStatus",
         "JobTimeout", "NodeError", "NotFoundError", "PaymentRequiredError", "RateLimitError",
         "RequestError", "ServerError", "SubmissionUncertain", "TransportError",
         "UnexpectedContent", "ValidationError", "connect"),
        ".client"),
    "ResultCache": ".cache",
    "AsyncJob": ".job", "Job": ".job",
    **dict.fromkeys(("AsyncReplayClient", "Recording", "ReplayClient", "ReplayError",
                     "ReplayMismatch", "record", "replay"), ".replay"),
    "OutputFile": ".result", "Result": ".result",
    **dict.fromkeys(("AsyncSweep", "Sweep", "SweepItem", "SweepTimeout", "asweep", "sweep"),
                    ".sweeps"),
    "ParameterError": ".workflow", "Workflow": ".workflow", "WorkflowError": ".workflow",
    "WorkflowInvalid": ".workflow._errors",
    "WorkflowFunction": ".workflow_function", "use": ".workflow_function",
}
_SUBMODULES = {"cache", "sweeps"}  # public modules, loaded on first use too
# functions named like the module that defines them: the function keeps the package's name
_SHADOWED = {"replay"}

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from . import cache, sweeps
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
    from .notebook.interact import Interact
    from .replay import (
        AsyncReplayClient,
        Recording,
        ReplayClient,
        ReplayError,
        ReplayMismatch,
        record,
        replay,
    )
    from .result import OutputFile, Result
    from .sweeps import AsyncSweep, Sweep, SweepItem, SweepTimeout, asweep, sweep
    from .workflow import ParameterError, Workflow, WorkflowError
    from .workflow._errors import WorkflowInvalid
    from .workflow_function import WorkflowFunction, use


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    elif name == "__version__":
        value = _version()
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # the next look-up does not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("comfy-nb")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0.0.0"


class _Package(types.ModuleType):
    """The package's module type: importing ``comfy_nb.replay`` as a module must not replace
    the function of that name the package exports."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return  # the module stays in sys.modules; the package's name keeps the function
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


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
    "WorkflowFunction",
    "WorkflowInvalid",
    "__version__",
    "asweep",
    "cache",
    "connect",
    "interact",
    "record",
    "replay",
    "sweep",
    "sweeps",
    "use",
]

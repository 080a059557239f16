"""The API client for local ComfyUI servers and Comfy Cloud: :func:`connect` /
:class:`Client` (synchronous) and :class:`AsyncClient`, with the errors they raise (the tree
of :mod:`comfy_nb.errors`).

Names load on first use, so importing one module of the package (the errors, the dialects) does
not load the client, nor httpx and websockets."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_ERRORS = ("AuthenticationError", "ComfyError", "DownloadTimeout", "ExecutionFailed",
           "InvalidJobId", "InvalidURL", "JobCancelled", "JobLost", "JobTimeout", "NoMemberCanRun",
           "NodeError", "NotFoundError", "PaymentRequiredError", "RateLimitError", "RequestError",
           "ServerError", "SubmissionUncertain", "TransportError", "UnexpectedContent",
           "ValidationError")
_LAZY = {"AsyncClient": "._client", "Client": "._client", "connect": "._connect",
         "AsyncPool": "._pool", "Pool": "._pool",
         "JobStatus": "._dialects", "PreparedPrompt": "._runs",
         **dict.fromkeys(_ERRORS, "..errors")}

if TYPE_CHECKING:
    from ..errors import (
        AuthenticationError,
        ComfyError,
        DownloadTimeout,
        ExecutionFailed,
        InvalidJobId,
        InvalidURL,
        JobCancelled,
        JobLost,
        JobTimeout,
        NodeError,
        NoMemberCanRun,
        NotFoundError,
        PaymentRequiredError,
        RateLimitError,
        RequestError,
        ServerError,
        SubmissionUncertain,
        TransportError,
        UnexpectedContent,
        ValidationError,
    )
    from ._client import AsyncClient, Client
    from ._connect import connect
    from ._dialects import JobStatus
    from ._pool import AsyncPool, Pool
    from ._runs import PreparedPrompt


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "AsyncClient",
    "AsyncPool",
    "AuthenticationError",
    "Client",
    "ComfyError",
    "DownloadTimeout",
    "ExecutionFailed",
    "InvalidJobId",
    "InvalidURL",
    "JobCancelled",
    "JobLost",
    "JobStatus",
    "JobTimeout",
    "NoMemberCanRun",
    "NodeError",
    "NotFoundError",
    "PaymentRequiredError",
    "Pool",
    "PreparedPrompt",
    "RateLimitError",
    "RequestError",
    "ServerError",
    "SubmissionUncertain",
    "TransportError",
    "UnexpectedContent",
    "ValidationError",
    "connect",
]

"""The API client for local ComfyUI servers and Comfy Cloud: :func:`connect` /
:class:`Client` (synchronous) and :class:`AsyncClient`, with the error tree of
:mod:`comfy_nb.client._errors`."""

from __future__ import annotations

from ._client import AsyncClient, Client, connect
from ._dialects import JobStatus
from ._errors import (
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

__all__ = [
    "AsyncClient",
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
    "NodeError",
    "NotFoundError",
    "PaymentRequiredError",
    "RateLimitError",
    "RequestError",
    "ServerError",
    "SubmissionUncertain",
    "TransportError",
    "UnexpectedContent",
    "ValidationError",
    "connect",
]

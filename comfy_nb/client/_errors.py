"""Every error the client raises, in one tree rooted at :class:`ComfyError`::

    ComfyError
    ├── InvalidURL                the server URL is malformed (also a ValueError)
    ├── InvalidJobId              a job id that cannot go into a URL path (also a ValueError)
    ├── TransportError            the server could not be reached / the connection broke
    │   └── DownloadTimeout       a download took longer than allowed (also a TimeoutError)
    ├── RequestError              the server answered with an HTTP error
    │   ├── AuthenticationError   401: missing or wrong API key
    │   ├── PaymentRequiredError  402: not enough credits
    │   ├── RateLimitError        429: slow down (``retry_after`` seconds, if the server said)
    │   ├── NotFoundError         404
    │   ├── ValidationError       400 on submit: the workflow is invalid (``node_errors``)
    │   └── ServerError           5xx
    ├── UnexpectedContent         a downloaded output is not what its name says (an HTML page
    │                             sent for ``a.png``); it is not saved
    ├── ExecutionFailed           the job ran and a node raised (node, exception, traceback)
    ├── SubmissionUncertain       a submission's answer was lost and the job was not found
    ├── JobCancelled              the job was interrupted or cancelled
    ├── JobLost                   the server no longer knows the job (it restarted?)
    └── JobTimeout                waiting for the job took longer than allowed

Messages are short and say what to do next. They never contain an API key, a signed URL or
``extra_data``: build them only from the fields below, never from request objects.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

FULL_TRACEBACK_HINT = "(full traceback: %config ComfyMagics.short_errors = False)"
TRACEBACK_TAIL = 6  # lines of a server-side traceback shown in the short form


class ComfyError(Exception):
    """Base class of every comfy_nb client error.

    In IPython and Jupyter these errors print as a few readable lines instead of a Python
    traceback (the cell still fails); ``ComfyError.short_tracebacks = False`` (or
    ``%config ComfyMagics.short_errors = False``) brings the full traceback back."""

    short_tracebacks: ClassVar[bool] = True

    def notebook_lines(self) -> list[str]:
        """The short form shown in notebooks."""
        return [f"{type(self).__name__}: {self}"]

    @property
    def _render_traceback_(self) -> Callable[[], list[str]]:
        # IPython calls this when it exists; absent, IPython prints the usual traceback
        if not ComfyError.short_tracebacks:
            raise AttributeError("_render_traceback_")
        return lambda: [*self.notebook_lines(), FULL_TRACEBACK_HINT]


class InvalidURL(ComfyError, ValueError):
    """The server URL cannot be used: not http(s), credentials in it, a bad host or port."""


class InvalidJobId(ComfyError, ValueError):
    """A job id that cannot be put into a URL path: empty, ``.`` or ``..``, or holding ``/``,
    ``\\``, ``%`` or control characters (it could address another endpoint)."""


class TransportError(ComfyError):
    """The server could not be reached, or the connection broke mid-request. ``never_sent`` is
    True when the request certainly did not reach the server (no connection could be made), so
    sending it again cannot do anything twice."""

    def __init__(self, message: str, *, never_sent: bool = False) -> None:
        super().__init__(message)
        self.never_sent = never_sent


class DownloadTimeout(TransportError, TimeoutError):
    """A download did not finish within the client's ``download_timeout`` (retries included);
    nothing of it was kept."""


class RequestError(ComfyError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, *, status: int, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class AuthenticationError(RequestError):
    """401: the API key is missing or wrong."""


class PaymentRequiredError(RequestError):
    """402: the account has no credits left."""


class RateLimitError(RequestError):
    """429: too many requests or an inactive subscription; ``retry_after`` in seconds."""

    def __init__(self, message: str, *, status: int = 429, body: Any = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class NotFoundError(RequestError):
    """404: no such job, file or route."""


class ServerError(RequestError):
    """5xx: the server failed."""


class UnexpectedContent(ComfyError):
    """An output file is not what its name says: a server (or a proxy in front of it) sent
    something else, such as an HTML login page, for ``a.png``. Nothing of it is saved."""

    def __init__(self, filename: str, expected: str, found: str) -> None:
        hint = " (the login or error page of a proxy?)" if found == "an HTML page" else ""
        super().__init__(
            f"{filename!r} should be {expected}, but the server sent {found}{hint}; it was not "
            "saved: check the server URL and any proxy in front of it, then try again")
        self.filename = filename
        self.expected = expected
        self.found = found


@dataclass(frozen=True)
class NodeError:
    """One problem the server found in one node of a submitted workflow."""

    node_id: str
    class_type: str
    type: str
    message: str
    details: str = ""
    input_name: str | None = None

    def __str__(self) -> str:
        where = f"node {self.node_id} ({self.class_type})"
        if self.input_name:
            where += f", input {self.input_name!r}"
        detail = f": {self.details}" if self.details and self.details != self.input_name else ""
        return f"{where}: {self.message}{detail}"


class ValidationError(RequestError):
    """400 on submit: the server refused the workflow. ``node_errors`` lists every problem."""

    def __init__(self, message: str, *, status: int = 400, body: Any = None,
                 error_type: str = "", node_errors: list[NodeError] | None = None) -> None:
        super().__init__(message, status=status, body=body)
        self.error_type = error_type
        self.node_errors = list(node_errors or [])


@dataclass
class ExecutionFailed(ComfyError):
    """The job ran and a node raised. Fields come from the server's ``execution_error``."""

    prompt_id: str
    node_id: str
    node_type: str
    exception_type: str
    exception_message: str
    traceback: list[str] = field(default_factory=list)
    node_title: str | None = None

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        message = self.exception_message.strip()
        title = f"{self.node_title!r} " if self.node_title and self.node_title != self.node_type \
            else ""
        return (f"node {self.node_id} {title}({self.node_type}) failed with "
                f"{self.exception_type}: {message}")

    def notebook_lines(self) -> list[str]:
        """The failing node and exception, then the last lines of the server's traceback."""
        lines = [f"{type(self).__name__}: {self}"]
        tail = "".join(self.traceback).rstrip().splitlines()[-TRACEBACK_TAIL:]
        if tail:
            lines.append("server traceback (last lines):")
            lines += [f"  {line}" for line in tail]
        return lines


class SubmissionUncertain(ComfyError):
    """Submitting a workflow failed in a way that leaves its fate unknown (the answer was lost,
    or a server error), and the server could not show whether it queued the job. It was not
    sent again, so it never runs twice; ``prompt_id`` is its id if it was queued, where the
    server is known to use the id the client chose (None otherwise). The cause is chained."""

    def __init__(self, message: str, *, prompt_id: str | None = None) -> None:
        super().__init__(message)
        self.prompt_id = prompt_id


class JobCancelled(ComfyError):
    """The job was interrupted or cancelled before it finished."""

    def __init__(self, prompt_id: str, node_id: str | None = None) -> None:
        where = f" at node {node_id}" if node_id else ""
        super().__init__(f"job {prompt_id} was cancelled{where}")
        self.prompt_id = prompt_id
        self.node_id = node_id


class JobLost(ComfyError):
    """The server no longer knows the job: it was restarted, or its history was cleared."""

    def __init__(self, prompt_id: str) -> None:
        super().__init__(f"the server no longer knows job {prompt_id}; it may have restarted. "
                         "Submit the workflow again.")
        self.prompt_id = prompt_id


class JobTimeout(ComfyError, TimeoutError):
    """Waiting for a job took longer than the timeout. ``cancelled``: True if the job was
    cancelled on the server because of it, False if cancelling it failed, None if it was left
    running (``job.wait(timeout)``)."""

    def __init__(self, prompt_id: str, timeout: float, cancelled: bool | None = None) -> None:
        if cancelled is None:
            ending = "; it may still be running (cancel it with job.cancel())"
        elif cancelled:
            ending = " and was cancelled on the server"
        else:
            ending = (" and could not be cancelled; it may still be running "
                      f"(client.cancel({prompt_id!r}))")
        super().__init__(f"job {prompt_id} did not finish within {timeout:g} s{ending}")
        self.prompt_id = prompt_id
        self.timeout = timeout
        self.cancelled = cancelled


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form), or None."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds)


def node_errors_from(body: Any) -> list[NodeError]:
    """The per-node problems of a ComfyUI ``{"error", "node_errors"}`` body, flattened."""
    problems: list[NodeError] = []
    node_errors = body.get("node_errors") if isinstance(body, dict) else None
    if not isinstance(node_errors, dict):
        return problems
    for node_id, entry in node_errors.items():
        if not isinstance(entry, dict):
            continue
        for error in entry.get("errors", []):
            if not isinstance(error, dict):
                continue
            extra = error.get("extra_info") or {}
            problems.append(NodeError(
                node_id=str(node_id),
                class_type=str(entry.get("class_type", "")),
                type=str(error.get("type", "")),
                message=str(error.get("message", "")),
                details=str(error.get("details", "")),
                input_name=extra.get("input_name") if isinstance(extra, dict) else None,
            ))
    return problems


def _summary(body: Any) -> str:
    """A short, key-free description of an error body."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error.get("type") or "")
        if isinstance(error, str):
            return error
        if "message" in body:
            return str(body["message"])
    if isinstance(body, str):
        return _text_summary(body)
    return ""


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _looks_like_html(text: str) -> bool:
    """Whether an answer's text is an HTML page rather than a message."""
    start = text.lstrip()[:200].lower()
    return start.startswith(("<!doctype html", "<html", "<head", "<body")) or "<html" in start


def _text_summary(text: str) -> str:
    """One line of a text error body: an HTML page gives only its ``<title>``."""
    if _looks_like_html(text):
        title = _TITLE.search(text)
        text = html.unescape(title.group(1)) if title else ""
    return " ".join(text.split())[:200]


def _sentence(text: str) -> str:
    """``text`` ending with a full stop (not two)."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def error_for_status(status: int, body: Any, *, retry_after: float | None = None,
                     what: str = "request") -> RequestError:
    """The error for an HTTP error answer. ``what`` names the operation for the message."""
    detail = _summary(body).strip()
    suffix = f": {detail}" if detail else ""
    if status == 400 and isinstance(body, dict) and ("node_errors" in body or "error" in body):
        problems = node_errors_from(body)
        error = body.get("error")
        error_type = error.get("type", "") if isinstance(error, dict) else ""
        lines = [f"the server refused the workflow{suffix}"]
        lines += [f"  {p}" for p in problems]
        return ValidationError("\n".join(lines), body=body, error_type=str(error_type),
                               node_errors=problems)
    if status == 401:
        return AuthenticationError(
            f"{what} was refused (401): the API key is missing or wrong. Pass api_key=... or "
            "set COMFY_CLOUD_API_KEY.", status=status, body=body)
    if status == 402:
        reason = _sentence(detail) if detail else "not enough credits."
        if "add credits" not in reason.lower():
            reason += " Add credits to your Comfy account."
        return PaymentRequiredError(f"{what} was refused (402): {reason}", status=status,
                                    body=body)
    if status == 429:
        parts = [_sentence(detail)] if detail else []
        if retry_after is not None:
            parts.append(f"{'Retry' if parts else 'retry'} after {retry_after:g} s.")
        reason = " ".join(parts) or "slow down and try again later."
        return RateLimitError(f"{what} was rate limited (429): {reason}", body=body,
                              retry_after=retry_after)
    if status == 404:
        return NotFoundError(f"{what}: not found (404){suffix}", status=status, body=body)
    if status >= 500:
        return ServerError(f"{what} failed on the server ({status}){suffix}", status=status,
                           body=body)
    return RequestError(f"{what} failed ({status}){suffix}", status=status, body=body)


def body_of(content: bytes, content_type: str | None) -> Any:
    """Parse an error body: JSON when it is JSON, else text."""
    text = content.decode("utf-8", errors="replace")
    if content_type and "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text

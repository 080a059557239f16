"""An HTTP error answer as the error of :mod:`comfy_nb.errors` it means: the status picks the
class, the body gives a short detail (a JSON message, an HTML page's title, a line of text), a
``400`` on submit lists the server's per-node problems, ``Retry-After`` is read for a ``429``.

Must not: put a key, a signed URL or a request into a message: only the status, the body's
summary and the operation's name (``what``) go in.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from ..errors import (
    AuthenticationError,
    NodeError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    RequestError,
    ServerError,
    ValidationError,
)


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

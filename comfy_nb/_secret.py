"""Secrets: the API key (and any other credential) carried in a :class:`Secret` that never shows
its value, and log records kept free of secrets and signed URLs.

A :class:`Secret` is what every function receives in place of a key, from the first frame that
sees one: its ``repr``, ``str`` and ``format`` hide the value, so an ``%xmode Verbose``
traceback (which prints every frame's locals, and is saved with the notebook) shows
``api_key = <secret>``, and so does any dict that holds one. Only :meth:`Secret.reveal` gives the
value, at the one place it is sent.

Log records are cleaned by a LogRecord factory (:func:`install_log_redaction`), not by filters on
loggers or handlers: a logger's filter sees only the records created on that very logger (not
those of its children, such as ``httpcore.http11`` under ``httpcore``), loggers of libraries
come and go with their imports, and the handlers belong to the application. The factory sees
every record of every logger of the process (httpx, httpcore.*, websockets.*, hpack, asyncio,
aiohttp, the application's own) when it is created, before any filter, handler or formatter.
It chains to the factory that was installed before it, rewrites a record only when its text
contains a secret (the value of any live :class:`Secret`) or a signed query string (a storage
URL's ``X-Goog-Signature``, ``X-Amz-*``, ``token=``...), and otherwise leaves it untouched.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import re
import threading
import urllib.parse
import weakref
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Secret", "hide_secrets", "install_log_redaction", "redact"]

SENSITIVE_EXTRA_DATA = ("api_key_comfy_org", "auth_token_comfy_org")  # keys in extra_data
SHOWN = "<secret>"
REDACTED = "[redacted]"
_MIN_REDACTED_LENGTH = 8  # shorter values would blank out ordinary words of every log line


class Secret:
    """A credential that does not show itself: ``repr``, ``str`` and ``format`` give
    ``<secret>``; :meth:`reveal` gives the value. It cannot be pickled (so it never reaches a
    file by accident); copies are the same object. Equal to a Secret or a string of the same
    value (compared in constant time)."""

    __slots__ = ("__weakref__", "_value")

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a secret must be a string (got {type(value).__name__})")
        self._value = value
        with _LOCK:
            _LIVE.add(self)
        install_log_redaction()

    @classmethod
    def of(cls, value: object, what: str = "api_key") -> Secret | None:
        """``value`` as a Secret: a string is wrapped, a Secret kept, None or an empty string
        gives None; anything else is a ``TypeError`` naming ``what``."""
        if value is None or isinstance(value, Secret):
            return value or None
        if not isinstance(value, str):
            raise TypeError(f"{what} must be a string (got {type(value).__name__})")
        return cls(value) if value else None

    def reveal(self) -> str:
        """The value itself: only where it is sent, never into a variable that outlives it."""
        return self._value

    def __repr__(self) -> str:
        return SHOWN

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(SHOWN, spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            other = other._value
        if not isinstance(other, str):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


_LOCK = threading.Lock()
_LIVE: weakref.WeakSet[Secret] = weakref.WeakSet()


def hide_secrets(options: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of keyword arguments with every credential in a :class:`Secret`: ``api_key``, a
    string ``partner_key``, and the partner-node keys of ``extra_data``. Called first thing by
    functions taking ``**options``, so that their frame never holds a key in the clear."""
    hidden = dict(options)
    if "api_key" in hidden:
        hidden["api_key"] = Secret.of(hidden["api_key"], "api_key")
    if isinstance(hidden.get("partner_key"), str):
        hidden["partner_key"] = Secret.of(hidden["partner_key"], "partner_key") or False
    extra = hidden.get("extra_data")
    if isinstance(extra, Mapping) and any(isinstance(extra.get(name), str)
                                          for name in SENSITIVE_EXTRA_DATA):
        hidden["extra_data"] = hide_extra_data(extra)
    return hidden


def hide_extra_data(extra: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a prompt's ``extra_data`` with the partner-node keys in :class:`Secret`."""
    return {name: (Secret.of(value, name) if name in SENSITIVE_EXTRA_DATA
                   and isinstance(value, str) else value)
            for name, value in extra.items()}


def reveal_all(value: Any) -> Any:
    """``json.dumps(..., default=reveal_all)``: a Secret's value where the body is encoded."""
    if isinstance(value, Secret):
        return value.reveal()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# -- logs -----------------------------------------------------------------------------------------

# a query (after "?") carrying a signature, a credential or a token: the whole query goes
_QUERY = re.compile(r"\?([^\s'\"<>`#\\]*)")
_SIGNED = re.compile(
    r"(?:^|&)(?:x-goog-|x-amz-|googleaccessid=|sig=|[^=&]*(?:signature|credential|token|key)"
    r"[^=&]*=)", re.IGNORECASE)


def _secret_forms() -> list[str]:
    """Every live secret as it may appear in text: as it is and percent-encoded."""
    with _LOCK:
        values = [secret.reveal() for secret in _LIVE]
    forms: set[str] = set()
    for value in values:
        if len(value) >= _MIN_REDACTED_LENGTH:
            forms |= {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
    return sorted(forms, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` without the value of any live :class:`Secret` and without signed query
    strings (``...?X-Goog-Signature=...`` becomes ``...?[redacted]``)."""
    for form in _secret_forms():
        if form in text:
            text = text.replace(form, REDACTED)
    if "?" in text:
        text = _QUERY.sub(lambda m: f"?{REDACTED}" if _SIGNED.search(m.group(1)) else m.group(0),
                          text)
    return text


_installed = False


def install_log_redaction() -> None:
    """Make every log record of the process pass through :func:`redact` when it is created
    (once; the factory installed before keeps working underneath)."""
    global _installed
    with _LOCK:
        if _installed:
            return
        _installed = True
        logging.setLogRecordFactory(_redacting(logging.getLogRecordFactory()))


def _redacting(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        # a record that cannot be formatted is logging's to report, when it is emitted
        with contextlib.suppress(Exception):
            _clean(record)
        return record

    make_record.comfy_nb_redacting = True  # type: ignore[attr-defined]
    return make_record


def _clean(record: logging.LogRecord) -> None:
    """Rewrite a record whose message, traceback or stack carries a secret: the message is
    formatted now and its arguments dropped; the traceback is rendered now into ``exc_text``."""
    text = record.getMessage()
    clean = redact(text)
    if clean != text:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        rendered = logging.Formatter().formatException(record.exc_info)
        cleaned = redact(rendered)
        if cleaned != rendered:
            record.exc_text = cleaned
    if record.stack_info:
        record.stack_info = redact(record.stack_info)

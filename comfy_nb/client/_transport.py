"""HTTP for the client: one pooled ``httpx.AsyncClient`` per server, retries with backoff and
jitter, typed errors, and downloads that follow signed-URL redirects without credentials.

This is the only module of the package that imports httpx. It knows nothing of ComfyUI routes
or dialects (callers pass paths), and it must never put the API key, a query string, a signed
URL or a request body into a message, a repr or a log line, nor send the key to another host.
The key is a :class:`~comfy_nb._secret.Secret` added by an httpx auth flow on the API client
only (so no header dict of ours or of httpx's holds it); JSON bodies may hold Secrets (a
partner-node key) and are encoded here, revealing them only into the bytes sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import io
import json as _json
import logging
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import httpx

from .._secret import Secret, install_log_redaction, reveal_all
from .._version import package_version
from ..errors import (
    AuthenticationError,
    ComfyError,
    DownloadTimeout,
    InvalidURL,
    RequestError,
    TransportError,
)
from ._backoff import RetryPolicy
from ._http_errors import body_of, error_for_status, parse_retry_after

__all__ = ["HttpResponse", "Transport"]

log = logging.getLogger("comfy_nb")

T = TypeVar("T")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})  # for idempotent (or retry_unsafe) requests
# failures before any byte of the request left: no connection, or none free in the pool
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
STORAGE = "the storage server"
DEFAULT_DOWNLOAD_TIMEOUT = 1800.0  # seconds for a whole download, retries included
#: a compressed answer may inflate to this many times the bytes received (beyond the allowance)
MAX_INFLATION = 100
INFLATION_ALLOWANCE = 64 * 1024 * 1024
DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class HttpResponse:
    """A complete answer: status, headers (lower-case names; repeated ones comma-joined), body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` when it is not JSON)."""
        return _json.loads(self.content)

    @property
    def text(self) -> str:
        """The body decoded with the charset of ``Content-Type`` (UTF-8 by default)."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")


class _Failure(Exception):
    """One failed attempt: the error to raise if it is the last, and whether to try again."""

    def __init__(self, error: ComfyError, *, retryable: bool,
                 retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retryable = retryable
        self.retry_after = retry_after


def _no_cookies() -> http.cookiejar.CookieJar:
    """A cookie jar that never stores a cookie, so none is ever sent anywhere. (A jar, not an
    ``httpx.Cookies``: httpx copies the latter into a default jar, dropping the policy.)"""
    return http.cookiejar.CookieJar(
        policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


class _ApiKeyAuth(httpx.Auth):
    """Puts the API key into each request of the API client (the storage client has no auth),
    revealing it only into the request's own headers: ``X-API-Key`` (Comfy Cloud's API), or
    ``Authorization: Bearer`` (Comfy API v2) when the transport's ``bearer`` is set. Only to
    the API's own origin: a request to any other host gets no key."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def auth_flow(self, request: httpx.Request) -> Any:
        key = self._transport.api_key
        if key and _origin(request.url) == self._transport.origin:
            if self._transport.bearer:
                request.headers["Authorization"] = "Bearer " + key.reveal()
            else:
                request.headers["X-API-Key"] = key.reveal()
        yield request

    def __repr__(self) -> str:
        return "<API key auth>"


def _json_body(value: Any) -> bytes:
    """A JSON request body as httpx would encode it, with any Secret in it revealed."""
    return _json.dumps(value, default=reveal_all, ensure_ascii=False, separators=(",", ":"),
                       allow_nan=False).encode("utf-8")


def _origin(url: httpx.URL) -> str:
    """``scheme://host[:port]`` of a URL: no user info, path or query."""
    host = url.host
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{host}{port}"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from (anyio hides the OS error a few levels
    down, e.g. ``ConnectionRefusedError``)."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 16:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


def _reason(exc: httpx.HTTPError) -> str:
    """A short, URL-free description of a network failure (httpx messages are not trusted)."""
    text = str(exc).lower()
    if isinstance(exc, httpx.DecodingError):
        return "the answer could not be decoded"
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, httpx.ReadTimeout):
        return "timed out waiting for the answer"
    if isinstance(exc, httpx.WriteTimeout):
        return "timed out sending the request"
    if isinstance(exc, httpx.PoolTimeout):
        return "timed out waiting for a free connection"
    if isinstance(exc, httpx.ConnectError):
        causes = _causes(exc)
        if "refused" in text or any(isinstance(c, ConnectionRefusedError) for c in causes):
            return "connection refused"
        if any(isinstance(c, socket.gaierror) for c in causes):
            return "the host name could not be resolved"
        if any(s in text for s in ("name or service", "nodename", "getaddrinfo", "resolution")):
            return "the host name could not be resolved"
        if "ssl" in text or "certificate" in text:
            return "the TLS handshake failed"
        return "the connection failed"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "the URL scheme is not supported"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return "the connection broke"
    if isinstance(exc, httpx.WriteError):
        return "the connection broke while sending"
    if isinstance(exc, httpx.ProxyError):
        return "the proxy failed"
    return "the connection failed"


class Transport:
    """HTTP to one ComfyUI or Comfy Cloud server: pooled connections, the API key on API
    requests only, retries with exponential backoff, typed errors, credential-free downloads.

    ``httpx_transport`` is handed to httpx (tests pass ``httpx.MockTransport``); ``sleep``
    replaces ``asyncio.sleep`` for the waits between retries. ``download_timeout`` bounds each
    :meth:`download` as a whole (retries and waits included; None: no bound).
    """

    def __init__(self, base_url: str, *, api_key: str | Secret | None = None,
                 timeout: float = 30.0,
                 retry: RetryPolicy = DEFAULT_RETRY, user_agent: str | None = None,
                 httpx_transport: Any = None,
                 sleep: Callable[[float], Awaitable[None]] | None = None,
                 download_timeout: float | None = DEFAULT_DOWNLOAD_TIMEOUT) -> None:
        try:
            url = httpx.URL(base_url.strip().rstrip("/"))
        except httpx.InvalidURL:
            url = httpx.URL()
        if url.scheme not in ("http", "https") or not url.host:
            raise InvalidURL("base_url must be an http:// or https:// URL with a host")
        if url.query or url.fragment or url.userinfo:
            raise InvalidURL("base_url must not carry credentials, a query string or a "
                             "fragment")
        install_log_redaction()
        self._base_url = str(url).rstrip("/")
        self._origin = _origin(url)
        self._display = self._origin + url.path.rstrip("/")
        self._api_key = Secret.of(api_key, "api_key")
        #: send the key as ``Authorization: Bearer`` (Comfy API v2) instead of ``X-API-Key``
        self.bearer = False
        self._retry = retry
        self._timeout = httpx.Timeout(timeout)
        self._user_agent = user_agent or f"comfy-nb/{package_version()}"
        self._httpx_transport = httpx_transport
        self._sleep: Callable[[float], Awaitable[None]] = (
            sleep if sleep is not None else asyncio.sleep)
        self._rng = random.Random()
        self._client = httpx.AsyncClient(
            timeout=self._timeout, follow_redirects=False, transport=httpx_transport,
            cookies=_no_cookies(), headers={"User-Agent": self._user_agent},
            auth=_ApiKeyAuth(self))
        self._storage: httpx.AsyncClient | None = None
        if download_timeout is not None and not download_timeout > 0:
            raise ValueError("download_timeout must be a positive number of seconds, or None")
        #: seconds a whole :meth:`download` may take (retries included); None: no bound
        self.download_timeout = download_timeout

    # -- public surface --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API's base URL, without a trailing slash."""
        return self._base_url

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` of the API: the only place the key goes."""
        return self._origin

    @property
    def api_key(self) -> Secret | None:
        """The key sent as ``X-API-Key`` on API requests from now on (None: no key)."""
        return self._api_key

    @api_key.setter
    def api_key(self, key: Secret | None) -> None:
        self._api_key = Secret.of(key, "api_key")

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      json: Any = None, files: Any = None, data: Mapping[str, Any] | None = None,
                      retry_unsafe: bool = False, what: str | None = None,
                      ok_statuses: Collection[int] = (),
                      headers: Mapping[str, str] | None = None) -> HttpResponse:
        """Send one API request and read the whole answer.

        Raises a :class:`~comfy_nb.errors.RequestError` subclass for a status >= 400
        not in ``ok_statuses`` and :class:`TransportError` when the server cannot be reached;
        3xx answers are returned as they are. Idempotent methods are retried on network
        failures and 500/502/503/504, other methods only with ``retry_unsafe=True`` (when the
        caller knows a repeat is harmless). Every method is retried when no connection could be
        made (the request never left, :attr:`TransportError.never_sent`) and on 429 (the server
        refused it). ``what`` names the operation in messages (default ``"METHOD path"``). File
        objects in ``files`` are rewound by httpx on a retry; pass bytes for unseekable sources.
        ``json`` may hold :class:`~comfy_nb._secret.Secret` values: they are sent as their value.
        ``headers``: more request headers (never the key: that is the transport's).
        """
        method = method.upper()
        self._check_path(path)
        label = what or f"{method} {path}"
        may_repeat = method in IDEMPOTENT_METHODS or retry_unsafe
        url = self._base_url + path
        sent_headers = dict(headers or {})
        if json is not None:
            sent_headers["Content-Type"] = "application/json"

        async def attempt() -> HttpResponse:
            try:
                response = await self._client.request(
                    method, url, params=params, files=files, data=data,
                    content=None if json is None else _json_body(json),
                    headers=sent_headers or None)
            except (httpx.TransportError, httpx.DecodingError) as exc:
                never_sent = isinstance(exc, NEVER_SENT)
                raise _Failure(self._unreachable(exc, never_sent=never_sent),
                               retryable=may_repeat or never_sent) from None
            log.debug("%s -> %d", label, response.status_code)
            answer = HttpResponse(response.status_code, dict(response.headers.items()),
                                  response.content)
            if answer.status >= 400 and answer.status not in ok_statuses:
                raise self._status_failure(answer.status, answer.content, answer.headers,
                                           label, may_repeat)
            return answer

        return await self._retrying(label, attempt)

    async def download(self, path: str, params: Mapping[str, Any], *, to: Path | None = None,
                       chunk_size: int = 1 << 20) -> bytes | Path:
        """GET a file from the API path (``/view``, ``/api/view``) and return its bytes, or
        write it to ``to`` (atomically, via a hidden ``.part`` file next to it) and return
        ``to``. A redirect (Cloud's signed URL) is fetched with a separate request carrying no
        key, cookie or client header; at most 5 redirects, http(s) only. The body is streamed
        in ``chunk_size`` pieces and checked against ``Content-Length``; a compressed body may
        inflate to at most :data:`MAX_INFLATION` times the bytes received. Retried like a GET,
        all within :attr:`download_timeout` seconds, else :class:`DownloadTimeout` (and nothing
        is left at ``to``).
        """
        self._check_path(path)
        label = f"download {path}"
        target = Path(to) if to is not None else None

        async def attempt() -> bytes | Path:
            if target is None:
                buffer = io.BytesIO()
                await self._fetch(path, params, buffer, label, chunk_size)
                return buffer.getvalue()
            part = target.parent / f".{target.name}.{secrets.token_hex(6)}.part"
            try:
                with open(part, "xb") as sink:
                    await self._fetch(path, params, sink, label, chunk_size)
                os.replace(part, target)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            return target

        limit = self.download_timeout
        if limit is None:
            return await self._retrying(label, attempt)
        try:
            return await asyncio.wait_for(self._retrying(label, attempt), limit)
        except asyncio.TimeoutError:
            raise DownloadTimeout(
                f"{label}: not finished after {limit:g} s, so it was given up (nothing was "
                "saved); the server may be overloaded or the connection slow. A client made "
                "with a larger download_timeout waits longer") from None

    @contextlib.asynccontextmanager
    async def stream_lines(self, path: str, *, headers: Mapping[str, str] | None = None,
                           what: str | None = None,
                           read_timeout: float | None = 60.0) -> AsyncIterator[
                               AsyncIterator[str]]:
        """GET ``path`` as a long-lived stream (Server-Sent Events): yields an iterator of the
        answer's text lines, without their line endings. An error status raises its typed
        error (as :meth:`request`, never retried here); a broken or silent connection
        (nothing for ``read_timeout`` seconds) raises :class:`TransportError` from the
        iteration."""
        self._check_path(path)
        label = what or f"GET {path}"
        timeout = httpx.Timeout(self._timeout.connect, read=read_timeout,
                                write=self._timeout.write, pool=self._timeout.pool)
        try:
            async with self._client.stream("GET", self._base_url + path, headers=headers,
                                           timeout=timeout) as response:
                log.debug("%s -> %d", label, response.status_code)
                if response.status_code >= 400:
                    content = await self._read_capped(response)
                    raise self._status_failure(response.status_code, content,
                                               dict(response.headers.items()), label,
                                               False).error

                async def lines() -> AsyncIterator[str]:
                    try:
                        async for line in response.aiter_lines():
                            yield line.rstrip("\r\n")
                    except (httpx.TransportError, httpx.DecodingError) as exc:
                        raise self._unreachable(exc) from None

                yield lines()
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise self._unreachable(exc, never_sent=isinstance(exc, NEVER_SENT)) from None

    async def aclose(self) -> None:
        """Close the pooled connections (API and storage)."""
        await self._client.aclose()
        if self._storage is not None:
            await self._storage.aclose()

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"<Transport {self._display} api_key={key}>"

    # -- retries ---------------------------------------------------------------------------

    async def _retrying(self, label: str, attempt: Callable[[], Awaitable[T]]) -> T:
        attempts = self._retry.attempts
        for number in range(1, attempts + 1):
            try:
                return await attempt()
            except _Failure as failure:
                if not failure.retryable or number >= attempts:
                    raise failure.error from None
                wait = self._retry.delay(number - 1, failure.retry_after, self._rng)
                log.debug("%s: %s; retry %d of %d in %.2f s", label, failure.error,
                          number, attempts - 1, wait)
                await self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _status_failure(self, status: int, content: bytes, headers: Mapping[str, str],
                        label: str, may_repeat: bool, *, body: Any = None) -> _Failure:
        retry_after = parse_retry_after(headers.get("retry-after"))
        if body is None:
            body = self._redact(body_of(content, headers.get("content-type")))
        error = error_for_status(status, body, retry_after=retry_after, what=label)
        if status == 401 and self.bearer:  # Comfy API v2: its own variables
            error = AuthenticationError(
                f"{label} was refused (401): the API key is missing or wrong. Pass api_key=... "
                "or set COMFY_API_KEY (and COMFY_BASE_URL to this server).", status=status,
                body=body)
        retryable = status == 429 or (may_repeat and status in RETRYABLE_STATUSES)
        return _Failure(error, retryable=retryable, retry_after=retry_after)

    # -- downloads -------------------------------------------------------------------------

    async def _fetch(self, path: str, params: Mapping[str, Any], sink: IO[bytes], label: str,
                     chunk_size: int) -> None:
        """One download attempt: the API request, then any redirect hops, into ``sink``."""
        try:
            async with self._client.stream("GET", self._base_url + path,
                                           params=params) as response:
                log.debug("%s -> %d", label, response.status_code)
                if response.status_code not in REDIRECT_STATUSES:
                    await self._take_body(response, sink, label, chunk_size, storage=False)
                    return
                location = response.headers.get("location")
                current = response.url
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise _Failure(self._unreachable(exc), retryable=True) from None
        for hop in range(1, MAX_REDIRECTS + 1):
            if not location:
                raise _Failure(RequestError(f"{label}: the server answered a redirect without "
                                            "a Location", status=302), retryable=False)
            try:
                target = current.join(location)
            except httpx.InvalidURL:
                target = None
            if target is None or target.scheme not in ("http", "https") or not target.host:
                raise _Failure(TransportError(f"{label}: refused to follow a redirect to a "
                                              "non-http(s) location"), retryable=False)
            log.debug("%s: redirect %d to %s", label, hop, STORAGE)
            try:
                async with self._storage_client().stream("GET", target) as response:
                    log.debug("%s: %s -> %d", label, STORAGE, response.status_code)
                    if response.status_code not in REDIRECT_STATUSES:
                        await self._take_body(response, sink, label, chunk_size, storage=True)
                        return
                    location = response.headers.get("location")
                    current = target
            except (httpx.TransportError, httpx.DecodingError) as exc:
                raise _Failure(TransportError(f"{label}: cannot reach {STORAGE}: "
                                              f"{_reason(exc)}"), retryable=True) from None
        raise _Failure(TransportError(f"{label}: more than {MAX_REDIRECTS} redirects"),
                       retryable=False)

    async def _take_body(self, response: httpx.Response, sink: IO[bytes], label: str,
                         chunk_size: int, *, storage: bool) -> None:
        """Stream a final answer into ``sink``, or turn an error answer into a failure."""
        status = response.status_code
        headers = dict(response.headers.items())
        if status >= 400:
            content = await self._read_capped(response)
            # storage error bodies can echo the signed request: keep only a short code
            body = _storage_code(content) if storage else None
            what = f"{label} (from {STORAGE})" if storage else label
            raise self._status_failure(status, content, headers, what, True, body=body)
        if status != 200:
            raise _Failure(RequestError(f"{label}: unexpected answer ({status})", status=status),
                           retryable=False)
        expected = _content_length(headers)
        where = STORAGE if storage else self._origin
        encoded = headers.get("content-encoding", "identity").strip().lower() != "identity"
        written = 0

        def arrived() -> int:
            """Bytes received: counted on the wire, since the bytes written lag behind by what
            httpx still holds in its chunker (and a compressed body differs anyway); a body
            httpx had whole from the start counts only as written."""
            wire = response.num_bytes_downloaded
            return wire if encoded else max(wire, written)

        try:
            async for chunk in response.aiter_bytes(chunk_size):
                sink.write(chunk)
                written += len(chunk)
                received = response.num_bytes_downloaded
                if encoded and written > max(INFLATION_ALLOWANCE, MAX_INFLATION * received):
                    raise _Failure(TransportError(
                        f"{label}: the compressed answer from {where} inflated to more than "
                        f"{written} bytes from {received}, so it was refused (a compression "
                        "bomb?)"), retryable=False)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            got = arrived()
            of = f" of {expected}" if expected is not None else ""
            raise _Failure(TransportError(
                f"{label}: the download from {where} was cut short after {got}{of} bytes "
                f"({_reason(exc)})"), retryable=True) from None
        # Content-Length counts the bytes on the wire, before any Content-Encoding is undone
        got = arrived()
        if expected is not None and got != expected:
            raise _Failure(TransportError(
                f"{label}: the download from {where} was cut short after {got} of {expected} "
                "bytes"), retryable=True)

    @staticmethod
    async def _read_capped(response: httpx.Response, limit: int = 64 * 1024) -> bytes:
        content = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                content += chunk
                if len(content) >= limit:
                    break
        except httpx.TransportError:
            pass  # the status is what matters; a broken error body is still an error
        return bytes(content[:limit])

    def _storage_client(self) -> httpx.AsyncClient:
        """The header-less client for redirect targets: no key, no cookies, no auth, no
        User-Agent of ours, never following redirects by itself."""
        if self._storage is None:
            self._storage = httpx.AsyncClient(
                timeout=self._timeout, follow_redirects=False, transport=self._httpx_transport,
                cookies=_no_cookies())
        return self._storage

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _check_path(path: str) -> None:
        if not path.startswith("/") or path.startswith("//"):
            raise ValueError("path must be an absolute path on the API server, like '/prompt'")
        if "?" in path or "#" in path:
            raise ValueError("pass query parameters with params=..., not in the path")

    def _unreachable(self, exc: httpx.HTTPError, *, never_sent: bool = False) -> TransportError:
        return TransportError(f"cannot reach {self._origin}: {_reason(exc)}",
                              never_sent=never_sent)

    def _redact(self, value: Any) -> Any:
        """``value`` with the API key replaced wherever a server echoed it."""
        if not self._api_key:
            return value
        if isinstance(value, str):
            return value.replace(self._api_key.reveal(), "***")
        if isinstance(value, dict):
            return {self._redact(k): self._redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redact(item) for item in value]
        return value


def _content_length(headers: Mapping[str, str]) -> int | None:
    try:
        length = int(headers["content-length"])
    except (KeyError, ValueError):
        return None
    return length if length >= 0 else None


def _storage_code(content: bytes) -> str:
    """The ``<Code>`` of a storage (GCS-style XML) error body, or an empty string."""
    text = content.decode("utf-8", errors="replace")
    start = text.find("<Code>")
    end = text.find("</Code>", start)
    if start < 0 or end < 0:
        return ""
    code = text[start + len("<Code>"):end].strip()
    return code if code.isascii() and code.isalnum() and len(code) <= 64 else ""

"""Where the server and the key come from: explicit arguments, then the environment
(``COMFY_URL``; ``COMFY_CLOUD_API_KEY`` meaning Comfy Cloud), then a local ComfyUI at
``http://127.0.0.1:8188`` if it answers quickly, else the embedded emulator.

It decides; it never keeps or prints a key.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.parse
from dataclasses import dataclass, field

from .client._errors import InvalidURL

CLOUD_URL = "https://cloud.comfy.org"
LOCAL_URL = "http://127.0.0.1:8188"
URL_VARIABLE = "COMFY_URL"
KEY_VARIABLE = "COMFY_CLOUD_API_KEY"
# set in every mybinder.org session
BINDER_VARIABLES = ("BINDER_LAUNCH_HOST", "BINDER_REPO_URL", "BINDER_REQUEST")


@dataclass(frozen=True)
class Target:
    """The resolved server: a URL (None = start the embedded emulator) and its key."""

    url: str | None
    api_key: str | None = field(default=None, repr=False)
    source: str = ""  # "argument", "environment", "local server", "emulator"


def on_binder() -> bool:
    """Whether this process runs on mybinder.org: a public session, where nobody should type a
    key."""
    return any(os.environ.get(name) for name in BINDER_VARIABLES)


def normalize_url(url: str) -> str:
    """``url`` as ``scheme://host[:port][/path]`` (``"cloud"`` means Comfy Cloud, a bare
    ``host:port`` means http). Raises :class:`InvalidURL` for anything that is not the address
    of a server, or that carries credentials.

    A ``?query`` or ``#fragment`` is refused, not dropped: the URL is a base that API paths
    (``/api/prompt``, ``/ws``) are appended to, so a query could only ride along on some requests
    or end up inside a path, and a fragment is never sent at all. Whatever it was meant to carry
    (a key, a token) would silently be lost; the error says where such things go instead."""
    if not isinstance(url, str):
        raise TypeError("the server URL must be a string, like 'http://127.0.0.1:8188' or "
                        f"'cloud' (got {type(url).__name__})")
    url = url.strip()
    if not url:
        raise InvalidURL("the server URL is empty: give one like 'http://127.0.0.1:8188' or "
                         "'cloud', or leave it out to use COMFY_URL, a local server or the "
                         "emulator")
    if url.lower() == "cloud":
        return CLOUD_URL
    if "://" not in url:
        url = "http://" + url
    if "@" in re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[0]:
        raise InvalidURL("put credentials in api_key=..., not in the URL")
    try:
        parsed = urllib.parse.urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket
        raise InvalidURL(f"{_shown(url)!r} is not a valid URL (an IPv6 address goes in "
                         "brackets, as in http://[::1]:8188)") from None
    host = parsed.hostname
    if parsed.scheme not in ("http", "https") or not host:
        raise InvalidURL(f"not a server URL: {_shown(url)!r} (expected e.g. "
                         "http://127.0.0.1:8188)")
    if any(c.isspace() or c in _BAD_HOST_CHARACTERS for c in host):
        raise InvalidURL(f"{_shown(url)!r} has an invalid host name")
    try:
        port = parsed.port
    except ValueError:
        port = 0
    if port is not None and not 1 <= port <= 65535:
        raise InvalidURL(f"{_shown(url)!r} has an invalid port: use a number from 1 to 65535")
    base = f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"
    if "?" in url or "#" in url:
        raise InvalidURL(f"a server URL cannot carry a ?query or #fragment (it is the base every "
                         f"API path is added to): use {_shown(base)!r}, and pass a key with "
                         "api_key=... or COMFY_CLOUD_API_KEY")
    return base


_BAD_HOST_CHARACTERS = frozenset('<>"{}|\\^`')


def _shown(url: str) -> str:
    """``url`` as it may appear in a message: without user info, query or fragment, and
    shortened."""
    text = re.split(r"[?#]", url, maxsplit=1)[0]
    scheme, separator, rest = text.partition("://")
    if not separator:
        scheme, rest = "", text
    authority, slash, path = rest.partition("/")
    shown = f"{scheme}{separator}{authority.rpartition('@')[2]}{slash}{path}"
    return shown if len(shown) <= 80 else shown[:77] + "..."


def url_argument(url: object) -> str | None:
    """A ``url`` argument normalized (None when not given); raises ``TypeError`` or
    :class:`InvalidURL` before anything is connected to or read from the environment. An empty
    string is an error, not "not given": finding some other server instead of the one meant
    would be a silent surprise."""
    if url is None:
        return None
    return normalize_url(url)  # type: ignore[arg-type]  # it explains a wrong type


def answers_quickly(url: str, timeout: float = 0.3) -> bool:
    """Whether something accepts TCP connections at ``url``'s host and port."""
    parsed = urllib.parse.urlsplit(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve(url: str | None = None, api_key: str | None = None) -> Target:
    """Pick the server by the documented order. URLs are checked before any key is read, so
    the error of a malformed one never comes from a frame holding a key."""
    explicit = url_argument(url)
    if api_key is not None and not isinstance(api_key, str):
        raise TypeError(f"api_key must be a string (got {type(api_key).__name__})")
    if explicit:
        return Target(explicit, api_key or os.environ.get(KEY_VARIABLE) or None, "argument")
    if api_key:
        return Target(CLOUD_URL, api_key, "argument")
    env_url = os.environ.get(URL_VARIABLE)
    if env_url:
        try:
            normalized = normalize_url(env_url)
        except InvalidURL as exc:
            raise InvalidURL(f"{URL_VARIABLE}: {exc}") from None
        return Target(normalized, os.environ.get(KEY_VARIABLE) or None, "environment")
    key = os.environ.get(KEY_VARIABLE) or None
    if key:
        return Target(CLOUD_URL, key, "environment")
    if answers_quickly(LOCAL_URL):
        return Target(LOCAL_URL, None, "local server")
    return Target(None, None, "emulator")

"""Where the server and the key come from, and where the key may go.

The server: an explicit argument, then the environment (``COMFY_URL``, ``COMFY_BASE_URL``;
``COMFY_CLOUD_API_KEY`` or ``COMFY_API_KEY`` meaning Comfy Cloud), then a local ComfyUI at
``http://127.0.0.1:8188`` if it answers quickly (``COMFY_NB_LOCAL_URL`` names another address,
or ``off``), else the embedded emulator. The word
``emulator`` in place of a URL always means the embedded emulator; ``cloud`` means Comfy Cloud
(``COMFY_NB_CLOUD_URL`` moves it, e.g. to a staging deployment). ``dialect="cloud"`` never
resolves to a local server: without a key it is the emulator of Comfy Cloud.

The key: one passed with ``api_key=`` goes to the server it was passed for; one from
``COMFY_CLOUD_API_KEY`` goes to the Comfy Cloud origin only. Comfy API v2 has the official SDK's
variables: ``COMFY_BASE_URL`` names a v2 server (after ``COMFY_URL`` in the order above), and
``COMFY_API_KEY`` goes to the origin of ``COMFY_BASE_URL`` only (Comfy Cloud when it is unset).
The client adds a key only once the server has shown that it speaks the Cloud API or Comfy API
v2 (see :class:`Target`); on v2 only as ``Authorization: Bearer``.

It decides; it never keeps or prints a key (keys travel as :class:`~comfy_nb._secret.Secret`).
"""

from __future__ import annotations

import os
import re
import socket
import urllib.parse
from dataclasses import dataclass, field

from ._secret import Secret
from .errors import InvalidURL

CLOUD_URL = "https://cloud.comfy.org"
LOCAL_URL = "http://127.0.0.1:8188"
EMULATOR = "emulator"  # in place of a URL: the embedded emulator
URL_VARIABLE = "COMFY_URL"
KEY_VARIABLE = "COMFY_CLOUD_API_KEY"
V2_URL_VARIABLE = "COMFY_BASE_URL"  # the official v2 SDK's: a v2 server
V2_KEY_VARIABLE = "COMFY_API_KEY"  # the official v2 SDK's: the key for COMFY_BASE_URL's origin
CLOUD_URL_VARIABLE = "COMFY_NB_CLOUD_URL"  # where "cloud" and COMFY_CLOUD_API_KEY point
LOCAL_URL_VARIABLE = "COMFY_NB_LOCAL_URL"  # the address probed for a running ComfyUI, or "off"
# set in every mybinder.org session
BINDER_VARIABLES = ("BINDER_LAUNCH_HOST", "BINDER_REPO_URL", "BINDER_REQUEST")


@dataclass(frozen=True)
class Target:
    """The resolved server: a URL (None = start the embedded emulator) and the key that may be
    sent to it once it shows that it speaks the Cloud API (None: no key goes there).

    ``source`` says how the server was chosen (``"argument"``, ``"environment"``,
    ``"local server"``, ``"emulator"``); ``key_withheld`` that ``COMFY_CLOUD_API_KEY`` is set
    but is not for this server (it is not Comfy Cloud)."""

    url: str | None
    api_key: Secret | None = field(default=None, repr=False)
    source: str = ""
    key_withheld: bool = False


def cloud_url() -> str:
    """The Comfy Cloud base URL: ``COMFY_NB_CLOUD_URL`` if set, else https://cloud.comfy.org."""
    configured = os.environ.get(CLOUD_URL_VARIABLE, "").strip()
    if not configured:
        return CLOUD_URL
    try:
        return _server_url(configured)
    except InvalidURL as exc:
        raise InvalidURL(f"{CLOUD_URL_VARIABLE}: {exc}") from None


def local_url() -> str | None:
    """The address probed for a running ComfyUI: ``COMFY_NB_LOCAL_URL`` if set (``off``:
    none), else http://127.0.0.1:8188."""
    configured = os.environ.get(LOCAL_URL_VARIABLE, "").strip()
    if not configured:
        return LOCAL_URL
    if configured.lower() in ("off", "none", "no", "0", "false"):
        return None
    try:
        return _server_url(configured)
    except InvalidURL as exc:
        raise InvalidURL(f"{LOCAL_URL_VARIABLE}: {exc}") from None


def is_cloud(url: str) -> bool:
    """Whether ``url`` is on the Comfy Cloud origin (scheme, host and port of
    :func:`cloud_url`), the only place a key from the environment goes."""
    return _origin(url) == _origin(cloud_url())


def _origin(url: str) -> tuple[str, str, int]:
    parsed = urllib.parse.urlsplit(url)
    try:
        port = parsed.port
    except ValueError:
        port = None
    scheme = parsed.scheme.lower()
    return scheme, (parsed.hostname or "").lower(), port or (443 if scheme == "https" else 80)


def on_binder() -> bool:
    """Whether this process runs on mybinder.org: a public session, where nobody should type a
    key."""
    return any(os.environ.get(name) for name in BINDER_VARIABLES)


def normalize_url(url: str) -> str:
    """``url`` as ``scheme://host[:port][/path]`` (``"cloud"`` means Comfy Cloud, a bare
    ``host:port`` means http), or :data:`EMULATOR` for ``"emulator"``. Raises
    :class:`InvalidURL` for anything that is not the address of a server, or that carries
    credentials.

    A ``?query`` or ``#fragment`` is refused, not dropped: the URL is a base that API paths
    (``/api/prompt``, ``/ws``) are appended to, so a query could only ride along on some requests
    or end up inside a path, and a fragment is never sent at all. Whatever it was meant to carry
    (a key, a token) would silently be lost; the error says where such things go instead."""
    if not isinstance(url, str):
        raise TypeError("the server URL must be a string, like 'http://127.0.0.1:8188', "
                        f"'cloud' or 'emulator' (got {type(url).__name__})")
    url = url.strip()
    if not url:
        raise InvalidURL("the server URL is empty: give one like 'http://127.0.0.1:8188' or "
                         "'cloud', or leave it out to use COMFY_URL, a local server or the "
                         "emulator")
    if url.lower() == "cloud":
        return cloud_url()
    if url.lower() == EMULATOR:
        return EMULATOR
    return _server_url(url)


def _server_url(url: str) -> str:
    """:func:`normalize_url` of an address (not a word such as ``cloud``)."""
    url = url.strip()
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


def resolve(url: str | None = None, api_key: str | Secret | None = None,
            dialect: str | None = None) -> Target:
    """Pick the server by the documented order, and the key that may go to it. URLs are
    checked before any key is read, so the error of a malformed one never comes from a frame
    holding a key; a key is a :class:`Secret` from here on."""
    explicit = url_argument(url)
    api_key = Secret.of(api_key, "api_key")
    if explicit == EMULATOR:
        return Target(None, None, "argument")
    if explicit:
        return _with_key(explicit, api_key, "argument")
    if api_key:
        return Target(cloud_url(), api_key, "argument")
    env_url = os.environ.get(URL_VARIABLE, "").strip()
    if env_url:
        try:
            normalized = normalize_url(env_url)
        except InvalidURL as exc:
            raise InvalidURL(f"{URL_VARIABLE}: {exc}") from None
        if normalized == EMULATOR:
            return Target(None, None, "environment")
        return _with_key(normalized, None, "environment")
    v2_url = v2_base_url()
    if os.environ.get(V2_URL_VARIABLE, "").strip():
        return _with_key(v2_url, None, "environment")
    if os.environ.get(KEY_VARIABLE) or os.environ.get(V2_KEY_VARIABLE):
        return _with_key(cloud_url(), None, "environment")
    if dialect == "cloud":  # never a local server: without a key, the Cloud emulator
        return Target(None, None, "emulator")
    local = local_url()
    if local is not None and answers_quickly(local):
        return _with_key(local, None, "local server")
    return Target(None, None, "emulator")


def v2_base_url() -> str:
    """Where ``COMFY_API_KEY`` may go: ``COMFY_BASE_URL`` if set, else Comfy Cloud."""
    configured = os.environ.get(V2_URL_VARIABLE, "").strip()
    if not configured:
        return cloud_url()
    try:
        return _server_url(configured)
    except InvalidURL as exc:
        raise InvalidURL(f"{V2_URL_VARIABLE}: {exc}") from None


def _with_key(url: str, given: Secret | None, source: str) -> Target:
    """The target ``url`` with the key that may go there: ``given`` (passed for it), else the
    environment's key for its origin: ``COMFY_CLOUD_API_KEY`` if ``url`` is Comfy Cloud, else
    ``COMFY_API_KEY`` if ``url`` is on the origin of ``COMFY_BASE_URL`` (Comfy Cloud when
    unset)."""
    if given:
        return Target(url, given, source)
    cloud_key = os.environ.get(KEY_VARIABLE)
    v2_key = os.environ.get(V2_KEY_VARIABLE)
    if cloud_key and is_cloud(url):
        return Target(url, Secret(cloud_key), source)
    if v2_key and _origin(url) == _origin(v2_base_url()):
        return Target(url, Secret(v2_key), source)
    return Target(url, None, source, key_withheld=bool(cloud_key or v2_key))

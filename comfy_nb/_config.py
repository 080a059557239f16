"""Where the server and the key come from: explicit arguments, then the environment
(``COMFY_URL``; ``COMFY_CLOUD_API_KEY`` meaning Comfy Cloud), then a local ComfyUI at
``http://127.0.0.1:8188`` if it answers quickly, else the embedded emulator.

It decides; it never keeps or prints a key.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from dataclasses import dataclass, field

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
    url = url.strip()
    if url.lower() == "cloud":
        return CLOUD_URL
    if "://" not in url:
        url = "http://" + url
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"not a server URL: {url!r} (expected e.g. http://127.0.0.1:8188)")
    if parsed.username or parsed.password:
        raise ValueError("put credentials in api_key=..., not in the URL")
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"


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
    """Pick the server by the documented order."""
    key = api_key or os.environ.get(KEY_VARIABLE) or None
    if url:
        return Target(normalize_url(url), key, "argument")
    if api_key:
        return Target(CLOUD_URL, api_key, "argument")
    env_url = os.environ.get(URL_VARIABLE)
    if env_url:
        return Target(normalize_url(env_url), key, "environment")
    if key:
        return Target(CLOUD_URL, key, "environment")
    if answers_quickly(LOCAL_URL):
        return Target(LOCAL_URL, None, "local server")
    return Target(None, None, "emulator")

"""Connecting: :func:`connect`, which picks what a ``url`` argument (or ``COMFY_URL``) names
-- one server, several (a pool), Comfy Cloud or the embedded emulator -- and returns the
connected synchronous client for it.

Must not: talk to a server itself (the clients it makes do).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._config import URL_VARIABLE
from .._secret import Secret
from ._backoff import RetryPolicy
from ._client import Client
from ._transport import DEFAULT_DOWNLOAD_TIMEOUT

if TYPE_CHECKING:
    from ..cache import ResultCache

__all__ = ["connect"]


def connect(
    url: str | list[str] | tuple[str, ...] | None = None,
    *,
    api_key: str | Secret | Mapping[str, str | Secret | None] | None = None,
    dialect: str | None = None,
    websocket: bool = True,
    timeout: float = 30.0,
    connect_timeout: float = 10.0,
    retry: RetryPolicy | None = None,
    poll_interval: float = 1.0,
    cache_dir: str | Path | None = None,
    client_id: str | None = None,
    emulator_options: dict[str, Any] | None = None,
    result_cache: ResultCache | None = None,
    download_timeout: float | None = DEFAULT_DOWNLOAD_TIMEOUT,
    capacity: Mapping[str, int] | None = None,
) -> Client:
    """A connected :class:`Client`. ``url`` is a server URL, ``"cloud"`` (Comfy Cloud) or
    ``"emulator"`` (the embedded emulator, whatever else runs). Without it: ``COMFY_URL`` /
    ``COMFY_CLOUD_API_KEY``, then a local ComfyUI at 127.0.0.1:8188 (``COMFY_NB_LOCAL_URL``), then
    the embedded emulator (with a notice); with ``dialect="cloud"`` never a local server, but
    Comfy Cloud with a key and the emulator of Comfy Cloud without one. The other arguments are
    :class:`AsyncClient`'s.

    ``api_key`` goes to the server it is passed for; ``COMFY_CLOUD_API_KEY`` goes only to Comfy
    Cloud, ``COMFY_API_KEY`` only to the origin of ``COMFY_BASE_URL``. A key is sent only once
    the server has shown that it speaks the Cloud API, or Comfy API v2 (``dialect="v2"``, found
    by ``GET /api/v2/health``; the key then goes as ``Authorization: Bearer``).

    Several servers (a list, or a string with commas, also in ``COMFY_URL``) make a
    :class:`~comfy_nb.client._pool.Pool`: one client with the same methods, each run going to
    the server that will start it soonest (one ``api_key`` then goes only to the one
    ``"cloud"``; ``api_key={url: key}`` gives each member its own; ``capacity={url: n}`` says
    how many jobs a member runs at once, and means nothing for one server)."""
    # from here on no frame holds a key in the clear
    keys = {name: Secret.of(key, "api_key") for name, key in api_key.items()} \
        if isinstance(api_key, Mapping) else None
    key = None if isinstance(api_key, Mapping) else Secret.of(api_key, "api_key")
    del api_key
    from ._pool import Pool, pool_urls

    urls = pool_urls(url if url is not None else os.environ.get(URL_VARIABLE))
    if urls is not None and len(urls) > 1:
        return Pool(urls, api_key=keys if keys is not None else key, dialect=dialect,
                    websocket=websocket, timeout=timeout, connect_timeout=connect_timeout,
                    retry=retry, poll_interval=poll_interval, cache_dir=cache_dir,
                    client_id=client_id, emulator_options=emulator_options,
                    result_cache=result_cache, download_timeout=download_timeout,
                    capacity=capacity)
    if isinstance(url, (list, tuple)):  # one server in a list: a client of it
        url = urls[0] if urls else None
    if keys is not None:  # keys by server, for one server: its own
        if url is None or set(keys) - {url}:
            raise ValueError("api_key={url: key} names servers that are not the one connected "
                             f"to ({url or 'none named'}): {sorted(set(keys) - {url or ''})}")
        key = keys.get(url)
    return Client(url, api_key=key, dialect=dialect, websocket=websocket, timeout=timeout,
                  connect_timeout=connect_timeout, retry=retry, poll_interval=poll_interval,
                  cache_dir=cache_dir, client_id=client_id, emulator_options=emulator_options,
                  result_cache=result_cache, download_timeout=download_timeout)

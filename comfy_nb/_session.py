"""Which client a call without ``client=`` uses: the notebook session's, else a shared one.

Owns: finding the client of the notebook session (``%load_ext comfy_nb`` keeps it on the shell)
and the one process-wide :func:`comfy_nb.connect` client that sweeps and workflow functions share
when there is no session. Must not: import IPython unless it is already loaded, or the client
before a client is asked for.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .client._client import Client

__all__ = ["session_client", "shared_client"]

_shared: Client | None = None
_lock = threading.Lock()


def session_client() -> Client | None:
    """The client of the notebook session (``%load_ext comfy_nb``), connecting it if needed;
    None outside IPython or without the extension."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    shell = get_ipython()
    magics = getattr(shell, "_comfy_nb_magics", None) if shell is not None else None
    if magics is None:
        return None
    client: Client = magics.session_client()
    return client


def shared_client() -> Client:
    """The notebook session's client, else one :func:`comfy_nb.connect` client shared by the
    whole process (made on first use, and again once it was closed)."""
    global _shared
    session = session_client()
    if session is not None:
        return session
    with _lock:
        if _shared is None or _shared.loop.closed:
            from .client._connect import connect

            _shared = connect()
        return _shared

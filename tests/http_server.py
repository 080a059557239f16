"""A plain HTTP server for tests that need something other than ComfyUI on a port."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def http_server(handler: Any) -> Iterator[str]:
    """An ``http.server`` with ``handler`` on 127.0.0.1 (any port), stopped on exit; yields its
    URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)

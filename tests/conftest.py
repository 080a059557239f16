"""Settings for the whole test session, for this process and every kernel or subprocess it
starts (they inherit the environment):

- the result cache (comfy_nb.cache) is off and points at a throw-away folder, so one test's run
  never comes back from another test's cache, nor from the user's (tests/test_cache.py turns it
  on explicitly, with its own folders);
- the tests are hermetic: nothing is probed on 127.0.0.1:8188 (``COMFY_NB_LOCAL_URL=off``; tests
  of that discovery point it at a server they started), "cloud" names an address that can never
  resolve (``COMFY_NB_CLOUD_URL``; tests of Cloud point it at a Cloud-dialect emulator), and the
  user's own ``COMFY_URL`` and ``COMFY_CLOUD_API_KEY`` are not seen;
- Ctrl+C works as in a terminal or in a kernel running a cell: SIGINT raises KeyboardInterrupt
  in the main thread, and the subprocesses the tests start (the CLI) get SIGINT's default. A
  run started in the background by a shell without job control (``pytest ... &`` in a script)
  inherits SIGINT ignored, and then ``_thread.interrupt_main()`` (the tests' Ctrl+C) does
  nothing at all.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from typing import Any

import pytest

_FOLDER = tempfile.mkdtemp(prefix="comfy-nb-test-cache-")
UNREACHABLE_CLOUD = "https://comfy-cloud.invalid"  # RFC 2606: .invalid never resolves
_SIGINT_BEFORE: list[Any] = []  # the SIGINT handler to put back, when it was changed


def pytest_configure(config: pytest.Config) -> None:
    os.environ["COMFY_NB_CACHE"] = "off"
    os.environ["COMFY_NB_CACHE_DIR"] = _FOLDER
    os.environ["COMFY_NB_LOCAL_URL"] = "off"
    os.environ["COMFY_NB_CLOUD_URL"] = UNREACHABLE_CLOUD
    for name in ("COMFY_URL", "COMFY_CLOUD_API_KEY"):
        os.environ.pop(name, None)
    handler = signal.getsignal(signal.SIGINT)
    if handler in (signal.SIG_IGN, signal.SIG_DFL):
        _SIGINT_BEFORE.append(handler)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_FOLDER, ignore_errors=True)
    if _SIGINT_BEFORE:
        signal.signal(signal.SIGINT, _SIGINT_BEFORE.pop())

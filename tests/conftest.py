"""Settings for the whole test session, for this process and every kernel or subprocess it
starts (they inherit the environment):

- the result cache (comfy_nb.cache) is off and points at a throw-away folder, so one test's run
  never comes back from another test's cache, nor from the user's (tests/test_cache.py turns it
  on explicitly, with its own folders);
- the tests are hermetic: nothing is probed on 127.0.0.1:8188 (``COMFY_NB_LOCAL_URL=off``; tests
  of that discovery point it at a server they started), "cloud" names an address that can never
  resolve (``COMFY_NB_CLOUD_URL``; tests of Cloud point it at a Cloud-dialect emulator), and the
  user's own ``COMFY_URL`` and ``COMFY_CLOUD_API_KEY`` are not seen.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_FOLDER = tempfile.mkdtemp(prefix="comfy-nb-test-cache-")
UNREACHABLE_CLOUD = "https://comfy-cloud.invalid"  # RFC 2606: .invalid never resolves


def pytest_configure(config: pytest.Config) -> None:
    os.environ["COMFY_NB_CACHE"] = "off"
    os.environ["COMFY_NB_CACHE_DIR"] = _FOLDER
    os.environ["COMFY_NB_LOCAL_URL"] = "off"
    os.environ["COMFY_NB_CLOUD_URL"] = UNREACHABLE_CLOUD
    for name in ("COMFY_URL", "COMFY_CLOUD_API_KEY"):
        os.environ.pop(name, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_FOLDER, ignore_errors=True)

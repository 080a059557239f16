"""comfy_nb's own version, read from the installed package's metadata once per process (parsing
the metadata costs a millisecond or so, and cache entries, recordings, provenance records and the
User-Agent header all name it). A source tree that was never installed calls itself 0.0.0."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def package_version() -> str:
    """The version of the installed ``comfy-nb`` distribution, or ``"0.0.0"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("comfy-nb")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0.0.0"

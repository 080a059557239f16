"""The real Comfy API v2 for the tests of this folder: the vendor's ``comfy-api-proxy`` in front
of the local-dialect emulator, one pair per module (``v2``), or per test (``fresh_v2``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from comfy_nb.emulator import RunningEmulator, serve

from ..v2_proxy import RunningProxy, serve_proxy


@dataclass(frozen=True)
class V2Server:
    """A comfy-api-proxy (``proxy``) over a local emulator (``emulator``)."""

    proxy: RunningProxy
    emulator: RunningEmulator

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def token(self) -> str:
        return self.proxy.token


@contextlib.contextmanager
def v2_server(**options: object) -> Iterator[V2Server]:
    with serve("local", **options) as emulator, serve_proxy(str(emulator.url)) as proxy:
        yield V2Server(proxy, emulator)


@pytest.fixture(scope="module")
def v2() -> Iterator[V2Server]:
    with v2_server(step_delay=0.05) as server:
        yield server


@pytest.fixture
def fresh_v2() -> Iterator[V2Server]:
    with v2_server(step_delay=0.05) as server:
        yield server

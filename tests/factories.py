"""The emulators and clients a test starts, behind the factory fixtures of tests/conftest.py:
``emulators`` / ``module_emulators`` (:class:`Emulators`) and ``clients`` / ``module_clients``
(:class:`Clients`). The fixture that made a factory stops or closes everything it made, after
the test or after the module::

    @pytest.fixture(scope="module")
    def emulator(module_emulators: Emulators) -> RunningEmulator:
        return module_emulators(step_delay=0.02)

    async def test_something(emulators: Emulators, clients: Clients) -> None:
        api = await clients.api("async", emulators("cloud"), poll_interval=0.1)
"""

from __future__ import annotations

import contextlib
from typing import Any

import comfy_nb
from comfy_nb.emulator import RunningEmulator, serve

from .both_clients import Api, make_client


class Emulators:
    """``emulators(dialect="local", **options)`` starts an emulator (the arguments of
    :func:`~comfy_nb.emulator.serve`: ``step_delay``, ``faults``, ``api_key``...) on a free
    loopback port; all are stopped when the fixture that made this ends."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack

    def __call__(self, dialect: str = "local", **options: Any) -> RunningEmulator:
        return self._stack.enter_context(serve(dialect, **options))


class Clients:
    """Clients of an emulator, given its key (``api_key`` in ``options`` replaces it) and
    reaching it at its URL or at ``url`` (a proxy in front of it); all are closed when the
    fixture that made this ends, before the emulators it started earlier stop.

    - ``clients.connect(server, **options)``: a connected :class:`comfy_nb.Client`;
    - ``await clients.api(mode, server, **options)``: an :class:`~tests.both_clients.Api` of a
      ``"sync"`` or ``"async"`` client (function scope only: async clients need the test's loop).
    """

    def __init__(self) -> None:
        self._made: list[Api] = []

    def connect(self, server: RunningEmulator, *, url: str | None = None,
                **options: Any) -> comfy_nb.Client:
        options = {"api_key": server.api_key, **options}
        client = comfy_nb.connect(url or server.url, **options)
        self._made.append(Api("sync", client, server))
        return client

    async def api(self, mode: str, server: RunningEmulator, *, url: str | None = None,
                  **options: Any) -> Api:
        options = {"api_key": server.api_key, **options}
        self._made.append(Api(mode, await make_client(mode, url or server.url, **options), server))
        return self._made[-1]

    async def aclose(self) -> None:
        """Close every client made, the last first."""
        while self._made:
            await self._made.pop().close()

    def close(self) -> None:
        """Close every synchronous client made, the last first; async clients need
        :meth:`aclose`, in their event loop."""
        left = [api for api in self._made if not api.sync]
        while self._made:
            api = self._made.pop()
            if api.sync:
                api.client.close()
        if left:
            raise RuntimeError(f"{len(left)} async client(s) left open: close them with aclose()")

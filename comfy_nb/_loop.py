"""One asyncio event loop on a background thread, so synchronous code (notebook cells, scripts,
even code already inside a running event loop) can run the async client without
``nest_asyncio`` and without "event loop is already running" errors."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
INTERRUPT_CHECK = 0.1  # seconds between checks for Ctrl+C while a synchronous call waits


class LoopThread:
    """A daemon thread running an event loop until :meth:`close`."""

    def __init__(self, name: str = "comfy-nb-client") -> None:
        self.loop = asyncio.new_event_loop()
        self.closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self.closed or self.loop.is_closed():
            coroutine.close()
            raise RuntimeError("this client is closed; create a new one")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and wait for its result (any thread but the loop's)."""
        if self.in_loop_thread:
            coroutine.close()
            raise RuntimeError("a synchronous comfy_nb call was made from one of its own "
                               "callbacks; use the AsyncClient there instead")
        future = self.submit(coroutine)
        try:
            return self.wait(future, timeout)
        except (KeyboardInterrupt, concurrent.futures.TimeoutError):
            future.cancel()
            raise

    @staticmethod
    def wait(future: concurrent.futures.Future[T], timeout: float | None = None) -> T:
        """``future.result(timeout)``, waiting in slices of :data:`INTERRUPT_CHECK` seconds so
        that Ctrl+C is seen even where no signal wakes a blocking wait (IPython's interrupt on
        Windows)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = INTERRUPT_CHECK if deadline is None else deadline - time.monotonic()
            if concurrent.futures.wait([future], max(0.0, min(left, INTERRUPT_CHECK))).done:
                return future.result()
            if deadline is not None and time.monotonic() >= deadline:
                raise concurrent.futures.TimeoutError()

    def close(self) -> None:
        if self.closed:
            return
        if self.in_loop_thread:
            raise RuntimeError("cannot close the client from inside its own callbacks")
        self.closed = True

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()
            # the executor's threads (DNS lookups, to_thread) must not outlive the client
            await self.loop.shutdown_default_executor()

        if self.loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(10)
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(10)
        if not self.loop.is_running():
            self.loop.close()

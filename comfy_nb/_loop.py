"""One asyncio event loop on a background thread, so synchronous code (notebook cells, scripts,
even code already inside a running event loop) can run the async client without
``nest_asyncio`` and without "event loop is already running" errors."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
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

    def submit(self, coroutine: Coroutine[Any, Any, T],
               future: concurrent.futures.Future[T] | None = None
               ) -> concurrent.futures.Future[T]:
        """Schedule ``coroutine`` on the loop. ``future`` (a new one unless given) gets its
        outcome; cancelling ``future`` cancels the coroutine, or keeps it from ever starting.

        Where Ctrl+C must cancel the coroutine, make the future first and call this inside the
        ``try``: the interrupt can land while this call is still scheduling, when the coroutine
        may have started already but no returned future is stored anywhere yet."""
        if future is None:
            future = concurrent.futures.Future()
        if self.closed or self.loop.is_closed():
            coroutine.close()
            raise RuntimeError("this client is closed; create a new one")
        # whoever takes it first owns the coroutine: the loop starting it, or this call giving
        # it up when interrupted before it knows whether the loop will
        claim = threading.Lock()
        try:
            self.loop.call_soon_threadsafe(self._start, coroutine, future, claim)
        except BaseException:
            if claim.acquire(blocking=False):
                coroutine.close()
            raise
        return future

    def _start(self, coroutine: Coroutine[Any, Any, T], future: concurrent.futures.Future[T],
               claim: threading.Lock) -> None:
        if not claim.acquire(blocking=False):  # given up by submit()
            return
        if future.cancelled():  # interrupted before the loop got to it
            coroutine.close()
            return
        task = self.loop.create_task(coroutine)
        task.add_done_callback(functools.partial(_settle, future))

        def cancel_task(done: concurrent.futures.Future[T]) -> None:
            if done.cancelled() and not self.loop.is_closed():
                self.loop.call_soon_threadsafe(task.cancel)

        future.add_done_callback(cancel_task)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and wait for its result (any thread but the loop's).
        Ctrl+C or ``timeout`` cancels it, wherever the interrupt lands."""
        if self.in_loop_thread:
            coroutine.close()
            raise RuntimeError("a synchronous comfy_nb call was made from one of its own "
                               "callbacks; use the AsyncClient there instead")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            self.submit(coroutine, future)
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


def _settle(future: concurrent.futures.Future[T], task: asyncio.Task[T]) -> None:
    """Give ``future`` the outcome of ``task`` (unless it was cancelled meanwhile)."""
    if task.cancelled():
        future.cancel()
    if not future.set_running_or_notify_cancel():
        return
    error = task.exception()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(task.result())

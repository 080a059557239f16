"""Pressing Ctrl+C in a test as the kernel's stop button does (``_thread.interrupt_main()``):
from another thread, at a moment the test names by what the main thread is doing, never by a
delay. A delay fires too early on a loaded machine (the KeyboardInterrupt lands outside the
code under test, or outside ``pytest.raises``) or too late."""

from __future__ import annotations

import _thread
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

WAIT = 60.0  # a safety net against hangs, never asserted on


def main_thread_is_in(*functions: Callable[..., Any]) -> bool:
    """Whether the main thread is running (or blocked in) one of ``functions`` now."""
    codes = {function.__code__ for function in functions}
    frame = sys._current_frames().get(threading.main_thread().ident or 0)
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


def press_ctrl_c_when(condition: Callable[[], bool]) -> threading.Thread:
    """Press Ctrl+C once ``condition()`` holds (checked from a daemon thread every 10 ms, for
    at most :data:`WAIT` seconds)."""

    def watch() -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if condition():
                _thread.interrupt_main()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, name="ctrl-c", daemon=True)
    thread.start()
    return thread


def press_ctrl_c_while_in(*functions: Callable[..., Any]) -> threading.Thread:
    """Press Ctrl+C once the main thread runs (or blocks in) one of ``functions``."""
    return press_ctrl_c_when(lambda: main_thread_is_in(*functions))

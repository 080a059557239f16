"""Ctrl+C in the test session itself: the tests that press it (``_thread.interrupt_main()``)
need SIGINT to raise KeyboardInterrupt in the main thread, as in a terminal or a kernel running a
cell, also when the run was started with SIGINT ignored, as a shell without job control starts
a background job (tests/conftest.py sees to it)."""

from __future__ import annotations

import _thread
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IGNORING_SIGINT = 'trap "" INT; exec "$@"'  # sh: run the command with SIGINT ignored


def test_ctrl_c_raises_keyboard_interrupt_in_the_main_thread() -> None:
    with pytest.raises(KeyboardInterrupt):
        _thread.interrupt_main()
        pytest.fail("Ctrl+C was ignored")


def test_a_session_started_with_sigint_ignored_still_gets_ctrl_c() -> None:
    show = "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"
    started = subprocess.run(["sh", "-c", IGNORING_SIGINT, "sh", sys.executable, "-c", show],
                             capture_output=True, text=True, timeout=60)
    assert started.stdout.strip() == "True"  # what such a session starts with
    test = f"{Path(__file__).name}::test_ctrl_c_raises_keyboard_interrupt_in_the_main_thread"
    session = subprocess.run(
        ["sh", "-c", IGNORING_SIGINT, "sh", sys.executable, "-m", "pytest", "-q",
         "-p", "no:cacheprovider", f"tests/{test}"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert session.returncode == 0, session.stdout[-2000:] + session.stderr[-2000:]

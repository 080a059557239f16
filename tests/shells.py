"""IPython shells with comfy_nb loaded, for the tests of the magics: :func:`comfy_shell` (in a
folder, with the environment a test names, everything it set undone after), and running a cell
as a test wants it (:func:`run`, :func:`fails`, :func:`magics`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

import comfy_nb
from comfy_nb.notebook import display
from comfy_nb.notebook.magics import ComfyMagics


@contextlib.contextmanager
def comfy_shell(monkeypatch: pytest.MonkeyPatch, folder: Path | None = None,
                **environment: str) -> Iterator[InteractiveShell]:
    """The IPython shell with ``%load_ext comfy_nb``, working in ``folder`` (if given), with
    ``environment`` set (``COMFY_URL=...``); after it, the extension is unloaded and the
    settings a test changed (``%config ComfyMagics``, display, tracebacks) are reset."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if folder is not None:
        monkeypatch.chdir(folder)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "comfy_nb")
    try:
        yield ip
    finally:
        ip.run_line_magic("unload_ext", "comfy_nb")
        ip.config.pop("ComfyMagics", None)  # %config settings of the test
        comfy_nb.ComfyError.short_tracebacks = True
        display.settings.__init__()  # type: ignore[misc]


def magics(ip: InteractiveShell) -> ComfyMagics:
    """The magics of the shell (what ``%load_ext comfy_nb`` registered)."""
    found: ComfyMagics = ip._comfy_nb_magics  # type: ignore[attr-defined]
    return found


def run(ip: InteractiveShell, source: str) -> Any:
    """Run a cell; raise what it raised."""
    outcome = ip.run_cell(source)
    outcome.raise_error()
    return outcome.result


def fails(ip: InteractiveShell, source: str) -> BaseException:
    """Run a cell that must fail; what it raised."""
    outcome = ip.run_cell(source)
    error = outcome.error_in_exec or outcome.error_before_exec
    assert error is not None, "the cell should have failed"
    return error

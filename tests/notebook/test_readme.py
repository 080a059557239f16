"""The README's Python snippets run as written, in order, in one IPython session against the
emulator (a snippet that needs more than that would say so in the README, with the code that
makes it, run here too), and what it says about ``.ipy`` scripts holds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from comfy_nb.emulator import RunningEmulator

from ..factories import Emulators

README = Path(__file__).resolve().parents[2] / "README.md"


def python_snippets() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"),
                      re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def emulator(module_emulators: Emulators) -> RunningEmulator:
    return module_emulators(step_delay=0.001)


def test_there_are_python_snippets() -> None:
    assert len(python_snippets()) >= 4


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_python_snippet_runs_as_written(emulator: RunningEmulator, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMFY_URL", emulator.url)
    monkeypatch.setenv("COMFY_NB_PROGRESS", "off")
    shell = InteractiveShell.instance()
    try:
        for snippet in python_snippets():
            outcome = shell.run_cell(snippet)
            error = outcome.error_before_exec or outcome.error_in_exec
            assert error is None, f"{snippet}\n-> {type(error).__name__}: {error}"
    finally:
        shell.run_line_magic("unload_ext", "comfy_nb")
        client = shell.user_ns.get("client")
        if client is not None:
            client.close()
    printed = capsys.readouterr().out
    events = [line for line in printed.splitlines() if re.match(r"[A-Z][A-Za-z]+\(job ", line)]
    assert events and all(len(line) <= 80 for line in events), printed[-2000:]
    assert list((tmp_path / "outputs").glob("*.png"))  # result.save("outputs")


def ipython_script(source: str, directory: Path, emulator: RunningEmulator
                   ) -> subprocess.CompletedProcess[str]:
    script = directory / "run.ipy"
    script.write_text(source)
    env = {**os.environ, "COMFY_URL": emulator.url, "COMFY_NB_PROGRESS": "text"}
    return subprocess.run([sys.executable, "-m", "IPython", "--no-banner", str(script)],
                          cwd=directory, env=env, capture_output=True, text=True, timeout=120)


def test_a_script_runs_the_line_magic_as_the_readme_says(emulator: RunningEmulator,
                                                         tmp_path: Path) -> None:
    done = ipython_script("%load_ext comfy_nb\nseed = 7\n"
                          "result = %comfy_run txt2img --set KSampler.seed=7 --set steps=2\n"
                          "print('outputs:', len(result.images))\n", tmp_path, emulator)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "outputs: 1" in done.stdout
    # and the cell magic in the middle of a script fails, as it says
    failed = ipython_script("%load_ext comfy_nb\nx = 1\n%%comfy_run out --file txt2img\n",
                            tmp_path, emulator)
    assert failed.returncode != 0
    assert "Line magic function `%%comfy_run` not found" in failed.stdout + failed.stderr


def test_the_event_classes_it_names_are_the_real_ones() -> None:
    from comfy_nb import events

    text = README.read_text(encoding="utf-8")
    paragraph = text[text.index("A job's events"):].split("\n\n", 1)[0]
    named = re.findall(r"`([A-Z][A-Za-z]+)`", paragraph)
    assert len(named) >= 10
    assert [name for name in named
            if not issubclass(getattr(events, name, object), events.Event)] == []

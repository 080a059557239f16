"""``%comfy jobs`` and ``%comfy jobs --attach ID`` in an in-process IPython shell, on the
emulator: the jobs of the job ledger, earlier kernels' included."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import comfy_nb
from comfy_nb import ledger
from comfy_nb.emulator import RunningEmulator
from comfy_nb.notebook import ledger_view
from comfy_nb.notebook.ledger_view import JobsTable
from comfy_nb.workflows import bundled

from ..factories import Clients, Emulators
from ..shells import comfy_shell, run

WAIT = 60.0


def txt2img(steps: int = 2) -> dict[str, Any]:
    workflow = bundled("txt2img")
    workflow["3"]["inputs"]["steps"] = steps
    workflow["5"]["inputs"].update(width=64, height=64)
    return workflow


@pytest.fixture(scope="module")
def emulator(module_emulators: Emulators) -> RunningEmulator:
    return module_emulators(step_delay=0.05)


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What ``%comfy jobs`` displays."""
    found: list[Any] = []
    monkeypatch.setattr(ledger_view, "show", found.append)
    return found


@pytest.fixture
def shell(emulator: RunningEmulator, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    with comfy_shell(monkeypatch, tmp_path, COMFY_URL=emulator.url, COMFY_NB_PROGRESS="text",
                     COMFY_NB_JOBS=str(tmp_path / ".comfy_nb" / "jobs.jsonl")) as ip:
        yield ip


def test_the_table_lists_the_jobs_with_links_to_saved_outputs(
        shell: InteractiveShell, shown: list[Any], emulator: RunningEmulator,
        clients: Clients) -> None:
    saved = run(shell, "%comfy_run txt2img --set steps=2 --label portrait -q")
    earlier = clients.connect(emulator)  # another kernel's job, never saved by a notebook
    other = earlier.run(txt2img(), seed=3, timeout=WAIT)
    run(shell, "%comfy jobs")
    (table,) = shown
    assert isinstance(table, JobsTable)
    rows = {row[0]: row for row in table.rows}
    assert list(rows) == [other.prompt_id, saved.prompt_id]  # newest first
    _, label, submitted, status, outputs = rows[saved.prompt_id]
    assert label.startswith("portrait · cell ") and status == "succeeded"
    assert time.strptime(submitted, "%Y-%m-%d %H:%M:%S")
    assert outputs == [("ComfyUI_00001_.png", "comfy_outputs/ComfyUI_00001_.png")]
    assert rows[other.prompt_id][4] == [(other.files[0].filename, None)]
    page = table._repr_mimebundle_()
    assert '<a href="comfy_outputs/ComfyUI_00001_.png"' in page["text/html"]
    assert saved.prompt_id in page["text/plain"] and "portrait" in page["text/plain"]


def test_attach_shows_the_live_panel_of_a_running_job_then_its_outputs(
        shell: InteractiveShell, emulator: RunningEmulator, clients: Clients,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    earlier = clients.connect(emulator)  # the kernel that submitted it, before it restarted
    job = earlier.submit(txt2img(steps=40))
    result = run(shell, f"%comfy jobs --attach {job.id[:8]}")
    assert isinstance(result, comfy_nb.Result) and result.prompt_id == job.id
    output = capsys.readouterr().out
    assert f"comfy_nb job {job.id[:8]}: running" in output  # the panel %%comfy_run shows
    assert "succeeded" in output
    assert (tmp_path / "comfy_outputs" / result.files[0].filename).is_file()
    (entry,) = ledger.read_entries()
    assert entry.saved == [f"comfy_outputs/{result.files[0].filename}"]
    again = run(shell, f"%comfy jobs --attach {job.id}")  # ended: its outputs at once
    assert again.prompt_id == job.id and [f.filename for f in again.files] == \
        [f.filename for f in result.files]


def test_attach_needs_a_unique_known_id(shell: InteractiveShell, emulator: RunningEmulator,
                                        tmp_path: Path, shown: list[Any]) -> None:
    path = tmp_path / ".comfy_nb" / "jobs.jsonl"
    path.parent.mkdir(parents=True)
    entries = [("abc-1", emulator.url), ("abc-2", emulator.url), ("zzz-1", "http://gpu:8188"),
               ("gone-1", emulator.url)]
    path.write_text("".join(json.dumps({
        "v": 1, "id": job_id, "server": server, "dialect": "local", "workflow": "sha256:0",
        "label": "", "submitted": time.time(), "comfy_nb": "0"}) + "\n"
        for job_id, server in entries))
    for prefix, message in (("abc", "starts the ids of 2 jobs"),
                            ("zzz", "was submitted to http://gpu:8188"),
                            ("nope", "no job of the ledger")):
        outcome = shell.run_cell(f"%comfy jobs --attach {prefix}")
        assert isinstance(outcome.error_in_exec, UsageError)
        assert message in str(outcome.error_in_exec)
    assert run(shell, "%comfy jobs --attach gone") is None
    assert "the server does not know this job" in shown[0].text


def test_a_replay_session_has_no_jobs(shell: InteractiveShell, tmp_path: Path) -> None:
    run(shell, "%comfy record rec")
    run(shell, "%comfy_run txt2img --set steps=2 -q")
    run(shell, "%comfy record --stop")
    run(shell, "%comfy replay rec")
    before = (tmp_path / ".comfy_nb" / "jobs.jsonl").read_bytes()
    run(shell, "%comfy_run txt2img --set steps=2 -q")
    assert (tmp_path / ".comfy_nb" / "jobs.jsonl").read_bytes() == before
    outcome = shell.run_cell("%comfy jobs")
    assert isinstance(outcome.error_in_exec, UsageError)
    assert "replays a recording" in str(outcome.error_in_exec)


def _shown_text(request: Any) -> str:
    """Everything a cell printed or displayed as text."""
    parts = [request.stdout]
    for message in request.of_type("display_data", "update_display_data", "execute_result"):
        parts.append(message["content"]["data"].get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_a_restarted_kernel_finds_its_running_job_and_attaches(
        emulators: Emulators, tmp_path: Path) -> None:
    from .kernel_session import kernel_session

    slow = emulators(step_delay=0.25)
    # the ledger where a user's is: .comfy_nb/jobs.jsonl in the notebook's folder
    env = {"COMFY_URL": slow.url, "COMFY_NB_JOBS": "", "COMFY_NB_PROGRESS": "text"}
    with kernel_session(tmp_path, env) as first:
        first.run("%load_ext comfy_nb")
        cell = first.run("job = %comfy_run txt2img --set steps=40 --no-wait -q --label long")
        assert not cell.errors, cell.errors
        job_id = first.run("print(job.id)").stdout.strip()
    # (the kernel was killed with the job running)
    (entry,) = ledger.read_entries(tmp_path / ".comfy_nb" / "jobs.jsonl")
    assert entry.id == job_id and entry.label.startswith("long · cell ")
    with kernel_session(tmp_path, env) as second:
        second.run("%load_ext comfy_nb")
        table = _shown_text(second.run("%comfy jobs"))
        assert job_id in table and "running" in table, table
        attached = second.run(f"r = %comfy jobs --attach {job_id[:8]}", timeout=120)
        assert not attached.errors, attached.errors
        assert f"comfy_nb job {job_id[:8]}: running" in _shown_text(attached)
        assert second.run("print(r.prompt_id, len(r.images))").stdout.split() == [job_id, "1"]
        after = _shown_text(second.run("%comfy jobs"))
        assert "succeeded" in after and "ComfyUI_00001_.png" in after, after
    assert (tmp_path / "comfy_outputs" / "ComfyUI_00001_.png").is_file()

"""The magics in an in-process IPython shell, running real jobs on the emulator."""

from __future__ import annotations

import _thread
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import comfy_nb
from comfy_nb.emulator import RunningEmulator, serve
from comfy_nb.notebook import display, progress
from comfy_nb.notebook.cell_input import fill_template, parse_cell
from comfy_nb.notebook.magics import ComfyMagics
from comfy_nb.notebook.progress import StaticNote
from comfy_nb.workflows import bundled

from ..factories import Emulators
from ..shells import comfy_shell, fails, magics, run
from .samples import FAILING

TXT2IMG = json.dumps(bundled("txt2img"), indent=1)


@pytest.fixture(scope="module")
def emulator(module_emulators: Emulators) -> RunningEmulator:
    return module_emulators(step_delay=0.02)


@pytest.fixture
def shell(emulator: RunningEmulator, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    with comfy_shell(monkeypatch, tmp_path, COMFY_URL=emulator.url,
                     COMFY_NB_PROGRESS="text") as ip:
        yield ip


# -- loading -------------------------------------------------------------------------------------


def test_load_ext_twice_and_reload_ext(shell: InteractiveShell) -> None:
    first = magics(shell)
    shell.run_line_magic("load_ext", "comfy_nb")
    assert magics(shell) is first
    shell.run_line_magic("reload_ext", "comfy_nb")
    assert magics(shell) is not first
    assert [c for c in shell.configurables if isinstance(c, ComfyMagics)] == [magics(shell)]
    assert isinstance(run(shell, "%comfy_run txt2img --set KSampler.steps=2 -q"),
                      comfy_nb.Result)


# -- running -------------------------------------------------------------------------------------


def test_cell_magic_runs_the_cell_stores_the_result_and_saves_files(
        shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shell.user_ns["steps"] = 4
    shell.user_ns["subject"] = 'a "quoted" fox'
    body = (TXT2IMG.replace('"steps": 20', '"steps": {{steps}}')
            .replace('"beautiful scenery', '"{{subject}}, beautiful scenery'))
    returned = run(shell, "%%comfy_run picture --seed 7\n" + body)
    result = shell.user_ns["picture"]
    assert returned is result and isinstance(result, comfy_nb.Result)
    inputs = result.workflow["3"]["inputs"]
    assert (inputs["steps"], inputs["seed"]) == (4, 7)
    assert result.workflow["6"]["inputs"]["text"].startswith('a "quoted" fox, beautiful')
    saved = sorted((tmp_path / "comfy_outputs").iterdir())
    assert [p.suffix for p in saved] == [".png"] and saved[0].stat().st_size > 1000
    output = capsys.readouterr().out
    assert "connected to" in output and "comfy_nb emulator" in output  # the banner
    assert "succeeded" in output


def test_line_magic_runs_a_file(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "wf.json").write_text(TXT2IMG)
    run(shell, "r = %comfy_run wf.json --set steps=3 --set 'Positive Prompt.text=x'")
    result = shell.user_ns["r"]
    assert result.workflow["6"]["inputs"]["text"] == "x"
    assert len(result.images) == 1


def test_random_seed_is_resolved_and_recorded(shell: InteractiveShell) -> None:
    result = run(shell, "%comfy_run txt2img --seed random --set steps=2 --save elsewhere")
    seed = result.workflow["3"]["inputs"]["seed"]
    assert isinstance(seed, int) and seed != 42
    assert magics(shell).jobs[-1].resolved_seeds == {"3.seed": seed} or \
        list(magics(shell).jobs[-1].resolved_seeds.values()) == [seed]
    assert list(Path("elsewhere").iterdir())


def test_file_option(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "wf.json").write_text(TXT2IMG)
    run(shell, "%%comfy_run out --file wf.json -s steps=2\n# the workflow of the paper")
    assert isinstance(shell.user_ns["out"], comfy_nb.Result)


def test_no_wait_returns_the_job_and_the_panel_ends_on_its_own(
        shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> None:
    updates = record_panel(monkeypatch)
    job = run(shell, "%%comfy_run job --no-wait --set steps=5\n" + TXT2IMG)
    assert job is shell.user_ns["job"] and isinstance(job, comfy_nb.Job)
    result = job.wait(timeout=30)
    assert wait_for(lambda: updates and updates[-1] is not None
                    and isinstance(updates[-1][1], comfy_nb.Result))
    assert updates[-1][1].prompt_id == result.prompt_id
    # the next cell sends the ending again, so nbclient/papermill keep it even though no cell
    # was running when the job ended
    count = len(updates)
    run(shell, "1 + 1")
    assert len(updates) == count + 1 and updates[-1][1] is updates[-2][1]
    run(shell, "1 + 1")
    assert len(updates) == count + 1  # once


def test_comfy_cancel_stops_a_no_wait_job_on_the_server(
        shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> None:
    updates = record_panel(monkeypatch)
    job = run(shell, "%%comfy_run job --no-wait --set steps=400\n" + TXT2IMG)
    assert wait_for(lambda: job.status is comfy_nb.JobStatus.RUNNING)
    run(shell, "%comfy cancel")
    assert wait_for(lambda: job.done)
    assert job.status is comfy_nb.JobStatus.CANCELLED
    assert wait_for(lambda: updates and isinstance(updates[-1][1], StaticNote))
    assert updates[-1][1].css_class == "comfy-nb-cancelled"
    assert magics(shell).session_client().queue() == []


def test_comfy_cancel_by_id_names_what_was_not_live(
        shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    updates = record_panel(monkeypatch)
    first = run(shell, "%%comfy_run first --no-wait --set steps=400\n" + TXT2IMG)
    second = run(shell, "%%comfy_run second --no-wait --set steps=401\n" + TXT2IMG)
    assert wait_for(lambda: first.status is comfy_nb.JobStatus.RUNNING)
    capsys.readouterr()
    run(shell, f"%comfy cancel {second.id} {first.id} no-such-job")
    shown = capsys.readouterr().out
    assert f"cancelled {first.id}" in shown and f"cancelled {second.id}" in shown
    assert "no-such-job is neither queued nor running" in shown
    assert wait_for(lambda: first.done and second.done)
    assert {first.status, second.status} == {comfy_nb.JobStatus.CANCELLED}
    assert magics(shell).session_client().queue() == []
    assert wait_for(lambda: sum(isinstance(update[1], StaticNote) for update in updates) == 2)


def test_a_new_connection_ends_the_panel_of_a_no_wait_job(
        shell: InteractiveShell, emulator: RunningEmulator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``%comfy connect`` closes the old connection: the panel of a job it was following says
    so, instead of a traceback from a background thread."""
    updates = record_panel(monkeypatch)
    job = run(shell, "%%comfy_run orphan --no-wait --set steps=400\n" + TXT2IMG)
    assert wait_for(lambda: job.status is comfy_nb.JobStatus.RUNNING)
    run(shell, f"%comfy connect {emulator.url}")
    assert wait_for(lambda: updates and isinstance(updates[-1][1], StaticNote))
    note = updates[-1][1]
    assert note.css_class == "comfy-nb-error" and job.id in note.text and "closed" in note.text
    magics(shell).session_client().cancel(job.id)


def test_stopping_the_kernel_cancels_the_job_on_the_server(shell: InteractiveShell) -> None:
    client = magics(shell).session_client()

    def interrupt_when_running() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            jobs = magics(shell).jobs
            if jobs and jobs[-1].status is comfy_nb.JobStatus.RUNNING:
                _thread.interrupt_main()
                return
            time.sleep(0.02)

    threading.Thread(target=interrupt_when_running, daemon=True).start()
    error = fails(shell, "%comfy_run txt2img --set steps=400")
    assert isinstance(error, KeyboardInterrupt)
    job = magics(shell).jobs[-1]
    assert wait_for(lambda: client.job(job.id).status is comfy_nb.JobStatus.CANCELLED)
    assert client.queue() == []


def test_stopping_the_kernel_while_the_panel_appears_cancels_the_job(
        shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stop button pressed between the submission and the wait (here while the progress
    panel is made) cancels the job too: it must not run on unwatched."""
    from comfy_nb.notebook import magics as magics_module

    make = magics_module.make_panel

    def interrupted_while_making(job: comfy_nb.Job, *args: Any, **kwargs: Any) -> Any:
        assert wait_for(lambda: job.status is comfy_nb.JobStatus.RUNNING)
        _thread.interrupt_main()  # lands here, in the main thread
        return make(job, *args, **kwargs)

    monkeypatch.setattr(magics_module, "make_panel", interrupted_while_making)
    error = fails(shell, "%comfy_run txt2img --set steps=400 --set seed=229")
    assert isinstance(error, KeyboardInterrupt)
    job = magics(shell).jobs[-1]
    client = magics(shell).session_client()
    assert wait_for(lambda: client.job(job.id).status is comfy_nb.JobStatus.CANCELLED)
    assert client.queue() == []


def test_timeout_cancels_the_job(shell: InteractiveShell) -> None:
    # a seed of its own: the emulator, as ComfyUI does, answers a prompt identical to the last
    # one it finished from its cache at once (if a test before ran this one to the end)
    error = fails(shell, "%comfy_run txt2img --set steps=400 --set seed=214 --timeout 0.5")
    assert isinstance(error, comfy_nb.JobTimeout)
    job = magics(shell).jobs[-1]
    assert wait_for(lambda: job.status is comfy_nb.JobStatus.CANCELLED)


# -- errors --------------------------------------------------------------------------------------


def test_a_validation_error_is_a_short_table(shell: InteractiveShell,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    error = fails(shell, "%comfy_run txt2img --set cfg=300 --set steps=0")
    assert isinstance(error, comfy_nb.WorkflowInvalid)
    output = capsys.readouterr().out
    assert "Traceback" not in output
    lines = output.splitlines()
    header = next(line for line in lines if line.startswith("node "))
    assert header.split() == ["node", "title", "class", "input", "error", "message", "allowed"]
    assert any("cfg" in line and "0.0 … 100.0" in line for line in lines)
    assert any("steps" in line and "value_smaller_than_min" in line for line in lines)
    assert magics(shell).jobs == []  # nothing was submitted


def test_an_execution_error_names_the_node_and_the_exception(
        shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    shell.user_ns["failing"] = FAILING
    capsys.readouterr()
    error = fails(shell, "%%comfy_run\n{{failing}}")
    assert isinstance(error, comfy_nb.ExecutionFailed)
    output = capsys.readouterr().out
    assert "Traceback" not in output
    assert "node 2 'Sharpen' (ImageSharpen) failed with" in output
    assert "server traceback (last lines):" in output
    assert len(output.splitlines()) < 30
    shell.run_line_magic("config", "ComfyMagics.short_errors = False")
    fails(shell, "%%comfy_run\n{{failing}}")
    assert "Traceback (most recent call last)" in capsys.readouterr().out


@pytest.mark.parametrize(("source", "message"), [
    ("%%comfy_run\n  \n# only a comment", "the cell is empty"),
    ("%%comfy_run 1x\n{}", "not a variable name"),
    ("%%comfy_run --file wf.json\n{}", "use one of them"),
    ("%comfy_run", "needs a workflow file"),
    ("%comfy_run missing.json", "no workflow file 'missing.json'"),
    ("%comfy_run '" + "{\"1\": {}}" * 40 + "'", "goes in the cell of %%comfy_run"),
    ("%%comfy_run\n{\"seed\": {{nope}}}", "no variable 'nope'"),
    ("%comfy_run txt2img --seed soon", "--seed takes a whole number"),
    ("%comfy_run txt2img --set steps", "--set takes NAME=VALUE"),
    ("%comfy upload nothing.png", "no file 'nothing.png'"),
    ("%comfy connect", "%comfy connect URL|cloud"),
])
def test_bad_input_is_a_one_line_usage_error(shell: InteractiveShell, source: str,
                                             message: str) -> None:
    error = fails(shell, source)
    assert isinstance(error, UsageError) and message in str(error)


def test_a_cell_that_is_not_json(shell: InteractiveShell) -> None:
    error = fails(shell, "%%comfy_run\n{\"3\": {,}}")
    assert isinstance(error, comfy_nb.WorkflowError)
    assert "not valid JSON" in str(error) and "line 1, column 8" in str(error)


# -- help and settings ---------------------------------------------------------------------------


def test_help(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "%comfy_run -h")
    text = capsys.readouterr().out
    assert "--no-wait" in text and "{{name}}" in text
    run(shell, "%comfy --help")
    assert "upload PATH" in capsys.readouterr().out


def test_config_traits_reach_the_display(shell: InteractiveShell,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "%config ComfyMagics.thumbnail_size = 96")
    run(shell, "%config ComfyMagics.output_dir = 'renders'")
    assert (display.settings.thumbnail_size, display.settings.output_dir) == (96, "renders")
    run(shell, "%config ComfyMagics")
    assert "ComfyMagics.embed_limit" in capsys.readouterr().out
    run(shell, "%config ComfyMagics.progress = 'fancy'")  # IPython logs the refusal
    assert magics(shell).progress == "auto"


# -- %comfy --------------------------------------------------------------------------------------


def test_server_commands(shell: InteractiveShell, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "%comfy status")
    assert "local, version 0.3.64" in capsys.readouterr().out
    run(shell, "%comfy queue")
    assert "the queue is empty" in capsys.readouterr().out
    run(shell, "%comfy nodes ksampler*")
    out = capsys.readouterr().out
    assert "KSamplerAdvanced" in out and "3 node types match" in out
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(tmp_path / "red.png")
    name = run(shell, "%comfy upload red.png")
    assert name in magics(shell).session_client().object_info(refresh=True)[
        "LoadImage"]["input"]["required"]["image"][0]
    run(shell, "%comfy interrupt")
    assert "interrupted" in capsys.readouterr().out


def test_status_counts_the_jobs_of_this_shell(shell: InteractiveShell,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "%comfy_run txt2img --set steps=1 -q")
    run(shell, "%comfy status")
    out = capsys.readouterr().out
    assert "jobs from this shell: 1" in out and "notebook" not in out
    error = fails(shell, "%comfy cancel")
    assert str(error) == "no job of this shell is running; name one: %comfy cancel ID (or --all)"


def test_nodes_without_a_display_name_show_their_class(
        shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "%comfy nodes latentadd")
    out = capsys.readouterr().out
    [row] = [line.split() for line in out.splitlines() if line.startswith("LatentAdd")]
    assert row[:2] == ["LatentAdd", "LatentAdd"], row


def test_connect_with_a_key_from_the_environment_never_shows_it(
        monkeypatch: pytest.MonkeyPatch, shell: InteractiveShell,
        capsys: pytest.CaptureFixture[str]) -> None:
    with serve(dialect="cloud", step_delay=0.0) as cloud:
        assert cloud.api_key
        monkeypatch.setenv("COMFY_NB_CLOUD_URL", cloud.url)  # the key goes to Comfy Cloud only
        monkeypatch.setenv("COMFY_CLOUD_API_KEY", cloud.api_key)
        run(shell, "%comfy connect cloud")
        result = run(shell, "%comfy_run txt2img --set steps=2")
        assert isinstance(result, comfy_nb.Result)
        run(shell, "%comfy status")
        run(shell, "%config ComfyMagics")
        output = capsys.readouterr().out + repr(magics(shell).client) + repr(result)
        assert "(cloud," in output
        assert cloud.api_key not in output
        magics(shell).close()


def test_connect_emulator_starts_the_embedded_one(shell: InteractiveShell,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "%comfy connect emulator")  # COMFY_URL names another server
    client = magics(shell).client
    assert client is not None and client.emulator is not None
    assert client.dialect == "local"
    assert "stand-in pixels" in capsys.readouterr().out
    result = run(shell, "%comfy_run txt2img --url emulator --set steps=1")
    assert isinstance(result, comfy_nb.Result)
    assert magics(shell)._clients["emulator"].emulator is not None


def test_binder_refuses_to_ask_for_a_key(monkeypatch: pytest.MonkeyPatch,
                                         shell: InteractiveShell) -> None:
    monkeypatch.delenv("COMFY_CLOUD_API_KEY", raising=False)
    monkeypatch.setenv("BINDER_LAUNCH_HOST", "https://mybinder.org/")
    error = fails(shell, "%comfy connect cloud")
    assert isinstance(error, UsageError) and "Binder" in str(error)



def test_binder_sessions_warn_in_the_banner(monkeypatch: pytest.MonkeyPatch,
                                            shell: InteractiveShell,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BINDER_REPO_URL", "https://github.com/example/repo")
    run(shell, "%comfy status")
    assert "public Binder session: do not enter API keys" in capsys.readouterr().out


# -- the cell body -------------------------------------------------------------------------------


def test_fill_template() -> None:
    names = {"seed": 5, "text": 'say "hi"\n', "size": [1, 2], "ok": True}
    body = '{"a": {{seed}}, "b": {{ text }}, "c": "x {{text}} y", "d": {{size}}, "e": {{ok}}}'
    filled = json.loads(fill_template(body, names))
    assert filled == {"a": 5, "b": 'say "hi"\n', "c": 'x say "hi"\n y', "d": [1, 2], "e": True}
    assert fill_template('{"a": "\\"{{seed}}"}', names) == '{"a": "\\"5"}'
    assert fill_template('{"a": {"b": 1}}', {}) == '{"a": {"b": 1}}'  # JSON braces stay
    with pytest.raises(UsageError, match="cannot go into JSON"):
        fill_template("{{obj}}", {"obj": object()})


def test_parse_cell_wants_an_object() -> None:
    with pytest.raises(comfy_nb.WorkflowError, match="workflow object"):
        parse_cell("[1, 2]", {})


# -- helpers -------------------------------------------------------------------------------------


def record_panel(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Use the html panel and record what its display handle receives."""
    monkeypatch.setenv("COMFY_NB_PROGRESS", "html")
    updates: list[Any] = []

    class Handle:
        def update(self, obj: Any, **kwargs: Any) -> None:
            updates.append((time.monotonic(), obj))

    monkeypatch.setattr(progress, "_display", lambda obj, **kwargs: Handle())
    return updates


def wait_for(condition: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_comfy_interact_builds_controls_and_runs(shell: InteractiveShell) -> None:
    from comfy_nb.notebook.interact import Interact

    run(shell, "panel = %comfy_interact txt2img seed cfg=1:12 steps 'Positive Prompt.text'")
    panel = shell.user_ns["panel"]
    assert isinstance(panel, Interact)
    assert set(panel.values) == {"seed", "cfg", "steps", "Positive Prompt.text"}
    cfg = panel.controls["cfg"].widget
    assert (cfg.min, cfg.max) == (1, 12)
    panel.set_values(steps=2)
    result = panel.run(wait=True, timeout=30)
    assert result.workflow["3"]["inputs"]["steps"] == 2
    panel.close()
    shell.user_ns["wf"] = bundled("txt2img")
    other = run(shell, "%comfy_interact wf cfg")
    assert isinstance(other, Interact) and set(other.values) == {"cfg"}
    other.close()


def test_an_identical_run_comes_from_the_result_cache(
        shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COMFY_NB_CACHE", "on")  # tests/conftest.py switches it off
    monkeypatch.setenv("COMFY_NB_CACHE_DIR", str(tmp_path / "cache"))
    first = run(shell, "%comfy_run txt2img --set steps=2 --seed 11")
    second = run(shell, "%comfy_run txt2img --set steps=2 --seed 11")
    assert not first.from_cache and second.from_cache
    assert second.images[0].read() == first.images[0].read()
    assert "from the result cache" in capsys.readouterr().out
    assert len(magics(shell).jobs) == 2
    third = run(shell, "%comfy_run txt2img --set steps=2 --seed 11 --no-cache")
    assert not third.from_cache and third.prompt_id != first.prompt_id


def test_sweep_from_a_cell(shell: InteractiveShell) -> None:
    grid = run(shell, "%%comfy_run grid --sweep seed=1,2 --sweep cfg=4,7 --set steps=2\n"
               + TXT2IMG)
    assert grid is shell.user_ns["grid"] and isinstance(grid, comfy_nb.Sweep)
    rows = grid.rows()
    assert sorted((row["seed"], row["cfg"]) for row in rows) == [(1, 4), (1, 7), (2, 4), (2, 7)]
    assert all(row["status"] == "succeeded" and row["files"] for row in rows)
    assert len(magics(shell).jobs) == 4
    zipped = run(shell, "%comfy_run txt2img --sweep seed=1,2 --sweep cfg=4,7 --zip -s steps=2")
    assert sorted((row["seed"], row["cfg"]) for row in zipped.rows()) == [(1, 4), (2, 7)]
    error = fails(shell, "%comfy_run txt2img --sweep seed")
    assert isinstance(error, UsageError)


def test_record_then_replay_with_no_server(shell: InteractiveShell, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from comfy_nb.recordings import ReplayMismatch

    run(shell, "%comfy record rec")
    first = run(shell, "%comfy_run txt2img --set steps=2 --seed 5")
    run(shell, "%comfy record --stop")
    assert (tmp_path / "rec" / "recording.json").is_file()
    capsys.readouterr()
    run(shell, "%comfy replay rec")
    assert "replayed from" in capsys.readouterr().out
    again = run(shell, "%comfy_run txt2img --set steps=2 --seed 5")
    assert again.images[0].read() == first.images[0].read()
    assert "replayed from" in capsys.readouterr().out
    error = fails(shell, "%comfy_run txt2img --set steps=2 --seed 6")
    assert isinstance(error, ReplayMismatch) and "seed" in str(error)
    assert isinstance(fails(shell, "%comfy replay nowhere"), UsageError)


# -- refused before connecting -------------------------------------------------------------------


@pytest.mark.parametrize(("source", "message"), [
    ("%comfy_run txt2img --sweep seed=1,2 --concurrency 0",
     "--concurrency takes a whole number of at least 1, not 0"),
    ("%comfy_run txt2img --sweep seed=1,2 --concurrency -1", "at least 1, not -1"),
    ("%comfy_run txt2img --sweep seed=1,2 --sweep cfg=1 --zip",
     "--zip needs lists of the same length: seed has 2, cfg has 1; drop --zip for every "
     "combination"),
    ("%comfy_run txt2img --zip", "--zip only goes with --sweep"),
    ("%comfy_run txt2img --concurrency 2 --max-jobs 5", "--concurrency and --max-jobs only go"),
    ("%comfy_run txt2img --timeout 0", "--timeout takes a positive number of seconds"),
    ("%comfy_run txt2img --timeout -3", "--timeout takes a positive number of seconds"),
    ("%comfy_run txt2img --timeout nan", "--timeout takes a positive number of seconds"),
    ("%comfy_run txt2img --sweep seed=1,2 --timeout 0", "--timeout takes a positive number"),
    ("%comfy_run txt2img --save afile", "--save afile: is a file, not a folder"),
    ("%comfy_run txt2img --save afile/sub", "--save afile/sub: afile is a file, not a folder"),
    ("%comfy_run txt2img --sweep seed=1,2 --save afile", "--save afile: is a file"),
    ("%comfy_run txt2img --sweep seed=1..100000",
     "--sweep would run 100000 jobs, more than the limit of 1000; add --max-jobs 100000"),
    ("%comfy_run txt2img --sweep seed=1..10 --sweep cfg=1..10 --max-jobs 50",
     "--sweep would run 100 jobs, more than the limit of 50"),
    ("%comfy_run txt2img --sweep seed=1,2 --max-jobs 0", "--max-jobs takes a whole number"),
])
def test_flags_that_cannot_work_are_refused_before_connecting(
        shell: InteractiveShell, tmp_path: Path, source: str, message: str) -> None:
    (tmp_path / "afile").write_text("mine")
    error = fails(shell, source)
    assert isinstance(error, UsageError), error
    assert message in str(error)
    assert magics(shell).client is None and magics(shell).jobs == []  # nothing connected
    assert (tmp_path / "afile").read_text() == "mine"


def test_an_output_dir_that_is_a_file_is_refused_before_submitting(
        shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine")
    run(shell, "%config ComfyMagics.output_dir = 'afile'")
    error = fails(shell, "%comfy_run txt2img --set steps=2")
    assert isinstance(error, UsageError)
    assert "ComfyMagics.output_dir 'afile': is a file, not a folder" in str(error)
    assert magics(shell).jobs == []
    result = run(shell, "%comfy_run txt2img --set steps=2 --save elsewhere")  # --save wins
    assert [p.parent.name for p in map(result.saved_path, result.files)] == ["elsewhere"]


def test_the_timeout_setting_takes_positive_seconds_only(shell: InteractiveShell) -> None:
    from traitlets import TraitError

    for bad in (0.0, -3.0, float("nan")):
        with pytest.raises(TraitError, match="positive number of seconds"):
            magics(shell).timeout = bad
    run(shell, "%config ComfyMagics.timeout = 0")  # IPython logs the refusal
    assert magics(shell).timeout is None
    run(shell, "%config ComfyMagics.timeout = 30")
    assert magics(shell).timeout == 30


def test_a_timed_out_cell_says_one_thing_about_its_job(
        shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    error = fails(shell, "%comfy_run txt2img --set steps=400 --timeout 0.2")
    assert isinstance(error, comfy_nb.JobTimeout)
    assert "did not finish within 0.2 s and was cancelled" in str(error)
    output = capsys.readouterr().out
    assert "may still be running" not in output + str(error)
    assert "JobTimeout: job" in output and "and was cancelled" in output
    job = magics(shell).jobs[-1]
    assert wait_for(lambda: job.status is comfy_nb.JobStatus.CANCELLED)


def test_a_failed_download_fails_the_cell(shell: InteractiveShell, emulator: RunningEmulator,
                                          tmp_path: Path) -> None:
    shell.user_ns.pop("undownloaded", None)
    emulator.faults.update(truncate_view=True)
    try:
        error = fails(shell, "undownloaded = %comfy_run txt2img --set steps=2")
    finally:
        emulator.faults.update(truncate_view=False)
    assert isinstance(error, comfy_nb.ComfyError)
    assert "undownloaded" not in shell.user_ns
    saved = tmp_path / "comfy_outputs"
    assert not saved.exists() or list(saved.iterdir()) == []  # nothing half-written


def test_record_into_a_place_that_cannot_be_written(shell: InteractiveShell,
                                                    tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine")
    places = ["afile/rec"] + (["/proc/rec"] if Path("/proc/self").is_dir() else [])
    for place in places:
        error = fails(shell, f"%comfy record {place}")
        assert isinstance(error, UsageError)
        assert f"cannot record into {place!r}" in str(error)
        assert "folder you can write to" in str(error)
        assert magics(shell).recording is None


def test_upload_of_a_folder_says_it_is_a_folder(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    error = fails(shell, "%comfy upload adir")
    assert isinstance(error, UsageError) and "'adir' is a folder" in str(error)


# -- damaged recordings and replays --------------------------------------------------------------


def record_one_run(ip: InteractiveShell, path: Path) -> None:
    run(ip, f"%comfy record {path}")
    run(ip, "%comfy_run txt2img --set steps=2 --seed 5 -q")
    run(ip, "%comfy record --stop")


@pytest.mark.parametrize("damage", ["delete", "overwrite"])
def test_a_damaged_recording_fails_the_cell(shell: InteractiveShell, tmp_path: Path,
                                            damage: str) -> None:
    from comfy_nb.recordings import ReplayError

    record_one_run(shell, tmp_path / "rec")
    (png,) = (tmp_path / "rec").glob("01-*/outputs/node9-1.png")
    if damage == "delete":
        png.unlink()
    else:
        png.write_bytes(b"not the recorded picture")
    shutil.rmtree(tmp_path / "comfy_outputs")
    run(shell, "%comfy replay rec")
    shell.user_ns.pop("damaged", None)
    error = fails(shell, "damaged = %comfy_run txt2img --set steps=2 --seed 5")
    assert isinstance(error, ReplayError)
    assert ("missing from the recording" if damage == "delete"
            else "changed after it was recorded") in str(error)
    assert "damaged" not in shell.user_ns
    assert not (tmp_path / "comfy_outputs").exists() \
        or list((tmp_path / "comfy_outputs").iterdir()) == []


def test_a_damaged_recording_fails_that_job_of_a_sweep(shell: InteractiveShell,
                                                       tmp_path: Path) -> None:
    run(shell, "%comfy record rec")
    run(shell, "%comfy_run txt2img --sweep seed=1,2 --set steps=2 --concurrency 1 -q")
    run(shell, "%comfy record --stop")
    (png,) = (tmp_path / "rec").glob("01-*/outputs/node9-1.png")
    png.unlink()
    run(shell, "%comfy replay rec")
    grid = run(shell, "%comfy_run txt2img --sweep seed=1,2 --set steps=2 --concurrency 1")
    rows = {row["seed"]: row for row in grid.rows()}
    assert rows[1]["status"] == "failed" and "missing from the recording" in rows[1]["error"]
    assert rows[2]["status"] == "succeeded"
    assert len(grid.results) == 1


def test_a_recording_without_node_definitions_is_refused_at_replay(
        shell: InteractiveShell, tmp_path: Path) -> None:
    record_one_run(shell, tmp_path / "rec")
    (tmp_path / "rec" / "object_info.json").unlink()
    error = fails(shell, "%comfy replay rec")
    assert isinstance(error, UsageError)
    assert "'rec' is incomplete: object_info.json" in str(error)


def test_nothing_to_interrupt_or_cancel_in_a_replay(shell: InteractiveShell, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    record_one_run(shell, tmp_path / "rec")
    run(shell, "%comfy replay rec")
    capsys.readouterr()
    run(shell, "%comfy interrupt")
    out = capsys.readouterr().out
    assert "nothing to interrupt" in out and "interrupted the running job" not in out
    run(shell, "%comfy cancel --all")
    out = capsys.readouterr().out
    assert "nothing to cancel" in out and "interrupted the running job" not in out


def test_a_comment_after_a_line_magic_is_left_out(shell: InteractiveShell) -> None:
    """As in a shell: ``# ...`` after the arguments is a comment, ``#`` in a word or quotes is
    not (IPython hands a line magic its whole line, comment included)."""
    assert run(shell, "%comfy models checkpoints   # the server's checkpoints") == \
        run(shell, "%comfy models checkpoints")
    result = run(shell, "%comfy_run txt2img --set steps=1 --set 'Positive Prompt.text=a # b' "
                        "--set filename_prefix=x#y -q  # it's a comment")
    assert result.workflow["6"]["inputs"]["text"] == "a # b"
    assert result.workflow["9"]["inputs"]["filename_prefix"] == "x#y"

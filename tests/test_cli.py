"""The ``comfy-nb`` command: the emulator server process and ``run`` on the embedded emulator."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from comfy_nb.cli import main
from comfy_nb.emulator import serve
from comfy_nb.workflow import Workflow
from comfy_nb.workflows import bundled
from tests.fixture_paths import UI2API


def test_run_writes_the_default_image(tmp_path: Path, capsys: object) -> None:
    out = tmp_path / "outputs"
    assert main(["run", "--emulator", "--out", str(out), "--step-delay", "0"]) == 0
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["ComfyUI_00001_.png"]
    with Image.open(files[0]) as image:
        assert image.size == (512, 512)
        assert json.loads(image.text["prompt"])["3"]["class_type"] == "KSampler"
    assert not list(out.glob(".*.part"))


def test_url_emulator_is_the_embedded_emulator_whatever_else_is_configured(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(step_delay=0.0) as elsewhere:
        monkeypatch.setenv("COMFY_URL", elsewhere.url)
        out = tmp_path / "outputs"
        assert main(["run", "--url", "emulator", "--out", str(out), "--step-delay", "0"]) == 0
        assert "on the embedded emulator" in capsys.readouterr().err
        assert [f.name for f in out.iterdir()] == ["ComfyUI_00001_.png"]
        assert not any(elsewhere.output_dir.iterdir())  # nothing ran there


def test_run_refuses_a_file_as_the_output_folder_before_running(tmp_path: Path,
                                                                capsys: object) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine")
    for out in (afile, afile / "sub"):
        assert main(["run", "--emulator", "--out", str(out), "--step-delay", "0"]) == 2
        err = capsys.readouterr().err  # type: ignore[attr-defined]
        assert f"--out {out}: " in err and "is a file, not a folder" in err
        assert "queued" not in err and "Traceback" not in err  # nothing ran
    assert afile.read_text() == "mine"


def test_run_reports_a_rejected_workflow(tmp_path: Path, capsys: object) -> None:
    workflow = tmp_path / "bad.json"
    workflow.write_text(json.dumps({"1": {"class_type": "EmptyImage", "inputs": {
        "width": 99999, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                     "filename_prefix": "x"}}}))
    assert main(["run", str(workflow), "--emulator", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "Value 99999 bigger than max of 16384" in err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_run_converts_an_editor_workflow(tmp_path: Path) -> None:
    ui = UI2API / \
        "frontend_default_graph" / "ui.json"
    out = tmp_path / "o"
    assert main(["run", str(ui), "--emulator", "--out", str(out), "--step-delay", "0",
                 "--set", "ckpt_name=random_sd15.safetensors", "--set", "steps=1"]) == 0
    assert [p.suffix for p in out.iterdir()] == [".png"]


def test_run_reports_every_problem_before_sending(tmp_path: Path, capsys: object) -> None:
    ui = UI2API / \
        "frontend_default_graph" / "ui.json"
    assert main(["run", str(ui), "--emulator", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "ckpt_name" in err and "random_sd15.safetensors" in err


def test_ctrl_c_cancels_the_running_job(tmp_path: Path) -> None:
    with serve(step_delay=0.05) as server:
        process = subprocess.Popen(
            [sys.executable, "-m", "comfy_nb.cli", "run", "--url", server.url,
             "--set", "steps=2000", "--out", str(tmp_path / "o")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            assert process.stderr is not None
            queued = process.stderr.readline()
            assert queued.startswith("queued "), queued
            prompt_id = queued.split()[1]
            with httpx.Client(base_url=server.url) as http:
                while not http.get("/queue").json()["queue_running"]:
                    time.sleep(0.05)
                process.send_signal(signal.SIGINT)
                _, err = process.communicate(timeout=60)
                assert process.returncode == 130
                assert f"interrupted; job {prompt_id} was cancelled" in err
                deadline = time.monotonic() + 30  # the server stops the job at its next step
                while http.get("/queue").json()["queue_running"] and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert http.get("/queue").json()["queue_running"] == []
                history = http.get(f"/history/{prompt_id}").json()[prompt_id]
                assert "execution_interrupted" in json.dumps(history["status"])
        finally:
            process.kill()
            process.wait(10)


def test_emulator_command_serves_until_terminated() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "comfy_nb.cli", "emulator", "--port", "0", "--dialect", "cloud"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "comfy_nb emulator (cloud dialect) listening on http://127.0.0.1:" in first
        url = first.strip().rsplit(" ", 1)[-1]
        notice = process.stdout.readline()
        assert "stand-in pixels" in notice
        response = httpx.get(url + "/api/system_stats", timeout=5)
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    assert process.returncode == 0


def test_emulator_command_explains_a_busy_port() -> None:
    with_server = subprocess.Popen(
        [sys.executable, "-m", "comfy_nb.cli", "emulator", "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert with_server.stdout is not None
        url = with_server.stdout.readline().strip().rsplit(" ", 1)[-1]
        port = url.rsplit(":", 1)[-1]
        busy = subprocess.run(
            [sys.executable, "-m", "comfy_nb.cli", "emulator", "--port", port],
            capture_output=True, text=True, timeout=30,
        )
        assert busy.returncode == 1
        assert "Pick another port with --port" in busy.stderr
        assert "Traceback" not in busy.stderr
    finally:
        with_server.terminate()
        with_server.wait(10)


def test_run_sets_inputs_by_id_title_and_class(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["run", "--emulator", "--out", str(out), "--step-delay", "0",
                 "--set", "3.steps=2", "--set", "Positive Prompt.text=a red fox",
                 "--set", "EmptyLatentImage.width=64", "--set", "EmptyLatentImage.height=32"]) == 0
    [saved] = list(out.iterdir())
    with Image.open(saved) as image:
        assert image.size == (64, 32)
        prompt = json.loads(image.text["prompt"])
    assert prompt["3"]["inputs"]["steps"] == 2
    assert prompt["6"]["inputs"]["text"] == "a red fox"


def test_run_refuses_an_ambiguous_or_unknown_node(capsys: object) -> None:
    assert main(["run", "--emulator", "--set", "CLIPTextEncode.text=x"]) == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "ambiguous" in err and "Positive Prompt" in err and "Negative Prompt" in err
    assert main(["run", "--emulator", "--set", "Nope.seed=1"]) == 2
    assert "Nope" in capsys.readouterr().err  # type: ignore[attr-defined]


def test_queue_and_cancel_commands(capsys: object) -> None:
    from comfy_nb import connect
    from comfy_nb.emulator import serve
    from comfy_nb.workflows import bundled

    with serve(node_delay=0.5) as server, connect(server.url) as client:
        running = client.submit(bundled("txt2img"))
        pending = client.submit(bundled("txt2img"))
        assert main(["queue", "--url", server.url]) == 0
        listing = capsys.readouterr().out  # type: ignore[attr-defined]
        assert f"{running.id}  running" in listing and f"{pending.id}  pending #1" in listing
        assert main(["cancel", pending.id, "--url", server.url]) == 0
        assert main(["cancel", "no-such-job", "--url", server.url]) == 1
        assert main(["cancel", "--all", "--url", server.url]) == 0
        assert main(["queue", "--url", server.url]) == 0
        assert "the queue is empty" in capsys.readouterr().out  # type: ignore[attr-defined]


def test_a_malformed_url_is_a_usage_error(capsys: object) -> None:
    for command in (["queue"], ["cancel", "--all"], ["run", "--out", "unused"]):
        assert main([*command, "--url", "http://127.0.0.1:99999"]) == 2
        err = capsys.readouterr().err  # type: ignore[attr-defined]
        assert err == (f"comfy-nb {command[0]}: 'http://127.0.0.1:99999' has an invalid port: "
                       "use a number from 1 to 65535\n")


def _start_run(server_url: str, out: Path, *options: str) -> tuple[subprocess.Popen[str], str]:
    """``comfy-nb run`` of a long job (2000 steps) in a subprocess: the process and the job id,
    once the job is queued."""
    process = subprocess.Popen(
        [sys.executable, "-m", "comfy_nb.cli", "run", "--url", server_url,
         "--set", "steps=2000", "--out", str(out), *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stderr is not None
    queued = process.stderr.readline()
    assert queued.startswith("queued "), queued
    return process, queued.split()[1]


def _assert_interrupted_on_the_server(http: httpx.Client, prompt_id: str) -> None:
    deadline = time.monotonic() + 30  # the server stops the job at its next step
    while http.get("/queue").json()["queue_running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert http.get("/queue").json()["queue_running"] == []
    history = http.get(f"/history/{prompt_id}").json()[prompt_id]
    assert "execution_interrupted" in json.dumps(history["status"])


def _messages(err: str) -> list[str]:
    """What the command said on stderr, besides the queued and progress lines."""
    assert "Traceback" not in err and "Task exception" not in err, err
    return [line for line in err.splitlines()
            if line.strip() and not line.startswith(("queued ", "["))]


def test_sigterm_cancels_the_running_job_like_ctrl_c(tmp_path: Path) -> None:
    with serve(step_delay=0.05) as server, httpx.Client(base_url=server.url) as http:
        process, prompt_id = _start_run(server.url, tmp_path / "o")
        try:
            while not http.get("/queue").json()["queue_running"]:
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=60)
            assert process.returncode == 128 + signal.SIGTERM
            assert _messages(err) == [f"comfy-nb run: terminated; job {prompt_id} was "
                                      "cancelled"]
            _assert_interrupted_on_the_server(http, prompt_id)
        finally:
            process.kill()
            process.wait(10)


def test_a_timeout_cancels_the_job_and_says_so_once(tmp_path: Path) -> None:
    with serve(step_delay=0.05) as server, httpx.Client(base_url=server.url) as http:
        process, prompt_id = _start_run(server.url, tmp_path / "o", "--timeout", "0.5")
        try:
            _, err = process.communicate(timeout=60)
            assert process.returncode == 1
            assert _messages(err) == [f"comfy-nb run: job {prompt_id} did not finish within "
                                      "0.5 s and was cancelled on the server"]
            _assert_interrupted_on_the_server(http, prompt_id)
        finally:
            process.kill()
            process.wait(10)


def test_an_empty_url_is_a_usage_error_not_a_search(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["queue", "--url", ""]) == 2
    assert capsys.readouterr().err.startswith("comfy-nb queue: the server URL is empty")


class _InterruptedAfterPosting:
    """A client whose ``submit`` is interrupted (Ctrl+C) just after the request reached the
    server and before the job came back: a moment no real signal can be timed to hit."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def submit(self, *args: Any, **options: Any) -> Any:
        self._client.submit(*args, **options)
        raise KeyboardInterrupt


def test_a_run_stopped_while_submitting_leaves_no_job_behind(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from comfy_nb import connect
    from comfy_nb.cli import _run_with, build_parser

    args = build_parser().parse_args(["run", "--out", str(tmp_path / "o")])
    with serve(step_delay=0.05) as server, connect(server.url) as client, \
            httpx.Client(base_url=server.url) as http:
        workflow = bundled("txt2img")
        workflow["3"]["inputs"]["steps"] = 2000
        assert _run_with(_InterruptedAfterPosting(client), Workflow.load(workflow), {},
                         args) == 130
        [message] = _messages(capsys.readouterr().err)
        assert message.startswith("comfy-nb run: interrupted while submitting; job ")
        prompt_id = message.split()[-3]
        deadline = time.monotonic() + 30  # a running job stops at its next step
        while time.monotonic() < deadline and (http.get("/queue").json()["queue_running"]
                                               or http.get("/queue").json()["queue_pending"]):
            time.sleep(0.05)
        queue = http.get("/queue").json()
        assert queue["queue_running"] == [] and queue["queue_pending"] == []
        history = http.get(f"/history/{prompt_id}").json()
        assert prompt_id not in history or "execution_interrupted" in json.dumps(
            history[prompt_id]["status"])


def test_a_run_from_the_result_cache_says_so(tmp_path: Path, capsys: object,
                                            monkeypatch: object) -> None:
    monkeypatch.setenv("COMFY_NB_CACHE", "on")  # type: ignore[attr-defined]
    monkeypatch.setenv("COMFY_NB_CACHE_DIR", str(tmp_path / "cache"))  # type: ignore[attr-defined]
    with serve(step_delay=0) as server:
        command = ["run", "--url", server.url, "--set", "KSampler.steps=2"]
        assert main([*command, "--out", str(tmp_path / "first")]) == 0
        first = capsys.readouterr().err  # type: ignore[attr-defined]
        assert main([*command, "--out", str(tmp_path / "second")]) == 0
        second = capsys.readouterr().err  # type: ignore[attr-defined]
        assert main([*command, "--out", str(tmp_path / "third"), "--no-cache"]) == 0
        third = capsys.readouterr().err  # type: ignore[attr-defined]
        jobs = httpx.get(server.url + "/history").json()
    prompt_id = first.split("queued ", 1)[1].split()[0]
    assert re.search(rf"^from cache {prompt_id} \(run on \d{{4}}-\d\d-\d\d \d\d:\d\d\); "
                     r"--no-cache runs it again$", second, re.MULTILINE), second
    assert "queued" not in second
    assert "queued " in third and prompt_id not in third
    assert len(jobs) == 2  # the cached run sent nothing
    assert [p.name for p in (tmp_path / "second").iterdir()] == ["ComfyUI_00001_.png"]


def test_run_saves_into_comfy_outputs_by_default(tmp_path: Path,
                                                 monkeypatch: object) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[attr-defined]
    assert main(["run", "--emulator", "--step-delay", "0", "--set", "KSampler.steps=1"]) == 0
    assert [p.name for p in (tmp_path / "comfy_outputs").iterdir()] == ["ComfyUI_00001_.png"]

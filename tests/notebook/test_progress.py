"""Progress panels against real jobs on the emulator: the widget message budget (counted with a
recording comm), the html and text back ends, and how the back end is chosen."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import comfy_nb
from comfy_nb.client._transport import RetryPolicy
from comfy_nb.job import JobProgress
from comfy_nb.notebook import backends, progress
from comfy_nb.notebook.backends import choose_backend
from comfy_nb.notebook.progress import (
    MAX_WIDGET_MESSAGES,
    HtmlPanel,
    LivePreview,
    Panel,
    RateLimit,
    StaticNote,
    TextPanel,
    WidgetPanel,
    follow,
    follow_in_background,
    status_html,
    status_text,
)
from comfy_nb.workflows import bundled

from ..factories import Clients, Emulators
from .comms import FakeHandle, Message, most_in_one_second, update_times
from .samples import FAILING


@pytest.fixture(scope="module")
def client(module_emulators: Emulators, module_clients: Clients) -> comfy_nb.Client:
    return module_clients.connect(module_emulators(step_delay=0.002))


@pytest.mark.slow
def test_a_1000_step_job_stays_within_10_widget_messages_a_second(
        client: comfy_nb.Client, comms: list[Message], handles: list[FakeHandle]) -> None:
    job = client.submit(bundled("txt2img"), overrides={"KSampler.steps": 1000})
    panel = WidgetPanel(job)
    panel.show()
    follow(job, panel, interval=0.01)
    result = job.wait()
    panel.finish(result)

    updates = update_times(comms)
    events = sum(1 for _ in job)  # every websocket event the job got
    rate = most_in_one_second(updates)
    assert events > 2000  # 1000 progress events and 1000 preview frames, at least
    assert len(updates) >= 10  # the panel did move
    assert rate <= MAX_WIDGET_MESSAGES, f"{rate} widget messages in one second"
    # the preview got frames, the status reached the sampler's last steps
    assert panel.preview.value[:2] == b"\xff\xd8"
    assert len(handles) == 1 and handles[0].shown is panel.box
    assert handles[0].updates[-1][1] is result  # the panel was replaced by the result


def test_previews_are_small_jpegs_at_most_four_a_second(
        client: comfy_nb.Client, comms: list[Message], handles: list[FakeHandle]) -> None:
    job = client.submit(bundled("txt2img"), overrides={"KSampler.steps": 400})
    panel = WidgetPanel(job)
    panel.show()
    preview_comm = panel.preview.comm.comm_id
    follow(job, panel, interval=0.01)
    frames = [moment for moment, comm_id, _, data in comms
              if comm_id == preview_comm and ["value"] in data.get("buffer_paths", [])]
    assert frames, "no preview frame reached the widget"
    assert most_in_one_second(frames) <= 4
    from PIL import Image

    image = Image.open(io.BytesIO(panel.preview.value))
    assert image.format == "JPEG" and max(image.size) <= progress.PREVIEW_SIDE


def test_preview_frames_are_spaced_from_when_they_are_sent(
        monkeypatch: pytest.MonkeyPatch, comms: list[Message]) -> None:
    """Decoding a frame takes time: the next frame waits 0.25 s from the moment the last one
    was sent, not from the tick that began decoding it."""
    from comfy_nb.client._events import Preview

    clock = [0.0]
    decode_times = iter([0.2] + [0.0] * 20)  # the first decode is slow, on a busy machine

    def decode(data: bytes, *args: object, **kwargs: object) -> bytes:
        clock[0] += next(decode_times)
        return b"\xff\xd8" + str(clock[0]).encode()

    monkeypatch.setattr(progress, "preview_jpeg", decode)
    preview = LivePreview(clock=lambda: clock[0])
    sent: list[float] = []
    preview.widget.observe(lambda change: sent.append(clock[0]), names="value")
    budget = RateLimit(100, 1.0, clock=lambda: clock[0])
    for tick in range(1, 40):  # a tick every 0.02 s, a new frame at each
        clock[0] = max(clock[0], 0.02 * tick)
        state = dataclasses.replace(RUNNING, previews=tick,
                                    preview=Preview("p", "3", "image/jpeg", b"x"))
        preview.update(state, clock[0], budget)
    assert len(sent) >= 3
    assert all(later - earlier >= progress.PREVIEW_INTERVAL - 1e-9
               for earlier, later in itertools.pairwise(sent)), sent


def test_html_back_end_updates_in_place_and_ends_with_the_result(
        client: comfy_nb.Client, handles: list[FakeHandle]) -> None:
    job = client.submit(bundled("txt2img"), overrides={"KSampler.steps": 500})
    panel = HtmlPanel(job)
    panel.show()
    follow(job, panel, interval=0.01)
    result = job.wait()
    panel.finish(result)
    handle = handles[0]
    assert "comfy-nb-graph" in handle.shown["text/html"]
    assert "text/plain" in handle.shown
    live = [moment for moment, obj in handle.updates if isinstance(obj, dict)]
    assert live and most_in_one_second(live) <= 4
    assert any("data:image/jpeg;base64," in obj["text/html"]
               for _, obj in handle.updates if isinstance(obj, dict))
    assert handle.updates[-1][1] is result


def test_text_back_end_writes_a_line_per_change(client: comfy_nb.Client) -> None:
    stream = io.StringIO()
    job = client.submit(bundled("txt2img"), overrides={"KSampler.steps": 200})
    panel = TextPanel(job, stream=stream)
    panel.show()
    follow(job, panel, interval=0.01)
    panel.finish(job.wait())
    lines = stream.getvalue().splitlines()
    assert any("KSampler" in line for line in lines)
    assert "succeeded" in lines[-1] and "nodes 7/7" in lines[-1]
    assert len(lines) < 20  # a line per node, not per step


def test_an_error_shows_in_the_status(client: comfy_nb.Client) -> None:
    job = client.submit(FAILING)
    with pytest.raises(comfy_nb.ExecutionFailed):
        job.wait(timeout=30)
    text = status_html(job.id, job.progress(), job.workflow)
    assert "comfy-nb-error" in text and "ImageSharpen" in text and "Sharpen" in text


RUNNING = JobProgress(status=comfy_nb.JobStatus.RUNNING, position=0, current_node="3",
                      node_value=8, node_max=40, nodes_done=3, nodes_total=7, elapsed=45.0,
                      previews=0, preview=None, error=None)


def test_the_status_says_when_the_server_is_unreachable() -> None:
    workflow = bundled("txt2img")
    assert "running · KSampler · step 8/40" in status_text("abc", RUNNING, workflow)

    away = dataclasses.replace(RUNNING, unreachable_for=12.3)
    line = status_text("abc", away, workflow)
    assert line.startswith("comfy_nb job abc: server unreachable for 12 s · KSampler")
    assert "running" not in line
    block = status_html("abc", away, workflow)
    assert "comfy-nb-unreachable" in block and "server unreachable for 12 s" in block

    gone = dataclasses.replace(away, unreachable_for=60.2, lost=True)
    assert "lost: server unreachable for 60 s" in status_text("abc", gone, workflow)
    forgotten = dataclasses.replace(RUNNING, lost=True)
    assert "lost: the server no longer knows this job" in status_text("abc", forgotten, None)


@contextlib.contextmanager
def _doomed_server(data_dir: Path) -> Iterator[tuple[comfy_nb.Client, subprocess.Popen[str]]]:
    """An emulator in a child process (to be killed as a crashed server would be) and a
    client of it that gives up on it after 0.5 s."""
    child = subprocess.Popen(
        [sys.executable, "-m", "comfy_nb.cli", "emulator", "--port", "0", "--step-delay",
         "0.01", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert child.stdout is not None
        url = child.stdout.readline().rsplit(" ", 1)[-1].strip()  # "... listening on <url>"
        with comfy_nb.connect(url, retry=RetryPolicy(backoff=0.02, max_backoff=0.1),
                              poll_interval=0.1) as client:
            yield client, child
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def _running_job(client: comfy_nb.Client) -> comfy_nb.Job:
    job = client.submit(bundled("txt2img"), overrides={"KSampler.steps": 3000})
    job.unreachable_after = 0.5
    deadline = time.monotonic() + 30
    while job.status is not comfy_nb.JobStatus.RUNNING:
        assert time.monotonic() < deadline, "the job never ran"
        time.sleep(0.01)
    return job


@pytest.mark.parametrize("backend", ["html", "text"])
def test_a_job_whose_server_died_ends_its_panel_with_the_error(
        backend: str, handles: list[FakeHandle], tmp_path: Path) -> None:
    stream = io.StringIO()
    with _doomed_server(tmp_path) as (client, server):
        job = _running_job(client)
        panel: Panel = HtmlPanel(job) if backend == "html" else TextPanel(job, stream=stream)
        panel.show()
        server.kill()
        with pytest.raises(comfy_nb.TransportError, match="unreachable since"):
            follow(job, panel, interval=0.01)
    assert panel.finished
    if backend == "html":
        note = handles[0].updates[-1][1]
        assert isinstance(note, StaticNote) and note.css_class == "comfy-nb-error"
        assert f"job {job.id}: the server has been unreachable since" in note.text
    else:
        last = stream.getvalue().splitlines()[-1]
        assert last.startswith(f"comfy_nb job {job.id[:8]}: lost: server unreachable for ")


def test_following_in_the_background_ends_when_the_job_is_lost(tmp_path: Path) -> None:
    ended = threading.Event()
    with _doomed_server(tmp_path) as (client, server):
        job = _running_job(client)
        thread = follow_in_background(job, Panel(job), ended.set, interval=0.01)
        server.kill()
        thread.join(30)
    assert ended.is_set() and job.lost


def test_rate_limit_is_a_sliding_window() -> None:
    now = [0.0]
    limit = RateLimit(3, 1.0, clock=lambda: now[0])
    assert [limit.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.99
    assert not limit.take()
    now[0] = 1.0  # the first three have left the window
    assert limit.take(3) and not limit.take()
    assert limit.room() == 0


def test_static_note_renders_text_and_html() -> None:
    note = StaticNote("job <x> cancelled", "comfy-nb-cancelled")
    bundle = note._repr_mimebundle_()
    assert bundle["text/plain"] == "job <x> cancelled"
    assert 'class="comfy-nb-cancelled"' in bundle["text/html"] and "&lt;x&gt;" in bundle[
        "text/html"]


@pytest.mark.parametrize("value", ["widget", "html", "text", "off", "TEXT"])
def test_the_environment_chooses_the_back_end(monkeypatch: pytest.MonkeyPatch,
                                              value: str) -> None:
    monkeypatch.setenv("COMFY_NB_PROGRESS", value)
    assert choose_backend() == value.lower()
    assert choose_backend("html") == "html"  # an explicit choice wins


def test_an_unknown_back_end_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFY_NB_PROGRESS", "fancy")
    with pytest.raises(ValueError, match="widget, html, text, off"):
        choose_backend()


def test_auto_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMFY_NB_PROGRESS", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("VSCODE_PID", raising=False)
    monkeypatch.setattr(backends, "_shell_name", lambda: "TerminalInteractiveShell")
    assert choose_backend() == "text"
    monkeypatch.setattr(backends, "_shell_name", lambda: "ZMQInteractiveShell")
    assert choose_backend() == "html"  # a kernel nobody draws widgets for (nbclient)
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/x.ipynb")
    assert choose_backend() == "widget"  # a kernel started by JupyterLab
    monkeypatch.setattr(backends, "_shell_name", lambda: "")
    assert choose_backend() == "text"  # plain Python

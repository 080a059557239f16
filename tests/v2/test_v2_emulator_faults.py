"""The client against the v2 emulator's faults, the races comfy-api-proxy shows: a just-finished
job that reads ``expired`` (``expired_race``), an event stream that misses its job's end
(``sse_stall``), and a cancel that answers but cancels nothing (``cancel_noop``). Each job must
still end as it really did, and a cancel must say what happened."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import comfy_nb
from comfy_nb.emulator import RunningEmulator, serve
from comfy_nb.events import Progress, Succeeded

from .workflows import invert, txt2img

WAIT = 60.0


@pytest.fixture
def server() -> Iterator[RunningEmulator]:
    with serve("v2", step_delay=0.02, token="t0ken") as running:
        yield running


@pytest.fixture
def client(server: RunningEmulator) -> Iterator[comfy_nb.Client]:
    with comfy_nb.connect(server.url, api_key="t0ken", poll_interval=0.2) as made:
        assert made.dialect == "v2"
        yield made


def test_a_job_that_reads_expired_right_after_its_end_succeeds(
        server: RunningEmulator, client: comfy_nb.Client) -> None:
    # the stream misses the end, so the job's reads find it, and they find it "expired"
    server.set_faults(expired_race=0.3, sse_stall=20.0)
    for number in range(3):
        result = client.run(invert(f"raced_{number}"), cache=False, timeout=WAIT)
        assert result.status == "succeeded" and result.images


def test_a_stream_that_misses_the_end_still_ends_the_job(
        server: RunningEmulator, client: comfy_nb.Client) -> None:
    server.set_faults(sse_stall=20.0)  # longer than the wait below: only the reads can end it
    job = client.submit(txt2img(steps=3), cache=False)
    seen = list(job)  # ends: the job's reads find what the stream did not say
    result = job.wait(10.0)
    assert result.status == "succeeded" and result.images
    assert any(isinstance(event, Succeeded) for event in seen)


def test_a_cancel_the_server_ignores_is_reported_and_the_job_runs_on(
        server: RunningEmulator, client: comfy_nb.Client,
        caplog: pytest.LogCaptureFixture) -> None:
    server.set_faults(cancel_noop=True)
    job = client.submit(txt2img(steps=12), cache=False)
    for event in job:
        if isinstance(event, Progress):
            break
    with caplog.at_level(logging.WARNING, logger="comfy_nb"):
        assert job.cancel() is False
    assert f"the server did not cancel job {job.id}" in caplog.text
    assert job.wait(WAIT).status == "succeeded"


def test_a_cancel_the_server_honours_cancels(server: RunningEmulator,
                                             client: comfy_nb.Client) -> None:
    job = client.submit(txt2img(steps=40), cache=False)
    for event in job:
        if isinstance(event, Progress):
            break
    assert job.cancel() is True
    with pytest.raises(comfy_nb.JobCancelled):
        job.wait(WAIT)

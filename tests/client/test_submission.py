"""Submitting a workflow: the job is followed by the id the server answers, and no failure makes
it run twice. Against the emulator over real sockets, through the synchronous and the async
client, on a local ComfyUI (which uses the ``prompt_id`` a client sends) and on a Comfy Cloud
that ignores it (the emulator's default). Lost answers come from the emulator's
``lose_prompt_answers`` fault: the prompt is queued, then the connection closes unanswered."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from comfy_nb import InvalidJobId, JobStatus, RetryPolicy, ServerError, SubmissionUncertain
from comfy_nb.client._dialects import job_path
from comfy_nb.emulator import RunningEmulator, serve
from comfy_nb.events import Started, Succeeded
from tests import fixture_paths

from ..both_clients import Api, api_maker
from ..factories import Clients, Emulators

FAST_RETRY = RetryPolicy(backoff=0.02, max_backoff=0.1, max_retry_after=0.2)
UNSAFE_IDS = ["../prompt", "a/../../prompt", "..", ".", "", "a/b", "a\\b", "%2e%2e",
              "a%2Fb", "x\ny", "a" * 300]


def invert(color: int = 0x336699) -> dict[str, Any]:
    """EmptyImage -> ImageInvert -> SaveImage; a new ``color`` defeats the server's cache."""
    path = fixture_paths.COMFYUI / "runs" / "empty_invert_save" / "post_prompt.json"
    prompt = copy.deepcopy(json.loads(path.read_text("utf-8"))["request"]["body"]["prompt"])
    prompt["1"]["inputs"].update(color=color, width=8, height=8)
    prompt["3"]["inputs"]["filename_prefix"] = "submission_test"
    return dict(prompt)


@pytest.fixture(params=["local", "cloud"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(dialect: str, emulators: Emulators) -> RunningEmulator:
    return emulators(dialect, step_delay=0.01)


@pytest.fixture
def connect(mode: str, server: RunningEmulator, clients: Clients) -> Callable[..., Awaitable[Api]]:
    return functools.partial(clients.api, mode, server, retry=FAST_RETRY, poll_interval=0.1)


@pytest.fixture
async def api(connect: Callable[..., Awaitable[Api]]) -> Api:
    made = await connect()
    await made.object_info()  # read once: the faults below hit the submission itself
    return made


async def listed_ids(api: Api) -> list[str]:
    return [job["id"] for job in await api.jobs(50)]


# -- the id the server answers ---------------------------------------------------------------------


async def test_the_job_is_followed_by_the_id_the_server_answers(api: Api,
                                                                server: RunningEmulator) -> None:
    asked = "3d4c2b1a-0000-4000-8000-00000000abcd"
    job = await api.submit(invert(), prompt_id=asked)
    result = await api.wait(job)
    assert job.status is JobStatus.SUCCEEDED and len(result.images) == 1
    assert await listed_ids(api) == [job.id] and result.prompt_id == job.id
    if server.dialect == "local":  # ComfyUI uses the id it is sent
        assert job.id == asked
    else:  # the Cloud emulator, by default, picks its own
        assert job.id != asked
    assert server.state.number == 1


async def test_a_cloud_that_honours_client_ids_keeps_the_one_asked_for(mode: str) -> None:
    with serve(dialect="cloud", step_delay=0.01, cloud_honours_prompt_id=True) as cloud:
        async with api_maker(mode, cloud.url, cloud, retry=FAST_RETRY,
                             poll_interval=0.1) as make:
            api = await make()
            asked = "3d4c2b1a-0000-4000-8000-00000000abcd"
            job = await api.submit(invert(), prompt_id=asked)
            assert job.id == asked
            assert (await api.wait(job)).prompt_id == asked


async def test_each_cloud_submission_carries_its_own_marker(mode: str) -> None:
    with serve(dialect="cloud", step_delay=0.01) as cloud:
        async with api_maker(mode, cloud.url, cloud, retry=FAST_RETRY,
                             poll_interval=0.1) as make:
            api = await make()
            jobs = [await api.submit(invert(color), extra_data={"note": "n"})
                    for color in (1, 2)]
            for job in jobs:
                await api.wait(job)
            extras = [cloud.state.jobs[job.id].extra["extra_data"] for job in jobs]
            assert all(set(extra) == {"note", "comfy_nb_submission"} for extra in extras)
            assert extras[0]["comfy_nb_submission"] != extras[1]["comfy_nb_submission"]


# -- a lost answer ---------------------------------------------------------------------------------


async def test_a_lost_answer_finds_the_job_instead_of_sending_it_again(
        api: Api, server: RunningEmulator) -> None:
    server.faults.update(lose_prompt_answers=1)
    job = await api.submit(invert())
    result = await api.wait(job)
    assert job.status is JobStatus.SUCCEEDED and len(result.images) == 1
    assert server.faults.lose_prompt_answers == 0  # the answer was lost
    assert server.state.number == 1  # and the prompt was sent once
    assert await listed_ids(api) == [job.id]


async def test_a_lost_answer_then_failing_lookups_never_sends_it_again(
        api: Api, server: RunningEmulator) -> None:
    # the first lookup gets 503 on every attempt of its GET; the next one gets through
    server.faults.update(lose_prompt_answers=1, http_error_count=FAST_RETRY.attempts)
    job = await api.submit(invert())
    await api.wait(job)
    assert server.faults.http_error_count == 0
    assert server.state.number == 1
    assert await listed_ids(api) == [job.id]


async def test_a_lost_answer_the_server_cannot_explain_is_uncertain(
        api: Api, server: RunningEmulator) -> None:
    server.faults.update(lose_prompt_answers=1, http_error_count=10_000)
    with pytest.raises(SubmissionUncertain) as caught:
        await api.submit(invert())
    server.faults.update(http_error_count=0)
    message = str(caught.value)
    assert "may or may not be queued" in message and "not sent again" in message
    assert "the connection broke" in str(caught.value.__cause__)
    assert server.state.number == 1  # never sent again
    for secret in api.secrets:
        assert secret not in message
    (queued,) = await listed_ids(api)
    if server.dialect == "local":  # its id is known: it can be followed
        assert caught.value.prompt_id == queued and f"client.job({queued!r})" in message
        job = await api.job(queued)
        assert (await api.wait(job)).prompt_id == queued
    else:
        assert caught.value.prompt_id is None and "client.jobs()" in message


async def test_events_that_come_before_the_answer_are_kept(
        connect: Callable[..., Awaitable[Api]], server: RunningEmulator) -> None:
    api = await connect()  # with a websocket
    await api.object_info()
    # the job runs to its end while the client looks for it (each lookup waits 0.3 s)
    server.faults.update(lose_prompt_answers=1, latency=0.3)
    job = await api.submit(invert())
    server.faults.update(latency=0.0)
    kinds = [type(event) for event in await api.events(job)]
    assert kinds.count(Started) == 1 and Succeeded in kinds
    assert kinds.index(Started) < kinds.index(Succeeded)


# -- error answers ---------------------------------------------------------------------------------


async def test_a_gateway_error_is_looked_up_before_anything_is_sent_again(
        api: Api, server: RunningEmulator) -> None:
    server.faults.update(http_error_count=1, http_error_status=502)
    if server.dialect == "local":  # the id is not queued: the request failed; sent again
        job = await api.submit(invert())
        await api.wait(job)
        assert server.state.number == 1 and await listed_ids(api) == [job.id]
    else:  # Cloud cannot show it was not queued: not sent again
        with pytest.raises(SubmissionUncertain) as caught:
            await api.submit(invert())
        assert isinstance(caught.value.__cause__, ServerError)
        assert caught.value.__cause__.status == 502
        assert server.state.number == 0 and await listed_ids(api) == []


async def test_a_500_that_queued_nothing_is_raised(api: Api, server: RunningEmulator) -> None:
    server.faults.update(http_error_count=1, http_error_status=500)
    if server.dialect == "local":
        with pytest.raises(ServerError) as caught:
            await api.submit(invert())
        assert caught.value.status == 500
    else:
        with pytest.raises(SubmissionUncertain):
            await api.submit(invert())
    assert server.state.number == 0 and await listed_ids(api) == []


# -- ids in URL paths ------------------------------------------------------------------------------


def test_job_path_escapes_every_reserved_character() -> None:
    assert job_path("3d4c2b1a-0000-4000-8000-00000000abcd") == \
        "3d4c2b1a-0000-4000-8000-00000000abcd"
    assert job_path("my job?#1") == "my%20job%3F%231"
    assert job_path("...x") == "...x"
    for unsafe in UNSAFE_IDS:
        with pytest.raises(InvalidJobId, match="cannot be a job id"):
            job_path(unsafe)


@pytest.mark.parametrize("unsafe", ["../prompt", "a/../../prompt", "..", "a%2Fb"])
async def test_ids_that_could_address_another_endpoint_are_refused(
        api: Api, server: RunningEmulator, unsafe: str) -> None:
    server.faults.update(http_error_count=1)  # consumed by the first request that is made
    with pytest.raises(InvalidJobId):
        await api.job(unsafe)
    with pytest.raises(InvalidJobId):
        await api.cancel(unsafe)
    with pytest.raises(InvalidJobId):
        await api.submit(invert(), prompt_id=unsafe)
    assert server.faults.http_error_count == 1  # none of them sent anything
    assert isinstance(InvalidJobId("x"), ValueError)

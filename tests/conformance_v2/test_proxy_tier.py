"""The v2 emulator against the real implementation: every replayable scenario is sent to
comfy-api-proxy 0.1.6 (started here, in front of a local-dialect emulator) and to the v2
emulator, and both must give the same answers, shape for shape (``observation_shape``: status,
compared headers, body shape, stream event types and final status). The proxy's answers are also
compared with the recording, as the emulator's are in ``test_scenarios``: that shows the replay
and its comparisons hold for the real implementation, not only for the emulator.

90 and 91 are left out: they record races the proxy cannot be made to lose on purpose
(``deviations.RACE_FAULTS``).
"""

from __future__ import annotations

import pytest

from ..factories import Emulators
from ..v2_proxy import serve_proxy
from ._replay import compare, exchanges, observation_shape, replay
from .test_scenarios import PRELUDE, SCENARIOS, TOKEN, job_speed, server_options

pytestmark = pytest.mark.conformance

RACES = {"90_race_poll_expired_webp", "91_race_sse_stall_15s"}
SLOW = {"23_two_sse_streams_same_job"}  # the proxy's own 15 s heartbeat ends the first stream


@pytest.mark.parametrize("scenario", [
    pytest.param(s, marks=[pytest.mark.slow] if s in SLOW else [])
    for s in SCENARIOS if s not in RACES])
def test_proxy_and_emulator_answer_alike(emulators: Emulators, scenario: str) -> None:
    comfyui = emulators("local", **job_speed(scenario))
    with serve_proxy(comfyui.url, token=TOKEN) as proxy:
        from_proxy = replay(proxy.url, scenario, TOKEN, PRELUDE.get(scenario, ()))
    v2 = emulators("v2", token=TOKEN, **server_options(scenario))
    from_emulator = replay(v2.url, scenario, TOKEN, PRELUDE.get(scenario, ()))
    recorded = exchanges(scenario)
    for exchange, obs in zip(recorded, from_proxy, strict=True):
        compare(exchange, obs)
    for exchange, proxy_obs, emulator_obs in zip(recorded, from_proxy, from_emulator,
                                                 strict=True):
        assert observation_shape(emulator_obs) == observation_shape(proxy_obs), (
            f"{scenario}/{exchange['seq']:03d} {exchange['request']['method']} "
            f"{exchange['request']['path']}")


def range_answers(base_url: str) -> list[tuple[int, str | None, str | None, int]]:
    """Status, Content-Range, error code and length of an output's content asked whole, in
    part, from the end, and past the end."""
    import time

    import httpx

    workflow = exchanges("21_raw_invert_poll")[0]["request"]["body"]["json"]
    answers = []
    with httpx.Client(base_url=base_url, timeout=30,
                      headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        job = http.post("/api/v2/jobs", json=workflow).json()
        for _ in range(3000):
            job = http.get(f"/api/v2/jobs/{job['id']}").json()
            if job["status"] == "succeeded":
                break
            time.sleep(0.01)
        content = f"/api/v2/assets/{job['outputs'][0]['id']}/content"
        size = len(http.get(content).content)
        for wanted in (None, "bytes=0-15", "bytes=-7", f"bytes={size}-"):
            answer = http.get(content, headers={"Range": wanted} if wanted else {})
            code = answer.json()["error"]["code"] if answer.status_code >= 400 else None
            answers.append((answer.status_code, answer.headers.get("Content-Range"), code,
                            len(answer.content) if code is None else 0))
    return answers


def test_ranges_of_an_output_are_answered_alike(emulators: Emulators) -> None:
    """The local emulator's /view honours Range, so the proxy passes 206 through and turns
    its 416 into 502 upstream_error; the v2 emulator answers the same."""
    comfyui = emulators("local")
    with serve_proxy(comfyui.url, token=TOKEN) as proxy:
        through_proxy = range_answers(proxy.url)
    from_emulator = range_answers(emulators("v2", token=TOKEN).url)
    assert from_emulator == through_proxy
    assert [status for status, *_ in from_emulator] == [200, 206, 206, 502]
    assert from_emulator[3][2] == "upstream_error"

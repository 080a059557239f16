"""Every recorded v2 scenario replayed against the v2 emulator over real sockets, each answer
compared with the recorded one (``_replay.compare``; what it relaxes is in ``deviations.py``).

Jobs run slowly enough (``node_delay``, ``step_delay``) that the recorded passing states can be
seen; the scenarios that recorded one of the proxy's races or its no-op cancel turn on the fault
that reproduces it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests import fixture_paths

from ..factories import Emulators
from . import deviations as dev
from ._replay import compare, exchanges, replay

pytestmark = pytest.mark.conformance

TOKEN = "v2-conformance-token"
SLOW_JOBS: dict[str, Any] = {"node_delay": 0.2, "step_delay": 0.15}
# slower still where a stream must open on a job that would otherwise end too soon
SLOWER_JOBS: dict[str, dict[str, Any]] = {"13_sdk_execution_error": {"node_delay": 0.5}}
# what a scenario needs of the server besides slow jobs, and the scenarios replayed before it
SETUP: dict[str, dict[str, Any]] = {
    "10_sdk_cancel_running_txt2img": {"faults": {"cancel_noop": True}},  # dev.CANCEL_NOOP
    "22_queued_position_and_cancel_queued": {"faults": {"cancel_noop": True}},
    "23_two_sse_streams_same_job": {"sse_heartbeat": 1.0},  # dev.STALL_LENGTH
    "90_race_poll_expired_webp": {"faults": {"expired_race": 30.0}},  # dev.RACE_FAULTS
    "91_race_sse_stall_15s": {"faults": {"sse_stall": 1.0}},  # dev.STALL_LENGTH
}
PRELUDE = {"19_raw_job_list": ("21_raw_invert_poll", "13_sdk_execution_error")}  # JOB_LIST_CONTENT
SCENARIOS = [path.name for path in fixture_paths.listing(
    fixture_paths.COMFY_API_V2, where=lambda path: path.is_dir())]


def job_speed(scenario: str) -> dict[str, Any]:
    """How slowly jobs run for ``scenario`` (the emulator behind the proxy too)."""
    return {**SLOW_JOBS, **SLOWER_JOBS.get(scenario, {})}


def server_options(scenario: str) -> dict[str, Any]:
    return {**job_speed(scenario), **SETUP.get(scenario, {})}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_is_answered_as_recorded(emulators: Emulators, scenario: str) -> None:
    server = emulators("v2", token=TOKEN, **server_options(scenario))
    observations = replay(server.url, scenario, TOKEN, PRELUDE.get(scenario, ()))
    recorded = exchanges(scenario)
    assert [obs.seq for obs in observations] == [exchange["seq"] for exchange in recorded]
    for exchange, obs in zip(recorded, observations, strict=True):
        compare(exchange, obs)


def test_every_deviation_is_used() -> None:
    """Each declared deviation is named by the code that relaxes a check for it."""
    from pathlib import Path

    here = Path(__file__).parent
    text = "".join(p.read_text("utf-8") for p in here.glob("*.py") if p.name != "deviations.py")
    names = [name for name, value in vars(dev).items() if isinstance(value, str)
             and value in dev.DEVIATIONS]
    unused = [name for name in names if name not in text]
    assert not unused, f"deviations named nowhere: {unused}"

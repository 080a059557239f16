"""One rule for waiting before trying again (comfy_nb.client._backoff.Backoff): its waits, and
that the transport's retries, a job's failing reads and the websocket's reconnects all wait by
it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from comfy_nb import AsyncClient, RetryPolicy
from comfy_nb.client._backoff import Backoff
from comfy_nb.client._events import EventSocket
from comfy_nb.client._transport import Transport
from comfy_nb.emulator import RunningEmulator, serve

WAIT = 30.0


@pytest.fixture
def server() -> Iterator[RunningEmulator]:
    with serve(step_delay=0.01) as running:
        yield running


def test_waits_double_up_to_the_cap() -> None:
    rule = Backoff(0.5, 4.0)
    assert [rule.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert rule.delay(10**6) == 4.0  # no overflow, however many failures


def test_each_wait_is_spread_within_its_range() -> None:
    waits = [Backoff(1.0, 100.0, (0.5, 1.0)).delay(3) for _ in range(200)]
    assert all(4.0 <= wait <= 8.0 for wait in waits) and len(set(waits)) > 1


def test_a_retry_policy_waits_by_the_rule() -> None:
    policy = RetryPolicy(backoff=0.5, max_backoff=4.0, jitter=0.25)
    assert policy.waits == Backoff(0.5, 4.0, (0.75, 1.25))
    assert policy.delay(1, retry_after=100.0) == policy.max_retry_after  # Retry-After wins


class Asked(list[tuple[Backoff, int]]):
    """The waits asked of :class:`Backoff`: (rule, failures)."""


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> Asked:
    record = Asked()
    real = Backoff.delay

    def delay(self: Backoff, failures: int, rng: Any = None) -> float:
        record.append((self, failures))
        return real(self, failures, rng)

    monkeypatch.setattr(Backoff, "delay", delay)
    return record


async def test_a_retried_request_waits_by_the_rule(server: RunningEmulator,
                                                   asked: Asked) -> None:
    server.faults.update(http_error_count=1, http_error_status=503)
    policy = RetryPolicy(backoff=0.01, max_backoff=0.02)
    async with Transport(server.url, retry=policy) as http:
        assert (await http.request("GET", "/queue")).status == 200
    assert asked == [(policy.waits, 0)]


async def test_a_failing_read_of_a_job_waits_by_the_rule(asked: Asked) -> None:
    client = AsyncClient("http://127.0.0.1:9", poll_interval=0.5, websocket=False)
    delays = [client._server.poll_delay(completion_hinted=False, failures=n)
              for n in (0, 1, 2)]
    assert [failures for _, failures in asked] == [1, 2]  # none before the first failure
    assert all(rule.cap == 10.0 and rule.spread == (0.8, 1.0) for rule, _ in asked)
    assert delays[2] > delays[0]


async def test_a_reconnecting_websocket_waits_by_the_rule(server: RunningEmulator,
                                                          asked: Asked) -> None:
    server.faults.update(ws_drop_after_frames=2)
    failed = asyncio.Event()

    def on_state(state: str) -> None:
        if state == "failed":
            failed.set()

    socket = EventSocket(server.ws_url, on_event=lambda event: None, on_state=on_state,
                         give_up_after=2, max_backoff=0.05)
    await socket.start()
    server.faults.update(ws_refuse=True)
    try:
        await asyncio.wait_for(failed.wait(), WAIT)
    finally:
        await socket.close()
    assert [failures for _, failures in asked] == [0, 1]
    assert {rule for rule, _ in asked} == {Backoff(0.1, 0.1, (0.5, 1.0))}

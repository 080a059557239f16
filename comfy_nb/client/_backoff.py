"""Waiting before trying again, by one rule: :class:`Backoff` (waits that double after each
failure, up to a cap, each spread at random so that clients that failed together do not try again
together). Three things wait by it: the transport before retrying a request (its waits come from
the public :class:`RetryPolicy`), a job whose state cannot be read before reading it again, and
the event websocket before reconnecting.

Must not: sleep or know what is being tried again (callers ask how long, then wait).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff", "RetryPolicy"]

MAX_DOUBLINGS = 32  # past this many failures the wait stops growing (it is long capped by then)


@dataclass(frozen=True)
class Backoff:
    """The wait after ``failures`` failures in a row: ``first * 2**failures`` seconds, at most
    ``cap``, times a random factor between ``spread[0]`` and ``spread[1]``."""

    first: float
    cap: float
    spread: tuple[float, float] = (1.0, 1.0)

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``failures`` failures in a row (0: the first try failed)."""
        base = min(self.first * 2.0 ** min(max(failures, 0), MAX_DOUBLINGS), self.cap)
        return max(0.0, base * (rng if rng is not None else random).uniform(*self.spread))


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a request that may succeed when tried again
    (``connect(url, retry=RetryPolicy(...))``)."""

    attempts: int = 4  # total tries for a retryable failure
    backoff: float = 0.5  # first wait; doubles each retry: min(backoff * 2**n, max_backoff)
    max_backoff: float = 16.0
    max_retry_after: float = 30.0  # cap on a server's Retry-After
    jitter: float = 0.25  # +/- fraction of random jitter on each wait

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if min(self.backoff, self.max_backoff, self.max_retry_after) < 0:
            raise ValueError("RetryPolicy waits must be >= 0")
        if not 0 <= self.jitter < 1:
            raise ValueError("RetryPolicy.jitter must be in [0, 1)")

    @property
    def waits(self) -> Backoff:
        """The waits between tries, as a :class:`Backoff`."""
        return Backoff(self.backoff, self.max_backoff, (1.0 - self.jitter, 1.0 + self.jitter))

    def delay(self, retry: int, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry). A server's
        ``Retry-After`` wins (capped at ``max_retry_after``, no jitter, never shortened)."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_retry_after)
        return self.waits.delay(retry, rng)

"""Cancelling on a local server while its queue moves: a job read as pending may start before
it is removed. A real server cannot be made to start a job at that exact moment, so a queue
that does it on cue stands in for one here; everything else is the dialect's own code."""

from __future__ import annotations

from typing import Any

import pytest

from comfy_nb.client._dialects import DIALECTS


class Answer:
    def __init__(self, body: Any) -> None:
        self._body = body
        self.status = 200

    def json(self) -> Any:
        return self._body


class MovingQueue:
    """ComfyUI's /queue, /queue delete and /interrupt, where ``starts`` begins to run between
    the first read of the queue and the removal of pending jobs (the job that ran before it
    ended just then)."""

    def __init__(self, pending: list[str], running: str | None, starts: str | None) -> None:
        self.pending = list(pending)
        self.running = running
        self.starts = starts
        self.interrupted: list[str | None] = []
        self.removed: list[str] = []

    async def request(self, method: str, path: str, *, json: Any = None, **_: Any) -> Answer:
        if (method, path) == ("GET", "/api/queue"):
            body = self._body()
            if self.starts is not None:  # right after this read, the next job starts
                self.pending.remove(self.starts)
                self.running, self.starts = self.starts, None
            return Answer(body)
        if (method, path) == ("POST", "/api/queue"):
            for prompt_id in json["delete"]:
                if prompt_id in self.pending:
                    self.pending.remove(prompt_id)
                    self.removed.append(prompt_id)
            return Answer({})
        if (method, path) == ("POST", "/api/interrupt"):
            target = json.get("prompt_id")
            if target is None or target == self.running:
                self.interrupted.append(self.running)
                self.running = None
            return Answer({})
        raise AssertionError(f"unexpected {method} {path}")

    def _body(self) -> dict[str, Any]:
        running = [[0, self.running, {}, {}, []]] if self.running else []
        return {"queue_running": running,
                "queue_pending": [[n, pid, {}, {}, []] for n, pid in enumerate(self.pending, 1)]}


async def test_a_pending_job_that_starts_while_it_is_cancelled_is_interrupted() -> None:
    server = MovingQueue(pending=["b"], running=None, starts="b")
    assert await DIALECTS["local"].cancel(server, "b")  # type: ignore[arg-type]
    assert server.interrupted == ["b"]  # removing it came too late: it was stopped instead
    assert server.running is None and server.pending == []


@pytest.mark.parametrize("starts", ["b", "c"])
async def test_cancel_many_stops_one_that_started_in_between(starts: str) -> None:
    server = MovingQueue(pending=["b", "c", "other"], running=None, starts=starts)
    cancelled = await DIALECTS["local"].cancel_many(server,  # type: ignore[arg-type]
                                                    ["b", "c"])
    assert sorted(cancelled) == ["b", "c"]
    assert server.interrupted == [starts]
    assert server.pending == ["other"]  # not one of them: left alone


async def test_a_job_running_from_the_start_is_interrupted_and_nothing_else_is_read() -> None:
    server = MovingQueue(pending=["c"], running="a", starts=None)
    assert await DIALECTS["local"].cancel_many(server, ["a"]) == ["a"]  # type: ignore[arg-type]
    assert server.interrupted == ["a"] and server.pending == ["c"] and server.removed == []

"""One short line per websocket event: what ``str(event)`` (and so ``print(event)``) shows,
``Progress(job 1f0c9a2e: node 3, step 12/20)``. The events themselves live in :mod:`._events`;
their ``repr`` keeps every field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..events import (
    Cached,
    Event,
    Failed,
    FeatureFlags,
    Interrupted,
    NodeExecuted,
    NodeStarted,
    Preview,
    Progress,
    ProgressState,
    Queued,
    Status,
    Text,
    Unknown,
)


def one_line(event: Event) -> str:
    """``Class(job <first 8 characters>: what happened)``."""
    job = f"job {event.prompt_id[:8]}" if event.prompt_id else ""
    describe = _DETAILS.get(type(event))
    details = describe(event) if describe is not None else ""
    inside = f"{job}: {details}" if job and details else job or details
    return f"{type(event).__name__}({inside})"


def _short(text: str, width: int = 60) -> str:
    """``text`` on one line, cut to ``width`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[:width - 1] + "…"


def _nodes(ids: tuple[str, ...], shown: int = 8) -> str:
    """``nodes 4, 5, 6`` (the first ``shown``, then how many more)."""
    if not ids:
        return "no nodes"
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return f"node{'' if len(ids) == 1 else 's'} {', '.join(ids[:shown])}{more}"


def _states(event: ProgressState) -> str:
    """``5 nodes: 2 finished, 1 running, 2 pending``."""
    counts: dict[str, int] = {}
    for node in event.nodes.values():
        state = str(node.get("state") or "?") if isinstance(node, dict) else "?"
        counts[state] = counts.get(state, 0) + 1
    total = f"{len(event.nodes)} node{'' if len(event.nodes) == 1 else 's'}"
    return total + (": " + ", ".join(f"{n} {state}" for state, n in counts.items())
                    if counts else "")


def _failed(event: Failed) -> str:
    where = f"node {event.node_id}" if event.node_id else ""
    if event.node_type:
        where = f"{where} ({event.node_type})".strip()
    error = _short(f"{event.exception_type}: {event.exception_message}")
    return f"{where}, {error}" if where else error


def _preview(event: Preview) -> str:
    node = f"node {event.node_id}, " if event.node_id else ""
    return f"{node}{event.mime}, {len(event.data)} bytes"


_DETAILS: dict[type, Callable[[Any], str]] = {
    Queued: lambda e: "" if e.number is None else f"number {e.number:g}",
    Status: lambda e: f"queue {e.queue_remaining}",
    Cached: lambda e: _nodes(e.nodes),
    NodeStarted: lambda e: f"node {e.node_id}",
    Progress: lambda e: f"node {e.node_id}, step {e.value:g}/{e.max:g}",
    ProgressState: _states,
    NodeExecuted: lambda e: f"node {e.node_id}" + (f", {', '.join(e.output)}" if e.output
                                                   else ""),
    Failed: _failed,
    Interrupted: lambda e: f"node {e.node_id}" if e.node_id else "",
    Preview: _preview,
    Text: lambda e: f"node {e.node_id}, {_short(repr(e.text))}",
    FeatureFlags: lambda e: _short(", ".join(f"{k}={v}" for k, v in e.flags.items())),
    Unknown: lambda e: _short(e.type),
}

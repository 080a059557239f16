"""What widgets and display handles send, recorded for the message-budget tests of the notebook
views (and ``benchmarks/panel_messages.py``): a comm that logs every message with its time, a
stand-in for the handle of ``display(..., display_id=True)``, and the busiest second of a list
of times. Plain Python, no pytest: the ``comms`` and ``handles`` fixtures in ``conftest.py``
install them."""

from __future__ import annotations

import time
from typing import Any, ClassVar

#: one message: (time.monotonic(), comm id, "open" | "send" | "close", data)
Message = tuple[float, str, str, dict[str, Any]]


class RecordingComm:
    """A comm that records every message a widget sends (opens, updates, closes) in ``log``
    instead of sending it. Install it with ``comm.create_comm = RecordingComm``."""

    log: ClassVar[list[Message]] = []
    count = 0

    def __init__(self, **kwargs: Any) -> None:
        RecordingComm.count += 1
        self.comm_id = f"comm-{RecordingComm.count}"
        self.kernel = "Truthy"
        RecordingComm.log.append((time.monotonic(), self.comm_id, "open", {}))

    def open(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_msg(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        RecordingComm.log.append((time.monotonic(), self.comm_id, "send", data or {}))

    def close(self, *args: Any, **kwargs: Any) -> None:
        RecordingComm.log.append((time.monotonic(), self.comm_id, "close", {}))


def update_times(log: list[Message], comm_id: str | None = None) -> list[float]:
    """When the state updates in ``log`` were sent (of one comm, with ``comm_id``)."""
    return [moment for moment, sender, _, data in log
            if data.get("method") == "update" and (comm_id is None or sender == comm_id)]


class FakeHandle:
    """Stands for the DisplayHandle of ``display(..., display_id=True)``: keeps what was shown
    and every update with its time."""

    def __init__(self, shown: Any) -> None:
        self.shown = shown
        self.updates: list[tuple[float, Any]] = []

    def update(self, obj: Any, **kwargs: Any) -> None:
        self.updates.append((time.monotonic(), obj))


def most_in_one_second(times: list[float]) -> int:
    """The largest number of events inside any window of one second."""
    best = 0
    start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best

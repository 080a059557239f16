"""The prompt queue and history of one emulated server, with ComfyUI's semantics: a heap ordered by
``number`` (so ``GET /queue`` shows pending prompts in heap order), the running set, and an
in-memory history capped at 10,000 entries whose ``prompt`` tuple has the partner-node keys
stripped.

Thread-safe: the HTTP handlers run on the event loop, the executor on worker threads.
"""

from __future__ import annotations

import copy
import heapq
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAXIMUM_HISTORY_SIZE = 10000
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


@dataclass(order=True)
class QueueItem:
    """One queued prompt. Ordered like ComfyUI's heap tuples: by number, then prompt_id."""

    number: float
    prompt_id: str
    prompt: dict[str, Any] = field(compare=False)
    extra_data: dict[str, Any] = field(compare=False)
    outputs_to_execute: list[str] = field(compare=False)
    account: str = field(default="", compare=False)
    create_time: int = field(default=0, compare=False)

    def as_list(self) -> list[Any]:
        """The 5-element list ComfyUI shows in ``/queue``."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs_to_execute]

    def as_history_list(self) -> list[Any]:
        """The 5-element list stored in history, with partner-node keys removed."""
        extra = {k: v for k, v in self.extra_data.items() if k not in SENSITIVE_EXTRA_DATA_KEYS}
        return [self.number, self.prompt_id, self.prompt, extra, self.outputs_to_execute]


class PromptQueue:
    """Pending heap, running items and history. ``on_change`` is called (under no lock) after
    every change that alters ``queue_remaining``, as ComfyUI's ``queue_updated`` is."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self._lock = threading.RLock()
        self._not_empty = threading.Condition(self._lock)
        self._pending: list[QueueItem] = []
        self._running: dict[int, QueueItem] = {}
        self._counter = 0
        self._history: dict[str, dict[str, Any]] = {}
        self._closed = False

    # -- queue -------------------------------------------------------------------------------

    def put(self, item: QueueItem) -> None:
        with self._lock:
            heapq.heappush(self._pending, item)
            self._not_empty.notify()
        self._on_change()

    def get(self, timeout: float | None = None) -> tuple[int, QueueItem] | None:
        """Take the first pending item (lowest number), waiting up to ``timeout`` seconds;
        None on timeout or after :meth:`close`."""
        with self._lock:
            while not self._pending:
                if self._closed or not self._not_empty.wait(timeout):
                    return None
            if self._closed:
                return None
            chosen = heapq.heappop(self._pending)
            item_id = self._counter
            self._counter += 1
            self._running[item_id] = chosen
        self._on_change()
        return item_id, chosen

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()

    def task_done(self, item_id: int, history_entry: dict[str, Any] | None) -> None:
        """Finish a running item; store ``history_entry`` (None stores nothing)."""
        with self._lock:
            item = self._running.pop(item_id, None)  # None: dropped by a restart
            if history_entry is not None and item is not None:
                if len(self._history) > MAXIMUM_HISTORY_SIZE:
                    self._history.pop(next(iter(self._history)))
                entry: dict[str, Any] = {"prompt": item.as_history_list(), "outputs": {}}
                entry.update(history_entry)
                self._history[item.prompt_id] = entry
            self._not_empty.notify_all()
        self._on_change()

    def running(self) -> list[QueueItem]:
        with self._lock:
            return list(self._running.values())

    def pending(self) -> list[QueueItem]:
        """Pending items in heap order (what ComfyUI's ``/queue`` shows)."""
        with self._lock:
            return list(self._pending)

    def remaining(self, account: str | None = None) -> int:
        with self._lock:
            items = [*self._pending, *self._running.values()]
            if account is not None:
                items = [i for i in items if i.account == account]
            return len(items)

    def delete_pending(self, should_delete: Callable[[QueueItem], bool]) -> list[str]:
        """Remove matching pending items; returns their prompt ids."""
        with self._lock:
            removed = [i for i in self._pending if should_delete(i)]
            if not removed:
                return []
            for item in removed:  # ComfyUI pops each match and re-heapifies
                self._pending.remove(item)
                heapq.heapify(self._pending)
        self._on_change()
        return [i.prompt_id for i in removed]

    def wipe(self) -> None:
        """Forget everything pending, running and done (an emulated server restart)."""
        with self._lock:
            self._pending.clear()
            self._running.clear()
            self._history.clear()
        self._on_change()

    # -- history -----------------------------------------------------------------------------

    def history(
        self, prompt_id: str | None = None, max_items: int | None = None, offset: int = -1
    ) -> dict[str, Any]:
        """``GET /history`` semantics, including ComfyUI's ``max_items`` / ``offset`` rules."""
        with self._lock:
            if prompt_id is not None:
                if prompt_id in self._history:
                    return {prompt_id: copy.deepcopy(self._history[prompt_id])}
                return {}
            if offset < 0 and max_items is not None:
                offset = len(self._history) - max_items
            out: dict[str, Any] = {}
            for index, key in enumerate(self._history):
                if index >= offset:
                    out[key] = copy.deepcopy(self._history[key])
                    if max_items is not None and len(out) >= max_items:
                        break
            return out

    def history_entry(self, prompt_id: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._history.get(prompt_id)
            return copy.deepcopy(entry) if entry is not None else None

    def delete_history(self, prompt_ids: list[str]) -> None:
        with self._lock:
            for pid in prompt_ids:
                self._history.pop(pid, None)

    def clear_history(self) -> None:
        with self._lock:
            self._history.clear()

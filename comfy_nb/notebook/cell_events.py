"""Widget clicks for a cell that blocks the kernel.

While a cell runs, the kernel reads no message from the front end: a button in the cell's own
panel (Cancel) would only be heard once the cell had ended. :class:`CellEvents` lets the cell's
waiting loop read the messages the kernel has not read yet (:meth:`CellEvents.pump`): those for
the cell's own widgets (named by :meth:`CellEvents.watch`) are handled at once; every other one
(the next cells of "Run All", completions, other widgets) is held, untouched, and handed back to
the kernel in the order it came when the cell stops waiting (:meth:`CellEvents.close`), so the
kernel then runs them as if it had never been interrupted.

This works with ipykernel 7, where the main thread reads its shell messages from one
in-process socket. :func:`cell_events` returns None where that is not so (terminal IPython,
scripts, other kernels, ipykernel 6, a thread other than the main one); callers then say to use
the kernel's stop button.

Must not: run another cell's code, reorder, read twice or drop a message meant for the kernel.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("comfy_nb")

__all__ = ["CellEvents", "cell_events"]

_DELIMITER = b"<IDS|MSG>"  # the Jupyter wire protocol: routing ids, this, then the message
_GIVEN_BACK: set[asyncio.Future[Any]] = set()  # messages handed back, until the kernel read them


def cell_events() -> CellEvents | None:
    """Events for the cell running now, or None where they cannot be read (see the module)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    kernel = getattr(get_ipython(), "kernel", None)
    channel = getattr(kernel, "shell_channel_thread", None)
    manager = getattr(channel, "manager", None)
    try:
        socket = manager.get_shell_channel_to_subshell_pair(None).to_socket  # type: ignore[union-attr]
        give_back = kernel.shell_main  # type: ignore[union-attr]
        session = kernel.session  # type: ignore[union-attr]
        import zmq
    except Exception:  # not ipykernel 7: nothing to read from
        return None
    if socket is None or session is None or not callable(give_back):
        return None
    return CellEvents(socket, session, give_back, zmq.NOBLOCK, zmq.Again)


class CellEvents:
    """Reads the kernel's pending shell messages for one waiting cell (see the module).

    ``socket`` is where the kernel's main thread receives its shell messages, ``session`` the
    kernel's (it checks signatures), ``give_back(None, frames)`` the coroutine function the
    kernel reads them with."""

    def __init__(self, socket: Any, session: Any, give_back: Callable[..., Any],
                 noblock: int, again: type[Exception]) -> None:
        self._socket = socket
        self._session = session
        self._give_back = give_back
        self._noblock = noblock
        self._again = again
        self._handlers: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self._held: list[list[Any]] = []
        self.closed = False

    def watch(self, widget: Any) -> None:
        """Handle the messages for ``widget`` (an ipywidgets widget) while the cell waits."""
        comm = getattr(widget, "comm", None)
        comm_id = getattr(comm, "comm_id", None)
        if comm is not None and isinstance(comm_id, str):
            self._handlers[comm_id] = comm.handle_msg

    def pump(self) -> int:
        """Read every message waiting now: handle those for watched widgets, hold the rest.
        Returns how many were handled. Never blocks."""
        handled = 0
        while not self.closed:
            try:
                frames = self._socket.recv_multipart(self._noblock, copy=False)
            except self._again:
                break
            self._held.append(frames)  # held first: an interrupt from here on loses nothing
            handler = self._handlers.get(self._comm_of(frames) or "")
            if handler is None:
                continue
            self._held.pop()
            try:
                _, body = self._session.feed_identities(frames, copy=False)
                message = self._session.deserialize(body, content=True, copy=False)
            except Exception as exc:  # a bad signature: the kernel would drop it too
                log.warning("comfy_nb: dropped a widget message that does not verify: %s", exc)
                continue
            handler(message)
            handled += 1
        return handled

    def close(self) -> None:
        """Stop reading; hand the held messages back to the kernel, in the order they came (it
        reads them once the cell has ended, before anything that arrives later)."""
        if self.closed:
            return
        self.closed = True
        held, self._held = self._held, []
        for frames in held:
            task = asyncio.ensure_future(self._give_back(None, frames))
            _GIVEN_BACK.add(task)  # a task nobody refers to may be collected before it runs
            task.add_done_callback(_GIVEN_BACK.discard)

    def _comm_of(self, frames: list[Any]) -> str | None:
        """The comm id of a ``comm_msg`` (None for any other message), read without checking
        the signature: that is left to whoever handles it, once."""
        try:
            start = next(index for index, frame in enumerate(frames)
                         if _bytes(frame) == _DELIMITER) + 1
            header = self._session.unpack(_bytes(frames[start + 1]))
            if header.get("msg_type") != "comm_msg":
                return None
            comm_id = self._session.unpack(_bytes(frames[start + 4])).get("comm_id")
        except Exception:  # not a message this can read: the kernel will say what is wrong
            return None
        return comm_id if isinstance(comm_id, str) else None


def _bytes(frame: Any) -> bytes:
    """The bytes of a zmq frame (or of bytes)."""
    return bytes(frame.buffer) if hasattr(frame, "buffer") else bytes(frame)

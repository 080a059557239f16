"""The command line's progress: one status line per job on stderr (the ``line`` back end of
:mod:`.backends`, which ``comfy-nb run`` uses).

Owns: :class:`StatusLine`, a 20-character bar of the nodes done, the current node and its steps
and the elapsed time, read from the job's own state; rewritten in place on a terminal, written
once per node elsewhere (logs stay short).

Must not: import ipywidgets or IPython, or wait for anything: it draws when it is ticked (the
command ticks it on every event of the job, from the client's thread).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

from .._naming import node_title
from .progress import Panel

if TYPE_CHECKING:
    from ..job import Job

__all__ = ["BAR_WIDTH", "StatusLine"]

BAR_WIDTH = 20  # characters of the bar of nodes done
LINE_WIDTH = 79  # a line redrawn in place is padded to this many characters


class StatusLine(Panel):
    """``[#####---------------] 3/7 nodes | KSampler 4/20 | 2.5s`` on ``stream`` (stderr by
    default): redrawn in place on a terminal at every tick, written when the current node
    changes elsewhere. :meth:`finish` ends the line on a terminal."""

    def __init__(self, job: Job, *, hint: str = "", stream: TextIO | None = None) -> None:
        super().__init__(job, hint=hint)
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._last_node: str | None = None

    def show(self) -> None:
        """Nothing is drawn before the first tick."""

    def tick(self) -> None:
        if self.finished:
            return
        job = self.job
        node = job.current_node
        if not self._tty and node == self._last_node:
            return  # in logs, one line per node
        self._last_node = node
        workflow = job.workflow or {}  # the API form the job submitted
        done = len(job.nodes_done | job.nodes_cached)
        total = len(workflow) or 1
        filled = int(min(1.0, done / total) * BAR_WIDTH)
        text = f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {done}/{total} nodes"
        if node:
            text += f" | {node_title(workflow.get(node)) or node}"
            step = job.node_progress.get(node)
            if step:
                text += f" {step[0]:g}/{step[1]:g}"
        text += f" | {job.elapsed:.1f}s"
        if self._tty:
            self._stream.write("\r" + text.ljust(LINE_WIDTH))
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def finish(self, replacement: Any) -> None:
        """End the line (on a terminal, what follows starts below it)."""
        if self.finished:
            return
        self.finished = True
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()

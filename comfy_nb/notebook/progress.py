"""Live progress of one job in the cell that submitted it, with three back ends.

- ``widget``: an ipywidgets panel (status with a node bar and a graph bar, a live JPEG preview,
  a Cancel button: for jobs that do not block the cell, and in a cell that waits when
  :mod:`.cell_events` can read its clicks there);
- ``html``: the same status as HTML, updated in place through a ``display_id`` (nbclient,
  nbconvert, front ends without widgets);
- ``text``: status lines on stdout (terminal IPython, scripts, papermill logs); ``off``: nothing.

Which back end a cell gets, and which panel class each back end makes, is :mod:`.backends`'s
business (``COMFY_NB_PROGRESS=widget|html|text|off`` wins).
Panels never react to events directly: they read :meth:`AsyncJob.progress` snapshots on their
own schedule, so the traffic they make (at most 10 widget messages a second, previews at most
4 frames a second, latest frame wins) does not depend on how fast the server sends events.
When the job ends, the panel is replaced through its ``display_id`` by a static object (the
result gallery, an error or a "cancelled" note), so a saved notebook never shows a stale bar.

Also owns the machinery every live view shares (the sweep panels of :mod:`.sweep_view` and
:mod:`.interact` use it): :class:`RateLimit` (the widget message budget), the back-end bases
:class:`LiveView`, :class:`DisplayedView` (shown with a ``display_id``, replaced at the end),
:class:`WidgetView`, :class:`HtmlView` and :class:`TextView`, and the paced widgets
:class:`LiveStatus` and :class:`LivePreview`.

Must not: speak HTTP (it asks the job), or display anything outside its own display_id.
"""

from __future__ import annotations

import collections
import html
import io
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from .._naming import node_label
from ..client._dialects import JobStatus
from ..client._errors import ComfyError
from .backends import JOB, progress_backend

if TYPE_CHECKING:
    from ..job import Job, JobProgress
    from .cell_events import CellEvents

MAX_WIDGET_MESSAGES = 10  # per panel, in any window of one second
STATUS_INTERVAL = 0.25  # seconds between status redraws (widget and html)
PREVIEW_INTERVAL = 0.25  # seconds between preview frames (at most 4 frames a second)
HTML_PREVIEW_INTERVAL = 1.0  # previews travel as base64 in html updates: fewer of them
TEXT_INTERVAL = 5.0  # seconds between "still running" lines without a tty
PREVIEW_SIDE = 320  # longest side of a preview frame, in pixels


# -- pacing --------------------------------------------------------------------------------------


class RateLimit:
    """At most ``limit`` events in any window of ``period`` seconds (a sliding window);
    thread-safe. :meth:`take` is for what may be skipped (a frame, a redraw),
    :meth:`take_blocking` waits for room for what must happen."""

    def __init__(self, limit: int, period: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.period = period
        self._clock = clock
        self._sent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def _room(self, now: float) -> int:
        while self._sent and now - self._sent[0] >= self.period:
            self._sent.popleft()
        return self.limit - len(self._sent)

    def room(self) -> int:
        """How many events may happen now."""
        with self._lock:
            return self._room(self._clock())

    def take(self, count: int = 1) -> bool:
        """Record ``count`` events if they fit now; False (and nothing recorded) otherwise."""
        with self._lock:
            now = self._clock()
            if self._room(now) < count:
                return False
            self._sent.extend([now] * count)
            return True

    def take_blocking(self, count: int = 1, poll: float = 0.02) -> None:
        """Record ``count`` events, sleeping until they fit (more than ``limit`` go in parts)."""
        while count > 0:
            part = min(count, self.limit)
            while not self.take(part):
                time.sleep(poll)
            count -= part


# -- what a panel says ---------------------------------------------------------------------------


def _status_words(progress: JobProgress) -> str:
    status = progress.status
    unreachable = progress.unreachable_for
    if unreachable is not None:
        words = f"server unreachable for {unreachable:.0f} s"
        return f"lost: {words}" if progress.lost else words
    if progress.lost:
        return "lost: the server no longer knows this job"
    if status is JobStatus.QUEUED:
        ahead = progress.position
        return "queued" if ahead is None else f"queued, position {ahead}"
    return status.value


def _bar_text(value: float, maximum: float) -> str:
    if maximum <= 0:
        return ""
    return f"{value:g}/{maximum:g}"


def status_text(job_id: str, progress: JobProgress, workflow: dict[str, Any] | None) -> str:
    """One line: status, node, node steps, graph progress and elapsed time."""
    parts = [f"comfy_nb job {job_id[:8]}: {_status_words(progress)}"]
    if progress.current_node is not None:
        parts.append(node_label(workflow, progress.current_node))
    steps = _bar_text(progress.node_value, progress.node_max)
    if steps:
        parts.append(f"step {steps}")
    if progress.nodes_total:
        parts.append(f"nodes {progress.nodes_done}/{progress.nodes_total}")
    parts.append(f"{progress.elapsed:.1f} s")
    if progress.error is not None:
        parts.append(f"error: {progress.error}")
    return " · ".join(parts)


def status_html(job_id: str, progress: JobProgress, workflow: dict[str, Any] | None,
                *, hint: str = "", preview_uri: str | None = None) -> str:
    """The panel's status block: one line of words and two ``<progress>`` bars (the current
    node's steps and the whole graph, cached nodes counted), readable without CSS."""
    esc = html.escape
    node = node_label(workflow, progress.current_node) or "—"
    state = ("<span class=\"comfy-nb-state comfy-nb-unreachable\" style=\"color:#b00\">"
             if progress.unreachable_for is not None else "<span class=\"comfy-nb-state\">")
    lines = [
        f"<b>comfy_nb</b> job <code>{esc(job_id[:8])}</code>: "
        f"{state}{esc(_status_words(progress))}</span> · "
        f"{progress.elapsed:.1f} s",
        f"node: <span class=\"comfy-nb-node-name\">{esc(node)}</span> "
        f"<progress class=\"comfy-nb-node\" value=\"{progress.node_value:g}\" "
        f"max=\"{max(progress.node_max, 1):g}\"></progress> "
        f"{esc(_bar_text(progress.node_value, progress.node_max))}",
        f"graph: <progress class=\"comfy-nb-graph\" value=\"{progress.nodes_done}\" "
        f"max=\"{max(progress.nodes_total, 1)}\"></progress> "
        f"{progress.nodes_done}/{progress.nodes_total} nodes",
    ]
    if progress.error is not None:
        lines.append(f"<span class=\"comfy-nb-error\" style=\"color:#b00\">"
                     f"{esc(str(progress.error))}</span>")
    if hint:
        lines.append(f"<small>{esc(hint)}</small>")
    if preview_uri:
        lines.append(f"<img class=\"comfy-nb-preview\" src=\"{preview_uri}\" "
                     f"alt=\"live preview\">")
    return "<div class=\"comfy-nb-status\">" + "<br>\n".join(lines) + "</div>"


def preview_jpeg(data: bytes, side: int = PREVIEW_SIDE, quality: int = 80) -> bytes | None:
    """A preview frame downscaled and re-encoded as JPEG (None if it does not decode)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            frame = image.convert("RGB")
    except Exception:  # a torn or unknown frame: skip it, the next one will do
        return None
    frame.thumbnail((side, side))
    out = io.BytesIO()
    frame.save(out, "JPEG", quality=quality)
    return out.getvalue()


_WRAP_WORDS = "white-space:pre-wrap;word-break:normal;overflow-wrap:anywhere"


class StaticNote:
    """What replaces a panel when no result gallery does: an error or a cancellation."""

    def __init__(self, text: str, css_class: str) -> None:
        self.text = text
        self.css_class = css_class

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> dict[str, str]:
        body = html.escape(self.text)
        # front ends style output <pre> to break anywhere (word-break: break-all): lines of
        # words wrap between words here, and only a word longer than the line is broken
        return {"text/plain": self.text,
                "text/html": f"<div class=\"{self.css_class}\"><pre style=\"{_WRAP_WORDS}\">"
                             f"{body}</pre></div>"}

    def __repr__(self) -> str:
        return self.text


# -- what every live view shares (job panels below, sweep panels, interact) ------------------------


def _display(obj: Any, **kwargs: Any) -> Any:
    from IPython.display import display

    return display(obj, **kwargs)


class LiveView:
    """A live view in the current cell: :meth:`show` once, :meth:`tick` often, :meth:`finish`
    once. By itself the ``off`` back end: it does nothing.

    A panel is what it follows (:class:`Panel`: a job; :class:`~.sweep_view.SweepPanel`: a
    sweep) and a back end (:class:`WidgetView`, :class:`HtmlView`, :class:`TextView`), as in
    ``class WidgetPanel(Panel, WidgetView)``; constructors pass their keyword arguments along
    (``hint`` ends here, ``clock`` and ``stream`` in the back end)."""

    def __init__(self, *, hint: str = "") -> None:
        self.hint = hint
        self.finished = False
        self.cancel_clicked = False  # its Cancel button was clicked

    def show(self) -> None:
        """Display the view in the current cell."""

    def tick(self) -> None:
        """Redraw what changed, if its time has come (cheap when nothing is due)."""

    def finish(self, replacement: Any) -> None:
        """Replace the view by ``replacement`` (a Result, a sweep's grid, an error note...), or
        say the end."""
        self.finished = True


class DisplayedView(LiveView):
    """The html and widget back ends: one output shown with a ``display_id``, updated in place
    and replaced through it, once, at the end (:meth:`finish`). Ticks and the end hold
    ``_lock``, so a tick from a background thread never lands after the replacement."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._clock = clock
        self._lock = threading.Lock()
        self._handle: Any = None

    def _show(self, obj: Any, **kwargs: Any) -> None:
        self._handle = _display(obj, display_id=True, **kwargs)

    def finish(self, replacement: Any) -> None:
        with self._lock:
            if self.finished:
                return
            self.finished = True
            if self._handle is not None:
                self._handle.update(replacement)
                if threading.current_thread() is not threading.main_thread():
                    _ENDED_IN_BACKGROUND.append((self._handle, replacement))
            self._close()

    def _close(self) -> None:
        """Free what the live output held, once it is replaced."""


# Replacements sent from a background thread (jobs that do not block their cell) travel with
# whatever cell the kernel runs at that moment; nbclient and papermill keep them only if a cell
# is running. The next cell sends them again (see :func:`resend_background_endings`), so saved
# notebooks show the outcome; a front end that already has it just redraws the same output.
_ENDED_IN_BACKGROUND: list[tuple[Any, Any]] = []


def resend_background_endings(*_args: object) -> None:
    """Send again the replacements made in the background since the last call (an IPython
    ``pre_run_cell`` hook)."""
    while _ENDED_IN_BACKGROUND:
        handle, replacement = _ENDED_IN_BACKGROUND.pop(0)
        handle.update(replacement)


class WidgetView(DisplayedView):
    """An ipywidgets box (``box``, built by the subclass) whose every message goes through one
    :class:`RateLimit`: at most 10 widget messages in any second. The widgets are closed when
    the box is replaced."""

    box: Any

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._limit = RateLimit(MAX_WIDGET_MESSAGES, 1.0, self._clock)

    def show(self) -> None:
        self._show(self.box)

    def tick(self) -> None:
        with self._lock:
            if not self.finished:
                self._redraw(self._clock())

    def _redraw(self, now: float) -> None:
        """Update the widgets that are due (within ``self._limit``)."""

    def _cancel_button(self, cancel: Callable[[], Any] | None, description: str,
                       tooltip: str) -> Any:
        """A Cancel button that calls :meth:`_on_cancel` (None without ``cancel``)."""
        if cancel is None:
            return None
        import ipywidgets as widgets

        self._cancel = cancel
        button = widgets.Button(description=description, icon="stop", tooltip=tooltip,
                                _dom_classes=("comfy-nb-cancel",))
        button.on_click(self._on_cancel)
        return button

    def _on_cancel(self, _button: Any) -> None:
        """The Cancel button was clicked (kernel thread)."""

    def _close(self) -> None:
        self.box.close()
        for child in self.box.children:
            child.close()


class HtmlView(DisplayedView):
    """A ``text/plain`` + ``text/html`` bundle in one output (no widgets needed), redrawn
    through its display_id at most every 0.5 s (each redraw sends the whole block)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._last = -1e9

    def _bundle(self) -> dict[str, str]:
        """What the output shows now."""
        raise NotImplementedError

    def show(self) -> None:
        self._show(self._bundle(), raw=True)

    def tick(self) -> None:
        with self._lock:
            now = self._clock()
            if self.finished or self._handle is None or now - self._last < STATUS_INTERVAL * 2:
                return
            self._redraw(now)
            self._last = now

    def _redraw(self, now: float) -> None:
        self._handle.update(self._bundle(), raw=True)


class LiveStatus:
    """A status block in an ipywidgets ``HTML`` (``widget``), redrawn at most every 0.25 s,
    only when its text changed and the message budget has room (a skipped redraw is not
    retried: the next tick has newer news)."""

    def __init__(self, value: str, css_class: str) -> None:
        import ipywidgets as widgets

        # classes are set at construction: add_class() later would cost a message each
        self.widget = widgets.HTML(value=value, _dom_classes=(css_class,))
        self.restart()

    def restart(self) -> None:
        """A new job: its first status is due at once."""
        self._last = -1e9

    def update(self, render: Callable[[], str], now: float, limit: RateLimit) -> None:
        """Show ``render()`` if a redraw is due (``now``) and ``limit`` has room."""
        if now - self._last >= STATUS_INTERVAL:
            value = render()
            if value != self.widget.value and limit.take():
                self.widget.value = value
                self._last = now


class LivePreview:
    """A job's live preview in an ipywidgets ``Image`` (``widget``, hidden until its first
    frame): a downscaled JPEG at most every 0.25 s, decoded only when the message budget has
    room for it, the latest frame winning. Frames are spaced from the moment they are sent
    (``clock``), not from the tick that decoded them: decoding may take a while."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        import ipywidgets as widgets

        self._clock = clock
        self.widget = widgets.Image(format="jpeg", _dom_classes=("comfy-nb-preview",),
                                    layout=widgets.Layout(width=f"{PREVIEW_SIDE}px",
                                                          display="none"))
        self.restart()

    def restart(self) -> None:
        """A new job: none of its frames is shown yet."""
        self._shown = 0  # the job's previews shown so far (``progress.previews``)
        self._last = -1e9

    def update(self, progress: JobProgress, now: float, limit: RateLimit) -> None:
        """Show the job's latest frame if it is new, due (``now``) and ``limit`` has room."""
        if progress.previews <= self._shown or progress.preview is None \
                or now - self._last < PREVIEW_INTERVAL:
            return
        first = self.widget.layout.display == "none"
        needed = 2 if first else 1  # the frame, and showing the widget
        if limit.room() < needed:  # decode only what can be sent
            return
        frame = preview_jpeg(progress.preview.data)
        if frame is not None and limit.take(needed):
            self.widget.value = frame
            if first:
                self.widget.layout.display = None
            self._shown = progress.previews
            self._last = max(now, self._clock())


class TextView(LiveView):
    """The text back end: status lines on a stream (stdout by default). On a terminal one line
    is redrawn in place (at most every 0.25 s); elsewhere a line is written when what matters
    in it changes, or every 5 s, so logs stay short."""

    def __init__(self, *, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stream = stream if stream is not None else sys.stdout
        self._clock = clock
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._last = -1e9
        self._last_key: tuple[Any, ...] = ()
        self._width = 0

    def _status(self) -> tuple[tuple[Any, ...], Callable[[], str]]:
        """What matters now (a change writes a line at once) and the line that says it."""
        raise NotImplementedError

    def _final_lines(self, replacement: Any) -> list[str]:
        """The lines that end the view."""
        raise NotImplementedError

    def show(self) -> None:
        self.tick()

    def tick(self) -> None:
        if self.finished:
            return
        now = self._clock()
        key, line = self._status()
        due = TEXT_INTERVAL if not self._tty else STATUS_INTERVAL
        if key != self._last_key or now - self._last >= due:
            self._write(line())
            self._last_key = key
            self._last = now

    def finish(self, replacement: Any) -> None:
        if self.finished:
            return
        self.finished = True
        for line in self._final_lines(replacement):
            self._write(line, final=True)

    def _write(self, line: str, *, final: bool = False) -> None:
        """Write ``line``; on a terminal it replaces the line being redrawn, and ``final``
        keeps it (what follows starts below)."""
        if self._tty:
            pad = " " * max(0, self._width - len(line))
            self._stream.write("\r" + line + pad + ("\n" if final else ""))
            self._width = 0 if final else len(line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()


# -- job panels ----------------------------------------------------------------------------------


class Panel(LiveView):
    """A live view of one job (by itself the ``off`` back end)."""

    def __init__(self, job: Job, *, hint: str = "", **kwargs: Any) -> None:
        super().__init__(hint=hint, **kwargs)
        self.job = job
        self.workflow = job.workflow

    def _progress(self) -> JobProgress:
        return self.job.progress()


class WidgetPanel(Panel, WidgetView):
    """The ipywidgets panel: the status (node and graph bars), the live preview (at most 4
    frames a second) and, for a job that does not block the cell, a Cancel button."""

    def __init__(self, job: Job, *, hint: str = "", cancel: Callable[[], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(job, hint=hint, clock=clock)
        import ipywidgets as widgets

        self._live_status = LiveStatus(self._render(self._progress()), "comfy-nb-status")
        self._live_preview = LivePreview(clock=self._clock)
        self.status = self._live_status.widget
        self.preview = self._live_preview.widget
        self.cancel_button = self._cancel_button(cancel, "Cancel",
                                                 "cancel this job on the server")
        children: list[Any] = [self.status, self.preview]
        if self.cancel_button is not None:
            children.append(self.cancel_button)
        self.box = _panel_box(widgets, children, job.id)

    def _render(self, progress: JobProgress) -> str:
        return status_html(self.job.id, progress, self.workflow, hint=self.hint)

    def _on_cancel(self, _button: Any) -> None:
        self.cancel_clicked = True
        button = self.cancel_button
        button.disabled = True
        button.description = "Cancelling…"
        self._cancel()

    def _redraw(self, now: float) -> None:
        progress = self._progress()
        self._live_preview.update(progress, now, self._limit)
        self._live_status.update(lambda: self._render(progress), now, self._limit)


def _panel_box(widgets: Any, children: list[Any], job_id: str) -> Any:
    class JobPanel(widgets.VBox):
        def __repr__(self) -> str:
            return (f"comfy_nb progress panel of job {job_id} (live only; the job's outputs "
                    "replace it when it ends)")

    return JobPanel(children, _dom_classes=("comfy-nb-panel",))


class HtmlPanel(Panel, HtmlView):
    """Status as HTML in one output, updated through its display_id; previews travel inside
    it (base64), at most one a second."""

    def __init__(self, job: Job, *, hint: str = "",
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(job, hint=hint, clock=clock)
        self._last_preview = -1e9
        self._preview_uri: str | None = None
        self._previews_shown = 0

    def _bundle(self, progress: JobProgress | None = None) -> dict[str, str]:
        progress = progress if progress is not None else self._progress()
        return {"text/plain": status_text(self.job.id, progress, self.workflow),
                "text/html": status_html(self.job.id, progress, self.workflow, hint=self.hint,
                                         preview_uri=self._preview_uri)}

    def _redraw(self, now: float) -> None:
        progress = self._progress()
        if progress.previews > self._previews_shown and progress.preview is not None \
                and now - self._last_preview >= HTML_PREVIEW_INTERVAL:
            import base64

            frame = preview_jpeg(progress.preview.data, side=256, quality=70)
            if frame is not None:
                self._preview_uri = ("data:image/jpeg;base64,"
                                     + base64.b64encode(frame).decode("ascii"))
                self._previews_shown = progress.previews
                self._last_preview = now
        self._handle.update(self._bundle(progress), raw=True)


class TextPanel(Panel, TextView):
    """Status lines: a line per status, node or queue position change. Takes ``stream`` and
    ``clock`` as :class:`TextView` does."""

    def _status(self) -> tuple[tuple[Any, ...], Callable[[], str]]:
        progress = self._progress()
        return ((progress.status, progress.current_node, progress.position,
                 progress.unreachable_for is not None, progress.lost),
                lambda: status_text(self.job.id, progress, self.workflow))

    def _final_lines(self, replacement: Any) -> list[str]:
        line = status_text(self.job.id, self._progress(), self.workflow)
        if getattr(replacement, "from_cache", False):
            from .display import cache_note

            line += f" · {cache_note(replacement)}"
        return [line]


def make_panel(job: Job, backend: str, *, hint: str = "",
               cancel: Callable[[], Any] | None = None) -> Panel:
    """A panel of the given back end (see :mod:`.backends`)."""
    panel = progress_backend(backend).make(JOB, job, hint=hint, cancel=cancel)
    assert isinstance(panel, Panel)
    return panel


# -- following a job -----------------------------------------------------------------------------


def follow(job: Job, panel: Panel, *, timeout: float | None = None,
           interval: float = 0.05, events: CellEvents | None = None) -> None:
    """Tick ``panel`` on the calling thread until ``job`` ends or ``timeout`` passes. A job
    the client lost (its server forgot it or stayed unreachable) replaces the panel by the
    error, which is raised. A KeyboardInterrupt (the kernel's stop button) propagates; the
    caller cancels the job. With ``events``, the clicks on the panel's widgets are handled
    while it waits (the caller closes ``events``)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not job.done:
        if job.lost:
            _end_lost(job, panel)
        if events is not None:
            events.pump()
        panel.tick()
        if deadline is not None and time.monotonic() >= deadline:
            return
        time.sleep(interval)


def _end_lost(job: Job, panel: Panel) -> None:
    """Replace the panel of a lost job by what :meth:`Job.wait` raises, and raise it."""
    try:
        job.wait()
    except ComfyError as exc:
        panel.finish(StaticNote("\n".join(exc.notebook_lines()), "comfy-nb-error"))
        raise


def follow_in_background(job: Job, panel: Panel, on_end: Callable[[], object],
                         interval: float = 0.05) -> threading.Thread:
    """Tick ``panel`` from a daemon thread until ``job`` ends, is lost, or its client is closed,
    then call ``on_end`` there (for jobs that do not block the cell; updates reach the panel by
    its display_id)."""

    def run() -> None:
        while not job.done and not job.lost and not job.client_closed:
            panel.tick()
            time.sleep(interval)
        on_end()

    thread = threading.Thread(target=run, name=f"comfy-nb-panel-{job.id[:8]}", daemon=True)
    thread.start()
    return thread

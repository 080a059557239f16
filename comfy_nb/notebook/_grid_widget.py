"""The live view of a sweep's comparison grid (:class:`~.sweep_grid.SweepGrid`): shown once in
the cell, kept current while the sweep runs (cells fill in as jobs end, failed cells say why),
then, when the sweep ends, the full-size files saved next to the notebook and the view's static
HTML brought up to date.

Why anywidget: the grid needs its own JavaScript (synchronized zoom and pan across cells, click
to enlarge, an A/B swipe or toggle of two cells, pick) that no core ipywidgets control gives.
anywidget ships that code with the Python package as an ES module, with no Jupyter extension to
install or build, and its front end works in JupyterLab 4, Notebook 7, VS Code and Colab alike;
ipywidgets' own controls stay the tool for forms (:mod:`.interact`). anywidget is optional (the
``notebook`` extra installs it): without it, or where no widgets are drawn (nbclient, nbconvert,
papermill), the html back end shows the same grid as HTML updated in place through a
``display_id`` (no zoom, compare or pick buttons; :meth:`SweepGrid.pick` does pick). Either way
the output's ``text/html`` is the static grid, what a saved notebook shows without JavaScript.

Owns: choosing the view (:func:`show_grid`), the follower (a loop in the cell when it waits, a
daemon thread when not), the widget's traffic (at most 4 cell updates a second, only when
something changed) and its messages from the page (pick, enlarge). Must not: schedule jobs
(only cancel the sweep when the cell is interrupted or times out), speak HTTP, or lay the grid
out (:mod:`.sweep_grid` does).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from ..errors import ComfyError
from . import display as result_display
from .backends import choose_backend

if TYPE_CHECKING:
    from .sweep_grid import SweepGrid

__all__ = ["GridHtmlView", "GridStaticView", "GridView", "GridWidgetView", "show_grid",
           "widget_available"]

log = logging.getLogger("comfy_nb")

INTERVAL = 0.25  # seconds between two looks at the sweep (the widget: at most 4 updates a second)
CELLS_PER_SECOND = 200  # a larger grid is sent less often (each update sends every cell)
HTML_INTERVAL = 0.5  # seconds between two redraws of the html view (each sends the whole grid)
LARGE_SIZE = 768  # longest side of an enlarged cell, px


def widget_available() -> bool:
    """Whether anywidget can be imported here."""
    try:
        import anywidget  # noqa: F401
    except ImportError:
        return False
    return True


def _display(obj: Any, **kwargs: Any) -> Any:
    from IPython.display import display

    return display(obj, **kwargs)


class GridView:
    """One grid shown in the current cell: :meth:`show` once, :meth:`tick` often,
    :meth:`finish` once. This base shows the static grid once, at the end."""

    def __init__(self, grid: SweepGrid) -> None:
        self.grid = grid
        self.finished = False
        self._lock = threading.Lock()

    def show(self) -> None:
        """Display the view."""

    def tick(self) -> None:
        """Bring the view up to date, if its time has come."""

    def finish(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.finished = True
        _display(self.grid._repr_mimebundle_(), raw=True)


class GridStaticView(GridView):
    """The text and off back ends: the static grid once the sweep ended."""


class GridHtmlView(GridView):
    """The grid as HTML in one output, redrawn through its ``display_id`` when it changed, at
    most every :data:`HTML_INTERVAL` seconds."""

    def __init__(self, grid: SweepGrid) -> None:
        super().__init__(grid)
        self._handle: Any = None
        self._shown = ""
        self._last = 0.0

    def _bundle(self) -> dict[str, Any]:
        return self.grid._repr_mimebundle_()

    def show(self) -> None:
        bundle = self._bundle()
        self._shown = bundle["text/html"]
        self._last = time.monotonic()
        self._handle = _display(bundle, raw=True, display_id=True)

    def tick(self) -> None:
        with self._lock:
            if self.finished or time.monotonic() - self._last < HTML_INTERVAL:
                return
            self._redraw()

    def _redraw(self) -> None:
        bundle = self._bundle()
        if bundle["text/html"] != self._shown and self._handle is not None:
            self._shown = bundle["text/html"]
            self._last = time.monotonic()
            self._handle.update(bundle, raw=True)

    def finish(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.finished = True
            self._redraw()


class GridWidgetView(GridHtmlView):
    """The anywidget grid; the output also holds the static grid as ``text/html``, refreshed
    when the sweep ends (what a saved notebook shows)."""

    def __init__(self, grid: SweepGrid) -> None:
        super().__init__(grid)
        from ._grid_anywidget import GridWidget

        self.widget = GridWidget()
        self.widget.on_msg(self._on_message)
        self._cells: list[dict[str, Any]] = []
        layout = grid.layout()
        self.widget.axes = {
            name: ({"name": axis.name, "labels": list(axis.labels)} if axis is not None
                   else None) for name, axis in (("x", layout.x), ("y", layout.y),
                                                 ("z", layout.z))}
        self.widget.size = grid.size
        self._push()

    def _bundle(self) -> dict[str, Any]:
        shown: Any = self.widget._repr_mimebundle_()
        bundle: dict[str, Any] = dict(shown[0] if isinstance(shown, tuple) else shown or {})
        bundle["text/html"] = self.grid.html()
        bundle["text/plain"] = self.grid.text()
        return bundle

    def _push(self) -> None:
        cells = self.grid.cells()
        summary = self.grid.sweep.summary()
        if cells != self._cells or summary != self.widget.summary:
            self._cells = cells
            with self.widget.hold_sync():
                self.widget.cells = cells
                self.widget.summary = summary

    def tick(self) -> None:
        with self._lock:
            interval = max(INTERVAL, len(self._cells) / CELLS_PER_SECOND)
            if not self.finished and time.monotonic() - self._last >= interval:
                self._last = time.monotonic()
                self._push()

    def finish(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.finished = True
            self._push()
            if self._handle is not None:  # the saved notebook's text/html: the final grid
                self._handle.update(self._bundle(), raw=True)

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """What the page asks: ``{"type": "pick", "index": i}`` or ``{"type": "enlarge",
        "index": i}``. Errors are shown in the widget and logged."""
        if not isinstance(content, dict):
            return
        kind, index = content.get("type"), content.get("index")
        if not isinstance(index, int) or not 0 <= index < len(self.grid.sweep.items):
            return
        try:
            if kind == "pick":
                values = self.grid.pick(index)
                where = " and into the controls" if self.grid.controls is not None else ""
                from .sweep_grid import caption

                self.widget.message = (
                    f"picked {caption(self.grid.sweep.items[index])}: in grid.picked and "
                    f"sweep.picked{where}; to rerun it: {self.grid.picked_set_line}")
                self.widget.picked = {"index": index, "values": values,
                                      "set_line": self.grid.picked_set_line}
            elif kind == "enlarge":
                self.widget.send({"type": "large", "index": index,
                                  "src": self._large(index)})
        except Exception as exc:
            log.warning("comfy_nb: the grid could not %s cell %s: %s", kind, index, exc)
            self.widget.message = f"could not {kind} that cell: {exc}"

    def _large(self, index: int) -> str:
        item = self.grid.sweep.items[index]
        thumb = self.grid.thumbnails.get(item, LARGE_SIZE)
        return thumb.data_uri if thumb is not None else ""


def _make_view(grid: SweepGrid, backend: str) -> GridView:
    if backend == "widget" and widget_available():
        return GridWidgetView(grid)
    if backend in ("widget", "html"):
        return GridHtmlView(grid)
    return GridStaticView(grid)


def show_grid(grid: SweepGrid, *, wait: bool = False, timeout: float | None = None,
              backend: str | None = None, save: str | None = None) -> GridView:
    """Show ``grid`` in this cell (``backend``: ``widget``, ``html``, ``text`` or ``off``; None
    chooses as the progress panels do) and follow its sweep until it ends: with ``wait`` in
    this cell (interrupting cancels the sweep and re-raises; ``timeout`` cancels it and raises
    :class:`~comfy_nb.sweeps.SweepTimeout`), else from a daemon thread."""
    from ..sweeps import SweepTimeout

    view = _make_view(grid, choose_backend(backend))
    grid.view = view
    sweep = grid.sweep
    if sweep.done:  # saved first, so the grid shown links the files at once
        _save_files(grid, save)
    view.show()
    if not wait:
        if sweep.done:
            _end(view, save)
        else:
            threading.Thread(target=_follow, args=(view, save), name="comfy-nb-sweep-grid",
                             daemon=True).start()
        return view
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not sweep.done:
            view.tick()
            if deadline is not None and time.monotonic() >= deadline:
                unfinished = sum(1 for item in sweep.items if not item.done)
                sweep.cancel()
                _end(view, save)
                raise SweepTimeout(timeout or 0.0, unfinished)
            time.sleep(INTERVAL)
    except KeyboardInterrupt:
        sweep.cancel()
        _end(view, save)
        raise
    sweep.wait()  # raises what broke the scheduler, if anything did
    _end(view, save)
    return view


def _follow(view: GridView, save: str | None) -> None:
    sweep = view.grid.sweep
    try:
        while not sweep.done:
            view.tick()
            time.sleep(INTERVAL)
    finally:
        _end(view, save)


def _end(view: GridView, save: str | None) -> None:
    """Save the results' files, then the final grid."""
    _save_files(view.grid, save)
    view.finish()


def _save_files(grid: SweepGrid, save: str | None) -> None:
    """Save the results' full-size files for the notebook (a file that cannot be fetched or
    saved is logged; its cell keeps its thumbnail if it has one)."""
    for item in grid.sweep.items:
        if item.result is None or item.status != "succeeded":
            continue
        try:
            result_display.save_for_notebook(item.result, save)
        except (ComfyError, OSError) as exc:
            log.warning("comfy_nb: the files of %s could not be saved: %s", item.label, exc)

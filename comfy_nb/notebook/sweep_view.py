"""A sweep in a notebook: one live summary panel, then a labelled grid of thumbnails.

Owns: the summary panel of a running :class:`~comfy_nb.sweeps.Sweep` (done / running / queued /
failed, one overall ``<progress>`` bar and, on a pool, each member's lane from
:mod:`.pool_view`) in the three back ends of :mod:`.progress`, on its bases (widget: one HTML
widget within the message budget of :class:`~.progress.WidgetView`; html: one output updated
through its ``display_id``; text: status lines), the static rendering that replaces it
(:func:`render_sweep`: a grid whose rows and columns are the swept values, a caption with the
values under every thumbnail, a failed job's error in its own cell, the parameters → files
table (on a pool with the member that ran each), a contact-sheet JPEG and a text summary), and
the entry point of ``%%comfy_run --sweep`` (:func:`run_sweep_in_cell`).

Must not: speak HTTP or schedule jobs (the sweep does), or show full-resolution images
(thumbnails come from :mod:`.display`'s helpers; full-size files go to disk).
"""

from __future__ import annotations

import base64
import html
import io
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ComfyError
from ..result import OutputKind, shown_path
from ..sweeps import FAILED, MAX_JOBS
from . import display as result_display
from .backends import SWEEP, choose_backend, progress_backend
from .cell_events import cell_events
from .pool_view import lane_lines, lanes_html
from .progress import HtmlView, LiveStatus, LiveView, TextView, WidgetView

if TYPE_CHECKING:
    from ..client._client import Client
    from ..result import Result
    from ..sweeps import Sweep, SweepCounts, SweepData, SweepItem

__all__ = ["GridSettings", "SweepHtmlPanel", "SweepPanel", "SweepTextPanel", "SweepWidgetPanel",
           "follow_sweep", "grid_settings", "make_sweep_panel", "render_sweep",
           "run_sweep_in_cell", "summary_html", "summary_text"]

BLOCKING_HINT = "interrupt the kernel (■ stop) to cancel the sweep"


@dataclass
class GridSettings:
    """How the grid of a sweep renders."""

    #: longest side of a cell's thumbnail, px (None: by the number of jobs, at most
    #: ``display.settings.thumbnail_size``: 256 up to 6 jobs, 160 up to 24, else 112)
    cell_size: int | None = None
    #: cells per row when one parameter (or a zip) is swept; more wrap to the next row
    max_columns: int = 8
    #: the grid aims to fit this width, px: more columns get smaller thumbnails (at least 64
    #: px; a wider grid scrolls sideways)
    width: int = 1024
    #: rows of the parameters → files table shown open (a longer table starts folded)
    open_rows: int = 12
    #: rows of the table in text/plain
    text_rows: int = 60
    #: add a contact-sheet JPEG (for viewers that show no HTML)
    contact_sheet: bool = True


grid_settings = GridSettings()

_ERROR_CHARS = 300  # characters of an error shown in its cell (the whole text is its tooltip)
_SHEET_WIDTH = 1536  # widest contact sheet, px


# -- the summary ---------------------------------------------------------------------------------


def _queued(counts: SweepCounts) -> int:
    return counts.waiting + counts.queued


def summary_text(sweep: SweepData, counts: SweepCounts | None = None) -> str:
    """One line: counts, overall progress and elapsed time."""
    counts = counts or sweep.counts()
    parts = [f"comfy_nb sweep of {counts.total} jobs ({' × '.join(sweep.names)}, "
             f"{sweep.mode}, {sweep.concurrency} at once)",
             f"done {counts.succeeded}", f"running {counts.running}",
             f"queued {_queued(counts)}", f"failed {counts.failed}"]
    if counts.cancelled:
        parts.append(f"cancelled {counts.cancelled}")
    parts.append(f"{counts.fraction:.0%}")
    parts.append(f"{sweep.elapsed:.1f} s")
    return " · ".join(parts)


def summary_html(sweep: SweepData, counts: SweepCounts | None = None, *, hint: str = "",
                 failures: int = 3) -> str:
    """The panel's block: the counts, one ``<progress>`` bar for the whole sweep, the latest
    finished job and the first failures (readable without CSS)."""
    esc = html.escape
    counts = counts or sweep.counts()
    lines = [
        f"<b>comfy_nb</b> sweep of {counts.total} jobs "
        f"({esc(' × '.join(sweep.names))}, {esc(sweep.mode)}, {sweep.concurrency} at once) · "
        f"{sweep.elapsed:.1f} s",
        f"<span class=\"comfy-nb-sweep-counts\">done <b>{counts.succeeded}</b> · running "
        f"<b>{counts.running}</b> · queued <b>{_queued(counts)}</b> · failed "
        f"<b>{counts.failed}</b>"
        + (f" · cancelled <b>{counts.cancelled}</b>" if counts.cancelled else "") + "</span>",
        f"<progress class=\"comfy-nb-sweep-progress\" value=\"{counts.fraction:.3f}\" "
        f"max=\"1\"></progress> {counts.fraction:.0%}",
    ]
    lanes = lanes_html(sweep)  # a pool: each member's items
    if lanes:
        lines.append(lanes)
    ended = [item for item in sweep.items if item.done and item.finished_at is not None]
    if ended:
        latest = max(ended, key=lambda item: item.finished_at or 0.0)
        where = f" on {latest.server}" if lanes and latest.server else ""
        lines.append(f"<small>latest: {esc(latest.label)} {esc(latest.status)}{esc(where)}"
                     "</small>")
    failed = [item for item in sweep.items if item.status == "failed"]
    for item in failed[:failures]:
        lines.append(f"<span class=\"comfy-nb-error\" style=\"color:#b00\">failed: "
                     f"{esc(item.label)}: {esc(_short_error(item, 160))}</span>")
    if len(failed) > failures:
        lines.append(f"<span style=\"color:#b00\">… and {len(failed) - failures} more "
                     "failed</span>")
    if hint:
        lines.append(f"<small>{esc(hint)}</small>")
    return "<div class=\"comfy-nb-sweep-status\">" + "<br>\n".join(lines) + "</div>"


def _short_error(item: SweepItem, limit: int = _ERROR_CHARS) -> str:
    from ..sweeps import error_text

    text = " ".join(error_text(item.error).split()) if item.error is not None else item.status
    return text if len(text) <= limit else text[:limit - 1] + "…"


# -- panels --------------------------------------------------------------------------------------


class SweepPanel(LiveView):
    """A live view of one sweep (by itself the ``off`` back end: it does nothing)."""

    def __init__(self, sweep: Sweep, *, hint: str = "", **kwargs: Any) -> None:
        super().__init__(hint=hint, **kwargs)
        self.sweep = sweep


class SweepWidgetPanel(SweepPanel, WidgetView):
    """One HTML widget (plus a Cancel button for a sweep that does not block the cell),
    redrawn at most every 0.25 s and only when the text changed."""

    def __init__(self, sweep: Sweep, *, hint: str = "", cancel: Callable[[], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(sweep, hint=hint, clock=clock)
        import ipywidgets as widgets

        self._live_status = LiveStatus(self._render(), "comfy-nb-sweep-status")
        self.status = self._live_status.widget
        self.cancel_button = self._cancel_button(cancel, "Cancel sweep",
                                                 "cancel every job of this sweep")
        children: list[Any] = [self.status]
        if self.cancel_button is not None:
            children.append(self.cancel_button)
        self.box = widgets.VBox(children, _dom_classes=("comfy-nb-panel", "comfy-nb-sweep"))

    def _render(self) -> str:
        return summary_html(self.sweep, hint=self.hint)

    def _on_cancel(self, _button: Any) -> None:
        with self._lock:
            if self._limit.take(2):  # disabled + description: two messages
                self.cancel_button.disabled = True
                self.cancel_button.description = "Cancelling…"
        threading.Thread(target=self._cancel, name="comfy-nb-sweep-cancel", daemon=True).start()

    def _redraw(self, now: float) -> None:
        self._live_status.update(self._render, now, self._limit)


class SweepHtmlPanel(SweepPanel, HtmlView):
    """The summary as HTML in one output, updated through its display_id (no widgets)."""

    def _bundle(self) -> dict[str, str]:
        counts = self.sweep.counts()
        return {"text/plain": "\n".join([summary_text(self.sweep, counts),
                                         *lane_lines(self.sweep)]),
                "text/html": summary_html(self.sweep, counts, hint=self.hint)}

    def show(self) -> None:
        super().show()
        self._last = self._clock()  # the first redraw waits its turn


class SweepTextPanel(SweepPanel, TextView):
    """Summary lines: a line when a job ends or starts; at the end, one more line per failed
    job. Takes ``stream`` and ``clock`` as :class:`~.progress.TextView` does."""

    def _status(self) -> tuple[tuple[Any, ...], Callable[[], str]]:
        counts = self.sweep.counts()
        return ((counts.succeeded, counts.failed, counts.cancelled, counts.running),
                lambda: summary_text(self.sweep, counts))

    def _final_lines(self, replacement: Any) -> list[str]:
        failed = [item for item in self.sweep.items if item.status == "failed"]
        return [summary_text(self.sweep), *lane_lines(self.sweep),
                *(f"  failed: {item.label}: {_short_error(item, 200)}" for item in failed)]


def make_sweep_panel(sweep: Sweep, backend: str, *, hint: str = "",
                     cancel: Callable[[], Any] | None = None) -> SweepPanel:
    """A panel of the given back end (see :mod:`.backends`)."""
    panel = progress_backend(backend).make(SWEEP, sweep, hint=hint, cancel=cancel)
    assert isinstance(panel, SweepPanel)
    return panel


# -- following a sweep ---------------------------------------------------------------------------


def follow_sweep(sweep: Sweep, backend: str, *, wait: bool = True, timeout: float | None = None,
                 save: str | None = None, interval: float = 0.05) -> SweepPanel:
    """Show ``sweep``'s summary panel in this cell and keep it current; when the sweep ends,
    save every result's full-size files (``save``, default ``display.settings.output_dir``) and
    replace the panel by the grid.

    With ``wait`` this blocks: interrupting (the kernel's stop button) cancels the sweep's jobs
    on the server and re-raises; ``timeout`` cancels them and raises :class:`SweepTimeout`.
    Without ``wait`` a daemon thread follows the sweep and the panel has a Cancel button."""
    from ..sweeps import SweepTimeout

    if not wait:
        panel = make_sweep_panel(sweep, backend, cancel=sweep.cancel)
        panel.show()

        def follow_in_background() -> None:
            while not sweep.done:
                panel.tick()
                time.sleep(interval)
            _end(sweep, panel, save)

        threading.Thread(target=follow_in_background, name="comfy-nb-sweep-panel",
                         daemon=True).start()
        return panel
    # a widget panel's Cancel button works in a waiting cell where its clicks can be read
    events = cell_events() if progress_backend(backend).clickable else None
    panel = make_sweep_panel(sweep, backend, hint="" if events is not None else BLOCKING_HINT,
                             cancel=sweep.cancel if events is not None else None)
    if events is not None:
        events.watch(getattr(panel, "cancel_button", None))
    panel.show()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not sweep.done:
            if events is not None:
                events.pump()
            panel.tick()
            if deadline is not None and time.monotonic() >= deadline:
                unfinished = sum(1 for item in sweep.items if not item.done)
                sweep.cancel()
                _end(sweep, panel, save)
                raise SweepTimeout(timeout or 0.0, unfinished)
            time.sleep(interval)
    except KeyboardInterrupt:
        sweep.cancel()
        _end(sweep, panel, save)
        raise
    finally:
        if events is not None:
            events.close()
    sweep.wait()  # raises what broke the scheduler, if anything did
    _end(sweep, panel, save)
    if progress_backend(backend).displayed:
        mark_shown(sweep)
    return panel


def _end(sweep: Sweep, panel: SweepPanel, save: str | None) -> None:
    """Save the results for the notebook, then the panel becomes the grid. A job whose outputs
    could not be fetched or saved (a download failed, a recording is damaged) fails: its cell
    shows why."""
    for item in sweep.items:
        if item.result is None:
            continue
        try:
            result_display.save_for_notebook(item.result, save)
        except (ComfyError, OSError) as exc:
            finished_at = item.finished_at
            item.end(FAILED, result=item.result, error=exc)  # the Result stays on the item
            item.finished_at = finished_at
    panel.finish(sweep)


def run_sweep_in_cell(client: Client, workflow: Any, assignments: Mapping[str, Sequence[Any]],
                      *, mode: str = "product", overrides: Mapping[str, Any] | None = None,
                      concurrency: int | None = None, tier: str | None = None,
                      backend: str | None = None, wait: bool = True,
                      timeout: float | None = None, save: str | None = None,
                      validate: bool = True, cache: bool | None = None,
                      max_jobs: int | None = MAX_JOBS) -> Sweep:
    """What ``%%comfy_run --sweep seed=1,2,3`` does: sweep ``workflow`` on ``client`` over
    ``assignments`` (``{"seed": [1, 2, 3]}``; parse the option with
    :func:`comfy_nb.sweeps.parse_sweep_values`), with ``overrides`` (``--set``) fixed for every
    job, following it in this cell with a summary panel (``backend``: ``widget``, ``html``,
    ``text``, ``off``; None chooses) that becomes the labelled grid. Returns the
    :class:`~comfy_nb.sweeps.Sweep` (already shown: as the cell's value it prints only its text
    summary). Failed jobs do not raise: their cells show the error (``sweep.raise_errors()``
    does raise). ``cache`` as in :meth:`Client.run` (None: the global setting); ``max_jobs``
    as in :func:`comfy_nb.sweep`."""
    from ..sweeps import sweep as run_sweep

    chosen = choose_backend(backend)
    return run_sweep(workflow, assignments, mode=mode, client=client, concurrency=concurrency,
                     tier=tier, overrides=overrides, validate=validate, cache=cache, wait=wait,
                     timeout=timeout, progress=chosen, save=save, max_jobs=max_jobs)


# -- already on screen ---------------------------------------------------------------------------


def mark_shown(sweep: SweepData) -> None:
    """The grid of ``sweep`` is on screen (its panel became it): as this cell's value
    (IPython's displayhook) it shows nothing more, so the cell shows the grid once."""
    sweep.__dict__["_comfy_nb_shown_in"] = _execution_count()


def _execution_count() -> int | None:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    count = getattr(shell, "execution_count", None) if shell is not None else None
    return count if isinstance(count, int) else None


def already_on_screen(sweep: SweepData) -> bool:
    """Whether IPython is showing ``sweep`` as the value of the cell that showed its grid."""
    marked = sweep.__dict__.get("_comfy_nb_shown_in")
    return (marked is not None and marked == _execution_count()
            and result_display.inside_displayhook())


# -- the grid ------------------------------------------------------------------------------------


def render_sweep(sweep: SweepData, include: Collection[str] | None = None,
                 exclude: Collection[str] | None = None) -> dict[str, Any]:
    """The mimebundle of a sweep: ``text/plain`` (summary and table), ``text/html`` (the grid
    and the parameters → files table) and ``image/jpeg`` (a contact sheet)."""

    def wanted(mime: str) -> bool:
        return (include is None or mime in include) and (exclude is None or mime not in exclude)

    bundle: dict[str, Any] = {}
    if wanted("text/html"):
        bundle["text/html"] = _html(sweep)
    if wanted("text/plain"):
        bundle["text/plain"] = _plain(sweep)
    if wanted("image/jpeg") and grid_settings.contact_sheet:
        sheet = _contact_sheet(sweep)
        if sheet is not None:
            bundle["image/jpeg"] = sheet
    return bundle


@dataclass
class _Layout:
    """Where every item goes: ``cells[row][column]`` (None: an empty cell)."""

    corner: str
    column_labels: list[str] | None  # None: no header row
    row_labels: list[str] | None  # None: no header column
    cells: list[list[SweepItem | None]]
    size: int  # thumbnail side, px


def _axis_label(name: str, value: Any) -> str:
    from ..sweeps import format_params

    return format_params({name: value})


def layout(sweep: SweepData) -> _Layout:
    """Rows and columns of the grid: two or more parameters (product): rows are the
    combinations of all but the last one, columns the last one's values; one parameter: one
    row (wrapped after ``max_columns`` or the width); zip: the combinations, wrapped the same
    way. Thumbnails shrink with the number of jobs and of columns."""
    items = sweep.items
    axes = sweep.axes
    size = cell_size(len(items))
    if sweep.mode == "product" and len(axes) >= 2:
        last_name, last_values = axes[-1]
        width = len(last_values)
        rows = [items[start:start + width] for start in range(0, len(items), width)]
        row_labels = []
        for row in rows:
            first = row[0]
            row_labels.append(", ".join(_axis_label(name, first.params[name])
                                        for name, _ in axes[:-1]))
        return _Layout(corner=" \\ ".join([", ".join(n for n, _ in axes[:-1]), last_name]),
                       column_labels=[_axis_label(last_name, v) for v in last_values],
                       row_labels=row_labels, cells=[list(row) for row in rows],
                       size=_fitted(size, width))
    if len(axes) == 1 and len(items) <= grid_settings.max_columns:  # one row, headed by values
        name = axes[0][0]
        return _Layout(corner="", column_labels=[_axis_label(name, item.params[name])
                                                 for item in items],
                       row_labels=None, cells=[list(items)],
                       size=_fitted(size, len(items) - 1))
    columns = max(min(grid_settings.max_columns, grid_settings.width // (size + 8)), 1)
    grid: list[list[SweepItem | None]] = [list(items[start:start + columns])
                                          for start in range(0, len(items), columns)]
    return _Layout(corner="", column_labels=None, row_labels=None, cells=grid, size=size)


def _fitted(size: int, columns: int) -> int:
    """``size``, smaller if ``columns`` cells of it would not fit ``grid_settings.width``."""
    return max(min(size, grid_settings.width // max(columns + 1, 1) - 8), min(size, 64))


def cell_size(count: int) -> int:
    """The thumbnail side for a sweep of ``count`` jobs (see :class:`GridSettings`)."""
    if grid_settings.cell_size is not None:
        return max(int(grid_settings.cell_size), 16)
    size = 256 if count <= 6 else 160 if count <= 24 else 112
    return max(min(size, int(result_display.settings.thumbnail_size)), 16)


_CELL_STYLE = "vertical-align:top;text-align:center;padding:4px"
_HEAD_STYLE = "padding:4px;text-align:center"


def _html(sweep: SweepData) -> str:
    esc = html.escape
    grid = layout(sweep)
    size = grid.size
    parts = ['<div class="comfy-nb-sweep">',
             f"<div class=\"comfy-nb-sweep-summary\"><b>comfy_nb</b> sweep: "
             f"{esc(sweep.summary())} · {sweep.elapsed:.1f} s</div>",
             *([lanes_html(sweep)] if sweep.lanes() else []),  # a pool: each member's items
             '<div style="overflow-x:auto">',
             '<table class="comfy-nb-sweep-grid" style="border-collapse:collapse">']
    if grid.column_labels is not None:
        head = [f'<th style="{_HEAD_STYLE}">{esc(grid.corner)}</th>'] \
            if grid.row_labels is not None else []
        head += [f'<th scope="col" style="{_HEAD_STYLE}">{esc(text)}</th>'
                 for text in grid.column_labels]
        parts.append("<tr>" + "".join(head) + "</tr>")
    for index, row in enumerate(grid.cells):
        cells = []
        if grid.row_labels is not None:
            cells.append(f'<th scope="row" style="{_HEAD_STYLE};text-align:right">'
                         f"{esc(grid.row_labels[index])}</th>")
        cells += [_cell(item, size) for item in row]
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table></div>")
    parts.append(_rows_html(sweep))
    parts.append("</div>")
    return "\n".join(parts)


def _cell(item: SweepItem | None, size: int) -> str:
    esc = html.escape
    if item is None:
        return "<td></td>"
    cached = " · from cache" if getattr(item.result, "from_cache", False) else ""
    caption = (f'<div class="comfy-nb-caption"><small>{esc(_caption(item))}{cached}</small>'
               "</div>")
    status = item.status
    body: str
    if status == "succeeded" and item.result is not None:
        body = _result_html(item.result, item, size)
    elif status == "failed":
        full = _short_error(item, 10_000)
        body = (f'<div class="comfy-nb-sweep-error" title="{esc(full)}" style="color:#b00;'
                f'max-width:{max(size, 160)}px;white-space:normal;text-align:left">'
                f"<b>failed</b>: {esc(_short_error(item))}</div>")
    elif status == "cancelled":
        body = '<div class="comfy-nb-sweep-cancelled"><i>cancelled</i></div>'
    else:
        body = f'<div class="comfy-nb-sweep-pending"><i>{esc(status)}</i></div>'
    return (f'<td class="comfy-nb-sweep-cell comfy-nb-{esc(status)}" style="{_CELL_STYLE}">'
            f"{body}{caption}</td>")


def _caption(item: SweepItem) -> str:
    from ..sweeps import format_params

    return format_params(item.params, " · ")


def _result_html(result: Result, item: SweepItem, size: int) -> str:
    esc = html.escape
    images = [file for file in result.files if file.kind == OutputKind.IMAGE]
    others = [file for file in result.files if file.kind != OutputKind.IMAGE]
    parts: list[str] = []
    if images:
        file = images[0]
        path = result_display.saved_file(result, file)
        try:
            thumb = result_display.thumbnail(result, file, size)
        except Exception as exc:
            parts.append(f"<div><em>{esc(file.filename)} could not be shown: "
                         f"{esc(result_display.error_reason(exc))}</em></div>")
        else:
            data = base64.b64encode(thumb.still).decode("ascii")
            img = (f'<img src="data:{thumb.mime};base64,{data}" width="{thumb.width}" '
                   f'height="{thumb.height}" alt="{esc(_caption(item))}">')
            parts.append(f'<a href="{result_display.href(path)}">{img}</a>'
                         if path is not None else img)
        if len(images) > 1:
            parts.append(f"<div><small>+{len(images) - 1} more image"
                         f"{'' if len(images) == 2 else 's'}</small></div>")
    for file in others[:3]:
        path = result_display.saved_file(result, file)
        name = esc(file.filename)
        parts.append(f'<div><small><a href="{result_display.href(path)}">{name}</a></small>'
                     "</div>" if path is not None else f"<div><small>{name}</small></div>")
    if len(others) > 3:
        parts.append(f"<div><small>+{len(others) - 3} more files</small></div>")
    for strings in list(result.text.values())[:2]:
        text = " ".join(" ".join(strings).split())
        short = text if len(text) <= 120 else text[:119] + "…"
        parts.append(f'<div style="max-width:{max(size, 160)}px;white-space:normal">'
                     f"<small>{esc(short)}</small></div>")
    if not parts:
        parts.append("<div><i>no outputs</i></div>")
    return "".join(parts)


def _rows_html(sweep: SweepData) -> str:
    esc = html.escape
    rows = sweep.rows()
    names = sweep.names
    servers = ["server"] if sweep.lanes() else []  # a pool: which member ran each
    head = "".join(f"<th>{esc(c)}</th>" for c in [*names, "status", *servers, "files",
                                                  "error"])
    body = []
    for item, row in zip(sweep.items, rows, strict=True):
        files = []
        if item.result is not None:
            for file in item.result.files:
                path = result_display.saved_file(item.result, file)
                text = esc(shown_path(path) if path is not None
                           else file.filename)
                files.append(f'<a href="{result_display.href(path)}">{text}</a>'
                             if path is not None else text)
        error = esc(_short_error(item, 200)) if item.error is not None else ""
        cells = [esc(str(row[name])) for name in names]
        cells.append(esc(row["status"]))
        if servers:
            cells.append(esc(row["server"] or ""))
        cells += ["<br>".join(files), error]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    opened = " open" if len(rows) <= grid_settings.open_rows else ""
    return (f"<details{opened}><summary>parameters → files ({len(rows)} rows; "
            "<code>.rows()</code>)</summary>"
            f'<table class="comfy-nb-sweep-rows"><tr>{head}</tr>{"".join(body)}</table>'
            "</details>")


def _plain(sweep: SweepData) -> str:
    rows = sweep.rows()
    names = sweep.names
    servers = ["server"] if sweep.lanes() else []  # a pool: which member ran each
    table = [[*names, "status", *servers, "files / error"]]
    limit = max(grid_settings.text_rows, 1)
    for row in rows[:limit]:
        if row["error"]:
            detail = row["error"]
            detail = detail if len(detail) <= 100 else detail[:99] + "…"
        else:
            detail = ", ".join(row["files"]) or "-"
        server = [row["server"] or "-"] if servers else []
        table.append([*(str(row[name]) for name in names), row["status"], *server, detail])
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    lines = [repr(sweep)]
    for line in table:
        lines.append("  ".join([*(c.ljust(w) for c, w in zip(line, widths, strict=False)),
                                line[-1]]).rstrip())
    if len(rows) > limit:
        lines.append(f"… and {len(rows) - limit} more rows (sweep.rows())")
    return "\n".join(lines)


def _contact_sheet(sweep: SweepData) -> bytes | None:
    """The grid as one JPEG (thumbnails and their values; failed cells say so), or None when
    no job produced an image."""
    from PIL import Image, ImageDraw

    grid = layout(sweep)
    columns = max((len(row) for row in grid.cells), default=0)
    if not columns or not any(item is not None and item.result is not None
                              and any(f.kind == OutputKind.IMAGE for f in item.result.files)
                              for row in grid.cells for item in row):
        return None
    tile = min(grid.size, 128, max(_SHEET_WIDTH // columns, 32))
    label_height = 14
    sheet = Image.new("RGB", (columns * (tile + 4), len(grid.cells) * (tile + label_height + 4)),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(grid.cells):
        for c, item in enumerate(row):
            if item is None:
                continue
            x, y = c * (tile + 4) + 2, r * (tile + label_height + 4) + 2
            picture = _tile(item, tile)
            if picture is not None:
                sheet.paste(picture, (x + (tile - picture.width) // 2,
                                      y + (tile - picture.height) // 2))
            else:
                colour = "#f4d0d0" if item.status == "failed" else "#e8e8e8"
                draw.rectangle((x, y, x + tile - 1, y + tile - 1), fill=colour)
                draw.text((x + 4, y + 4), item.status, fill="#900" if item.status == "failed"
                          else "#333")
            caption = _caption(item)
            limit = max(tile // 6, 4)
            caption = caption if len(caption) <= limit else caption[:limit - 1] + "…"
            draw.text((x, y + tile + 1), caption, fill="black")
    out = io.BytesIO()
    sheet.save(out, "JPEG", quality=80)
    return out.getvalue()


def _tile(item: SweepItem, size: int) -> Any:
    from PIL import Image

    if item.result is None or item.status != "succeeded":
        return None
    for file in item.result.files:
        if file.kind == OutputKind.IMAGE:
            try:
                thumb = result_display.thumbnail(item.result, file, size)
                with Image.open(io.BytesIO(thumb.still)) as image:
                    return image.convert("RGB")
            except Exception:
                return None
    return None

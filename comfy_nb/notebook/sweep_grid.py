"""The comparison grid of a sweep: one swept input along x, another along y, a third as pages
(z), each cell the image of one combination with its values.

Owns: placing a sweep's items on the grid (:func:`grid_layout`: which inputs go on which axis,
pages, cells no combination fills), the state of one cell (status, caption, error, values, the
``--set`` line that reruns it), small data-URI thumbnails (JPEG, or PNG for transparency) cached
per item, the static HTML of the grid (a table per page with axis labels and thumbnails, no
JavaScript: what nbconvert, GitHub and Binder readers see), the labelled contact sheet
(:meth:`SweepGrid.save` of ``.png``/``.jpg``/``.webp``), the standalone page (``.html``), "pick"
(:meth:`SweepGrid.pick`), and :class:`SweepGrid`, what :meth:`comfy_nb.sweeps.Sweep.grid`
returns, shown live by :mod:`._grid_widget`.

Pick means: the cell's swept values become ``grid.picked`` (and ``sweep.picked``), its ``--set``
line (to paste into a ``%%comfy_run`` cell) becomes ``grid.picked_set_line``, and when the grid
was given interact ``controls`` (an :class:`~comfy_nb.notebook.interact.Interact` or anything with
``set_values``), the values are put into them.

Must not: speak HTTP (files come from ``OutputFile.read()``), schedule jobs, or need a widget
library: without anywidget every view here still works as HTML.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from ..errors import ComfyError

if TYPE_CHECKING:
    from PIL import Image

    from ..result import Result
    from ..sweeps import Sweep, SweepItem

__all__ = ["GridAxis", "GridError", "GridLayout", "SweepGrid", "Thumbnails", "cell_state",
           "check_axes", "contact_sheet", "grid_layout", "parse_grid_option", "set_line",
           "show_sweep_grid", "static_html"]

log = logging.getLogger("comfy_nb")

_ERROR_CHARS = 240  # characters of an error shown in its cell (the whole text is its tooltip)
_SHEET_TILE = 192  # longest side of a contact sheet's tile, px
_LABEL_CHARS = 40


class GridError(ComfyError, ValueError):
    """The grid's axes do not fit the sweep (an unknown input, one on two axes, inputs left
    over)."""


class Controls(Protocol):
    """What pick puts values into (an :class:`~comfy_nb.notebook.interact.Interact`)."""

    def set_values(self, values: Mapping[str, Any] | None = None, **named: Any) -> Any: ...


# -- layout --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridAxis:
    """One axis of the grid: the swept input, its place among the sweep's axes, the labels of
    its values (``cfg=4.0``)."""

    name: str
    position: int  # index into the sweep's axes (and each item's ``position``)
    labels: tuple[str, ...]


@dataclass(frozen=True)
class GridLayout:
    """Where every item sits: ``pages[z][y][x]`` (None: no combination of the sweep there)."""

    x: GridAxis
    y: GridAxis | None
    z: GridAxis | None
    pages: tuple[tuple[tuple[SweepItem | None, ...], ...], ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(pages, rows, columns)``."""
        return (len(self.pages), len(self.pages[0]), len(self.pages[0][0]))

    def cells(self) -> list[tuple[tuple[int, int, int], SweepItem | None]]:
        """Every cell as ``((page, row, column), item)``, page by page, row by row."""
        return [((p, r, c), item) for p, page in enumerate(self.pages)
                for r, row in enumerate(page) for c, item in enumerate(row)]


def parse_grid_option(text: str, flag: str = "--grid") -> tuple[str | None, ...]:
    """``"seed,cfg"`` (what ``%%comfy_run --grid`` takes) as ``("seed", "cfg", None)``."""
    names = [part.strip() for part in text.split(",")]
    if not 1 <= len(names) <= 3 or not all(names):
        raise GridError(f"{flag} takes X[,Y[,Z]]: the swept inputs along x, y and as pages "
                        f"(e.g. {flag} seed,cfg), not {text!r}")
    return (*names, *([None] * (3 - len(names))))


def check_axes(axes: Sequence[tuple[str, Sequence[Any]]], mode: str, x: str | None = None,
               y: str | None = None, z: str | None = None) -> tuple[str, str | None, str | None]:
    """The inputs on x, y and z for a sweep of ``axes``: the given ones, then (product mode)
    the other inputs with more than one value fill y, then z. Raises :class:`GridError` for an
    unknown name, a name given twice, or inputs left over."""
    names = [name for name, _ in axes]
    given = [name for name in (x, y, z) if name is not None]
    for name in given:
        if name not in names:
            raise GridError(f"{name!r} is not swept here; the grid's axes are among "
                            f"{', '.join(map(repr, names))}")
    if len(set(given)) != len(given):
        raise GridError(f"each input goes on one axis, not {', '.join(given)}")
    varying = [name for name, values in axes if len(values) > 1 and name not in given]
    if mode == "zip":  # the i-th values go together: any one axis tells the combinations apart
        varying = varying[:1] if not given else []
    chosen = [x, y, z]
    for slot in range(3):
        if chosen[slot] is None and varying:
            chosen[slot] = varying.pop(0)
    if varying:
        raise GridError(f"the sweep also varies {', '.join(map(repr, varying))}: put it on an "
                        "axis (x=, y=, z=; --grid X,Y,Z)")
    if chosen[0] is None:  # nothing given, nothing varies: the first input along x
        chosen[0] = next((name for name in names if name not in given), names[0])
    if chosen[1] is None and chosen[2] is not None:
        chosen[1], chosen[2] = chosen[2], None
    return chosen[0] or names[0], chosen[1], chosen[2]


def value_label(name: str, value: Any) -> str:
    """``cfg=4.0`` (long values shortened)."""
    text = repr(value) if isinstance(value, str) and value.strip() != value else str(value)
    text = " ".join(text.split())
    text = text if len(text) <= _LABEL_CHARS else text[:_LABEL_CHARS - 1] + "…"
    return f"{name}={text}"


def grid_layout(sweep: Sweep, x: str | None = None, y: str | None = None,
                z: str | None = None) -> GridLayout:
    """The grid of ``sweep`` with ``x`` along the columns, ``y`` down the rows and ``z`` as
    pages (see :func:`check_axes` for what fills the axes not given)."""
    names = [name for name, _ in sweep.axes]
    chosen = check_axes(sweep.axes, sweep.mode, x, y, z)
    axes = [None if name is None else GridAxis(
        name, names.index(name), tuple(value_label(name, value)
                                       for value in sweep.axes[names.index(name)][1]))
        for name in chosen]
    x_axis, y_axis, z_axis = axes
    assert x_axis is not None
    counts = [len(axis.labels) if axis is not None else 1 for axis in (z_axis, y_axis, x_axis)]
    slots: list[list[list[SweepItem | None]]] = [
        [[None] * counts[2] for _ in range(counts[1])] for _ in range(counts[0])]
    for item in sweep.items:
        where = [item.position[axis.position] if axis is not None else 0
                 for axis in (z_axis, y_axis, x_axis)]
        if slots[where[0]][where[1]][where[2]] is None:
            slots[where[0]][where[1]][where[2]] = item
    return GridLayout(x_axis, y_axis, z_axis,
                      tuple(tuple(tuple(row) for row in page) for page in slots))


# -- cells ---------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def set_line(params: Mapping[str, Any]) -> str:
    """The ``--set`` options that rerun one combination (``--set seed=2 --set cfg=7.0``),
    quoted where a shell-like split needs it."""
    parts = []
    for name, value in params.items():
        text = value if isinstance(value, str) else json.dumps(_json_value(value))
        option = f"{name}={text}"
        if any(char.isspace() for char in option) or "'" in option or '"' in option:
            option = "'" + option.replace("'", "'\"'\"'") + "'"
        parts.append(f"--set {option}")
    return " ".join(parts)


def _error_text(item: SweepItem, limit: int) -> str:
    from ..sweeps import error_text

    text = " ".join(error_text(item.error).split()) if item.error is not None else item.status
    return text if len(text) <= limit else text[:limit - 1] + "…"


def caption(item: SweepItem) -> str:
    """``seed=1 · cfg=4.0``."""
    return " · ".join(value_label(name, value) for name, value in item.params.items())


def cell_state(item: SweepItem | None, where: tuple[int, int, int],
               thumbnail: Thumbnail | None = None, *, on_pool: bool = False) -> dict[str, Any]:
    """One cell as plain JSON: where it is, its item's index (-1: no combination), status,
    caption, error (failed cells say why), values, ``--set`` line, thumbnail and, for a sweep
    ``on_pool``, the ``server`` (member) that ran it ("" otherwise, or not yet)."""
    if item is None:
        return {"key": list(where), "index": -1, "status": "missing", "caption": "",
                "error": "", "values": {}, "set_line": "", "thumb": "", "width": 0,
                "height": 0, "server": ""}
    error = _error_text(item, 10_000) if item.status in ("failed", "cancelled") \
        and item.error is not None else ""
    return {"key": list(where), "index": item.index, "status": item.status,
            "caption": caption(item), "error": error,
            "values": {name: _json_value(value) for name, value in item.params.items()},
            "set_line": set_line(item.params),
            "thumb": thumbnail.data_uri if thumbnail is not None else "",
            "width": thumbnail.width if thumbnail is not None else 0,
            "height": thumbnail.height if thumbnail is not None else 0,
            "server": (item.server or "") if on_pool else ""}


# -- thumbnails ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thumbnail:
    """A small rendition of a cell's first image."""

    data: bytes
    mime: str
    width: int
    height: int

    @functools.cached_property
    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    def image(self) -> Image.Image:
        from PIL import Image

        with Image.open(io.BytesIO(self.data)) as picture:
            return picture.convert("RGB")


def make_thumbnail(data: bytes, size: int, quality: int = 80) -> Thumbnail:
    """``data`` (an image file) fitted into ``size`` x ``size``: JPEG, or PNG when it has
    transparency; never enlarged."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as picture:
        picture.seek(0)
        alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
        still = picture.convert("RGBA" if alpha else "RGB")
    still.thumbnail((max(size, 8), max(size, 8)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if alpha:
        still.save(buffer, "PNG", optimize=True)
        mime = "image/png"
    else:
        still.save(buffer, "JPEG", quality=quality)
        mime = "image/jpeg"
    return Thumbnail(buffer.getvalue(), mime, still.width, still.height)


class Thumbnails:
    """Thumbnails of the items of one grid, made once per item and size (thread-safe)."""

    def __init__(self) -> None:
        self._made: dict[tuple[int, int], Thumbnail | None] = {}
        self._lock = threading.Lock()

    def get(self, item: SweepItem | None, size: int) -> Thumbnail | None:
        """The first image of ``item``'s result at ``size``, None if it has none (yet) or it
        cannot be decoded (logged once)."""
        if item is None or item.status != "succeeded" or item.result is None:
            return None
        key = (item.index, size)
        with self._lock:
            if key in self._made:
                return self._made[key]
        made: Thumbnail | None = None
        image = next((file for file in item.result.files if file.kind == "image"), None)
        if image is not None:
            try:
                made = make_thumbnail(image.read(), size)
            except Exception as exc:  # a file that is no image: the cell says "no image"
                log.warning("comfy_nb: %s of %s could not be shown: %s", image.filename,
                            caption(item), exc)
        with self._lock:
            self._made[key] = made
        return made


# -- static HTML ---------------------------------------------------------------------------------


def _href(path: Path) -> str:
    try:
        relative = os.path.relpath(path, os.getcwd())
    except (ValueError, OSError):
        return path.resolve().as_uri()
    return quote(Path(relative).as_posix())


def _saved_image(result: Result) -> Path | None:
    for file in result.files:
        if file.kind == "image":
            path = result.saved_path(file)
            return path if path is not None and path.is_file() else None
    return None


_TABLE = "border-collapse:collapse;margin:4px 0"
_HEAD = "padding:4px 6px;text-align:center;font-weight:bold;vertical-align:middle"
_CELL = "padding:4px;text-align:center;vertical-align:top;border:1px solid #ddd"


def _static_cell(item: SweepItem | None, thumbs: Thumbnails, size: int,
                 on_pool: bool = False) -> str:
    esc = html.escape
    if item is None:
        return (f'<td class="comfy-nb-grid-cell comfy-nb-missing" style="{_CELL};color:#888">'
                "<i>not in this sweep</i></td>")
    status = item.status
    thumb = thumbs.get(item, size)
    if thumb is not None:
        img = (f'<img src="{thumb.data_uri}" width="{thumb.width}" height="{thumb.height}" '
               f'alt="{esc(caption(item))}">')
        path = _saved_image(item.result) if item.result is not None else None
        body = f'<a href="{_href(path)}">{img}</a>' if path is not None else img
    elif status == "failed":
        body = (f'<div class="comfy-nb-grid-error" title="{esc(_error_text(item, 10_000))}" '
                f'style="color:#b00;max-width:{max(size, 140)}px;white-space:normal;'
                f'text-align:left"><b>failed</b>: {esc(_error_text(item, _ERROR_CHARS))}</div>')
    elif status == "succeeded":
        body = "<i>no image</i>"
    else:
        body = f'<div style="width:{size}px;color:#666"><i>{esc(status)}</i></div>'
    server = (f'<div class="comfy-nb-grid-server"><small>on {esc(item.server)}</small></div>'
              if on_pool and item.server else "")
    return (f'<td class="comfy-nb-grid-cell comfy-nb-{esc(status)}" style="{_CELL}">{body}'
            f'<div><small>{esc(caption(item))}</small></div>{server}</td>')


def static_html(grid: GridLayout, thumbs: Thumbnails, size: int, title: str = "",
                on_pool: bool = False) -> str:
    """The grid as plain HTML: per page (z) a heading and a table whose header row holds the
    x labels and whose first column the y labels; thumbnails as data URIs linking the saved
    files; for a sweep ``on_pool``, the member that ran each cell under it. No script, no
    stylesheet needed."""
    esc = html.escape
    parts = ['<div class="comfy-nb-grid-static">']
    if title:
        parts.append(f'<div class="comfy-nb-grid-title">{esc(title)}</div>')
    for p, page in enumerate(grid.pages):
        if grid.z is not None:
            parts.append(f'<h4 class="comfy-nb-grid-page" style="margin:8px 0 2px 0">'
                         f"{esc(grid.z.labels[p])}</h4>")
        parts.append(f'<table class="comfy-nb-grid-table" style="{_TABLE}">')
        corner = f"{grid.y.name} \\ {grid.x.name}" if grid.y is not None else ""
        head = [f'<th style="{_HEAD}">{esc(corner)}</th>'] if grid.y is not None else []
        head += [f'<th scope="col" style="{_HEAD}">{esc(label)}</th>'
                 for label in grid.x.labels]
        parts.append("<tr>" + "".join(head) + "</tr>")
        for r, row in enumerate(page):
            cells = [f'<th scope="row" style="{_HEAD};text-align:right">'
                     f"{esc(grid.y.labels[r])}</th>"] if grid.y is not None else []
            cells += [_static_cell(item, thumbs, size, on_pool) for item in row]
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</table>")
    parts.append("</div>")
    return "\n".join(parts)


# -- the contact sheet ---------------------------------------------------------------------------


def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def contact_sheet(grid: GridLayout, thumbs: Thumbnails, tile: int = _SHEET_TILE,
                  title: str = "") -> Image.Image:
    """One labelled image of the grid: per page a heading, the x labels across the top, the y
    labels down the left, each cell its thumbnail (or its status; failed cells in red with the
    start of the error) and its caption."""
    from PIL import Image, ImageDraw

    font = _font(12)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    pages, rows, columns = grid.shape
    gap, line = 6, 16
    left = 0
    if grid.y is not None:
        left = min(max(int(measure.textlength(label, font=font)) for label in grid.y.labels)
                   + 2 * gap, 220)
    heading = line + gap if grid.z is not None else 0
    top_title = line + gap if title else 0
    cell_w, cell_h = tile + gap, tile + line + gap
    page_h = heading + line + gap + rows * cell_h
    width = max(left + columns * cell_w + gap, 240)
    sheet = Image.new("RGB", (width, top_title + pages * page_h + gap), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        title = title.replace("×", "x")  # the default font has no multiplication sign
        draw.text((gap, gap), _fit(draw, title, font, width - 2 * gap), fill="black", font=font)
    for p, page in enumerate(grid.pages):
        y0 = top_title + p * page_h
        if grid.z is not None:
            draw.text((gap, y0 + gap), grid.z.labels[p], fill="black", font=font)
        header_y = y0 + heading + gap
        for c, label in enumerate(grid.x.labels):
            x = left + c * cell_w + gap
            draw.text((x, header_y), _fit(draw, label, font, tile), fill="black", font=font)
        for r, row in enumerate(page):
            y = header_y + line + r * cell_h
            if grid.y is not None:
                draw.text((gap, y + tile // 2 - line // 2),
                          _fit(draw, grid.y.labels[r], font, left - 2 * gap), fill="black",
                          font=font)
            for c, item in enumerate(row):
                _draw_tile(sheet, draw, item, thumbs, (left + c * cell_w + gap, y), tile, font)
    return sheet


def _draw_tile(sheet: Image.Image, draw: Any, item: SweepItem | None, thumbs: Thumbnails,
               origin: tuple[int, int], tile: int, font: Any) -> None:
    x, y = origin
    thumb = thumbs.get(item, tile)
    if thumb is not None:
        picture = thumb.image()
        sheet.paste(picture, (x + (tile - picture.width) // 2, y + (tile - picture.height) // 2))
    else:
        status = item.status if item is not None else "not in this sweep"
        failed = status == "failed"
        draw.rectangle((x, y, x + tile - 1, y + tile - 1),
                       fill="#f6d4d4" if failed else "#ececec")
        draw.text((x + 6, y + 6), status, fill="#a00" if failed else "#444", font=font)
        if failed and item is not None:
            words = _error_text(item, 200).split()
            lines: list[str] = []
            while words and len(lines) < max(tile // 16 - 3, 1):
                current = words.pop(0)
                while words and draw.textlength(current + " " + words[0], font=font) < tile - 12:
                    current += " " + words.pop(0)
                lines.append(_fit(draw, current, font, tile - 12))
            for n, text in enumerate(lines):
                draw.text((x + 6, y + 24 + n * 15), text, fill="#a00", font=font)
    if item is not None:
        draw.text((x, y + tile + 2), _fit(draw, caption(item), font, tile), fill="black",
                  font=font)


# -- the grid object -----------------------------------------------------------------------------


def _write_atomically(path: Path, write: Callable[[io.BufferedWriter], object]) -> None:
    """Write ``path`` whole or not at all (a temp file in its folder, then renamed)."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class SweepGrid:
    """The comparison grid of a sweep (:meth:`comfy_nb.sweeps.Sweep.grid`). Shown as a cell's
    value, it fills in while the sweep runs (:mod:`._grid_widget`: an anywidget where widgets
    are drawn, HTML updated in place elsewhere); :meth:`save` writes a contact sheet or a page;
    :meth:`pick` chooses a cell."""

    def __init__(self, sweep: Sweep, x: str | None = None, y: str | None = None,
                 z: str | None = None, *, size: int | None = None,
                 controls: Controls | None = None) -> None:
        self.sweep = sweep
        self.axes = check_axes(sweep.axes, sweep.mode, x, y, z)
        count = len(sweep.items)
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)
                                 or not 16 <= size <= 1024):
            raise GridError(f"size is the thumbnails' side in pixels, 16 to 1024, not {size!r}")
        self.size = size if size is not None else 256 if count <= 6 else \
            160 if count <= 24 else 112
        self.controls = controls
        self.thumbnails = Thumbnails()
        #: the swept values of the cell picked last (None: none yet)
        self.picked: dict[str, Any] | None = None
        #: its ``--set`` options, to paste into a ``%%comfy_run`` cell
        self.picked_set_line: str = ""
        self._on_pick: list[Callable[[dict[str, Any]], object]] = []
        self.view: Any = None  # the live view once shown (see _grid_widget)

    def layout(self) -> GridLayout:
        """Where every item sits now."""
        return grid_layout(self.sweep, *self.axes)

    def cells(self) -> list[dict[str, Any]]:
        """Every cell's state (see :func:`cell_state`), page by page, row by row."""
        on_pool = bool(self.sweep.lanes())
        return [cell_state(item, where, self.thumbnails.get(item, self.size), on_pool=on_pool)
                for where, item in self.layout().cells()]

    def title(self) -> str:
        return f"comfy_nb sweep grid: {self.sweep.summary()}"

    def html(self) -> str:
        """The static grid (no script)."""
        return static_html(self.layout(), self.thumbnails, self.size, self.title(),
                           on_pool=bool(self.sweep.lanes()))

    def text(self) -> str:
        x, y, z = self.axes
        where = " · ".join(f"{axis}: {name}" for axis, name in (("x", x), ("y", y), ("z", z))
                           if name is not None)
        return f"<SweepGrid {where}; {self.sweep.summary()}>"

    def __repr__(self) -> str:
        return self.text()

    def on_pick(self, callback: Callable[[dict[str, Any]], object]) -> None:
        """Call ``callback(values)`` whenever a cell is picked."""
        self._on_pick.append(callback)

    def pick(self, cell: int | Mapping[str, Any]) -> dict[str, Any]:
        """Choose a cell, by its item's index or by (some of) its values: its values become
        :attr:`picked` (and ``sweep.picked``), its ``--set`` line :attr:`picked_set_line`, and
        they go into :attr:`controls` when the grid has them. Returns the values."""
        if isinstance(cell, Mapping):
            matches = [item for item in self.sweep.items
                       if all(item.params.get(name) == value for name, value in cell.items())]
            if len(matches) != 1:
                raise GridError(f"{dict(cell)} matches {len(matches)} cells; give values that "
                                "match one")
            item = matches[0]
        else:
            if not 0 <= int(cell) < len(self.sweep.items):
                raise GridError(f"no cell {cell}: the sweep has {len(self.sweep.items)} items")
            item = self.sweep.items[int(cell)]
        values = dict(item.params)
        self.picked = values
        self.picked_set_line = set_line(values)
        self.sweep.picked = dict(values)
        if self.controls is not None:
            names = getattr(self.controls, "controls", None)
            chosen = {name: value for name, value in values.items()
                      if names is None or name in names}
            self.controls.set_values(chosen)
        for callback in self._on_pick:
            callback(dict(values))
        return values

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the grid to ``path``: ``.png``, ``.jpg`` or ``.webp`` a labelled contact sheet,
        ``.html`` a standalone page (the static grid). Whole files only."""
        target = Path(path)
        suffix = target.suffix.lower()
        formats = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
        if suffix not in (*formats, ".html", ".htm"):
            raise GridError(f"save() writes .png, .jpg, .webp (a contact sheet) or .html (a "
                            f"page), not {target.name!r}")
        if not target.parent.is_dir():
            raise GridError(f"{target.parent} is not a folder; create it first")
        if suffix in (".html", ".htm"):
            page = standalone_page(self.html(), self.title())
            _write_atomically(target, lambda out: out.write(page.encode("utf-8")))
        else:
            sheet = contact_sheet(self.layout(), self.thumbnails, min(self.size, _SHEET_TILE),
                                  self.title())
            _write_atomically(target, lambda out: sheet.save(out, formats[suffix]))
        return target

    def show(self, *, wait: bool = False, timeout: float | None = None,
             backend: str | None = None, save: str | None = None) -> None:
        """Display the grid in this cell and keep it current while the sweep runs (``wait``:
        block until it ends; interrupting cancels the sweep). ``backend``: ``widget``,
        ``html``, ``text`` or ``off`` (None chooses as the progress panels do); ``save``: the
        folder for full-size files (default ``display.settings.output_dir``)."""
        from ._grid_widget import show_grid

        show_grid(self, wait=wait, timeout=timeout, backend=backend, save=save)

    def _ipython_display_(self) -> None:
        self.show()

    def _repr_mimebundle_(self, include: Collection[str] | None = None,
                          exclude: Collection[str] | None = None,
                          **kwargs: Any) -> dict[str, Any]:
        return {"text/plain": self.text(), "text/html": self.html()}


def show_sweep_grid(sweep: Sweep, axes: Sequence[str | None], *, wait: bool = True,
                    timeout: float | None = None, save: str | None = None,
                    backend: str | None = None) -> SweepGrid:
    """What ``%%comfy_run --sweep ... --grid X,Y,Z`` shows: the grid of ``sweep`` in this cell,
    filling in as it runs (``wait``: the cell waits for the sweep; see :meth:`SweepGrid.show`).
    The sweep, as the cell's value, then shows nothing more."""
    from .sweep_view import mark_shown

    grid = SweepGrid(sweep, *axes)
    grid.show(wait=wait, timeout=timeout, backend=backend, save=save)
    mark_shown(sweep)
    return grid


def standalone_page(body: str, title: str) -> str:
    """A whole HTML document around ``body``."""
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:16px}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")

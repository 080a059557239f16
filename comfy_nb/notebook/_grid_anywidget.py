"""The grid's anywidget: the synced state of a sweep's comparison grid and the files of its front
end (``grid_widget.js``, ``grid_widget.css``, shipped in the package). Imported only where
anywidget is installed; :mod:`._grid_widget` decides when (and says why anywidget).

Owns: the traits the page reads (axes, cells, summary, message, picked) and nothing else: the
kernel side of the widget's traffic is in :mod:`._grid_widget`.
"""

from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets

__all__ = ["GridWidget"]

_ASSETS = Path(__file__).resolve().parent


class GridWidget(anywidget.AnyWidget):
    """A sweep's grid in the page: cells with thumbnails, zoom and pan shared by every cell,
    click to enlarge, A/B compare, pick."""

    _esm = _ASSETS / "grid_widget.js"
    _css = _ASSETS / "grid_widget.css"

    #: ``{"x": {"name", "labels"}, "y": ... or None, "z": ... or None}``
    axes = traitlets.Dict().tag(sync=True)
    #: every cell (see :func:`~.sweep_grid.cell_state`), page by page, row by row
    cells: traitlets.List[dict[str, object]] = traitlets.List().tag(sync=True)
    #: thumbnail side, px
    size = traitlets.Int(160).tag(sync=True)
    #: the sweep's counts, one line
    summary = traitlets.Unicode("").tag(sync=True)
    #: what the kernel says back (a pick, a problem)
    message = traitlets.Unicode("").tag(sync=True)
    #: the cell picked last: ``{"index", "values", "set_line"}``
    picked = traitlets.Dict().tag(sync=True)

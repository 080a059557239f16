"""The history strip of an :class:`~.interact.Interact`: earlier results as small entries (a
thumbnail, the values that made it, a button that brings them back), newest first.

Owns: :class:`HistoryEntry` (one finished run), :class:`HistoryStrip` (the strip's widgets,
built and trimmed within the Interact's message budget, sharing one layout and style per part
so that an entry costs three widgets) and :func:`close_tree`.

Must not: run anything or change the controls: the restore button only calls back (the
Interact's worker does the rest).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
from ipywidgets.widgets.widget_string import HTMLStyle

from . import display as result_display

if TYPE_CHECKING:
    from ..result import Result
    from .progress import RateLimit

__all__ = ["HistoryEntry", "HistoryStrip", "caption_html", "close_tree", "short_text"]


@dataclass(frozen=True)
class HistoryEntry:
    """One finished run: its number, the control values that made it and its Result."""

    number: int
    values: dict[str, Any]
    result: Result
    job_id: str
    seconds: float


def caption_html(values: dict[str, Any]) -> str:
    """The values of a history entry, one a line, wrapping between words (a long prompt is cut
    after 60 characters; hovering shows every value in full)."""
    lines = "".join(f"<div><b>{html.escape(name)}</b>: {html.escape(short_text(value, 60))}</div>"
                    for name, value in values.items())
    full = html.escape("\n".join(f"{name}: {short_text(value, 10_000)}"
                                  for name, value in values.items()), quote=True)
    return (f'<div class="comfy-nb-history-values" title="{full}" style="line-height:1.3;'
            f'white-space:normal;overflow-wrap:anywhere">{lines}</div>')


def short_text(value: Any, width: int = 24) -> str:
    """``value`` on one line of at most ``width`` characters (JSON unless it is a string)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def close_tree(widget: Any, *, shared: bool = True) -> None:
    """Close a widget and its children (and, with ``shared``, their layouts and styles)."""
    for child in getattr(widget, "children", ()):
        close_tree(child, shared=shared)
    if shared:
        for name in ("layout", "style"):
            part = getattr(widget, name, None)
            if isinstance(part, widgets.Widget):
                part.close()
    widget.close()


class HistoryStrip:
    """The strip (``widget``, an ``HBox``). :meth:`add` puts an entry at the front and closes
    the entries that dropped out; every widget message waits for room in ``pacer``.
    ``on_restore(entry)`` is called (kernel thread) when an entry's button is clicked."""

    def __init__(self, pacer: RateLimit, on_restore: Callable[[HistoryEntry], object]) -> None:
        self._pacer = pacer
        self._on_restore = on_restore
        self.widget = widgets.HBox([], layout=widgets.Layout(flex_flow="row wrap"),
                                   _dom_classes=("comfy-nb-history",))
        # shared by every history entry, so an entry costs three widgets, not nine
        self._thumb_layout = widgets.Layout(width="128px")
        self._entry_layout = widgets.Layout(width="168px", margin="0 8px 8px 0",
                                            align_items="center")
        self._caption_layout = widgets.Layout(width="168px")
        self._caption_style = HTMLStyle(font_size="12px")
        self._button_layout = widgets.Layout(width="128px")
        self._button_style = widgets.ButtonStyle()
        self._boxes: dict[int, Any] = {}

    def add(self, entry: HistoryEntry, kept: Sequence[HistoryEntry],
            dropped: Sequence[HistoryEntry]) -> None:
        """A thumbnail, the values and a restore button for ``entry``; then the strip shows
        ``kept`` (newest first, ``entry`` among them) and the boxes of ``dropped`` close."""
        thumbs = result_display.render_result(entry.result, include=("image/jpeg", "image/png"))
        children: list[Any] = []
        self._pacer.take_blocking(3 + bool(thumbs))
        for mime, data in thumbs.items():
            children.append(widgets.Image(value=data, format=mime.split("/")[1],
                                          layout=self._thumb_layout))
            break
        children.append(widgets.HTML(value=caption_html(entry.values),
                                     layout=self._caption_layout, style=self._caption_style))
        button = widgets.Button(description=f"↺ run #{entry.number}",
                                tooltip="put these values back and show this result",
                                layout=self._button_layout, style=self._button_style,
                                _dom_classes=("comfy-nb-restore",))
        button.on_click(lambda _button: self._on_restore(entry))
        children.append(button)
        box = widgets.VBox(children, layout=self._entry_layout)
        self._boxes[entry.number] = box
        shown = [self._boxes[e.number] for e in kept]
        self._pacer.take_blocking()
        self.widget.children = tuple(shown)
        for old in dropped:
            old_box = self._boxes.pop(old.number, None)
            if old_box is not None:
                self._pacer.take_blocking(1 + len(old_box.children))
                close_tree(old_box, shared=False)

    def close_shared(self) -> None:
        """Close the layouts and styles the entries share (the Interact closes the widgets)."""
        for layout in (self._thumb_layout, self._entry_layout, self._caption_layout,
                       self._caption_style, self._button_layout, self._button_style):
            layout.close()

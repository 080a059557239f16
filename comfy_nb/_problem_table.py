"""The plain-text table :class:`~comfy_nb.errors.WorkflowInvalid` lays its problems out in: one
row per problem, columns about :data:`TABLE_WIDTH` characters wide in all, long cells wrapped
onto more lines (between words, inside a word only at soft breaks or when it is wider than its
column), nothing cut.

Must not: know what a problem is (it is handed rows of text).
"""

from __future__ import annotations

import re

COLUMNS = ("node", "title", "class", "input", "error", "message", "allowed")
TABLE_WIDTH = 100  # characters; a notebook cell shows about 100-120
# How narrow each column may get; the table is wider than TABLE_WIDTH (up to about 120) only
# when every column is this narrow. Names (class, input, error type) keep their whole width
# up to these; the title, message and allowed values wrap sooner.
_NARROWEST = (8, 10, 24, 14, 22, 28, 12)
_GAP = "  "
# Where a word too long for its column may break: after _ - / . , or between camelCase humps.
_SOFT_BREAK = re.compile(r"(?<=[_\-/.,])|(?<=[a-z])(?=[A-Z])")


def _pieces(word: str, width: int) -> list[str]:
    """``word`` cut at soft breaks, and any part still wider than ``width`` cut every
    ``width`` characters."""
    pieces: list[str] = []
    for part in _SOFT_BREAK.split(word):
        pieces += [part[start:start + width] for start in range(0, len(part), width)]
    return pieces


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, nothing left out: lines break
    between words, and inside a word only when it is wider than a line by itself."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        for index, piece in enumerate([word] if len(word) <= width else _pieces(word, width)):
            glue = " " if index == 0 and line else ""
            if line and len(line) + len(glue) + len(piece) > width:
                lines.append(line)
                line = piece
            else:
                line += glue + piece
    lines.append(line)
    return lines


def or_dash(text: str | None) -> str:
    """``text``, or ``-`` for an empty cell (so every row starts with a visible node)."""
    return text if text and not text.isspace() else "-"


def _column_widths(rows: list[tuple[str, ...]]) -> list[int]:
    """Each column as wide as its widest cell, then narrowed, the one with the most to spare
    first (the message column's spare counted at half), until the table fits TABLE_WIDTH."""
    widths = [max(len(" ".join(row[i].split())) for row in rows) for i in range(len(rows[0]))]
    narrowest = [min(width, floor) for width, floor in zip(widths, _NARROWEST, strict=True)]
    halved = COLUMNS.index("message")
    room = TABLE_WIDTH - len(_GAP) * (len(widths) - 1)
    while sum(widths) > room:
        spare = [(width - floor) * (1 if i == halved else 2)
                 for i, (width, floor) in enumerate(zip(widths, narrowest, strict=True))]
        if max(spare) <= 0:
            break
        widths[spare.index(max(spare))] -= 1
    return widths


def table(rows: list[tuple[str, ...]]) -> str:
    """``rows`` (one cell per column of :data:`COLUMNS`) under a header and a rule."""
    every: list[tuple[str, ...]] = [COLUMNS, *rows]
    widths = _column_widths(every)
    lines: list[str] = []
    for row in every:
        cells = [wrap(cell, width) for cell, width in zip(row, widths, strict=True)]
        for depth in range(max(len(cell) for cell in cells)):
            parts = [cell[depth].ljust(width) if depth < len(cell) else " " * width
                     for cell, width in zip(cells, widths, strict=True)]
            lines.append(_GAP.join(parts).rstrip())
        if row is every[0]:
            lines.append(_GAP.join("-" * width for width in widths))
    return "\n".join(lines)

"""Errors raised while loading, converting or editing a workflow (all are :class:`ComfyError`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..client._errors import ComfyError


class WorkflowError(ComfyError):
    """The workflow cannot be read, converted or changed as asked."""


class ParameterError(WorkflowError):
    """A parameter name is unknown or ambiguous, or the value cannot be set."""


# -- client-side validation (comfy_nb.workflow._check) ------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One problem found in a workflow before it is sent: one row of the table the notebook shows.

    ``type``, ``message`` and ``details`` are what the server itself would answer
    (``value_not_in_list``, ``required_input_missing``, ``invalid_prompt``, ...), plus
    ``dependency_cycle``, which the server only reports when the workflow runs.
    ``explanation`` says in plain words what a terse server answer means (shown instead of
    ``details``); ``suggestions`` are close names for a value that is not in the list."""

    node_id: str | None
    class_type: str | None
    input_name: str | None
    type: str
    message: str
    details: str = ""
    suggestions: tuple[str, ...] = ()
    title: str | None = None  # the node's title in the editor (``_meta.title``)
    allowed: str = ""  # what the input accepts: a range or the first choices of a list
    explanation: str = ""

    def __str__(self) -> str:
        where = "workflow"
        if self.node_id is not None:
            where = f"node {self.node_id}"
            if self.class_type:
                where += f" ({self.class_type})"
        if self.input_name:
            where += f", input {self.input_name!r}"
        return f"{where}: {self.full_message()}"

    def full_message(self) -> str:
        """The message with its explanation (or the server's details) and close names."""
        text = self.message
        detail = self.explanation or self.details
        # details that only repeat the input or node shown next to it add nothing
        if detail and detail not in (self.input_name, f"Node ID '#{self.node_id}'"):
            text = f"{text.rstrip('.')}: {detail}"
        if self.suggestions:
            names = [repr(name) for name in self.suggestions]
            choices = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
            text += f" (did you mean {choices}?)"
        return text


_TABLE_COLUMNS = ("node", "title", "class", "input", "error", "message", "allowed")
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


def _wrap(text: str, width: int) -> list[str]:
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


def _or_dash(text: str | None) -> str:
    """``text``, or ``-`` for an empty cell (so every row starts with a visible node)."""
    return text if text and not text.isspace() else "-"


def _column_widths(rows: list[tuple[str, ...]]) -> list[int]:
    """Each column as wide as its widest cell, then narrowed, the one with the most to spare
    first (the message column's spare counted at half), until the table fits TABLE_WIDTH."""
    widths = [max(len(" ".join(row[i].split())) for row in rows) for i in range(len(rows[0]))]
    narrowest = [min(width, floor) for width, floor in zip(widths, _NARROWEST, strict=True)]
    halved = _TABLE_COLUMNS.index("message")
    room = TABLE_WIDTH - len(_GAP) * (len(widths) - 1)
    while sum(widths) > room:
        spare = [(width - floor) * (1 if i == halved else 2)
                 for i, (width, floor) in enumerate(zip(widths, narrowest, strict=True))]
        if max(spare) <= 0:
            break
        widths[spare.index(max(spare))] -= 1
    return widths


class WorkflowInvalid(WorkflowError):
    """The workflow would be refused by the server; ``problems`` lists every problem at once.

    ``str(error)`` names each problem on one line; :meth:`table` lays them out as a table."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"the workflow has {count} problem{'s' if count != 1 else ''}"
        lines = [head + ":"] + [f"  - {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))

    def rows(self) -> list[tuple[str, str, str, str, str, str, str]]:
        """One (node, title, class, input, error type, message, allowed) row per problem."""
        return [
            (
                _or_dash(problem.node_id),
                _or_dash(problem.title),
                _or_dash(problem.class_type),
                _or_dash(problem.input_name),
                _or_dash(problem.type),
                _or_dash(problem.full_message()),
                _or_dash(problem.allowed),
            )
            for problem in self.problems
        ]

    def notebook_lines(self) -> list[str]:
        """The problems as a table under a one-line summary (what notebooks show)."""
        count = len(self.problems)
        head = (f"{type(self).__name__}: the workflow has {count} "
                f"problem{'s' if count != 1 else ''}; nothing was submitted")
        return [head, "", *self.table().splitlines()]

    def table(self) -> str:
        """The problems as a plain-text table about TABLE_WIDTH characters wide: long cells
        wrap onto more lines, nothing is cut."""
        rows: list[tuple[str, ...]] = [_TABLE_COLUMNS, *self.rows()]
        widths = _column_widths(rows)
        lines: list[str] = []
        for row in rows:
            cells = [_wrap(cell, width) for cell, width in zip(row, widths, strict=True)]
            for depth in range(max(len(cell) for cell in cells)):
                parts = [cell[depth].ljust(width) if depth < len(cell) else " " * width
                         for cell, width in zip(cells, widths, strict=True)]
                lines.append(_GAP.join(parts).rstrip())
            if row is rows[0]:
                lines.append(_GAP.join("-" * width for width in widths))
        return "\n".join(lines)


# -- editor-format conversion (comfy_nb.workflow._convert) --------------------------------------


class UnknownNodeTypes(WorkflowError):
    """The editor workflow uses node types the server does not know; ``missing`` maps each
    type to the ids of the nodes that use it. Install the custom nodes, or remove those nodes."""

    def __init__(self, missing: dict[str, list[str]]) -> None:
        self.missing = {kind: list(ids) for kind, ids in missing.items()}
        parts = [f"{kind} (node{'s' if len(ids) > 1 else ''} {', '.join(ids)})"
                 for kind, ids in self.missing.items()]
        count = len(self.missing)
        super().__init__(
            f"the server does not know {count} node type{'s' if count != 1 else ''}: "
            + "; ".join(parts)
            + ". Install the custom nodes that provide them, or remove those nodes."
        )


class BrokenLinkError(WorkflowError):
    """A link in the editor workflow points to a link row or node that does not exist (the
    editor refuses such a file too). Reconnect the input in the editor and save again."""

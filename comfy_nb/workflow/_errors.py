"""Errors raised while loading, converting or editing a workflow (all are :class:`ComfyError`)."""

from __future__ import annotations

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

    ``type`` is the server's own name for the error (``value_not_in_list``,
    ``required_input_missing``, ``invalid_prompt``, ...), plus ``dependency_cycle``, which the
    server only reports when the workflow runs. ``suggestions`` are close names for a value that
    is not in the list (a misspelled model or file)."""

    node_id: str | None
    class_type: str | None
    input_name: str | None
    type: str
    message: str
    details: str = ""
    suggestions: tuple[str, ...] = ()
    title: str | None = None  # the node's title in the editor (``_meta.title``)
    allowed: str = ""  # what the input accepts: a range or the first choices of a list

    def __str__(self) -> str:
        where = "workflow"
        if self.node_id is not None:
            where = f"node {self.node_id}"
            if self.class_type:
                where += f" ({self.class_type})"
        if self.input_name:
            where += f", input {self.input_name!r}"
        text = f"{where}: {self.message}"
        if self.details and self.details != self.input_name:
            text += f": {self.details}"
        if self.suggestions:
            text += " (did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?)"
        return text


_TABLE_COLUMNS = ("node", "title", "class", "input", "error", "message", "allowed")
_CELL_WIDTH = 100


def _cell(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _CELL_WIDTH else text[: _CELL_WIDTH - 1] + "…"


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
        rows: list[tuple[str, str, str, str, str, str, str]] = []
        for problem in self.problems:
            message = problem.message
            if problem.suggestions:
                message += " (did you mean " + ", ".join(problem.suggestions) + "?)"
            if problem.details and problem.details != problem.input_name:
                message += f": {problem.details}"
            rows.append(
                (
                    problem.node_id or "-",
                    problem.title or "-",
                    problem.class_type or "-",
                    problem.input_name or "-",
                    problem.type,
                    message,
                    problem.allowed or "-",
                )
            )
        return rows

    def notebook_lines(self) -> list[str]:
        """The problems as a table under a one-line summary (what notebooks show)."""
        count = len(self.problems)
        head = (f"{type(self).__name__}: the workflow has {count} "
                f"problem{'s' if count != 1 else ''}; nothing was submitted")
        return [head, "", *self.table().splitlines()]

    def table(self) -> str:
        """The problems as a plain-text table, one row each."""
        rows = [_TABLE_COLUMNS, *(tuple(_cell(c) for c in row) for row in self.rows())]
        widths = [max(len(row[i]) for row in rows) for i in range(len(_TABLE_COLUMNS))]

        def line(row: tuple[str, ...]) -> str:
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            return "  ".join(cells).rstrip()

        rule = "  ".join("-" * width for width in widths)
        return "\n".join([line(rows[0]), rule, *(line(row) for row in rows[1:])])


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

"""What a magic reads: its arguments, quoted like a shell's (:func:`parse_line`), an API-format
workflow in the cell with ``{{name}}`` standing for notebook variables (:func:`parse_cell`,
:func:`fill_template`), and a workflow named by a path or a bundled name
(:func:`workflow_from_path`).

Must not: connect, submit or display anything (:mod:`.magics` does).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from ..workflow import Workflow, WorkflowError
from ..workflow._values import loads as json_loads
from ..workflow._values import problem as json_problem

__all__ = ["fill_template", "parse_cell", "parse_line", "workflow_from_path"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def fill_template(body: str, namespace: dict[str, Any]) -> str:
    """Put notebook variables into a JSON cell body: ``{{name}}`` becomes the JSON form of
    ``name`` (``"seed": {{seed}}``, ``"text": {{prompt}}``); inside a JSON string it becomes
    the escaped text (``"text": "a photo of {{subject}}"``)."""
    out: list[str] = []
    in_string = False
    index = 0
    while index < len(body):
        match = _PLACEHOLDER.match(body, index)
        if match:
            name = match.group(1)
            if name not in namespace:
                raise UsageError(f"{{{{{name}}}}} in the cell: no variable {name!r} is defined "
                                 "in the notebook")
            value = namespace[name]
            try:
                encoded = json.dumps(str(value) if in_string else value)
            except TypeError:
                raise UsageError(f"{{{{{name}}}}}: a {type(value).__name__} cannot go into JSON; "
                                 "use a number, text, list or dict") from None
            except (ValueError, RecursionError):  # it contains itself, or is nested too deeply
                raise UsageError(f"{{{{{name}}}}}: it holds {json_problem(value)}") from None
            out.append(encoded[1:-1] if in_string else encoded)
            index = match.end()
            continue
        char = body[index]
        if char == "\\" and in_string:
            out.append(body[index:index + 2])
            index += 2
            continue
        if char == '"':
            in_string = not in_string
        out.append(char)
        index += 1
    return "".join(out)


def parse_cell(body: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """The API-format workflow in a cell body (after :func:`fill_template`)."""
    text = fill_template(body, namespace)
    try:
        workflow = json_loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowError(f"the cell is not valid JSON: {exc.msg} at line {exc.lineno}, "
                            f"column {exc.colno}. Paste the workflow exported with 'Export "
                            "(API)', or use --file PATH") from None
    except ValueError as exc:  # NaN, a lone surrogate, or nested too deeply
        raise WorkflowError(f"the workflow in the cell cannot be sent to a server: {exc}"
                            ) from None
    if not isinstance(workflow, dict):
        raise WorkflowError("the cell must hold a workflow object ({...}), not "
                            f"{type(workflow).__name__}")
    return workflow


def workflow_from_path(path: str) -> Any:
    """A workflow file, or the name of a bundled workflow (``txt2img``)."""
    try:
        exists = Path(path).exists()
    except (OSError, ValueError):  # a name too long for a file, a NUL in it: no such file
        exists = False
    if not exists and re.fullmatch(r"[a-z0-9_]+", path) is None:
        shown = path if len(path) <= 80 else path[:77] + "..."
        raise UsageError(f"no workflow file {shown!r} (relative to {os.getcwd()}); a workflow "
                         "written out goes in the cell of %%comfy_run, below the line")
    return Workflow.load(path)


def parse_line(magic: Any, line: str) -> Any:
    """A magic's arguments, quoted like a shell's: ``--set 'Positive Prompt.text=a red fox'``
    (IPython's own splitter keeps the quotes in the values); a ``# comment`` after them is left
    out, as a shell does."""
    try:
        argv = shlex.split(without_comment(line), posix=os.name != "nt")
    except ValueError as exc:
        raise UsageError(f"cannot read the arguments: {exc} (a quote is not closed?)") from None
    if os.name == "nt":
        argv = [a[1:-1] if len(a) > 1 and a[0] == a[-1] and a[0] in "'\"" else a for a in argv]
    return magic.parser.parse_args(argv)


def without_comment(line: str) -> str:
    """``line`` up to a ``#`` that starts a word outside quotes (``%comfy status  # note``);
    a ``#`` inside a word or quotes stays (``--set color=#fff``)."""
    quote = ""
    escaped = False
    for index, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'" and os.name != "nt":
            escaped = True
        elif quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line

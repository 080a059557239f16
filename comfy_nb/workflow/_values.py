"""What a workflow and its values may hold: plain JSON that a server reads back as it was sent.

That is objects, lists, text, finite numbers, booleans and null, nested at most
:data:`MAX_DEPTH` levels. NaN and infinity are not JSON (the request could not be encoded), text
with a lone surrogate is not Unicode (it cannot be sent as UTF-8), and a structure nested deeper
than any workflow needs would exhaust the stack of whatever copies, checks or encodes it next.
These checks run where a workflow or a value comes in (loading, setting a parameter, reading a
command-line value), so everything after them can rely on plain JSON.

Nothing here knows about nodes or parameters; callers say what the value is and raise their own
error type.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_DEPTH", "json_type", "loads", "parse_value", "plain_copy", "problem"]

#: how deeply lists and objects may nest (an editor workflow with subgraphs needs about 10)
MAX_DEPTH = 100

_SHOWN_PATH = 80  # characters of a path shown in a message


def _shown_key(key: str) -> str:
    """A key as it may appear in a one-line message: escaped, and shortened."""
    shown = key if key.isprintable() else key.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= 30 else shown[:29] + "…"


def _describe_path(path: list[str]) -> str:
    text = "/".join(_shown_key(part) for part in path)
    return text if len(text) <= _SHOWN_PATH else text[:_SHOWN_PATH - 1] + "…"


def _text_problem(text: str, where: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"text with a lone surrogate ({text[exc.start]!r}){where}, which is not Unicode "
                "and cannot be sent as UTF-8")
    return None


def _scalar_problem(value: Any, where: str) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        name = "NaN" if math.isnan(value) else ("infinity" if value > 0 else "-infinity")
        return f"{name}{where}, which JSON cannot carry (use a finite number)"
    if isinstance(value, str):
        return _text_problem(value, where)
    if value is None or isinstance(value, (bool, int, float)):
        return None
    return f"a value of type {type(value).__name__}{where}, which is not JSON-compatible"


def problem(value: Any, depth: int = 0, opaque: tuple[type, ...] = ()) -> str | None:
    """Why ``value`` is not plain JSON, and where (``"NaN at 3/inputs/cfg, which ..."``), or
    None when it is. ``depth``: how deep in a workflow the value will sit (an input value: 3).
    Mappings and tuples count as objects and lists; instances of ``opaque`` types pass (values
    the sender encodes itself). Never recursive: a structure of any depth (or one that contains
    itself) is looked at without exhausting the stack."""
    pending: list[tuple[Any, list[str]]] = [(value, [])]
    while pending:
        item, path = pending.pop()
        where = f" at {_describe_path(path)}" if path else ""
        if depth + len(path) > MAX_DEPTH:
            return f"lists or objects nested more than {MAX_DEPTH} levels deep{where}"
        if isinstance(item, Mapping):
            for key, child in item.items():
                if key is None or isinstance(key, (bool, int, float)):
                    key = json.dumps(key)  # JSON writes such keys as text
                if not isinstance(key, str):
                    return (f"a key of type {type(key).__name__}{where}, which is not "
                            "JSON-compatible")
                found = _text_problem(key, where)
                if found is not None:
                    return f"a key that is {found}"
                pending.append((child, [*path, key]))
        elif isinstance(item, (list, tuple)):
            pending.extend((child, [*path, str(index)]) for index, child in enumerate(item))
        elif not isinstance(item, opaque):
            found = _scalar_problem(item, where)
            if found is not None:
                return found
    return None


def json_type(value: Any) -> str:
    """What JSON calls the kind of ``value``: ``null``, ``a boolean``, ``an array``, ..."""
    if value is None:
        return "null"
    for kinds, name in ((bool, "a boolean"), ((int, float), "a number"), (str, "a string"),
                        ((list, tuple), "an array"), (Mapping, "an object")):
        if isinstance(value, kinds):
            return name
    return f"a value of type {type(value).__name__}"


def _dict_of(value: Any) -> Any:
    """``json.dumps`` fallback: read-only mappings (``wf.nodes``) become dicts."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-compatible")


def plain_copy(value: Any, depth: int = 0) -> Any:
    """A deep copy of ``value`` as plain JSON (dicts with string keys, lists, scalars);
    ``ValueError`` naming the first :func:`problem` (``depth`` as there), or a number too long
    to write out."""
    found = problem(value, depth)
    if found is not None:
        raise ValueError(found)
    try:
        return json.loads(json.dumps(value, allow_nan=False, default=_dict_of))
    except (TypeError, ValueError) as exc:  # an integer with too many digits to write out
        raise ValueError(f"a value JSON cannot write ({exc})") from None


def loads(text: str) -> Any:
    """The JSON value in ``text``: ``json.JSONDecodeError`` for text that is not JSON,
    ``ValueError`` for a value that is not plain JSON (NaN, a lone surrogate, nesting deeper
    than :data:`MAX_DEPTH`)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"lists or objects nested more than {MAX_DEPTH} levels deep") from None
    found = problem(value)
    if found is not None:
        raise ValueError(found)
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_value(text: str) -> Any:
    """A value typed on a command line (``--set NAME=VALUE``): JSON when it is JSON (strictly:
    ``NaN`` and ``Infinity`` stay text), else the text itself. ``ValueError`` for JSON nested too
    deeply to read (it is meant as JSON, but cannot be used)."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"the value is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError:
        return text

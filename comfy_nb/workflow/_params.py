"""Workflow parameters by name: resolving ``"KSampler.seed"``-style paths, setting values and
listing every settable input with its constraints from the server's ``object_info``.

All functions here work on an API-format workflow (``{node_id: {"class_type", "inputs",
"_meta"?}}``) and never raise anything but :class:`ParameterError` for a bad name.

Names a parameter may be given by (the node part is split off at the *last* dot, so titles may
contain dots):

- ``"<node id>.<input>"``: ``"6.text"``;
- ``"<title>.<input>"``: ``"Positive Prompt.text"`` (the node's ``_meta.title``);
- ``"<class_type>.<input>"``: ``"KSampler.seed"``;
- ``"<input>"``: a bare input name, when exactly one node has it as a value (not a link).

A node id always wins; titles and class names must match exactly one node.
"""

from __future__ import annotations

import difflib
import math
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._naming import node_title
from ._errors import ParameterError
from ._values import parse_value, plain_copy

#: inputs that ``"random"`` turns into a random seed
SEED_INPUTS = frozenset({"seed", "noise_seed"})
#: the range used when object_info does not say (what the editor can represent exactly)
DEFAULT_SEED_MAX = 2**53 - 1



@dataclass(frozen=True)
class Param:
    """One settable (non-link) input of one node, with the server's constraints when known.

    ``type`` is ``"INT"``, ``"FLOAT"``, ``"STRING"``, ``"BOOLEAN"``, ``"COMBO"`` or another type
    name from object_info; without object_info it is guessed from the value. Constraints the
    server's node definitions do not give (or that are unknown without object_info) are ``None``.
    """

    node_id: str
    title: str
    class_type: str
    name: str
    type: str
    value: Any
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    multiline: bool | None = None
    default: Any = None

    @property
    def path(self) -> str:
        """The unambiguous name of this parameter: ``"<node id>.<input>"``, e.g. ``"6.text"``."""
        return f"{self.node_id}.{self.name}"


def is_link(value: Any) -> bool:
    """Whether an API-format input value is a link ``[source node id, output index]``."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def node_id_key(node_id: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key for node ids, numeric-aware and subgraph-aware (``"3" < "10" < "10:2"``)."""
    return tuple((0, int(part), "") if part.isascii() and part.isdigit() else (1, 0, part)
                 for part in str(node_id).split(":"))


def sorted_node_ids(nodes: Mapping[str, Any]) -> list[str]:
    """The node ids of an API-format workflow in numeric-aware order."""
    return sorted(nodes, key=node_id_key)


def _inputs(node: Any) -> dict[str, Any]:
    if isinstance(node, dict):
        inputs = node.get("inputs")
        if isinstance(inputs, dict):
            return inputs
    return {}


def _class_type(node: Any) -> str:
    value = node.get("class_type") if isinstance(node, dict) else None
    return value if isinstance(value, str) else ""


def input_specs(object_info: Mapping[str, Any] | None,
                class_type: str) -> dict[str, list[Any]]:
    """The declared inputs of a node class (required, then optional; hidden ones left out), in
    the server's ``input_order`` when it gives one. Empty when unknown."""
    if not object_info:
        return {}
    info = object_info.get(class_type)
    if not isinstance(info, Mapping):
        return {}
    declared = info.get("input")
    if not isinstance(declared, Mapping):
        return {}
    specs: dict[str, list[Any]] = {}
    for section in ("required", "optional"):
        group = declared.get(section)
        if isinstance(group, Mapping):
            for name, spec in group.items():
                specs[str(name)] = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    order = info.get("input_order")
    if isinstance(order, Mapping):
        ordered: dict[str, list[Any]] = {}
        for section in ("required", "optional"):
            names = order.get(section)
            if isinstance(names, list):
                for name in names:
                    if isinstance(name, str) and name in specs:
                        ordered[name] = specs[name]
        ordered.update((k, v) for k, v in specs.items() if k not in ordered)
        specs = ordered
    return specs



def combo_choices(spec: Any) -> list[Any] | None:
    """The allowed values of a combo input's spec (legacy ``[[...], {}]`` or v3 ``["COMBO",
    {"options": [...]}]``), or None when the input is not a combo with a list."""
    if not isinstance(spec, (list, tuple)) or not spec:
        return None
    if isinstance(spec[0], list):
        return list(spec[0])
    if len(spec) > 1 and isinstance(spec[1], Mapping) and isinstance(spec[1].get("options"), list):
        return list(spec[1]["options"])
    return None

def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def describe(node_id: str, node: Mapping[str, Any], spec: list[Any] | None, name: str,
             value: Any) -> Param:
    """A :class:`Param` for one input, with constraints from its object_info ``spec``."""
    options: Mapping[str, Any] = {}
    kind: str
    choices: tuple[Any, ...] | None = None
    if spec:
        head = spec[0]
        if len(spec) > 1 and isinstance(spec[1], Mapping):
            options = spec[1]
        if isinstance(head, (list, tuple)):  # legacy combo: [[choice, ...], {...}]
            kind, choices = "COMBO", tuple(head)
        elif head == "COMBO":  # v3 combo: ["COMBO", {"options": [...]}]
            kind = "COMBO"
            listed = options.get("options")
            choices = tuple(listed) if isinstance(listed, (list, tuple)) else None
        else:
            kind = str(head)
    else:
        kind = _guess_type(value)
    multiline: bool | None = None
    if spec and kind == "STRING":
        multiline = bool(options.get("multiline", False))
    return Param(
        node_id=node_id, title=node_title(node), class_type=_class_type(node), name=name,
        type=kind, value=value,
        min=_number(options.get("min")), max=_number(options.get("max")),
        step=_number(options.get("step")), choices=choices, multiline=multiline,
        default=options.get("default"),
    )


def _guess_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "INT"
    if isinstance(value, float):
        return "FLOAT"
    if isinstance(value, str):
        return "STRING"
    return "*"


def list_params(nodes: Mapping[str, Any],
                object_info: Mapping[str, Any] | None = None) -> list[Param]:
    """Every settable (non-link) input of every node: node id order (numeric-aware), then the
    server's input order when known, then the workflow's own order."""
    params: list[Param] = []
    for node_id in sorted_node_ids(nodes):
        node = nodes[node_id]
        if not isinstance(node, dict):
            continue
        inputs = _inputs(node)
        specs = input_specs(object_info, _class_type(node))
        names = [n for n in specs if n in inputs] + [n for n in inputs if n not in specs]
        for name in names:
            value = inputs[name]
            if not is_link(value):
                params.append(describe(node_id, node, specs.get(name), name, value))
    return params


def _label(nodes: Mapping[str, Any], node_id: str, name: str | None = None) -> str:
    node = nodes.get(node_id)
    title = node_title(node) if isinstance(node, Mapping) else ""
    where = f"{node_id}.{name}" if name is not None else node_id
    return f"{where} ({title})" if title else where


def _shortlist(labels: list[str], limit: int = 12) -> str:
    if len(labels) <= limit:
        return ", ".join(labels)
    return ", ".join(labels[:limit]) + f", … ({len(labels) - limit} more)"


def _suggest(word: str, possibilities: Iterable[str]) -> str:
    unique = list(dict.fromkeys(p for p in possibilities if p))
    close = difflib.get_close_matches(word, unique, n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def find_node(nodes: Mapping[str, Any], part: str, path: str) -> str:
    """The id of the node ``part`` names (id, else a unique title or class type)."""
    if part in nodes:
        return part
    matches = [node_id for node_id in sorted_node_ids(nodes)
               if isinstance(nodes[node_id], dict)
               and (node_title(nodes[node_id]) == part or _class_type(nodes[node_id]) == part)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        labels = [_label(nodes, m, path.rpartition(".")[2]) for m in matches]
        raise ParameterError(f"{path!r} is ambiguous: {_shortlist(labels)}; "
                             "use the node id (e.g. "
                             f"{matches[0]}.{path.rpartition('.')[2]!s})")
    known: list[str] = []
    for node_id in sorted_node_ids(nodes):
        node = nodes[node_id]
        if isinstance(node, dict):
            known.extend([node_title(node), _class_type(node)])
    labels = [_label(nodes, n) for n in sorted_node_ids(nodes)]
    raise ParameterError(f"no node matches {part!r} in {path!r}{_suggest(part, known)}; "
                         f"nodes: {_shortlist(labels)}")


def resolve(nodes: Mapping[str, Any], path: str,
            object_info: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """``(node id, input name)`` for a parameter name; :class:`ParameterError` when it is
    unknown or ambiguous (the message lists the candidates)."""
    if not isinstance(path, str) or not path:
        raise ParameterError(f"a parameter name is a non-empty string, not {path!r}")
    part, dot, name = path.rpartition(".")
    if not dot:
        return _resolve_bare(nodes, path, object_info)
    if not name:
        raise ParameterError(f"{path!r} names no input (nothing after the last dot)")
    node_id = find_node(nodes, part, path)
    node = nodes[node_id]
    inputs = _inputs(node)
    declared = input_specs(object_info, _class_type(node))
    if name not in inputs and name not in declared:
        names = list(inputs) + [n for n in declared if n not in inputs]
        raise ParameterError(
            f"{_label(nodes, node_id)} has no input {name!r}{_suggest(name, names)}; "
            f"inputs: {', '.join(names) or 'none'}")
    return node_id, name


def _resolve_bare(nodes: Mapping[str, Any], name: str,
                  object_info: Mapping[str, Any] | None) -> tuple[str, str]:
    values: list[str] = []
    links: list[str] = []
    for node_id in sorted_node_ids(nodes):
        inputs = _inputs(nodes[node_id])
        if name in inputs:
            (links if is_link(inputs[name]) else values).append(node_id)
    found = values or links
    if len(found) == 1:
        return found[0], name
    if found:
        labels = [_label(nodes, n, name) for n in found]
        raise ParameterError(f"{name!r} is ambiguous: {_shortlist(labels)}; "
                             f"name the node too (e.g. {found[0]}.{name})")
    everything = {n for node in nodes.values() for n in _inputs(node)}
    raise ParameterError(f"no node has an input {name!r}{_suggest(name, sorted(everything))}; "
                         "use '<node id, title or class>.<input>'")


#: how deep an input value sits in a workflow: workflow / node / inputs / value
_INPUT_DEPTH = 3


def _json_value(path: str, value: Any) -> Any:
    try:
        return plain_copy(value, depth=_INPUT_DEPTH)
    except ValueError as exc:
        raise ParameterError(f"the value for {path!r} cannot be sent to a server: {exc}"
                             ) from None


def random_seed(spec: list[Any] | None) -> int:
    """A random seed within the input's INT range from object_info, else ``0..2**53-1``."""
    low, high = 0, DEFAULT_SEED_MAX
    if spec and spec[0] == "INT" and len(spec) > 1 and isinstance(spec[1], Mapping):
        lo, hi = _number(spec[1].get("min")), _number(spec[1].get("max"))
        if lo is not None and math.isfinite(lo):
            low = math.ceil(lo)
        if hi is not None and math.isfinite(hi):
            high = math.floor(hi)
        if high < low:
            low, high = 0, DEFAULT_SEED_MAX
    return low + secrets.randbelow(high - low + 1)


def set_value(nodes: dict[str, Any], path: str, value: Any, *,
              object_info: Mapping[str, Any] | None = None, force: bool = False,
              resolved_seeds: dict[str, int] | None = None) -> str:
    """Set one parameter in place and return its ``"<node id>.<input>"`` path.

    A link is only replaced with ``force=True``. ``"random"`` for a ``seed`` / ``noise_seed``
    input becomes a random integer, recorded in ``resolved_seeds``.
    """
    node_id, name = resolve(nodes, path, object_info)
    node = nodes[node_id]
    if not isinstance(node.get("inputs"), dict):
        node["inputs"] = {}
    inputs: dict[str, Any] = node["inputs"]
    where = f"{node_id}.{name}"
    current: Any = inputs.get(name)
    if is_link(current) and not force:
        source = current[0]
        raise ParameterError(
            f"{_label(nodes, node_id, name)} is linked to the output of node {source}; "
            "setting it would cut that link (pass force=True to replace the link)")
    if name in SEED_INPUTS and isinstance(value, str) and value == "random":
        spec = input_specs(object_info, _class_type(node)).get(name)
        seed = random_seed(spec)
        inputs[name] = seed
        if resolved_seeds is not None:
            resolved_seeds[where] = seed
        return where
    inputs[name] = _json_value(where, value)
    if resolved_seeds is not None:
        resolved_seeds.pop(where, None)
    return where


def parse_assignments(items: list[str], flag: str) -> dict[str, Any]:
    """``NAME=VALUE`` arguments of ``flag`` as a dict; VALUE is JSON when it parses (strictly:
    ``NaN`` is text), else text."""
    values: dict[str, Any] = {}
    for item in items:
        name, separator, text = item.partition("=")
        if not separator or not name.strip():
            raise ValueError(f"{flag} takes NAME=VALUE, not {item!r}")
        try:
            values[name.strip()] = parse_value(text)
        except ValueError as exc:
            raise ValueError(f"{flag} {name.strip()}=: {exc}") from None
    return values

"""The inputs a workflow offers as a function (:func:`comfy_nb.use`): which inputs count, the
Python names they get, and the node inputs each one sets.

Two sources:

- **App mode**: an editor workflow saved in App mode carries ``extra.linearData`` =
  ``{"inputs": [[widget id, name, config?], ...], "outputs": [node id, ...]}``, the inputs and
  outputs its author picked; a widget id is ``"<root graph id>:<node id>:<widget name>"``. Those
  inputs, in that order, under the author's names, are the function's inputs. A widget of a
  primitive node or of a subgraph's node sets every input it feeds.
- **Otherwise** the meaningful inputs of the graph: the value of each primitive node (an API
  ``Primitive*`` node, or an editor ``PrimitiveNode`` feeding several inputs), every input file
  (``LoadImage.image`` and the other inputs that take an upload), every prompt
  (multiline text), every value input of a node its author titled, the sampler's ``seed``,
  ``steps``, ``cfg``, ``sampler_name``, ``scheduler`` and ``denoise``, and the image size
  (``width``, ``height``, ``batch_size``), in that order.

Names are Python identifiers: a titled node's title (``"Positive Prompt"`` → ``positive_prompt``,
its input added when the node offers several), else the bare input name when it names one input
only (as ``--set seed=1`` does), else the input name and the node id (``text_6``).

Nothing here talks to a server: the caller passes the node definitions (``object_info``).
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ParameterError, WorkflowError
from ._editor_meta import default_title
from ._inputs import file_inputs
from ._params import (
    Param,
    describe,
    input_specs,
    is_link,
    list_params,
    node_id_key,
    node_title,
    resolve,
)

__all__ = ["RESERVED_NAMES", "FunctionInput", "address", "app_mode", "app_mode_inputs",
           "editor_primitives", "function_inputs", "identifier"]

#: input types a function argument may have (others are connections between nodes)
VALUE_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
#: keyword arguments of the function itself, never the name of an input
RESERVED_NAMES = frozenset({"client", "timeout"})
#: the sampler's inputs a function offers
SAMPLER_INPUTS = ("seed", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "denoise")
#: the size inputs of a node with both width and height
SIZE_INPUTS = ("width", "height", "batch_size")
_PRIMITIVE_CLASSES = frozenset({"PrimitiveInt", "PrimitiveFloat", "PrimitiveString",
                                "PrimitiveStringMultiline", "PrimitiveBoolean"})


@dataclass(frozen=True)
class FunctionInput:
    """One argument of a workflow function.

    ``name`` is the Python name, ``param`` the first node input it sets (its type, value and the
    server's constraints), ``paths`` every node input it sets (``"<node id>.<input>"``),
    ``address`` the ``--set`` name of the first one (``"Positive Prompt.text"``), ``label`` the
    name the App mode author gave it (None otherwise), ``file`` whether it takes a file (an
    image, audio or video to upload)."""

    name: str
    param: Param
    paths: tuple[str, ...]
    address: str
    label: str | None = None
    file: bool = False


def identifier(text: str) -> str:
    """``text`` as a Python name: lower case, runs of other characters as ``_``, a leading
    digit or a keyword fixed (``"Positive Prompt"`` → ``positive_prompt``). Letters of any
    script stay (``"Größe"`` → ``größe``) where Python allows them in a name."""
    name = re.sub(r"\W+", "_", text.strip().lower()).strip("_")
    if not name.isidentifier():
        name = re.sub(r"\W+", "_", name, flags=re.ASCII).strip("_")
    if not name:
        return ""
    if name[0].isdigit():
        name = "input_" + name
    if keyword.iskeyword(name) or name in RESERVED_NAMES:
        name += "_"
    return name


# -- the meaningful inputs of a graph -------------------------------------------------------------


def _is_titled(node: Mapping[str, Any], object_info: Mapping[str, Any]) -> bool:
    title = node_title(node)
    class_type = str(node.get("class_type", ""))
    if not title or title == class_type:
        return False
    return title != default_title(class_type, dict(object_info))


def _rank(param: Param, node: Mapping[str, Any], object_info: Mapping[str, Any],
          inputs: Mapping[str, Any], files: Mapping[str, tuple[str, ...]]) -> int | None:
    """Where a value input comes in the signature (primitives, input files, prompts, titled
    nodes, sampler, sizes), or None when it is not offered."""
    if param.type not in VALUE_TYPES:
        return None
    if param.class_type in _PRIMITIVE_CLASSES and param.name == "value":
        return 0
    if param.name in files.get(param.class_type, ()):
        return 1
    if param.type == "STRING" and param.multiline:
        return 2
    if _is_titled(node, object_info):
        return 3
    sampler = "Sampler" in param.class_type or any(name in inputs for name in ("seed",
                                                                                "noise_seed"))
    if sampler and param.name in SAMPLER_INPUTS:
        return 4
    if param.name in SIZE_INPUTS and "width" in inputs and "height" in inputs:
        return 5
    return None


def address(api: Mapping[str, Any], node_id: str, name: str) -> str:
    """The shortest ``--set`` name of an input: the bare input name, ``Title.input``,
    ``Class.input`` or ``<node id>.input``, the first one that names this input only."""
    node = api[node_id]
    for candidate in (name, f"{node_title(node)}.{name}", f"{node.get('class_type')}.{name}"):
        try:
            if resolve(api, candidate) == (node_id, name):
                return candidate
        except ParameterError:
            continue
    return f"{node_id}.{name}"


def function_inputs(api: Mapping[str, Any], object_info: Mapping[str, Any],
                    primitives: Sequence[tuple[str, tuple[str, ...]]] = ()) -> list[FunctionInput]:
    """The meaningful inputs of an API-format workflow, named and in signature order.
    ``primitives``: the editor's primitive nodes, ``(title, paths they feed)``, that come
    first (their paths are left out of the rest)."""
    files = file_inputs(object_info)
    taken = {path for _, paths in primitives for path in paths}
    found: list[tuple[int, str, FunctionInput]] = []
    for title, paths in primitives:
        first = _param(api, object_info, paths[0])
        base = identifier(title) or _plain_name(api, first)
        found.append((0, base, _input(api, files, first, paths)))
    offered: list[tuple[int, Param]] = []
    for param in list_params(api, object_info):
        node = api[param.node_id]
        rank = _rank(param, node, object_info, node.get("inputs", {}), files)
        if rank is not None and param.path not in taken:
            offered.append((rank, param))
    per_node: dict[str, int] = {}
    for _, param in offered:
        per_node[param.node_id] = per_node.get(param.node_id, 0) + 1
    for rank, param in offered:
        node = api[param.node_id]
        if _is_titled(node, object_info):
            title = identifier(node_title(node))
            base = title if per_node[param.node_id] == 1 and title else \
                identifier(f"{node_title(node)} {param.name}")
        else:
            base = _plain_name(api, param)
        found.append((rank, base, _input(api, files, param, (param.path,))))
    found.sort(key=lambda item: (item[0], node_id_key(item[2].param.node_id)))
    return _named([(base, made) for _, base, made in found])


def _plain_name(api: Mapping[str, Any], param: Param) -> str:
    """The input's name when it names this input only, else the name and the node id."""
    if address(api, param.node_id, param.name) == param.name:
        return identifier(param.name)
    return identifier(f"{param.name} {param.node_id}")


def _named(items: list[tuple[str, FunctionInput]]) -> list[FunctionInput]:
    """Each input under its name, a name that comes twice made unique with its node id."""
    counts: dict[str, int] = {}
    for base, _ in items:
        counts[base] = counts.get(base, 0) + 1
    used: set[str] = set()
    named: list[FunctionInput] = []
    for base, made in items:
        name = base or identifier(made.param.name) or "value"
        if counts.get(base, 0) > 1 or name in used:
            name = identifier(f"{name} {made.param.node_id}")
        while name in used:
            name += "_"
        used.add(name)
        named.append(FunctionInput(name, made.param, made.paths, made.address, made.label,
                                   made.file))
    return named


def _param(api: Mapping[str, Any], object_info: Mapping[str, Any], path: str) -> Param:
    node_id, _, name = path.rpartition(".")
    node = api[node_id]
    spec = input_specs(object_info, str(node.get("class_type", ""))).get(name)
    return describe(node_id, node, spec, name, node["inputs"][name])


def _input(api: Mapping[str, Any], files: Mapping[str, tuple[str, ...]], param: Param,
           paths: tuple[str, ...], label: str | None = None) -> FunctionInput:
    return FunctionInput("", param, paths, address(api, param.node_id, param.name), label,
                         param.name in files.get(param.class_type, ()))


# -- editor graphs: where a widget's value goes -------------------------------------------------


@dataclass(frozen=True)
class _Graph:
    """One graph of an editor workflow (the root, or a subgraph definition)."""

    nodes: dict[str, dict[str, Any]]
    links: dict[str, tuple[str, int]]  # link id -> (target node id, target slot)


def _graph(nodes: Any, links: Any) -> _Graph:
    by_id = {str(node.get("id")): node for node in nodes or () if isinstance(node, dict)}
    targets: dict[str, tuple[str, int]] = {}
    for row in links or ():
        if isinstance(row, list) and len(row) >= 5:
            targets[str(row[0])] = (str(row[3]), int(row[4]))
        elif isinstance(row, dict) and "target_id" in row:
            targets[str(row.get("id"))] = (str(row["target_id"]), int(row.get("target_slot", 0)))
    return _Graph(by_id, targets)


def _subgraphs(ui: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    definitions = ui.get("definitions")
    found = definitions.get("subgraphs") if isinstance(definitions, dict) else None
    return {str(sub.get("id")): sub for sub in found or () if isinstance(sub, dict)}


def _slot_name(node: Mapping[str, Any], slot: int) -> str | None:
    inputs = node.get("inputs")
    if not isinstance(inputs, list) or not 0 <= slot < len(inputs):
        return None
    entry = inputs[slot]
    if not isinstance(entry, dict):
        return None
    widget = entry.get("widget")
    name = widget.get("name") if isinstance(widget, dict) else None
    return str(name or entry.get("name") or "") or None


def _targets(graph: _Graph, subgraphs: Mapping[str, dict[str, Any]], prefix: str,
             node_id: str, name: str, depth: int = 0) -> list[tuple[str, str, str]]:
    """``(API node id, input, class)`` of every node input a widget of an editor node sets: the
    node's own input, or what a primitive node or a subgraph's input feeds."""
    node = graph.nodes.get(node_id)
    if node is None or depth > 32:
        return []
    kind = str(node.get("type", ""))
    if kind == "PrimitiveNode":
        found: list[tuple[str, str, str]] = []
        for output in node.get("outputs") or ():
            for link in (output.get("links") or ()) if isinstance(output, dict) else ():
                target = graph.links.get(str(link))
                target_node = graph.nodes.get(target[0]) if target else None
                slot_name = _slot_name(target_node, target[1]) if target and target_node else None
                if target and slot_name:
                    found += _targets(graph, subgraphs, prefix, target[0], slot_name, depth + 1)
        return found
    if kind in subgraphs:
        sub = subgraphs[kind]
        inner = _graph(sub.get("nodes"), sub.get("links"))
        found = []
        for entry in sub.get("inputs") or ():
            if isinstance(entry, dict) and entry.get("name") == name:
                for link in entry.get("linkIds") or ():
                    target = inner.links.get(str(link))
                    target_node = inner.nodes.get(target[0]) if target else None
                    slot_name = _slot_name(target_node, target[1]) \
                        if target and target_node else None
                    if target and slot_name:
                        found += _targets(inner, subgraphs, f"{prefix}{node_id}:", target[0],
                                          slot_name, depth + 1)
        return found
    return [(f"{prefix}{node_id}", name, kind)]


def _api_path(api: Mapping[str, Any], target: tuple[str, str, str]) -> str | None:
    """The API path of an editor node input, following the ids the conversion gave a subgraph's
    nodes (renumbered when they clash): the same id, else the one node of that class under the
    same subgraph instance that has the input."""
    node_id, name, kind = target
    node = api.get(node_id)
    if isinstance(node, dict) and name in node.get("inputs", {}) \
            and not is_link(node["inputs"][name]):
        return f"{node_id}.{name}"
    prefix = node_id.rpartition(":")[0]
    if not prefix:
        return None
    candidates = [key for key, value in api.items()
                  if key.rpartition(":")[0] == prefix and isinstance(value, dict)
                  and value.get("class_type") == kind and name in value.get("inputs", {})
                  and not is_link(value["inputs"][name])]
    return f"{candidates[0]}.{name}" if len(candidates) == 1 else None


def _widget_paths(ui: Mapping[str, Any], api: Mapping[str, Any], node_id: str,
                  name: str) -> tuple[str, ...]:
    root = _graph(ui.get("nodes"), ui.get("links"))
    paths = [_api_path(api, target)
             for target in _targets(root, _subgraphs(ui), "", node_id, name)]
    return tuple(dict.fromkeys(path for path in paths if path is not None))


def editor_primitives(ui: Mapping[str, Any],
                      api: Mapping[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """The editor's primitive nodes at the root of a workflow: ``(title, API paths they set)``
    for each one that feeds at least one value input (the title is empty when none is set)."""
    found = []
    for node in ui.get("nodes") or ():
        if isinstance(node, dict) and node.get("type") == "PrimitiveNode":
            paths = _widget_paths(ui, api, str(node.get("id")), "value")
            if paths:
                title = node.get("title")
                found.append((title if isinstance(title, str) else "", paths))
    return found


# -- App mode ---------------------------------------------------------------------------------


def app_mode(ui: Mapping[str, Any]) -> dict[str, Any] | None:
    """The App mode ``extra.linearData`` of an editor workflow (``inputs`` and ``outputs``
    lists), or None when it was not saved in App mode."""
    extra = ui.get("extra")
    data = extra.get("linearData") if isinstance(extra, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list):
        return None
    return data


def app_mode_inputs(ui: Mapping[str, Any], api: Mapping[str, Any],
                    object_info: Mapping[str, Any]) -> tuple[list[FunctionInput], list[str]]:
    """The inputs an App mode author picked, in their order under their names, and the node
    ids of the outputs they picked. :class:`WorkflowError` when one cannot be found in the
    workflow the editor would queue."""
    data = app_mode(ui)
    if data is None:
        raise WorkflowError("the workflow was not saved in App mode (no extra.linearData)")
    files = file_inputs(object_info)
    items: list[tuple[str, FunctionInput]] = []
    for entry in data["inputs"]:
        if not isinstance(entry, list) or len(entry) < 2 or not isinstance(entry[0], str):
            raise WorkflowError(f"an App mode input is [widget id, name], not {entry!r}")
        parts = entry[0].split(":")
        if len(parts) < 3:
            raise WorkflowError(f"the App mode input {entry[0]!r} is not "
                                "'<graph id>:<node id>:<widget>'")
        node_id, widget = ":".join(parts[1:-1]), parts[-1]
        label = str(entry[1]) if entry[1] is not None else widget
        paths = _widget_paths(ui, api, node_id, widget)
        if not paths:
            raise WorkflowError(f"the App mode input {label!r} ({entry[0]}) sets no input of "
                                "the workflow the editor would queue (is its node muted, "
                                "bypassed or gone?)")
        param = _param(api, object_info, paths[0])
        base = identifier(label) or identifier(widget)
        items.append((base, _input(api, files, param, paths, label)))
    outputs = [str(node) for node in data.get("outputs") or ()
               if isinstance(node, (str, int)) and not isinstance(node, bool)]
    return _named(items), outputs

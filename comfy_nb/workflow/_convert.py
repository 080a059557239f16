"""Convert an editor-format (UI) workflow into the API format that ``POST /prompt`` accepts.

This follows what the ComfyUI editor's ``graphToPrompt`` does (frontend 1.27), so a workflow
saved from the editor converts to exactly what the editor itself would have queued:

* widgets are rebuilt from ``object_info`` (``input_order``: required, then optional) and
  ``widgets_values`` is mapped onto them by position, including the frontend-only widgets that
  take a position but are never sent (``control_after_generate``, ``control_filter_list``,
  ``upload``); missing values fall back to the input's default, extra values are dropped;
* a linked input is ``[origin_id, origin_slot]``; links are resolved through ``Reroute`` nodes,
  bypassed nodes (mode 4, wired through to an input of a matching type) and subgraph
  boundaries (ids become ``"<instance id>:<inner id>"``);
* legacy ``PrimitiveNode`` values are copied into the widgets they feed directly;
* muted nodes (mode 2), bypassed nodes and editor-only nodes (notes, reroutes, primitives,
  subgraph instances) are not emitted; inputs pointing at a node that was not emitted are
  removed afterwards, as the editor does;
* keys are ordered as the editor's JSON: integer-like node ids ascending, then the others.

Node types the server does not know raise :class:`UnknownNodeTypes` (all of them at once);
a link to a missing link row or node raises :class:`BrokenLinkError`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

from ._errors import BrokenLinkError, UnknownNodeTypes, WorkflowError

__all__ = ["FRONTEND_ONLY_TYPES", "is_ui_format", "ui_to_api"]

#: Node types that exist only in the editor: never sent to the server.
FRONTEND_ONLY_TYPES: frozenset[str] = frozenset(
    {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
)

_BYPASS = 4
_NEVER = 2

#: Types the editor renames when it loads an old workflow.
_LEGACY_RENAMES = {
    "T2IAdapterLoader": "ControlNetLoader",
    "ConditioningAverage ": "ConditioningAverage",
    "SDV_img2vid_Conditioning": "SVD_img2vid_Conditioning",
}

#: English display names the editor ships for classes whose object_info has none.
_FRONTEND_DISPLAY_NAMES = {
    "ImageBlur": "Image Blur",
    "ImageScaleToTotalPixels": "Scale Image to Total Pixels",
}

#: Nodes that get the frontend's ``audioUI`` widget (sent to the API as ``""``).
_AUDIO_UI_TYPES = frozenset({"LoadAudio", "SaveAudio", "SaveAudioMP3", "SaveAudioOpus",
                             "PreviewAudio"})
_UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload")
_WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
_SCALAR_DEFAULTS: dict[str, Any] = {"INT": 0, "FLOAT": 0, "STRING": "", "BOOLEAN": False}
_KSAMPLERS = frozenset({"KSampler", "KSamplerAdvanced"})

_Resolved = tuple[Literal["link"], str, int] | tuple[Literal["value"], Any]


def is_ui_format(data: Any) -> bool:
    """True when ``data`` looks like an editor-format workflow (``nodes`` list and ``links``)."""
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data


@dataclass
class _Widget:
    """One widget of a node, as the editor builds it from the node definition."""

    name: str
    value: Any
    to_api: bool = True  # options.serialize !== false
    in_values: bool = True  # takes a position in widgets_values
    fixed: bool = False  # value never read from widgets_values


@dataclass(frozen=True)
class _Link:
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int


@dataclass
class _Graph:
    """The root graph or one subgraph definition (shared by all its instances)."""

    nodes: dict[str, dict[str, Any]]
    order: list[str]
    links: dict[int, _Link]
    input_node_id: str = "-10"
    output_node_id: str = "-20"
    definition: dict[str, Any] | None = None
    widgets: dict[str, list[_Widget]] = field(default_factory=dict)


@dataclass
class _Dto:
    """One node of the flattened graph (the editor's ``ExecutableNodeDTO``)."""

    node: dict[str, Any]
    graph: _Graph
    path: tuple[str, ...]
    instance: _Dto | None
    kind: Literal["node", "virtual", "subgraph", "unknown"]
    class_type: str
    inputs: list[dict[str, Any]]
    subgraph: _Graph | None = None

    @property
    def exec_id(self) -> str:
        return ":".join((*self.path, _node_id(self.node)))

    @property
    def mode(self) -> int:
        mode = self.node.get("mode", 0)
        return mode if isinstance(mode, int) else 0


def _node_id(node: dict[str, Any]) -> str:
    return str(node.get("id"))


def _parse_links(rows: Any) -> dict[int, _Link]:
    links: dict[int, _Link] = {}
    for row in rows or []:
        if isinstance(row, dict):
            link_id, origin, oslot = row.get("id"), row.get("origin_id"), row.get("origin_slot")
            target, tslot = row.get("target_id"), row.get("target_slot")
        elif isinstance(row, list) and len(row) >= 5:
            link_id, origin, oslot, target, tslot = row[:5]
        else:
            continue
        if isinstance(link_id, int):
            links[link_id] = _Link(str(origin), int(oslot or 0), str(target), int(tslot or 0))
    return links


def _make_graph(data: dict[str, Any], definition: dict[str, Any] | None = None) -> _Graph:
    nodes: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for node in data.get("nodes") or []:
        if isinstance(node, dict):
            nid = _node_id(node)
            nodes[nid] = node
            order.append(nid)
    graph = _Graph(nodes=nodes, order=order, links=_parse_links(data.get("links")),
                   definition=definition)
    if definition is not None:
        graph.input_node_id = str((definition.get("inputNode") or {}).get("id", -10))
        graph.output_node_id = str((definition.get("outputNode") or {}).get("id", -20))
    return graph


# -- widgets ---------------------------------------------------------------------------------


def _input_specs(definition: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any]]]:
    inputs = definition.get("input") or {}
    order = definition.get("input_order") or {}
    specs: list[tuple[str, Any, dict[str, Any]]] = []
    for section in ("required", "optional"):
        entries = inputs.get(section) or {}
        names = order.get(section) or list(entries)
        for name in names:
            spec = entries.get(name)
            if not isinstance(spec, (list, tuple)) or not spec:
                continue
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            specs.append((name, spec[0], options))
    return specs


def _build_widgets(class_type: str, definition: dict[str, Any]) -> list[_Widget]:
    widgets: list[_Widget] = []
    for name, kind, options in _input_specs(definition):
        if options.get("forceInput"):
            continue
        if isinstance(kind, list) or kind == "COMBO":
            choices = kind if isinstance(kind, list) else options.get("options") or []
            default = options.get("default", choices[0] if choices else None)
            is_combo = True
        elif kind in _WIDGET_TYPES:
            default = options.get("default", _SCALAR_DEFAULTS.get(kind))
            is_combo = False
        else:
            continue
        widgets.append(_Widget(name, copy.deepcopy(default)))
        if options.get("control_after_generate"):
            widgets.append(_Widget("control_after_generate", "fixed", to_api=False))
            if is_combo:
                widgets.append(_Widget("control_filter_list", "", to_api=False))
        if any(options.get(flag) for flag in _UPLOAD_FLAGS):
            widgets.append(_Widget("upload", "image", to_api=False))
    if class_type in _AUDIO_UI_TYPES:
        widgets.append(_Widget("audioUI", "", fixed=True))
    if class_type == "PreviewAny":
        widgets.append(_Widget("preview", "", in_values=False, fixed=True))
    return widgets


def _apply_widget_values(class_type: str, widgets: list[_Widget], values: Any) -> None:
    if isinstance(values, dict):
        for widget in widgets:
            if widget.name in values and not widget.fixed:
                widget.value = copy.deepcopy(values[widget.name])
    elif isinstance(values, list):
        positional = [w for w in widgets if w.in_values]
        for widget, value in zip(positional, values, strict=False):
            if not widget.fixed:
                widget.value = copy.deepcopy(value)
    if class_type in _KSAMPLERS:
        for widget in widgets:
            if (widget.name == "sampler_name" and isinstance(widget.value, str)
                    and widget.value.startswith("sample_")):
                widget.value = widget.value[len("sample_"):]


# -- the converter ---------------------------------------------------------------------------


class _Converter:
    def __init__(self, ui: dict[str, Any], object_info: dict[str, Any],
                 unknown_types: Literal["raise", "keep"]) -> None:
        self.object_info = object_info
        self.definitions: dict[str, dict[str, Any]] = {}
        for sub in (ui.get("definitions") or {}).get("subgraphs") or []:
            if isinstance(sub, dict) and isinstance(sub.get("id"), str):
                self.definitions[sub["id"]] = sub
        self.group_nodes = set((ui.get("extra") or {}).get("groupNodes") or {})
        self.subgraphs: dict[str, _Graph] = {}
        self.root = _make_graph(ui)
        self.dtos: dict[str, _Dto] = {}
        self.unknown: dict[str, list[str]] = {}
        self._flatten(self.root, (), None, self._execution_order(self.root))
        if self.unknown and unknown_types == "raise":
            raise UnknownNodeTypes(self.unknown)

    # flattening ---------------------------------------------------------------------------

    @staticmethod
    def _execution_order(graph: _Graph) -> list[str]:
        position = {nid: index for index, nid in enumerate(graph.order)}

        def key(nid: str) -> tuple[int, int]:
            order = graph.nodes[nid].get("order")
            return (order if isinstance(order, int) else 1 << 30, position[nid])

        return sorted(graph.order, key=key)

    def _subgraph(self, type_id: str) -> _Graph:
        if type_id not in self.subgraphs:
            definition = self.definitions[type_id]
            self.subgraphs[type_id] = _make_graph(definition, definition)
        return self.subgraphs[type_id]

    def _classify(self, node: dict[str, Any], dto_id: str) -> tuple[str, Any]:
        node_type = str(node.get("type"))
        class_type = _LEGACY_RENAMES.get(node_type, node_type)
        if node_type in self.definitions:
            return class_type, "subgraph"
        if node_type in FRONTEND_ONLY_TYPES:
            return class_type, "virtual"
        if class_type in self.object_info:
            return class_type, "node"
        if node_type in self.group_nodes or node_type.startswith(("workflow>", "workflow/")):
            raise WorkflowError(
                f"node {dto_id} is a legacy group node ({node_type!r}), which is not "
                "supported: convert it to a subgraph in the editor and save again"
            )
        self.unknown.setdefault(node_type, []).append(dto_id)
        return class_type, "unknown"

    def _flatten(self, graph: _Graph, path: tuple[str, ...], instance: _Dto | None,
                 order: list[str], depth: int = 0) -> None:
        if depth > 64:
            raise WorkflowError("subgraphs are nested too deeply (a subgraph contains itself?)")
        for nid in order:
            node = graph.nodes[nid]
            dto_id = ":".join((*path, nid))
            class_type, kind = self._classify(node, dto_id)
            inputs = [i for i in node.get("inputs") or [] if isinstance(i, dict)]
            dto = _Dto(node, graph, path, instance, kind, class_type, inputs)
            if kind == "subgraph":
                sub = self._subgraph(str(node.get("type")))
                dto.subgraph = sub
                dto.inputs = self._instance_inputs(node, sub)
                self._flatten(sub, (*path, nid), dto, list(sub.order), depth + 1)
            elif kind == "node" and nid not in graph.widgets:
                widgets = _build_widgets(class_type, self.object_info[class_type])
                _apply_widget_values(class_type, widgets, node.get("widgets_values"))
                graph.widgets[nid] = widgets
            self.dtos[dto_id] = dto

    @staticmethod
    def _instance_inputs(node: dict[str, Any], sub: _Graph) -> list[dict[str, Any]]:
        """The instance's inputs as the live node has them: one per subgraph input."""
        saved = {i.get("name"): i for i in node.get("inputs") or [] if isinstance(i, dict)}
        inputs: list[dict[str, Any]] = []
        for sub_input in (sub.definition or {}).get("inputs") or []:
            name = sub_input.get("name")
            link = saved.get(name, {}).get("link")
            inputs.append({"name": name, "type": sub_input.get("type", "*"), "link": link})
        return inputs

    def _promoted_value(self, instance: _Dto, index: int) -> tuple[bool, Any]:
        """The value of the instance's promoted widget for subgraph input ``index``, if any."""
        sub = instance.subgraph
        assert sub is not None
        sub_inputs = (sub.definition or {}).get("inputs") or []
        position = 0
        for i, sub_input in enumerate(sub_inputs):
            inner = self._promoted_source(sub, sub_input)
            if inner is None:
                continue
            if i == index:
                values = instance.node.get("widgets_values")
                if isinstance(values, list) and position < len(values):
                    return True, values[position]
                if isinstance(values, dict) and sub_input.get("name") in values:
                    return True, values[sub_input.get("name")]
                return True, inner.value
            position += 1
        return False, None

    @staticmethod
    def _promoted_source(sub: _Graph, sub_input: dict[str, Any]) -> _Widget | None:
        for link_id in sub_input.get("linkIds") or []:
            link = sub.links.get(link_id)
            if link is None:
                continue
            target = sub.nodes.get(link.target_id)
            inputs = (target or {}).get("inputs") or []
            if not (0 <= link.target_slot < len(inputs)):
                continue
            widget_ref = inputs[link.target_slot].get("widget")
            if not isinstance(widget_ref, dict):
                return None
            for widget in sub.widgets.get(link.target_id, []):
                if widget.name == widget_ref.get("name"):
                    return widget
            return None
        return None

    # primitives -----------------------------------------------------------------------------

    def _apply_primitives(self) -> None:
        for dto in self.dtos.values():
            if dto.kind != "virtual" or dto.class_type != "PrimitiveNode":
                continue
            values = dto.node.get("widgets_values")
            if not isinstance(values, list) or not values:
                continue
            outputs = dto.node.get("outputs") or []
            links = (outputs[0].get("links") if outputs else None) or []
            for link_id in links:
                link = dto.graph.links.get(link_id)
                target = dto.graph.nodes.get(link.target_id) if link else None
                if link is None or target is None:
                    continue
                inputs = target.get("inputs") or []
                if not (0 <= link.target_slot < len(inputs)):
                    continue
                widget_ref = inputs[link.target_slot].get("widget")
                if not isinstance(widget_ref, dict):
                    continue  # e.g. a Reroute: the editor cannot find a widget there
                for widget in dto.graph.widgets.get(link.target_id, []):
                    if widget.name == widget_ref.get("name"):
                        widget.value = copy.deepcopy(values[0])

    # link resolution -------------------------------------------------------------------------

    def _resolve_input(self, dto: _Dto, slot: int, visited: set[str],
                       type_: Any = None) -> _Resolved | None:
        key = f"{dto.exec_id}[I]{slot}"
        if key in visited:
            raise WorkflowError(f"circular links around node {dto.exec_id}")
        visited.add(key)
        if not (0 <= slot < len(dto.inputs)):
            return None
        slot_info = dto.inputs[slot]
        link_id = slot_info.get("link")
        if link_id is None:
            return None
        name = slot_info.get("name")
        link = dto.graph.links.get(link_id)
        if link is None:
            raise BrokenLinkError(
                f"node {dto.exec_id}, input {name!r}: link {link_id} does not exist; "
                "reconnect the input in the editor and save again"
            )
        instance = dto.instance
        if instance is not None and link.origin_id == dto.graph.input_node_id:
            if not (0 <= link.origin_slot < len(instance.inputs)):
                return None
            if instance.inputs[link.origin_slot].get("link") is None:
                found, value = self._promoted_value(instance, link.origin_slot)
                return ("value", value) if found else None
            return self._resolve_input(instance, link.origin_slot, visited)
        origin = dto.graph.nodes.get(link.origin_id)
        if origin is None:
            raise BrokenLinkError(
                f"node {dto.exec_id}, input {name!r}: the linked node {link.origin_id} does "
                "not exist; reconnect the input in the editor and save again"
            )
        origin_dto = self.dtos[":".join((*dto.path, link.origin_id))]
        want = type_ if type_ is not None else slot_info.get("type", "*")
        return self._resolve_output(origin_dto, link.origin_slot, want, visited)

    def _resolve_output(self, dto: _Dto, slot: int, type_: Any,
                        visited: set[str]) -> _Resolved | None:
        key = f"{dto.exec_id}[O]{slot}"
        if key in visited:
            raise WorkflowError(f"circular links around node {dto.exec_id}")
        visited.add(key)
        if dto.mode == _BYPASS:
            index = self._bypass_slot(dto, slot, type_)
            return None if index < 0 else self._resolve_input(dto, index, visited)
        if dto.kind == "subgraph":
            return self._resolve_subgraph_output(dto, slot, type_, visited)
        if dto.kind == "virtual":
            if slot < len(dto.inputs):
                return self._resolve_input(dto, slot, visited, type_)
            return None
        return ("link", dto.exec_id, slot)

    def _resolve_subgraph_output(self, dto: _Dto, slot: int, type_: Any,
                                 visited: set[str]) -> _Resolved | None:
        sub = dto.subgraph
        assert sub is not None
        outputs = (sub.definition or {}).get("outputs") or []
        if not (0 <= slot < len(outputs)):
            return None
        for link_id in outputs[slot].get("linkIds") or []:
            link = sub.links.get(link_id)
            if link is None or link.origin_id not in sub.nodes:
                continue
            inner = self.dtos[":".join((*dto.path, _node_id(dto.node), link.origin_id))]
            return self._resolve_output(inner, link.origin_slot, type_, visited)
        return None

    @staticmethod
    def _bypass_slot(dto: _Dto, slot: int, type_: Any) -> int:
        inputs = dto.inputs
        if type_ in ("*", ""):
            return slot if len(inputs) > slot else 0
        outputs = dto.node.get("outputs") or []
        out_type = outputs[slot].get("type", "*") if 0 <= slot < len(outputs) else "*"
        if (slot < len(inputs) and _compatible(inputs[slot].get("type"), out_type)
                and _compatible(inputs[slot].get("type"), type_)):
            return slot
        for i, slot_info in enumerate(inputs):
            if slot_info.get("type") == type_:
                return i
        for i, slot_info in enumerate(inputs):
            kind = slot_info.get("type")
            if _compatible(kind, out_type) and _compatible(kind, type_):
                return i
        return -1

    # output -------------------------------------------------------------------------------------

    def _emit_order(self) -> list[_Dto]:
        """DTOs in the editor's map order: each instance's inner nodes, then the instance."""
        ordered: list[_Dto] = []

        def visit(graph: _Graph, path: tuple[str, ...], order: list[str]) -> None:
            for nid in order:
                dto = self.dtos[":".join((*path, nid))]
                if dto.kind == "subgraph" and dto.subgraph is not None:
                    visit(dto.subgraph, (*path, nid), list(dto.subgraph.order))
                ordered.append(dto)

        visit(self.root, (), self._execution_order(self.root))
        return ordered

    def convert(self) -> dict[str, Any]:
        self._apply_primitives()
        output: dict[str, dict[str, Any]] = {}
        for dto in self._emit_order():
            if dto.kind in ("virtual", "subgraph") or dto.mode in (_NEVER, _BYPASS):
                continue
            inputs: dict[str, Any] = {}
            for widget in dto.graph.widgets.get(_node_id(dto.node), []):
                if widget.to_api:
                    inputs[widget.name] = _boxed(copy.deepcopy(widget.value))
            for slot, slot_info in enumerate(dto.inputs):
                resolved = self._resolve_input(dto, slot, set())
                if resolved is None:
                    continue
                name = str(slot_info.get("name"))
                if resolved[0] == "value":
                    inputs[name] = _boxed(copy.deepcopy(resolved[1]))
                else:
                    inputs[name] = [resolved[1], resolved[2]]
            entry: dict[str, Any] = {"inputs": inputs}
            if dto.kind != "unknown":
                entry["class_type"] = dto.class_type
            entry["_meta"] = {"title": self._title(dto)}
            output[dto.exec_id] = entry
        for entry in output.values():
            inputs = entry["inputs"]
            for name in list(inputs):
                value = inputs[name]
                if isinstance(value, list) and len(value) == 2 and value[0] not in output:
                    del inputs[name]
        return _js_key_order(output)

    def _title(self, dto: _Dto) -> Any:
        title = dto.node.get("title")
        if title is not None:
            return title
        definition = self.object_info.get(dto.class_type) or {}
        return (definition.get("display_name") or _FRONTEND_DISPLAY_NAMES.get(dto.class_type)
                or dto.class_type)


def _compatible(a: Any, b: Any) -> bool:
    """LiteGraph's ``isValidConnection`` for two slot types."""
    if a in ("", "*", 0, None) or b in ("", "*", 0, None) or a == b:
        return True
    left, right = str(a).lower(), str(b).lower()
    if "," not in left and "," not in right:
        return left == right
    return bool(set(left.split(",")) & set(right.split(",")))


def _boxed(value: Any) -> Any:
    return {"__value__": value} if isinstance(value, list) else value


def _is_array_index(key: str) -> bool:
    return (key.isascii() and key.isdigit() and (key == "0" or not key.startswith("0"))
            and int(key) < 2**32 - 1)


def _js_key_order(mapping: dict[str, Any]) -> dict[str, Any]:
    """Order keys as a JavaScript object does: integer-like keys ascending, then the rest."""
    numeric = sorted((k for k in mapping if _is_array_index(k)), key=int)
    rest = [k for k in mapping if not _is_array_index(k)]
    return {k: mapping[k] for k in (*numeric, *rest)}


def ui_to_api(ui: dict[str, Any], object_info: dict[str, Any], *,
              unknown_types: Literal["raise", "keep"] = "raise") -> dict[str, Any]:
    """Convert an editor-format workflow to the API format, as the ComfyUI editor would.

    ``object_info`` is the server's ``GET /object_info``. Returns a new dict; ``ui`` is not
    changed. Node types the server does not know raise :class:`UnknownNodeTypes` listing all
    of them; with ``unknown_types="keep"`` they are emitted without ``class_type`` instead, as
    the editor does (the server then refuses the prompt).
    """
    if not is_ui_format(ui):
        raise WorkflowError(
            "this is not an editor-format workflow (no 'nodes' list and 'links'); "
            "an API-format workflow needs no conversion"
        )
    return _Converter(ui, object_info, unknown_types).convert()

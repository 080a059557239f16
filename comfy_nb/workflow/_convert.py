"""Convert an editor-format (UI) workflow into the API format that ``POST /prompt`` accepts.

This follows what the current ComfyUI editor (frontend 1.58.1) queues for a workflow after
loading it, whichever editor saved it (``extra.frontendVersion`` does not matter). The rules are
read from the frontend's source at tag v1.58.1; each names its file (paths under ``src/``):

* loading (:mod:`comfy_nb.workflow._editor_graph`): link rows decide what is connected; nested
  subgraph definitions are hoisted and colliding inner node ids renumbered; legacy group nodes
  become subgraphs (:mod:`comfy_nb.workflow._group_nodes`);
* widgets (:mod:`comfy_nb.workflow._editor_widgets`) are rebuilt from ``object_info`` and what the
  editor's extensions add, and filled from ``widgets_values`` by position;
* ``graphToPrompt`` (``utils/executionUtil.ts``) and ``ExecutableNodeDTO``
  (``lib/litegraph/src/subgraph/ExecutableNodeDTO.ts``): a linked input becomes
  ``[origin_id, origin_slot]``, resolved through ``Reroute`` nodes, bypassed nodes (mode 4) and
  subgraph boundaries (ids ``"<instance id>:<inner id>"``); muted nodes (mode 2) give no output;
  muted or bypassed subgraph instances at the root are not expanded; legacy ``PrimitiveNode``
  values are copied into the widgets they feed; inputs pointing at a node that was not emitted
  are removed afterwards;
* ``_meta`` (:mod:`comfy_nb.workflow._editor_meta`): the title, and the node pack when known;
* keys are ordered as the editor's JSON: integer-like node ids ascending, then the others.

A node type the server does not know is emitted the way the editor emits it: without
``class_type``, its saved values as inputs ``UNKNOWN``, ``UNKNOWN_1``, ... (validation then reports
it). A link from a node that does not exist raises :class:`BrokenLinkError`, as in the editor.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import BrokenLinkError, UnknownNodeTypes, WorkflowError
from ._editor_graph import (
    Graph,
    LiveInput,
    hoist_subgraph_definitions,
    make_graph,
    renumber_subgraph_nodes,
)
from ._editor_meta import default_title, node_meta
from ._editor_text import SAVE_NODE_TYPES, dynamic_prompt, filename_replacements
from ._editor_widgets import (
    Widget,
    apply_widget_values,
    build_widgets,
    input_slots,
    migrate_widget_values,
    unknown_node_widgets,
)
from ._group_nodes import convert_group_nodes

__all__ = ["FRONTEND_ONLY_TYPES", "is_ui_format", "ui_to_api"]

#: Node types that exist only in the editor: never sent to the server.
FRONTEND_ONLY_TYPES: frozenset[str] = frozenset(
    {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
)

# lib/litegraph/src/types/globalEnums.ts (LGraphEventMode)
_BYPASS = 4
_NEVER = 2

_Resolved = tuple[Literal["link"], str, int] | tuple[Literal["value"], Any]


def is_ui_format(data: Any) -> bool:
    """True when ``data`` looks like an editor-format workflow (``nodes`` list and ``links``)."""
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data


@dataclass
class _Dto:
    """One node of the flattened graph (the editor's ``ExecutableNodeDTO``)."""

    node: dict[str, Any]
    graph: Graph
    path: tuple[str, ...]
    instance: _Dto | None
    kind: Literal["node", "virtual", "subgraph", "unknown"]
    class_type: str
    inputs: list[LiveInput]
    subgraph: Graph | None = None
    #: values of this instance's promoted widgets, by subgraph input index
    promoted: dict[int, Any] = field(default_factory=dict)
    #: per-instance values of inner widgets (old files' proxyWidgets): (inner id, widget) → value
    overrides: dict[tuple[str, str], Any] = field(default_factory=dict)
    #: the same for promoted inputs of inner subgraph instances: (inner id, input index) → value
    input_overrides: dict[tuple[str, int], Any] = field(default_factory=dict)

    @property
    def node_id(self) -> str:
        return _node_id(self.node)

    @property
    def exec_id(self) -> str:
        return ":".join((*self.path, self.node_id))

    @property
    def mode(self) -> int:
        mode = self.node.get("mode", 0)
        return mode if isinstance(mode, int) else 0


def _node_id(node: dict[str, Any]) -> str:
    return _node_key(node.get("id"))


def _node_key(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


# core/graph/subgraph/migration/proxyWidgetMigration.ts: "<inner id>: <widget>" names
_LEGACY_PREFIX = re.compile(r"^\s*(\d+)\s*:\s*(.+)$")


class _Converter:
    def __init__(self, ui: dict[str, Any], object_info: dict[str, Any]) -> None:
        self.object_info = object_info
        root = dict(ui)
        root["nodes"] = copy.deepcopy(ui.get("nodes") or [])
        definitions = ui.get("definitions")
        subgraphs = hoist_subgraph_definitions(
            definitions.get("subgraphs") if isinstance(definitions, dict) else None)
        renumber_subgraph_nodes(root, subgraphs)
        self.definitions = {sub["id"]: sub for sub in subgraphs}
        convert_group_nodes(root, self.definitions, object_info)
        self.subgraphs: dict[str, Graph] = {}
        self.root = make_graph(root, self._live_inputs)
        self.dtos: dict[str, _Dto] = {}
        self.emitted: list[_Dto] = []
        for nid in self._execution_order(self.root):
            self._add(self.root, nid, (), None, at_root=True, depth=0)

    # flattening ---------------------------------------------------------------------------

    @staticmethod
    def _execution_order(graph: Graph) -> list[str]:
        position = {nid: index for index, nid in enumerate(graph.order)}

        def key(nid: str) -> tuple[int, int]:
            order = graph.nodes[nid].get("order")
            return (order if isinstance(order, int) else 1 << 30, position[nid])

        return sorted(graph.order, key=key)

    def _subgraph(self, type_id: str) -> Graph:
        if type_id not in self.subgraphs:
            definition = self.definitions[type_id]
            self.subgraphs[type_id] = make_graph(definition, self._live_inputs, definition)
        return self.subgraphs[type_id]

    def _classify(self, node: dict[str, Any]) -> Literal["node", "virtual", "subgraph",
                                                            "unknown"]:
        node_type = node.get("type")
        if not isinstance(node_type, str):
            return "unknown"
        if node_type in self.definitions:
            return "subgraph"
        if node_type in FRONTEND_ONLY_TYPES:
            return "virtual"
        return "node" if isinstance(self.object_info.get(node_type), dict) else "unknown"

    def _live_inputs(self, node: dict[str, Any]) -> list[LiveInput]:
        """A node's input slots as the editor builds them on load."""
        inputs = node.get("inputs")
        saved = [slot for slot in inputs if isinstance(slot, dict)] if isinstance(
            inputs, list) else []
        kind = self._classify(node)
        if kind == "subgraph":
            # lib/litegraph/src/subgraph/SubgraphNode.ts: one input per subgraph input
            definition = self.definitions[str(node.get("type"))]
            return [LiveInput(str(sub.get("name")), sub.get("type", "*"))
                    for sub in definition.get("inputs") or [] if isinstance(sub, dict)]
        if kind == "node":
            # services/litegraphService.ts (ComfyNode.configure): the definition's inputs, then
            # the saved inputs it lacks
            slots = [LiveInput(name, kind_, None, name if has_widget else None)
                     for name, kind_, has_widget in input_slots(
                         str(node["type"]), self.object_info[str(node["type"])])]
            names = {slot.name for slot in slots}
            slots += [LiveInput(str(slot.get("name")), slot.get("type", "*"), None,
                                _widget_name(slot))
                      for slot in saved if str(slot.get("name")) not in names]
            return slots
        return [LiveInput(str(slot.get("name")), slot.get("type", "*"), None, _widget_name(slot))
                for slot in saved]

    def _add(self, graph: Graph, nid: str, path: tuple[str, ...], instance: _Dto | None, *,
             at_root: bool, depth: int) -> None:
        if depth > 64:
            raise WorkflowError("subgraphs are nested too deeply (a subgraph contains itself?)")
        node = graph.nodes[nid]
        kind = self._classify(node)
        class_type = str(node.get("type"))
        dto = _Dto(node, graph, path, instance, kind, class_type, graph.inputs[nid])
        self.dtos[dto.exec_id] = dto
        if kind == "subgraph":
            sub = self._subgraph(class_type)
            dto.subgraph = sub
            self._promote(dto)
            # utils/executionUtil.ts: a muted or bypassed instance at the root is not expanded;
            # lib/litegraph/src/subgraph/SubgraphNode.ts (getInnerNodes): nested ones always are
            if not at_root or dto.mode not in (_NEVER, _BYPASS):
                for inner in sub.order:
                    self._add(sub, inner, (*path, nid), dto, at_root=False, depth=depth + 1)
            return
        if kind == "node" and nid not in graph.widgets:
            widgets = build_widgets(class_type, self.object_info[class_type])
            values = _saved_values(node.get("widgets_values"))
            if values:
                values = migrate_widget_values(class_type, self.object_info[class_type],
                                               widgets, values)
            apply_widget_values(class_type, widgets, values)
            graph.widgets[nid] = widgets
        elif kind == "unknown" and nid not in graph.widgets:
            graph.widgets[nid] = unknown_node_widgets(_saved_values(node.get("widgets_values")))
        self.emitted.append(dto)

    def _promote(self, dto: _Dto) -> None:
        """The values of an instance's promoted widgets (``SubgraphNode.ts``): the inner
        widget's value, then the instance's ``widgets_values`` by position, then, for files with
        ``properties.proxyWidgets``, the values those entries name
        (``core/graph/subgraph/migration/proxyWidgetMigration.ts``)."""
        sub = dto.subgraph
        assert sub is not None
        sub_inputs = [i for i in (sub.definition or {}).get("inputs") or [] if isinstance(i, dict)]
        widget_of: dict[int, tuple[str, Widget]] = {}
        for index, sub_input in enumerate(sub_inputs):
            source = self._promoted_source(sub, sub_input)
            if source is not None:
                widget_of[index] = source
                dto.promoted[index] = copy.deepcopy(source[1].value)
        saved = _saved_values(dto.node.get("widgets_values"))
        for position, index in enumerate(sorted(widget_of)):
            if position < len(saved):
                dto.promoted[index] = copy.deepcopy(saved[position])
        proxies = (dto.node.get("properties") or {}).get("proxyWidgets")
        raw = dto.node.get("widgets_values")
        for position, entry in enumerate(proxies if isinstance(proxies, list) else []):
            if not (isinstance(entry, list) and len(entry) >= 2 and isinstance(raw, list)
                    and position < len(raw)):
                continue  # a hole: nothing to apply
            self._apply_proxy(dto, sub_inputs, widget_of, entry, copy.deepcopy(raw[position]))

    def _apply_proxy(self, dto: _Dto, sub_inputs: list[dict[str, Any]],
                     widget_of: dict[int, tuple[str, Widget]], entry: list[Any],
                     value: Any) -> None:
        """One ``proxyWidgets`` entry ``[inner node id, widget name, source id?]`` of an old file
        and the instance's value at its position (``proxyWidgetMigration.ts``)."""
        sub = dto.subgraph
        assert sub is not None
        source_id, name = _node_key(entry[0]), str(entry[1])
        source = str(entry[2]) if len(entry) > 2 and entry[2] is not None else None
        if source_id == "-1":  # the subgraph input of that name (appendQuarantine)
            for index, sub_input in enumerate(sub_inputs):
                if sub_input.get("name") == name and index in widget_of:
                    dto.promoted[index] = value
            return
        linked = [index for index, (node_id, widget) in widget_of.items()
                  if node_id == source_id and widget.name == name]
        if linked:  # findHostInputForPromotion: already promoted by an input
            dto.promoted[linked[0]] = value
            return
        node = sub.nodes.get(source_id)
        if node is None:
            return  # quarantined: missingSourceNode
        if not self._resolves(sub, source_id, name):  # normalizeLegacyProxyWidgetEntry
            match = _LEGACY_PREFIX.match(name)
            while match:
                source, name = match.group(1), match.group(2)
                match = _LEGACY_PREFIX.match(name)
        if self._classify(node) == "subgraph":
            nested = self._subgraph(str(node.get("type")))
            for index, sub_input in enumerate((nested.definition or {}).get("inputs") or []):
                found = self._promoted_source(nested, sub_input) if isinstance(
                    sub_input, dict) else None
                if found is None:
                    continue
                if (found[1].name == name and found[0] == source) if source else (
                        sub_input.get("name") == name or found[1].name == name):
                    dto.input_overrides[(source_id, index)] = value
                    return
            return
        self._ensure_widgets(sub, source_id)
        if any(widget.name == name and widget.in_values and widget.to_api
               for widget in sub.widgets.get(source_id, [])):
            # a new subgraph input takes the widget over: this instance's value
            dto.overrides[(source_id, name)] = value

    def _resolves(self, sub: Graph, node_id: str, name: str) -> bool:
        node = sub.nodes[node_id]
        if self._classify(node) == "subgraph":
            nested = self._subgraph(str(node.get("type")))
            return any(isinstance(i, dict) and i.get("name") == name
                       for i in (nested.definition or {}).get("inputs") or [])
        self._ensure_widgets(sub, node_id)
        return any(widget.name == name for widget in sub.widgets.get(node_id, []))

    def _promoted_source(self, sub: Graph, sub_input: dict[str, Any],
                         depth: int = 0) -> tuple[str, Widget] | None:
        """The inner widget a subgraph input promotes: the first of its links that ends on a
        widget input (``SubgraphNode.ts``, ``_resolveInputWidget``)."""
        for link_id in sub_input.get("linkIds") or []:
            link = sub.links.get(link_id)
            target = sub.live_target(link) if link is not None else None
            if link is None or target is None:
                continue
            if target.widget is None:
                nested = self._nested_promoted_source(sub, link.target_id, target, depth)
                if nested is not None:
                    return nested
                continue
            widget_name = target.widget
            self._ensure_widgets(sub, link.target_id)
            for widget in sub.widgets.get(link.target_id, []):
                if widget.name == widget_name:
                    return link.target_id, widget
        return None

    def _nested_promoted_source(self, sub: Graph, node_id: str, target: LiveInput,
                                depth: int) -> tuple[str, Widget] | None:
        """A subgraph input that feeds an inner subgraph instance's promoted input promotes the
        innermost widget (``SubgraphNode.ts``, ``_resolveNestedPromotedSource``)."""
        node = sub.nodes.get(node_id)
        if node is None or self._classify(node) != "subgraph" or depth > 64:
            return None
        nested = self._subgraph(str(node.get("type")))
        for sub_input in (nested.definition or {}).get("inputs") or []:
            if isinstance(sub_input, dict) and sub_input.get("name") == target.name:
                return self._promoted_source(nested, sub_input, depth + 1)
        return None

    def _ensure_widgets(self, graph: Graph, nid: str) -> None:
        node = graph.nodes[nid]
        if nid in graph.widgets or self._classify(node) != "node":
            return
        class_type = str(node.get("type"))
        widgets = build_widgets(class_type, self.object_info[class_type])
        values = _saved_values(node.get("widgets_values"))
        if values:
            values = migrate_widget_values(class_type, self.object_info[class_type], widgets,
                                           values)
        apply_widget_values(class_type, widgets, values)
        graph.widgets[nid] = widgets

    # primitives -----------------------------------------------------------------------------

    def _apply_primitives(self) -> None:
        """``extensions/core/widgetInputs.ts`` (``applyToGraph``) and
        ``widgetValuePropagation.ts``: before the prompt is built, each legacy PrimitiveNode
        copies its value into the widgets its output links feed directly."""
        for dto in self.dtos.values():
            if dto.kind != "virtual" or dto.class_type != "PrimitiveNode":
                continue
            values = _saved_values(dto.node.get("widgets_values"))
            if not values:
                continue
            value = values[0]
            properties = dto.node.get("properties")
            if (isinstance(properties, dict) and properties.get("Run widget replace on values")
                    and isinstance(value, str) and value):
                value = filename_replacements(value, self._widget_value)
            for link in dto.graph.output_links(dto.node_id, 0):
                target = dto.graph.live_target(link)
                widget_name = target.widget if target is not None else None
                if widget_name is None:
                    continue  # e.g. a Reroute: the editor finds no widget there
                self._ensure_widgets(dto.graph, link.target_id)
                for widget in dto.graph.widgets.get(link.target_id, []):
                    if widget.name == widget_name:
                        widget.value = copy.deepcopy(value)

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
        link = slot_info.link
        if link is None:
            return None
        instance = dto.instance
        if instance is not None and link.origin_id == dto.graph.input_node_id:
            if not (0 <= link.origin_slot < len(instance.inputs)):
                return None
            if instance.inputs[link.origin_slot].link is None:
                # an old file's proxyWidgets on an outer instance win over this one's value
                outer = instance.instance
                slot_key = (instance.node_id, link.origin_slot)
                if outer is not None and slot_key in outer.input_overrides:
                    return ("value", outer.input_overrides[slot_key])
                if link.origin_slot in instance.promoted:
                    return ("value", instance.promoted[link.origin_slot])
                return None
            return self._resolve_input(instance, link.origin_slot, visited)
        origin_dto = self.dtos.get(":".join((*dto.path, link.origin_id)))
        if origin_dto is None:
            raise BrokenLinkError(
                f"node {dto.exec_id}, input {slot_info.name!r}: the linked node "
                f"{link.origin_id} does not exist; reconnect the input in the editor and save "
                "again"
            )
        want = type_ if type_ is not None else slot_info.type
        return self._resolve_output(origin_dto, link.origin_slot, want, visited)

    def _resolve_output(self, dto: _Dto, slot: int, type_: Any,
                        visited: set[str]) -> _Resolved | None:
        key = f"{dto.exec_id}[O]{slot}"
        if key in visited:
            raise WorkflowError(f"circular links around node {dto.exec_id}")
        visited.add(key)
        if dto.mode == _NEVER:
            return None  # ExecutableNodeDTO.ts: muted nodes produce no output
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
        link = sub.incoming(sub.output_node_id, slot)
        if link is None or link.origin_id not in sub.nodes:
            return None
        inner = self.dtos.get(":".join((*dto.path, dto.node_id, link.origin_id)))
        if inner is None:
            return None  # the instance was not expanded
        return self._resolve_output(inner, link.origin_slot, type_, visited)

    @staticmethod
    def _bypass_slot(dto: _Dto, slot: int, type_: Any) -> int:
        """``ExecutableNodeDTO.ts`` (``_getBypassSlotIndex``)."""
        inputs = dto.inputs
        if type_ in ("*", ""):
            return slot if len(inputs) > slot else 0
        outputs = dto.node.get("outputs") or []
        if dto.kind == "subgraph" and dto.subgraph is not None:
            outputs = (dto.subgraph.definition or {}).get("outputs") or []
        out = outputs[slot] if isinstance(outputs, list) and 0 <= slot < len(outputs) else None
        out_type = out.get("type", "*") if isinstance(out, dict) else "*"
        if (slot < len(inputs) and _compatible(inputs[slot].type, out_type)
                and _compatible(inputs[slot].type, type_)):
            return slot
        for i, slot_info in enumerate(inputs):
            if slot_info.type == type_:
                return i
        for i, slot_info in enumerate(inputs):
            if _compatible(slot_info.type, out_type) and _compatible(slot_info.type, type_):
                return i
        return -1

    # output -------------------------------------------------------------------------------------

    def convert(self) -> dict[str, Any]:
        self._apply_primitives()
        output: dict[str, dict[str, Any]] = {}
        for dto in self.emitted:
            if dto.mode in (_NEVER, _BYPASS) or dto.kind == "virtual":
                continue
            output[dto.exec_id] = self._entry(dto)
        for entry in output.values():
            inputs = entry["inputs"]
            for name in list(inputs):
                value = inputs[name]
                if isinstance(value, list) and len(value) == 2 and value[0] not in output:
                    del inputs[name]
        return _js_key_order(output)

    def _entry(self, dto: _Dto) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        overrides = dto.instance.overrides if dto.instance is not None else {}
        overridden = {name for (nid, name) in overrides if nid == dto.node_id}
        for widget in dto.graph.widgets.get(dto.node_id, []):
            if widget.to_api:
                value = overrides.get((dto.node_id, widget.name), widget.value)
                inputs[widget.name] = _boxed(self._serialized(dto, widget, value))
        for slot, slot_info in enumerate(dto.inputs):
            if slot_info.widget in overridden:
                continue
            resolved = self._resolve_input(dto, slot, set())
            if resolved is None:
                continue
            if resolved[0] == "value":
                inputs[slot_info.name] = _boxed(copy.deepcopy(resolved[1]))
            else:
                inputs[slot_info.name] = [resolved[1], resolved[2]]
        entry: dict[str, Any] = {"inputs": inputs}
        if dto.kind != "unknown":
            entry["class_type"] = dto.class_type
        entry["_meta"] = node_meta(self._title(dto), dto.node.get("properties"))
        return entry

    def _serialized(self, dto: _Dto, widget: Widget, value: Any) -> Any:
        """A widget's value as the editor sends it (``widget.serializeValue``)."""
        value = copy.deepcopy(value)
        if widget.dynamic_prompts and isinstance(value, str):
            value = dynamic_prompt(value)
        if (dto.class_type in SAVE_NODE_TYPES and widget.name == "filename_prefix"
                and isinstance(value, str)):
            value = filename_replacements(value, self._widget_value)
        return value

    def _widget_value(self, node_name: str, widget_name: str) -> tuple[Any] | None:
        """The value of a widget of the first node whose S&R name, else title, is
        ``node_name``, in the root graph then the subgraphs (``utils/searchAndReplace.ts``)."""
        graphs = [self.root, *(self._subgraph(type_id) for type_id in self.definitions)]
        for key in ("sr", "title"):
            for graph in graphs:
                for nid in graph.order:
                    node = graph.nodes[nid]
                    properties = node.get("properties")
                    if key == "sr":
                        name = (properties.get("Node name for S&R")
                                if isinstance(properties, dict) else None)
                    else:
                        kind = self._classify(node)
                        name = node.get("title") or (
                            "" if kind == "unknown" else default_title(str(node.get("type")),
                                                                       self.object_info))
                    if name != node_name:
                        continue
                    self._ensure_widgets(graph, nid)
                    for widget in graph.widgets.get(nid, []):
                        if widget.name == widget_name:
                            return (widget.value,)
                    return None
        return None

    def _title(self, dto: _Dto) -> Any:
        """``LGraphNode.configure``: a saved title unless it is empty, else the default one
        (a node of an unknown type has none)."""
        title = dto.node.get("title")
        if title:
            return title
        if dto.kind == "unknown":
            return ""
        return default_title(dto.class_type, self.object_info)

    def unknown_types(self) -> dict[str, list[str]]:
        missing: dict[str, list[str]] = {}
        for dto in self.emitted:
            if dto.kind == "unknown" and dto.mode not in (_NEVER, _BYPASS):
                missing.setdefault(str(dto.node.get("type")), []).append(dto.exec_id)
        return missing


def _widget_name(slot: dict[str, Any]) -> str | None:
    widget = slot.get("widget")
    name = widget.get("name") if isinstance(widget, dict) else None
    return name if isinstance(name, str) else None


def _saved_values(values: Any) -> list[Any]:
    """``widgets_values`` as the list the editor reads (``Array.from``): a list as it is, an
    object only through a numeric ``length`` (custom nodes save such objects), else nothing."""
    if isinstance(values, list):
        return values
    if isinstance(values, dict) and isinstance(values.get("length"), int):
        return [values.get(str(index)) for index in range(max(values["length"], 0))]
    return []


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
              unknown_types: Literal["raise", "keep"] = "keep") -> dict[str, Any]:
    """Convert an editor-format workflow to the API format, as the ComfyUI editor would.

    ``object_info`` is the server's ``GET /object_info``. Returns a new dict; ``ui`` is not
    changed. Node types the server does not know are emitted as the editor emits them (no
    ``class_type``; validation reports them); ``unknown_types="raise"`` raises
    :class:`UnknownNodeTypes` listing all of them instead.
    """
    if not is_ui_format(ui):
        raise WorkflowError(
            "this is not an editor-format workflow (no 'nodes' list and 'links'); "
            "an API-format workflow needs no conversion"
        )
    converter = _Converter(ui, object_info)
    if unknown_types == "raise":
        missing = converter.unknown_types()
        if missing:
            raise UnknownNodeTypes(missing)
    return converter.convert()

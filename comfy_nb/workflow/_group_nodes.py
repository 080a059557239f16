"""Legacy group nodes, converted to subgraphs as the ComfyUI editor (frontend 1.58.1) converts them
when it loads a workflow.

A group node (type ``workflow>NAME``, or the older ``workflow/NAME``) stands for the nodes saved in
``extra.groupNodes[NAME]``. After loading, the editor unpacks each one in the root graph's node
order: the inner nodes are pasted with new ids, take the values of the group node's widgets, and
are wired to what the group node was wired to; then they are converted to a subgraph, whose
instance gets the next id (``extensions/core/groupNode.ts``: ``GroupNodeConfig``,
``GroupNodeHandler.convertToNodes``, ``convertLoadedGroupNodes``;
``lib/litegraph/src/LGraph.ts``: ``convertToSubgraph``). This module does the same on the
workflow's dicts: it replaces each group node with a subgraph instance and adds the subgraph's
definition, so the API ids become ``"<instance id>:<new inner id>"``.

A group whose inner node types the server does not know is not converted (the editor does not
register it): its node stays, as a node of an unknown type.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ._editor_widgets import (
    apply_widget_values,
    build_widgets,
    definition_inputs,
    has_widget,
)

__all__ = ["convert_group_nodes"]

_PREFIX = "workflow>"  # constants/groupNodeConstants.ts: PREFIX + SEPARATOR
_OLD_PREFIX = "workflow/"
_EDITOR_TYPES = frozenset({"Note", "MarkdownNote", "PrimitiveNode", "Reroute"})


@dataclass
class _GroupType:
    """What ``GroupNodeConfig.registerType`` derives from a group's saved nodes."""

    inputs: dict[str, list[Any]] = field(default_factory=dict)  # the group node's definition
    #: inner node index → {inner widget name: group widget name}
    widget_map: dict[int, dict[str, str]] = field(default_factory=dict)
    #: group input name → (inner node index, inner input name)
    input_map: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: group output index → (inner node index, inner output slot)
    outputs: list[tuple[int, int]] = field(default_factory=list)


def _group_type(data: dict[str, Any], object_info: dict[str, Any]) -> _GroupType:
    nodes = [n for n in data.get("nodes") or [] if isinstance(n, dict)]
    links_to: dict[int, dict[int, list[Any]]] = {}
    links_from: dict[int, dict[int, list[Any]]] = {}
    for link in data.get("links") or []:
        if not isinstance(link, list) or len(link) < 4 or link[0] is None:
            continue  # a link from outside the group
        links_from.setdefault(int(link[0]), {}).setdefault(int(link[1]), []).append(link)
        links_to.setdefault(int(link[2]), {})[int(link[3])] = link
    external: dict[int, set[int]] = {}
    for ext in data.get("external") or []:
        if isinstance(ext, list) and len(ext) >= 3 and ext[2] is not None:
            external.setdefault(int(ext[0]), set()).add(int(ext[1]))
    raw_config = data.get("config")
    config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
    group = _GroupType()
    seen: dict[str, int] = {}
    converted_later: list[tuple[int, dict[str, Any], str, list[Any]]] = []

    def input_name(index: int, node: dict[str, Any], name: str) -> str:
        """``GroupNodeConfig.getInputConfig``: the group's name for an inner input."""
        custom = ((config.get(str(index)) or {}).get("input") or {}).get(name) or {}
        label = next((slot.get("label") for slot in node.get("inputs") or []
                      if isinstance(slot, dict) and slot.get("name") == name), None)
        shown = custom.get("name") or label or name
        key = shown
        if (node.get("type") == "PrimitiveNode" and node.get("title")) or shown in seen:
            prefix = f"{node.get('title') or node.get('type')} "
            key = shown = f"{prefix}{name}"
            if shown in seen:
                shown = f"{prefix}{seen[shown]} {name}"
        seen[key] = seen.get(key, 1) + 1
        return str(shown)

    for index, node in enumerate(nodes):
        node_type = node.get("type")
        definition = object_info.get(node_type) if isinstance(node_type, str) else None
        if not isinstance(definition, dict):
            continue  # PrimitiveNode and Reroute: their synthesized inputs are not kept here
        inputs = definition_inputs(str(node_type), definition)
        saved = [slot for slot in node.get("inputs") or [] if isinstance(slot, dict)]
        widget_map = group.widget_map.setdefault(index, {})
        sockets: list[tuple[str, list[Any]]] = []
        for name, spec in inputs:
            if has_widget(spec) and not spec[1].get("forceInput"):
                if any(slot.get("name") == name and (slot.get("widget") or {}).get("name") == name
                       for slot in saved):
                    converted_later.append((index, node, name, spec))  # a converted widget
                    continue
                new_name = input_name(index, node, name)
                group.inputs[new_name] = _with_control(spec, name, new_name)
                widget_map[name] = new_name
            else:
                sockets.append((name, spec))
        for name, spec in sockets:
            slot_index = next((i for i, slot in enumerate(saved) if slot.get("name") == name),
                              None)
            if slot_index is not None and slot_index in links_to.get(index, {}):
                continue  # linked inside the group
            new_name = input_name(index, node, name)
            group.inputs[new_name] = spec
            group.input_map[new_name] = (index, name)
        outputs = definition.get("output") or []
        for slot in range(len(outputs)):
            linked_inside = slot in links_from.get(index, {}) and slot not in external.get(
                index, set())
            custom = ((config.get(str(index)) or {}).get("output") or {}).get(str(slot)) or {}
            if custom.get("visible", not linked_inside):
                group.outputs.append((index, slot))
    for index, node, name, spec in converted_later:
        saved = [slot for slot in node.get("inputs") or [] if isinstance(slot, dict)]
        slot_index = next(i for i, slot in enumerate(saved) if slot.get("name") == name)
        if slot_index in links_to.get(index, {}):
            continue
        new_name = input_name(index, node, name)
        group.inputs[new_name] = _with_control(spec, name, new_name)
        group.widget_map.setdefault(index, {})[name] = new_name
        group.input_map[new_name] = (index, name)
    return group


def _with_control(spec: list[Any], name: str, new_name: str) -> list[Any]:
    """A seed widget keeps its control widget in the group node (``getInputConfig``)."""
    if name in ("seed", "noise_seed"):
        prefix = new_name[: len(new_name) - len(name)]
        return [spec[0], {**spec[1], "control_after_generate": f"{prefix}control_after_generate"}]
    return spec


def convert_group_nodes(root: dict[str, Any], definitions: dict[str, dict[str, Any]],
                        object_info: dict[str, Any]) -> None:
    """Replace every group node of ``root`` (changed in place; its ``nodes`` and ``links`` must
    be its own copies) with a subgraph instance, adding the subgraph to ``definitions``."""
    extra = root.get("extra")
    groups = extra.get("groupNodes") if isinstance(extra, dict) else None
    if not isinstance(groups, dict) or not groups:
        return
    nodes: list[Any] = root["nodes"]
    for node in nodes:  # groupNode.ts: replaceLegacySeparators
        if isinstance(node, dict) and str(node.get("type", "")).startswith(_OLD_PREFIX):
            node["type"] = _PREFIX + str(node["type"])[len(_OLD_PREFIX):]
    ids = _IdMinter(root, definitions)
    root["links"] = copy.deepcopy(root.get("links") or [])
    for node in list(nodes):
        node_type = node.get("type") if isinstance(node, dict) else None
        if not (isinstance(node_type, str) and node_type.startswith(_PREFIX)):
            continue
        data = groups.get(node_type[len(_PREFIX):])
        if not isinstance(data, dict) or not _registrable(data, object_info):
            continue
        instance, definition = _unpack(node, data, object_info, ids, root["links"])
        definitions[definition["id"]] = definition
        nodes[nodes.index(node)] = instance


def _registrable(data: dict[str, Any], object_info: dict[str, Any]) -> bool:
    """``GroupNodeConfig.registerFromWorkflow``: every inner type must be known."""
    inner = [n for n in data.get("nodes") or [] if isinstance(n, dict)]
    return bool(inner) and all(
        isinstance(n.get("type"), str)
        and (n["type"] in _EDITOR_TYPES or isinstance(object_info.get(n["type"]), dict))
        for n in inner)


class _IdMinter:
    """New node and link ids, as the editor mints them after loading: the next id after the
    highest one seen (``lib/litegraph/src/idAllocation.ts``)."""

    def __init__(self, root: dict[str, Any], definitions: dict[str, dict[str, Any]]) -> None:
        self.used: set[int] = set()
        for node in [*(root.get("nodes") or []),
                     *(n for d in definitions.values() for n in d.get("nodes") or [])]:
            if isinstance(node, dict) and isinstance(node.get("id"), int):
                self.used.add(node["id"])
        raw_state = root.get("state")
        state: dict[str, Any] = raw_state if isinstance(raw_state, dict) else {}
        last = state.get("lastNodeId", root.get("last_node_id"))
        self.last = max([last if isinstance(last, int) else 0, *self.used, 0])
        link_ids = [row[0] if isinstance(row, list) and row else
                    row.get("id") if isinstance(row, dict) else None
                    for row in root.get("links") or []]
        last_link = state.get("lastLinkId", root.get("last_link_id"))
        self.last_link = max([last_link if isinstance(last_link, int) else 0,
                              *(i for i in link_ids if isinstance(i, int)), 0])

    def node(self) -> int:
        self.last += 1
        while self.last in self.used:
            self.last += 1
        self.used.add(self.last)
        return self.last

    def link(self) -> int:
        self.last_link += 1
        return self.last_link


def _unpack(group_node: dict[str, Any], data: dict[str, Any], object_info: dict[str, Any],
            ids: _IdMinter, root_links: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The subgraph instance and definition that replace ``group_node``."""
    group = _group_type(data, object_info)
    inner = copy.deepcopy([n for n in data["nodes"] if isinstance(n, dict)])
    new_ids = [ids.node() for _ in inner]
    instance_id = ids.node()  # LGraph.convertToSubgraph adds the instance after the nodes
    # the group node's widgets, filled from its widgets_values (as any node's)
    outer = build_widgets("", {"input": {"required": group.inputs}})
    apply_widget_values("", outer, group_node.get("widgets_values"))
    consumed: set[int] = set()
    for index, node in enumerate(inner):
        node.pop("index", None)
        node["id"] = new_ids[index]
        for slot in node.get("inputs") or []:
            if isinstance(slot, dict):
                slot["link"] = None
        for slot in node.get("outputs") or []:
            if isinstance(slot, dict):
                slot["links"] = []
        definition = object_info.get(str(node.get("type")))
        mapping = group.widget_map.get(index)
        if not isinstance(definition, dict) or not mapping:
            continue
        widgets = build_widgets(node["type"], definition)
        apply_widget_values(node["type"], widgets, node.get("widgets_values"))
        for position, widget in enumerate(widgets):
            new_name = mapping.get(widget.name)
            match = next((i for i, w in enumerate(outer)
                          if w.name == new_name and i not in consumed), None)
            if match is None:
                continue
            consumed.add(match)
            widget.value = copy.deepcopy(outer[match].value)
            # the control widget that follows a seed keeps the group's control value
            if (position + 1 < len(widgets) and match + 1 < len(outer)
                    and widgets[position + 1].name == "control_after_generate"):
                widgets[position + 1].value = outer[match + 1].value
        node["widgets_values"] = [w.value for w in widgets if w.in_values]

    links: list[dict[str, Any]] = []

    def add_link(origin: Any, origin_slot: int, target: Any, target_slot: int,
                 type_: Any) -> int:
        link_id = ids.link()
        links.append({"id": link_id, "origin_id": origin, "origin_slot": origin_slot,
                      "target_id": target, "target_slot": target_slot, "type": type_})
        return link_id

    def set_input_link(node: dict[str, Any], slot: int, link_id: int) -> None:
        slots = node.get("inputs") or []
        if 0 <= slot < len(slots) and isinstance(slots[slot], dict):
            slots[slot]["link"] = link_id

    for link in data.get("links") or []:  # utils/vintageClipboard.ts: deserialiseAndCreate
        if not isinstance(link, list) or len(link) < 4 or link[0] is None:
            continue
        source, target = inner[int(link[0])], inner[int(link[2])]
        link_id = add_link(source["id"], int(link[1]), target["id"], int(link[3]),
                           link[5] if len(link) > 5 else "*")
        set_input_link(target, int(link[3]), link_id)

    group_id = group_node.get("id")
    saved_inputs = [s for s in group_node.get("inputs") or [] if isinstance(s, dict)]
    sub_inputs: list[dict[str, Any]] = []
    instance_inputs: list[dict[str, Any]] = []
    by_origin: dict[tuple[Any, Any], int] = {}
    for row in root_links:
        fields = _fields(row)
        if fields is None or fields[3] != group_id:
            continue
        slot = fields[4]
        name = saved_inputs[slot].get("name") if 0 <= slot < len(saved_inputs) else None
        if name not in group.input_map:
            continue
        index, inner_name = group.input_map[name]
        target = inner[index]
        target_slot = next((i for i, s in enumerate(target.get("inputs") or [])
                            if isinstance(s, dict) and s.get("name") == inner_name), None)
        if target_slot is None:
            continue
        # LGraph.convertToSubgraph: links from one output share one subgraph input
        key = (fields[1], fields[2])
        if key not in by_origin:
            by_origin[key] = len(sub_inputs)
            sub_inputs.append({"name": _unique(inner_name, sub_inputs),
                               "type": target["inputs"][target_slot].get("type", "*"),
                               "linkIds": []})
            instance_inputs.append({"name": sub_inputs[-1]["name"],
                                    "type": sub_inputs[-1]["type"], "link": fields[0]})
        sub_index = by_origin[key]
        link_id = add_link(-10, sub_index, target["id"], target_slot, sub_inputs[sub_index]["type"])
        sub_inputs[sub_index]["linkIds"].append(link_id)
        set_input_link(target, target_slot, link_id)
        _retarget(row, instance_id, sub_index)

    sub_outputs: list[dict[str, Any]] = []
    output_index: dict[int, int] = {}
    for row in root_links:
        fields = _fields(row)
        if fields is None or fields[1] != group_id or not (0 <= fields[2] < len(group.outputs)):
            continue
        if fields[2] not in output_index:
            index, slot = group.outputs[fields[2]]
            source = inner[index]
            out = (source.get("outputs") or [{}] * (slot + 1))[slot] \
                if slot < len(source.get("outputs") or []) else {}
            output_index[fields[2]] = len(sub_outputs)
            link_id = add_link(source["id"], slot, -20, len(sub_outputs), out.get("type", "*"))
            sub_outputs.append({"name": _unique(str(out.get("name") or out.get("type") or "*"),
                                                sub_outputs),
                                "type": out.get("type", "*"), "linkIds": [link_id]})
        _reorigin(row, instance_id, output_index[fields[2]])
    # links of the group node that nothing inside takes over go with it
    root_links[:] = [row for row in root_links
                     if (fields := _fields(row)) is None
                     or group_id not in (fields[1], fields[3])]

    name = str(group_node.get("type"))[len(_PREFIX):]
    definition = {
        "id": f"group-node:{name}:{instance_id}", "name": name,
        "inputNode": {"id": -10}, "outputNode": {"id": -20},
        "inputs": sub_inputs, "outputs": sub_outputs,
        "nodes": inner, "links": links, "widgets": [],
    }
    instance = {
        "id": instance_id, "type": definition["id"], "mode": 0,
        "order": group_node.get("order"), "inputs": instance_inputs,
        "outputs": [{"name": o["name"], "type": o["type"], "links": []} for o in sub_outputs],
        "properties": {}, "widgets_values": [],
    }
    return instance, definition


def _fields(row: Any) -> tuple[Any, Any, int, Any, int] | None:
    if isinstance(row, list) and len(row) >= 5:
        return row[0], row[1], int(row[2] or 0), row[3], int(row[4] or 0)
    if isinstance(row, dict):
        return (row.get("id"), row.get("origin_id"), int(row.get("origin_slot") or 0),
                row.get("target_id"), int(row.get("target_slot") or 0))
    return None


def _retarget(row: Any, node_id: int, slot: int) -> None:
    if isinstance(row, list):
        row[3], row[4] = node_id, slot
    else:
        row["target_id"], row["target_slot"] = node_id, slot


def _reorigin(row: Any, node_id: int, slot: int) -> None:
    if isinstance(row, list):
        row[1], row[2] = node_id, slot
    else:
        row["origin_id"], row["origin_slot"] = node_id, slot


def _unique(name: str, existing: list[dict[str, Any]]) -> str:
    """``lib/litegraph/src/strings.ts`` (``nextUniqueName``): ``name``, ``name_1``, ..."""
    names = {item.get("name") for item in existing}
    if name not in names:
        return name
    suffix = 1
    while f"{name}_{suffix}" in names:
        suffix += 1
    return f"{name}_{suffix}"

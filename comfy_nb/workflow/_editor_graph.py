"""An editor workflow's graphs as the ComfyUI editor (frontend 1.58.1) holds them after loading.

Loading changes a workflow before anything is converted: the editor's link store, not the
``link`` fields of node inputs, says what is connected; competing link rows and misplaced slots
are settled; subgraph definitions nested in others are hoisted, and inner node ids that collide
with ids already used are renumbered. This module does those steps on plain dicts and returns
:class:`Graph` objects with the links each input ends up with. Rules are read from the
frontend's source at tag v1.58.1 (paths under ``src/``).

It knows nothing of widgets or of the API format (:mod:`comfy_nb.workflow._convert` does that).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Graph", "Link", "LiveInput", "hoist_subgraph_definitions", "make_graph",
           "renumber_subgraph_nodes"]


@dataclass(frozen=True)
class Link:
    """One link row: ``origin_id``/``target_id`` as strings, as the API uses them."""

    id: int
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int


@dataclass
class LiveInput:
    """An input slot of a node as the editor has it after loading, and the link it holds."""

    name: str
    type: Any
    link: Link | None = None
    widget: str | None = None  # the widget this input can replace


@dataclass
class Graph:
    """The root graph or one subgraph definition (shared by all its instances)."""

    nodes: dict[str, dict[str, Any]]
    order: list[str]
    links: dict[int, Link]
    inputs: dict[str, list[LiveInput]] = field(default_factory=dict)
    definition: dict[str, Any] | None = None
    input_node_id: str = "-10"
    output_node_id: str = "-20"
    widgets: dict[str, Any] = field(default_factory=dict)  # node id → its widgets

    def live_target(self, link: Link) -> LiveInput | None:
        """The live input slot a link ended on after loading, if any."""
        for slot in self.inputs.get(link.target_id, []):
            if slot.link is link:
                return slot
        return None

    def output_links(self, node_id: str, slot: int) -> list[Link]:
        """The links leaving an output, in ascending id order (``node/slotLinks.ts``)."""
        return sorted((link for link in self.links.values()
                       if link.origin_id == node_id and link.origin_slot == slot),
                      key=lambda link: link.id)

    def incoming(self, node_id: str, slot: int) -> Link | None:
        """The link into input ``slot`` of a node that is not an ordinary node (the subgraph
        output node): found by its row."""
        for link in self.links.values():
            if link.target_id == node_id and link.target_slot == slot:
                return link
        return None


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return default


def _row_fields(row: Any) -> tuple[Any, Any, Any, Any, Any] | None:
    if isinstance(row, dict):
        return (row.get("id"), row.get("origin_id"), row.get("origin_slot"),
                row.get("target_id"), row.get("target_slot"))
    if isinstance(row, list) and len(row) >= 5:
        return row[0], row[1], row[2], row[3], row[4]
    return None


def _node_key(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _parse_rows(rows: Any) -> list[Link]:
    links: list[Link] = []
    for row in rows if isinstance(rows, list) else []:
        fields = _row_fields(row)
        if fields is None or not isinstance(fields[0], int) or isinstance(fields[0], bool):
            continue
        link_id, origin, origin_slot, target, target_slot = fields
        links.append(Link(link_id, _node_key(origin), _int(origin_slot), _node_key(target),
                          _int(target_slot)))
    return links


def _referenced_links(nodes: list[dict[str, Any]]) -> set[Any]:
    return {slot.get("link") for node in nodes for slot in _list(node.get("inputs"))
            if isinstance(slot, dict) and slot.get("link") is not None}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _settle_rows(rows: list[Link], nodes: list[dict[str, Any]]) -> tuple[list[Link],
                                                                          dict[int, int]]:
    """One link per input: rows into the same slot compete, the first wins unless a later one
    is named by a node input and it is not (``lib/litegraph/src/linkDeduplication.ts``,
    ``normalizeConfiguredTopology``). Rows that repeat a link id after the first are not
    registered (``stores/linkStore.ts``: a link id belongs to one row). Returns the rows kept and
    what each dropped id now stands for."""
    referenced = _referenced_links(nodes)
    kept: list[Link] = []
    by_target: dict[tuple[str, int], int] = {}
    replaced: dict[int, int] = {}
    for link in rows:
        key = (link.target_id, link.target_slot)
        index = by_target.get(key)
        if index is None:
            by_target[key] = len(kept)
            kept.append(link)
            continue
        survivor = kept[index]
        exact = (survivor.origin_id, survivor.origin_slot) == (link.origin_id, link.origin_slot)
        if not exact and link.id in referenced and survivor.id not in referenced:
            kept[index] = link
            for old, new in list(replaced.items()):
                if new == survivor.id:
                    replaced[old] = link.id
            replaced[survivor.id] = link.id
        else:
            replaced[link.id] = survivor.id
    unique: dict[int, Link] = {}
    for link in kept:
        unique.setdefault(link.id, link)
    return list(unique.values()), replaced


def make_graph(data: dict[str, Any], live_inputs: Callable[[dict[str, Any]], list[LiveInput]],
               definition: dict[str, Any] | None = None) -> Graph:
    """A :class:`Graph` of ``data`` (the root workflow or a subgraph definition).

    ``live_inputs(node)`` gives a node's input slots as the editor builds them (for a known node
    type: its definition's, then the saved ones the definition lacks); each saved input's link
    is moved to the live input of the same name (``linkDeduplication.ts``,
    ``realignInputLinkSlots``), and a row no input names stays on the slot it targets.
    """
    raw_nodes = [node for node in data.get("nodes") or [] if isinstance(node, dict)]
    nodes: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for node in raw_nodes:
        key = _node_key(node.get("id"))
        if key not in nodes:
            order.append(key)
        nodes.setdefault(key, node)
    rows, replaced = _settle_rows(_parse_rows(data.get("links")), raw_nodes)
    links = {link.id: link for link in rows}
    graph = Graph(nodes=nodes, order=order, links=links, definition=definition)
    if definition is not None:
        for end, default in (("inputNode", -10), ("outputNode", -20)):
            io_node = definition.get(end)
            key = _node_key(io_node.get("id", default) if isinstance(io_node, dict) else default)
            if end == "inputNode":
                graph.input_node_id = key
            else:
                graph.output_node_id = key
    for node_id in order:
        graph.inputs[node_id] = _connect(graph, node_id, live_inputs(nodes[node_id]), replaced)
    return graph


def _connect(graph: Graph, node_id: str, live: list[LiveInput],
             replaced: dict[int, int]) -> list[LiveInput]:
    """Put each link that targets ``node_id`` on its live input slot."""
    slot_of: dict[int, int] = {link.id: link.target_slot for link in graph.links.values()
                               if link.target_id == node_id}
    names: dict[int, list[str]] = {}
    for saved in _list(graph.nodes[node_id].get("inputs")):
        if not isinstance(saved, dict) or not isinstance(saved.get("link"), int):
            continue
        link_id = replaced.get(saved["link"], saved["link"])
        if link_id in slot_of:
            names.setdefault(link_id, []).append(str(saved.get("name")))
    skipped: set[int] = set()
    for _ in range(len(names) + 1):
        moved: dict[int, int] = {}
        for link_id, wanted in names.items():
            slots = [index for index, slot in enumerate(live) if slot.name in wanted]
            if link_id not in skipped and slots and slot_of[link_id] not in slots:
                moved[link_id] = slots[0]
        if not moved:
            break
        # moves are applied together; a link no live input names gives way where one lands
        unmatched = {link_id for link_id, wanted in names.items()
                     if not any(slot.name in wanted for slot in live)}
        removals = {link_id for link_id in unmatched if slot_of.get(link_id) in moved.values()}
        blocked = {link_id for link_id, destination in moved.items()
                   if any(slot == destination and other not in moved and other not in removals
                          for other, slot in slot_of.items())}
        if blocked:
            skipped |= blocked  # the editor refuses a move onto an occupied slot
            continue
        for link_id in removals:
            del slot_of[link_id]
        slot_of.update(moved)
    connected = [LiveInput(slot.name, slot.type, None, slot.widget) for slot in live]
    for link_id, slot in sorted(slot_of.items()):
        if 0 <= slot < len(connected) and connected[slot].link is None:
            connected[slot].link = graph.links[link_id]
    return connected


# -- subgraph definitions ---------------------------------------------------------------------


def hoist_subgraph_definitions(definitions: Any) -> list[dict[str, Any]]:
    """Every subgraph definition, those nested in another's ``definitions.subgraphs`` hoisted
    after it, the first of each id kept (``lib/litegraph/src/subgraph/subgraphDeduplication.ts``,
    ``flattenSubgraphDefinitions`` and ``normalizeSubgraphDefinitions``). Copies."""
    flat: list[dict[str, Any]] = []

    def visit(items: Any) -> None:
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            flat.append(item)
            nested = item.get("definitions")
            if isinstance(nested, dict):
                visit(nested.get("subgraphs"))

    visit(copy.deepcopy(definitions))
    seen: set[str] = set()
    unique = []
    for item in flat:
        if item["id"] not in seen:
            seen.add(item["id"])
            unique.append(item)
    return unique


def renumber_subgraph_nodes(root: dict[str, Any], subgraphs: list[dict[str, Any]]) -> None:
    """Give inner nodes whose id is already used (at the root, or earlier in any subgraph) the
    next free id after ``last_node_id``, in place, and follow the change in the subgraph's links,
    promoted widgets and the ``proxyWidgets`` of its instances
    (``subgraphDeduplication.ts``, ``deduplicateClonedSubgraphNodeIds``; the editor's setting
    ``Comfy.Graph.DeduplicateSubgraphNodeIds`` is on by default)."""
    used = {_node_key(node.get("id")) for node in root.get("nodes") or []
            if isinstance(node, dict)}
    numeric = {int(key) for key in used if _is_int_key(key)}
    last = _last_node_id(root)
    renumbered: dict[str, dict[str, int]] = {}
    for subgraph in subgraphs:
        seen_here: set[str] = set()
        kept_nodes = []
        for node in subgraph.get("nodes") or []:
            if not isinstance(node, dict):
                continue
            key = _node_key(node.get("id"))
            if key in seen_here:
                continue  # a repeated id inside one subgraph: the first is kept
            seen_here.add(key)
            kept_nodes.append(node)
            if key in used:
                last += 1
                while last in numeric:
                    last += 1
                renumbered.setdefault(subgraph["id"], {})[key] = last
                node["id"] = last
                used.add(str(last))
                numeric.add(last)
            else:
                used.add(key)
                if _is_int_key(key):
                    numeric.add(int(key))
                    last = max(last, int(key))
        subgraph["nodes"] = kept_nodes
        _follow_renumbering(subgraph, renumbered.get(subgraph["id"], {}))
    for node in [*(root.get("nodes") or []),
                 *(n for s in subgraphs for n in s.get("nodes") or [])]:
        if not isinstance(node, dict):
            continue
        mapping = renumbered.get(str(node.get("type")), {})
        properties = node.get("properties")
        proxies = properties.get("proxyWidgets") if isinstance(properties, dict) else None
        for entry in proxies if mapping and isinstance(proxies, list) else []:
            if isinstance(entry, list) and entry and _node_key(entry[0]) in mapping:
                entry[0] = str(mapping[_node_key(entry[0])])


def _follow_renumbering(subgraph: dict[str, Any], mapping: dict[str, int]) -> None:
    if not mapping:
        return
    for row in subgraph.get("links") or []:
        if isinstance(row, dict):
            for end in ("origin_id", "target_id"):
                if _node_key(row.get(end)) in mapping:
                    row[end] = mapping[_node_key(row.get(end))]
        elif isinstance(row, list) and len(row) >= 5:
            for index in (1, 3):
                if _node_key(row[index]) in mapping:
                    row[index] = mapping[_node_key(row[index])]
    for widget in subgraph.get("widgets") or []:
        if isinstance(widget, dict) and _node_key(widget.get("id")) in mapping:
            widget["id"] = mapping[_node_key(widget.get("id"))]


def _is_int_key(key: str) -> bool:
    return key.isascii() and key.lstrip("-").isdigit() and str(int(key)) == key


def _last_node_id(root: dict[str, Any]) -> int:
    """The root's ``last_node_id`` (``state.lastNodeId`` in the newer schema), 0 without one."""
    state = root.get("state")
    value = state.get("lastNodeId") if isinstance(state, dict) else root.get("last_node_id")
    number = _int(value, 0)
    return number if number >= 0 else 0

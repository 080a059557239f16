"""How a node is named and how an output file is keyed, the same way everywhere.

Owns: reading a node's title from an API-format workflow (``_meta.title``) and the names built on
it: :func:`stated_title` (the title as the workflow states it, for results and errors),
:func:`node_title` (the title, else the class type: parameters, the command line, recordings)
and :func:`node_label` (``Title (Class)``: progress panels); and :func:`file_key`, the
``(node_id, filename, subfolder, type)`` key that identifies an output file in results, the
result cache, the notebook views and recordings.

Must not: import anything from the package. The client, the workflow model, the result cache,
recordings and the notebook layer all import it, so it stays below every one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["FileKey", "file_key", "node_label", "node_title", "stated_title"]

#: ``(node_id, filename, subfolder, type)``: one output file of one run
FileKey = tuple[str, str, str, str]


class _KeyedFile(Protocol):
    """An output file as :class:`comfy_nb.result.OutputFile` describes it."""

    @property
    def node_id(self) -> str: ...

    @property
    def filename(self) -> str: ...

    @property
    def subfolder(self) -> str: ...

    @property
    def type(self) -> str: ...


def stated_title(node: Any) -> str | None:
    """The ``_meta.title`` of ``node`` (an API-format node) when it is a string, else None."""
    meta = node.get("_meta") if isinstance(node, Mapping) else None
    title = meta.get("title") if isinstance(meta, Mapping) else None
    return title if isinstance(title, str) else None


def node_title(node: Any) -> str:
    """The title of a node: ``_meta.title`` when set, else its class type ("" if neither)."""
    title = stated_title(node)
    if title:
        return title
    class_type = node.get("class_type") if isinstance(node, Mapping) else None
    return class_type if isinstance(class_type, str) else ""


def node_label(workflow: Mapping[str, Any] | None, node_id: str | None) -> str:
    """``Title (Class)`` of a node of ``workflow``, its class alone when the title is the class
    or missing, ``node <id>`` when the workflow does not say ("" without a node)."""
    if node_id is None:
        return ""
    node = workflow.get(node_id) if isinstance(workflow, Mapping) else None
    if not isinstance(node, Mapping):
        return f"node {node_id}"
    kind = str(node.get("class_type") or "")
    meta = node.get("_meta")
    title = meta.get("title") if isinstance(meta, Mapping) else None
    if title and title != kind:
        return f"{title} ({kind})" if kind else str(title)
    return kind or f"node {node_id}"


def file_key(file: _KeyedFile | Mapping[str, Any]) -> FileKey:
    """The key of an output file: an :class:`~comfy_nb.result.OutputFile`, or a mapping with
    the same four fields (as the result cache and recordings store a file)."""
    if isinstance(file, Mapping):
        return (str(file["node_id"]), str(file["filename"]), str(file["subfolder"]),
                str(file["type"]))
    return (file.node_id, file.filename, file.subfolder, file.type)

"""Which members of a pool can run a workflow: :func:`requirements` (what a workflow needs of a
server: its node classes, and the model files it names) and :func:`lacking` (what one member's
node definitions do not have); the pool raises :class:`~comfy_nb.errors.NoMemberCanRun` when no
member has everything. :func:`file_values` finds the files a workflow hands to its server (so a
workflow the pool prepares keeps them, to be uploaded where each of its jobs goes, and a job
moved to another member uploads them there); :func:`with_files` puts them back in a prompt.

A model file counts when a node's input names a file (``ckpt_name``, ``lora_name``,
``vae_name``...: an input ending in ``_name``) and the server lists its choices for it. A bundled
workflow's model files are fitted to each server when it is staged, so they are not required.
An editor-format workflow is converted by the member that runs it, with its own definitions;
its requirements are not read here (the member's own check reports what it lacks).

Must not: speak to a server; it reads workflows and node definitions it is given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Requirements", "file_values", "lacking", "requirements", "with_files"]


@dataclass(frozen=True)
class Requirements:
    """What a workflow needs of a server."""

    node_classes: frozenset[str] = frozenset()
    #: (class_type, input name, file name) of every model file the workflow names
    models: frozenset[tuple[str, str, str]] = field(default_factory=frozenset)


def requirements(workflow: Any, wanted: Mapping[str, Any]) -> Requirements:
    """What ``workflow`` with the parameters ``wanted`` set needs of a server. A workflow that
    cannot be read here (editor format, objects in it) gives what can be read of it, or
    nothing: the member's own staging checks and reports the rest."""
    from ..workflow import Workflow, WorkflowError

    api: Mapping[str, Any] | None = None
    bundled = False
    try:
        loaded = workflow.copy() if isinstance(workflow, Workflow) else Workflow.load(workflow)
    except (WorkflowError, TypeError, ValueError, OSError):
        if isinstance(workflow, Mapping):  # an API dict with Python objects in its inputs
            api = workflow
    else:
        bundled = bool(loaded.bundled)
        if loaded.format != "api":
            return Requirements()
        settable = {name: value for name, value in wanted.items()
                    if isinstance(value, (str, int, float, bool))}
        if settable:
            # a parameter that does not fit is reported by the member's own staging
            with contextlib.suppress(WorkflowError, ValueError, KeyError, TypeError):
                loaded.set(settable)
        api = loaded.to_api()
    if api is None:
        return Requirements()
    classes: set[str] = set()
    models: set[tuple[str, str, str]] = set()
    for node in api.values():
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
            continue
        class_type = node["class_type"]
        classes.add(class_type)
        inputs = node.get("inputs")
        if bundled or not isinstance(inputs, Mapping):
            continue
        for name, value in inputs.items():
            if isinstance(name, str) and name.endswith("_name") and isinstance(value, str):
                models.add((class_type, name, value))
    return Requirements(frozenset(classes), frozenset(models))


def lacking(needs: Requirements, object_info: Mapping[str, Any]) -> list[str]:
    """What a server with the node definitions ``object_info`` lacks of ``needs``, for people
    (empty: it can run the workflow)."""
    from ..workflow._params import combo_choices, input_specs

    missing = [f"node {name}" for name in sorted(needs.node_classes) if name not in object_info]
    for class_type, name, value in sorted(needs.models):
        if class_type not in object_info:
            continue
        spec = input_specs(object_info, class_type).get(name)
        choices = None if spec is None else combo_choices(spec)
        if choices is not None and value not in choices:
            missing.append(f"model {value} ({class_type}.{name})")
    return missing


def file_values(workflow: Any, wanted: Mapping[str, Any],
                object_info: Mapping[str, Any] | None) -> dict[tuple[str, str], Any]:
    """(node id, input name) -> the file (a local path, bytes, an image, a URL) ``workflow``
    with the parameters ``wanted`` set hands to each file input that takes an upload. What
    cannot be read here gives nothing: the member's own staging reports it."""
    from ..workflow import Workflow, WorkflowError
    from ..workflow._inputs import pending_uploads, wants_upload
    from ..workflow._params import resolve

    definitions = dict(object_info) if object_info is not None else None
    api: dict[str, Any] | None = None
    try:
        loaded = workflow.copy() if isinstance(workflow, Workflow) else Workflow.load(workflow)
        if loaded.format != "api":
            loaded = Workflow.load(loaded.to_api(definitions), object_info=definitions)
        texts = {name: value for name, value in wanted.items()
                 if isinstance(value, (str, int, float, bool))}
        if texts:
            loaded = Workflow.load(loaded, object_info=definitions).set(texts)
        api = loaded.to_api(definitions)
    except (WorkflowError, TypeError, ValueError, OSError, KeyError):
        if isinstance(workflow, dict):  # an API dict with Python objects in its inputs
            api = workflow
    if api is None:
        return {}
    found = {(node_id, name): value
             for node_id, name, value in pending_uploads(api, definitions)}
    for name, value in wanted.items():  # files given as parameters, not as text
        if not isinstance(value, str) and wants_upload(value, []):
            with contextlib.suppress(WorkflowError, KeyError):
                found[resolve(api, name, definitions)] = value
    return found


def with_files(prompt: Mapping[str, Any],
               files: Mapping[tuple[str, str], Any]) -> dict[str, Any]:
    """A copy of the API ``prompt`` with ``files`` (as :func:`file_values` gives them) in the
    inputs they name, instead of the names one server gave them."""
    changed = dict(prompt)
    for (node_id, name), value in files.items():
        node = changed.get(node_id)
        if isinstance(node, dict) and isinstance(node.get("inputs"), dict):
            changed[node_id] = {**node, "inputs": {**node["inputs"], name: value}}
    return changed

"""Which recorded run serves a run: the match key (the API workflow after overrides, titles left
out, each seed asked to be ``"random"`` as ``"random"``, each uploaded file as the SHA-256 of its
bytes), and, for a run that was not recorded, the closest recorded one and what differs.

Owns: the match form and key, the differences a :class:`~comfy_nb.errors.ReplayMismatch` names,
finding file inputs given as URLs. Must not: read or write files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._cache_keys import cache_key
from .._naming import node_title
from ..client._caching import UPLOAD_MARK
from ..errors import ComfyError

if TYPE_CHECKING:
    from ..client._staging import WorkflowLike
    from ._reading import RecordedRun

KEY_SPACE = "comfy_nb-replay"  # the "server" of cache_key: a recording serves any server's runs
MAX_DIFFERENCES = 8  # differences a ReplayMismatch lists


def split_path(path: str) -> tuple[str, str]:
    """``"3.seed"`` as ``("3", "seed")`` (node ids may hold dots, input names do not)."""
    node, _, name = path.rpartition(".")
    return node, name


def match_form(workflow: Mapping[str, Any], inputs: Mapping[str, str],
               random: Iterable[str]) -> dict[str, Any]:
    """``workflow`` as the match key sees it: no titles, each uploaded file input as
    ``sha256:<digest>`` of its bytes, each seed drawn at random as ``"random"``."""
    form: dict[str, Any] = {}
    for node_id, node in workflow.items():
        if isinstance(node, Mapping) and isinstance(node.get("inputs"), Mapping):
            form[str(node_id)] = {**{k: v for k, v in node.items() if k != "_meta"},
                                  "inputs": dict(node["inputs"])}
        else:
            form[str(node_id)] = node
    for changes in ({path: "sha256:" + digest for path, digest in inputs.items()},
                    dict.fromkeys(random, "random")):
        for path, value in changes.items():
            node_id, name = split_path(path)
            node = form.get(node_id)
            if isinstance(node, dict) and isinstance(node.get("inputs"), dict):
                node["inputs"][name] = value
    return form


def match_key(form: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
    return cache_key(KEY_SPACE, form, inputs)


def _describe(value: Any) -> str:
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
        return f"link from node {value[0]}"
    if isinstance(value, str) and value.startswith("sha256:"):
        return f"a file with sha256 {value[7:19]}…"
    if isinstance(value, str) and value.startswith(UPLOAD_MARK):
        return f"a file with sha256 {value[len(UPLOAD_MARK):][:12]}…"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "…"


def _node_label(node_id: str, node: Any, labels: dict[str, int]) -> str:
    name = node_title(node) or node_id
    return name if labels.get(name, 0) <= 1 else f"{name} (node {node_id})"


def what_differs(now: dict[str, Any], titled: dict[str, Any],
                 then: dict[str, Any]) -> list[str]:
    """What differs between the match forms ``then`` (recorded) and ``now``, named by the
    titles of ``titled`` (the workflow as submitted now)."""
    counts: dict[str, int] = {}
    for node_id in now:
        label = _node_label(node_id, titled.get(node_id), {})
        counts[label] = counts.get(label, 0) + 1
    found = []
    for node_id in sorted(set(now) | set(then), key=lambda n: (len(n), n)):
        mine, theirs = now.get(node_id), then.get(node_id)
        label = _node_label(node_id, titled.get(node_id) or theirs, counts)
        if theirs is None:
            found.append(f"{label}: a node not in the recorded run")
            continue
        if mine is None:
            found.append(f"node {node_id} ({theirs.get('class_type')}): recorded, not in this "
                         "run")
            continue
        if mine.get("class_type") != theirs.get("class_type"):
            found.append(f"node {node_id}: recorded {theirs.get('class_type')}, now "
                         f"{mine.get('class_type')}")
            continue
        new, old = mine.get("inputs") or {}, theirs.get("inputs") or {}
        for name in sorted(set(new) | set(old)):
            if name not in old:
                found.append(f"{label}.{name}: not recorded, now {_describe(new[name])}")
            elif name not in new:
                found.append(f"{label}.{name}: recorded {_describe(old[name])}, now absent")
            elif new[name] != old[name]:
                found.append(f"{label}.{name}: recorded {_describe(old[name])}, now "
                             f"{_describe(new[name])}")
    return found


def closest_run(form: dict[str, Any], runs: list[RecordedRun]) -> RecordedRun | None:
    """The recorded run most like ``form``: most nodes of the same id and class first, then
    fewest differing inputs; the latest of equals."""
    def score(run: RecordedRun) -> tuple[int, int]:
        same = sum(1 for node_id, node in form.items()
                   if isinstance(node, dict) and isinstance(run.form.get(node_id), dict)
                   and run.form[node_id].get("class_type") == node.get("class_type"))
        structure = len(form) + len(run.form) - 2 * same
        inputs = sum(_differing_inputs(node, run.form[node_id])
                     for node_id, node in form.items()
                     if isinstance(node, dict) and isinstance(run.form.get(node_id), dict))
        return structure, inputs

    best: RecordedRun | None = None
    best_score: tuple[int, int] | None = None
    for run in runs:
        current = score(run)
        if best_score is None or current <= best_score:
            best, best_score = run, current
    return best


def _differing_inputs(node: dict[str, Any], other: dict[str, Any]) -> int:
    """How many inputs of two nodes differ (present in one only, or with other values)."""
    mine, theirs = node.get("inputs"), other.get("inputs")
    mine = mine if isinstance(mine, dict) else {}
    theirs = theirs if isinstance(theirs, dict) else {}
    return sum(1 for name in set(mine) | set(theirs)
               if name not in mine or name not in theirs or mine[name] != theirs[name])


def url_inputs(workflow: WorkflowLike, wanted: Mapping[str, Any],
               object_info: Mapping[str, Any] | None) -> list[str]:
    """File inputs given as http(s) URLs: replaying them would mean downloading them."""
    from ..workflow import Workflow
    from ..workflow._inputs import FILE_INPUTS, file_inputs

    def is_url(value: Any) -> bool:
        return isinstance(value, str) and value.lower().startswith(("http://", "https://"))

    files = dict(FILE_INPUTS)  # what _stage uses before the node definitions, and with them
    for class_type, found_names in file_inputs(object_info or {}).items():
        files[class_type] = (*files.get(class_type, ()), *found_names)
    names = {name for found in files.values() for name in found}
    found = [name for name, value in wanted.items()
             if is_url(value) and split_path(name)[1] in names]
    api: Any = workflow
    if isinstance(workflow, (Workflow, str, os.PathLike)):
        try:
            source = Path(os.fspath(workflow)) if isinstance(workflow, os.PathLike) else workflow
            loaded = Workflow.load(source)
            api = loaded.to_api() if loaded.format == "api" else {}
        except ComfyError:
            api = {}
    if isinstance(api, Mapping):
        for node_id, node in api.items():
            inputs = node.get("inputs") if isinstance(node, Mapping) else None
            if isinstance(inputs, Mapping):
                found += [f"{node_id}.{name}" for name, value in inputs.items()
                          if is_url(value) and name in files.get(str(node.get("class_type")), ())]
    return found


def input_value(workflow: Mapping[str, Any], path: str) -> Any:
    node_id, name = split_path(path)
    node = workflow.get(node_id)
    inputs = node.get("inputs") if isinstance(node, Mapping) else None
    return inputs.get(name) if isinstance(inputs, Mapping) else None

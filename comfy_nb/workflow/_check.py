"""Client-side validation of an API-format workflow before it is submitted.

:func:`check_workflow` reaches the verdicts the server would (ComfyUI 0.3.64's ``POST /prompt``:
the same error ``type`` on the same node) by running ComfyUI's own rules,
:func:`comfy_nb._comfyui.validation.validate_prompt` (the emulator follows them too), on a copy of
the workflow. What the client cannot see, the files in the server's input folder, is judged from
the ``object_info`` combo lists (the server lists that folder in them). On top of the server's
answer it reports:

- every unknown node class at once (the server stops at the first), with close class names;
- ``dependency_cycle`` for links that loop (the server only fails when it runs them);
- close names (``suggestions``) for a model or file name that is not in its list;
- one ``invalid_prompt`` problem, saying what to do, for what the server crashes on with a 500
  (a list, text, an editor/UI-format workflow).

Values that :func:`~comfy_nb.workflow._inputs.upload_inputs` will upload (a PIL image, an array,
a local path, a URL) count as files that will be on the server.

:func:`validate_workflow` raises :class:`WorkflowInvalid` with every problem at once. Neither
function raises anything but :class:`WorkflowError` (or its subclass), whatever ``api`` holds.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping
from typing import Any

from .._comfyui.validation import FILE_CHECKS, validate_prompt
from ..errors import Problem, WorkflowError, WorkflowInvalid
from ._inputs import pending_uploads
from ._params import combo_choices, input_specs

__all__ = ["Problem", "WorkflowInvalid", "check_workflow", "validate_workflow"]

_CONVERT_HINT = (
    "this is an editor (UI-format) workflow with 'nodes' and 'links'; convert it first with "
    "Workflow.load(...).to_api(object_info), or export it from ComfyUI with "
    "'Export (API)'"
)
_API_SHAPE = "an API-format workflow is a dict {node_id: {'class_type': ..., 'inputs': {...}}}"
_RECURSION = "maximum recursion depth exceeded"
# Annotations ComfyUI accepts after a file name ("name.png [output]").
_ANNOTATIONS = {"[input]": "input", "[output]": "output", "[temp]": "temp"}


def check_workflow(
    api: Any,
    object_info: dict[str, Any],
    *,
    partial_execution_targets: Iterable[str] | None = None,
    known_files: Iterable[str] = (),
) -> list[Problem]:
    """Every problem the server would find in ``api`` (plus cycles), or ``[]`` when it is valid.

    ``object_info`` is the server's (``client.object_info()``); its combo lists stand for the
    server's files, and ``known_files`` adds names known to be there although the (cached)
    lists predate them, such as the names :func:`upload_inputs` just uploaded.
    ``partial_execution_targets`` limits the outputs checked, as in ``POST /prompt``.
    Raises :class:`WorkflowError` only when ``object_info`` is not a dict."""
    if not isinstance(object_info, Mapping):
        raise WorkflowError(
            "object_info must be the server's node definitions (a dict from "
            f"client.object_info()), not {type(object_info).__name__}"
        )
    try:
        known = frozenset(name for name in known_files if isinstance(name, str))
        return _check(api, object_info, partial_execution_targets, known)
    except WorkflowError:
        raise
    except Exception as exc:  # a last resort: the checks above should catch every shape
        return [
            _workflow_problem(
                f"the workflow could not be checked: {type(exc).__name__}: {exc}; {_API_SHAPE}"
            )
        ]


def validate_workflow(
    api: Any,
    object_info: dict[str, Any],
    *,
    partial_execution_targets: Iterable[str] | None = None,
    known_files: Iterable[str] = (),
) -> None:
    """Raise :class:`WorkflowInvalid` listing every problem of ``api``; return if it is valid.
    The arguments are those of :func:`check_workflow`."""
    problems = check_workflow(
        api,
        object_info,
        partial_execution_targets=partial_execution_targets,
        known_files=known_files,
    )
    if problems:
        raise WorkflowInvalid(problems)


# --------------------------------------------------------------------------------------------


def _check(
    api: Any,
    object_info: Mapping[str, Any],
    targets: Iterable[str] | None,
    known: frozenset[str],
) -> list[Problem]:
    shape = _shape_problems(api)
    if shape:
        return shape
    assert isinstance(api, Mapping)
    nodes = _node_problems(api, object_info)
    if nodes:
        return nodes

    target_list: list[str] | None = None
    if targets is not None:
        if isinstance(targets, (str, bytes)) or not isinstance(targets, Iterable):
            return [
                _workflow_problem("partial_execution_targets must be a list of output node ids")
            ]
        target_list = [str(target) for target in targets]

    cycles = _cycle_problems(api, object_info, target_list)
    # validate_prompt coerces literals in place: it gets its own copy of every inputs dict.
    prompt = {
        node_id: {**node, "inputs": dict(node["inputs"])}
        if isinstance(node.get("inputs"), dict)
        else dict(node)
        for node_id, node in api.items()
    }
    # Values upload_inputs will upload (images, arrays, local paths, URLs) stand for files that
    # will be on the server: a placeholder name that counts as existing.
    for node_id, name, _ in pending_uploads(prompt, dict(object_info)):
        key = next(k for k in prompt if str(k) == node_id)
        placeholder = f"<upload of node {node_id} input {name}>"
        prompt[key]["inputs"][name] = placeholder
        known = known | {placeholder}
    try:
        outcome = validate_prompt(
            prompt,
            dict(object_info),
            partial_execution_targets=target_list,
            file_exists=lambda class_type, name: (
                name in known or _file_listed(object_info, class_type, name)
            ),
        )
    except Exception as exc:  # the server answers these with a 500
        return [
            _workflow_problem(
                f"the server could not read this workflow ({type(exc).__name__}: {exc}); "
                + _API_SHAPE
            )
        ]

    problems: list[Problem] = []
    for node_id, entry in outcome.node_errors.items():
        class_type = entry.get("class_type")
        for error in entry.get("errors", []):
            if cycles and _RECURSION in str(error.get("details", "")):
                continue  # the cycle, reported below as such
            problems.append(_node_problem(api, object_info, str(node_id), class_type, error))
    error = outcome.error
    if error is not None and (
        error.get("type") != "prompt_outputs_failed_validation" or not (problems or cycles)
    ):
        problems.insert(0, _top_problem(error))
    return problems + cycles


def _workflow_problem(message: str, kind: str = "invalid_prompt") -> Problem:
    """A problem of the workflow as a whole (no node, no input)."""
    return Problem(None, None, None, kind, message)


def _shape_problems(api: Any) -> list[Problem]:
    """What is not a dict of nodes at all (the server's ``no_prompt`` and 500 crashes)."""
    if api is None:
        return [
            _workflow_problem(
                "no workflow was given: pass the API-format workflow itself; " + _API_SHAPE,
                kind="no_prompt",
            )
        ]
    if isinstance(api, (str, bytes, bytearray)):
        return [
            _workflow_problem(
                "the workflow is text, not a dict: parse it first (json.loads, or "
                "Workflow.load(path))"
            )
        ]
    if isinstance(api, list):
        return [_workflow_problem("the workflow is a list, not a dict; " + _API_SHAPE)]
    if not isinstance(api, Mapping):
        return [
            _workflow_problem(f"the workflow is a {type(api).__name__}, not a dict; " + _API_SHAPE)
        ]
    if isinstance(api.get("nodes"), list) and ("links" in api or "last_node_id" in api):
        return [_workflow_problem(_CONVERT_HINT)]
    body = api.get("prompt")
    if isinstance(body, Mapping) and "class_type" not in body:
        return [
            _workflow_problem(
                "this looks like a whole POST /prompt body: pass its 'prompt' value, the "
                "workflow itself"
            )
        ]
    return []


def _invalid_node(node_id: Any, message: str, class_type: str | None = None,
                  suggestions: tuple[str, ...] = ()) -> Problem:
    """An ``invalid_prompt`` problem of one node, located as the server does."""
    return Problem(str(node_id), class_type, None, "invalid_prompt", message,
                   f"Node ID '#{node_id}'", suggestions)


def _node_problems(api: Mapping[Any, Any], object_info: Mapping[str, Any]) -> list[Problem]:
    """Nodes without a class, and every unknown class (the server reports only the first)."""
    problems: list[Problem] = []
    for node_id, node in api.items():
        problem = functools.partial(_invalid_node, node_id)
        if not isinstance(node, Mapping):
            problems.append(problem(f"node {node_id} is a {type(node).__name__}, not "
                                    "{'class_type': ..., 'inputs': {...}}"))
        elif "class_type" not in node:
            problems.append(_missing_class_problem(node_id, node))
        elif not isinstance(node["class_type"], str):
            problems.append(problem(f"the class_type of node {node_id} is not a string: "
                                    f"{node['class_type']!r}"))
        elif node["class_type"] not in object_info:
            class_type = node["class_type"]
            problems.append(problem(
                f"Cannot execute because node {class_type} does not exist.", class_type,
                tuple(difflib.get_close_matches(class_type, list(object_info), n=3))))
    return problems


def _missing_class_problem(node_id: Any, node: Mapping[str, Any]) -> Problem:
    """A node without ``class_type``: what the editor sends for a node whose type the server
    does not have (a custom node that is not installed), so the message says so."""
    meta = node.get("_meta")
    title = meta.get("title") if isinstance(meta, Mapping) else None
    named = f"node {node_id}" + (f" ({title!r})" if isinstance(title, str) and title else "")
    return Problem(
        str(node_id), None, None, "invalid_prompt",
        "Cannot execute because a node is missing the class_type property.",
        f"Node ID '#{node_id}'",
        title=title if isinstance(title, str) else None,
        explanation=(f"{named} has no class_type: the server has no such node type (the editor "
                     "sends a node whose type it does not know without one); install the "
                     "custom nodes that provide it, or remove the node"))


def _top_problem(error: Mapping[str, Any]) -> Problem:
    explanation = ""
    if error.get("type") == "prompt_no_outputs":
        explanation = ("add an output node such as SaveImage or PreviewImage, or check "
                       "partial_execution_targets")
    return Problem(None, None, None, str(error.get("type")), str(error.get("message", "")),
                   str(error.get("details", "")), explanation=explanation)


def _node_problem(
    api: Mapping[Any, Any],
    object_info: Mapping[str, Any],
    node_id: str,
    class_type: Any,
    error: Mapping[str, Any],
) -> Problem:
    kind = str(error.get("type", ""))
    extra = error.get("extra_info") or {}
    # An inner node's error names the input of the node that links to it, not one of its own:
    # its own input at fault is found below.
    input_name = extra.get("input_name") if kind != "exception_during_inner_validation" else None
    message = str(error.get("message", ""))
    details = str(error.get("details", ""))
    explanation = ""
    suggestions: tuple[str, ...] = ()
    node = _node(api, node_id)
    if kind in ("value_not_in_list", "custom_validation_failed") and isinstance(input_name, str):
        value = extra.get("received_value", node.get("inputs", {}).get(input_name))
        options = _combo_options(object_info, class_type, input_name)
        if options and isinstance(value, str):
            choices = [option for option in options if isinstance(option, str)]
            suggestions = tuple(difflib.get_close_matches(value, choices, n=3, cutoff=0.6))
    if kind in ("exception_during_validation", "exception_during_inner_validation"):
        explained = _explain_exception(api, object_info, node, class_type, details)
        if explained is not None:
            input_name, explanation = explained
    meta = node.get("_meta")
    title = meta.get("title") if isinstance(meta, Mapping) else None
    return Problem(
        node_id,
        class_type if isinstance(class_type, str) else None,
        input_name if isinstance(input_name, str) else None,
        kind,
        message,
        details,
        suggestions,
        title=title if isinstance(title, str) else None,
        allowed=_allowed(object_info, class_type, input_name),
        explanation=explanation,
    )


_SHOWN_CHOICES = 4


def _allowed(object_info: Mapping[str, Any], class_type: Any, name: Any) -> str:
    """What an input accepts, in a few words: ``0 … 100 (step 1)`` or the first choices."""
    if not isinstance(name, str):
        return ""
    options = _combo_options(object_info, class_type, name)
    if options is not None:
        shown = ", ".join(repr(option) for option in options[:_SHOWN_CHOICES])
        more = len(options) - _SHOWN_CHOICES
        return (shown + (f", … {more} more" if more > 0 else "")) if options else "(empty list)"
    info = object_info.get(class_type) if isinstance(class_type, str) else None
    inputs = info.get("input") if isinstance(info, Mapping) else None
    for category in ("required", "optional"):
        section = inputs.get(category) if isinstance(inputs, Mapping) else None
        spec = section.get(name) if isinstance(section, Mapping) else None
        if isinstance(spec, list) and len(spec) > 1 and isinstance(spec[1], Mapping):
            low, high, step = spec[1].get("min"), spec[1].get("max"), spec[1].get("step")
            if low is None and high is None:
                return str(spec[0]) if isinstance(spec[0], str) else ""
            text = f"{'' if low is None else low} … {'' if high is None else high}".strip()
            return text + (f" (step {step})" if step is not None else "")
        if isinstance(spec, list) and spec and isinstance(spec[0], str):
            return spec[0]
    return ""


def _node(api: Mapping[Any, Any], node_id: str) -> Mapping[str, Any]:
    node = api.get(node_id)
    if node is None:
        for key, value in api.items():
            if str(key) == node_id:
                node = value
    if not isinstance(node, Mapping):
        return {}
    if not isinstance(node.get("inputs", {}), Mapping):
        return {k: v for k, v in node.items() if k != "inputs"}
    return node


def _explain_exception(
    api: Mapping[Any, Any],
    object_info: Mapping[str, Any],
    node: Mapping[str, Any],
    class_type: Any,
    details: str,
) -> tuple[str | None, str] | None:
    """The input at fault (None: the node itself) and plain words for the server's exception
    while validating ``node``: no ``inputs``, a link to a node that is not in the workflow, or
    a link to an output its node does not have. None when none of these is the cause."""
    if "inputs" not in node:
        return None, "the node has no 'inputs' object"
    faults = list(_link_faults(api, object_info, node, class_type))
    # The server names the missing node it tripped on first: prefer that link.
    for name, reason, raised in faults:
        if raised == details:
            return name, reason
    return (faults[0][0], faults[0][1]) if faults else None


def _link_faults(
    api: Mapping[Any, Any], object_info: Mapping[str, Any], node: Mapping[str, Any],
    class_type: Any,
) -> Iterable[tuple[str, str, str | None]]:
    """(input, reason, the server's exception text when it is known) for each link of ``node``
    to a node that is not in the workflow or to an output its node does not have."""
    for name, value in node["inputs"].items():
        if not isinstance(value, list) or len(value) != 2:
            continue
        source, index = value
        if not isinstance(source, (str, int, float)):
            continue
        where = f"{class_type}.{name}" if isinstance(class_type, str) else f"input {name!r}"
        if source not in api:
            yield (name, f"{where} links to node {source}, which is not in the workflow",
                   str(KeyError(source)))
            continue
        source_node = api[source]
        if not isinstance(source_node, Mapping):
            continue
        source_info = object_info.get(str(source_node.get("class_type")))
        if not isinstance(source_info, Mapping):
            continue
        outputs = source_info.get("output", [])
        if not isinstance(outputs, list):
            continue
        if not isinstance(index, int) or not 0 <= index < len(outputs):
            count = len(outputs)
            yield (name, f"{where} links to output {index!r} of node {source} "
                   f"({source_node.get('class_type')}), which has {count} "
                   f"output{'s' if count != 1 else ''}", None)


def _combo_options(object_info: Mapping[str, Any], class_type: Any, name: str) -> list[Any] | None:
    """The allowed values of a combo input, or None when the input is not a combo with a list."""
    if not isinstance(class_type, str):
        return None
    spec = input_specs(object_info, class_type).get(name)
    return None if spec is None else combo_choices(spec)


def _file_listed(object_info: Mapping[str, Any], class_type: str, name: str) -> bool:
    """Whether a Load* node's file exists on the server, as far as the client can tell: a name
    in the input's combo list does; a name not in a list the server gave does not. Files the
    lists cannot show (``[output]`` / ``[temp]`` files, subfolders, inputs without a list) are
    given the benefit of the doubt: the server checks them."""
    validator = FILE_CHECKS.get(class_type)
    if validator is None:
        return True
    options = _combo_options(object_info, class_type, validator.argument)
    base, folder = name, "input"
    for annotation, kind in _ANNOTATIONS.items():
        if name.endswith(annotation):
            base, folder = name[: -len(annotation)].rstrip(), kind
            break
    if options is None or folder != "input" or "/" in base or "\\" in base:
        return True
    return name in options or base in options


def _cycle_problems(
    api: Mapping[Any, Any], object_info: Mapping[str, Any], targets: list[str] | None
) -> list[Problem]:
    """``dependency_cycle`` for each loop of links upstream of an output that will run."""
    edges: dict[Any, list[Any]] = {}
    for node_id, node in api.items():
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        sources: list[Any] = []
        if isinstance(inputs, Mapping):
            for value in inputs.values():
                if (
                    isinstance(value, list)
                    and len(value) == 2
                    and isinstance(value[0], str)
                    and value[0] in api
                ):
                    sources.append(value[0])
        edges[node_id] = sources

    outputs = [
        node_id
        for node_id, node in api.items()
        if isinstance(node, Mapping)
        and isinstance(object_info.get(node.get("class_type", "")), Mapping)
        and object_info[node["class_type"]].get("output_node") is True
        and (targets is None or node_id in targets)
    ]
    upstream: set[Any] = set()
    stack = list(outputs)
    while stack:
        current = stack.pop()
        if current in upstream:
            continue
        upstream.add(current)
        stack.extend(edges.get(current, []))

    problems: list[Problem] = []
    position = {node_id: index for index, node_id in enumerate(api)}
    for component in _strongly_connected(edges):
        looped = len(component) > 1 or component[0] in edges.get(component[0], [])
        if not looped or not upstream.intersection(component):
            continue
        order = sorted(component, key=position.__getitem__)
        first = order[0]
        path = " → ".join(str(n) for n in [*order, first])
        node = api[first]
        problems.append(
            Problem(
                str(first),
                node.get("class_type") if isinstance(node.get("class_type"), str) else None,
                None,
                "dependency_cycle",
                "Dependency cycle detected",
                f"nodes {path} link into each other in a loop; break one of these links",
            )
        )
    return problems


def _strongly_connected(edges: Mapping[Any, list[Any]]) -> list[list[Any]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: dict[Any, int] = {}
    low: dict[Any, int] = {}
    on_stack: set[Any] = set()
    stack: list[Any] = []
    components: list[list[Any]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work: list[tuple[Any, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = edges.get(node, [])
            recursed = False
            while position < len(successors):
                successor = successors[position]
                position += 1
                if successor not in index:
                    work.append((node, position))
                    work.append((successor, 0))
                    recursed = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if recursed:
                continue
            if low[node] == index[node]:
                component: list[Any] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components

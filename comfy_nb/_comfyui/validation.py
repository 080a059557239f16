"""ComfyUI 0.3.64's prompt validation: the checks behind ``POST /prompt``, with its messages.

Owns the ``validate_prompt`` / ``validate_inputs`` algorithm of ComfyUI's ``execution.py``,
re-implemented against ``object_info`` (the description of node classes both the emulator and a
client have): which nodes are outputs, per-input checks, link checks, the file checks of the
Load* nodes (:data:`FILE_CHECKS`), the per-node result cache, ``node_errors`` with
``dependent_outputs`` and the top-level ``error``.

It must not run nodes, queue anything or speak HTTP, and it does not invent what it cannot know:
where ComfyUI reports the traceback of an exception raised while validating, it records the
:class:`Step` s the exception went through and lets the caller's ``format_traceback`` turn them
into lines (the emulator rebuilds ComfyUI's frames; without one the traceback is empty).

Like ComfyUI, validation coerces INT / FLOAT / STRING / BOOLEAN literals and unwraps
``{"__value__": ...}`` *in place* in the prompt it is given, so the queued prompt (and later the
history) holds the coerced values. Pass a copy if that is not wanted.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import os
import pathlib
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "FILE_CHECKS",
    "FileCheck",
    "PromptValidation",
    "Site",
    "Step",
    "types_compatible",
    "validate_prompt",
]


@dataclass(frozen=True)
class PromptValidation:
    """The outcome of :func:`validate_prompt`.

    ``ok`` means at least one output node validated: ComfyUI answers
    ``200 {"prompt_id", "number", "node_errors"}`` and queues ``outputs_to_execute``. Otherwise it
    answers ``400 {"error": error, "node_errors": node_errors}``.
    """

    ok: bool
    error: dict[str, Any] | None
    outputs_to_execute: list[str]
    node_errors: dict[str, Any]


# --------------------------------------------------------------------------------------------
# Where an exception raised while validating went. ComfyUI reports ``traceback.format_tb`` of
# it; what can be known without ComfyUI's files is the path through its code, named here.


class Site(enum.Enum):
    """A place in ComfyUI 0.3.64's code that an exception raised while validating passes through:
    a call (outermost first) or the statement that raised."""

    PROMPT_VALIDATES_OUTPUT = "validate_prompt: validate_inputs(prompt_id, prompt, o, validated)"
    INPUTS_VALIDATE_LINKED = "validate_inputs: validate_inputs(prompt_id, prompt, o_id, ...)"
    READ_INPUTS = "validate_inputs: inputs = prompt[unique_id]['inputs']"
    READ_LINKED_CLASS = "validate_inputs: o_class_type = prompt[o_id]['class_type']"
    READ_LINKED_OUTPUT_TYPE = "validate_inputs: received_type = r[val[1]]"
    TEST_INPUT_PRESENT = "validate_inputs: if x not in inputs"
    READ_INPUT_VALUE = "validate_inputs: val = inputs[x]"
    COMPARE_MIN = 'validate_inputs: val < extra_info["min"]'
    COMPARE_MAX = 'validate_inputs: val > extra_info["max"]'
    TEST_IN_COMBO = "validate_inputs: if val not in combo_options"
    GATHER_INPUT_DATA = "validate_inputs: get_input_data(inputs, obj_class, unique_id)"
    CALL_NODE_VALIDATION = "validate_inputs: _async_map_node_over_list(... validate ...)"
    NODE_VALIDATION_BODY = "the node's own validation: exists_annotated_filepath(...)"
    ANNOTATED_FILEPATH = "folder_paths.exists_annotated_filepath: annotated_filepath(name)"


class Step(NamedTuple):
    """One :class:`Site` an exception went through; ``check`` names the node's own validation
    for :attr:`Site.NODE_VALIDATION_BODY`."""

    site: Site
    check: FileCheck | None = None


_STEPS_ATTR = "_comfy_nb_validation_steps"


def _through(exc: BaseException, *steps: Step) -> BaseException:
    """Record that ``exc`` went through ``steps`` (outermost first) before reaching the caller."""
    known: list[Step] = getattr(exc, _STEPS_ATTR, [])
    setattr(exc, _STEPS_ATTR, [*steps, *known])
    return exc


def _steps(exc: BaseException, caller: Site) -> list[Step]:
    known: list[Step] = getattr(exc, _STEPS_ATTR, [])
    return [Step(caller), *known]


def _no_traceback(steps: Sequence[Step]) -> list[str]:
    return []


def _exception_type(exc: BaseException) -> str:
    """ComfyUI's ``full_type_name``: builtins by qualname, others with their module."""
    klass = type(exc)
    if klass.__module__ == "builtins":
        return klass.__qualname__
    return f"{klass.__module__}.{klass.__qualname__}"


# --------------------------------------------------------------------------------------------
# Custom validation (VALIDATE_INPUTS / validate_inputs) of the core nodes that have one.


@dataclass(frozen=True)
class _Folders:
    """Where annotated file names (``name [input]``, ``[output]``, ``[temp]``) resolve.

    Output and temp are taken to be siblings of the input folder, ComfyUI's default layout."""

    input: str
    output: str
    temp: str
    # When set, decides whether an (annotated) file name exists instead of the folders: a
    # client that cannot see the server's folders judges from the combo lists.
    exists: Callable[[str], bool] | None = None


def _exists_annotated(name: Any, folders: _Folders) -> bool:
    """``folder_paths.exists_annotated_filepath``, with its failure modes (a non-string name
    raises AttributeError, as in ComfyUI)."""
    annotated = name
    try:
        if name.endswith("[output]"):
            base, name = folders.output, name[:-9]
        elif name.endswith("[input]"):
            base, name = folders.input, name[:-8]
        elif name.endswith("[temp]"):
            base, name = folders.temp, name[:-7]
        else:
            base = folders.input
    except Exception as exc:
        raise _through(exc, Step(Site.ANNOTATED_FILEPATH)) from None
    if folders.exists is not None:
        return folders.exists(annotated)
    return os.path.exists(os.path.join(base, name))


@dataclass(frozen=True)
class FileCheck:
    """A node class's own validation function, reduced to what ComfyUI needs to know: the one
    input it checks names a file that must exist."""

    function: str  # its qualified name, as the TypeError raised when its argument is missing
    argument: str  # the one input it takes; that input skips min / max / combo checks
    message: str  # returned (formatted with the value) when the file does not exist

    def __call__(self, values: dict[str, Any], folders: _Folders) -> Any:
        if self.argument not in values:
            raise _through(
                TypeError(
                    f"{self.function}() missing 1 required positional argument: '{self.argument}'"
                ),
                Step(Site.CALL_NODE_VALIDATION),
            )
        value = values[self.argument]
        try:
            exists = _exists_annotated(value, folders)
        except Exception as exc:
            raise _through(
                exc, Step(Site.CALL_NODE_VALIDATION), Step(Site.NODE_VALIDATION_BODY, self)
            ) from None
        if not exists:
            return self.message.format(value)
        return True


_LOAD_IMAGE = FileCheck("LoadImage.VALIDATE_INPUTS", "image", "Invalid image file: {}")
FILE_CHECKS: Mapping[str, FileCheck] = types.MappingProxyType({
    "LoadImage": _LOAD_IMAGE,
    "LoadImageOutput": _LOAD_IMAGE,  # a LoadImage subclass; inherits VALIDATE_INPUTS
    "WebcamCapture": _LOAD_IMAGE,  # likewise
    "LoadImageMask": FileCheck(
        "LoadImageMask.VALIDATE_INPUTS", "image", "Invalid image file: {}"
    ),
    "LoadLatent": FileCheck("LoadLatent.VALIDATE_INPUTS", "latent", "Invalid latent file: {}"),
    "LoadAudio": FileCheck("LoadAudio.VALIDATE_INPUTS", "audio", "Invalid audio file: {}"),
    "LoadVideo": FileCheck("LoadVideo.validate_inputs", "file", "Invalid video file: {}"),
})
"""The core node classes with their own validation, by class type: each checks one input that
names a file in the server's folders."""


# --------------------------------------------------------------------------------------------
# Node classes as object_info describes them.


def _is_v3_class(info: dict[str, Any]) -> bool:
    """v3 (schema) nodes always carry all three flags in object_info; legacy nodes only carry
    the ones they set. v3 RETURN_TYPES is a list, legacy ones a tuple (it shows in messages)."""
    return all(key in info for key in ("deprecated", "experimental", "api_node"))


def _return_types(info: dict[str, Any]) -> list[Any] | tuple[Any, ...]:
    outputs = info.get("output", [])
    return list(outputs) if _is_v3_class(info) else tuple(outputs)


def _input_info(class_inputs: dict[str, Any], name: str) -> tuple[Any, str | None, Any]:
    """``get_input_info``: (type, category, options dict) of one declared input."""
    for category in ("required", "optional", "hidden"):
        section = class_inputs.get(category)
        if section is not None and name in section:
            spec = section[name]
            extra = spec[1] if len(spec) > 1 else {}
            return spec[0], category, extra
    return None, None, None


def _declared_inputs(class_inputs: dict[str, Any]) -> list[str]:
    """The required and optional input names. ComfyUI iterates a ``set`` of them, whose order
    varies from run to run; the declared order (required first) is used here."""
    names: list[str] = []
    for category in ("required", "optional"):
        for name in class_inputs.get(category, {}):
            if name not in names:
                names.append(name)
    return names


def types_compatible(received: Any, expected: Any) -> bool:
    """``validate_node_input`` as it behaves in 0.3.64 with the core nodes' type objects: equal
    types match; ``*`` matches anything (ComfyUI's IO / v3 type strings override ``__ne__``);
    comma-separated types match when they share one type."""
    if received == expected or received == "*" or expected == "*":
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    received_set = {part.strip() for part in received.split(",")}
    expected_set = {part.strip() for part in expected.split(",")}
    return bool(received_set & expected_set)


def _is_link(value: Any) -> bool:
    """``comfy_execution.graph_utils.is_link``."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], (int, float))
    )


def _coerce(value: Any, input_type: Any) -> Any:
    if input_type == "INT":
        return int(value)
    if input_type == "FLOAT":
        return float(value)
    if input_type == "STRING":
        return str(value)
    if input_type == "BOOLEAN":
        return bool(value)
    return value


_Result = tuple[bool, list[dict[str, Any]], Any]


class _PromptChecker:
    """One validation run: the prompt, the node classes, and ComfyUI's per-node cache."""

    def __init__(
        self,
        prompt: Any,
        object_info: dict[str, Any],
        folders: _Folders,
        file_exists: Callable[[str, str], bool] | None,
        format_traceback: Callable[[Sequence[Step]], list[str]],
    ) -> None:
        self.prompt = prompt
        self.object_info = object_info
        self.folders = folders
        self.file_exists = file_exists
        self.format_traceback = format_traceback
        self.validated: dict[Any, _Result] = {}
        self._in_progress: set[Any] = set()

    def validate_node(self, unique_id: Any) -> _Result:
        """``validate_inputs``: the node's result, from the cache when it was seen before."""
        if unique_id in self.validated:
            return self.validated[unique_id]
        if unique_id in self._in_progress:
            # A cycle. ComfyUI recurses until Python's recursion limit; this stops at the first
            # repeat with the same exception, which its caller reports like ComfyUI does.
            raise RecursionError("maximum recursion depth exceeded")
        self._in_progress.add(unique_id)
        try:
            result = self._check_node(unique_id)
        finally:
            self._in_progress.discard(unique_id)
        self.validated[unique_id] = result
        return result

    def _check_node(self, unique_id: Any) -> _Result:
        node = self.prompt[unique_id]
        try:
            inputs = node["inputs"]
        except Exception as exc:
            raise _through(exc, Step(Site.READ_INPUTS)) from None
        class_type = node["class_type"]
        class_info = self.object_info[class_type]
        class_inputs: dict[str, Any] = class_info.get("input", {})
        custom = FILE_CHECKS.get(class_type)
        custom_args = (custom.argument,) if custom is not None else ()

        errors: list[dict[str, Any]] = []
        valid = True
        for name in _declared_inputs(class_inputs):
            input_type, category, extra = _input_info(class_inputs, name)
            try:
                present = name in inputs
            except Exception as exc:
                raise _through(exc, Step(Site.TEST_INPUT_PRESENT)) from None
            if not present:
                if category == "required":
                    errors.append(
                        _error(
                            "required_input_missing",
                            "Required input is missing",
                            f"{name}",
                            {"input_name": name},
                        )
                    )
                continue
            try:
                value = inputs[name]
            except Exception as exc:
                raise _through(exc, Step(Site.READ_INPUT_VALUE)) from None
            config = [copy.deepcopy(input_type), copy.deepcopy(extra)]
            if isinstance(value, list):
                link_ok = self._check_link(name, value, input_type, config, errors)
                if link_ok is None:
                    continue
                valid = valid and link_ok
                continue
            error = self._check_literal(inputs, name, value, input_type, extra, config, custom_args)
            if error is not None:
                errors.append(error)

        if custom is not None:
            errors.extend(self._run_custom(custom, inputs, class_inputs, class_type))

        if errors or not valid:
            return (False, errors, unique_id)
        return (True, [], unique_id)

    def _check_link(
        self,
        name: str,
        value: list[Any],
        input_type: Any,
        config: list[Any],
        errors: list[dict[str, Any]],
    ) -> bool | None:
        """Checks one linked input. Returns None when an error was added to ``errors``, else
        whether the upstream node is valid."""
        if len(value) != 2:
            errors.append(
                _error(
                    "bad_linked_input",
                    "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    f"{name}",
                    {
                        "input_name": name,
                        "input_config": config,
                        "received_value": copy.deepcopy(value),
                    },
                )
            )
            return None
        linked_id = value[0]
        try:
            linked_class = self.prompt[linked_id]["class_type"]
        except Exception as exc:
            raise _through(exc, Step(Site.READ_LINKED_CLASS)) from None
        return_types = _return_types(self.object_info[linked_class])
        try:
            received_type = return_types[value[1]]
        except Exception as exc:
            raise _through(exc, Step(Site.READ_LINKED_OUTPUT_TYPE)) from None
        if not types_compatible(received_type, input_type):
            errors.append(
                _error(
                    "return_type_mismatch",
                    "Return type mismatch between linked nodes",
                    f"{name}, received_type({received_type}) mismatch input_type({input_type})",
                    {
                        "input_name": name,
                        "input_config": config,
                        "received_type": copy.deepcopy(received_type),
                        "linked_node": copy.deepcopy(value),
                    },
                )
            )
            return None
        try:
            upstream = self.validate_node(linked_id)
        except Exception as exc:
            message = str(exc)
            self.validated[linked_id] = (
                False,
                [
                    _error(
                        "exception_during_inner_validation",
                        "Exception when validating inner node",
                        message,
                        {
                            "input_name": name,
                            "input_config": config,
                            "exception_message": message,
                            "exception_type": _exception_type(exc),
                            "traceback": self.format_traceback(
                                _steps(exc, Site.INPUTS_VALIDATE_LINKED)
                            ),
                            "linked_node": copy.deepcopy(value),
                        },
                    )
                ],
                linked_id,
            )
            return False
        return upstream[0] is not False

    def _check_literal(
        self,
        inputs: Any,
        name: str,
        value: Any,
        input_type: Any,
        extra: Any,
        config: list[Any],
        skip_range_checks: tuple[str, ...],
    ) -> dict[str, Any] | None:
        try:
            if isinstance(value, dict) and "__value__" in value:
                value = value["__value__"]
                inputs[name] = value
            if input_type in ("INT", "FLOAT", "STRING", "BOOLEAN"):
                value = _coerce(value, input_type)
                inputs[name] = value
        except Exception as exc:
            return _error(
                "invalid_input_type",
                f"Failed to convert an input value to a {input_type} value",
                f"{name}, {value}, {exc}",
                {
                    "input_name": name,
                    "input_config": config,
                    "received_value": copy.deepcopy(value),
                    "exception_message": str(exc),
                },
            )
        if name in skip_range_checks:
            return None
        details = {
            "input_name": name,
            "input_config": config,
            "received_value": copy.deepcopy(value),
        }
        try:
            too_small = "min" in extra and value < extra["min"]
        except Exception as exc:
            raise _through(exc, Step(Site.COMPARE_MIN)) from None
        if too_small:
            message = "Value {} smaller than min of {}".format(value, extra["min"])
            return _error("value_smaller_than_min", message, f"{name}", details)
        try:
            too_big = "max" in extra and value > extra["max"]
        except Exception as exc:
            raise _through(exc, Step(Site.COMPARE_MAX)) from None
        if too_big:
            message = "Value {} bigger than max of {}".format(value, extra["max"])
            return _error("value_bigger_than_max", message, f"{name}", details)
        if isinstance(input_type, list):
            # ComfyUI 0.3.64 checks legacy combos only; v3 "COMBO" inputs accept any value.
            try:
                missing = value not in input_type
            except Exception as exc:
                raise _through(exc, Step(Site.TEST_IN_COMBO)) from None
            if missing:
                # Long lists (scanned model files) are not sent back.
                if len(input_type) > 20:
                    listed = f"(list of length {len(input_type)})"
                    details["input_config"] = None
                else:
                    listed = str(input_type)
                return _error(
                    "value_not_in_list",
                    "Value not in list",
                    f"{name}: '{value}' not in {listed}",
                    details,
                )
        return None

    def _run_custom(
        self,
        custom: FileCheck,
        inputs: Any,
        class_inputs: dict[str, Any],
        class_type: str,
    ) -> list[dict[str, Any]]:
        """Calls the node's own validation with its argument, as ``get_input_data`` passes it: a
        literal as sent (after coercion), a link as None."""
        values: dict[str, Any] = {}
        try:
            for name in inputs:
                value = inputs[name]
                _, category, options = _input_info(class_inputs, name)
                raw_link = isinstance(options, dict) and options.get("rawLink", False)
                if _is_link(value) and not raw_link:
                    values[name] = None
                elif category is not None:
                    values[name] = value
        except Exception as exc:
            raise _through(exc, Step(Site.GATHER_INPUT_DATA)) from None
        given = {name: value for name, value in values.items() if name == custom.argument}
        folders = self.folders
        if self.file_exists is not None:
            judge = self.file_exists
            folders = dataclasses.replace(folders, exists=lambda name: judge(class_type, name))
        outcome = custom(given, folders)
        errors: list[dict[str, Any]] = []
        if outcome is True:
            return errors
        for name in given:
            details = f"{name}"
            if outcome is not False:
                details += f" - {outcome}"
            errors.append(
                _error(
                    "custom_validation_failed",
                    "Custom validation failed for node",
                    details,
                    {"input_name": name},
                )
            )
        return errors


def _error(kind: str, message: str, details: str, extra_info: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra_info}


def validate_prompt(
    prompt: Any,
    object_info: dict[str, Any],
    *,
    partial_execution_targets: list[str] | None = None,
    input_dir: pathlib.Path | None = None,
    file_exists: Callable[[str, str], bool] | None = None,
    format_traceback: Callable[[Sequence[Step]], list[str]] = _no_traceback,
) -> PromptValidation:
    """Validate an API-format prompt the way ComfyUI 0.3.64's ``POST /prompt`` does.

    Raises (TypeError and the like) for the bodies on which the real server crashed with a 500:
    a prompt that is a list, or whose nodes are not objects (a UI-format workflow).

    The Load* nodes' files (:data:`FILE_CHECKS`) are looked up in ``input_dir`` (ComfyUI's input
    folder; its ``output`` and ``temp`` folders are siblings), so ``object_info``'s file combos
    should reflect it. ``file_exists(class_type, name)`` replaces that look-up (``name`` as sent,
    ``[input]``/``[output]``/``[temp]`` annotation included): a client, which cannot see the
    server's folders, judges from the combo lists instead. One of the two is needed.

    ``format_traceback`` turns the :class:`Step` s of an exception raised while validating into
    the ``traceback`` lines ComfyUI reports next to it; by default they are left empty.
    """
    if input_dir is None and file_exists is None:
        raise ValueError("validate_prompt needs input_dir or file_exists to judge file inputs")
    outputs: list[Any] = []
    for node_id in prompt:
        node = prompt[node_id]
        if "class_type" not in node:
            return _invalid(
                _error(
                    "invalid_prompt",
                    "Cannot execute because a node is missing the class_type property.",
                    f"Node ID '#{node_id}'",
                    {},
                )
            )
        class_type = node["class_type"]
        class_info = object_info.get(class_type)
        if class_info is None:
            return _invalid(
                _error(
                    "invalid_prompt",
                    f"Cannot execute because node {class_type} does not exist.",
                    f"Node ID '#{node_id}'",
                    {},
                )
            )
        if class_info.get("output_node") is True and (
            partial_execution_targets is None or node_id in partial_execution_targets
        ):
            # ComfyUI collects outputs in a set (run-dependent order); the prompt order is used.
            outputs.append(node_id)

    if not outputs:
        return _invalid(_error("prompt_no_outputs", "Prompt has no outputs", "", {}))

    base = pathlib.Path(input_dir if input_dir is not None else "input")
    folders = _Folders(str(base), str(base.parent / "output"), str(base.parent / "temp"))
    checker = _PromptChecker(prompt, object_info, folders, file_exists, format_traceback)
    good_outputs: list[Any] = []
    failures: list[tuple[Any, list[dict[str, Any]]]] = []
    node_errors: dict[Any, dict[str, Any]] = {}
    for output_id in outputs:
        try:
            valid, reasons, _ = checker.validate_node(output_id)
        except Exception as exc:
            valid = False
            reasons = [
                _error(
                    "exception_during_validation",
                    "Exception when validating node",
                    str(exc),
                    {
                        "exception_type": _exception_type(exc),
                        "traceback": format_traceback(_steps(exc, Site.PROMPT_VALIDATES_OUTPUT)),
                    },
                )
            ]
            checker.validated[output_id] = (False, reasons, output_id)

        if valid is True:
            good_outputs.append(output_id)
            continue
        failures.append((output_id, reasons))
        # Every failing node validated so far (not only this output's ancestors) is marked as a
        # dependency of this output: ComfyUI's own bookkeeping. Nodes that failed only because
        # of an upstream node carry no errors and are left out.
        for node_id, (node_valid, node_reasons, _) in checker.validated.items():
            if node_valid is True or not node_reasons:
                continue
            if node_id not in node_errors:
                node_errors[node_id] = {
                    "errors": node_reasons,
                    "dependent_outputs": [],
                    "class_type": prompt[node_id]["class_type"],
                }
            node_errors[node_id]["dependent_outputs"].append(output_id)

    if not good_outputs:
        details = "\n".join(
            f"{reason['message']}: {reason['details']}"
            for _, reasons in failures
            for reason in reasons
        )
        error = _error(
            "prompt_outputs_failed_validation", "Prompt outputs failed validation", details, {}
        )
        return PromptValidation(False, error, [], node_errors)
    return PromptValidation(True, None, good_outputs, node_errors)


def _invalid(error: dict[str, Any]) -> PromptValidation:
    return PromptValidation(False, error, [], {})

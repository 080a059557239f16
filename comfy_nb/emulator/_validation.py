"""Prompt validation of the emulated ComfyUI server: the checks behind ``POST /prompt``.

Owns ComfyUI 0.3.64's ``validate_prompt`` / ``validate_inputs`` algorithm, re-implemented against
``object_info`` (the only description of node classes the emulator has): which nodes are outputs,
per-input checks, link checks, the custom file checks of the Load* nodes, the per-node result
cache, ``node_errors`` with ``dependent_outputs`` and the top-level ``error``.

It must not run nodes, touch the queue or speak HTTP: the route turns a :class:`PromptValidation`
into the 200 / 400 body, and turns an exception raised here into the 500 the real server sends.

Like ComfyUI, validation coerces INT / FLOAT / STRING / BOOLEAN literals and unwraps
``{"__value__": ...}`` *in place* in the prompt it is given, so the queued prompt (and later the
history) holds the coerced values. Pass a copy if that is not wanted.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["PromptValidation", "validate_prompt"]


@dataclass(frozen=True)
class PromptValidation:
    """The outcome of :func:`validate_prompt`.

    ``ok`` means at least one output node validated: the route answers
    ``200 {"prompt_id", "number", "node_errors"}`` and queues ``outputs_to_execute``. Otherwise it
    answers ``400 {"error": error, "node_errors": node_errors}``.
    """

    ok: bool
    error: dict[str, Any] | None
    outputs_to_execute: list[str]
    node_errors: dict[str, Any]


# --------------------------------------------------------------------------------------------
# Tracebacks. ComfyUI reports ``traceback.format_tb`` of exceptions raised while validating.
# The emulator cannot reproduce the real frames, so it rebuilds the ones ComfyUI 0.3.64 shows,
# using the capture machine's path and line numbers. The three recorded sites (no ``inputs``,
# link to a missing node, bad output index) are byte-identical to the recordings; the others are
# plausible approximations.

_EXECUTION_PY = "/srv/ComfyUI/execution.py"
_NODES_PY = "/srv/ComfyUI/nodes.py"
_FOLDER_PATHS_PY = "/srv/ComfyUI/folder_paths.py"
_FRAMES_ATTR = "_comfy_nb_validation_frames"


def _frame(path: str, line: int, function: str, source: str, marker: str = "") -> str:
    """One entry of ``traceback.format_tb`` as Python 3.11 prints it. ``marker`` is the caret
    line under ``source`` (already aligned to the start of ``source``), or empty for none."""
    text = f'  File "{path}", line {line}, in {function}\n    {source}\n'
    if marker:
        text += f"    {marker}\n"
    return text


def _carets_under(source: str, expression: str) -> str:
    """A ``^^^`` marker under ``expression`` inside ``source``."""
    return " " * source.index(expression) + "^" * len(expression)


def _exec_frame(line: int, function: str, source: str, marker: str = "") -> str:
    return _frame(_EXECUTION_PY, line, function, source, marker)


_CALL_FROM_PROMPT_SRC = "m = await validate_inputs(prompt_id, prompt, o, validated)"
_FRAME_CALL_FROM_PROMPT = _exec_frame(
    1010,
    "validate_prompt",
    _CALL_FROM_PROMPT_SRC,
    _carets_under(_CALL_FROM_PROMPT_SRC, "await validate_inputs(prompt_id, prompt, o, validated)"),
)
_CALL_FROM_INPUTS_SRC = "r = await validate_inputs(prompt_id, prompt, o_id, validated)"
_FRAME_CALL_FROM_INPUTS = _exec_frame(
    808,
    "validate_inputs",
    _CALL_FROM_INPUTS_SRC,
    _carets_under(
        _CALL_FROM_INPUTS_SRC, "await validate_inputs(prompt_id, prompt, o_id, validated)"
    ),
)
_FRAME_GET_INPUTS = _exec_frame(
    730,
    "validate_inputs",
    "inputs = prompt[unique_id]['inputs']",
    "         ~~~~~~~~~~~~~~~~~^^^^^^^^^^",
)
_FRAME_LINKED_NODE = _exec_frame(
    788,
    "validate_inputs",
    "o_class_type = prompt[o_id]['class_type']",
    "               ~~~~~~^^^^^^",
)
_FRAME_RETURN_TYPE = _exec_frame(
    790, "validate_inputs", "received_type = r[val[1]]", "                ~^^^^^^^^"
)
_FRAME_INPUT_PRESENT = _exec_frame(
    757, "validate_inputs", "if x not in inputs:", "   ^^^^^^^^^^^^^^^"
)
_FRAME_INPUT_VALUE = _exec_frame(770, "validate_inputs", "val = inputs[x]", "      ~~~~~~^^^")
_FRAME_MIN = _exec_frame(
    869,
    "validate_inputs",
    'if "min" in extra_info and val < extra_info["min"]:',
    "                           ^^^^^^^^^^^^^^^^^^^^^^^",
)
_FRAME_MAX = _exec_frame(
    882,
    "validate_inputs",
    'if "max" in extra_info and val > extra_info["max"]:',
    "                           ^^^^^^^^^^^^^^^^^^^^^^^",
)
_FRAME_COMBO = _exec_frame(
    896, "validate_inputs", "if val not in combo_options:", "   ^^^^^^^^^^^^^^^^^^^^^^^^"
)
_FRAME_INPUT_DATA = _exec_frame(
    917,
    "validate_inputs",
    "input_data_all, _, hidden_inputs = get_input_data(inputs, obj_class, unique_id)",
    "                                   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
)
_FRAME_GET_INPUT_DATA_LOOP = _exec_frame(169, "get_input_data", "for x in inputs:")
_CUSTOM_CALL_SRC = (
    "ret = await _async_map_node_over_list(prompt_id, unique_id, obj_class, input_filtered, "
    "validate_function_name, hidden_inputs=hidden_inputs)"
)
_FRAMES_CUSTOM_CALL = (
    _exec_frame(
        925,
        "validate_inputs",
        _CUSTOM_CALL_SRC,
        _carets_under(_CUSTOM_CALL_SRC, _CUSTOM_CALL_SRC[len("ret = ") :]),
    ),
    _exec_frame(
        315,
        "_async_map_node_over_list",
        "await process_inputs(input_dict, i)",
        "^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    ),
    _exec_frame(304, "process_inputs", "result = f(**inputs)", "         ^^^^^^^^^^^"),
)


def _with_frames(exc: BaseException, *frames: str) -> BaseException:
    """Record that ``exc`` went through ``frames`` (outermost first) before reaching the caller."""
    known: list[str] = getattr(exc, _FRAMES_ATTR, [])
    setattr(exc, _FRAMES_ATTR, [*frames, *known])
    return exc


def _traceback(exc: BaseException, caller_frame: str) -> list[str]:
    frames: list[str] = getattr(exc, _FRAMES_ATTR, [])
    return [caller_frame, *frames]


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

    Only the input folder is known to the emulator's validation; output and temp are taken to be
    its siblings, ComfyUI's default layout."""

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
        raise _with_frames(
            exc,
            _frame(
                _FOLDER_PATHS_PY,
                357,
                "exists_annotated_filepath",
                "name, base_dir = annotated_filepath(name)",
                "                 ^^^^^^^^^^^^^^^^^^^^^^^^",
            ),
            _frame(
                _FOLDER_PATHS_PY,
                329,
                "annotated_filepath",
                'if name.endswith("[output]"):',
                "   ^^^^^^^^^^^^^",
            ),
        ) from None
    if folders.exists is not None:
        return folders.exists(annotated)
    return os.path.exists(os.path.join(base, name))


@dataclass(frozen=True)
class _CustomValidator:
    """A node class's own validation function, reduced to what ComfyUI needs to know."""

    qualname: str  # for the TypeError raised when its argument is missing
    argument: str  # the one input it takes; that input skips min / max / combo checks
    message: str  # returned (formatted with the value) when the file does not exist
    source_path: str
    source_line: int

    def __call__(self, values: dict[str, Any], folders: _Folders) -> Any:
        if self.argument not in values:
            raise _with_frames(
                TypeError(
                    f"{self.qualname}() missing 1 required positional argument: '{self.argument}'"
                ),
                *_FRAMES_CUSTOM_CALL,
            )
        value = values[self.argument]
        try:
            exists = _exists_annotated(value, folders)
        except Exception as exc:
            source = f"if not folder_paths.exists_annotated_filepath({self.argument}):"
            raise _with_frames(
                exc,
                *_FRAMES_CUSTOM_CALL,
                _frame(
                    self.source_path,
                    self.source_line,
                    self.qualname.rsplit(".", 1)[-1],
                    source,
                    _carets_under(source, source[len("if not ") : -1]),
                ),
            ) from None
        if not exists:
            return self.message.format(value)
        return True


_AUDIO_PY = "/srv/ComfyUI/comfy_extras/nodes_audio.py"
_VIDEO_PY = "/srv/ComfyUI/comfy_extras/nodes_video.py"
_LOAD_IMAGE = _CustomValidator(
    "LoadImage.VALIDATE_INPUTS", "image", "Invalid image file: {}", _NODES_PY, 1732
)
_CUSTOM_VALIDATORS: dict[str, _CustomValidator] = {
    "LoadImage": _LOAD_IMAGE,
    "LoadImageOutput": _LOAD_IMAGE,  # a LoadImage subclass; inherits VALIDATE_INPUTS
    "WebcamCapture": _LOAD_IMAGE,  # likewise
    "LoadImageMask": _CustomValidator(
        "LoadImageMask.VALIDATE_INPUTS", "image", "Invalid image file: {}", _NODES_PY, 1783
    ),
    "LoadLatent": _CustomValidator(
        "LoadLatent.VALIDATE_INPUTS", "latent", "Invalid latent file: {}", _NODES_PY, 528
    ),
    "LoadAudio": _CustomValidator(
        "LoadAudio.VALIDATE_INPUTS", "audio", "Invalid audio file: {}", _AUDIO_PY, 300
    ),
    "LoadVideo": _CustomValidator(
        "LoadVideo.validate_inputs", "file", "Invalid video file: {}", _VIDEO_PY, 242
    ),
}


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
    varies from run to run; the emulator uses the declared order (required first)."""
    names: list[str] = []
    for category in ("required", "optional"):
        for name in class_inputs.get(category, {}):
            if name not in names:
                names.append(name)
    return names


def _types_compatible(received: Any, expected: Any) -> bool:
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
        file_exists: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.prompt = prompt
        self.object_info = object_info
        self.folders = folders
        self.file_exists = file_exists
        self.validated: dict[Any, _Result] = {}
        self._in_progress: set[Any] = set()

    def validate_node(self, unique_id: Any) -> _Result:
        """``validate_inputs``: the node's result, from the cache when it was seen before."""
        if unique_id in self.validated:
            return self.validated[unique_id]
        if unique_id in self._in_progress:
            # A cycle. ComfyUI recurses until Python's recursion limit; the emulator stops at the
            # first repeat with the same exception, which its caller reports like ComfyUI does.
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
            raise _with_frames(exc, _FRAME_GET_INPUTS) from None
        class_type = node["class_type"]
        class_info = self.object_info[class_type]
        class_inputs: dict[str, Any] = class_info.get("input", {})
        custom = _CUSTOM_VALIDATORS.get(class_type)
        custom_args = (custom.argument,) if custom is not None else ()

        errors: list[dict[str, Any]] = []
        valid = True
        for name in _declared_inputs(class_inputs):
            input_type, category, extra = _input_info(class_inputs, name)
            try:
                present = name in inputs
            except Exception as exc:
                raise _with_frames(exc, _FRAME_INPUT_PRESENT) from None
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
                raise _with_frames(exc, _FRAME_INPUT_VALUE) from None
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
            raise _with_frames(exc, _FRAME_LINKED_NODE) from None
        return_types = _return_types(self.object_info[linked_class])
        try:
            received_type = return_types[value[1]]
        except Exception as exc:
            raise _with_frames(exc, _FRAME_RETURN_TYPE) from None
        if not _types_compatible(received_type, input_type):
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
                            "traceback": _traceback(exc, _FRAME_CALL_FROM_INPUTS),
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
            raise _with_frames(exc, _FRAME_MIN) from None
        if too_small:
            message = "Value {} smaller than min of {}".format(value, extra["min"])
            return _error("value_smaller_than_min", message, f"{name}", details)
        try:
            too_big = "max" in extra and value > extra["max"]
        except Exception as exc:
            raise _with_frames(exc, _FRAME_MAX) from None
        if too_big:
            message = "Value {} bigger than max of {}".format(value, extra["max"])
            return _error("value_bigger_than_max", message, f"{name}", details)
        if isinstance(input_type, list):
            # ComfyUI 0.3.64 checks legacy combos only; v3 "COMBO" inputs accept any value.
            try:
                missing = value not in input_type
            except Exception as exc:
                raise _with_frames(exc, _FRAME_COMBO) from None
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
        custom: _CustomValidator,
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
            raise _with_frames(exc, _FRAME_INPUT_DATA, _FRAME_GET_INPUT_DATA_LOOP) from None
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
    input_dir: pathlib.Path,
    file_exists: Callable[[str, str], bool] | None = None,
) -> PromptValidation:
    """Validate an API-format prompt the way ComfyUI 0.3.64's ``POST /prompt`` does.

    Raises (TypeError and the like) for the bodies on which the real server crashed with a 500:
    a prompt that is a list, or whose nodes are not objects (a UI-format workflow).
    ``object_info`` is the emulator's current one (its file combos must reflect ``input_dir``).

    ``file_exists(class_type, name)``, when given, replaces the look-up of the Load* nodes' files
    in ``input_dir`` (``name`` as sent, ``[input]``/``[output]``/``[temp]`` annotation included):
    a client, which cannot see the server's folders, judges from the combo lists instead.
    """
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

    base = pathlib.Path(input_dir)
    folders = _Folders(str(base), str(base.parent / "output"), str(base.parent / "temp"))
    checker = _PromptChecker(prompt, object_info, folders, file_exists)
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
                        "traceback": _traceback(exc, _FRAME_CALL_FROM_PROMPT),
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

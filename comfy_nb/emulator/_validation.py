"""Prompt validation of the emulated ComfyUI server: the checks behind ``POST /prompt``, with the
traceback frames ComfyUI 0.3.64 prints.

Owns what only the emulator needs on top of ComfyUI's rules (:mod:`comfy_nb._comfyui.validation`,
shared with the client's pre-submit check): the ``traceback`` lines of an exception raised while
validating. The emulator cannot reproduce the real frames, so it rebuilds the ones ComfyUI 0.3.64
shows, using the capture machine's paths and line numbers. The three recorded sites (no
``inputs``, link to a missing node, bad output index) are byte-identical to the recordings; the
others are plausible approximations.

It must not run nodes, touch the queue or speak HTTP: the route turns a :class:`PromptValidation`
into the 200 / 400 body, and turns an exception raised here into the 500 the real server sends.
Like ComfyUI, validation coerces literals *in place* in the prompt it is given.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

from .._comfyui import validation
from .._comfyui.validation import PromptValidation, Site, Step

__all__ = ["PromptValidation", "format_traceback", "validate_prompt"]

_EXECUTION_PY = "/srv/ComfyUI/execution.py"
_NODES_PY = "/srv/ComfyUI/nodes.py"
_FOLDER_PATHS_PY = "/srv/ComfyUI/folder_paths.py"


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


_FRAME_EXISTS_ANNOTATED = (
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
)
_FRAMES: dict[Site, tuple[str, ...]] = {
    Site.PROMPT_VALIDATES_OUTPUT: (_FRAME_CALL_FROM_PROMPT,),
    Site.INPUTS_VALIDATE_LINKED: (_FRAME_CALL_FROM_INPUTS,),
    Site.READ_INPUTS: (_FRAME_GET_INPUTS,),
    Site.READ_LINKED_CLASS: (_FRAME_LINKED_NODE,),
    Site.READ_LINKED_OUTPUT_TYPE: (_FRAME_RETURN_TYPE,),
    Site.TEST_INPUT_PRESENT: (_FRAME_INPUT_PRESENT,),
    Site.READ_INPUT_VALUE: (_FRAME_INPUT_VALUE,),
    Site.COMPARE_MIN: (_FRAME_MIN,),
    Site.COMPARE_MAX: (_FRAME_MAX,),
    Site.TEST_IN_COMBO: (_FRAME_COMBO,),
    Site.GATHER_INPUT_DATA: (_FRAME_INPUT_DATA, _FRAME_GET_INPUT_DATA_LOOP),
    Site.CALL_NODE_VALIDATION: _FRAMES_CUSTOM_CALL,
    Site.ANNOTATED_FILEPATH: _FRAME_EXISTS_ANNOTATED,
}

_AUDIO_PY = "/srv/ComfyUI/comfy_extras/nodes_audio.py"
_VIDEO_PY = "/srv/ComfyUI/comfy_extras/nodes_video.py"
# Where each node's own validation function is defined: (file, line of its file check).
_NODE_VALIDATION_SOURCES: dict[str, tuple[str, int]] = {
    "LoadImage.VALIDATE_INPUTS": (_NODES_PY, 1732),
    "LoadImageMask.VALIDATE_INPUTS": (_NODES_PY, 1783),
    "LoadLatent.VALIDATE_INPUTS": (_NODES_PY, 528),
    "LoadAudio.VALIDATE_INPUTS": (_AUDIO_PY, 300),
    "LoadVideo.validate_inputs": (_VIDEO_PY, 242),
}


def _node_validation_frame(check: validation.FileCheck) -> str:
    """The frame of a node's own validation function at its file check."""
    path, line = _NODE_VALIDATION_SOURCES[check.function]
    source = f"if not folder_paths.exists_annotated_filepath({check.argument}):"
    return _frame(
        path,
        line,
        check.function.rsplit(".", 1)[-1],
        source,
        _carets_under(source, source[len("if not ") : -1]),
    )


def format_traceback(steps: Sequence[Step]) -> list[str]:
    """``traceback.format_tb`` as ComfyUI 0.3.64 reports it for an exception that went through
    ``steps`` (outermost first)."""
    lines: list[str] = []
    for step in steps:
        if step.site is Site.NODE_VALIDATION_BODY and step.check is not None:
            lines.append(_node_validation_frame(step.check))
        else:
            lines.extend(_FRAMES[step.site])
    return lines


def validate_prompt(
    prompt: Any,
    object_info: dict[str, Any],
    *,
    partial_execution_targets: list[str] | None = None,
    input_dir: pathlib.Path,
) -> PromptValidation:
    """Validate an API-format prompt the way ComfyUI 0.3.64's ``POST /prompt`` does, tracebacks
    included (see :func:`comfy_nb._comfyui.validation.validate_prompt`).

    Raises (TypeError and the like) for the bodies on which the real server crashed with a 500.
    ``object_info`` is the emulator's current one (its file combos must reflect ``input_dir``,
    where the Load* nodes' files are looked up)."""
    return validation.validate_prompt(
        prompt,
        object_info,
        partial_execution_targets=partial_execution_targets,
        input_dir=input_dir,
        format_traceback=format_traceback,
    )

"""What the ComfyUI editor (frontend 1.58.1) does to text widget values when it queues a prompt.

Two of its extensions replace a widget's value by a computed one (``serializeValue``):

* dynamic prompts: in a text input whose definition says ``dynamicPrompts``, comments are removed
  and each ``{a|b|c}`` is replaced by one of its options, picked at random each time
  (``extensions/core/dynamicPrompts.ts``, ``processDynamicPrompt`` in
  ``packages/shared-frontend-utils/src/formatUtil.ts``);
* file name patterns: in the ``filename_prefix`` of the save nodes, ``%date:yyyy-MM-dd%`` becomes
  the date and ``%Node.widget%`` the value of that widget of the node with that S&R name or title
  (``extensions/core/saveImageExtraOutput.ts``, ``utils/searchAndReplace.ts``).
"""

from __future__ import annotations

import datetime
import random
import re
from collections.abc import Callable
from typing import Any

__all__ = ["SAVE_NODE_TYPES", "dynamic_prompt", "filename_replacements"]

#: extensions/core/saveImageExtraOutput.ts: nodes whose filename_prefix takes replacements
SAVE_NODE_TYPES = frozenset({
    "SaveImage", "SaveImageAdvanced", "SaveSVGNode", "SaveVideo", "SaveAnimatedWEBP", "SaveWEBM",
    "SaveAudio", "SaveAudioMP3", "SaveAudioOpus", "SaveAudioAdvanced", "SaveGLB",
    "Save3DAdvanced", "SaveGaussianSplat", "SavePointCloud", "SaveAnimatedPNG", "CLIPSave",
    "VAESave", "ModelSave", "LoraSave", "SaveLatent",
})

_COMMENTS = re.compile(r"/\*[\s\S]*?\*/|//.*")
_ESCAPED = re.compile(r"\\([{}|])")
_PATTERN = re.compile(r"%([^%]+)%")
_DATE_PART = re.compile(r"dd?|MM?|hh?|mm?|ss?|yyy?y?")
_UNSAFE = re.compile(r"[/?<>\\:*|\"\x00-\x1f\x7f]")


def dynamic_prompt(text: str, choose: Callable[[list[str]], str] = random.choice) -> str:
    """``text`` with comments removed and every ``{a|b}`` replaced by one option."""
    source = _COMMENTS.sub("", text)
    position = 0

    def choice_block() -> str:
        nonlocal position
        options: list[str] = []
        current = ""
        depth = 0
        while position < len(source):
            char = source[position]
            position += 1
            if char == "\\":
                current += "\\" + (source[position] if position < len(source) else "undefined")
                position += 1
                continue
            if char == "{":
                depth += 1
            elif char == "}":
                if not depth:
                    break
                depth -= 1
            elif char == "|" and not depth:
                options.append(current)
                current = ""
                continue
            current += char
        options.append(current)
        return dynamic_prompt(choose(options), choose)

    result = ""
    while position < len(source):
        char = source[position]
        position += 1
        if char == "\\":
            result += "\\" + (source[position] if position < len(source) else "undefined")
            position += 1
        elif char == "{":
            result += choice_block()
        else:
            result += char
    return _ESCAPED.sub(r"\1", result)


def filename_replacements(value: str, widget_value: Callable[[str, str], tuple[Any] | None],
                          now: datetime.datetime | None = None) -> str:
    """``value`` with its ``%...%`` patterns replaced; ``widget_value(node, widget)`` finds a
    widget's value by node S&R name or title, as ``(value,)``, or ``None`` when there is none."""
    moment = now or datetime.datetime.now()

    def replace(match: re.Match[str]) -> str:
        parts = match.group(1).split(".")
        if len(parts) != 2:
            if parts[0].startswith("date:"):
                return _format_date(parts[0][5:], moment)
            return match.group(0)
        found = widget_value(parts[0], parts[1])
        if found is None:
            return match.group(0)
        text = "" if found[0] is None else _js_string(found[0])
        return _UNSAFE.sub("_", text)

    return _PATTERN.sub(replace, value)


def _format_date(pattern: str, moment: datetime.datetime) -> str:
    """``formatDate``: d, M, h, m, s (padded to the letters given), yy and yyyy."""
    fields = {"d": moment.day, "M": moment.month, "h": moment.hour, "m": moment.minute,
              "s": moment.second}

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "yy":
            return str(moment.year)[2:]
        if token == "yyyy":
            return str(moment.year)
        if token[0] in fields:
            return str(fields[token[0]]).rjust(len(token), "0")
        return token

    return _DATE_PART.sub(replace, pattern)


def _js_string(value: Any) -> str:
    """``value + ''`` for the plain values a widget holds."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join("" if item is None else _js_string(item) for item in value)
    return str(value)

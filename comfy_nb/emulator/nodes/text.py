"""String nodes (ComfyUI's ``comfy_extras/nodes_string``) and PreviewAny.

Owns StringConcatenate, StringSubstring, StringLength, CaseConverter, StringTrim, StringReplace,
StringContains, StringCompare, RegexMatch, RegexExtract, RegexReplace and PreviewAny.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ._base import NodeContext, NodeResult, node


def _regex_flags(case_insensitive: bool, multiline: bool, dotall: bool) -> int:
    flags = 0
    if case_insensitive:
        flags |= re.IGNORECASE
    if multiline:
        flags |= re.MULTILINE
    if dotall:
        flags |= re.DOTALL
    return flags


@node("StringConcatenate")
def string_concatenate(
    ctx: NodeContext, string_a: str, string_b: str, delimiter: str = ""
) -> NodeResult:
    return NodeResult((delimiter.join((string_a, string_b)),))


@node("StringSubstring")
def string_substring(ctx: NodeContext, string: str, start: int = 0, end: int = 0) -> NodeResult:
    return NodeResult((string[start:end],))


@node("StringLength")
def string_length(ctx: NodeContext, string: str) -> NodeResult:
    return NodeResult((len(string),))


_CASES = {
    "UPPERCASE": str.upper,
    "lowercase": str.lower,
    "Capitalize": str.capitalize,
    "Title Case": str.title,
}


@node("CaseConverter")
def case_converter(ctx: NodeContext, string: str, mode: str = "UPPERCASE") -> NodeResult:
    convert = _CASES.get(mode)
    return NodeResult((convert(string) if convert else string,))


_TRIMS = {"Both": str.strip, "Left": str.lstrip, "Right": str.rstrip}


@node("StringTrim")
def string_trim(ctx: NodeContext, string: str, mode: str = "Both") -> NodeResult:
    trim = _TRIMS.get(mode)
    return NodeResult((trim(string) if trim else string,))


@node("StringReplace")
def string_replace(ctx: NodeContext, string: str, find: str, replace: str) -> NodeResult:
    return NodeResult((string.replace(find, replace),))


@node("StringContains")
def string_contains(
    ctx: NodeContext, string: str, substring: str, case_sensitive: bool = True
) -> NodeResult:
    if not case_sensitive:
        string, substring = string.lower(), substring.lower()
    return NodeResult((substring in string,))


@node("StringCompare")
def string_compare(
    ctx: NodeContext,
    string_a: str,
    string_b: str,
    mode: str = "Starts With",
    case_sensitive: bool = True,
) -> NodeResult:
    a, b = (string_a, string_b) if case_sensitive else (string_a.lower(), string_b.lower())
    if mode == "Equal":
        return NodeResult((a == b,))
    if mode == "Ends With":
        return NodeResult((a.endswith(b),))
    return NodeResult((a.startswith(b),))


@node("RegexMatch")
def regex_match(
    ctx: NodeContext,
    string: str,
    regex_pattern: str,
    case_insensitive: bool = True,
    multiline: bool = False,
    dotall: bool = False,
) -> NodeResult:
    """Whether the pattern matches anywhere; a bad pattern gives False (no error)."""
    flags = _regex_flags(case_insensitive, multiline, dotall)
    try:
        matched = re.search(regex_pattern, string, flags) is not None
    except re.error:
        matched = False
    return NodeResult((matched,))


def _extract(string: str, pattern: str, mode: str, flags: int, group_index: int) -> str:
    if mode == "First Match":
        match = re.search(pattern, string, flags)
        return match.group(0) if match else ""
    if mode == "All Matches":
        found = re.findall(pattern, string, flags)
        # with groups, findall gives tuples (or the one group); keep the first group's text
        return "\n".join(item[0] if isinstance(item, tuple) else item for item in found)
    if mode == "First Group":
        match = re.search(pattern, string, flags)
        if match and len(match.groups()) >= group_index:
            return match.group(group_index) or ""
        return ""
    if mode == "All Groups":
        groups = [
            match.group(group_index) or ""
            for match in re.finditer(pattern, string, flags)
            if match.groups() and len(match.groups()) >= group_index
        ]
        return "\n".join(groups)
    return ""


@node("RegexExtract")
def regex_extract(
    ctx: NodeContext,
    string: str,
    regex_pattern: str,
    mode: str = "First Match",
    case_insensitive: bool = True,
    multiline: bool = False,
    dotall: bool = False,
    group_index: int = 1,
) -> NodeResult:
    """Matched text by mode; a bad pattern gives "" (no error)."""
    flags = _regex_flags(case_insensitive, multiline, dotall)
    try:
        result = _extract(string, regex_pattern, mode, flags, group_index)
    except re.error:
        result = ""
    return NodeResult((result,))


@node("RegexReplace")
def regex_replace(
    ctx: NodeContext,
    string: str,
    regex_pattern: str,
    replace: str,
    case_insensitive: bool = True,
    multiline: bool = False,
    dotall: bool = False,
    count: int = 0,
) -> NodeResult:
    """``re.sub``; unlike the other regex nodes, a bad pattern raises ``re.error``."""
    flags = _regex_flags(case_insensitive, multiline, dotall)
    return NodeResult((re.sub(regex_pattern, replace, string, count=count, flags=flags),))


def preview_text(source: Any) -> str:
    """How PreviewAny shows a value: strings as they are, numbers and booleans with ``str``,
    anything else as JSON, or with ``str`` when it is not JSON-serialisable."""
    if source is None:
        return "None"
    if isinstance(source, str):
        return source
    if isinstance(source, (int, float, bool)):
        return str(source)
    try:
        return json.dumps(source)
    except Exception:
        try:
            return str(source)
        except Exception:
            return "source exists, but could not be serialized."


@node("PreviewAny")
def preview_any(ctx: NodeContext, source: Any = None) -> NodeResult:
    return NodeResult(ui={"text": [preview_text(source)]})

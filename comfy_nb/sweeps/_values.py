"""What a sweep runs: the swept values as axes, their combinations (``product`` or ``zip``), how
many jobs that makes, the values ``%%comfy_run --sweep`` takes as text, and a combination's
label.

Owns: checking the values a sweep is given (a list per name, names given once, at most
``max_jobs`` jobs) before anything is connected or listed, and :func:`parse_sweep_values`.
Must not: connect, submit or draw anything.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ..workflow._errors import ParameterError
from ..workflow._values import parse_value

__all__ = ["MAX_JOBS", "MODES", "combinations", "format_params", "job_count",
           "parse_sweep_values", "sweep_axes"]

MODES = ("product", "zip")
#: the most jobs a sweep runs unless ``max_jobs=`` allows more (preparing one takes a few ms)
MAX_JOBS = 1000


def sweep_axes(values: Mapping[str, Any] | None, named: Mapping[str, Any],
               mode: str = "product", max_jobs: int | None = None
               ) -> list[tuple[str, list[Any]]]:
    """``[(name, [value, ...]), ...]``: the dict first, then the keyword arguments. The number
    of jobs is checked against ``max_jobs`` before the values are listed (a huge ``range`` is
    refused at once)."""
    given_axes: list[tuple[str, Collection[Any]]] = []
    seen: set[str] = set()
    for source in (values or {}, named):
        if not isinstance(source, Mapping):
            raise TypeError("sweep values are a dict of name -> list of values, "
                            f"not {type(source).__name__}")
        for name, given in source.items():
            if not isinstance(name, str) or not name:
                raise ParameterError(f"a parameter name is a non-empty string, not {name!r}")
            if name in seen:
                raise ValueError(f"{name!r} is swept twice")
            if isinstance(given, (str, bytes, Mapping)) or not isinstance(given, Collection):
                raise TypeError(f"{name}= takes a list of values to sweep ({name}=[1, 2, 3]), "
                                f"not {type(given).__name__}; fixed values go into "
                                "overrides={...}")
            if not len(given):
                raise ValueError(f"{name}= has no values to sweep")
            seen.add(name)
            given_axes.append((name, given))
    if not given_axes:
        raise ValueError("nothing to sweep: give lists of values, e.g. "
                         "sweep(workflow, seed=[1, 2, 3], cfg=[4.0, 7.0])")
    count = job_count({name: len(given) for name, given in given_axes}, mode)
    if max_jobs is not None and count > max_jobs:
        raise ValueError(f"this sweep would run {count} jobs, more than max_jobs={max_jobs}; "
                         f"pass max_jobs={count} (or None) to run them all")
    return [(name, list(given)) for name, given in given_axes]


def job_count(lengths: Mapping[str, int], mode: str = "product") -> int:
    """How many jobs a sweep of lists of these lengths runs (``zip`` needs equal lengths)."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'product' or 'zip', not {mode!r}")
    if mode == "zip":
        if len(set(lengths.values())) > 1:
            sizes = ", ".join(f"{name}: {size}" for name, size in lengths.items())
            raise ValueError(f"mode='zip' pairs the i-th values of every parameter, so the lists "
                             f"must be equally long ({sizes}); use mode='product' for every "
                             "combination")
        return next(iter(lengths.values()), 0)
    return math.prod(lengths.values())


def combinations(axes: Sequence[tuple[str, Sequence[Any]]], mode: str = "product"
                 ) -> list[tuple[tuple[int, ...], dict[str, Any]]]:
    """Every combination as ``(position, {name: value})``. ``position`` holds each axis's value
    index (``product``: the first axis changes slowest; ``zip``: the i-th value of every axis,
    which needs lists of equal length)."""
    count = job_count({name: len(values) for name, values in axes}, mode)
    names = [name for name, _ in axes]
    if mode == "zip":
        return [((i,) * len(axes), {name: values[i] for name, values in axes})
                for i in range(count)]
    ranges = [range(len(values)) for _, values in axes]
    return [(position, {name: axes[a][1][i] for a, (name, i) in enumerate(zip(names, position,
                                                                               strict=True))})
            for position in itertools.product(*ranges)]


def _value_text(value: Any, limit: int = 40) -> str:
    text = repr(value) if isinstance(value, str) and value.strip() != value else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def format_params(params: Mapping[str, Any], separator: str = ", ") -> str:
    """``seed=1, cfg=4.0`` (long values shortened)."""
    return separator.join(f"{name}={_value_text(value)}" for name, value in params.items())


def parse_sweep_values(items: Sequence[str],
                       flag: str = "--sweep") -> dict[str, Sequence[Any]]:
    """``["seed=1,2,3", "cfg=4.0,7.0"]`` (what ``%%comfy_run --sweep`` takes) as
    ``{"seed": [1, 2, 3], "cfg": [4.0, 7.0]}``.

    Values are separated by commas and read as JSON when they parse (``4.0``, ``true``,
    ``"quoted, text"``), as text otherwise; ``1..5`` is the integers 1 to 5 (kept as a
    ``range``, so a huge one costs nothing until it is refused); a JSON list
    (``'text=["a, b", "c"]'``) is taken as it is. The name is everything before the first ``=``.
    """
    parsed: dict[str, Sequence[Any]] = {}
    for item in items:
        name, separator, text = item.partition("=")
        name = name.strip()
        if not separator or not name or not text.strip():
            raise ValueError(f"{flag} takes NAME=V1,V2,... (e.g. {flag} seed=1,2,3), "
                             f"not {item!r}")
        if name in parsed:
            raise ValueError(f"{flag}: {name!r} is given twice")
        text = text.strip()
        values: Sequence[Any]
        if text.startswith("["):
            try:
                loaded = parse_value(text)
            except ValueError as exc:
                raise ValueError(f"{flag} {name}=: {exc}") from None
            if not isinstance(loaded, list):
                raise ValueError(f"{flag} {name}=: {text!r} is not a JSON list")
            values = loaded
        elif (".." in text and "," not in text
              and all(part.strip().lstrip("-").isascii() and part.strip().lstrip("-").isdigit()
                      for part in text.split("..", 1))):
            low, high = (int(part) for part in text.split("..", 1))
            if high < low:
                raise ValueError(f"{flag} {name}={text}: the range is empty")
            values = range(low, high + 1)
        else:
            try:
                values = [parse_value(part) for part in _split_commas(text)]
            except ValueError as exc:
                raise ValueError(f"{flag} {name}=: {exc}") from None
        if not values:
            raise ValueError(f"{flag} {name}= has no values")
        parsed[name] = values
    return parsed


def _split_commas(text: str) -> list[str]:
    """Split at commas outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]

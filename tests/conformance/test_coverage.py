"""Every recorded fixture file is checked by some conformance module (its ``COVERS`` globs), and
every deviation is one the checks actually use."""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from pathlib import Path

from . import deviations
from ._replay import fixture_files


def _conformance_modules() -> list[object]:
    package = Path(__file__).parent
    return [
        importlib.import_module(f"{__package__}.{info.name}")
        for info in pkgutil.iter_modules([str(package)])
        if info.name.startswith("test_") and info.name != "test_coverage"
    ]


def _patterns() -> list[str]:
    patterns: list[str] = []
    for module in _conformance_modules():
        patterns.extend(getattr(module, "COVERS", []))
    return patterns


def _covered(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def test_every_fixture_file_has_a_check() -> None:
    patterns = _patterns()
    files = fixture_files()
    folders = {name.split("/", 1)[0] for name in files}
    assert folders == {"errors", "http", "inputs", "queue", "runs", "ws"}, folders
    unchecked = [name for name in files if not _covered(name, patterns)]
    assert unchecked == [], f"fixture files no conformance check covers: {unchecked}"


def test_every_deviation_is_used_by_a_check() -> None:
    sources = "".join(
        path.read_text(encoding="utf-8")
        for path in Path(__file__).parent.glob("test_*.py")
        if path.name != "test_coverage.py"
    )
    names = [name for name, value in vars(deviations).items()
             if isinstance(value, str) and value in deviations.DEVIATIONS]
    unused = [name for name in names if name not in sources]
    assert unused == [], f"deviations no check refers to (remove them or use them): {unused}"

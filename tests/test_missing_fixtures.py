"""A missing folder of recorded fixtures fails only the tests that need it, each with the reason,
and stops nothing else. pytest runs, in a subprocess and with ``COMFY_NB_FIXTURES`` naming an
empty folder, a copy of the tests' plumbing (conftest.py, fixture_paths.py, factories.py...)
with sample modules that need the recordings in each way a module can (at import, in a
parametrization, in a fixture, in a test) and, as they are, the conformance suite and two
workflow modules."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

TIMEOUT = 600  # a safety net against hangs, never asserted on
pytestmark = pytest.mark.timeout(TIMEOUT + 60)

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PLUMBING = ["__init__.py", "conftest.py", "fixture_paths.py", "factories.py", "both_clients.py"]
SAMPLES = {
    "test_reads_at_import.py": '''
from tests import fixture_paths

RECORDED = (fixture_paths.COMFYUI / "http" / "object_info.json").read_text()


def test_uses_it():
    assert RECORDED
''',
    "test_parametrized.py": '''
import pytest

from tests import fixture_paths

RUNS = fixture_paths.listing(fixture_paths.RUNS, where=lambda path: path.is_dir())


@pytest.mark.parametrize("run", RUNS, ids=lambda path: path.name)
def test_each_run(run):
    assert (run / "history.json").read_text()


def test_independent():
    assert sum([1, 1]) == 2
''',
    "test_fixture_and_body.py": '''
import json

import pytest

from tests import fixture_paths


@pytest.fixture(scope="module")
def object_info():
    return json.loads((fixture_paths.COMFYUI / "http" / "object_info.json").read_text())


def test_through_a_fixture(object_info):
    assert object_info


async def test_in_the_body():
    assert (fixture_paths.UI2API / "pair" / "ui.json").read_bytes()


def test_a_missing_file_elsewhere(tmp_path):
    (tmp_path / "absent.json").read_text()


def test_independent(emulators):
    assert emulators(step_delay=0).url.startswith("http://127.0.0.1:")
''',
}


@dataclasses.dataclass
class Run:
    empty: Path  # what COMFY_NB_FIXTURES named
    outcomes: dict[str, tuple[str, str]]  # test id -> (passed | failure | error, message)

    def reason(self, folder: str = "comfyui") -> str:
        return (f"recorded fixtures not found at {self.empty / folder} (tests/fixtures/ is part"
                " of the repository; COMFY_NB_FIXTURES, when set, must name a folder laid out"
                " the same way)")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    copy = tmp_path_factory.mktemp("copy")
    empty = tmp_path_factory.mktemp("empty-fixtures")
    (copy / "tests").mkdir()
    for name in PLUMBING:
        shutil.copy(TESTS / name, copy / "tests" / name)
    for name, source in SAMPLES.items():
        (copy / "tests" / name).write_text(source.lstrip())
    shutil.copytree(TESTS / "conformance", copy / "tests" / "conformance",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "tests" / "workflow").mkdir()
    for name in ("__init__.py", "test_convert.py", "test_convert_fe158.py"):
        shutil.copy(TESTS / "workflow" / name, copy / "tests" / "workflow" / name)
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    report = copy / "report.xml"
    env = {**os.environ, "COMFY_NB_FIXTURES": str(empty),
           "PYTHONPATH": os.pathsep.join([str(copy), str(REPO)])}
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
         "tests"], cwd=copy, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    # 1: some tests failed; 2 would be a run stopped by errors in collection
    assert process.returncode == 1, process.stdout + process.stderr
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ET.parse(report).iter("testcase"):
        test_id = f"{case.get('classname')}.{case.get('name')}".removeprefix("tests.")
        kind, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                kind, message = child.tag, f"{child.get('message')}\n{child.text}"
        outcomes[test_id] = (kind, message)
    return Run(empty, outcomes)


def test_collection_goes_on_and_each_test_that_needs_the_recordings_fails_saying_why(
        run: Run) -> None:
    for test_id, folder in [("test_reads_at_import.recorded_fixtures", "comfyui"),  # no import
                            ("test_parametrized.test_each_run[(missing)]", "comfyui"),
                            ("test_fixture_and_body.test_in_the_body", "ui2api")]:
        kind, message = run.outcomes[test_id]
        assert kind == "failure" and run.reason(folder) in message, (test_id, message)
    kind, message = run.outcomes["test_fixture_and_body.test_through_a_fixture"]
    assert kind == "error" and run.reason() in message, message  # its fixture failed: setup
    for test_id in ("test_parametrized.test_independent",
                    "test_fixture_and_body.test_independent"):
        assert run.outcomes[test_id] == ("passed", ""), test_id


def test_a_missing_file_outside_the_recordings_stays_an_ordinary_error(run: Run) -> None:
    kind, message = run.outcomes["test_fixture_and_body.test_a_missing_file_elsewhere"]
    assert kind == "failure"
    assert "FileNotFoundError" in message and "recorded fixtures" not in message


def test_the_real_modules_fail_only_for_the_reason(run: Run) -> None:
    real = {test_id: outcome for test_id, outcome in run.outcomes.items()
            if test_id.startswith(("conformance.", "workflow."))}
    assert {kind for kind, _ in real.values()} == {"passed", "failure", "error"}
    reasons = [run.reason(folder) for folder in ("comfyui", "ui2api", "ui2api-fe158")]
    unexplained = {test_id: message[:300] for test_id, (kind, message) in real.items()
                   if kind != "passed" and not any(reason in message for reason in reasons)}
    assert unexplained == {}
    assert "skipped" not in {kind for kind, _ in run.outcomes.values()}  # none left out

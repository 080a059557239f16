"""Values no server can be sent — NaN and infinity, text with a lone surrogate, lists nested
thousands of levels deep — and sources that are no workflow (``""``, ``"null"``) are refused
with one short typed error at every door a workflow or a value comes in by: ``Workflow.load``
(dict, JSON text, file, PNG), ``Workflow.set``, ``client.submit``/``run`` (overrides and
``extra_data``), ``--set`` on the command line and in the magics, the cell body, ``sweep``.
Nothing reaches the server."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import comfy_nb
from comfy_nb import ComfyError
from comfy_nb.cli import main
from comfy_nb.emulator import RunningEmulator
from comfy_nb.sweeps import parse_sweep_values
from comfy_nb.workflow import ParameterError, Workflow, WorkflowError
from comfy_nb.workflow._params import parse_assignments
from comfy_nb.workflow._values import MAX_DEPTH, parse_value, problem
from comfy_nb.workflows import bundled

from ..factories import Emulators


def nested(depth: int) -> list[Any]:
    value: list[Any] = [1]
    for _ in range(depth - 1):
        value = [value]
    return value


DEEP = 3000  # beyond what the json module (and the stack) can take
DEEP_TEXT = "[" * DEEP + "]" * DEEP
UNSENDABLE = {
    "nan": (float("nan"), "NaN"),
    "inf": (float("inf"), "infinity"),
    "-inf": (float("-inf"), "-infinity"),
    "surrogate": ("a \ud800 cat", "lone surrogate"),
    "deep": (nested(DEEP), f"more than {MAX_DEPTH} levels deep"),
    "just too deep": (nested(MAX_DEPTH), f"more than {MAX_DEPTH} levels deep"),
}


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and len(text) < 300, text
    assert isinstance(error, (ComfyError, ValueError))
    return text


@pytest.fixture
def txt2img() -> dict[str, Any]:
    return bundled("txt2img")


def with_cfg(workflow: dict[str, Any], value: Any) -> dict[str, Any]:
    node = workflow["3"]
    return {**workflow, "3": {**node, "inputs": {**node["inputs"], "cfg": value}}}


# -- the checks themselves ------------------------------------------------------------------------


def test_plain_json_has_no_problem(txt2img: dict[str, Any]) -> None:
    assert problem(txt2img) is None
    assert problem(nested(MAX_DEPTH)) is None  # exactly as deep as allowed
    assert problem({1: [None, True, 1.5, "x"]}) is None  # JSON writes the key as text


def test_a_structure_that_contains_itself_is_a_problem_not_a_hang() -> None:
    loop: list[Any] = []
    loop.append(loop)
    assert "levels deep" in (problem(loop) or "")


# -- Workflow.load --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", UNSENDABLE)
def test_load_refuses_a_dict_holding_an_unsendable_value(case: str,
                                                         txt2img: dict[str, Any]) -> None:
    value, named = UNSENDABLE[case]
    with pytest.raises(WorkflowError) as caught:
        Workflow.load(with_cfg(txt2img, value))
    text = one_line(caught.value)
    assert named in text and "3/inputs/cfg" in text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_load_refuses_json_text_with_numbers_json_cannot_carry(literal: str,
                                                               txt2img: dict[str, Any],
                                                               tmp_path: Path) -> None:
    text = json.dumps(txt2img).replace('"cfg": 7.0', f'"cfg": {literal}')
    assert literal in text
    path = tmp_path / "workflow.json"
    path.write_text(text)
    png = tmp_path / "workflow.png"
    info = PngInfo()
    info.add_text("prompt", text)
    Image.new("RGB", (4, 4)).save(png, pnginfo=info)
    for source in (text, path, str(path), png, png.read_bytes()):
        with pytest.raises(WorkflowError) as caught:
            Workflow.load(source)
        assert "3/inputs/cfg" in one_line(caught.value)


def test_load_refuses_json_text_nested_too_deeply(txt2img: dict[str, Any]) -> None:
    text = json.dumps(with_cfg(txt2img, 0))
    for deep in (DEEP_TEXT, json.dumps(nested(MAX_DEPTH + 50))):  # too deep to read, to use
        with pytest.raises(WorkflowError, match="levels deep") as caught:
            Workflow.load(text.replace('"cfg": 0', f'"cfg": {deep}'))
        one_line(caught.value)


@pytest.mark.parametrize("source", ["", "   ", "\n"])
def test_an_empty_string_is_not_read_as_the_current_folder(source: str) -> None:
    with pytest.raises(WorkflowError, match="empty string") as caught:
        Workflow.load(source)
    assert "directory" not in one_line(caught.value)


@pytest.mark.parametrize(("source", "kind"), [("null", "null"), ("true", "a boolean"),
                                              ("42", "a number"), ('"txt2img"', "a string")])
def test_json_that_is_not_an_object_is_named_as_json(source: str, kind: str) -> None:
    with pytest.raises(WorkflowError) as caught:
        Workflow.load(source)
    text = one_line(caught.value)
    assert f"not {kind}" in text and "no workflow file" not in text


def test_a_file_named_like_json_is_still_read(tmp_path: Path, txt2img: dict[str, Any],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("null").write_text(json.dumps(txt2img))
    assert Workflow.load("null") == Workflow.load(txt2img)


# -- Workflow.set ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", UNSENDABLE)
def test_set_refuses_an_unsendable_value_and_changes_nothing(case: str,
                                                             txt2img: dict[str, Any]) -> None:
    value, named = UNSENDABLE[case]
    if case == "just too deep":  # an input sits 3 levels into the workflow
        value = nested(MAX_DEPTH - 2)
    wf = Workflow.load(txt2img)
    with pytest.raises(ParameterError) as caught:
        wf.set("KSampler.cfg", value)
    text = one_line(caught.value)
    assert "'3.cfg'" in text and named in text
    assert wf == Workflow.load(txt2img)
    Workflow.load(txt2img).set("KSampler.cfg", nested(MAX_DEPTH - 3))  # as deep as a load takes


# -- command-line values --------------------------------------------------------------------------


def test_set_arguments_read_nan_as_text_and_refuse_json_too_deep_to_read() -> None:
    assert parse_assignments(["6.text=NaN", "x=Infinity", "c=7.5"], "--set") == {
        "6.text": "NaN", "x": "Infinity", "c": 7.5}
    assert parse_value("[1, NaN]") == "[1, NaN]"
    with pytest.raises(ValueError, match=r"--set x=: .*levels deep") as caught:
        parse_assignments(["x=" + DEEP_TEXT], "--set")
    one_line(caught.value)


def test_sweep_values_refuse_json_too_deep_to_read() -> None:
    for text in (DEEP_TEXT, "1," + DEEP_TEXT):
        with pytest.raises(ValueError, match=r"--sweep cfg=: .*levels deep") as caught:
            parse_sweep_values([f"cfg={text}"])
        one_line(caught.value)
    assert parse_sweep_values(["text=NaN,a"]) == {"text": ["NaN", "a"]}


@pytest.mark.parametrize("value", [DEEP_TEXT, "1e999", json.dumps(nested(MAX_DEPTH))],
                         ids=["too deep to read", "overflows to infinity", "too deep"])
def test_cli_set_refuses_an_unsendable_value_before_connecting(
        value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--url", "http://127.0.0.1:1", "--set", f"KSampler.cfg={value}",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("comfy-nb run: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "queued" not in err


@pytest.mark.parametrize("workflow", ["", "null"])
def test_cli_refuses_an_empty_or_null_workflow(workflow: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", workflow, "--url", "http://127.0.0.1:1",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "directory" not in err and "no workflow file" not in err


# -- submitting -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator(module_emulators: Emulators) -> RunningEmulator:
    return module_emulators(step_delay=0)


def nothing_reached(emulator: RunningEmulator) -> bool:
    queue = httpx.get(f"{emulator.url}/api/queue").json()
    history = httpx.get(f"{emulator.url}/api/history").json()
    return not queue["queue_running"] and not queue["queue_pending"] and not history


@pytest.mark.parametrize("case", UNSENDABLE)
def test_submit_and_run_refuse_unsendable_values(case: str, emulator: RunningEmulator,
                                                 txt2img: dict[str, Any]) -> None:
    value, named = UNSENDABLE[case]
    with comfy_nb.connect(emulator.url) as client:
        attempts = [
            lambda: client.submit(with_cfg(txt2img, value)),
            lambda: client.run(txt2img, overrides={"KSampler.cfg": value}),
            lambda: client.submit(txt2img, extra_data={"note": {"n": value}}),
        ]
        for attempt in attempts:
            with pytest.raises(WorkflowError) as caught:
                attempt()
            assert named in one_line(caught.value)
        with pytest.raises(WorkflowError) as caught:
            client.submit(txt2img, extra_data={"note": {"n": value}})
        assert "extra_data/note/n" in str(caught.value)
    assert nothing_reached(emulator)


@pytest.mark.parametrize("source", ["", "null"])
def test_submit_refuses_an_empty_or_null_workflow(source: str,
                                                  emulator: RunningEmulator) -> None:
    with comfy_nb.connect(emulator.url) as client, pytest.raises(WorkflowError) as caught:
        client.submit(source)
    text = one_line(caught.value)
    assert "directory" not in text and "no workflow file" not in text
    assert nothing_reached(emulator)


def test_sweep_refuses_an_unsendable_value(emulator: RunningEmulator,
                                           txt2img: dict[str, Any]) -> None:
    with comfy_nb.connect(emulator.url) as client:
        for values in ([7.0, math.nan], [7.0, nested(DEEP)]):
            with pytest.raises(ParameterError) as caught:
                comfy_nb.sweep(txt2img, cfg=values, client=client, progress="off")
            assert "'3.cfg'" in one_line(caught.value)
    assert nothing_reached(emulator)


# -- the magics -----------------------------------------------------------------------------------


@pytest.fixture
def shell(emulator: RunningEmulator, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("COMFY_URL", emulator.url)
    monkeypatch.setenv("COMFY_NB_PROGRESS", "off")
    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "comfy_nb")
    yield ip
    ip.run_line_magic("unload_ext", "comfy_nb")


def cell_error(ip: InteractiveShell, source: str) -> BaseException:
    outcome = ip.run_cell(source)
    error = outcome.error_in_exec or outcome.error_before_exec
    assert error is not None, "the cell should have failed"
    return error


def test_magics_refuse_unsendable_values_in_one_line(shell: InteractiveShell,
                                                     emulator: RunningEmulator,
                                                     txt2img: dict[str, Any]) -> None:
    body = json.dumps(txt2img)
    shell.user_ns["deep"] = nested(DEEP)
    cases = [
        (f"%comfy_run txt2img --set KSampler.cfg={DEEP_TEXT}", UsageError, "levels deep"),
        ("%comfy_run txt2img --set KSampler.cfg=1e999", ParameterError, "infinity"),
        ("%%comfy_run\n" + body.replace('"cfg": 7.0', '"cfg": NaN'), WorkflowError, "NaN"),
        ("%%comfy_run\n" + body.replace('"cfg": 7.0', '"cfg": ' + DEEP_TEXT), WorkflowError,
         "levels deep"),
        ("%%comfy_run\n" + body.replace('"cfg": 7.0', '"cfg": {{deep}}'), UsageError,
         "levels deep"),
        ("%%comfy_run --sweep cfg=1," + DEEP_TEXT + "\n" + body, UsageError, "levels deep"),
    ]
    for source, kind, named in cases:
        error = cell_error(shell, source)
        assert isinstance(error, kind), (source[:40], error)
        assert named in one_line(error) if isinstance(error, ComfyError) else named in str(error)
        assert "\n" not in str(error)
    assert nothing_reached(emulator)

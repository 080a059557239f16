"""Client-side validation (comfy_nb.workflow._check) against the real server's recorded verdicts:
every ``errors/POST_prompt_*.json`` answer, every recorded valid run, and the checks the server
makes late or not at all (cycles, all unknown classes, close names for a misspelled model)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfy_nb._problem_table import TABLE_WIDTH, wrap
from comfy_nb.errors import ComfyError, WorkflowError
from comfy_nb.workflow._check import Problem, WorkflowInvalid, check_workflow, validate_workflow
from tests import fixture_paths

FIXTURES = fixture_paths.COMFYUI
ERROR_CASES = fixture_paths.listing(FIXTURES / "errors", "POST_prompt_*.json")
# the cases the server answered with an error body (the others crashed it: a 500, no message)
ANSWERED_CASES = fixture_paths.listing(
    FIXTURES / "errors", "POST_prompt_*.json",
    where=lambda path: (json.loads(path.read_text(encoding="utf-8"))["response"]["status"] == 400
                        and isinstance(json.loads(path.read_text(encoding="utf-8"))["response"]
                                       .get("body"), dict)))
RUNS = fixture_paths.listing(FIXTURES / "runs", where=Path.is_dir)
FILE_INPUTS = {"LoadImage": "image", "LoadImageMask": "image", "LoadAudio": "audio",
               "LoadVideo": "file"}


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    info: dict[str, Any] = _load(FIXTURES / "http" / "object_info.json")
    return info


def _sent_prompt(exchange: dict[str, Any]) -> Any:
    """What the server validated: the body's ``prompt`` (None when there is none), or the raw
    text of a body that is not JSON."""
    request = exchange["request"]
    if "body" not in request:
        return request.get("raw_body")
    body = request["body"]
    return body.get("prompt") if isinstance(body, dict) else body


def _server_verdict(exchange: dict[str, Any]) -> set[tuple[str | None, str]]:
    """(node id, error type) pairs of the recorded answer. A 500 is ``invalid_prompt``; an
    ``invalid_prompt`` 400 names its node in ``details`` ("Node ID '#3'")."""
    response = exchange["response"]
    if response["status"] == 500:
        return {(None, "invalid_prompt")}
    body = response["body"]
    found: set[tuple[str | None, str]] = set()
    for node_id, entry in body.get("node_errors", {}).items():
        found.update((node_id, error["type"]) for error in entry["errors"])
    error = body.get("error")
    if isinstance(error, dict) and not found:
        details = error.get("details", "")
        node = details[len("Node ID '#"):-1] if details.startswith("Node ID '#") else None
        found.add((node, error["type"]))
    return found


def _client_verdict(problems: list[Problem]) -> set[tuple[str | None, str]]:
    return {(problem.node_id, problem.type) for problem in problems}


def _agreement(object_info: dict[str, Any]) -> tuple[int, int, list[str]]:
    agreed, disagreed = 0, []
    for path in ERROR_CASES:
        exchange = _load(path)
        problems = check_workflow(_sent_prompt(exchange), object_info)
        if _client_verdict(problems) == _server_verdict(exchange):
            agreed += 1
        else:
            disagreed.append(path.name)
    return agreed, len(ERROR_CASES), disagreed


@pytest.mark.parametrize("path", ERROR_CASES, ids=[p.stem for p in ERROR_CASES])
def test_same_verdict_as_the_recorded_server(path: Path, object_info: dict[str, Any]) -> None:
    exchange = _load(path)
    prompt = _sent_prompt(exchange)
    before = copy.deepcopy(prompt)
    problems = check_workflow(prompt, object_info)
    assert _client_verdict(problems) == _server_verdict(exchange)
    assert prompt == before  # the caller's workflow is never coerced in place
    if exchange["response"]["status"] == 500:
        assert [p.type for p in problems] == ["invalid_prompt"]
        assert problems[0].message  # says what to do
    if problems:
        with pytest.raises(WorkflowInvalid) as caught:
            validate_workflow(prompt, object_info)
        assert caught.value.problems == problems
    else:
        validate_workflow(prompt, object_info)


def test_agreement_figure(object_info: dict[str, Any], capsys: pytest.CaptureFixture[str]
                          ) -> None:
    agreed, total, disagreed = _agreement(object_info)
    with capsys.disabled():
        print(f"\nclient/server verdict agreement: {agreed} of {total} recorded POST /prompt")
    assert total == len(ERROR_CASES) >= 23
    assert disagreed == []


def test_ui_format_says_to_convert(object_info: dict[str, Any]) -> None:
    exchange = _load(FIXTURES / "errors" / "POST_prompt_ui_format_body_as_is.json")
    problems = check_workflow(exchange["request"]["body"], object_info)
    assert [p.type for p in problems] == ["invalid_prompt"]
    assert "to_api(object_info)" in problems[0].message


def _with_files(object_info: dict[str, Any], prompt: dict[str, Any]) -> dict[str, Any]:
    """object_info whose file combos list every file a Load* node of ``prompt`` names."""
    info = copy.deepcopy(object_info)
    for node in prompt.values():
        name = FILE_INPUTS.get(node["class_type"])
        value = node["inputs"].get(name) if name else None
        if not isinstance(value, str):
            continue
        spec = info[node["class_type"]]["input"]["required"][name]
        options = spec[0] if isinstance(spec[0], list) else spec[1].setdefault("options", [])
        if value not in options:
            options.append(value)
    return info


@pytest.mark.parametrize("run", RUNS, ids=[run.name for run in RUNS])
def test_recorded_valid_runs_have_no_problems(run: Path, object_info: dict[str, Any]) -> None:
    request = _load(run / "post_prompt.json")["request"]["body"]
    prompt = request["prompt"]
    problems = check_workflow(prompt, _with_files(object_info, prompt),
                              partial_execution_targets=request.get("partial_execution_targets"))
    assert problems == []


def test_uploaded_names_count_as_files(object_info: dict[str, Any]) -> None:
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "fresh_upload.png"}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    assert [p.type for p in check_workflow(prompt, object_info)] == ["custom_validation_failed"]
    assert check_workflow(prompt, object_info, known_files=["fresh_upload.png"]) == []


def test_values_to_upload_count_as_files(tmp_path: Path, object_info: dict[str, Any]) -> None:
    from PIL import Image

    local = tmp_path / "photo.png"
    Image.new("RGB", (4, 4)).save(local)
    for value in (Image.new("RGB", (4, 4)), local, str(local), "https://example.com/x.png"):
        prompt: dict[str, Any] = {
            "1": {"class_type": "LoadImage", "inputs": {"image": value}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        }
        assert check_workflow(prompt, object_info) == [], value
        assert prompt["1"]["inputs"]["image"] is value


def _txt2img() -> dict[str, Any]:
    exchange = _load(FIXTURES / "errors" / "POST_prompt_missing_checkpoint_model.json")
    prompt: dict[str, Any] = copy.deepcopy(exchange["request"]["body"]["prompt"])
    return prompt


def test_misspelled_checkpoint_gets_suggestions(object_info: dict[str, Any]) -> None:
    prompt = _txt2img()
    prompt["4"]["inputs"]["ckpt_name"] = "random_sd15.safetensor"
    problems = check_workflow(prompt, object_info)
    assert len(problems) == 1
    problem = problems[0]
    assert (problem.node_id, problem.class_type, problem.input_name, problem.type) == (
        "4", "CheckpointLoaderSimple", "ckpt_name", "value_not_in_list")
    assert problem.suggestions == ("random_sd15.safetensors",)
    assert "did you mean 'random_sd15.safetensors'" in str(WorkflowInvalid(problems))


def test_misspelled_image_file_gets_suggestions(object_info: dict[str, Any]) -> None:
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "exmple.png"}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    (problem,) = check_workflow(prompt, object_info)
    assert problem.type == "custom_validation_failed"  # what the server says for LoadImage
    assert problem.suggestions[0] == "example.png"


def test_every_unknown_class_is_listed(object_info: dict[str, Any]) -> None:
    prompt = {
        "1": {"class_type": "EmptyImag", "inputs": {}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
        "3": {"class_type": "NoSuchNodeXYZ", "inputs": {}},
        "4": {"inputs": {}},
    }
    problems = check_workflow(prompt, object_info)
    assert _client_verdict(problems) == {("1", "invalid_prompt"), ("3", "invalid_prompt"),
                                         ("4", "invalid_prompt")}
    by_node = {p.node_id: p for p in problems}
    assert "EmptyImage" in by_node["1"].suggestions
    assert by_node["3"].class_type == "NoSuchNodeXYZ"


def test_cycle_is_reported(object_info: dict[str, Any]) -> None:
    prompt = {
        "1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
        "4": {"class_type": "ImageInvert", "inputs": {"image": ["4", 0]}},  # dangling: not run
    }
    problems = check_workflow(prompt, object_info)
    assert [(p.node_id, p.type) for p in problems] == [("1", "dependency_cycle")]
    assert "1 → 2 → 1" in problems[0].details


def test_self_loop_upstream_of_an_output(object_info: dict[str, Any]) -> None:
    prompt = {
        "1": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    assert _client_verdict(check_workflow(prompt, object_info)) == {("1", "dependency_cycle")}


def test_partial_execution_targets(object_info: dict[str, Any]) -> None:
    exchange = _load(FIXTURES / "errors" / "POST_prompt_one_output_valid_one_invalid.json")
    prompt = exchange["request"]["body"]["prompt"]
    assert check_workflow(prompt, object_info, partial_execution_targets=["2"]) == []
    assert check_workflow(prompt, object_info, partial_execution_targets=["4"]) != []
    (problem,) = check_workflow(prompt, object_info, partial_execution_targets=[])
    assert problem.type == "prompt_no_outputs"


def test_table_and_message(object_info: dict[str, Any]) -> None:
    prompt = _txt2img()
    prompt["4"]["inputs"]["ckpt_name"] = "random_sd15.safetensor"
    prompt["5"]["inputs"]["width"] = 0
    prompt["3"]["inputs"]["steps"] = 0
    prompt["4"]["_meta"] = {"title": "Load Checkpoint"}
    with pytest.raises(WorkflowInvalid) as caught:
        validate_workflow(prompt, object_info)
    error = caught.value
    assert isinstance(error, WorkflowError) and isinstance(error, ComfyError)
    assert {(p.node_id, p.type) for p in error.problems} == {
        ("4", "value_not_in_list"), ("5", "value_smaller_than_min"),
        ("3", "value_smaller_than_min")}
    table = error.table()
    lines = table.splitlines()
    assert lines[0].split() == ["node", "title", "class", "input", "error", "message",
                                "allowed"]
    assert set(lines[1]) == {"-", " "}
    cells = _table_cells(table)
    assert [row["node"] for row in cells] == [p.node_id for p in error.problems]
    (checkpoint,) = (row for row in cells if row["class"] == "CheckpointLoaderSimple")
    assert checkpoint["title"] == "Load Checkpoint"
    assert "random_sd15.safetensors" in _squeezed(checkpoint["message"])
    widths = {p.node_id: p for p in error.problems}
    assert widths["5"].title is None  # the recorded prompt has no _meta
    assert widths["5"].allowed == "16 … 16384 (step 8)"
    assert widths["4"].allowed.startswith("'")
    text = str(error)
    assert text.startswith("the workflow has 3 problems:")
    assert "node 5 (EmptyLatentImage), input 'width'" in text


def _table_cells(table: str) -> list[dict[str, str]]:
    """The rows of a table as {column: cell text}, a cell's wrapped lines joined again."""
    header, rule, *body = table.splitlines()
    spans = [match.span() for match in re.finditer("-+", rule)]
    names = [header[start:end].strip() for start, end in spans]
    rows: list[dict[str, list[str]]] = []
    for line in body:
        parts = [line[start:end].strip() for start, end in spans]
        assert line[:spans[0][0]].strip() == ""
        if parts[0]:  # a new row starts with its node; wrapped lines leave it blank
            rows.append({name: [] for name in names})
        for name, part in zip(names, parts, strict=True):
            if part:
                rows[-1][name].append(part)
    return [{name: " ".join(parts) for name, parts in row.items()} for row in rows]


def _squeezed(text: str) -> str:
    """``text`` without whitespace: what a cell must hold however it was wrapped."""
    return "".join(text.split())


def _valid_txt2img() -> dict[str, Any]:
    prompt = _txt2img()
    prompt["4"]["inputs"]["ckpt_name"] = "random_sd15.safetensors"
    return prompt


def _set(node: str, name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(prompt: dict[str, Any]) -> None:
        prompt[node]["inputs"][name] = value
    return change


def _out_of_range(prompt: dict[str, Any]) -> None:
    prompt["3"]["inputs"]["cfg"] = 300
    prompt["5"]["inputs"]["width"] = 0
    prompt["4"]["inputs"]["ckpt_name"] = "v1-5-pruned-emaonly-fp16.safetensors"
    prompt["4"]["_meta"] = {"title": "Load Checkpoint"}


def _bad_sampler(prompt: dict[str, Any]) -> None:
    prompt["3"]["inputs"]["sampler_name"] = "eulr_ancestral_cfg"
    prompt["3"]["_meta"] = {"title": "Main sampler with a long title"}


@pytest.mark.parametrize(("change", "shown", "width"), [
    (_set("3", "steps", "twenty"), "invalid literal for int() with base 10: 'twenty'",
     TABLE_WIDTH),
    (lambda prompt: prompt["3"].update(class_type="KSamplr"),
     "did you mean 'KSampler', 'SamplerLMS' or 'KSamplerSelect'?", TABLE_WIDTH),
    (lambda prompt: prompt.pop("9"),
     "Prompt has no outputs: add an output node such as SaveImage or PreviewImage, or check "
     "partial_execution_targets", TABLE_WIDTH),
    (_out_of_range, "not in ['random_sd15.safetensors']", 120),
    (_bad_sampler, "'eulr_ancestral_cfg' not in (list of length 42) (did you mean "
     "'euler_ancestral_cfg_pp', 'euler_ancestral' or 'res_multistep_ancestral_cfg_pp'?)", 120),
], ids=["wrong type", "unknown class", "no output", "out of range", "long combo list"])
def test_table_wraps_whole_messages_to_a_notebook_width(
        object_info: dict[str, Any], change: Callable[[dict[str, Any]], Any], shown: str,
        width: int) -> None:
    prompt = _valid_txt2img()
    change(prompt)
    with pytest.raises(WorkflowInvalid) as caught:
        validate_workflow(prompt, object_info)
    error = caught.value
    lines = error.notebook_lines()
    assert lines[0].startswith("WorkflowInvalid: the workflow has ")
    assert max(len(line) for line in lines) <= width
    table = "\n".join(lines[2:])
    assert table == error.table()
    cells = _table_cells(table)
    assert any(_squeezed(shown) in _squeezed(row["message"]) for row in cells)
    assert shown in str(error)
    assert len(cells) == len(error.problems)
    for row, problem in zip(cells, error.problems, strict=True):
        assert _squeezed(row["message"]) == _squeezed(problem.full_message())
        assert _squeezed(row["allowed"]) == _squeezed(problem.allowed or "-")
        assert (row["node"], row["class"], row["input"], row["error"]) == (
            problem.node_id or "-", problem.class_type or "-", problem.input_name or "-",
            problem.type)


def test_link_to_a_missing_node_is_explained(object_info: dict[str, Any]) -> None:
    prompt = _valid_txt2img()
    prompt["3"]["inputs"]["model"] = ["99", 0]
    with pytest.raises(WorkflowInvalid) as caught:
        validate_workflow(prompt, object_info)
    explanation = "KSampler.model links to node 99, which is not in the workflow"
    assert f"node 3 (KSampler), input 'model': Exception when validating inner node: " \
        f"{explanation}" in str(caught.value)
    (row,) = _table_cells(caught.value.table())
    assert (row["input"], _squeezed(row["message"])) == (
        "model", _squeezed(f"Exception when validating inner node: {explanation}"))
    # what the server says, kept as it is, with the explanation beside it
    (problem,) = caught.value.problems
    assert (problem.node_id, problem.type, problem.message, problem.details) == (
        "3", "exception_during_inner_validation", "Exception when validating inner node",
        "'99'")
    assert (problem.input_name, problem.explanation, problem.allowed) == (
        "model", explanation, "MODEL")


def test_the_explained_link_is_the_one_the_server_names(object_info: dict[str, Any]) -> None:
    exchange = _load(FIXTURES / "errors" / "POST_prompt_link_to_nonexistent_node.json")
    (problem,) = check_workflow(_sent_prompt(exchange), object_info)
    assert (problem.type, problem.details, problem.input_name, problem.explanation) == (
        "exception_during_validation", "'42'", "images",
        "SaveImage.images links to node 42, which is not in the workflow")

    prompt = _valid_txt2img()
    inputs = prompt["3"]["inputs"]
    # the server checks inputs in the node's own order (model before positive), not the dict's
    prompt["3"]["inputs"] = {"positive": ["98", 0], **inputs, "model": ["99", 0]}
    (problem,) = check_workflow(prompt, object_info)
    assert problem.details == "'99'"
    assert problem.explanation == "KSampler.model links to node 99, which is not in the workflow"


def test_most_error_cases_have_a_message() -> None:
    assert len(ANSWERED_CASES) >= len(ERROR_CASES) - 6


@pytest.mark.parametrize("path", ANSWERED_CASES, ids=lambda path: path.stem)
def test_messages_are_the_servers_own(path: Path, object_info: dict[str, Any]) -> None:
    exchange = _load(path)
    body = exchange["response"]["body"]
    said = {(None, body["error"]["type"], body["error"]["message"])}
    for node_id, entry in body.get("node_errors", {}).items():
        said.update((node_id, error["type"], error["message"]) for error in entry["errors"])
    for problem in check_workflow(_sent_prompt(exchange), object_info):
        if problem.node_id is None and problem.type in ("no_prompt", "invalid_prompt"):
            continue  # no workflow the server could read: the client says what to pass
        node = problem.node_id if (problem.node_id, problem.type, problem.message) in said \
            else None
        assert (node, problem.type, problem.message) in said


@given(text=st.text(st.sampled_from("ab_-.,/ Cx…'"), max_size=80), width=st.integers(1, 30))
def test_wrapping_keeps_every_character(text: str, width: int) -> None:
    lines = wrap(text, width)
    assert all(len(line) <= width for line in lines)
    assert _squeezed("".join(lines)) == _squeezed(text)
    assert all(len(word) > width or any(word in line for line in lines)
               for word in text.split())


def test_bad_object_info_is_a_workflow_error() -> None:
    with pytest.raises(WorkflowError):
        check_workflow({}, None)  # type: ignore[arg-type]


# -- property: whatever ``api`` holds, only problems (or WorkflowError) come back ---------------

_NAMES = st.sampled_from(["1", "2", "3", "class_type", "inputs", "nodes", "links", "prompt",
                          "image", "images", "width", "SaveImage", "EmptyImage", "LoadImage",
                          "PreviewImage", "ImageInvert", "example.png", "", "x"])
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | _NAMES
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(_NAMES | st.text(max_size=4), children, max_size=4),
    max_leaves=20,
)
_LINKS = st.tuples(st.sampled_from(["1", "2", "3", "9"]), st.integers(-1, 3)).map(list)
_NODES = st.fixed_dictionaries(
    {"class_type": st.sampled_from(["SaveImage", "EmptyImage", "LoadImage", "PreviewImage",
                                    "ImageInvert", "ImageScale", "Nope"]) | _JSON},
    optional={"inputs": st.dictionaries(_NAMES, _LINKS | _JSON, max_size=5) | _JSON},
)
_PROMPTS = st.dictionaries(st.sampled_from(["1", "2", "3"]), _NODES | _JSON, max_size=3)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(api=_JSON | _PROMPTS)
def test_any_input_gives_problems_not_exceptions(object_info: dict[str, Any], api: Any) -> None:
    try:
        problems = check_workflow(api, object_info)
    except WorkflowError:
        return
    assert all(isinstance(problem, Problem) for problem in problems)
    if problems:
        error = WorkflowInvalid(problems)
        cells = _table_cells(error.table())
        assert [_squeezed(row["message"]) for row in cells] == [
            _squeezed(problem.full_message()) or "-" for problem in problems]

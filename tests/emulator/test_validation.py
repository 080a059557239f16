"""The emulator's POST /prompt validation against the traffic recorded on a real ComfyUI 0.3.64."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from comfy_nb._comfyui.validation import (
    FILE_CHECKS,
    PromptValidation,
    Site,
    Step,
    types_compatible,
)
from comfy_nb.emulator._object_info import with_input_files
from comfy_nb.emulator._validation import format_traceback, validate_prompt
from tests import fixture_paths

FIXTURES = fixture_paths.COMFYUI
ERROR_CASES = sorted((FIXTURES / "errors").glob("POST_prompt_*.json"))
RUNS = sorted(path for path in (FIXTURES / "runs").iterdir() if path.is_dir())

# What the recording server's input folder held (README "inputs/" and the upload fixtures).
RECORDED_INPUT_FILES = {
    "comfy_nb_gradient.png": "gradient_64x48.png",
    "comfy_nb_gradient (1).png": "gradient_64x48.png",
    "example.png": "gradient_64x48.png",
    "comfy_nb_sine.wav": "sine_440hz_0.5s.wav",
    "comfy_nb/grad.png": "gradient_64x48.png",
}
FILE_INPUTS = {"LoadImage": "image", "LoadImageMask": "image", "LoadAudio": "audio"}


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def recorded_object_info() -> dict[str, Any]:
    info: dict[str, Any] = _load(FIXTURES / "http" / "object_info.json")
    return info


def _populate(input_dir: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        target = input_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / "inputs" / source, target)
    return input_dir


def _files_for(prompt: dict[str, Any]) -> dict[str, str]:
    """The recorded input folder plus every file a Load* node of ``prompt`` names."""
    files = dict(RECORDED_INPUT_FILES)
    for node in prompt.values():
        name = node.get("inputs", {}).get(FILE_INPUTS.get(node.get("class_type", ""), ""))
        if isinstance(name, str):
            suffix = name.rsplit(".", 1)[-1]
            files[name] = "sine_440hz_0.5s.wav" if suffix == "wav" else "gradient_64x48.png"
    return files


def _respond(validation: PromptValidation) -> tuple[int, dict[str, Any]]:
    """The route's answer, without the server-chosen prompt_id and number."""
    if validation.ok:
        return 200, {"node_errors": validation.node_errors}
    return 400, {"error": validation.error, "node_errors": validation.node_errors}


def _tracebacks(value: Any) -> list[Any]:
    """Every ``extra_info.traceback`` in a body, removed from it (in place)."""
    found: list[Any] = []
    if isinstance(value, dict):
        if "traceback" in value and "exception_type" in value:
            found.append(value.pop("traceback"))
        for item in value.values():
            found.extend(_tracebacks(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_tracebacks(item))
    return found


def _case_params() -> list[Any]:
    params = []
    for path in ERROR_CASES:
        exchange = _load(path)
        status = exchange["response"]["status"]
        if status not in (200, 400):
            continue
        if "prompt" not in exchange["request"]["body"]:
            continue  # no `prompt` key: answered by the route (tests/conformance covers it)
        params.append(pytest.param(path, id=path.stem.removeprefix("POST_prompt_")))
    return params


@pytest.mark.parametrize("path", _case_params())
def test_recorded_response(
    path: Path, recorded_object_info: dict[str, Any], tmp_path: Path
) -> None:
    exchange = _load(path)
    body = exchange["request"]["body"]
    input_dir = _populate(tmp_path / "input", RECORDED_INPUT_FILES)
    object_info = with_input_files(recorded_object_info, input_dir)

    validation = validate_prompt(
        copy.deepcopy(body["prompt"]),
        object_info,
        partial_execution_targets=body.get("partial_execution_targets"),
        input_dir=input_dir,
    )
    status, got = _respond(validation)
    expected = {
        key: value
        for key, value in exchange["response"]["body"].items()
        if key not in ("prompt_id", "number")
    }
    got = json.loads(json.dumps(got))
    got_tracebacks = _tracebacks(got)
    expected_tracebacks = _tracebacks(expected)

    assert status == exchange["response"]["status"]
    assert got == expected
    assert json.dumps(got) == json.dumps(expected)  # key order too
    assert len(got_tracebacks) == len(expected_tracebacks)
    for traceback in got_tracebacks:
        assert isinstance(traceback, list) and traceback
        assert all(isinstance(line, str) and line for line in traceback)


@pytest.mark.parametrize(
    "case",
    ["link_to_nonexistent_node", "link_output_index_out_of_range", "node_without_inputs_key"],
)
def test_recorded_tracebacks_are_rebuilt_exactly(
    case: str, recorded_object_info: dict[str, Any], tmp_path: Path
) -> None:
    exchange = _load(FIXTURES / "errors" / f"POST_prompt_{case}.json")
    validation = validate_prompt(
        exchange["request"]["body"]["prompt"], recorded_object_info, input_dir=tmp_path
    )
    assert _respond(validation)[1] == {
        key: value for key, value in exchange["response"]["body"].items()
    }


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(path, id=path.stem.removeprefix("POST_prompt_"))
        for path in ERROR_CASES
        if _load(path)["response"]["status"] == 500
    ],
)
def test_server_crashes_raise(
    path: Path, recorded_object_info: dict[str, Any], tmp_path: Path
) -> None:
    request = _load(path)["request"]
    with pytest.raises(Exception):  # noqa: B017 - the route turns any exception into the 500
        body = request["body"] if "body" in request else json.loads(request["raw_body"])
        validate_prompt(body["prompt"], recorded_object_info, input_dir=tmp_path)


@pytest.mark.parametrize("run", [pytest.param(run, id=run.name) for run in RUNS])
def test_recorded_runs_validate(
    run: Path, recorded_object_info: dict[str, Any], tmp_path: Path
) -> None:
    body = _load(run / "post_prompt.json")["request"]["body"]
    input_dir = _populate(tmp_path / "input", _files_for(body["prompt"]))
    object_info = with_input_files(recorded_object_info, input_dir)

    validation = validate_prompt(
        copy.deepcopy(body["prompt"]),
        object_info,
        partial_execution_targets=body.get("partial_execution_targets"),
        input_dir=input_dir,
    )

    assert validation.ok, validation
    assert validation.error is None
    assert validation.node_errors == {}
    history = _load(run / "history.json")["response"]["body"]
    if history:
        (entry,) = history.values()
        assert set(validation.outputs_to_execute) == set(entry["prompt"][4])
    else:  # nothing recorded: at least every requested output node must run
        assert validation.outputs_to_execute


def test_with_input_files_lists_like_comfyui(
    recorded_object_info: dict[str, Any], tmp_path: Path
) -> None:
    input_dir = _populate(tmp_path / "input", RECORDED_INPUT_FILES)
    rebuilt = with_input_files(recorded_object_info, input_dir)
    for class_type, name in FILE_INPUTS.items():
        spec = rebuilt[class_type]["input"]["required"][name]
        assert spec == recorded_object_info[class_type]["input"]["required"][name]
    assert rebuilt["LoadVideo"]["input"]["required"]["file"][1]["options"] == []

    (input_dir / "clip.mp4").write_bytes(b"")
    (input_dir / "3d").mkdir()
    (input_dir / "3d" / "cube.glb").write_bytes(b"")
    rebuilt = with_input_files(recorded_object_info, input_dir)
    assert rebuilt["LoadImage"]["input"]["required"]["image"][0] == [
        "comfy_nb_gradient (1).png",
        "comfy_nb_gradient.png",
        "example.png",
    ]
    assert rebuilt["LoadAudio"]["input"]["required"]["audio"][0] == [
        "clip.mp4",
        "comfy_nb_sine.wav",
    ]
    assert rebuilt["LoadVideo"]["input"]["required"]["file"][1]["options"] == ["clip.mp4"]
    assert rebuilt["Load3D"]["input"]["required"]["model_file"][0] == ["3d/cube.glb"]
    # the original is left alone
    assert recorded_object_info["LoadVideo"]["input"]["required"]["file"][1]["options"] == []


# Behaviours of ComfyUI 0.3.64 that the recordings do not cover.


def _validate(
    prompt: dict[str, Any], object_info: dict[str, Any], tmp_path: Path, **kwargs: Any
) -> PromptValidation:
    return validate_prompt(prompt, object_info, input_dir=tmp_path, **kwargs)


def _empty_image(width: Any = 8) -> dict[str, Any]:
    return {
        "class_type": "EmptyImage",
        "inputs": {"width": width, "height": 8, "batch_size": 1, "color": 0},
    }


def test_shared_failing_node_reports_once(
    recorded_object_info: dict[str, Any], tmp_path: Path
) -> None:
    prompt = {
        "1": _empty_image(0),
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    result = _validate(prompt, recorded_object_info, tmp_path)
    assert not result.ok
    assert result.error is not None and result.error["details"] == ""
    assert list(result.node_errors) == ["1"]
    assert result.node_errors["1"]["dependent_outputs"] == ["2", "3"]
    assert len(result.node_errors["1"]["errors"]) == 1


def test_long_combo_lists_are_not_sent_back(
    recorded_object_info: dict[str, Any], tmp_path: Path
) -> None:
    prompt = {
        "1": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "nope"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    (error,) = _validate(prompt, recorded_object_info, tmp_path).node_errors["1"]["errors"]
    assert error["details"] == "sampler_name: 'nope' not in (list of length 42)"
    assert error["extra_info"]["input_config"] is None


def test_any_and_comma_types() -> None:
    assert types_compatible("IMAGE", "*")
    assert types_compatible("MODEL_TASK_ID", "MODEL_TASK_ID,RIG_TASK_ID")
    assert not types_compatible("STRING", "IMAGE")
    assert not types_compatible("STRING", ["a", "b"])


def test_partial_execution_targets_filter_outputs(
    recorded_object_info: dict[str, Any], tmp_path: Path
) -> None:
    prompt = {
        "1": _empty_image(),
        "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    result = _validate(prompt, recorded_object_info, tmp_path, partial_execution_targets=["3"])
    assert (result.ok, result.outputs_to_execute, result.node_errors) == (True, ["3"], {})
    empty = _validate(prompt, recorded_object_info, tmp_path, partial_execution_targets=[])
    assert empty.error is not None and empty.error["type"] == "prompt_no_outputs"


def test_literals_are_coerced_in_the_prompt(
    recorded_object_info: dict[str, Any], tmp_path: Path
) -> None:
    prompt = {
        "1": _empty_image("16"),
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    assert _validate(prompt, recorded_object_info, tmp_path).ok
    assert prompt["1"]["inputs"]["width"] == 16


def test_load_image_accepts_any_existing_file(
    recorded_object_info: dict[str, Any], tmp_path: Path
) -> None:
    _populate(tmp_path, {"sub/pic.png": "gradient_64x48.png"})
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "sub/pic.png"}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    assert _validate(prompt, recorded_object_info, tmp_path).ok


def test_load_image_fed_by_a_link_raises_inside_validation(
    recorded_object_info: dict[str, Any], tmp_path: Path
) -> None:
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": ["3", 0]}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        "3": {
            "class_type": "StringConcatenate",
            "inputs": {"string_a": "a", "string_b": "b", "delimiter": ""},
        },
    }
    result = _validate(prompt, recorded_object_info, tmp_path)
    (error,) = result.node_errors["1"]["errors"]
    assert error["type"] == "exception_during_inner_validation"
    assert error["extra_info"]["exception_type"] == "AttributeError"
    assert error["details"] == "'NoneType' object has no attribute 'endswith'"


def test_cycle_fails_without_node_errors(
    recorded_object_info: dict[str, Any], tmp_path: Path
) -> None:
    prompt = {
        "1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    result = _validate(prompt, recorded_object_info, tmp_path)
    assert not result.ok
    assert result.error is not None and result.error["details"] == ""
    assert result.node_errors == {}


def test_a_file_check_that_raises_shows_the_frames_down_to_folder_paths(
    recorded_object_info: dict[str, Any], tmp_path: Path
) -> None:
    prompt = {
        "1": {"class_type": "LoadAudio", "inputs": {"audio": 5}},
        "2": {"class_type": "PreviewAudio", "inputs": {"audio": ["1", 0]}},
    }
    (error,) = _validate(prompt, recorded_object_info, tmp_path).node_errors["1"]["errors"]
    functions = [re.search(r", in (\w+)\n", frame).group(1)  # type: ignore[union-attr]
                 for frame in error["extra_info"]["traceback"]]
    assert functions == ["validate_inputs", "validate_inputs", "_async_map_node_over_list",
                         "process_inputs", "VALIDATE_INPUTS", "exists_annotated_filepath",
                         "annotated_filepath"]
    assert "comfy_extras/nodes_audio.py" in error["extra_info"]["traceback"][4]
    assert "exists_annotated_filepath(audio)" in error["extra_info"]["traceback"][4]


def test_every_site_and_file_check_has_frames() -> None:
    for site in Site:
        if site is Site.NODE_VALIDATION_BODY:
            continue
        assert format_traceback([Step(site)]), site
    for check in FILE_CHECKS.values():
        (frame,) = format_traceback([Step(Site.NODE_VALIDATION_BODY, check)])
        assert f"exists_annotated_filepath({check.argument})" in frame

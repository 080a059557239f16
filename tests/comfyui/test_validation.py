"""ComfyUI's validation rules as both sides use them (comfy_nb._comfyui.validation): how files are
judged, and what the caller learns of an exception raised while validating. The verdicts
themselves are checked against the recordings in tests/emulator/test_validation.py and
tests/workflow/test_check.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from comfy_nb._comfyui.validation import FILE_CHECKS, Site, Step, validate_prompt

OBJECT_INFO: dict[str, Any] = {
    "LoadImage": {
        "input": {"required": {"image": [["a.png", "b.png"], {"image_upload": True}]}},
        "output": ["IMAGE", "MASK"],
        "output_node": False,
    },
    "PreviewImage": {
        "input": {"required": {"images": ["IMAGE"]}},
        "output": [],
        "output_node": True,
    },
}


def _prompt(image: Any) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }


def test_files_are_looked_up_in_the_input_folder(tmp_path: Path) -> None:
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "a.png").write_bytes(b"")
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "c.png").write_bytes(b"")
    folder = tmp_path / "input"
    assert validate_prompt(_prompt("a.png"), OBJECT_INFO, input_dir=folder).ok
    assert validate_prompt(_prompt("c.png [output]"), OBJECT_INFO, input_dir=folder).ok
    missing = validate_prompt(_prompt("b.png"), OBJECT_INFO, input_dir=folder)
    (error,) = missing.node_errors["1"]["errors"]
    assert error["type"] == "custom_validation_failed"
    assert error["details"] == "image - Invalid image file: b.png"


def test_file_exists_judges_instead_of_a_folder() -> None:
    asked: list[tuple[str, str]] = []

    def judge(class_type: str, name: str) -> bool:
        asked.append((class_type, name))
        return name == "b.png [temp]"

    assert validate_prompt(_prompt("b.png [temp]"), OBJECT_INFO, file_exists=judge).ok
    assert not validate_prompt(_prompt("a.png"), OBJECT_INFO, file_exists=judge).ok
    assert asked == [("LoadImage", "b.png [temp]"), ("LoadImage", "a.png")]


def test_files_need_a_folder_or_a_judge() -> None:
    with pytest.raises(ValueError, match="input_dir or file_exists"):
        validate_prompt(_prompt("a.png"), OBJECT_INFO)


def test_an_exception_while_validating_reports_the_steps_it_went_through() -> None:
    prompt = {"2": {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}}}
    seen: list[list[Step]] = []

    def format_traceback(steps: Sequence[Step]) -> list[str]:
        seen.append(list(steps))
        return [step.site.name for step in steps]

    result = validate_prompt(prompt, OBJECT_INFO, file_exists=lambda *_: True,
                             format_traceback=format_traceback)
    (error,) = result.node_errors["2"]["errors"]
    assert error["type"] == "exception_during_validation"
    assert error["extra_info"]["exception_type"] == "KeyError"
    assert error["extra_info"]["traceback"] == ["PROMPT_VALIDATES_OUTPUT", "READ_LINKED_CLASS"]
    assert seen == [[Step(Site.PROMPT_VALIDATES_OUTPUT), Step(Site.READ_LINKED_CLASS)]]

    plain = validate_prompt(prompt, OBJECT_INFO, file_exists=lambda *_: True)
    assert plain.node_errors["2"]["errors"][0]["extra_info"]["traceback"] == []


def test_a_file_check_that_raises_names_itself_in_the_steps() -> None:
    steps: list[Step] = []

    def format_traceback(found: Sequence[Step]) -> list[str]:
        steps.extend(found)
        return []

    result = validate_prompt(_prompt(5), OBJECT_INFO, file_exists=lambda *_: True,
                             format_traceback=format_traceback)
    (error,) = result.node_errors["1"]["errors"]
    assert error["type"] == "exception_during_inner_validation"
    assert steps == [Step(Site.INPUTS_VALIDATE_LINKED), Step(Site.CALL_NODE_VALIDATION),
                     Step(Site.NODE_VALIDATION_BODY, FILE_CHECKS["LoadImage"]),
                     Step(Site.ANNOTATED_FILEPATH)]


def test_file_checks_cannot_be_changed() -> None:
    assert FILE_CHECKS["LoadImage"].argument == "image"
    with pytest.raises(TypeError):
        FILE_CHECKS["LoadImage"] = FILE_CHECKS["LoadAudio"]  # type: ignore[index]

"""Node names and output file keys (comfy_nb._naming), as results, panels, parameters, the
result cache and the command line use them."""

from __future__ import annotations

from comfy_nb._naming import file_key, node_label, node_title, stated_title
from comfy_nb.result import Result

WORKFLOW = {
    "3": {"class_type": "KSampler", "inputs": {}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {}, "_meta": {"title": "Positive Prompt"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {}, "_meta": {"title": ""}},
    "9": {"class_type": "SaveImage", "inputs": {}, "_meta": {"title": "SaveImage"}},
    "10": {"class_type": "SaveImage", "inputs": {}, "_meta": "not a mapping"},
}


def test_stated_title_is_the_title_the_workflow_states_or_none() -> None:
    assert stated_title(WORKFLOW["6"]) == "Positive Prompt"
    assert stated_title(WORKFLOW["7"]) == ""
    assert stated_title(WORKFLOW["3"]) is None
    assert stated_title(WORKFLOW["10"]) is None
    assert stated_title({"_meta": {"title": 5}}) is None
    assert stated_title(None) is None


def test_node_title_falls_back_to_the_class_type() -> None:
    assert node_title(WORKFLOW["6"]) == "Positive Prompt"
    assert node_title(WORKFLOW["7"]) == "CLIPTextEncode"
    assert node_title(WORKFLOW["3"]) == "KSampler"
    assert node_title({"inputs": {}}) == ""
    assert node_title(None) == ""


def test_node_label_names_title_and_class_once_each() -> None:
    assert node_label(WORKFLOW, "6") == "Positive Prompt (CLIPTextEncode)"
    assert node_label(WORKFLOW, "9") == "SaveImage"
    assert node_label(WORKFLOW, "3") == "KSampler"
    assert node_label(WORKFLOW, "42") == "node 42"
    assert node_label(None, "3") == "node 3"
    assert node_label(WORKFLOW, None) == ""


def test_a_file_and_its_stored_form_have_the_same_key() -> None:
    outputs = {"9": {"images": [{"filename": "a.png", "subfolder": "x", "type": "output"}]}}
    [file] = Result("p", outputs, source=None, workflow=WORKFLOW).files
    stored = {"node_id": "9", "filename": "a.png", "subfolder": "x", "type": "output",
              "blob": "0123", "size": 3}
    assert file_key(file) == file_key(stored) == ("9", "a.png", "x", "output")
    assert file.node_title == "SaveImage"

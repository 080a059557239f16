"""Which inputs a workflow offers as a function and what they are called
(:mod:`comfy_nb.workflow._function_inputs`), with the node definitions of the recorded ComfyUI:
Python names from titles and inputs, names that clash, App mode entries that point nowhere."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from comfy_nb._comfyui.definitions import recorded_object_info
from comfy_nb.errors import WorkflowError
from comfy_nb.workflow import Workflow
from comfy_nb.workflow._function_inputs import (
    address,
    app_mode,
    app_mode_inputs,
    function_inputs,
    identifier,
)
from comfy_nb.workflows import bundled

from ..test_workflow_function import GRAPH_ID, lighthouse

INFO = recorded_object_info()


@pytest.mark.parametrize(("text", "name"), [
    ("Positive Prompt", "positive_prompt"),
    ("  CLIP Text Encode (Prompt) ", "clip_text_encode_prompt"),
    ("3 steps", "input_3_steps"),
    ("class", "class_"),
    ("timeout", "timeout_"),  # a keyword argument of the function itself
    ("client", "client_"),
    ("Größe", "größe"),
    ("Prompt ²", "prompt"),
    ("!!!", ""),
])
def test_identifier(text: str, name: str) -> None:
    assert identifier(text) == name
    assert name == "" or name.isidentifier()


def test_nodes_with_the_same_title_get_their_node_id() -> None:
    api = copy.deepcopy(bundled("txt2img"))
    api["6"]["_meta"]["title"] = api["7"]["_meta"]["title"] = "Prompt"
    names = [item.name for item in function_inputs(api, INFO)]
    assert names[:2] == ["prompt_6", "prompt_7"]
    assert address(api, "6", "text") == "6.text"  # the title names two nodes


def test_untitled_nodes_sharing_an_input_name_get_their_node_id() -> None:
    api = copy.deepcopy(bundled("txt2img"))
    for node_id in ("6", "7"):
        api[node_id]["_meta"]["title"] = "CLIP Text Encode (Prompt)"  # the default title
    items = function_inputs(api, INFO)
    assert [item.name for item in items[:2]] == ["text_6", "text_7"]
    assert [item.address for item in items[:2]] == ["6.text", "7.text"]


def test_a_workflow_without_titles_or_definitions_of_its_nodes_offers_what_it_knows() -> None:
    api = {"1": {"class_type": "Unknown", "inputs": {"value": 3}},
           "2": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 32,
                                                         "batch_size": 1, "color": 0}}}
    assert [item.name for item in function_inputs(api, INFO)] == ["width", "height",
                                                                  "batch_size"]


def converted(ui: dict[str, Any]) -> dict[str, Any]:
    return Workflow.load(ui, object_info=INFO).to_api()


def test_app_mode_is_read_from_linear_data() -> None:
    assert app_mode(lighthouse(app_mode=False)) is None
    data = app_mode(lighthouse())
    assert data is not None and data["outputs"] == ["8"]


@pytest.mark.parametrize(("entry", "message"), [
    ([f"{GRAPH_ID}:99:seed", "Seed"], "'Seed' .* sets no input"),
    ([f"{GRAPH_ID}:5:nothing", "Nothing"], "'Nothing' .* sets no input"),
    ([f"{GRAPH_ID}:5:model", "Model"], "'Model' .* sets no input"),  # a link, not a value
    (["5:seed", "Seed"], "is not '<graph id>:<node id>:<widget>'"),
    ("seed", "an App mode input is \\[widget id, name\\]"),
])
def test_an_app_mode_entry_that_points_nowhere_is_refused(entry: Any, message: str) -> None:
    ui = lighthouse()
    ui["extra"]["linearData"]["inputs"].append(entry)
    with pytest.raises(WorkflowError, match=message):
        app_mode_inputs(ui, converted(ui), INFO)


def test_app_mode_names_that_clash_are_told_apart() -> None:
    ui = lighthouse()
    ui["extra"]["linearData"]["inputs"] = [[f"{GRAPH_ID}:2:text", "Prompt"],
                                           [f"{GRAPH_ID}:3:text", "Prompt"]]
    items, outputs = app_mode_inputs(ui, converted(ui), INFO)
    assert [(item.name, item.label, item.paths) for item in items] == [
        ("prompt_2", "Prompt", ("2.text",)), ("prompt_3", "Prompt", ("3.text",))]
    assert outputs == ["8"]


def test_an_editor_primitive_is_one_input_named_by_its_title_or_what_it_feeds() -> None:
    from comfy_nb.workflow._function_inputs import editor_primitives

    ui = lighthouse(app_mode=False)
    api = converted(ui)
    assert editor_primitives(ui, api) == [("Size", ("4.width", "4.height"))]
    items = function_inputs(api, INFO, editor_primitives(ui, api))
    assert (items[0].name, items[0].paths) == ("size", ("4.width", "4.height"))
    for node in ui["nodes"]:
        node.pop("title", None)
    items = function_inputs(api, INFO, editor_primitives(ui, api))
    assert (items[0].name, items[0].paths) == ("width", ("4.width", "4.height"))
    assert "height" not in [item.name for item in items]  # the primitive sets it

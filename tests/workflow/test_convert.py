"""Tests of the editor-format → API-format conversion (``comfy_nb.workflow._convert``).

Every pair in ``fixtures/ui2api`` (what the editor 1.27.10's ``graphToPrompt`` produced) must
convert identically, key order included, except where the current editor (frontend 1.58.1, the
reference) changed a rule: those changes are applied to the 1.27.10 output by
:func:`as_of_fe158`, one rule a line. Small hand-made graphs pin down each rule; the rules new in
1.58.1 are in ``test_convert_fe158.py``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from comfy_nb.errors import BrokenLinkError, ComfyError, UnknownNodeTypes, WorkflowError
from comfy_nb.workflow._convert import is_ui_format, ui_to_api
from tests import fixture_paths

FIXTURES = fixture_paths.ROOT
PAIRS_DIR = FIXTURES / "ui2api"
PAIRS = [p.name for p in fixture_paths.listing(PAIRS_DIR, where=Path.is_dir)]


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    with (FIXTURES / "comfyui" / "http" / "object_info.json").open() as f:
        data: dict[str, Any] = json.load(f)
    return data


def _load(path: Path) -> Any:
    with path.open() as f:
        return json.load(f)


# -- the recorded editor pairs -----------------------------------------------------------------


#: Default titles that changed between the editors 1.27.10 and 1.58.1 for classes in these pairs
#: (the server sends no display_name for them; 1.58.1 ships the current ComfyUI names).
TITLES_FE158 = {
    "AudioEncoderLoader": "Load Audio Encoder",
    "QuadrupleCLIPLoader": "Load CLIP (Quadruple)",
    "TextEncodeQwenImageEditPlus": "Text Encode Qwen Image Edit Plus",
}
#: 1.58.1 renumbers inner node ids that an earlier subgraph definition already uses: the second
#: definition of video_wan2_2_14B_s2v (instance 85) repeats 78, 77, 76 of the first, and
#: last_node_id is 181.
RENUMBERED_FE158 = {"video_wan2_2_14B_s2v": {"85:78": "85:182", "85:77": "85:183",
                                             "85:76": "85:184"}}


def as_of_fe158(name: str, ui: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """The 1.27.10 output of pair ``name`` with the rules that changed in 1.58.1 applied."""
    nodes = {str(n["id"]): n for n in ui["nodes"]}
    for sub in (ui.get("definitions") or {}).get("subgraphs") or []:
        nodes.update({f"sub:{n['id']}": n for n in sub["nodes"]})
    renamed = RENUMBERED_FE158.get(name, {})
    result: dict[str, Any] = {}
    for node_id, entry in expected.items():
        entry = copy.deepcopy(entry)
        # 1.58.1 no longer sends the audio player widget
        entry["inputs"].pop("audioUI", None)
        entry["inputs"] = {k: ([renamed.get(v[0], v[0]), v[1]] if isinstance(v, list) else v)
                           for k, v in entry["inputs"].items()}
        node = nodes.get(node_id) or nodes.get(f"sub:{node_id.rsplit(':', 1)[-1]}") or {}
        if not node.get("title") and entry.get("class_type") in TITLES_FE158:
            entry["_meta"]["title"] = TITLES_FE158[entry["class_type"]]
        # 1.58.1 adds the node pack of the node (its properties) to _meta
        properties = node.get("properties") or {}
        entry["_meta"].update({k: properties[k] for k in ("cnr_id", "aux_id", "ver")
                               if k in properties})
        result[renamed.get(node_id, node_id)] = entry
    return result


def test_fixture_pairs_present() -> None:
    assert len(PAIRS) == 21


@pytest.mark.parametrize("name", PAIRS)
def test_fixture_pair(name: str, object_info: dict[str, Any]) -> None:
    folder = PAIRS_DIR / name
    ui = _load(folder / "ui.json")
    before = copy.deepcopy(ui)
    if (folder / "error.json").exists():
        with pytest.raises(WorkflowError):
            ui_to_api(ui, object_info)
        assert ui == before
        return
    expected = as_of_fe158(name, ui, _load(folder / "api.json"))
    got = ui_to_api(ui, object_info)  # an unknown node is emitted without class_type
    assert ui == before, "the input workflow was mutated"
    assert list(got) == list(expected)
    for node_id, node in expected.items():
        assert got[node_id] == node, node_id
        assert list(got[node_id]["inputs"]) == list(node["inputs"]), node_id
    assert json.dumps(got) == json.dumps(expected)


def test_fixture_agreement(object_info: dict[str, Any]) -> None:
    identical = 0
    for name in PAIRS:
        folder = PAIRS_DIR / name
        ui = _load(folder / "ui.json")
        if (folder / "error.json").exists():
            try:
                ui_to_api(ui, object_info)
            except WorkflowError:
                identical += 1
            continue
        got = ui_to_api(ui, object_info)
        if json.dumps(got) == json.dumps(as_of_fe158(name, ui, _load(folder / "api.json"))):
            identical += 1
    print(f"ui2api agreement: {identical} of {len(PAIRS)} pairs identical")
    assert identical == len(PAIRS)


def test_missing_node_type_fixture_raises_when_asked(object_info: dict[str, Any]) -> None:
    ui = _load(PAIRS_DIR / "hb_missing_node_type" / "ui.json")
    with pytest.raises(UnknownNodeTypes) as info:
        ui_to_api(ui, object_info, unknown_types="raise")
    assert info.value.missing == {"NotARealCustomNode": ["8"]}
    assert "NotARealCustomNode" in str(info.value) and "8" in str(info.value)


def test_missing_origin_fixture_raises_broken_link(object_info: dict[str, Any]) -> None:
    ui = _load(PAIRS_DIR / "hb_error_missing_origin_node" / "ui.json")
    with pytest.raises(BrokenLinkError, match="999"):
        ui_to_api(ui, object_info)


# -- small hand-made graphs ----------------------------------------------------------------------


def node(nid: int, type_: str, *, inputs: Sequence[tuple[str, str, int | None, bool]] = (),
         outputs: Sequence[tuple[str, list[int]]] = (),
         values: Any = None, mode: int = 0, title: str | None = None,
         order: int | None = None) -> dict[str, Any]:
    """A node as the editor saves it; inputs are (name, type, link, is_widget)."""
    data: dict[str, Any] = {
        "id": nid, "type": type_, "mode": mode, "order": nid if order is None else order,
        "inputs": [
            {"name": n, "type": t, "link": link, **({"widget": {"name": n}} if w else {})}
            for n, t, link, w in inputs
        ],
        "outputs": [{"name": t, "type": t, "links": links} for t, links in outputs],
        "properties": {},
    }
    if values is not None:
        data["widgets_values"] = values
    if title is not None:
        data["title"] = title
    return data


def link(lid: int, origin: int, oslot: int, target: int, tslot: int, type_: str) -> list[Any]:
    return [lid, origin, oslot, target, tslot, type_]


def workflow(nodes: list[dict[str, Any]], links: list[list[Any]],
             **extra: Any) -> dict[str, Any]:
    return {"nodes": nodes, "links": links, "groups": [], "version": 0.4, **extra}


def checkpoint(nid: int = 1, model: list[int] | None = None, clip: list[int] | None = None,
               vae: list[int] | None = None) -> dict[str, Any]:
    return node(nid, "CheckpointLoaderSimple",
                inputs=[("ckpt_name", "COMBO", None, True)],
                outputs=[("MODEL", model or []), ("CLIP", clip or []), ("VAE", vae or [])],
                values=["model.safetensors"])


def ksampler(nid: int, links_in: dict[str, int | None], values: list[Any],
             **kw: Any) -> dict[str, Any]:
    spec = [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
            ("latent_image", "LATENT")]
    widgets = [("seed", "INT"), ("steps", "INT"), ("cfg", "FLOAT"), ("sampler_name", "COMBO"),
               ("scheduler", "COMBO"), ("denoise", "FLOAT")]
    inputs = [(n, t, links_in.get(n), False) for n, t in spec]
    inputs += [(n, t, links_in.get(n), True) for n, t in widgets]
    return node(nid, "KSampler", inputs=inputs, outputs=[("LATENT", [])], values=values, **kw)


KS_VALUES = [42, "randomize", 20, 7.5, "euler", "normal", 1]


def test_seed_control_value_is_skipped(object_info: dict[str, Any]) -> None:
    ui = workflow([ksampler(3, {}, [7, "increment", 25, 6, "dpmpp_2m", "karras", 0.5])], [])
    got = ui_to_api(ui, object_info)
    assert got == {"3": {"inputs": {"seed": 7, "steps": 25, "cfg": 6, "sampler_name": "dpmpp_2m",
                                    "scheduler": "karras", "denoise": 0.5},
                         "class_type": "KSampler", "_meta": {"title": "KSampler"}}}


def test_short_values_use_defaults_and_extra_values_are_dropped(
        object_info: dict[str, Any]) -> None:
    short = workflow([node(4, "EmptyLatentImage", values=[640])], [])
    assert ui_to_api(short, object_info)["4"]["inputs"] == {
        "width": 640, "height": 512, "batch_size": 1}
    long = workflow([node(4, "EmptyLatentImage", values=[1, 2, 3, 4, 5])], [])
    assert ui_to_api(long, object_info)["4"]["inputs"] == {
        "width": 1, "height": 2, "batch_size": 3}


def test_dict_widgets_values(object_info: dict[str, Any]) -> None:
    # Changed in 1.58.1: the editor reads widgets_values with Array.from, so an object counts
    # only through a numeric length (LGraphNode.ts, createWidgetRestorationState)
    ui = workflow([node(4, "EmptyLatentImage", values={"height": 768, "width": 1024})], [])
    assert ui_to_api(ui, object_info)["4"]["inputs"] == {
        "width": 512, "height": 512, "batch_size": 1}
    ui = workflow([node(4, "EmptyLatentImage", values={"0": 1024, "1": 768, "length": 2})], [])
    assert ui_to_api(ui, object_info)["4"]["inputs"] == {
        "width": 1024, "height": 768, "batch_size": 1}


def test_upload_widget_is_skipped(object_info: dict[str, Any]) -> None:
    ui = workflow([node(2, "LoadImage", inputs=[("image", "COMBO", None, True)],
                        outputs=[("IMAGE", []), ("MASK", [])], values=["cat.png", "image"])], [])
    assert ui_to_api(ui, object_info)["2"]["inputs"] == {"image": "cat.png"}


def test_links_use_string_ids_and_linked_widget_keeps_position(
        object_info: dict[str, Any]) -> None:
    prim = node(9, "PrimitiveInt", inputs=[("value", "INT", None, True)],
                outputs=[("INT", [5])], values=[12, "fixed"])
    ks = ksampler(3, {"model": 1, "steps": 5}, KS_VALUES)
    ui = workflow([checkpoint(model=[1]), prim, ks],
                  [link(1, 1, 0, 3, 0, "MODEL"), link(5, 9, 0, 3, 5, "INT")])
    got = ui_to_api(ui, object_info)
    assert list(got["3"]["inputs"]) == ["seed", "steps", "cfg", "sampler_name", "scheduler",
                                        "denoise", "model"]
    assert got["3"]["inputs"]["steps"] == ["9", 0]
    assert got["3"]["inputs"]["model"] == ["1", 0]
    assert got["9"]["inputs"] == {"value": 12}


def test_bypass_wires_through_matching_type(object_info: dict[str, Any]) -> None:
    latent = node(4, "EmptyLatentImage", outputs=[("LATENT", [1])], values=[64, 64, 1])
    upscale = node(5, "LatentUpscaleBy",
                   inputs=[("samples", "LATENT", 1, False)], outputs=[("LATENT", [2])],
                   values=["nearest-exact", 1.5], mode=4)
    ks = ksampler(3, {"latent_image": 2}, KS_VALUES)
    ui = workflow([latent, upscale, ks],
                  [link(1, 4, 0, 5, 0, "LATENT"), link(2, 5, 0, 3, 3, "LATENT")])
    got = ui_to_api(ui, object_info)
    assert "5" not in got
    assert got["3"]["inputs"]["latent_image"] == ["4", 0]


def test_bypass_without_matching_input_leaves_input_out(object_info: dict[str, Any]) -> None:
    decode = node(6, "VAEDecode", inputs=[("samples", "LATENT", None, False),
                                          ("vae", "VAE", 1, False)],
                  outputs=[("IMAGE", [2])], mode=4)
    preview = node(7, "PreviewImage", inputs=[("images", "IMAGE", 2, False)])
    ui = workflow([checkpoint(vae=[1]), decode, preview],
                  [link(1, 1, 2, 6, 1, "VAE"), link(2, 6, 0, 7, 0, "IMAGE")])
    assert ui_to_api(ui, object_info)["7"]["inputs"] == {}


def test_bypass_chain(object_info: dict[str, Any]) -> None:
    latent = node(4, "EmptyLatentImage", outputs=[("LATENT", [1])], values=[64, 64, 1])
    first = node(5, "LatentUpscaleBy", inputs=[("samples", "LATENT", 1, False)],
                 outputs=[("LATENT", [2])], values=["nearest-exact", 1.5], mode=4)
    second = node(6, "LatentUpscaleBy", inputs=[("samples", "LATENT", 2, False)],
                  outputs=[("LATENT", [3])], values=["nearest-exact", 1.5], mode=4)
    ks = ksampler(3, {"latent_image": 3}, KS_VALUES)
    ui = workflow([latent, first, second, ks],
                  [link(1, 4, 0, 5, 0, "LATENT"), link(2, 5, 0, 6, 0, "LATENT"),
                   link(3, 6, 0, 3, 3, "LATENT")])
    assert ui_to_api(ui, object_info)["3"]["inputs"]["latent_image"] == ["4", 0]


def test_muted_node_is_dropped_and_consumer_loses_the_input(
        object_info: dict[str, Any]) -> None:
    ks = ksampler(3, {"model": 1}, KS_VALUES)
    ckpt = checkpoint(model=[1])
    ckpt["mode"] = 2
    ui = workflow([ckpt, ks], [link(1, 1, 0, 3, 0, "MODEL")])
    got = ui_to_api(ui, object_info)
    assert "1" not in got
    assert "model" not in got["3"]["inputs"]


def test_reroute_chain_collapses(object_info: dict[str, Any]) -> None:
    r1 = node(10, "Reroute", inputs=[("", "*", 1, False)], outputs=[("VAE", [2])])
    r2 = node(11, "Reroute", inputs=[("", "*", 2, False)], outputs=[("VAE", [3])])
    decode = node(6, "VAEDecode", inputs=[("samples", "LATENT", None, False),
                                          ("vae", "VAE", 3, False)], outputs=[("IMAGE", [])])
    ui = workflow([checkpoint(vae=[1]), r1, r2, decode],
                  [link(1, 1, 2, 10, 0, "VAE"), link(2, 10, 0, 11, 0, "VAE"),
                   link(3, 11, 0, 6, 1, "VAE")])
    got = ui_to_api(ui, object_info)
    assert set(got) == {"1", "6"}
    assert got["6"]["inputs"] == {"vae": ["1", 2]}


def test_primitive_node_value_is_inlined(object_info: dict[str, Any]) -> None:
    prim = node(20, "PrimitiveNode", outputs=[("INT", [7, 8])], values=[1234, "fixed"])
    a = ksampler(3, {"seed": 7}, KS_VALUES)
    b = ksampler(4, {"seed": 8}, [5, "fixed", 20, 7, "euler", "normal", 1])
    ui = workflow([prim, a, b], [link(7, 20, 0, 3, 4, "INT"), link(8, 20, 0, 4, 4, "INT")])
    got = ui_to_api(ui, object_info)
    assert set(got) == {"3", "4"}
    assert got["3"]["inputs"]["seed"] == 1234 and got["4"]["inputs"]["seed"] == 1234
    assert next(iter(got["3"]["inputs"])) == "seed"


def test_editor_only_nodes_and_titles(object_info: dict[str, Any]) -> None:
    ui = workflow([node(1, "Note", values=["hello"]), node(2, "MarkdownNote", values=["# hi"]),
                   node(4, "EmptyLatentImage", values=[64, 64, 1], title="My latent"),
                   node(5, "ImageBlur", inputs=[("image", "IMAGE", None, False)],
                        values=[1, 1.0])], [])
    got = ui_to_api(ui, object_info)
    assert list(got) == ["4", "5"]
    assert got["4"]["_meta"] == {"title": "My latent"}
    assert got["5"]["_meta"] == {"title": "Blur Image"}  # 1.27.10 said "Image Blur"


def test_unknown_types_are_listed_together(object_info: dict[str, Any]) -> None:
    ui = workflow([node(1, "FancyUpscaler"), node(2, "FancyUpscaler"), node(3, "OtherThing"),
                   node(4, "EmptyLatentImage", values=[64, 64, 1])], [])
    with pytest.raises(UnknownNodeTypes) as info:
        ui_to_api(ui, object_info, unknown_types="raise")
    assert isinstance(info.value, WorkflowError) and isinstance(info.value, ComfyError)
    assert info.value.missing == {"FancyUpscaler": ["1", "2"], "OtherThing": ["3"]}
    kept = ui_to_api(ui, object_info)
    assert "class_type" not in kept["1"] and kept["4"]["class_type"] == "EmptyLatentImage"


def test_missing_link_row_drops_the_input(object_info: dict[str, Any]) -> None:
    # Changed in 1.58.1 (1.27.10 refused the file): the link store holds only link rows, so an
    # input naming a missing row is unconnected (lib/litegraph/src/node/slotLinks.ts)
    ks = ksampler(3, {"model": 99}, KS_VALUES)
    got = ui_to_api(workflow([checkpoint(), ks], []), object_info)
    assert "model" not in got["3"]["inputs"] and got["3"]["inputs"]["seed"] == 42


def _subgraph_workflow(inner_seed: int, instance_values: list[Any]) -> dict[str, Any]:
    inner_ks = ksampler(5, {"model": 1, "seed": 2}, [inner_seed, "fixed", 20, 7, "euler",
                                                     "normal", 1], title="inner")
    inner_ks["outputs"][0]["links"] = [3]
    definition = {
        "id": "sub-1", "name": "S",
        "inputNode": {"id": -10}, "outputNode": {"id": -20},
        "inputs": [{"name": "model", "type": "MODEL", "linkIds": [1]},
                   {"name": "seed", "type": "INT", "linkIds": [2]}],
        "outputs": [{"name": "LATENT", "type": "LATENT", "linkIds": [3]}],
        "nodes": [inner_ks],
        "links": [
            {"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 5, "target_slot": 0,
             "type": "MODEL"},
            {"id": 2, "origin_id": -10, "origin_slot": 1, "target_id": 5, "target_slot": 4,
             "type": "INT"},
            {"id": 3, "origin_id": 5, "origin_slot": 0, "target_id": -20, "target_slot": 0,
             "type": "LATENT"},
        ],
    }
    instance = node(8, "sub-1", inputs=[("model", "MODEL", 10, False),
                                        ("seed", "INT", None, True)],
                    outputs=[("LATENT", [11])], values=instance_values)
    decode = node(6, "VAEDecode", inputs=[("samples", "LATENT", 11, False),
                                          ("vae", "VAE", None, False)], outputs=[("IMAGE", [])])
    return workflow([checkpoint(model=[10]), instance, decode],
                    [link(10, 1, 0, 8, 0, "MODEL"), link(11, 8, 0, 6, 0, "LATENT")],
                    definitions={"subgraphs": [definition]})


def test_subgraph_ids_links_and_promoted_widget(object_info: dict[str, Any]) -> None:
    ui = _subgraph_workflow(1, [777])
    got = ui_to_api(ui, object_info)
    assert list(got) == ["1", "6", "8:5"]
    assert got["8:5"]["inputs"]["model"] == ["1", 0]
    assert got["8:5"]["inputs"]["seed"] == 777
    assert got["8:5"]["_meta"] == {"title": "inner"}
    assert got["6"]["inputs"] == {"samples": ["8:5", 0]}


def test_input_is_not_mutated(object_info: dict[str, Any]) -> None:
    ui = _subgraph_workflow(1, [777])
    prim = node(20, "PrimitiveNode", outputs=[("INT", [7])], values=[99, "fixed"])
    ui["nodes"] += [prim, ksampler(3, {"seed": 7}, list(KS_VALUES))]
    ui["links"].append(link(7, 20, 0, 3, 4, "INT"))
    before = copy.deepcopy(ui)
    got = ui_to_api(ui, object_info)
    assert got["3"]["inputs"]["seed"] == 99
    assert ui == before
    got["3"]["inputs"]["seed"] = 0
    assert ui_to_api(ui, object_info)["3"]["inputs"]["seed"] == 99


def test_is_ui_format() -> None:
    assert is_ui_format({"nodes": [], "links": []})
    assert not is_ui_format({"3": {"class_type": "KSampler", "inputs": {}}})
    assert not is_ui_format([])


def test_api_format_is_refused(object_info: dict[str, Any]) -> None:
    with pytest.raises(WorkflowError, match="not an editor-format"):
        ui_to_api({"3": {"class_type": "KSampler", "inputs": {}}}, object_info)

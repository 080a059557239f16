"""Tests of :class:`comfy_nb.workflow.Workflow`: loading from every kind of source, copy
semantics, content hashing, parameters by name and their constraints from the real object_info."""

from __future__ import annotations

import contextlib
import copy
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from comfy_nb.workflow import Param, ParameterError, Workflow, WorkflowError
from comfy_nb.workflows import bundled
from tests import fixture_paths

FIXTURES = fixture_paths.ROOT
COMFY = FIXTURES / "comfyui"
RUNS = COMFY / "runs"
UI2API = FIXTURES / "ui2api"
TXT2IMG_PNG = RUNS / "txt2img_random_sd15_legacy_previews" / "view_0_txt2img_00001_.png"
WEBP = RUNS / "animated_webp_png" / "view_0_anim_00001_.webp"
APNG = RUNS / "animated_webp_png" / "view_1_anim_00002_.png"

pytestmark = pytest.mark.skipif(not COMFY.is_dir(), reason="recorded ComfyUI fixtures missing")


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    info: dict[str, Any] = json.loads((COMFY / "http" / "object_info.json").read_text("utf-8"))
    return info


@pytest.fixture
def txt2img() -> dict[str, Any]:
    return bundled("txt2img")


def _png_bytes(tmp_path: Path, **text: str) -> bytes:
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    path = tmp_path / "image.png"
    Image.new("RGB", (4, 4), (10, 20, 30)).save(path, pnginfo=info)
    return path.read_bytes()


# -- loading ------------------------------------------------------------------------------


def test_load_dict(txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img)
    assert wf.format == "api"
    assert len(wf) == 7
    assert wf.to_api() == txt2img
    assert Workflow(txt2img) == wf


def test_load_json_text_and_prompt_body(txt2img: dict[str, Any]) -> None:
    assert Workflow.load(json.dumps(txt2img)).to_api() == txt2img
    body = {"prompt": txt2img, "client_id": "abc", "extra_data": {}}
    assert Workflow.load(body).to_api() == txt2img
    assert Workflow.load(json.dumps(body).encode()).to_api() == txt2img


def test_load_json_path(tmp_path: Path, txt2img: dict[str, Any]) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(txt2img), encoding="utf-8")
    assert Workflow.load(path).to_api() == txt2img
    assert Workflow.load(str(path)).to_api() == txt2img


@pytest.mark.parametrize("png", sorted(RUNS.glob("*/view_*.png")), ids=lambda p: p.parent.name)
def test_load_recorded_png(png: Path) -> None:
    from_path = Workflow.load(png)
    assert from_path.format == "api"
    expected = json.loads(Image.open(png).info["prompt"]) if png != APNG else None
    if expected is not None:
        assert from_path.to_api() == expected
    assert Workflow.load(png.read_bytes()) == from_path


def test_load_recorded_txt2img_png_matches_bundled(txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(TXT2IMG_PNG)
    assert wf.nodes["3"]["class_type"] == "KSampler"
    assert wf.nodes["3"]["inputs"]["seed"] == 42
    assert set(wf.nodes) == set(txt2img)


def test_load_prefers_prompt_over_workflow_chunk() -> None:
    png = RUNS / "client_supplied_prompt_id" / "view_0_custom_pid_00001_.png"
    assert "workflow" in Image.open(png).info  # {"note": ...}: not a workflow at all
    assert Workflow.load(png).format == "api"


def test_load_png_with_only_a_ui_workflow_chunk(tmp_path: Path) -> None:
    ui = (UI2API / "frontend_default_graph" / "ui.json").read_text("utf-8")
    wf = Workflow.load(_png_bytes(tmp_path, workflow=ui))
    assert wf.format == "ui"
    assert wf.to_ui() == json.loads(ui)


def test_load_png_itxt_chunk(tmp_path: Path, txt2img: dict[str, Any]) -> None:
    txt2img["6"]["inputs"]["text"] = "一只猫 🐈"  # not latin-1: Pillow writes iTXt
    data = _png_bytes(tmp_path, prompt=json.dumps(txt2img, ensure_ascii=False))
    assert b"iTXt" in data
    assert Workflow.load(data).to_api() == txt2img


def test_load_png_ztxt_chunk(tmp_path: Path, txt2img: dict[str, Any]) -> None:
    info = PngInfo()
    info.add_text("prompt", json.dumps(txt2img), zip=True)
    path = tmp_path / "z.png"
    Image.new("RGB", (2, 2)).save(path, pnginfo=info)
    assert Workflow.load(path).to_api() == txt2img


def test_load_animated_png_comf_chunk() -> None:
    wf = Workflow.load(APNG)
    assert wf.nodes["6"]["class_type"] == "SaveAnimatedPNG"
    assert len(wf) == 6


def test_load_webp_exif() -> None:
    wf = Workflow.load(WEBP)
    assert wf.format == "api"
    assert wf.nodes["5"]["class_type"] == "SaveAnimatedWEBP"
    exif_text = Image.open(WEBP).getexif()[0x0110]
    assert wf.to_api() == json.loads(exif_text.partition(":")[2])
    assert Workflow.load(WEBP.read_bytes()) == wf


def test_png_without_metadata(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match="without ComfyUI workflow metadata"):
        Workflow.load(_png_bytes(tmp_path))
    path = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(path)
    with pytest.raises(WorkflowError, match="without ComfyUI workflow metadata"):
        Workflow.load(path)


def test_webp_without_metadata(tmp_path: Path) -> None:
    path = tmp_path / "plain.webp"
    Image.new("RGB", (4, 4)).save(path)
    with pytest.raises(WorkflowError, match="WEBP file without ComfyUI workflow metadata"):
        Workflow.load(path)


def test_png_with_bad_prompt_chunk(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match="not valid JSON"):
        Workflow.load(_png_bytes(tmp_path, prompt="{not json"))


@pytest.mark.parametrize("ui", sorted(UI2API.glob("*/ui.json")), ids=lambda p: p.parent.name)
def test_detects_ui_format(ui: Path) -> None:
    wf = Workflow.load(ui)
    assert wf.format == "ui"
    assert len(wf) == len(json.loads(ui.read_text("utf-8"))["nodes"])
    assert repr(wf).startswith("<Workflow ui, ")


@pytest.mark.parametrize("api", sorted(UI2API.glob("*/api.json")), ids=lambda p: p.parent.name)
def test_editor_api_exports_load_as_api(api: Path) -> None:
    data = json.loads(api.read_text("utf-8"))
    if not all("class_type" in node for node in data.values()):
        with pytest.raises(WorkflowError, match="has no class_type"):
            Workflow.load(data)
        return
    wf = Workflow.load(data)
    assert wf.format == "api"
    assert wf.to_api() == data


@pytest.mark.parametrize("bad", [
    "{not json", "[1, 2]", b"\x00\x01binary", 42, None, [], {}, {"3": 5},
    {"3": {"inputs": {}}}, {"3": {"class_type": "KSampler"}},
    {"3": {"class_type": "X", "inputs": []}}, {"3": {"class_type": "X", "inputs": {}, "_meta": 1}},
    {"nodes": [1, 2]}, {"note": "comfy_nb fixture"}, {"prompt": []},
])
def test_bad_sources_raise_workflow_error(bad: Any) -> None:
    with pytest.raises(WorkflowError):
        Workflow.load(bad)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match="no workflow file"):
        Workflow.load(tmp_path / "missing.json")
    with pytest.raises(WorkflowError, match="cannot read"):
        Workflow.load(tmp_path)
    (tmp_path / "x.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(WorkflowError):
        Workflow.load(tmp_path / "x.json")


def test_not_json_compatible_dict() -> None:
    with pytest.raises(WorkflowError, match="JSON-compatible"):
        Workflow.load({"1": {"class_type": "X", "inputs": {"v": object()}}})


def test_load_workflow_copies(txt2img: dict[str, Any]) -> None:
    oi = {"KSampler": {}}
    wf = Workflow.load(txt2img, object_info=oi)
    again = Workflow.load(wf)
    assert again == wf and again is not wf
    assert again.object_info is oi
    again.set("3.seed", 7)
    assert wf.nodes["3"]["inputs"]["seed"] == 42


# -- copy semantics -----------------------------------------------------------------------


def test_user_dict_never_mutated(txt2img: dict[str, Any]) -> None:
    before = copy.deepcopy(txt2img)
    wf = Workflow.load(txt2img)
    wf.set("KSampler.seed", 1).set(steps=3)
    wf.set("6.text", "a cat")
    wf.to_api()["3"]["inputs"]["seed"] = 99
    assert txt2img == before
    assert wf.nodes["3"]["inputs"]["seed"] == 1


def test_set_returns_self_and_chains(txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img)
    assert wf.set("KSampler.seed", 5).set(steps=4) is wf
    assert wf.nodes["3"]["inputs"]["steps"] == 4


def test_copy_is_independent(txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img)
    wf.set(seed="random")
    other = wf.copy()
    assert other == wf
    assert other.resolved_seeds == wf.resolved_seeds
    other.set(seed=1, steps=2)
    assert wf.nodes["3"]["inputs"]["steps"] == 20
    assert "3.seed" in wf.resolved_seeds and "3.seed" not in other.resolved_seeds
    assert copy.copy(wf) == wf and copy.deepcopy(wf) is not wf


def test_to_api_is_a_deep_copy(txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img)
    api = wf.to_api()
    api["6"]["inputs"]["text"] = "changed"
    assert wf.nodes["6"]["inputs"]["text"] != "changed"


def test_nodes_is_read_only(txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img)
    with pytest.raises(TypeError):
        wf.nodes["3"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        wf.nodes["3"]["inputs"]["seed"] = 1
    assert wf.nodes["3"]["inputs"]["model"] == ("4", 0)


def test_failed_set_changes_nothing(txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img)
    before = wf.content_hash
    with pytest.raises(ParameterError):
        wf.set(steps=3, nope=1)
    assert wf.content_hash == before


# -- identity -----------------------------------------------------------------------------


def test_content_hash_stable_across_key_order_and_meta(txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img)
    reordered = {k: {kk: dict(reversed(list(v.items()))) if isinstance(v, dict) else v
                     for kk, v in reversed(list(node.items()))}
                 for k, node in reversed(list(txt2img.items()))}
    assert Workflow.load(reordered).content_hash == wf.content_hash
    retitled = copy.deepcopy(txt2img)
    retitled["6"]["_meta"]["title"] = "Something else"
    del retitled["7"]["_meta"]
    assert Workflow.load(retitled).content_hash == wf.content_hash
    assert Workflow.load(retitled) == wf
    assert len(wf.content_hash) == 64 and int(wf.content_hash, 16) >= 0


def test_content_hash_changes_with_a_value(txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img)
    changed = wf.copy().set("3.seed", 43)
    assert changed.content_hash != wf.content_hash
    assert changed != wf
    float_cfg = wf.copy().set("3.cfg", 7)  # 7 is not 7.0 on the wire
    assert float_cfg.content_hash != wf.content_hash


def test_ui_content_hash_without_object_info() -> None:
    ui = json.loads((UI2API / "frontend_default_graph" / "ui.json").read_text("utf-8"))
    a, b = Workflow.load(ui), Workflow.load(json.dumps(ui, indent=4))
    assert a.content_hash == b.content_hash
    ui["nodes"][0]["widgets_values"] = ["changed"]
    assert Workflow.load(ui).content_hash != a.content_hash


def test_workflow_is_unhashable_and_not_equal_to_dict(txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img)
    with pytest.raises(TypeError):
        hash(wf)
    assert wf != txt2img


def test_repr_and_len(txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img)
    assert repr(wf) == ("<Workflow api, 7 nodes, KSampler, CheckpointLoaderSimple, "
                        "EmptyLatentImage, …>")
    one = Workflow.load({"1": {"class_type": "EmptyImage", "inputs": {}}})
    assert repr(one) == "<Workflow api, 1 node, EmptyImage>"
    assert len(one) == 1


# -- UI format ----------------------------------------------------------------------------


def test_ui_to_api_needs_object_info() -> None:
    wf = Workflow.load(UI2API / "frontend_default_graph" / "ui.json")
    message = ("converting an editor workflow needs the server's node definitions: "
               "pass object_info=client.object_info() or use client.run(wf)")
    with pytest.raises(WorkflowError) as info:
        wf.to_api()
    assert str(info.value) == message
    with pytest.raises(WorkflowError):
        wf.params()
    with pytest.raises(WorkflowError, match="object_info"):
        wf.set(seed=1)
    assert wf.format == "ui"


def test_ui_to_api_with_object_info(object_info: dict[str, Any]) -> None:
    pytest.importorskip("comfy_nb.workflow._convert")
    folder = UI2API / "frontend_default_graph"
    expected = json.loads((folder / "api.json").read_text("utf-8"))
    wf = Workflow.load(folder / "ui.json")
    assert wf.to_api(object_info) == expected
    loaded = Workflow.load(folder / "ui.json", object_info=object_info)
    assert loaded.to_api() == expected
    assert loaded == Workflow.load(expected)
    assert [p.path for p in loaded.params()] == [p.path for p in Workflow.load(expected).params()]
    loaded.set("KSampler.seed", 5)  # converts in place
    assert loaded.format == "api"
    assert loaded.nodes["3"]["inputs"]["seed"] == 5


def test_to_ui_only_for_ui_format(txt2img: dict[str, Any]) -> None:
    with pytest.raises(WorkflowError):
        Workflow.load(txt2img).to_ui()


# -- parameters by name ---------------------------------------------------------------------


@pytest.mark.parametrize(("path", "node_id", "name"), [
    ("KSampler.seed", "3", "seed"),
    ("Positive Prompt.text", "6", "text"),
    ("Negative Prompt.text", "7", "text"),
    ("6.text", "6", "text"),
    ("CheckpointLoaderSimple.ckpt_name", "4", "ckpt_name"),
    ("Load Checkpoint.ckpt_name", "4", "ckpt_name"),
    ("Save Image.filename_prefix", "9", "filename_prefix"),
])
def test_addressing(txt2img: dict[str, Any], path: str, node_id: str, name: str) -> None:
    wf = Workflow.load(txt2img).set(path, "value")
    assert wf.nodes[node_id]["inputs"][name] == "value"


def test_bare_names_and_mapping(txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img).set(seed=42, steps=20, cfg=5.5, width=640)
    assert wf.nodes["3"]["inputs"]["cfg"] == 5.5
    assert wf.nodes["5"]["inputs"]["width"] == 640
    wf.set({"Positive Prompt.text": "a cat", "steps": 9})
    assert wf.nodes["6"]["inputs"]["text"] == "a cat"
    assert wf.nodes["3"]["inputs"]["steps"] == 9
    wf.set("denoise", 0.5)
    assert wf.nodes["3"]["inputs"]["denoise"] == 0.5


def test_titles_with_dots_split_on_last_dot(txt2img: dict[str, Any]) -> None:
    txt2img["6"]["_meta"]["title"] = "Prompt v1.2 (positive)"
    wf = Workflow.load(txt2img).set("Prompt v1.2 (positive).text", "dots")
    assert wf.nodes["6"]["inputs"]["text"] == "dots"


def test_ambiguous_bare_name_lists_candidates(txt2img: dict[str, Any]) -> None:
    with pytest.raises(ParameterError) as info:
        Workflow.load(txt2img).set(text="x")
    assert "'text' is ambiguous: 6.text (Positive Prompt), 7.text (Negative Prompt)" in str(
        info.value)


def test_ambiguous_class_lists_candidates(txt2img: dict[str, Any]) -> None:
    with pytest.raises(ParameterError) as info:
        Workflow.load(txt2img).set("CLIPTextEncode.text", "x")
    message = str(info.value)
    assert "ambiguous" in message
    assert "6.text (Positive Prompt)" in message and "7.text (Negative Prompt)" in message


def test_unknown_names_list_candidates(txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img)
    unknown_node = r"no node matches 'KSamplr'.*'KSampler'.*3 \(KSampler"
    with pytest.raises(ParameterError, match=unknown_node):
        wf.set("KSamplr.seed", 1)
    with pytest.raises(ParameterError, match=r"has no input 'sed'.*'seed'.*inputs: seed, steps"):
        wf.set("KSampler.sed", 1)
    with pytest.raises(ParameterError, match=r"no node has an input 'sed'.*'seed'"):
        wf.set(sed=1)
    with pytest.raises(ParameterError):
        wf.set("KSampler.", 1)
    with pytest.raises(ParameterError):
        wf.set("", 1)
    with pytest.raises(ParameterError, match="no value"):
        wf.set("KSampler.seed")
    with pytest.raises(ParameterError):
        wf.set({"seed": 1}, 2)


def test_optional_input_from_object_info(object_info: dict[str, Any],
                                         txt2img: dict[str, Any]) -> None:
    txt2img["10"] = {"class_type": "LatentUpscaleBy",
                     "inputs": {"samples": ["3", 0], "scale_by": 1.5}}
    wf = Workflow.load(txt2img, object_info=object_info)
    # 'upscale_method' is declared by the server but absent from the workflow: it can be added
    wf.set("LatentUpscaleBy.upscale_method", "bilinear")
    assert wf.nodes["10"]["inputs"]["upscale_method"] == "bilinear"
    with pytest.raises(ParameterError):
        Workflow.load(txt2img).set("10.upscale_method", "bilinear")


def test_link_protection(txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img)
    with pytest.raises(ParameterError, match=r"3\.model \(KSampler\) is linked.*force=True"):
        wf.set("KSampler.model", "x")
    with pytest.raises(ParameterError, match="linked"):
        wf.set(latent_image=1)  # a bare name that exists only as a link
    assert wf.nodes["3"]["inputs"]["model"] == ("4", 0)
    wf.set("KSampler.model", ["4", 1], force=True)
    assert wf.nodes["3"]["inputs"]["model"] == ("4", 1)


def test_bare_name_prefers_the_value_over_links() -> None:
    wf = Workflow.load({
        "1": {"class_type": "A", "inputs": {"seed": ["2", 0]}},
        "2": {"class_type": "B", "inputs": {"seed": 5}},
    })
    assert wf.set(seed=6).nodes["2"]["inputs"]["seed"] == 6


def test_value_must_be_json(txt2img: dict[str, Any]) -> None:
    with pytest.raises(ParameterError, match="JSON"):
        Workflow.load(txt2img).set(seed={1, 2})


# -- random seeds -------------------------------------------------------------------------


def test_random_seed_with_object_info(object_info: dict[str, Any],
                                      txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img, object_info=object_info)
    seeds = set()
    for _ in range(20):
        wf.set(seed="random")
        value = wf.nodes["3"]["inputs"]["seed"]
        assert isinstance(value, int) and 0 <= value <= 0xFFFFFFFFFFFFFFFF
        assert wf.resolved_seeds == {"3.seed": value}
        seeds.add(value)
    assert len(seeds) > 1
    assert max(seeds) > 2**53  # the server's full 64-bit range is used
    wf.set(seed=5)
    assert wf.resolved_seeds == {}


def test_random_seed_without_object_info(txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img).set("KSampler.seed", "random")
    value = wf.resolved_seeds["3.seed"]
    assert wf.nodes["3"]["inputs"]["seed"] == value
    assert 0 <= value < 2**53


def test_random_noise_seed_respects_declared_range() -> None:
    info = {"RandomNoise": {"input": {"required": {
        "noise_seed": ["INT", {"default": 0, "min": 10, "max": 12}]}}}}
    wf = Workflow.load({"1": {"class_type": "RandomNoise", "inputs": {"noise_seed": 0}}},
                       object_info=info)
    values = {wf.set(noise_seed="random").resolved_seeds["1.noise_seed"] for _ in range(50)}
    assert values <= {10, 11, 12}


def test_random_is_literal_for_other_inputs(txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img).set("6.text", "random")
    assert wf.nodes["6"]["inputs"]["text"] == "random"
    assert wf.resolved_seeds == {}


# -- params() -------------------------------------------------------------------------------


def _by_path(params: list[Param]) -> dict[str, Param]:
    return {p.path: p for p in params}


def test_params_of_txt2img(object_info: dict[str, Any], txt2img: dict[str, Any]) -> None:
    params = Workflow.load(txt2img).params(object_info)
    assert [p.path for p in params] == [
        "3.seed", "3.steps", "3.cfg", "3.sampler_name", "3.scheduler", "3.denoise",
        "4.ckpt_name", "5.width", "5.height", "5.batch_size", "6.text", "7.text",
        "9.filename_prefix",
    ]
    p = _by_path(params)
    seed = p["3.seed"]
    assert (seed.type, seed.value, seed.min, seed.max, seed.default) == (
        "INT", 42, 0, 0xFFFFFFFFFFFFFFFF, 0)
    assert (seed.node_id, seed.title, seed.class_type, seed.name) == (
        "3", "KSampler", "KSampler", "seed")
    width = p["5.width"]
    assert (width.type, width.min, width.max, width.step, width.default) == (
        "INT", 16, 16384, 8, 512)
    cfg = p["3.cfg"]
    assert (cfg.type, cfg.min, cfg.max, cfg.step, cfg.default) == ("FLOAT", 0.0, 100.0, 0.1, 8.0)
    text = p["6.text"]
    assert (text.type, text.multiline, text.title) == ("STRING", True, "Positive Prompt")
    prefix = p["9.filename_prefix"]
    assert (prefix.type, prefix.multiline, prefix.default) == ("STRING", False, "ComfyUI")
    sampler = p["3.sampler_name"]
    assert sampler.type == "COMBO" and sampler.choices is not None
    assert "euler" in sampler.choices and "dpmpp_2m" in sampler.choices
    assert sampler.min is None and sampler.multiline is None
    assert p["4.ckpt_name"].choices == ("random_sd15.safetensors",)


def test_params_from_load_time_object_info(object_info: dict[str, Any],
                                           txt2img: dict[str, Any]) -> None:
    wf = Workflow.load(txt2img, object_info=object_info)
    assert wf.params() == Workflow.load(txt2img).params(object_info)


def test_params_boolean_and_v3_combo(object_info: dict[str, Any]) -> None:
    assert object_info["LatentConcat"]["input"]["required"]["dim"][0] == "COMBO"
    wf = Workflow.load({
        "1": {"class_type": "LatentConcat",
              "inputs": {"samples1": ["2", 0], "samples2": ["2", 0], "dim": "x"}},
        "2": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "10": {"class_type": "ImageCompositeMasked",
               "inputs": {"destination": ["3", 0], "source": ["3", 0], "x": 0, "y": 0,
                          "resize_source": True}},
        "3": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8,
                                                     "batch_size": 1, "color": 0}},
    }, object_info=object_info)
    p = _by_path(wf.params())
    assert [q.node_id for q in wf.params()][:2] == ["1", "2"]  # numeric-aware: "10" last
    assert wf.params()[-1].node_id == "10"
    dim = p["1.dim"]
    assert dim.type == "COMBO" and dim.choices == ("x", "-x", "y", "-y", "t", "-t")
    resize = p["10.resize_source"]
    assert (resize.type, resize.value, resize.default) == ("BOOLEAN", True, False)
    assert "1.samples1" not in p  # links are not parameters


def test_params_without_object_info(txt2img: dict[str, Any]) -> None:
    p = _by_path(Workflow.load(txt2img).params())
    assert p["3.seed"].type == "INT" and p["3.seed"].max is None
    assert p["3.cfg"].type == "FLOAT"
    assert p["6.text"].type == "STRING" and p["6.text"].multiline is None
    assert p["3.sampler_name"].choices is None
    assert "3.model" not in p


def test_param_is_frozen(txt2img: dict[str, Any]) -> None:
    param = Workflow.load(txt2img).params()[0]
    with pytest.raises(AttributeError):
        param.value = 1  # type: ignore[misc]
    assert param.path == "3.seed"


def test_params_subgraph_ids_sort_numerically() -> None:
    wf = Workflow.load({key: {"class_type": "X", "inputs": {"v": 1}}
                        for key in ["12:5", "2", "10", "9:8:5", "12:10", "1"]})
    assert [p.node_id for p in wf.params()] == ["1", "2", "9:8:5", "10", "12:5", "12:10"]


# -- property: load never leaks anything but WorkflowError -----------------------------------

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_json = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)
_nodes = st.dictionaries(
    st.text(max_size=4),
    st.fixed_dictionaries(
        {"class_type": st.text(max_size=8) | _scalars,
         "inputs": st.dictionaries(st.text(max_size=6), _json, max_size=4) | _json},
        optional={"_meta": _json | st.fixed_dictionaries({"title": _json})}),
    max_size=4,
)
_ui = st.fixed_dictionaries({"nodes": st.lists(_json | st.dictionaries(st.text(), _json))},
                            optional={"links": _json})


def _png_with(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for kind, body in chunks:
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body))
    return out


_chunk_kind = st.sampled_from([b"tEXt", b"zTXt", b"iTXt", b"comf", b"IEND", b"IHDR"])
_chunk_body = st.binary(max_size=40) | st.builds(
    lambda key, text: key + b"\0" + text,
    st.sampled_from([b"prompt", b"workflow"]),
    (_json | _nodes).map(lambda v: json.dumps(v).encode()) | st.binary(max_size=20))
_pngs = st.lists(st.tuples(_chunk_kind, _chunk_body), max_size=4).map(_png_with)
_webps = st.binary(max_size=60).map(lambda b: b"RIFF" + struct.pack("<I", len(b) + 4) + b"WEBP" + b)

_sources = (_json | _nodes | _ui | st.builds(lambda n: {"prompt": n}, _nodes)
            | (_json | _nodes).map(json.dumps) | _pngs | _webps | st.binary(max_size=30))


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_sources)
def test_load_only_raises_workflow_error(source: Any) -> None:
    try:
        wf = Workflow.load(source)
    except WorkflowError:
        return
    assert wf.format in ("api", "ui")
    repr(wf)
    len(wf)
    assert len(wf.content_hash) == 64
    assert wf == wf.copy()
    if wf.format == "api":
        assert isinstance(wf.to_api(), dict)
        for param in wf.params():
            assert isinstance(param.path, str)
        with contextlib.suppress(ParameterError):
            wf.set(seed="random")


def test_object_info_can_be_a_connected_client() -> None:
    import json as _json

    from comfy_nb import connect
    from comfy_nb.emulator import serve

    ui_path = (UI2API
               / "frontend_default_graph")
    ui = _json.loads((ui_path / "ui.json").read_text())
    expected = _json.loads((ui_path / "api.json").read_text())
    with serve() as server, connect(server.url) as client:
        assert Workflow.load(ui, object_info=client).to_api() == expected
    with pytest.raises(WorkflowError, match="connected Client"):
        Workflow.load(ui, object_info=42)


def test_a_bundled_workflow_by_name() -> None:
    from comfy_nb.workflows import bundled

    assert Workflow.load("txt2img").to_api() == bundled("txt2img")
    with pytest.raises(WorkflowError, match="bundled workflows: txt2img"):
        Workflow.load("txt2im")


def test_node_ids_with_unicode_digits_sort_as_names() -> None:
    """``"²".isdigit()`` is true but ``int("²")`` fails: such ids are names, not numbers."""
    wf = Workflow.load({"²": {"class_type": "X", "inputs": {}},
                        "10": {"class_type": "Y", "inputs": {}}})
    assert "X" in repr(wf)

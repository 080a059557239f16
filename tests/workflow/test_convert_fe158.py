"""The editor → API conversion follows the current ComfyUI editor, frontend 1.58.1.

The public pairs of ``fixtures/ui2api-fe158`` (what 1.58.1's ``graphToPrompt`` produced, one per
rule that changed since 1.27.10) must convert identically, key order included. Each rule then has
its own pairs here: small workflows built for the rule and the API prompt the rule gives,
written out in full, with the frontend source file the rule comes from.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from comfy_nb.errors import BrokenLinkError
from comfy_nb.workflow._check import check_workflow
from comfy_nb.workflow._convert import ui_to_api
from tests import fixture_paths
from tests.workflow.test_convert import KS_VALUES, checkpoint, ksampler, link, node, workflow

PAIRS_DIR = fixture_paths.UI2API_FE158
PAIRS = [p.name for p in fixture_paths.listing(PAIRS_DIR, where=lambda p: p.is_dir())]


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    with (fixture_paths.COMFYUI / "http" / "object_info.json").open() as f:
        data: dict[str, Any] = json.load(f)
    return data


def _load(name: str, file: str) -> Any:
    with (PAIRS_DIR / name / file).open() as f:
        return json.load(f)


def _entry(class_type: str | None, title: str, **inputs: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"inputs": inputs}
    if class_type is not None:
        entry["class_type"] = class_type
    entry["_meta"] = {"title": title}
    return entry


def _same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal, key order (of nodes and of each node's inputs) included."""
    assert got == expected
    assert json.dumps(got) == json.dumps(expected)


# -- the public 1.58.1 pairs -------------------------------------------------------------------


def test_public_pairs_present() -> None:
    assert len(PAIRS) == 8


@pytest.mark.parametrize("name", PAIRS)
def test_public_pair(name: str, object_info: dict[str, Any]) -> None:
    ui = _load(name, "ui.json")
    before = copy.deepcopy(ui)
    got = ui_to_api(ui, object_info)
    assert ui == before, "the input workflow was mutated"
    _same(got, _load(name, "api.json"))


def test_saved_frontend_version_does_not_matter(object_info: dict[str, Any]) -> None:
    for name in PAIRS:
        ui = _load(name, "ui.json")
        expected = ui_to_api(ui, object_info)
        for version in ("1.18.9", "1.27.10", "1.58.1", None):
            ui.setdefault("extra", {})["frontendVersion"] = version
            _same(ui_to_api(ui, object_info), expected)


# -- widgets the editor no longer sends, and those its extensions add -------------------------


def test_no_audio_ui_or_preview_widgets(object_info: dict[str, Any]) -> None:
    # extensions/core/uploadAudio.ts: audioUI has serialize false and options.serialize false;
    # extensions/core/previewAny.ts (textPreviewWidgets.ts): the preview is not sent either
    ui = workflow([
        node(1, "LoadAudio", inputs=[("audio", "COMBO", None, True)],
             outputs=[("AUDIO", [1, 2])], values=["a.wav", None]),
        node(2, "PreviewAudio", inputs=[("audio", "AUDIO", 1, False)]),
        node(3, "PreviewAny", inputs=[("source", "*", 2, False)], values=[None, None, None]),
    ], [link(1, 1, 0, 2, 0, "AUDIO"), link(2, 1, 0, 3, 0, "*")])
    _same(ui_to_api(ui, object_info), {
        "1": _entry("LoadAudio", "Load Audio", audio="a.wav"),
        "2": _entry("PreviewAudio", "Preview Audio", audio=["1", 0]),
        "3": _entry("PreviewAny", "Preview Any", source=["1", 0]),
    })


def test_extension_widgets_are_sent(object_info: dict[str, Any]) -> None:
    # extensions/core/saveMesh.ts and load3d.ts add image: PREVIEW_3D to SaveGLB and Preview3D;
    # uploadAudio.ts (Comfy.RecordAudio): the player and a record button, both named audio
    ui = workflow([
        node(1, "SaveGLB", inputs=[("mesh", "MESH", None, False)], values=["3d/x", ""]),
        node(2, "Preview3D", values=["model.glb", "kept"]),
        node(3, "RecordAudio", outputs=[("AUDIO", [])], values=["", ""]),
    ], [])
    _same(ui_to_api(ui, object_info), {
        "1": _entry("SaveGLB", "SaveGLB", filename_prefix="3d/x", image=""),
        "2": _entry("Preview3D", "Preview 3D", model_file="model.glb", image="kept"),
        "3": _entry("RecordAudio", "Record Audio", audio=""),
    })


def test_upload_button_comes_after_every_input(object_info: dict[str, Any]) -> None:
    # extensions/core/uploadImage.ts adds upload to the definition; input_order does not name it,
    # so workbench/utils/nodeDefOrderingUtil.ts puts it last (1.27.10 put it after its combo)
    ui = workflow([node(1, "LoadImageMask", outputs=[("MASK", [])],
                        values=["mask.png", "green", "image"])], [])
    _same(ui_to_api(ui, object_info), {
        "1": _entry("LoadImageMask", "Load Image (as Mask)", image="mask.png", channel="green"),
    })


def test_webcam_and_load3d_widgets(object_info: dict[str, Any]) -> None:
    # extensions/core/webcamCapture.ts: a capture button after the inputs, never sent;
    # extensions/core/load3d.ts: three buttons before the viewer, sent by name
    ui = workflow([
        node(1, "WebcamCapture", outputs=[("IMAGE", [])],
             values=["webcam/1.png [temp]", 640, 480, False, "capture"]),
        node(2, "Load3D", outputs=[("IMAGE", [])],
             values=["cube.glb", "upload3dmodel", "uploadExtraResources", "clear", "scene", 512,
                     256]),
    ], [])
    _same(ui_to_api(ui, object_info), {
        "1": _entry("WebcamCapture", "Webcam Capture", image="webcam/1.png [temp]", width=640,
                    height=480, capture_on_queue=False),
        "2": _entry("Load3D", "Load 3D", model_file="cube.glb", **{
            "upload 3d model": "upload3dmodel", "upload extra resources": "uploadExtraResources",
            "clear": "clear", "image": "scene", "width": 512, "height": 256}),
    })


def test_seed_inputs_get_a_control_widget(object_info: dict[str, Any]) -> None:
    # renderer/extensions/vueNodes/widgets/composables/useIntWidget.ts: an INT named seed gets
    # control_after_generate even when its spec does not ask for one (TrainLoraNode.seed), so
    # the saved value after the seed is the control's, not the next input's
    spec = object_info["TrainLoraNode"]["input"]["required"]
    assert "control_after_generate" not in spec["seed"][1]
    order = object_info["TrainLoraNode"]["input_order"]["required"]
    widgets = [n for n in order if isinstance(spec[n][0], list)
               or spec[n][0] in ("INT", "FLOAT", "BOOLEAN", "STRING")]
    after_seed = widgets[widgets.index("seed") + 1]
    values: list[Any] = []
    for name in widgets:
        values.append(spec[name][1].get("default", spec[name][0][0]
                                        if isinstance(spec[name][0], list) else None))
        if name == "seed":
            values[-1] = 7
            values.append("fixed")
        if name == after_seed:
            values[-1] = spec[name][0][-1]
    got = ui_to_api(workflow([node(1, "TrainLoraNode", values=values)], []), object_info)
    assert got["1"]["inputs"]["seed"] == 7
    assert got["1"]["inputs"][after_seed] == spec[after_seed][0][-1]
    assert "fixed" not in got["1"]["inputs"].values()


def test_null_combo_takes_its_first_option(object_info: dict[str, Any]) -> None:
    # scripts/app.ts (loadGraphData): a combo whose value is null gets its first option
    ui = workflow([node(1, "LatentUpscaleBy", inputs=[("samples", "LATENT", None, False)],
                        values=[None, 2.0])], [])
    first = object_info["LatentUpscaleBy"]["input"]["required"]["upscale_method"][0][0]
    _same(ui_to_api(ui, object_info), {
        "1": _entry("LatentUpscaleBy", "Upscale Latent By", upscale_method=first, scale_by=2.0),
    })


def test_values_of_force_input_widgets_are_dropped(object_info: dict[str, Any]) -> None:
    # utils/litegraphUtil.ts (migrateWidgetsValues): a value saved for an input that is a socket
    # now (forceInput) is removed before the values are read
    info = copy.deepcopy(object_info)
    info["EmptyLatentImage"]["input"]["required"]["height"][1]["forceInput"] = True
    ui = workflow([node(1, "EmptyLatentImage", values=[640, 480, 3])], [])
    _same(ui_to_api(ui, info), {
        "1": _entry("EmptyLatentImage", "Empty Latent Image", width=640, batch_size=3),
    })


# -- titles and _meta ----------------------------------------------------------------------------


def test_default_titles_follow_current_display_names(object_info: dict[str, Any]) -> None:
    # i18n.ts (resolveNodeDefText): the server's display_name, else the name the editor ships
    # (locales/en/nodeDefs.json), else the class; an empty saved title is no title
    assert object_info["Canny"].get("display_name") is None
    ui = workflow([
        node(1, "Canny", inputs=[("image", "IMAGE", None, False)], values=[0.2, 0.6]),
        node(2, "ImageBlur", inputs=[("image", "IMAGE", None, False)], values=[2, 1.5], title=""),
        node(3, "ConditioningZeroOut", inputs=[("conditioning", "CONDITIONING", None, False)]),
        node(4, "ImageInvert", inputs=[("image", "IMAGE", None, False)], title="Mine"),
    ], [])
    _same(ui_to_api(ui, object_info), {
        "1": _entry("Canny", "Detect Edges (Canny)", low_threshold=0.2, high_threshold=0.6),
        "2": _entry("ImageBlur", "Blur Image", blur_radius=2, sigma=1.5),
        "3": _entry("ConditioningZeroOut", "ConditioningZeroOut"),
        "4": _entry("ImageInvert", "Mine"),
    })


def test_meta_carries_the_node_pack(object_info: dict[str, Any]) -> None:
    # utils/executionUtil.ts: _meta gets cnr_id, aux_id and ver from the node's properties when
    # the workflow schema accepts them (platform/workflow/validation/schemas/workflowSchema.ts)
    cases = [
        ({"cnr_id": "comfy-core", "ver": "0.3.64"}, {"cnr_id": "comfy-core", "ver": "0.3.64"}),
        ({"aux_id": "someone/some-nodes", "ver": "v1.2.3"},
         {"aux_id": "someone/some-nodes", "ver": "1.2.3"}),
        ({"cnr_id": "pack", "ver": "a1b2c3d"}, {"cnr_id": "pack", "ver": "a1b2c3d"}),
        ({"cnr_id": "pack", "ver": "unknown"}, {"cnr_id": "pack", "ver": "unknown"}),
        ({"cnr_id": "-bad", "aux_id": "no-slash", "ver": "1.2"}, {}),
    ]
    for properties, meta in cases:
        one = node(1, "ImageInvert", inputs=[("image", "IMAGE", None, False)])
        one["properties"] = {"Node name for S&R": "ImageInvert", **properties}
        got = ui_to_api(workflow([one], []), object_info)
        assert got["1"]["_meta"] == {"title": "Invert Image", **meta}, properties
        assert list(got["1"]["_meta"]) == ["title", *meta]


# -- links ---------------------------------------------------------------------------------------


def test_missing_link_row_drops_the_input(object_info: dict[str, Any]) -> None:
    # lib/litegraph/src/node/slotLinks.ts: what is connected comes from the link rows; an input
    # naming a row that does not exist is simply unconnected (1.27.10 refused the file)
    ui = workflow([
        checkpoint(clip=[5]),
        node(2, "CLIPTextEncode", inputs=[("clip", "CLIP", 5, False)],
             outputs=[("CONDITIONING", [])], values=["a cat"]),
        node(3, "VAEDecode", inputs=[("samples", "LATENT", 77, False), ("vae", "VAE", 78, False)]),
    ], [link(5, 1, 1, 2, 0, "CLIP")])
    _same(ui_to_api(ui, object_info), {
        "1": _entry("CheckpointLoaderSimple", "Load Checkpoint", ckpt_name="model.safetensors"),
        "2": _entry("CLIPTextEncode", "CLIP Text Encode (Prompt)", text="a cat", clip=["1", 1]),
        "3": _entry("VAEDecode", "VAE Decode"),
    })


def test_link_rows_decide_what_is_connected(object_info: dict[str, Any]) -> None:
    # lib/litegraph/src/linkDeduplication.ts: a row no input names still connects the slot it
    # targets; a row whose slot disagrees with the input naming it moves to that input; of two
    # rows into one slot the first wins unless only the later one is named by an input
    decode = node(3, "VAEDecode", inputs=[("samples", "LATENT", None, False),
                                          ("vae", "VAE", None, False)])
    latent = node(4, "EmptyLatentImage", outputs=[("LATENT", [1])], values=[64, 64, 1])
    ui = workflow([checkpoint(vae=[2]), decode, latent],
                  [link(1, 4, 0, 3, 0, "LATENT"), link(2, 1, 2, 3, 1, "VAE")])
    assert ui_to_api(ui, object_info)["3"]["inputs"] == {"samples": ["4", 0], "vae": ["1", 2]}

    ks = ksampler(5, {"model": 9}, KS_VALUES)  # the row says slot 2, the input is slot 0
    ui = workflow([checkpoint(model=[9]), ks], [link(9, 1, 0, 5, 2, "MODEL")])
    got = ui_to_api(ui, object_info)["5"]["inputs"]
    assert got["model"] == ["1", 0] and "negative" not in got

    other = node(6, "EmptyLatentImage", outputs=[("LATENT", [])], values=[32, 32, 1])
    decode = node(3, "VAEDecode", inputs=[("samples", "LATENT", 12, False),
                                          ("vae", "VAE", None, False)])
    ui = workflow([latent, other, decode],
                  [link(11, 4, 0, 3, 0, "LATENT"), link(12, 6, 0, 3, 0, "LATENT")])
    assert ui_to_api(ui, object_info)["3"]["inputs"] == {"samples": ["6", 0]}


def test_a_link_from_a_missing_node_still_fails(object_info: dict[str, Any]) -> None:
    # ExecutableNodeDTO.ts (resolveInput): InvalidLinkError, unchanged since 1.27.10
    ks = ksampler(5, {"model": 9}, KS_VALUES)
    with pytest.raises(BrokenLinkError, match="linked node 42 does not exist"):
        ui_to_api(workflow([ks], [link(9, 42, 0, 5, 0, "MODEL")]), object_info)


def test_muted_reroute_gives_nothing(object_info: dict[str, Any]) -> None:
    # ExecutableNodeDTO.ts (resolveOutput): a muted node gives no output, a virtual one included
    reroute = node(10, "Reroute", inputs=[("", "*", 1, False)], outputs=[("VAE", [2])], mode=2)
    decode = node(6, "VAEDecode", inputs=[("samples", "LATENT", None, False),
                                          ("vae", "VAE", 2, False)])
    ui = workflow([checkpoint(vae=[1]), reroute, decode],
                  [link(1, 1, 2, 10, 0, "VAE"), link(2, 10, 0, 6, 1, "VAE")])
    assert ui_to_api(ui, object_info)["6"]["inputs"] == {}


# -- node types --------------------------------------------------------------------------------


def test_unknown_types_are_emitted_as_the_editor_emits_them(object_info: dict[str, Any]) -> None:
    # scripts/errorNodeWidgets.ts: one UNKNOWN widget per saved value (objects as JSON text);
    # utils/executionUtil.ts: class_type undefined, so absent; an untitled one has title ""
    fancy = node(2, "FancyUpscaler", inputs=[("image", "IMAGE", 1, False)],
                 outputs=[("IMAGE", [2])], values=["lanczos", 2, True, [1, 2], {"a": None}, None])
    ui = workflow([
        node(1, "LoadImage", inputs=[("image", "COMBO", None, True)],
             outputs=[("IMAGE", [1]), ("MASK", [])], values=["cat.png", "image"]),
        fancy,
        node(3, "PreviewImage", inputs=[("images", "IMAGE", 2, False)]),
    ], [link(1, 1, 0, 2, 0, "IMAGE"), link(2, 2, 0, 3, 0, "IMAGE")])
    expected = {
        "1": _entry("LoadImage", "Load Image", image="cat.png"),
        "2": _entry(None, "", UNKNOWN="lanczos", UNKNOWN_1=2, UNKNOWN_2=True,
                    UNKNOWN_3="[1,2]", UNKNOWN_4='{"a":null}', UNKNOWN_5="null",
                    image=["1", 0]),
        "3": _entry("PreviewImage", "Preview Image", images=["2", 0]),
    }
    got = ui_to_api(ui, object_info)
    _same(got, expected)
    problems = check_workflow(got, object_info)
    assert [(p.node_id, p.type) for p in problems] == [("2", "invalid_prompt")]
    assert "node 2 has no class_type: the server has no such node type" in str(problems[0])
    assert "install the custom nodes" in str(problems[0])


def test_old_type_renames_are_gone(object_info: dict[str, Any]) -> None:
    # 1.27.10 renamed T2IAdapterLoader to ControlNetLoader on load; 1.58.1 has no such patch,
    # so the node is of a type the server does not know
    ui = workflow([node(1, "T2IAdapterLoader", outputs=[("CONTROL_NET", [])],
                        values=["t2i.safetensors"], title="Adapter")], [])
    _same(ui_to_api(ui, object_info), {"1": _entry(None, "Adapter", UNKNOWN="t2i.safetensors")})
    problems = check_workflow(ui_to_api(ui, object_info), object_info)
    assert "node 1 ('Adapter') has no class_type" in str(problems[0])


# -- subgraphs -----------------------------------------------------------------------------------


def row(lid: int, origin: int, oslot: int, target: int, tslot: int, type_: str) -> dict[str, Any]:
    return {"id": lid, "origin_id": origin, "origin_slot": oslot, "target_id": target,
            "target_slot": tslot, "type": type_}


def upscale_subgraph(sid: str = "sub-up", inner_id: int = 5,
                     promote: bool = False) -> dict[str, Any]:
    """A subgraph LATENT → LatentUpscaleBy → LATENT; with ``promote``, its scale_by widget is
    also a subgraph input named scale."""
    inputs = [("samples", "LATENT", None, False)]
    links = [row(1, -10, 0, inner_id, 0, "LATENT"), row(2, inner_id, 0, -20, 0, "LATENT")]
    sub_inputs = [{"name": "samples", "type": "LATENT", "linkIds": [1]}]
    if promote:
        inputs.append(("scale_by", "FLOAT", 3, True))
        links.append(row(3, -10, 1, inner_id, 1, "FLOAT"))
        sub_inputs.append({"name": "scale", "type": "FLOAT", "linkIds": [3]})
    inner = node(inner_id, "LatentUpscaleBy", inputs=inputs, outputs=[("LATENT", [2])],
                 values=["nearest-exact", 1.5])
    return {"id": sid, "name": "Upscale", "inputNode": {"id": -10}, "outputNode": {"id": -20},
            "inputs": sub_inputs,
            "outputs": [{"name": "LATENT", "type": "LATENT", "linkIds": [2]}],
            "nodes": [inner], "links": links, "widgets": []}


def instance(nid: int, sid: str, link_in: int | None, links_out: list[int], *,
             mode: int = 0, values: list[Any] | None = None,
             proxies: list[list[Any]] | None = None) -> dict[str, Any]:
    data = node(nid, sid, inputs=[("samples", "LATENT", link_in, False)],
                outputs=[("LATENT", links_out)], values=values, mode=mode)
    if proxies is not None:
        data["properties"]["proxyWidgets"] = proxies
    return data


def latent_into(sub_node: dict[str, Any], *definitions: dict[str, Any],
                **extra: Any) -> dict[str, Any]:
    """EmptyLatentImage 1 → ``sub_node`` (id 8) → VAEDecode 3."""
    return workflow([
        node(1, "EmptyLatentImage", outputs=[("LATENT", [10])], values=[64, 64, 1]),
        sub_node,
        node(3, "VAEDecode", inputs=[("samples", "LATENT", 11, False),
                                     ("vae", "VAE", None, False)]),
    ], [link(10, 1, 0, 8, 0, "LATENT"), link(11, 8, 0, 3, 0, "LATENT")],
        definitions={"subgraphs": list(definitions)}, **extra)


EMPTY_LATENT = _entry("EmptyLatentImage", "Empty Latent Image", width=64, height=64,
                      batch_size=1)


def test_muted_and_bypassed_subgraph_instances(object_info: dict[str, Any]) -> None:
    # utils/executionUtil.ts: an instance at the root with mode 2 or 4 is not expanded;
    # ExecutableNodeDTO.ts: a bypassed one passes its input through, a muted one gives nothing
    upscale = _entry("LatentUpscaleBy", "Upscale Latent By", upscale_method="nearest-exact",
                     scale_by=1.5, samples=["1", 0])
    expected = {
        0: {"1": EMPTY_LATENT, "3": _entry("VAEDecode", "VAE Decode", samples=["8:5", 0]),
            "8:5": upscale},
        4: {"1": EMPTY_LATENT, "3": _entry("VAEDecode", "VAE Decode", samples=["1", 0])},
        2: {"1": EMPTY_LATENT, "3": _entry("VAEDecode", "VAE Decode")},
    }
    for mode, api in expected.items():
        ui = latent_into(instance(8, "sub-up", 10, [11], mode=mode), upscale_subgraph())
        _same(ui_to_api(ui, object_info), api)


def test_nested_muted_instance_is_expanded_but_gives_nothing(
        object_info: dict[str, Any]) -> None:
    # lib/litegraph/src/subgraph/SubgraphNode.ts (getInnerNodes) expands nested instances
    # whatever their mode; ExecutableNodeDTO.ts: a muted one still gives no output
    outer = {"id": "sub-outer", "name": "Outer", "inputNode": {"id": -10},
             "outputNode": {"id": -20},
             "inputs": [{"name": "samples", "type": "LATENT", "linkIds": [21]}],
             "outputs": [{"name": "LATENT", "type": "LATENT", "linkIds": [22]}],
             "nodes": [instance(7, "sub-up", 21, [22], mode=2)],
             "links": [row(21, -10, 0, 7, 0, "LATENT"), row(22, 7, 0, -20, 0, "LATENT")]}
    ui = latent_into(instance(8, "sub-outer", 10, [11]), outer, upscale_subgraph())
    _same(ui_to_api(ui, object_info), {
        "1": EMPTY_LATENT,
        "3": _entry("VAEDecode", "VAE Decode"),
        "8:7:5": _entry("LatentUpscaleBy", "Upscale Latent By", upscale_method="nearest-exact",
                        scale_by=1.5, samples=["1", 0]),
    })


def test_colliding_inner_ids_are_renumbered(object_info: dict[str, Any]) -> None:
    # lib/litegraph/src/subgraph/subgraphDeduplication.ts: an inner id already used at the root
    # or by an earlier subgraph becomes last_node_id + 1, + 2, ...; links and the proxyWidgets
    # of the instances follow
    first = upscale_subgraph("sub-a", inner_id=5)
    second = upscale_subgraph("sub-b", inner_id=5)
    ui = workflow([
        node(1, "EmptyLatentImage", outputs=[("LATENT", [10, 12])], values=[64, 64, 1]),
        node(5, "ImageInvert", inputs=[("image", "IMAGE", None, False)]),
        instance(8, "sub-a", 10, [11]),
        instance(9, "sub-b", 12, [13], values=[2.5], proxies=[["5", "scale_by"]]),
        node(3, "VAEDecode", inputs=[("samples", "LATENT", 11, False),
                                     ("vae", "VAE", None, False)]),
        node(4, "VAEDecode", inputs=[("samples", "LATENT", 13, False),
                                     ("vae", "VAE", None, False)]),
    ], [link(10, 1, 0, 8, 0, "LATENT"), link(11, 8, 0, 3, 0, "LATENT"),
        link(12, 1, 0, 9, 0, "LATENT"), link(13, 9, 0, 4, 0, "LATENT")],
        definitions={"subgraphs": [first, second]}, last_node_id=9)
    up = {"upscale_method": "nearest-exact", "scale_by": 1.5, "samples": ["1", 0]}
    _same(ui_to_api(ui, object_info), {
        "1": EMPTY_LATENT,
        "3": _entry("VAEDecode", "VAE Decode", samples=["8:10", 0]),
        "4": _entry("VAEDecode", "VAE Decode", samples=["9:11", 0]),
        "5": _entry("ImageInvert", "Invert Image"),
        "8:10": _entry("LatentUpscaleBy", "Upscale Latent By", **up),
        "9:11": _entry("LatentUpscaleBy", "Upscale Latent By", **{**up, "scale_by": 2.5}),
    })


def test_proxy_widgets_of_old_files(object_info: dict[str, Any]) -> None:
    # core/graph/subgraph/migration/proxyWidgetMigration.ts: the instance's widgets_values line
    # up with properties.proxyWidgets; each value goes to the widget its entry names (the
    # "-1" entries name a subgraph input); a missing value leaves the widget as it is
    ui = latent_into(instance(8, "sub-up", 10, [11], values=[3.0, "bilinear"],
                              proxies=[["5", "scale_by"], ["5", "upscale_method"]]),
                     upscale_subgraph())
    got = ui_to_api(ui, object_info)["8:5"]["inputs"]
    assert got == {"upscale_method": "bilinear", "scale_by": 3.0, "samples": ["1", 0]}
    assert list(got) == ["upscale_method", "scale_by", "samples"]

    ui = latent_into(instance(8, "sub-up", 10, [11], values=[4.0],
                              proxies=[["-1", "scale"], ["5", "upscale_method"]]),
                     upscale_subgraph(promote=True))
    ui["nodes"][1]["inputs"].append({"name": "scale", "type": "FLOAT", "link": None,
                                     "widget": {"name": "scale"}})
    got = ui_to_api(ui, object_info)["8:5"]["inputs"]
    assert got == {"upscale_method": "nearest-exact", "scale_by": 4.0, "samples": ["1", 0]}


def test_outermost_promoted_value_wins(object_info: dict[str, Any]) -> None:
    # proxyWidgetMigration.ts runs for each instance; the outer instance's value for a widget
    # promoted through a nested instance is the one queued
    nested = instance(7, "sub-up", 21, [22], values=[2.0])
    nested["inputs"].append({"name": "scale", "type": "FLOAT", "link": None,
                             "widget": {"name": "scale"}})
    outer = {"id": "sub-outer", "name": "Outer", "inputNode": {"id": -10},
             "outputNode": {"id": -20},
             "inputs": [{"name": "samples", "type": "LATENT", "linkIds": [21]}],
             "outputs": [{"name": "LATENT", "type": "LATENT", "linkIds": [22]}],
             "nodes": [nested],
             "links": [row(21, -10, 0, 7, 0, "LATENT"), row(22, 7, 0, -20, 0, "LATENT")]}
    for proxies, values, scale in ((None, None, 2.0), ([["7", "scale"]], [6.0], 6.0),
                                   ([["7", "5: scale_by"]], [7.0], 7.0)):
        ui = latent_into(instance(8, "sub-outer", 10, [11], values=values, proxies=proxies),
                         outer, upscale_subgraph(promote=True))
        got = ui_to_api(ui, object_info)
        assert got["8:7:5"]["inputs"]["scale_by"] == scale, proxies


# -- legacy group nodes ----------------------------------------------------------------------


def group_node_workflow(mode: int = 0) -> dict[str, Any]:
    """A group node "gen" (prompt, empty latent and KSampler) between a checkpoint, a negative
    prompt and a VAEDecode, saved as the editors before subgraphs saved it."""
    inner = [
        node(0, "CLIPTextEncode", inputs=[("clip", "CLIP", None, False)],
             outputs=[("CONDITIONING", [])], values=["a photo"]),
        node(0, "EmptyLatentImage", outputs=[("LATENT", [])], values=[64, 64, 1]),
        node(0, "KSampler", inputs=[("model", "MODEL", None, False),
                                    ("positive", "CONDITIONING", None, False),
                                    ("negative", "CONDITIONING", None, False),
                                    ("latent_image", "LATENT", None, False)],
             outputs=[("LATENT", [])], values=[1, "fixed", 5, 7, "euler", "normal", 1]),
    ]
    for index, data in enumerate(inner):
        del data["id"]
        data["index"] = index
    group = {"nodes": inner, "links": [[0, 0, 2, 1, 6, "CONDITIONING"], [1, 0, 2, 3, 7, "LATENT"]],
             "external": []}
    nodes = [
        node(1, "CheckpointLoaderSimple", outputs=[("MODEL", [2]), ("CLIP", [1, 5]), ("VAE", [6])],
             values=["model.safetensors"], order=0),
        node(5, "CLIPTextEncode", inputs=[("clip", "CLIP", 5, False)],
             outputs=[("CONDITIONING", [3])], values=["ugly"], order=1),
        node(2, "workflow>gen", inputs=[("clip", "CLIP", 1, False), ("model", "MODEL", 2, False),
                                        ("negative", "CONDITIONING", 3, False)],
             outputs=[("LATENT", [4])], mode=mode, order=2,
             values=["a cat", 512, 768, 2, 42, "fixed", 20, 8, "dpmpp_2m", "karras", 0.9]),
        node(3, "VAEDecode", inputs=[("samples", "LATENT", 4, False), ("vae", "VAE", 6, False)],
             outputs=[("IMAGE", [7])], order=3),
        node(4, "PreviewImage", inputs=[("images", "IMAGE", 7, False)], order=4),
    ]
    links = [link(1, 1, 1, 2, 0, "CLIP"), link(2, 1, 0, 2, 1, "MODEL"),
             link(3, 5, 0, 2, 2, "CONDITIONING"), link(4, 2, 0, 3, 0, "LATENT"),
             link(5, 1, 1, 5, 0, "CLIP"), link(6, 1, 2, 3, 1, "VAE"), link(7, 3, 0, 4, 0, "IMAGE")]
    return workflow(nodes, links, last_node_id=10, last_link_id=7,
                    extra={"groupNodes": {"gen": group}})


GROUP_NODE_API = {
    "1": _entry("CheckpointLoaderSimple", "Load Checkpoint", ckpt_name="model.safetensors"),
    "3": _entry("VAEDecode", "VAE Decode", samples=["14:13", 0], vae=["1", 2]),
    "4": _entry("PreviewImage", "Preview Image", images=["3", 0]),
    "5": _entry("CLIPTextEncode", "CLIP Text Encode (Prompt)", text="ugly", clip=["1", 1]),
    "14:11": _entry("CLIPTextEncode", "CLIP Text Encode (Prompt)", text="a cat", clip=["1", 1]),
    "14:12": _entry("EmptyLatentImage", "Empty Latent Image", width=512, height=768,
                    batch_size=2),
    "14:13": _entry("KSampler", "KSampler", seed=42, steps=20, cfg=8, sampler_name="dpmpp_2m",
                    scheduler="karras", denoise=0.9, model=["1", 0], positive=["14:11", 0],
                    negative=["5", 0], latent_image=["14:12", 0]),
}


def test_group_node_becomes_a_subgraph(object_info: dict[str, Any]) -> None:
    # extensions/core/groupNode.ts (convertLoadedGroupNodes): the inner nodes are pasted with
    # new ids after last_node_id (11, 12, 13) and take the group node's widget values; then
    # LGraph.convertToSubgraph makes them a subgraph whose instance is the next id (14)
    ui = group_node_workflow()
    before = copy.deepcopy(ui)
    _same(ui_to_api(ui, object_info), GROUP_NODE_API)
    assert ui == before


def test_group_node_mode_is_not_kept(object_info: dict[str, Any]) -> None:
    # the pasted inner nodes keep their own modes and the new subgraph instance is created
    # with mode 0: a muted group node's contents are queued (groupNode.ts, LGraph.ts)
    _same(ui_to_api(group_node_workflow(mode=2), object_info), GROUP_NODE_API)


def test_group_node_with_an_unknown_inner_type_stays_unknown(
        object_info: dict[str, Any]) -> None:
    # GroupNodeConfig.registerFromWorkflow does not register such a group: its node has a type
    # the server does not know
    ui = group_node_workflow()
    ui["extra"]["groupNodes"]["gen"]["nodes"][1]["type"] = "NotInstalled"
    got = ui_to_api(ui, object_info)
    assert "class_type" not in got["2"] and not any(":" in key for key in got)


# -- values the editor computes when it queues ------------------------------------------------


def test_dynamic_prompts(object_info: dict[str, Any]) -> None:
    # extensions/core/dynamicPrompts.ts: a text input with dynamicPrompts loses its comments and
    # each {a|b} becomes one of its options, picked anew each time
    assert object_info["CLIPTextEncode"]["input"]["required"]["text"][1]["dynamicPrompts"]
    text = "a {red|blue} car /* note */ at {night}, \\{literal\\} // more\nsecond line"
    ui = workflow([node(2, "CLIPTextEncode", inputs=[("clip", "CLIP", None, False)],
                        values=[text])], [])
    seen = {ui_to_api(ui, object_info)["2"]["inputs"]["text"] for _ in range(40)}
    assert seen == {"a red car  at night, {literal} \nsecond line",
                    "a blue car  at night, {literal} \nsecond line"}
    plain = workflow([node(2, "SaveImage", inputs=[("images", "IMAGE", None, False)],
                           values=["{a|b}"]), ], [])
    assert ui_to_api(plain, object_info)["2"]["inputs"]["filename_prefix"] == "{a|b}"


def test_filename_prefix_patterns(object_info: dict[str, Any]) -> None:
    # extensions/core/saveImageExtraOutput.ts and utils/searchAndReplace.ts: %Node.widget% (by
    # S&R name, then title) and %date:...% in the filename_prefix of save nodes
    sampler = ksampler(3, {}, [1234, "fixed", 20, 7.5, "euler", "normal", 1], title="Main")
    sampler["properties"] = {"Node name for S&R": "KSampler"}
    latent = node(4, "EmptyLatentImage", values=[640, 480, 1], title="Size: big")
    save = node(9, "SaveImage", inputs=[("images", "IMAGE", None, False)],
                values=["out/%KSampler.seed%_%Main.cfg%_%Size: big.width%_%nope.x%_"
                        "%date:yyyy-MM-dd%_%KSampler.missing%"])
    got = ui_to_api(workflow([sampler, latent, save], []), object_info)["9"]["inputs"]
    prefix = got["filename_prefix"]
    assert prefix.startswith("out/1234_7.5_640_%nope.x%_")  # "Main" is a title, not a S&R name
    assert prefix.endswith("_%KSampler.missing%")
    date = prefix[len("out/1234_7.5_640_%nope.x%_"):-len("_%KSampler.missing%")]
    assert len(date) == 10 and date[4] == date[7] == "-" and date.replace("-", "").isdigit()


def test_date_patterns() -> None:
    import datetime

    from comfy_nb.workflow._editor_text import filename_replacements

    moment = datetime.datetime(2026, 3, 4, 5, 6, 7)
    got = filename_replacements("%date:yyyy/yy/M/MM/d/dd/h/hh/m/mm/s/ss/yyy%",
                                lambda node, widget: None, now=moment)
    assert got == "2026/26/3/03/4/04/5/05/6/06/7/07/yyy"
    assert filename_replacements("%a.b%", lambda node, widget: ("x/y:z",)) == "x_y_z"


def test_primitive_node_text_replacements(object_info: dict[str, Any]) -> None:
    # extensions/core/widgetInputs.ts (applyToGraph): with its "Run widget replace on values"
    # property set, a PrimitiveNode's text takes the %Node.widget% replacements first
    prim = node(20, "PrimitiveNode", outputs=[("STRING", [7])], values=["%Size.width%px"])
    prim["properties"] = {"Run widget replace on values": True}
    latent = node(4, "EmptyLatentImage", values=[640, 480, 1], title="Size")
    text = node(2, "CLIPTextEncode", inputs=[("clip", "CLIP", None, False),
                                             ("text", "STRING", 7, True)], values=["old"])
    ui = workflow([prim, latent, text], [link(7, 20, 0, 2, 1, "STRING")])
    assert ui_to_api(ui, object_info)["2"]["inputs"] == {"text": "640px"}
    prim["properties"] = {"Run widget replace on values": False}
    assert ui_to_api(ui, object_info)["2"]["inputs"] == {"text": "%Size.width%px"}


def test_workflow_with_an_unknown_type_converts_and_validation_names_it(
        object_info: dict[str, Any]) -> None:
    # the converter no longer refuses such a workflow; validation (what run/submit do before
    # sending) says which node it is and why
    from comfy_nb.errors import WorkflowInvalid
    from comfy_nb.workflow import Workflow
    from comfy_nb.workflow._check import validate_workflow

    with (fixture_paths.UI2API / "hb_missing_node_type" / "ui.json").open() as f:
        wf = Workflow.load(json.load(f), object_info=object_info)
    api = wf.to_api()
    assert "class_type" not in api["8"] and api["8"]["inputs"] == {"image": ["6", 0]}
    with pytest.raises(WorkflowInvalid) as info:
        validate_workflow(api, object_info)
    assert len(info.value.problems) == 1
    text = str(info.value.problems[0])
    assert "node 8 ('unknown custom node') has no class_type" in text
    assert "the server has no such node type" in text

"""``comfy_nb.use``: a workflow as a function, against the emulator over real sockets — its
signature and docstring (the bundled txt2img, an App mode workflow, an editor file), runs whose
submitted prompt carries the values (read back from the server's history), values refused
before anything is sent, ``submit``, ``client=``, sweeps by the same names and the controls of
``f.interact()``."""

from __future__ import annotations

import copy
import inspect
import json
import logging
import pydoc
import typing
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

import comfy_nb
from comfy_nb import _session, workflow_function
from comfy_nb.emulator import RunningEmulator
from comfy_nb.notebook import display as result_display
from comfy_nb.workflow import ParameterError, WorkflowError
from comfy_nb.workflow_function import WorkflowFunction, use
from comfy_nb.workflows import bundled

from . import fixture_paths
from .both_clients import load_and_save
from .factories import Clients, Emulators

WAIT = 60.0  # a safety net against hangs, never asserted on
TXT2IMG_NAMES = ["positive_prompt", "negative_prompt", "seed", "steps", "cfg", "sampler_name",
                 "scheduler", "denoise", "width", "height", "batch_size"]


@pytest.fixture(scope="module")
def emulator(module_emulators: Emulators) -> RunningEmulator:
    return module_emulators(step_delay=0.0)


@pytest.fixture(scope="module")
def client(emulator: RunningEmulator, module_clients: Clients) -> comfy_nb.Client:
    return module_clients.connect(emulator)


@pytest.fixture(scope="module")
def txt2img(client: comfy_nb.Client) -> WorkflowFunction:
    return use("txt2img", client=client)


@pytest.fixture(autouse=True)
def no_result_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run reaches the server, so its history holds what was sent."""
    monkeypatch.setenv("COMFY_NB_CACHE", "off")


def sent_prompt(server: RunningEmulator, prompt_id: str) -> dict[str, Any]:
    """The API prompt the server received for ``prompt_id`` (its history entry)."""
    entry = httpx.get(f"{server.url}/history/{prompt_id}", timeout=WAIT).json()[prompt_id]
    prompt: dict[str, Any] = entry["prompt"][2]
    return prompt


def history_ids(server: RunningEmulator) -> set[str]:
    return set(httpx.get(f"{server.url}/history", timeout=WAIT).json())


# -- an editor workflow saved in App mode, built here ----------------------------------------------

GRAPH_ID = "0b6c3f1e-5d2a-4c8e-9f70-1a2b3c4d5e6f"
SUBGRAPH_ID = "7f3e9a10-2b4c-4d5e-8f60-aa11bb22cc33"


def _node(node_id: int, kind: str, inputs: list[dict[str, Any]] | None = None,
          outputs: list[dict[str, Any]] | None = None, widgets: list[Any] | None = None,
          **extra: Any) -> dict[str, Any]:
    made: dict[str, Any] = {"id": node_id, "type": kind, "pos": [node_id * 120, 0],
                            "size": [220, 120], "flags": {}, "order": node_id, "mode": 0,
                            "inputs": inputs or [], "outputs": outputs or [], "properties": {}}
    if widgets is not None:
        made["widgets_values"] = widgets
    made.update(extra)
    return made


def _in(name: str, kind: str, link: int | None, *, widget: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "type": kind, "link": link}
    if widget:
        entry["widget"] = {"name": name}
    return entry


def _out(name: str, kind: str, links: list[int]) -> dict[str, Any]:
    return {"name": name, "type": kind, "links": links}


def lighthouse(app_mode: bool = True) -> dict[str, Any]:
    """A text-to-image graph as the editor saves it: a primitive node "Size" feeding the
    latent's width and height, a subgraph scaling the picture for a preview, and (in App mode)
    four inputs picked under their own names and the preview picked as the output."""
    scale = {
        "id": SUBGRAPH_ID, "version": 1, "revision": 0, "config": {}, "name": "Scale",
        "state": {"lastGroupId": 0, "lastNodeId": 1, "lastLinkId": 3, "lastRerouteId": 0},
        "inputNode": {"id": -10, "bounding": [0, 0, 100, 60]},
        "outputNode": {"id": -20, "bounding": [400, 0, 100, 60]},
        "inputs": [{"id": "in-image", "name": "image", "type": "IMAGE", "linkIds": [1]},
                   {"id": "in-scale", "name": "scale_by", "type": "FLOAT", "linkIds": [2]}],
        "outputs": [{"id": "out-image", "name": "IMAGE", "type": "IMAGE", "linkIds": [3]}],
        "widgets": [], "groups": [], "extra": {},
        "nodes": [_node(1, "ImageScaleBy", [_in("image", "IMAGE", 1),
                                            _in("scale_by", "FLOAT", 2, widget=True)],
                        [_out("IMAGE", "IMAGE", [3])], ["nearest-exact", 1.0])],
        "links": [
            {"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0,
             "type": "IMAGE"},
            {"id": 2, "origin_id": -10, "origin_slot": 1, "target_id": 1, "target_slot": 1,
             "type": "FLOAT"},
            {"id": 3, "origin_id": 1, "origin_slot": 0, "target_id": -20, "target_slot": 0,
             "type": "IMAGE"},
        ],
    }
    nodes = [
        _node(1, "CheckpointLoaderSimple", outputs=[
            _out("MODEL", "MODEL", [1]), _out("CLIP", "CLIP", [2, 3]), _out("VAE", "VAE", [8])],
            widgets=["random_sd15.safetensors"]),
        _node(2, "CLIPTextEncode", [_in("clip", "CLIP", 2)],
              [_out("CONDITIONING", "CONDITIONING", [4])], ["a lighthouse at dusk"]),
        _node(3, "CLIPTextEncode", [_in("clip", "CLIP", 3)],
              [_out("CONDITIONING", "CONDITIONING", [5])], ["fog"]),
        _node(4, "EmptyLatentImage", [_in("width", "INT", 12, widget=True),
                                      _in("height", "INT", 13, widget=True)],
              [_out("LATENT", "LATENT", [6])], [64, 64, 1]),
        _node(5, "KSampler", [_in("model", "MODEL", 1), _in("positive", "CONDITIONING", 4),
                              _in("negative", "CONDITIONING", 5),
                              _in("latent_image", "LATENT", 6)],
              [_out("LATENT", "LATENT", [7])], [11, "fixed", 3, 6.5, "euler", "normal", 1]),
        _node(6, "VAEDecode", [_in("samples", "LATENT", 7), _in("vae", "VAE", 8)],
              [_out("IMAGE", "IMAGE", [9, 10])]),
        _node(7, "SaveImage", [_in("images", "IMAGE", 9)], [], ["lighthouse"]),
        _node(8, "PreviewImage", [_in("images", "IMAGE", 11)]),
        _node(12, SUBGRAPH_ID, [_in("image", "IMAGE", 10),
                                _in("scale_by", "FLOAT", None, widget=True)],
              [_out("IMAGE", "IMAGE", [11])], [0.5]),
        _node(13, "PrimitiveNode", [], [{"name": "INT", "type": "INT",
                                         "widget": {"name": "width"}, "links": [12, 13]}],
              [96, "fixed"], title="Size"),
    ]
    links = [
        [1, 1, 0, 5, 0, "MODEL"], [2, 1, 1, 2, 0, "CLIP"], [3, 1, 1, 3, 0, "CLIP"],
        [4, 2, 0, 5, 1, "CONDITIONING"], [5, 3, 0, 5, 2, "CONDITIONING"],
        [6, 4, 0, 5, 3, "LATENT"], [7, 5, 0, 6, 0, "LATENT"], [8, 1, 2, 6, 1, "VAE"],
        [9, 6, 0, 7, 0, "IMAGE"], [10, 6, 0, 12, 0, "IMAGE"], [11, 12, 0, 8, 0, "IMAGE"],
        [12, 13, 0, 4, 0, "INT"], [13, 13, 0, 4, 1, "INT"],
    ]
    extra: dict[str, Any] = {"ds": {"scale": 1, "offset": [0, 0]}}
    if app_mode:
        extra["linearMode"] = True
        extra["linearData"] = {
            "inputs": [[f"{GRAPH_ID}:2:text", "Prompt"], [f"{GRAPH_ID}:13:value", "Size"],
                       [f"{GRAPH_ID}:5:seed", "Seed"],
                       [f"{GRAPH_ID}:12:scale_by", "Preview scale", {}]],
            "outputs": ["8"],
        }
    return {"id": GRAPH_ID, "revision": 0, "last_node_id": 13, "last_link_id": 13,
            "nodes": nodes, "links": links, "groups": [],
            "definitions": {"subgraphs": [scale]}, "config": {}, "extra": extra,
            "version": 0.4}


@pytest.fixture(scope="module")
def app(client: comfy_nb.Client) -> WorkflowFunction:
    return use(lighthouse(), client=client, name="lighthouse")


# -- txt2img: signature, docstring, help -----------------------------------------------------------


def test_the_signature_lists_the_meaningful_inputs_by_friendly_names(
        txt2img: WorkflowFunction) -> None:
    signature = inspect.signature(txt2img)
    names = list(signature.parameters)
    assert names == [*TXT2IMG_NAMES, "client", "timeout"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in signature.parameters.values())
    workflow = bundled("txt2img")
    parameters = signature.parameters
    assert parameters["seed"].default == workflow["3"]["inputs"]["seed"] == 42
    assert parameters["positive_prompt"].default == workflow["6"]["inputs"]["text"]
    assert parameters["negative_prompt"].default == "text, watermark"
    assert parameters["cfg"].default == 7.0 and parameters["width"].default == 512
    assert parameters["seed"].annotation is int
    assert parameters["cfg"].annotation is float
    assert parameters["positive_prompt"].annotation is str
    sampler = parameters["sampler_name"].annotation
    assert typing.get_origin(sampler) is Literal
    assert "euler" in typing.get_args(sampler) and "dpmpp_2m" in typing.get_args(sampler)
    assert signature.return_annotation is comfy_nb.Result
    assert txt2img.__name__ == "txt2img"
    signature.bind(seed=1, positive_prompt="x")  # what a call with these names binds to
    with pytest.raises(TypeError):
        signature.bind(1)


def test_the_docstring_gives_ranges_choices_and_the_node_each_name_sets(
        txt2img: WorkflowFunction) -> None:
    doc = txt2img.__doc__ or ""
    assert doc.startswith("txt2img(*, positive_prompt: str = ")
    assert "steps : int, default 20" in doc
    assert "KSampler.steps (node 3, KSampler); --set name 'steps'" in doc
    assert "1 to 10000" in doc
    assert "0 to 100; step 0.1" in doc  # cfg
    assert "16 to 16384; step 8" in doc  # width
    assert "one of 'euler', 'euler_cfg_pp'" in doc and "(42 choices)" in doc
    assert "Positive Prompt.text (node 6, CLIPTextEncode); --set name 'Positive Prompt.text'" \
        in doc
    assert '"random" picks one' in doc
    assert "The random seed used for creating the noise." in doc  # the server's tooltip
    assert all(len(line) <= 100 for line in doc.splitlines())
    shown = pydoc.render_doc(txt2img, renderer=pydoc.plaintext)
    assert "steps : int, default 20" in shown  # help(f)
    assert repr(txt2img) == f"<comfy_nb.use txt2img({', '.join(TXT2IMG_NAMES)})>"
    assert comfy_nb.use is use and "use" in comfy_nb.__all__


def test_jupyter_shows_the_signature_and_the_docstring(txt2img: WorkflowFunction) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.user_ns["txt2img"] = txt2img
    info = shell.object_inspect("txt2img")  # what f? shows
    assert info["definition"].startswith("txt2img(\n    *,\n    positive_prompt: str = ")
    assert "    seed: int = 42,\n" in info["definition"]
    assert "steps : int, default 20" in info["docstring"]
    assert info["string_form"] == repr(txt2img)


# -- running ---------------------------------------------------------------------------------------


def test_a_call_runs_the_workflow_with_its_values(txt2img: WorkflowFunction,
                                                  emulator: RunningEmulator) -> None:
    result = txt2img(seed=3, steps=5, positive_prompt="a red fox", cfg=4,
                     sampler_name="euler_ancestral", timeout=WAIT)
    assert isinstance(result, comfy_nb.Result) and result.images
    sent = sent_prompt(emulator, result.prompt_id)
    assert sent["3"]["inputs"]["seed"] == 3
    assert sent["3"]["inputs"]["steps"] == 5
    assert sent["3"]["inputs"]["cfg"] == 4
    assert sent["3"]["inputs"]["sampler_name"] == "euler_ancestral"
    assert sent["6"]["inputs"]["text"] == "a red fox"
    assert sent["7"]["inputs"]["text"] == "text, watermark"  # not given: the workflow's value
    assert sent["5"]["inputs"]["width"] == 512


def test_a_random_seed_is_picked_within_the_range(txt2img: WorkflowFunction,
                                                  emulator: RunningEmulator) -> None:
    job = txt2img.submit(seed="random", steps=1)
    job.wait(WAIT)
    seed = sent_prompt(emulator, job.id)["3"]["inputs"]["seed"]
    assert isinstance(seed, int) and 0 <= seed <= txt2img.inputs["seed"].param.max
    assert job.resolved_seeds == {"3.seed": seed}


def test_submit_returns_the_job_at_once(txt2img: WorkflowFunction,
                                        emulator: RunningEmulator) -> None:
    job = txt2img.submit(seed=9, steps=2)
    assert isinstance(job, comfy_nb.Job)
    result = job.wait(WAIT)
    assert result.prompt_id == job.id
    assert sent_prompt(emulator, job.id)["3"]["inputs"]["steps"] == 2


@pytest.mark.parametrize(("values", "message"), [
    ({"sed": 1}, "txt2img() has no input 'sed' (did you mean 'seed'?)"),
    ({"steps": 0}, "steps=0 is out of range: steps takes 1 to 10000"),
    ({"cfg": 101.0}, "cfg=101.0 is out of range: cfg takes 0 to 100"),
    ({"steps": 2.5}, "steps takes a whole number (int), not float"),
    ({"seed": True}, "seed takes a whole number (int), not bool"),
    ({"cfg": "high"}, "cfg takes a number (float), not str"),
    ({"cfg": float("nan")}, "cfg takes a finite number"),
    ({"positive_prompt": 7}, "positive_prompt takes text (str), not int"),
    ({"sampler_name": "eulr"}, "is not one of the 42 choices of sampler_name (did you mean "
                               "'euler'"),
])
def test_bad_values_are_refused_before_anything_is_sent(
        txt2img: WorkflowFunction, emulator: RunningEmulator, values: dict[str, Any],
        message: str) -> None:
    before = history_ids(emulator)
    with pytest.raises(ParameterError) as caught:
        txt2img(**values)
    assert message in str(caught.value)
    with pytest.raises(ParameterError):
        txt2img.submit(**values)
    assert history_ids(emulator) == before
    assert isinstance(caught.value, comfy_nb.ComfyError)


def test_inputs_are_given_by_name(txt2img: WorkflowFunction) -> None:
    with pytest.raises(ParameterError, match="takes its inputs by name"):
        txt2img(3)


def test_a_call_goes_to_the_client_it_names(txt2img: WorkflowFunction, emulators: Emulators,
                                            clients: Clients, emulator: RunningEmulator) -> None:
    other = emulators(step_delay=0.0)
    result = txt2img(seed=5, steps=1, client=clients.connect(other), timeout=WAIT)
    assert result.prompt_id in history_ids(other)
    assert result.prompt_id not in history_ids(emulator)


def test_without_a_client_it_connects_as_connect_does(
        emulators: Emulators, monkeypatch: pytest.MonkeyPatch) -> None:
    server = emulators(step_delay=0.0)
    monkeypatch.setenv("COMFY_URL", server.url)
    monkeypatch.setattr(_session, "_shared", None)
    try:
        f = use("txt2img")
        result = f(seed=1, steps=1, timeout=WAIT)
        assert result.prompt_id in history_ids(server)
        assert f.client is workflow_function.default_client() is _session.shared_client()
    finally:
        shared = _session._shared
        if shared is not None:
            shared.close()


def test_in_a_notebook_it_uses_the_sessions_connection(emulators: Emulators) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    server = emulators(step_delay=0.0)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "comfy_nb")
    try:
        shell.run_line_magic("comfy", f"connect {server.url}")
        session = shell._comfy_nb_magics.session_client()
        f = use("txt2img")
        assert f.client is session
        result = f(seed=2, steps=1, timeout=WAIT)
        assert result.prompt_id in history_ids(server)
    finally:
        shell.run_line_magic("unload_ext", "comfy_nb")


def test_an_input_file_takes_a_picture_to_upload(client: comfy_nb.Client,
                                                 emulator: RunningEmulator) -> None:
    from PIL import Image

    f = use(load_and_save("example.png"), client=client)
    assert list(f.inputs) == ["image"] and f.inputs["image"].file
    assert inspect.signature(f).parameters["image"].default == "example.png"
    assert "image : file (a name on the server, a path, a PIL image" in (f.__doc__ or "")
    result = f(image=Image.new("RGB", (24, 16), "red"), timeout=WAIT)
    uploaded = sent_prompt(emulator, result.prompt_id)["1"]["inputs"]["image"]
    assert uploaded != "example.png" and (emulator.input_dir / uploaded).is_file()
    assert result.images[0].image().size == (24, 16)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_papermill_parameters_cell_feeds_the_function(emulators: Emulators) -> None:
    """What papermill does: the cell tagged ``parameters`` is followed by one it injects,
    and the next cell hands the variables to the function."""
    import nbformat

    from .notebook.nbrun import execute_notebook, notebook_problems

    server = emulators(step_delay=0.0)
    cell = nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook(cells=[
        cell('%load_ext comfy_nb\nimport comfy_nb\ntxt2img = comfy_nb.use("txt2img")'),
        cell('seed = 1\nsteps = 20\npositive_prompt = "a fox"', metadata={"tags": ["parameters"]}),
        cell('seed = 5\nsteps = 2', metadata={"tags": ["injected-parameters"]}),
        cell("result = txt2img(**txt2img.pick(globals()))\nprint(result.prompt_id)"),
    ])
    done = execute_notebook(nb, env={"COMFY_URL": server.url, "COMFY_NB_PROGRESS": "off"})
    assert notebook_problems(done) == []
    prompt_id = done.cells[-1].outputs[-1]["text"].strip().splitlines()[-1]
    sent = sent_prompt(server, prompt_id)
    assert (sent["3"]["inputs"]["seed"], sent["3"]["inputs"]["steps"]) == (5, 2)
    assert sent["6"]["inputs"]["text"] == "a fox"


def test_pick_takes_the_inputs_of_a_namespace(txt2img: WorkflowFunction) -> None:
    namespace = {"seed": 4, "steps": 8, "unrelated": "x", "json": json}
    assert txt2img.pick(namespace) == {"seed": 4, "steps": 8}
    assert txt2img.defaults["seed"] == 42 and list(txt2img.defaults) == TXT2IMG_NAMES


def test_the_workflow_is_a_copy(txt2img: WorkflowFunction) -> None:
    workflow = txt2img.workflow
    assert isinstance(workflow, comfy_nb.Workflow)
    workflow.set(seed=1)
    assert txt2img.workflow.nodes["3"]["inputs"]["seed"] == 42
    assert txt2img.inputs["positive_prompt"].address == "Positive Prompt.text"
    assert txt2img.inputs["positive_prompt"].paths == ("6.text",)


# -- App mode and editor files ---------------------------------------------------------------------


def test_app_mode_gives_exactly_the_authors_inputs_in_order(app: WorkflowFunction) -> None:
    signature = inspect.signature(app)
    assert list(signature.parameters) == ["prompt", "size", "seed", "preview_scale", "client",
                                          "timeout"]
    parameters = signature.parameters
    assert parameters["prompt"].default == "a lighthouse at dusk"
    assert parameters["size"].default == 96 and parameters["size"].annotation is int
    assert parameters["seed"].default == 11
    assert parameters["preview_scale"].default == 0.5
    assert parameters["preview_scale"].annotation is float
    doc = app.__doc__ or ""
    assert "Run the App mode of 'lighthouse'" in doc
    assert "'Preview scale': Upscale Image By.scale_by" in doc
    assert "'Size': Empty Latent Image.width (node 4, EmptyLatentImage), and 4.height" in doc
    assert "Outputs first in the Result: node 8" in doc
    assert repr(app) == "<comfy_nb.use lighthouse(prompt, size, seed, preview_scale) (App mode)>"
    assert app.inputs["size"].paths == ("4.width", "4.height")
    assert app.inputs["preview_scale"].paths[0].startswith("12:")


def test_app_mode_runs_with_the_values_and_puts_the_chosen_outputs_first(
        app: WorkflowFunction, emulator: RunningEmulator) -> None:
    result = app(prompt="a lighthouse in a storm", size=128, seed=5, preview_scale=0.25,
                 timeout=WAIT)
    sent = sent_prompt(emulator, result.prompt_id)
    assert sent["2"]["inputs"]["text"] == "a lighthouse in a storm"
    assert sent["4"]["inputs"]["width"] == sent["4"]["inputs"]["height"] == 128
    assert sent["5"]["inputs"]["seed"] == 5
    scale = app.inputs["preview_scale"].paths[0].partition(".")[0]
    assert sent[scale]["inputs"]["scale_by"] == 0.25
    assert [file.node_id for file in result.files] == ["8", "7"]
    assert result.images[0].image().size == (32, 32)  # the preview: 128 scaled by 0.25


def test_an_app_mode_workflow_the_editor_saved(client: comfy_nb.Client,
                                               emulator: RunningEmulator) -> None:
    """A workflow the real editor (frontend 1.58.1) saved in App mode: a seed, a prompt and a
    subgraph's promoted widget picked, the SaveImage node picked as the output."""
    path = fixture_paths.require(fixture_paths.UI2API_FE158) / "hb_app_mode" / "ui.json"
    f = use(path, client=client, name="hb_app_mode")
    assert f.app_mode and list(f.inputs) == ["seed", "text", "scale_by"]
    assert f.outputs == ["7"]
    assert f.inputs["scale_by"].paths == ("12:10.scale_by",)  # inside the subgraph
    result = f(seed=1, text="a dog", scale_by=0.125, timeout=WAIT)
    sent = sent_prompt(emulator, result.prompt_id)
    assert sent["12:10"]["inputs"]["scale_by"] == 0.125
    assert (sent["5"]["inputs"]["seed"], sent["2"]["inputs"]["text"]) == (1, "a dog")
    assert result.files[0].node_id == "7"


def test_an_app_mode_input_whose_node_is_muted_is_refused(client: comfy_nb.Client) -> None:
    workflow = lighthouse()
    for node in workflow["nodes"]:
        if node["id"] == 12:
            node["mode"] = 2  # the subgraph is muted: its scale sets nothing
    with pytest.raises(WorkflowError, match=r"'Preview scale'.*sets no input"):
        use(workflow, client=client)


def test_an_editor_file_without_app_mode_offers_its_meaningful_inputs(
        client: comfy_nb.Client, emulator: RunningEmulator, tmp_path: Path) -> None:
    path = tmp_path / "lighthouse.json"
    path.write_text(json.dumps(lighthouse(app_mode=False)), encoding="utf-8")
    f = use(path, client=client)
    assert f.__name__ == "lighthouse" and not f.app_mode and f.outputs == []
    assert list(f.inputs) == ["size", "text_2", "text_3", "seed", "steps", "cfg",
                              "sampler_name", "scheduler", "denoise", "batch_size"]
    assert f.inputs["size"].paths == ("4.width", "4.height")
    result = f(size=64, text_3="rain", timeout=WAIT)
    sent = sent_prompt(emulator, result.prompt_id)
    assert sent["4"]["inputs"]["width"] == sent["4"]["inputs"]["height"] == 64
    assert sent["3"]["inputs"]["text"] == "rain"


def test_titled_nodes_and_primitives_name_their_inputs(client: comfy_nb.Client) -> None:
    workflow = copy.deepcopy(bundled("txt2img"))
    workflow["3"]["_meta"]["title"] = "Sampler"
    workflow["10"] = {"class_type": "PrimitiveInt", "inputs": {"value": 30},
                      "_meta": {"title": "Step count"}}
    workflow["3"]["inputs"]["steps"] = ["10", 0]
    f = use(workflow, client=client)
    names = list(f.inputs)
    assert names[:3] == ["step_count", "positive_prompt", "negative_prompt"]
    assert {"sampler_seed", "sampler_cfg", "sampler_sampler_name"} <= set(names)
    assert "steps" not in names and "sampler_steps" not in names  # a link, not a value
    assert f.inputs["sampler_seed"].address == "seed"
    assert f.__name__ == "workflow"


# -- sweeps and controls ---------------------------------------------------------------------------


def test_a_sweep_of_the_function_uses_its_names(txt2img: WorkflowFunction,
                                                emulator: RunningEmulator) -> None:
    sweep = comfy_nb.sweep(txt2img, seed=[1, 2], positive_prompt=["a fox", "a cat"],
                           overrides={"steps": 1}, progress="off", timeout=WAIT)
    rows = sweep.rows()
    assert [(row["seed"], row["Positive Prompt.text"]) for row in rows] == [
        (1, "a fox"), (1, "a cat"), (2, "a fox"), (2, "a cat")]
    assert all(row["status"] == "succeeded" for row in rows)
    for row in rows:
        sent = sent_prompt(emulator, row["prompt_id"])
        assert sent["3"]["inputs"]["seed"] == row["seed"]
        assert sent["6"]["inputs"]["text"] == row["Positive Prompt.text"]
        assert sent["3"]["inputs"]["steps"] == 1


def test_a_sweep_checks_the_functions_values_first(txt2img: WorkflowFunction,
                                                   app: WorkflowFunction,
                                                   emulator: RunningEmulator) -> None:
    before = history_ids(emulator)
    with pytest.raises(ParameterError, match="steps=0 is out of range"):
        comfy_nb.sweep(txt2img, steps=[0, 5], progress="off")
    with pytest.raises(ParameterError, match="has no input 'sed'"):
        comfy_nb.sweep(txt2img, sed=[1, 2], progress="off")
    with pytest.raises(ParameterError, match="'size' sets 2 inputs at once"):
        comfy_nb.sweep(app, size=[64, 128], progress="off")
    assert history_ids(emulator) == before


async def test_an_async_sweep_of_the_function_uses_its_names(
        txt2img: WorkflowFunction, emulator: RunningEmulator, clients: Clients) -> None:
    api = await clients.api("async", emulator)
    sweep = await comfy_nb.asweep(txt2img, negative_prompt=["rain", "snow"], client=api.client,
                                  overrides={"steps": 1}, timeout=WAIT)
    assert [row["Negative Prompt.text"] for row in sweep.rows()] == ["rain", "snow"]
    for row in sweep.rows():
        assert sent_prompt(emulator, row["prompt_id"])["7"]["inputs"]["text"] == \
            row["Negative Prompt.text"]


def test_use_of_a_function_keeps_its_app_mode(app: WorkflowFunction, emulators: Emulators,
                                              clients: Clients) -> None:
    other = emulators(step_delay=0.0)
    again = use(app, client=clients.connect(other))
    assert again.app_mode and again.__name__ == "lighthouse"
    assert list(again.inputs) == list(app.inputs) and again.outputs == ["8"]
    result = again(seed=2, timeout=WAIT)
    assert result.prompt_id in history_ids(other)


@pytest.fixture
def outputs_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(result_display.settings, "output_dir", str(tmp_path / "outputs"))


def test_interact_builds_controls_for_the_same_inputs(txt2img: WorkflowFunction,
                                                      emulator: RunningEmulator,
                                                      outputs_in_tmp: None) -> None:
    ui = txt2img.interact(cfg=(1, 12), seed_control="increment")
    try:
        assert list(ui.controls) == [item.address for item in txt2img.inputs.values()]
        assert ui.values["Positive Prompt.text"] == txt2img.defaults["positive_prompt"]
        prompt = ui.controls["Positive Prompt.text"].value_widget
        assert prompt.description == "positive_prompt"
        assert ui.controls["seed"].value_widget.description == "seed"
        cfg = ui.controls["cfg"].value_widget
        assert (cfg.min, cfg.max) == (1, 12)
        assert ui.controls["seed"].mode == "increment"
        ui.set_values(steps=1)
        result = ui.run(wait=True, timeout=WAIT)
        assert sent_prompt(emulator, result.prompt_id)["3"]["inputs"]["steps"] == 1
    finally:
        ui.close()


def test_interact_leaves_out_an_input_that_sets_several(
        app: WorkflowFunction, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="comfy_nb"):
        ui = app.interact()
    try:
        assert list(ui.controls) == [app.inputs[name].address
                                     for name in ("prompt", "seed", "preview_scale")]
        assert "'size' sets 2 inputs; it has no control" in caplog.text
    finally:
        ui.close()


def test_a_function_stands_for_its_workflow_where_a_workflow_is_asked_for(
        txt2img: WorkflowFunction, client: comfy_nb.Client, emulator: RunningEmulator) -> None:
    """``client.run(f)``, ``Workflow.load(f)`` and the magics take a function as the workflow
    it runs, with its defaults."""
    assert comfy_nb.Workflow.load(txt2img) == txt2img.workflow
    result = client.run(txt2img, steps=1, timeout=WAIT)
    assert sent_prompt(emulator, result.prompt_id)["3"]["inputs"]["steps"] == 1

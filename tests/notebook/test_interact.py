"""``comfy_nb.interact``: a control for every input type of the real object_info, names addressed
like ``Workflow.set``, overrides, and runs against the emulator — results and history, restoring
earlier values, debounced auto runs, a new run cancelling the one in flight (the emulator sees
it cancelled), errors shown in the widget, and the widget message budget (a recording comm)."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pytest

import comfy_nb
from comfy_nb import RetryPolicy
from comfy_nb import job as job_module
from comfy_nb.client import JobStatus, TransportError
from comfy_nb.emulator import RunningEmulator, serve
from comfy_nb.emulator._object_info import recorded_object_info
from comfy_nb.errors import WorkflowInvalid
from comfy_nb.notebook import display as result_display
from comfy_nb.notebook.controls import (
    SAFE_INTEGER,
    SEED_MODES,
    SLIDER_POSITIONS,
    SUPPORTED_TYPES,
    Control,
    SeedControl,
    build_control,
)
from comfy_nb.notebook.interact import Interact, default_client, interact_from_line
from comfy_nb.notebook.interact_history import close_tree
from comfy_nb.workflow import ParameterError
from comfy_nb.workflow._params import describe, input_specs
from comfy_nb.workflows import bundled

from ..cable import Cable
from ..factories import Clients, Emulators
from .browser_support import JupyterLab, open_notebook, poll, run_all_cells, stderr_outputs
from .browser_support import write_notebook as write_lab_notebook
from .comms import Message, most_in_one_second
from .samples import FAILING

RECORDED = recorded_object_info()


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator(module_emulators: Emulators) -> RunningEmulator:
    return module_emulators(step_delay=0.01)


@pytest.fixture(scope="module")
def client(emulator: RunningEmulator, module_clients: Clients) -> comfy_nb.Client:
    return module_clients.connect(emulator)


@pytest.fixture(autouse=True)
def outputs_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Full-size outputs go to a temporary folder, not into the source tree."""
    monkeypatch.setattr(result_display.settings, "output_dir", str(tmp_path / "outputs"))


@pytest.fixture
def made() -> Iterator[list[Interact]]:
    """Interacts a test builds; all closed at the end (worker threads stop)."""
    built: list[Interact] = []
    yield built
    for ui in built:
        ui.close()


def eventually(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)


def close(control: Control) -> None:
    close_tree(control.widget)


# -- controls from the real object_info ----------------------------------------------------------


def _options(spec: list[Any]) -> dict[str, Any]:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def _check_int(control: Control, spec: list[Any]) -> str:
    options = _options(spec)
    widget = control.value_widget
    low, high, step = options.get("min"), options.get("max"), options.get("step", 1)
    if isinstance(control, SeedControl):
        assert isinstance(widget, widgets.BoundedIntText)
        assert widget.min == max(low if low is not None else 0, -SAFE_INTEGER)
        assert widget.max == min(high if high is not None else SAFE_INTEGER, SAFE_INTEGER)
        assert control.mode_widget.options == SEED_MODES and control.mode == "fixed"
        assert control.dice.description == "🎲"
        return "INT seed"
    if low is not None and high is not None and (high - low) / step <= SLIDER_POSITIONS \
            and max(abs(low), abs(high)) <= SAFE_INTEGER:
        assert isinstance(widget, widgets.IntSlider)
        assert (widget.min, widget.max, widget.step) == (low, high, step)
        assert not widget.continuous_update
        return "INT slider"
    if low is None and high is None:
        assert isinstance(widget, widgets.IntText)
        return "INT text"
    assert isinstance(widget, widgets.BoundedIntText)  # a huge range: a bounded text box
    assert widget.min == max(low if low is not None else -SAFE_INTEGER, -SAFE_INTEGER)
    assert widget.max == min(high if high is not None else SAFE_INTEGER, SAFE_INTEGER)
    assert widget.min <= widget.value <= widget.max
    return "INT bounded text"


def _check_float(control: Control, spec: list[Any]) -> str:
    options = _options(spec)
    widget = control.value_widget
    low, high, step = options.get("min"), options.get("max"), options.get("step")
    if low is not None and high is not None and (high - low) / (step or 0.01) <= SLIDER_POSITIONS:
        assert isinstance(widget, widgets.FloatSlider)
        assert (widget.min, widget.max) == (low, high)
        assert widget.step == (step or 0.01)
        assert widget.readout_format == f".{control.decimals}f"
        assert not widget.continuous_update
        return "FLOAT slider"
    if low is None and high is None:
        assert isinstance(widget, widgets.FloatText)
        return "FLOAT text"
    assert isinstance(widget, widgets.BoundedFloatText)
    assert widget.min == float(low if low is not None else -1e300)
    assert widget.max == float(high if high is not None else 1e300)
    return "FLOAT bounded text"


def _check(control: Control, param: Any, spec: list[Any]) -> str:
    widget = control.value_widget
    assert control.path == param.path and widget.description == control.name
    if param.type == "INT":
        return _check_int(control, spec)
    if param.type == "FLOAT":
        return _check_float(control, spec)
    if param.type == "COMBO":
        assert isinstance(widget, widgets.Dropdown)
        values = [value for _, value in widget.options]
        listed = list(param.choices or ())
        assert values[:len(listed)] == listed  # every choice, model and file lists included
        if param.default is not None:
            assert widget.value == param.default
        return "COMBO"
    if param.type == "STRING":
        expected = widgets.Textarea if param.multiline else widgets.Text
        assert type(widget) is expected
        return "STRING multiline" if param.multiline else "STRING"
    assert param.type == "BOOLEAN"
    assert isinstance(widget, widgets.Checkbox)
    assert widget.value is bool(param.default)
    return "BOOLEAN"


def test_every_input_of_the_real_object_info_gets_the_right_control() -> None:
    kinds: Counter[str] = Counter()
    for class_type in RECORDED:
        node = {"class_type": class_type, "inputs": {}}
        for name, spec in input_specs(RECORDED, class_type).items():
            param = describe("1", node, spec, name, _options(spec).get("default"))
            if param.type not in SUPPORTED_TYPES:
                with pytest.raises(ParameterError, match="connection from another node"):
                    build_control(param, spec=spec)
                kinds["link"] += 1
                continue
            control = build_control(param, spec=spec)
            kinds[_check(control, param, spec)] += 1
            close(control)
    assert len(RECORDED) == 496
    expected = {"INT seed", "INT slider", "INT text", "INT bounded text", "FLOAT slider",
                "FLOAT bounded text", "COMBO", "STRING", "STRING multiline", "BOOLEAN", "link"}
    assert set(kinds) == expected, kinds
    assert kinds["INT seed"] >= 70 and kinds["link"] > 500


def _control(class_type: str, name: str, value: Any = None) -> Control:
    spec = input_specs(RECORDED, class_type)[name]
    node = {"class_type": class_type, "inputs": {name: value}}
    return build_control(describe("1", node, spec, name, value), spec=spec, name=name)


def test_known_inputs_get_their_editor_ranges() -> None:
    steps = _control("KSampler", "steps", 20)
    assert isinstance(steps.widget, widgets.IntSlider)
    assert (steps.widget.min, steps.widget.max, steps.widget.value) == (1, 10000, 20)
    width = _control("EmptyLatentImage", "width", 512)
    assert (width.widget.min, width.widget.max, width.widget.step) == (16, 16384, 8)
    cfg = _control("KSampler", "cfg", 7)
    assert isinstance(cfg.widget, widgets.FloatSlider)
    assert (cfg.widget.min, cfg.widget.max, cfg.widget.step) == (0.0, 100.0, 0.1)
    assert cfg.widget.readout_format == ".2f"  # "round": 0.01
    cfg.widget.value = 7.300000000000001
    assert cfg.value == 7.3
    seed = _control("KSampler", "seed", 42)
    assert isinstance(seed, SeedControl) and seed.value == 42
    assert seed.value_widget.max == SAFE_INTEGER  # 2**64-1 is more than a browser holds
    noise = _control("KSamplerAdvanced", "noise_seed", 3)
    assert isinstance(noise, SeedControl)
    tiny = _control("WanCameraEmbedding", "fx", 0.5)  # step 1e-9: a billion positions
    assert isinstance(tiny.widget, widgets.BoundedFloatText) and tiny.decimals == 9
    sampler = _control("KSampler", "sampler_name", "euler")
    assert isinstance(sampler.widget, widgets.Dropdown)
    assert "dpmpp_2m" in [value for _, value in sampler.widget.options]
    model = _control("CheckpointLoaderSimple", "ckpt_name", "not_on_this_server.safetensors")
    assert model.value == "not_on_this_server.safetensors"  # kept although not listed
    text = _control("CLIPTextEncode", "text", "a cat")
    assert isinstance(text.widget, widgets.Textarea) and text.value == "a cat"
    prefix = _control("SaveImage", "filename_prefix", "ComfyUI")
    assert type(prefix.widget) is widgets.Text
    for control in (steps, width, cfg, seed, noise, tiny, sampler, model, text, prefix):
        close(control)


def test_a_link_input_is_refused_clearly() -> None:
    with pytest.raises(ParameterError, match="MODEL input: a connection from another node"):
        _control("KSampler", "model")


# -- names and overrides -------------------------------------------------------------------------


def test_names_use_the_workflow_addressing(made: list[Interact]) -> None:
    ui = Interact(bundled("txt2img"), ["seed", "cfg", "KSampler.steps", "Positive Prompt.text",
                                       "sampler_name", "5.width"], object_info=RECORDED)
    made.append(ui)
    paths = {name: control.path for name, control in ui.controls.items()}
    assert paths == {"seed": "3.seed", "cfg": "3.cfg", "KSampler.steps": "3.steps",
                     "Positive Prompt.text": "6.text", "sampler_name": "3.sampler_name",
                     "5.width": "5.width"}
    assert isinstance(ui.controls["seed"], SeedControl)
    assert ui.values == {"seed": 42, "cfg": 7.0, "KSampler.steps": 20,
                         "Positive Prompt.text": bundled("txt2img")["6"]["inputs"]["text"],
                         "sampler_name": "euler", "5.width": 512}
    assert ui._client is None  # no connection until something runs
    with pytest.raises(ParameterError, match="did you mean 'cfg'"):
        Interact(bundled("txt2img"), ["cgf"], object_info=RECORDED)
    with pytest.raises(ParameterError, match="fed by the output of node 4"):
        Interact(bundled("txt2img"), ["KSampler.model"], object_info=RECORDED)
    with pytest.raises(ParameterError, match="ambiguous"):
        Interact(bundled("txt2img"), ["text"], object_info=RECORDED)
    with pytest.raises(ParameterError, match="the same input"):
        Interact(bundled("txt2img"), ["cfg", "KSampler.cfg"], object_info=RECORDED)


def test_no_names_means_every_value_input(made: list[Interact]) -> None:
    ui = Interact("txt2img", object_info=RECORDED)  # a bundled workflow by name
    made.append(ui)
    assert list(ui.controls) == [
        "KSampler.seed", "KSampler.steps", "KSampler.cfg", "KSampler.sampler_name",
        "KSampler.scheduler", "KSampler.denoise", "Load Checkpoint.ckpt_name",
        "Empty Latent Image.width", "Empty Latent Image.height", "Empty Latent Image.batch_size",
        "Positive Prompt.text", "Negative Prompt.text", "Save Image.filename_prefix"]


def test_explicit_widgets_and_ranges_override(made: list[Interact]) -> None:
    mine = widgets.IntText(value=9)
    ui = comfy_nb.interact(bundled("txt2img"), "cfg", object_info=RECORDED, steps=(1, 50),
                           seed=mine, sampler_name=["euler", "heun"],
                           **{"KSampler.denoise": (0.5, 1.0, 0.05)})
    made.append(ui)
    steps = ui.controls["steps"].widget
    assert isinstance(steps, widgets.IntSlider) and (steps.min, steps.max) == (1, 50)
    assert ui.controls["seed"].widget is mine and ui.values["seed"] == 9
    sampler = ui.controls["sampler_name"].widget
    assert isinstance(sampler, widgets.Dropdown) and len(sampler.options) == 2
    denoise = ui.controls["KSampler.denoise"]
    assert isinstance(denoise.widget, widgets.FloatSlider) and denoise.widget.step == 0.05
    denoise.widget.value = 0.7500000000000001
    assert denoise.value == 0.75
    cfg = ui.controls["cfg"].widget
    assert isinstance(cfg, widgets.FloatSlider) and cfg.max == 100.0  # from object_info
    narrow = comfy_nb.interact("txt2img", object_info=RECORDED, cfg=(1, 12))
    made.append(narrow)
    assert narrow.controls["cfg"].widget.step == 0.1  # the definition's step
    with pytest.raises(ParameterError, match="a widget, a \\(min, max\\)"):
        comfy_nb.interact("txt2img", object_info=RECORDED, cfg="high")
    with pytest.raises(ParameterError, match="min > max"):
        comfy_nb.interact("txt2img", object_info=RECORDED, cfg=(9, 1))


def test_interact_from_line_reads_ranges_and_choices(made: list[Interact]) -> None:
    ui = interact_from_line(None, "txt2img", ["seed", "cfg=1:12:0.5", "steps=1:40",
                                              "sampler_name=euler,heun", "Positive Prompt.text"],
                            object_info=RECORDED, auto=True, debounce=0.2)
    made.append(ui)
    assert ui.auto and ui.debounce == 0.2
    cfg = ui.controls["cfg"].widget
    assert (cfg.min, cfg.max, cfg.step) == (1, 12, 0.5)
    assert ui.controls["steps"].widget.max == 40
    assert [v for _, v in ui.controls["sampler_name"].widget.options] == ["euler", "heun"]
    with pytest.raises(ParameterError, match="give a range"):
        interact_from_line(None, "txt2img", ["cfg=7"], object_info=RECORDED)
    with pytest.raises(ParameterError, match="not a number"):
        interact_from_line(None, "txt2img", ["cfg=1:x"], object_info=RECORDED)


def test_display_is_one_widget_with_a_readable_text_form(made: list[Interact]) -> None:
    ui = comfy_nb.interact("txt2img", "seed", "cfg", object_info=RECORDED)
    made.append(ui)
    bundle = ui._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == ui.widget.model_id
    assert bundle["text/plain"] == "<comfy_nb Interact: seed=42, cfg=7.0; 0 results>"
    assert "interact" in comfy_nb.__all__
    ui.close()
    assert ui.widget.comm is None and "closed" in repr(ui)
    with pytest.raises(RuntimeError, match="closed"):
        ui.run()


def test_the_session_client_is_used_when_the_magics_are_loaded(
        monkeypatch: pytest.MonkeyPatch, made: list[Interact]) -> None:
    session = object()

    class Magics:
        def session_client(self) -> Any:
            return session

    class Shell:
        _comfy_nb_magics = Magics()

    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell())
    assert default_client() == (session, False)
    ui = comfy_nb.interact("txt2img", "cfg", object_info=RECORDED)
    made.append(ui)
    assert ui.client is session and not ui._owns_client


# -- runs on the emulator ------------------------------------------------------------------------


def test_run_shows_the_result_and_keeps_a_history(client: comfy_nb.Client,
                                                  made: list[Interact]) -> None:
    ui = comfy_nb.interact("txt2img", "seed", "cfg", "steps", "Positive Prompt.text",
                           "sampler_name", client=client)
    made.append(ui)
    ui.set_values(cfg=5.5, steps=4, sampler_name="heun")
    first = ui.run(wait=True)
    inputs = first.workflow["3"]["inputs"]
    assert (inputs["cfg"], inputs["steps"], inputs["sampler_name"]) == (5.5, 4, "heun")
    assert first.images and ui.result is first
    assert "comfy-nb-result" in ui._result_view.value and "<img" in ui._result_view.value
    assert "run #1 done" in ui._status.value
    ui.set_values({"Positive Prompt.text": "a red fox", "cfg": 8.0})
    second = ui.run(wait=True)
    assert second.workflow["6"]["inputs"]["text"] == "a red fox"
    assert ui.results == [first, second]
    assert [entry.values["cfg"] for entry in ui.history] == [5.5, 8.0]
    strip = ui._strip.widget.children
    assert len(strip) == 2 and strip[0].children[-1].description == "↺ run #2"  # newest first
    assert isinstance(strip[0].children[0], widgets.Image)
    caption = strip[0].children[1].value
    assert "<b>cfg</b>: 8.0" in caption
    assert "<b>Positive Prompt.text</b>: a red fox" in caption  # names are never cut
    assert "white-space:normal" in caption and strip[0].children[1].style.font_size == "12px"
    assert ui.wait() is second
    assert list((Path(result_display.settings.output_dir or "")).glob("*.png"))


def test_clicking_an_earlier_result_restores_its_values(client: comfy_nb.Client,
                                                        emulator: RunningEmulator,
                                                        made: list[Interact]) -> None:
    ui = comfy_nb.interact("txt2img", "cfg", "steps", client=client, auto=True, debounce=0.1)
    made.append(ui)
    ui.set_values(cfg=3.0, steps=3)
    first = ui.run(wait=True)
    ui.set_values(cfg=9.0, steps=5)
    ui.run(wait=True)
    jobs = len(emulator.state.jobs)
    oldest = ui._strip.widget.children[-1]
    oldest.children[-1].click()  # "↺ run #1"
    eventually(lambda: ui.values == {"cfg": 3.0, "steps": 3}, "the values are restored")
    eventually(lambda: "showing run #1" in ui._status.value, "run #1 is shown")
    assert ui._result_view.value == result_display.render_result(
        first, include=("text/html",))["text/html"]
    time.sleep(0.4)  # longer than the debounce: restoring is not a change that runs
    assert len(emulator.state.jobs) == jobs


def test_a_new_run_cancels_the_one_in_flight(client: comfy_nb.Client, emulator: RunningEmulator,
                                             made: list[Interact]) -> None:
    ui = comfy_nb.interact("txt2img", "steps", "seed", client=client)
    made.append(ui)
    ui.set_values(steps=150, seed=1001)  # 1.5 s of sampling
    ui.run()
    eventually(lambda: ui.job is not None and ui.job.progress().node_value > 2,
               "the first job samples")
    first = ui.job
    assert first is not None
    ui.set_values(steps=3)
    result = ui.run(wait=True)
    assert result.workflow["3"]["inputs"]["steps"] == 3
    eventually(lambda: emulator.state.jobs[first.id].raw_status == "cancelled",
               "the emulator has the first job cancelled")
    eventually(lambda: first.status is JobStatus.CANCELLED, "the client knows it too")
    assert [entry.job_id for entry in ui.history] == [result.prompt_id]  # no cancelled entry


@pytest.mark.slow
def test_auto_mode_runs_once_after_the_changes_settle(client: comfy_nb.Client,
                                                     emulator: RunningEmulator,
                                                     made: list[Interact]) -> None:
    ui = comfy_nb.interact("txt2img", "cfg", "seed", client=client, auto=True, debounce=0.5,
                           seed_control="increment")
    made.append(ui)
    ui.controls["seed"].value = 500
    before = len(emulator.state.jobs)
    slider = ui.controls["cfg"].widget
    for value in (4.0, 4.5, 5.0, 5.5, 6.5):  # as a user dragging and releasing, 50 ms apart
        slider.value = value
        time.sleep(0.05)
    assert len(emulator.state.jobs) == before  # nothing yet: still inside the debounce
    result = ui.wait()
    assert len(emulator.state.jobs) == before + 1
    assert result.workflow["3"]["inputs"]["cfg"] == 6.5
    assert result.workflow["3"]["inputs"]["seed"] == 500
    assert ui.values["seed"] == 501  # "increment" after the run, which starts no new run
    time.sleep(0.9)
    assert len(emulator.state.jobs) == before + 1
    slider.value = 7.0
    time.sleep(0.9)  # past the debounce: a run of its own
    slider.value = 7.5
    last = ui.wait()
    assert len(emulator.state.jobs) == before + 3
    assert last.workflow["3"]["inputs"]["cfg"] == 7.5
    ui.auto = False
    slider.value = 8.0
    time.sleep(0.9)
    assert len(emulator.state.jobs) == before + 3  # the Run button's job again


def test_seed_controls_work_like_the_editor(client: comfy_nb.Client,
                                            made: list[Interact]) -> None:
    ui = comfy_nb.interact("txt2img", "seed", "steps", client=client, steps=(1, 4))
    made.append(ui)
    seed = ui.controls["seed"]
    assert isinstance(seed, SeedControl)
    seed.dice.click()
    drawn = seed.value
    assert drawn != 42 and 0 <= drawn <= SAFE_INTEGER
    seed.mode = "randomize"
    result = ui.run(wait=True)
    assert result.workflow["3"]["inputs"]["seed"] == drawn  # the shown seed is the one used
    assert seed.value != drawn  # and then a new one, as the editor does
    seed.mode = "fixed"
    kept = seed.value
    ui.run(wait=True)
    assert seed.value == kept
    seed.value_widget.value = SAFE_INTEGER
    seed.mode = "increment"
    ui.run(wait=True)
    assert seed.value == 0  # wraps to the minimum


def test_errors_show_in_the_widget_and_are_logged(client: comfy_nb.Client,
                                                  made: list[Interact],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    ui = comfy_nb.interact("txt2img", "steps", client=client,
                           cfg=widgets.FloatText(value=300.0))
    made.append(ui)
    with caplog.at_level(logging.WARNING, logger="comfy_nb"), \
            pytest.raises(WorkflowInvalid) as caught:
        ui.run(wait=True)
    assert "comfy-nb-error" in ui._status.value and "cfg" in ui._status.value
    assert any("the run failed" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
    with pytest.raises(WorkflowInvalid):
        ui.wait()  # the latest outcome
    assert caught.value.notebook_lines()[0] in ui._status.value.replace("&#x27;", "'")
    failing = comfy_nb.interact(FAILING, "Sharpen.sharpen_radius", client=client)
    made.append(failing)
    with pytest.raises(comfy_nb.ExecutionFailed):
        failing.run(wait=True)
    assert "comfy-nb-error" in failing._status.value and "ImageSharpen" in failing._status.value
    assert failing.history == []


def test_outputs_that_cannot_be_downloaded_fail_the_run(client: comfy_nb.Client,
                                                       emulator: RunningEmulator,
                                                       made: list[Interact]) -> None:
    ui = comfy_nb.interact("txt2img", "steps", client=client)
    made.append(ui)
    ui.set_values(steps=2)
    emulator.faults.update(truncate_view=True)
    try:
        with pytest.raises(comfy_nb.ComfyError):
            ui.run(wait=True)
    finally:
        emulator.faults.update(truncate_view=False)
    assert "comfy-nb-error" in ui._status.value
    assert ui.history == [] and "<img" not in ui._result_view.value


def test_a_server_that_vanishes_ends_the_run(made: list[Interact],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_module, "UNREACHABLE_AFTER", 0.5)
    with serve(step_delay=0.01) as server:
        cable = Cable(server.url).start()
        try:
            with comfy_nb.connect(cable.url, retry=RetryPolicy(backoff=0.02, max_backoff=0.1),
                                  poll_interval=0.1) as client:
                ui = comfy_nb.interact("txt2img", "steps", client=client)
                made.append(ui)
                ui.set_values(steps=3000)
                ui.run()
                poll(lambda: ui._job is not None
                     and ui._job.status is JobStatus.RUNNING, "the run starts")
                cable.unplug()
                with pytest.raises(TransportError, match="unreachable since"):
                    ui.wait(timeout=60)
                assert "comfy-nb-error" in ui._status.value and ui.history == []
        finally:
            cable.close()


def test_close_cancels_the_run_in_flight(client: comfy_nb.Client,
                                         emulator: RunningEmulator) -> None:
    ui = comfy_nb.interact("txt2img", "steps", "seed", client=client)
    ui.set_values(steps=200, seed=2002)
    ui.run()
    eventually(lambda: ui.job is not None and ui.job.progress().node_value > 1, "it samples")
    job = ui.job
    assert job is not None
    ui.close()
    eventually(lambda: emulator.state.jobs[job.id].raw_status == "cancelled", "it is cancelled")
    assert ui._worker is not None and not ui._worker.is_alive()


# -- the message budget --------------------------------------------------------------------------


@pytest.mark.slow
def test_widget_messages_stay_within_10_a_second(client: comfy_nb.Client,
                                                 comms: list[Message],
                                                 made: list[Interact]) -> None:
    ui = comfy_nb.interact("txt2img", "seed", "cfg", "steps", client=client,
                           seed_control="increment", history_size=2)
    made.append(ui)
    ui._repr_mimebundle_()
    comms.clear()  # building the widget is not the panel's traffic
    start = time.monotonic()
    ui.set_values(steps=120)
    ui.run()  # 1.2 s with a preview every step...
    time.sleep(0.5)
    ui.set_values(cfg=6.0, steps=200)
    ui.run(wait=True)  # ...cancelled by a second run of 2 s
    for cfg in (6.5, 7.0):  # more entries than the strip keeps: old ones are closed
        ui.set_values(cfg=cfg, steps=5)
        ui.run(wait=True)
    ui._strip.widget.children[-1].children[-1].click()
    eventually(lambda: "showing run" in ui._status.value, "the restore is shown")
    elapsed = time.monotonic() - start

    times = [moment for moment, _, _, _ in comms]
    preview = ui._preview.comm.comm_id
    frames = [moment for moment, comm_id, kind, data in comms
              if comm_id == preview and kind == "send" and ["value"] in data.get("buffer_paths",
                                                                                  [])]
    closes = [1 for _, _, kind, _ in comms if kind == "close"]
    assert most_in_one_second(times) <= 10, f"{most_in_one_second(times)} messages in 1 s"
    assert len(times) >= 20 and frames and closes  # it did show progress, previews, history
    assert most_in_one_second(frames) <= 4
    assert len(times) <= math.ceil(elapsed + 1) * 10
    assert len(ui._strip.widget.children) == 2 and len(ui.history) == 2


# -- in a real JupyterLab ------------------------------------------------------------------------

KERNEL_IDLE = ("() => window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel"
               "?.status === 'idle'")


def test_clicks_in_jupyterlab_run_cancel_and_restore(page: Any, lab: JupyterLab,
                                                     lab_emulator: RunningEmulator,
                                                     artifacts: Path) -> None:
    """The Run button works while the kernel is idle, the worker's updates reach the page (live
    preview, then the gallery and the strip), a second click cancels the first job on the
    server, and a history button restores."""
    write_lab_notebook(lab.root_dir, "interact.ipynb", [
        "import comfy_nb\n%load_ext comfy_nb",
        'ui = comfy_nb.interact("txt2img", "seed", "cfg", "steps", steps=(1, 40))\nui',
    ])
    before = set(lab_emulator.state.jobs)
    open_notebook(page, lab, "interact.ipynb")
    run_all_cells(page)
    run = page.locator(".comfy-nb-interact .comfy-nb-run")
    run.wait_for()
    page.wait_for_function(KERNEL_IDLE, polling=100)

    run.click()
    page.wait_for_selector('.comfy-nb-interact img.comfy-nb-preview[src^="blob:"]')
    started = [job_id for job_id in lab_emulator.state.jobs if job_id not in before]
    assert len(started) == 1
    run.click()  # a new run cancels the one in flight
    page.wait_for_selector(".comfy-nb-latest .comfy-nb-result img")
    poll(lambda: lab_emulator.state.jobs[started[0]].raw_status == "cancelled" or None,
         "the emulator to have the first job cancelled")
    page.locator(".comfy-nb-interact .comfy-nb-restore").first.wait_for()
    page.locator(".comfy-nb-interact").first.scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "interact.png")

    run.click()
    poll(lambda: page.locator(".comfy-nb-restore").count() == 2 or None, "a second result")
    page.locator(".comfy-nb-restore").last.click()
    page.wait_for_selector(".comfy-nb-interact .comfy-nb-status:has-text('values are back')")
    assert stderr_outputs(page) == []


def test_the_example_notebook_gives_cfg_and_steps_the_ranges_people_use(
        emulator: RunningEmulator, made: list[Interact], monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat

    notebook = Path(__file__).resolve().parents[2] / "notebooks" / "parameters.ipynb"
    [source] = [cell.source for cell in nbformat.read(notebook, as_version=4).cells
                if cell.cell_type == "code" and "comfy_nb.interact(" in cell.source]
    monkeypatch.setenv("COMFY_URL", emulator.url)
    namespace: dict[str, Any] = {"comfy_nb": comfy_nb, "bundled": bundled}
    exec(source, namespace)
    ui = namespace["ui"]
    made.append(ui)
    ranges = {name: (ui.controls[name].widget.min, ui.controls[name].widget.max)
              for name in ("cfg", "steps")}
    assert ranges == {"cfg": (1, 12), "steps": (1, 40)}  # the server says 0–100 and 1–10000


def test_interact_on_a_pool_runs_on_its_members_and_cancels_where_the_run_went(
        emulators: Emulators, made: list[Interact]) -> None:
    first_server, second_server = emulators(step_delay=0.01), emulators(step_delay=0.01)
    with comfy_nb.connect([first_server.url, second_server.url]) as pool:
        ui = comfy_nb.interact("txt2img", "steps", "seed", "sampler_name", client=pool)
        made.append(ui)
        assert ("heun", "heun") in ui.controls["sampler_name"].widget.options  # from the members
        ui.set_values(steps=150, seed=1001)  # 1.5 s of sampling
        ui.run()
        eventually(lambda: ui.job is not None and ui.job.progress().node_value > 2,
                   "the first job samples")
        first = ui.job
        assert first is not None
        ran_on = {first_server.url: first_server, second_server.url: second_server}[
            pool.server_of(first.id) or ""]
        ui.set_values(steps=3, seed=1002)
        result = ui.run(wait=True)
        assert result.server in (first_server.url, second_server.url)
        assert result.workflow["3"]["inputs"]["steps"] == 3
        eventually(lambda: ran_on.state.jobs[first.id].raw_status == "cancelled",
                   "the member that had the first job has it cancelled")
        assert [entry.job_id for entry in ui.history] == [result.prompt_id]

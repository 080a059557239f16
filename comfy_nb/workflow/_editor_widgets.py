"""The widgets a node has in the ComfyUI editor (frontend 1.58.1) and the values they send.

The editor builds a node's widgets from the server's node definition (``object_info``) plus what
its own extensions add, then fills them from the saved ``widgets_values`` by position. Which
widgets exist, which take a position in ``widgets_values`` and which reach the API prompt decides
what the editor queues; this module rebuilds that list. Everything here is read from the
frontend's source at tag v1.58.1; each rule names its file (paths under ``src/``).

It knows nothing about links, subgraphs or ids: :mod:`comfy_nb.workflow._convert` asks it for a
node's widgets and their values.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EXTENSION_WIDGETS", "Widget", "apply_widget_values", "build_widgets",
           "definition_inputs", "has_widget", "input_slots", "migrate_widget_values",
           "unknown_node_widgets"]


@dataclass
class Widget:
    """One widget of a node, as the editor builds it."""

    name: str
    value: Any
    #: reaches the API prompt (the widget's ``options.serialize !== false``)
    to_api: bool = True
    #: takes a position in ``widgets_values`` (the widget's ``serialize !== false``)
    in_values: bool = True
    #: its value is never read from ``widgets_values`` (the editor computes it when queueing)
    fixed: bool = False
    #: the options of a combo widget
    choices: list[Any] | None = None
    #: a text widget whose ``{a|b}`` choices are made when queueing (``dynamicPrompts``)
    dynamic_prompts: bool = False


@dataclass(frozen=True)
class ExtensionWidget:
    """A widget the editor's own extensions add, and where the rule comes from."""

    input_type: str  # the input type whose widget constructor builds it
    widgets: tuple[Widget, ...]  # what the constructor adds ("{input}" is the input's name)
    source: str  # the file of the frontend (tag v1.58.1) that adds it
    note: str = ""


#: Widgets that the editor's extensions build for special input types. The input types are the
#: server's (``WEBCAM``, ``AUDIO_RECORD``, ``LOAD_3D``) or added to the node definition by an
#: extension before the node is registered (see :data:`_ADDED_INPUTS`).
EXTENSION_WIDGETS: dict[str, ExtensionWidget] = {
    entry.input_type: entry
    for entry in (
        ExtensionWidget(
            "IMAGEUPLOAD", (Widget("{input}", "image", to_api=False),),
            "renderer/extensions/vueNodes/widgets/composables/useImageUploadWidget.ts",
            "the 'choose file to upload' button: kept in widgets_values, never sent"),
        ExtensionWidget(
            "AUDIOUPLOAD", (Widget("{input}", "", to_api=False),),
            "extensions/core/uploadAudio.ts (Comfy.UploadAudio)",
            "the upload button of LoadAudio: kept in widgets_values, never sent"),
        ExtensionWidget(
            "AUDIO_UI", (Widget("audioUI", "", to_api=False, in_values=False, fixed=True),),
            "extensions/core/uploadAudio.ts (Comfy.AudioWidget)",
            "the audio player: neither saved nor sent (1.27 sent it as audioUI: '')"),
        ExtensionWidget(
            "AUDIO_RECORD",
            (Widget("{input}", "", fixed=True), Widget("{input}", "")),
            "extensions/core/uploadAudio.ts (Comfy.RecordAudio)",
            "the player, whose value is the uploaded recording ('' when nothing was recorded), "
            "then the record button of the same name, sent as ''"),
        ExtensionWidget(
            "WEBCAM", (Widget("{input}", ""),),
            "extensions/core/webcamCapture.ts",
            "the editor uploads a fresh capture when queueing; the saved value is sent here"),
        ExtensionWidget(
            "PREVIEW_3D", (Widget("{input}", ""),),
            "extensions/core/saveMesh.ts, extensions/core/load3d.ts (Comfy.Preview3D)",
            "the 3D viewer of SaveGLB and Preview3D, sent as image: ''"),
        ExtensionWidget(
            "LOAD_3D",
            (Widget("upload 3d model", "upload3dmodel"),
             Widget("upload extra resources", "uploadExtraResources"),
             Widget("clear", "clear"), Widget("{input}", "")),
            "extensions/core/load3d.ts (Comfy.Load3D, getCustomWidgets)",
            "three buttons (sent: their options do not say serialize: false), then the viewer, "
            "whose value the editor captures when queueing; the saved value is sent here"),
        ExtensionWidget(
            "LOAD_3D_ADVANCED", (Widget("{input}", ""),),
            "extensions/core/load3dAdvanced.ts",
            "the viewer of Load3DAdvanced"),
    )
}

#: Inputs the extensions add to a node definition before it is registered
#: (``beforeRegisterNodeDef``): class → (input name, input type), appended to ``required``.
_ADDED_INPUTS: dict[str, tuple[tuple[str, str], ...]] = {
    # extensions/core/uploadAudio.ts (Comfy.AudioWidget)
    **{name: (("audioUI", "AUDIO_UI"),)
       for name in ("LoadAudio", "SaveAudio", "PreviewAudio", "SaveAudioMP3", "SaveAudioOpus",
                    "SaveAudioAdvanced")},
    "SaveGLB": (("image", "PREVIEW_3D"),),  # extensions/core/saveMesh.ts
    "Preview3D": (("image", "PREVIEW_3D"),),  # extensions/core/load3d.ts (Comfy.Preview3D)
    # extensions/core/load3dAdvanced.ts
    "Load3DAdvanced": (("viewport_state", "LOAD_3D_ADVANCED"),),
}

#: Widgets added when a node is created, after those of its inputs (``nodeCreated``).
_CREATED_WIDGETS: dict[str, tuple[Widget, ...]] = {
    # extensions/core/webcamCapture.ts: the capture button; its serializeValue returns undefined,
    # so the prompt leaves it out, but it keeps its place in widgets_values
    "WebcamCapture": (Widget("waiting for camera...", "capture", to_api=False),),
}

_PRIMITIVE_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})  # scripts/widgets.ts
_SCALAR_DEFAULTS: dict[str, Any] = {"INT": 0, "FLOAT": 0, "STRING": "", "BOOLEAN": False}
_MEDIA_UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload")
_SEED_NAMES = ("seed", "noise_seed")


@dataclass
class _InputSpec:
    name: str
    kind: Any
    options: dict[str, Any] = field(default_factory=dict)
    optional: bool = False


def _spec(name: str, raw: Any, optional: bool) -> _InputSpec | None:
    if not isinstance(raw, (list, tuple)) or not raw:
        return None
    options = raw[1] if len(raw) > 1 and isinstance(raw[1], dict) else {}
    return _InputSpec(name, raw[0], options, optional)


def _ordered_specs(class_type: str, definition: dict[str, Any]) -> list[_InputSpec]:
    """The node's inputs in the order the editor lays out its widgets.

    ``workbench/utils/nodeDefOrderingUtil.ts`` (``getOrderedInputSpecs``): the required inputs in
    ``input_order.required``, the optional ones in ``input_order.optional``, then every input
    ``input_order`` does not name (those the extensions added) in definition order.
    """
    specs = {spec.name: spec for spec in _definition_specs(class_type, definition)}
    order = definition.get("input_order")
    if not isinstance(order, dict):
        return list(specs.values())
    ordered: list[_InputSpec] = []
    for section, optional in (("required", False), ("optional", True)):
        for name in order.get(section) or []:
            spec = specs.get(name) if isinstance(name, str) else None
            if spec is not None and spec.optional == optional and spec not in ordered:
                ordered.append(spec)
    ordered += [spec for spec in specs.values() if spec not in ordered]
    return ordered


def _extension_inputs(class_type: str, inputs: dict[str, Any]) -> list[tuple[str, str]]:
    added: list[tuple[str, str]] = list(_ADDED_INPUTS.get(class_type, ()))
    required = inputs.get("required")
    if not isinstance(required, dict):
        return added
    # extensions/core/uploadImage.ts: the first required media combo gets an upload button
    for raw in required.values():
        spec = _spec("", raw, False)
        if (spec is not None and any(spec.options.get(flag) is True for flag in _MEDIA_UPLOAD_FLAGS)
                and (isinstance(spec.kind, list) or spec.kind == "COMBO")):
            added.append(("upload", "IMAGEUPLOAD"))
            break
    # extensions/core/uploadAudio.ts (Comfy.UploadAudio): an 'audio' input with audio_upload
    audio = _spec("audio", required.get("audio"), False)
    if audio is not None and audio.options.get("audio_upload") is True:
        added.append(("upload", "AUDIOUPLOAD"))
    return added


def build_widgets(class_type: str, definition: dict[str, Any]) -> list[Widget]:
    """The widgets of a ``class_type`` node, in the editor's order, holding their defaults."""
    widgets: list[Widget] = []
    for spec in _ordered_specs(class_type, definition):
        if spec.options.get("forceInput"):
            continue  # services/litegraphService.ts (addInputWidget): a socket only
        widgets += _input_widgets(spec)
    widgets += [copy.deepcopy(widget) for widget in _CREATED_WIDGETS.get(class_type, ())]
    return widgets


def _input_widgets(spec: _InputSpec) -> list[Widget]:
    kind, options = spec.kind, spec.options
    if isinstance(kind, str) and kind in EXTENSION_WIDGETS:
        return [Widget(w.name.replace("{input}", spec.name), copy.deepcopy(w.value), w.to_api,
                       w.in_values, w.fixed) for w in EXTENSION_WIDGETS[kind].widgets]
    is_combo = isinstance(kind, list) or kind == "COMBO"
    if not is_combo and kind not in _PRIMITIVE_TYPES:
        return []  # no widget constructor for this type: an input socket
    if is_combo:
        choices = list(kind) if isinstance(kind, list) else list(options.get("options") or [])
        default = options.get("default", choices[0] if choices else None)
        widgets = [Widget(spec.name, copy.deepcopy(default), choices=choices)]
    else:
        default = options.get("default")
        widgets = [Widget(spec.name, copy.deepcopy(
            _SCALAR_DEFAULTS.get(kind) if default is None else default),
            # renderer/extensions/vueNodes/widgets/composables/useStringWidget.ts
            dynamic_prompts=kind == "STRING" and options.get("dynamicPrompts") is True)]
    # renderer/extensions/vueNodes/widgets/composables/useIntWidget.ts: an INT named seed or
    # noise_seed gets a control widget even when its spec does not ask for one;
    # core/graph/widgets/valueControlWidgets.ts: the control (and, for a combo, its filter list)
    # is saved in widgets_values but never sent
    control = options.get("control_after_generate")
    if control is None and kind == "INT" and spec.name in _SEED_NAMES:
        control = True
    if control:
        widgets.append(Widget("control_after_generate", "fixed", to_api=False))
        if is_combo:
            widgets.append(Widget("control_filter_list", "", to_api=False))
    return widgets


def apply_widget_values(class_type: str, widgets: list[Widget], values: Any) -> None:
    """Fill ``widgets`` from a saved ``widgets_values`` (a list by position, or a dict by name),
    then apply the editor's load-time patches."""
    if isinstance(values, dict):
        for widget in widgets:
            if widget.name in values and not widget.fixed:
                widget.value = copy.deepcopy(values[widget.name])
    elif isinstance(values, list):
        positional = [widget for widget in widgets if widget.in_values]
        for widget, value in zip(positional, values, strict=False):
            if not widget.fixed:
                widget.value = copy.deepcopy(value)
    # scripts/app.ts (loadGraphData, after configure): "sample_" prefixes of old KSampler files
    # are stripped, and a combo whose value is null takes its first option
    for widget in widgets:
        if (class_type in ("KSampler", "KSamplerAdvanced") and widget.name == "sampler_name"
                and isinstance(widget.value, str) and widget.value.startswith("sample_")):
            widget.value = widget.value[len("sample_"):]
        if widget.choices and widget.value is None:
            widget.value = copy.deepcopy(widget.choices[0])


def unknown_node_widgets(values: Any) -> list[Widget]:
    """The widgets the editor gives a node whose type the server does not know: one per saved
    value, named ``UNKNOWN``, ``UNKNOWN_1``, ... (``scripts/errorNodeWidgets.ts``). Text,
    numbers and booleans keep their value; anything else becomes its JSON text."""
    if not isinstance(values, list):
        return []
    widgets: list[Widget] = []
    for value in values:
        name = "UNKNOWN" if not widgets else f"UNKNOWN_{len(widgets)}"
        if not isinstance(value, (str, int, float, bool)):
            value = _json_text(value)
        widgets.append(Widget(name, copy.deepcopy(value)))
    return widgets


def _json_text(value: Any) -> str:
    """``JSON.stringify`` of a plain JSON value (compact, non-ASCII kept)."""
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def input_slots(class_type: str, definition: dict[str, Any]) -> list[tuple[str, Any, bool]]:
    """The input slots a ``class_type`` node gets from its definition, as ``(name, type,
    has_widget)``: first the inputs without a widget, then one per widget input
    (``services/litegraphService.ts``: ``addInputs`` adds every socket, then every widget)."""
    specs = [spec for spec in _ordered_specs(class_type, definition)]
    sockets: list[tuple[str, Any, bool]] = []
    widget_inputs: list[tuple[str, Any, bool]] = []
    for spec in specs:
        kind = "COMBO" if isinstance(spec.kind, list) else spec.kind
        has_widget = (isinstance(spec.kind, list) or spec.kind in _PRIMITIVE_TYPES
                      or spec.kind in EXTENSION_WIDGETS)
        if has_widget and not spec.options.get("forceInput"):
            widget_inputs.append((spec.name, kind, True))
        else:
            sockets.append((spec.name, kind, False))
    return sockets + widget_inputs


def migrate_widget_values(class_type: str, definition: dict[str, Any], widgets: list[Widget],
                          values: list[Any]) -> list[Any]:
    """Drop the saved values of inputs that are sockets now (``forceInput``) from an old
    ``widgets_values`` that still has them (``utils/litegraphUtil.ts``,
    ``migrateWidgetsValues``)."""
    names = {widget.name for widget in widgets}
    skipped = {widget.name for widget in widgets if not widget.in_values}
    flags: list[bool] = []
    for spec in _definition_specs(class_type, definition):
        if spec.name not in names and not spec.options.get("forceInput"):
            continue
        if spec.name in skipped:
            continue
        flags.append(bool(spec.options.get("forceInput")))
        if spec.options.get("control_after_generate"):
            flags.append(False)
    if True not in flags and len(values) == sum(widget.in_values for widget in widgets):
        return values
    compacted = [value for index, value in enumerate(values)
                 if index >= len(widgets) or widgets[index].in_values]
    if len(compacted) == len(flags):
        aligned = compacted
    elif len(values) == len(flags):
        aligned = values
    else:
        return values
    return [value for value, flag in zip(aligned, flags, strict=True) if not flag]


def _definition_specs(class_type: str, definition: dict[str, Any]) -> list[_InputSpec]:
    """The inputs in definition order (required, then optional), those the extensions add
    included: the order of ``ComfyNodeDefImpl.inputs``."""
    inputs = definition.get("input") or {}
    specs: dict[str, _InputSpec] = {}
    for section, optional in (("required", False), ("optional", True)):
        entries = inputs.get(section)
        for name, raw in (entries.items() if isinstance(entries, dict) else ()):
            spec = _spec(name, raw, optional)
            if spec is not None and name not in specs:
                specs[name] = spec
        if not optional:  # the extensions add theirs to ``required``
            for name, kind in _extension_inputs(class_type, inputs):
                specs[name] = _InputSpec(name, kind)
    return list(specs.values())


def definition_inputs(class_type: str, definition: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """The inputs of a node definition as the editor registers it (those its extensions add
    included), in definition order: ``(name, [type, options])``."""
    return [(spec.name, [spec.kind, spec.options])
            for spec in _definition_specs(class_type, definition)]


def has_widget(spec: list[Any]) -> bool:
    """Whether an input of this spec is a widget (``stores/widgetStore.ts``,
    ``inputIsWidget``), ``forceInput`` aside."""
    kind = spec[0] if spec else None
    return isinstance(kind, list) or kind in _PRIMITIVE_TYPES or kind in EXTENSION_WIDGETS

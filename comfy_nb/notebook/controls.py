"""The controls of :func:`~.interact.interact`: one widget per workflow input, its kind and range
from the server's node definitions.

Owns: the control of each input type (:func:`build_control`: sliders, bounded text boxes,
dropdowns, text areas, a seed box with "fixed / increment / randomize" and a 🎲 button),
choosing the inputs of a workflow that get one (:func:`build_controls`), and the ranges and
choices ``%comfy_interact`` takes on its line (:func:`parse_override`).

Must not: run anything, hold a client, or send widget messages once built (the Interact paces
every change it makes to them).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import ipywidgets as widgets

from .._naming import node_title
from ..workflow import Param, ParameterError
from ..workflow._params import (
    DEFAULT_SEED_MAX,
    SEED_INPUTS,
    describe,
    input_specs,
    is_link,
    list_params,
    resolve,
)

__all__ = ["DEFAULT_FLOAT_STEP", "SAFE_INTEGER", "SEED_MODES", "SLIDER_POSITIONS",
           "SUPPORTED_TYPES", "Control", "SeedControl", "build_control", "build_controls",
           "friendly_name", "parse_override", "spec_options"]

#: input types that get a control of their own (others are links between nodes)
SUPPORTED_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
#: the largest integer a browser's number holds exactly: text boxes are bounded by it
SAFE_INTEGER = 2**53 - 1
#: a range with more steps than this gets a bounded text box instead of a slider
SLIDER_POSITIONS = 10_000
#: what a seed becomes after each run, as in ComfyUI's editor ("control after generate")
SEED_MODES = ("fixed", "increment", "randomize")
#: slider step of a FLOAT input whose definition gives none
DEFAULT_FLOAT_STEP = 0.01

_DESCRIPTION_STYLE = {"description_width": "160px"}
_WIDE = "min(100%, 640px)"


class Control:
    """The widget of one input: ``widget`` is what is shown, ``value_widget`` holds the value
    (the same widget except for seeds), ``value`` is the input's value (floats rounded the way
    the node definition says), ``path`` is the input's ``"<node id>.<input>"``."""

    def __init__(self, name: str, widget: Any, *, param: Param | None = None,
                 value_widget: Any = None, decimals: int | None = None) -> None:
        self.name = name
        self.param = param
        self.path = param.path if param is not None else name
        self.widget = widget
        self.value_widget = value_widget if value_widget is not None else widget
        self.decimals = decimals

    @property
    def value(self) -> Any:
        value = self.value_widget.value
        if self.decimals is not None and isinstance(value, float):
            value = round(value, self.decimals)
        if isinstance(value, tuple):  # SelectMultiple
            value = list(value)
        return value

    @value.setter
    def value(self, value: Any) -> None:
        self.value_widget.value = self.widget_value(value)

    def widget_value(self, value: Any) -> Any:
        """``value`` as the value widget holds it."""
        return tuple(value) if isinstance(value, list) else value

    def observe(self, callback: Callable[[Control], object]) -> None:
        """Call ``callback(self)`` when the value changes."""
        self.value_widget.observe(lambda _change: callback(self), names="value")

    def next_value(self) -> Any:
        """The value after a run (seeds: "increment" / "randomize"); None keeps it."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}={self.value!r} {type(self.widget).__name__}>"


class SeedControl(Control):
    """A seed: an integer box, the editor's "fixed / increment / randomize" after each run, and a
    🎲 button for a new random seed now."""

    def __init__(self, name: str, box: Any, *, param: Param | None = None,
                 mode: str = "fixed") -> None:
        if mode not in SEED_MODES:
            raise ParameterError(f"a seed control is one of {', '.join(SEED_MODES)}, "
                                 f"not {mode!r}")
        self.mode_widget = widgets.Dropdown(
            options=SEED_MODES, value=mode, tooltip="what the seed becomes after each run",
            layout=widgets.Layout(width="110px"), _dom_classes=("comfy-nb-seed-mode",))
        self.dice = widgets.Button(description="🎲", tooltip="a new random seed",
                                   layout=widgets.Layout(width="42px"),
                                   _dom_classes=("comfy-nb-dice",))
        self.dice.on_click(lambda _button: self.randomize())
        super().__init__(name, widgets.HBox([box, self.mode_widget, self.dice]), param=param,
                         value_widget=box)

    @property
    def mode(self) -> str:
        mode: str = self.mode_widget.value
        return mode

    @mode.setter
    def mode(self, mode: str) -> None:
        self.mode_widget.value = mode

    @property
    def low(self) -> int:
        return int(getattr(self.value_widget, "min", 0))

    @property
    def high(self) -> int:
        return int(getattr(self.value_widget, "max", DEFAULT_SEED_MAX))

    def random_value(self) -> int:
        """A random seed in the box's range."""
        low, high = self.low, max(self.low, self.high)
        return low + secrets.randbelow(high - low + 1)

    def randomize(self) -> int:
        """Put a new random seed into the box now (the 🎲 button)."""
        self.value_widget.value = value = self.random_value()
        return value

    def next_value(self) -> int | None:
        mode = self.mode
        if mode == "increment":
            value = int(self.value_widget.value) + 1
            return self.low if value > self.high else value
        if mode == "randomize":
            return self.random_value()
        return None


def spec_options(spec: Sequence[Any] | None) -> Mapping[str, Any]:
    if spec and len(spec) > 1 and isinstance(spec[1], Mapping):
        return spec[1]
    return {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def _decimals(step: Any) -> int | None:
    """Decimal places of a step or rounding (``0.01`` → 2, ``1e-06`` → 6, ``1`` → 0)."""
    number = _number(step)
    if number is None or number <= 0:
        return None
    try:
        exponent = Decimal(repr(float(number))).normalize().as_tuple().exponent
    except InvalidOperation:
        return None
    return min(max(0, -exponent), 12) if isinstance(exponent, int) else None


def _is_seed(param: Param, spec: Sequence[Any] | None) -> bool:
    return param.type == "INT" and (param.name in SEED_INPUTS
                                    or spec_options(spec).get("control_after_generate") is True)


def _tooltip(param: Param, spec: Sequence[Any] | None) -> str:
    where = f"{param.title} ({param.class_type})" if param.title != param.class_type \
        else param.class_type
    text = f"{where} · node {param.node_id} · input {param.name}"
    note = spec_options(spec).get("tooltip")
    return f"{text}\n{note}" if isinstance(note, str) and note else text


def _unsupported(param: Param, label: str) -> ParameterError:
    return ParameterError(
        f"{label!r} ({param.title}.{param.name}) is a {param.type} input: a connection from "
        "another node's output, not a value typed into the node. interact() has controls for "
        f"{', '.join(SUPPORTED_TYPES[:-1])} and combo (list) inputs")


def _as_int(value: Any, fallback: int, label: str) -> int:
    if value is None:
        return fallback
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise ParameterError(f"{label!r} holds {value!r}, not a whole number")
    return int(value)


def _as_float(value: Any, fallback: float, label: str) -> float:
    if value is None:
        return fallback
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(f"{label!r} holds {value!r}, not a number")
    return float(value)


def _clamp(value: float, low: float, high: float) -> Any:
    return min(max(value, low), high)


def build_control(param: Param, override: Any = None, *, name: str | None = None,
                  spec: Sequence[Any] | None = None, seed_mode: str = "fixed") -> Control:
    """The control of one input, from its :class:`~comfy_nb.workflow.Param` (``wf.params()``)
    and its object_info ``spec`` (``[type, {options}]``; needed to recognise seeds and FLOAT
    rounding):

    - INT: an ``IntSlider`` with the definition's min, max and step; a ``BoundedIntText`` when
      the range has more than 10 000 steps (bounded by what a browser holds exactly);
      seeds (``seed``, ``noise_seed`` or ``control_after_generate``) get a :class:`SeedControl`;
    - FLOAT: a ``FloatSlider`` with the step, shown and rounded to the definition's ``round``
      (else the step's) decimals; a ``BoundedFloatText`` for huge ranges;
    - combo: a ``Dropdown`` of the choices (model and file lists included; the workflow's value
      is kept even when the server does not list it); STRING: ``Text``, or ``Textarea`` when
      multiline; BOOLEAN: ``Checkbox``.

    ``override`` replaces the automatic choice: a widget (used as it is), a ``(min, max)`` or
    ``(min, max, step)`` tuple (a slider) or a list of choices (a dropdown). Links (MODEL,
    IMAGE...) raise :class:`ParameterError`.
    """
    label = name or param.path
    value = param.value if param.value is not None else param.default
    common: dict[str, Any] = {"description": label, "tooltip": _tooltip(param, spec),
                              "style": dict(_DESCRIPTION_STYLE)}
    if override is not None:
        return _override_control(param, override, label, value, common)
    kind = param.type
    if kind == "INT" and _is_seed(param, spec):
        return SeedControl(label, _int_widget(param, label, value, common, seed=True),
                           param=param, mode=seed_mode)
    if kind == "INT":
        return Control(label, _int_widget(param, label, value, common), param=param)
    if kind == "FLOAT":
        widget, decimals = _float_widget(param, spec, label, value, common)
        return Control(label, widget, param=param, decimals=decimals)
    if kind == "COMBO":
        return _combo_control(param, spec, label, value, common)
    if kind == "STRING":
        text = "" if value is None else str(value)
        multiline = param.multiline if param.multiline is not None else "\n" in text
        if multiline:
            return Control(label, widgets.Textarea(value=text, rows=4, continuous_update=False,
                                                   layout=widgets.Layout(width=_WIDE),
                                                   **common), param=param)
        return Control(label, widgets.Text(value=text, continuous_update=False,
                                           layout=widgets.Layout(width=_WIDE), **common),
                       param=param)
    if kind == "BOOLEAN":
        return Control(label, widgets.Checkbox(value=bool(value), **common), param=param)
    raise _unsupported(param, label)


def _int_widget(param: Param, label: str, value: Any, common: dict[str, Any], *,
                seed: bool = False) -> Any:
    low, high = _number(param.min), _number(param.max)
    step = max(1, int(param.step)) if param.step is not None and param.step >= 1 else 1
    if (not seed and low is not None and high is not None and high >= low
            and max(abs(low), abs(high)) <= SAFE_INTEGER
            and (high - low) / step <= SLIDER_POSITIONS):
        lo, hi = math.ceil(low), math.floor(high)
        return widgets.IntSlider(value=_clamp(_as_int(value, lo, label), lo, hi), min=lo,
                                 max=hi, step=step, continuous_update=False,
                                 layout=widgets.Layout(width=_WIDE), **common)
    if low is None and high is None and not seed:
        return widgets.IntText(value=_as_int(value, 0, label), step=step,
                               continuous_update=False, **common)
    lo = max(math.ceil(low), -SAFE_INTEGER) if low is not None else (0 if seed else -SAFE_INTEGER)
    hi = min(math.floor(high), SAFE_INTEGER) if high is not None else SAFE_INTEGER
    hi = max(hi, lo)
    return widgets.BoundedIntText(value=_clamp(_as_int(value, lo, label), lo, hi), min=lo,
                                  max=hi, step=step, continuous_update=False, **common)


def _float_widget(param: Param, spec: Sequence[Any] | None, label: str, value: Any,
                  common: dict[str, Any]) -> tuple[Any, int | None]:
    low, high = _number(param.min), _number(param.max)
    step = _number(param.step) if param.step is not None and param.step > 0 else None
    rounding = spec_options(spec).get("round")
    decimals = _decimals(rounding) if _number(rounding) else None
    if decimals is None:
        decimals = _decimals(step if step is not None else DEFAULT_FLOAT_STEP)
    slider_step = step if step is not None else DEFAULT_FLOAT_STEP
    if low is not None and high is not None and high >= low \
            and (high - low) / slider_step <= SLIDER_POSITIONS:
        readout = f".{decimals}f" if decimals is not None else ".2f"
        return widgets.FloatSlider(value=_clamp(_as_float(value, low, label), low, high),
                                   min=low, max=high, step=slider_step, readout_format=readout,
                                   continuous_update=False, layout=widgets.Layout(width=_WIDE),
                                   **common), decimals
    if low is None and high is None:
        return widgets.FloatText(value=_as_float(value, 0.0, label), step=step,
                                 continuous_update=False, **common), decimals
    lo = low if low is not None else -1e300
    hi = high if high is not None else 1e300
    return widgets.BoundedFloatText(value=_clamp(_as_float(value, max(lo, 0.0), label), lo, hi),
                                    min=lo, max=hi, step=step, continuous_update=False,
                                    **common), decimals


def _combo_control(param: Param, spec: Sequence[Any] | None, label: str, value: Any,
                   common: dict[str, Any]) -> Control:
    choices = list(param.choices or ())
    if spec_options(spec).get("multiselect") is True:
        chosen = list(value) if isinstance(value, (list, tuple)) else \
            ([] if value is None else [value])
        choices += [c for c in chosen if c not in choices]
        return Control(label, widgets.SelectMultiple(
            options=[(str(c), c) for c in choices], value=tuple(chosen), **common), param=param)
    if value is not None and value not in choices:
        choices.append(value)  # the workflow's value, even if this server does not list it
    if value is None and choices:
        value = choices[0]
    return Control(label, widgets.Dropdown(options=[(str(c), c) for c in choices], value=value,
                                           **common), param=param)


def _override_control(param: Param, override: Any, label: str, value: Any,
                      common: dict[str, Any]) -> Control:
    if isinstance(override, widgets.ValueWidget):
        return Control(label, override, param=param)
    if isinstance(override, tuple) and len(override) in (2, 3) \
            and all(_number(v) is not None for v in override):
        low, high = override[0], override[1]
        step = override[2] if len(override) == 3 else None
        if high < low:
            raise ParameterError(f"the range for {label!r} is ({low}, {high}): min > max")
        integer = param.type == "INT" or (param.type != "FLOAT"
                                          and all(isinstance(v, int) for v in override))
        if integer:
            lo, hi = math.ceil(low), math.floor(high)
            return Control(label, widgets.IntSlider(
                value=_clamp(_as_int(value, lo, label), lo, hi), min=lo, max=hi,
                step=max(1, int(step or 1)), continuous_update=False,
                layout=widgets.Layout(width=_WIDE), **common), param=param)
        slider_step = float(step or param.step or (high - low) / 100 or DEFAULT_FLOAT_STEP)
        decimals = _decimals(slider_step)
        return Control(label, widgets.FloatSlider(
            value=_clamp(_as_float(value, low, label), low, high), min=low, max=high,
            step=slider_step, readout_format=f".{decimals if decimals is not None else 2}f",
            continuous_update=False, layout=widgets.Layout(width=_WIDE), **common),
            param=param, decimals=decimals)
    if isinstance(override, list) and override:
        chosen = value if value in override else override[0]
        return Control(label, widgets.Dropdown(options=[(str(c), c) for c in override],
                                               value=chosen, **common), param=param)
    raise ParameterError(f"the control for {label!r} is a widget, a (min, max) or (min, max, "
                         f"step) tuple or a non-empty list of choices, not {override!r}")


# -- the controls of a workflow --------------------------------------------------------------


def build_controls(api: dict[str, Any], info: Mapping[str, Any], names: list[str],
                   overrides: dict[str, Any], seed_mode: str) -> dict[str, Control]:
    """The controls of the inputs ``names`` of the API-format workflow ``api`` (every value
    input when none are given, named as :func:`friendly_name` names them), ``overrides``
    (a widget, a range or choices) applied, by name. ParameterError for a name that does
    not resolve, an input named twice, or an input fed by a link."""
    params = {p.path: p for p in list_params(api, info)}
    order = names + [n for n in overrides if n not in names]
    if not order:
        order = [friendly_name(api, p) for p in params.values()
                 if p.type in SUPPORTED_TYPES]
    built: dict[str, Control] = {}
    paths: dict[str, str] = {}
    for name in order:
        node_id, input_name = resolve(api, name, info)
        path = f"{node_id}.{input_name}"
        if path in paths:
            raise ParameterError(f"{name!r} and {paths[path]!r} are the same input ({path})")
        node = api[node_id]
        current = node["inputs"].get(input_name)
        if is_link(current):
            raise ParameterError(
                f"{name!r} ({node_title(node)}.{input_name}) is fed by the output of node "
                f"{current[0]}: interact() controls values typed into nodes, not the "
                "connections between them")
        spec = input_specs(info, node.get("class_type", "")).get(input_name)
        param = params.get(path) or describe(node_id, node, spec, input_name,
                                             spec_options(spec).get("default"))
        built[name] = build_control(param, overrides.get(name), name=name, spec=spec,
                                    seed_mode=seed_mode)
        paths[path] = name
    return built

def friendly_name(api: dict[str, Any], param: Param) -> str:
    """``Title.input`` when that names this input unambiguously, else ``id.input``."""
    candidate = f"{param.title}.{param.name}"
    try:
        if resolve(api, candidate) == (param.node_id, param.name):
            return candidate
    except ParameterError:
        pass
    return param.path


def parse_override(name: str, text: str) -> Any:
    """A control given on ``%comfy_interact``'s line: ``1:12`` or ``1:12:0.5`` (a range, as a
    tuple), ``a,b,c`` (choices; JSON values when they parse)."""
    def number(part: str) -> float | int:
        try:
            value = json.loads(part)
        except ValueError:
            value = None
        if _number(value) is None:
            raise ParameterError(f"{name}={text}: {part!r} is not a number")
        return value

    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ParameterError(f"{name}={text}: a range is MIN:MAX or MIN:MAX:STEP")
        return tuple(number(part) for part in parts)
    if "," in text:
        choices: list[Any] = []
        for part in (p.strip() for p in text.split(",")):
            try:
                choices.append(json.loads(part))
            except ValueError:
                choices.append(part)
        return choices
    raise ParameterError(f"{name}={text}: give a range ({name}=1:12 or {name}=1:12:0.5) or "
                         f"choices ({name}=a,b,c); fixed values go in with --set")

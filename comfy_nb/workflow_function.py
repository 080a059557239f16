"""A workflow as a Python function: :func:`use` and :class:`WorkflowFunction`.

``f = comfy_nb.use("txt2img")`` reads the server's node definitions once (from ``client=``, else
the notebook session's connection, else :func:`comfy_nb.connect`: this is where it connects) and
gives a callable whose signature lists the workflow's meaningful inputs by friendly names, with
types, defaults (the workflow's current values) and a docstring of ranges and choices; which
inputs count and what they are called is :mod:`comfy_nb.workflow._function_inputs`' business.

Owns: checking argument values (names, types, ranges, choices) before anything is sent, turning
them into the ``--set`` overrides of one run, running (``f(...)``), submitting (``f.submit``),
the controls of the same inputs (``f.interact()``), what a sweep of ``f`` runs
(:func:`sweep_arguments`) and, for App mode, putting the chosen outputs first in the Result.

Must not: speak HTTP itself (the client does) or import ipywidgets before ``f.interact()``.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import math
import numbers
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._session import shared_client
from .errors import ParameterError, WorkflowError
from .workflow import Workflow
from .workflow._function_inputs import (
    FunctionInput,
    app_mode,
    app_mode_inputs,
    editor_primitives,
    function_inputs,
)
from .workflow._params import SEED_INPUTS

if TYPE_CHECKING:
    from .client import Client
    from .job import Job
    from .notebook.interact import Interact
    from .result import Result

__all__ = ["WorkflowFunction", "sweep_arguments", "use"]

log = logging.getLogger("comfy_nb")

#: the Python type of each input type
_PYTHON_TYPES: dict[str, type] = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool,
                                  "COMBO": str}
#: choices shown in the docstring before "… (N choices)"
_SHOWN_CHOICES = 8
#: characters of a default shown in the docstring
_SHOWN_DEFAULT = 60
#: the docstring's width
_WIDTH = 96


def _short(value: Any, width: int = _SHOWN_DEFAULT) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 2] + "…" + text[-1]


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _annotation(item: FunctionInput) -> Any:
    param = item.param
    if param.type == "COMBO" and param.choices and not item.file:
        return Literal[tuple(param.choices)]
    if item.file:
        return Any
    return _PYTHON_TYPES.get(param.type, Any)


def _type_text(item: FunctionInput) -> str:
    if item.file:
        return "file (a name on the server, a path, a PIL image, an array or bytes)"
    param = item.param
    if param.type == "COMBO":
        return "str, one of the choices"
    kind = _PYTHON_TYPES.get(param.type)
    return kind.__name__ if kind is not None else param.type


def _constraints(item: FunctionInput) -> str:
    param = item.param
    parts: list[str] = []
    if param.min is not None or param.max is not None:
        low = _number(param.min) if param.min is not None else "…"
        high = _number(param.max) if param.max is not None else "…"
        parts.append(f"{low} to {high}")
    if param.step is not None:
        parts.append(f"step {_number(param.step)}")
    if param.choices and not item.file:
        shown = ", ".join(repr(c) for c in param.choices[:_SHOWN_CHOICES])
        more = len(param.choices) - _SHOWN_CHOICES
        parts.append(f"one of {shown}" + (f", … ({len(param.choices)} choices)"
                                          if more > 0 else ""))
    if param.type == "STRING" and param.multiline:
        parts.append("multiline text")
    if param.type == "INT" and param.name in SEED_INPUTS:
        parts.append('"random" picks one')
    return "; ".join(parts)


class WorkflowFunction:
    """A workflow as a function (made by :func:`use`): call it with keyword arguments to run
    the workflow and get its :class:`~comfy_nb.Result`.

    ``f.submit(...)`` returns the :class:`~comfy_nb.Job` at once, ``f.interact()`` builds the
    controls of the same inputs, ``f.workflow`` is (a copy of) the workflow, ``f.inputs`` the
    inputs by name (what each one sets), ``f.defaults`` their current values, ``f.outputs`` the
    output nodes an App mode author picked. ``help(f)`` and ``f?`` list the inputs."""

    def __init__(self, workflow: Workflow, inputs: Sequence[FunctionInput], *, name: str,
                 object_info: Mapping[str, Any], client: Client | None = None,
                 outputs: Sequence[str] = (), app_mode: bool = False) -> None:
        self._workflow = workflow
        self._inputs = {item.name: item for item in inputs}
        self._object_info = object_info
        self._client = client
        #: the workflow as it was given (an editor workflow stays one), for use(f) again
        self._source = workflow
        self.outputs: list[str] = list(outputs)
        self.app_mode = app_mode
        self.__name__ = self.__qualname__ = name
        self.__signature__ = self._signature()
        self.__doc__ = self._docstring()

    # -- what it is ----------------------------------------------------------------------------

    @property
    def workflow(self) -> Workflow:
        """A copy of the workflow (API format) this function runs."""
        return self._workflow.copy()

    def __comfy_workflow__(self) -> Workflow:
        """The workflow this function stands for where a workflow is asked for
        (``client.run(f)``, ``%comfy_interact f``): a copy, with its defaults."""
        return self._workflow.copy()

    @property
    def inputs(self) -> dict[str, FunctionInput]:
        """The inputs by name: each one's node input (``param``), every input it sets
        (``paths``) and its ``--set`` name (``address``)."""
        return dict(self._inputs)

    @property
    def defaults(self) -> dict[str, Any]:
        """The value each input has in the workflow (what a call without it sends)."""
        return {name: item.param.value for name, item in self._inputs.items()}

    @property
    def client(self) -> Client:
        """The client runs go to: the one given to :func:`use`, else the notebook session's
        (``%load_ext comfy_nb``), else one shared :func:`comfy_nb.connect` client."""
        return self._client if self._client is not None else default_client()

    def pick(self, namespace: Mapping[str, Any]) -> dict[str, Any]:
        """The entries of ``namespace`` named like an input: ``f(**f.pick(globals()))`` runs
        with the variables of a notebook's parameters cell (papermill's included)."""
        return {name: namespace[name] for name in self._inputs if name in namespace}

    def _signature(self) -> inspect.Signature:
        from .client import Client
        from .result import Result

        keyword = inspect.Parameter.KEYWORD_ONLY
        parameters = [inspect.Parameter(name, keyword, default=item.param.value,
                                        annotation=_annotation(item))
                      for name, item in self._inputs.items()]
        parameters.append(inspect.Parameter("client", keyword, default=None,
                                            annotation=Client | None))
        parameters.append(inspect.Parameter("timeout", keyword, default=None,
                                            annotation=float | None))
        return inspect.Signature(parameters, return_annotation=Result)

    def _header(self) -> list[str]:
        """A short signature (choices as ``str``, long defaults cut) in lines of at most
        :data:`_WIDTH` characters, broken between parameters."""
        kinds = {name: "file" if item.file else "str" if item.param.type == "COMBO"
                 else _type_text(item) for name, item in self._inputs.items()}
        parts = [f"{name}: {kinds[name]} = {_short(item.param.value, 40)}"
                 for name, item in self._inputs.items()]
        parts = ["*", *parts, "client=None", "timeout=None"]
        lines = [f"{self.__name__}("]
        for index, part in enumerate(parts):
            text = part + (", " if index < len(parts) - 1 else ") -> Result")
            if len(lines[-1]) + len(text.rstrip()) > _WIDTH:
                lines[-1] = lines[-1].rstrip()
                lines.append("    ")
            lines[-1] += text
        return lines

    def _docstring(self) -> str:
        what = "the App mode of" if self.app_mode else "the workflow"
        about = (f"Run {what} {self.__name__!r} with these inputs and return its Result; "
                 "`.submit(...)` returns the Job, `.interact()` shows controls for them. "
                 "Values are checked against the server's node definitions before anything is "
                 "sent. `client=` picks the server for one call, `timeout=` (seconds) cancels "
                 "a run that takes longer.")
        lines = [*self._header(), "", *textwrap.wrap(about, _WIDTH), "", "Parameters",
                 "----------"]
        for name, item in self._inputs.items():
            param = item.param
            lines.append(f"{name} : {_type_text(item)}, default {_short(param.value)}")
            where = f"{param.title}.{param.name} (node {param.node_id}, {param.class_type})"
            if item.label is not None and item.label != name:
                where = f"{item.label!r}: {where}"
            if len(item.paths) > 1:
                where += f", and {', '.join(item.paths[1:])}"
            tooltip = self._spec_options(item).get("tooltip")
            for text in (f"{where}; --set name {item.address!r}", _constraints(item),
                         tooltip if isinstance(tooltip, str) else ""):
                lines += textwrap.wrap(text, _WIDTH, initial_indent="    ",
                                       subsequent_indent="      ", break_long_words=False,
                                       break_on_hyphens=False)
        if self.outputs:
            lines += ["", f"Outputs first in the Result: node{'s' if len(self.outputs) > 1 else ''}"
                      f" {', '.join(self.outputs)}"]
        return "\n".join(lines)

    def _spec_options(self, item: FunctionInput) -> Mapping[str, Any]:
        from .workflow._params import input_specs

        spec = input_specs(self._object_info, item.param.class_type).get(item.param.name)
        if spec and len(spec) > 1 and isinstance(spec[1], Mapping):
            return spec[1]
        return {}

    def __repr__(self) -> str:
        names = ", ".join(self._inputs)
        mode = " (App mode)" if self.app_mode else ""
        return f"<comfy_nb.use {self.__name__}({names}){mode}>"

    # -- checking values -----------------------------------------------------------------------

    def _unknown(self, name: str) -> ParameterError:
        close = difflib.get_close_matches(name, list(self._inputs), n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        return ParameterError(f"{self.__name__}() has no input {name!r}{hint}; its inputs: "
                              f"{', '.join(self._inputs) or 'none'}")

    def check(self, name: str, value: Any) -> Any:
        """``value`` for the input ``name`` as it will be sent, or :class:`ParameterError`
        saying what is wrong (an unknown name, a wrong type, out of range, not a choice)."""
        item = self._inputs.get(name)
        if item is None:
            raise self._unknown(name)
        if item.file:
            return value  # a server-side name, or a file the client uploads
        param = item.param
        shown = f"{name}={_short(value, 40)}"
        if param.type == "INT":
            if param.name in SEED_INPUTS and isinstance(value, str) and value == "random":
                return value
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ParameterError(f"{shown}: {name} takes a whole number (int), not "
                                     f"{type(value).__name__}")
            value = int(value)
        elif param.type == "FLOAT":
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ParameterError(f"{shown}: {name} takes a number (float), not "
                                     f"{type(value).__name__}")
            value = float(value) if not isinstance(value, int) else value
            if not math.isfinite(value):
                raise ParameterError(f"{shown}: {name} takes a finite number")
        elif param.type == "STRING" and not isinstance(value, str):
            raise ParameterError(f"{shown}: {name} takes text (str), not {type(value).__name__}")
        elif param.type == "BOOLEAN" and not isinstance(value, bool):
            raise ParameterError(f"{shown}: {name} takes True or False, not "
                                 f"{type(value).__name__}")
        if param.type in ("INT", "FLOAT") and (
                (param.min is not None and value < param.min)
                or (param.max is not None and value > param.max)):
            low = _number(param.min) if param.min is not None else "…"
            high = _number(param.max) if param.max is not None else "…"
            where = name if item.address == name else f"{name} ({item.address})"
            raise ParameterError(f"{shown} is out of range: {where} takes {low} to {high}")
        if param.type == "COMBO" and param.choices and value not in param.choices:
            texts = [str(c) for c in param.choices]
            close = difflib.get_close_matches(str(value), texts, n=3, cutoff=0.6)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            first = ", ".join(repr(c) for c in param.choices[:_SHOWN_CHOICES])
            more = ", …" if len(param.choices) > _SHOWN_CHOICES else ""
            raise ParameterError(f"{shown} is not one of the {len(param.choices)} choices of "
                                 f"{name}{hint}: {first}{more}")
        return value

    def overrides(self, **values: Any) -> dict[str, Any]:
        """The ``{"<node id>.<input>": value}`` overrides a call with ``values`` sends (every
        value checked first)."""
        overrides: dict[str, Any] = {}
        for name, value in values.items():
            checked = self.check(name, value)
            for path in self._inputs[name].paths:
                overrides[path] = checked
        return overrides

    # -- running -------------------------------------------------------------------------------

    def __call__(self, *args: Any, client: Client | None = None, timeout: float | None = None,
                 **values: Any) -> Result:
        if args:
            raise ParameterError(f"{self.__name__}() takes its inputs by name "
                                 f"({', '.join(self._inputs)}), not by position")
        overrides = self.overrides(**values)
        result = (client or self.client).run(self._workflow, overrides=overrides,
                                              timeout=timeout)
        return self._chosen_first(result)

    def submit(self, *args: Any, client: Client | None = None, **values: Any) -> Job:
        """Queue a run with these inputs and return its :class:`~comfy_nb.Job` at once (the
        same checks as a call; ``job.wait()`` gives the Result in the server's order)."""
        if args:
            raise ParameterError(f"{self.__name__}.submit() takes its inputs by name")
        overrides = self.overrides(**values)
        return (client or self.client).submit(self._workflow, overrides=overrides)

    def _chosen_first(self, result: Result) -> Result:
        """For App mode: the files and texts of the chosen outputs first, in their order."""
        if not self.outputs:
            return result
        rank = {node_id: index for index, node_id in enumerate(self.outputs)}
        last = len(rank)
        result.files.sort(key=lambda file: rank.get(file.node_id, last))
        ordered = sorted(result.text, key=lambda node_id: rank.get(node_id, last))
        result.text = {node_id: result.text[node_id] for node_id in ordered}
        return result

    def interact(self, *, client: Client | None = None, **options: Any) -> Interact:
        """Controls for this function's inputs (:func:`comfy_nb.interact`), labelled with this
        function's names; ``ui.controls`` and ``ui.values`` key them by their ``--set`` names
        (``f.inputs[name].address``). ``options`` are :func:`comfy_nb.interact`'s; a control
        override (``cfg=(1, 12)``) may use this function's names. An input that sets several
        node inputs at once (a primitive node's) has no control: give its value to a call."""
        from .notebook.interact import interact

        names: list[str] = []
        for name, item in self._inputs.items():
            if len(item.paths) > 1:
                log.warning("comfy_nb: %s.interact(): %r sets %d inputs; it has no control",
                            self.__name__, name, len(item.paths))
            else:
                names.append(item.address)
        controls = {self._inputs[key].address if key in self._inputs else key: value
                    for key, value in options.items()
                    if key not in _INTERACT_OPTIONS}
        rest = {key: value for key, value in options.items() if key in _INTERACT_OPTIONS}
        made: Interact = interact(self._workflow, *names, client=client or self._client,
                                  object_info=self._object_info, **rest, **controls)
        for name, item in self._inputs.items():  # labelled as this function names them
            control = made.controls.get(item.address)
            if control is not None and name != item.address:
                control.value_widget.description = name
        return made


#: the options of comfy_nb.interact (the other keywords of f.interact() override controls)
_INTERACT_OPTIONS = frozenset({"auto", "debounce", "seed_control", "validate", "history_size"})


# -- making one ------------------------------------------------------------------------------------

def default_client() -> Client:
    """The notebook session's client (``%load_ext comfy_nb``), else the process's shared
    :func:`comfy_nb.connect` client."""
    return shared_client()


def _name_of(source: Any, workflow: Workflow) -> str:
    if workflow.bundled:
        return workflow.bundled
    if isinstance(source, (str, Path)) and not str(source).lstrip().startswith(("{", "[")):
        stem = Path(source).name.partition(".")[0]
        from .workflow._function_inputs import identifier

        if identifier(stem):
            return identifier(stem)
    return "workflow"


def use(workflow: Any, *, client: Client | None = None, name: str | None = None
        ) -> WorkflowFunction:
    """A workflow as a function whose keyword arguments are its meaningful inputs::

        txt2img = comfy_nb.use("txt2img")
        txt2img                                   # <comfy_nb.use txt2img(positive_prompt, ...)>
        result = txt2img(positive_prompt="a red fox", seed=3, steps=20)
        job = txt2img.submit(seed="random")      # the Job, at once
        comfy_nb.sweep(txt2img, seed=[1, 2, 3])  # the same names in a sweep

    ``workflow``: a bundled workflow's name, a path (API or editor JSON, a PNG ComfyUI saved),
    a dict or a :class:`~comfy_nb.Workflow`. The inputs are the ones an editor workflow saved
    in App mode picked (in its order, under its names), else the graph's meaningful ones:
    primitive nodes, prompts, titled nodes' inputs, the sampler's seed, steps, cfg, sampler and
    scheduler, the image size. ``help(f)`` lists them with ranges and choices.

    This connects at once (``client``, else the notebook session's connection, else
    :func:`comfy_nb.connect`): the signature needs the server's node definitions. Calls go to
    ``client`` when given here, else to the session's connection at call time; ``client=``
    on a call picks another."""
    if isinstance(workflow, WorkflowFunction):  # the same workflow, maybe for another server
        name = name if name is not None else workflow.__name__
        workflow = workflow._source
    object_info = (client if client is not None else default_client()).object_info()
    loaded = Workflow.load(workflow, object_info=object_info)
    outputs: list[str] = []
    is_app = False
    if loaded.format == "ui":
        ui = loaded.to_ui()
        api = loaded.to_api(object_info)
        runnable = Workflow.load(api, object_info=object_info)
        if app_mode(ui) is not None:
            inputs, outputs = app_mode_inputs(ui, api, object_info)
            is_app = True
        else:
            inputs = function_inputs(api, object_info, editor_primitives(ui, api))
    else:
        runnable = loaded
        inputs = function_inputs(loaded.to_api(), object_info)
    if name is not None and not name.isidentifier():
        raise WorkflowError(f"a function name is a Python name, not {name!r}")
    function = WorkflowFunction(runnable, inputs, name=name or _name_of(workflow, loaded),
                                object_info=object_info, client=client, outputs=outputs,
                                app_mode=is_app)
    function._source = loaded
    return function


# -- sweeps ----------------------------------------------------------------------------------------


def sweep_arguments(workflow: Any, values: Mapping[str, Any] | None, named: Mapping[str, Any],
                    overrides: Mapping[str, Any] | None, client: Any
                    ) -> tuple[Any, Mapping[str, Any] | None, dict[str, Any],
                               Mapping[str, Any] | None, Any]:
    """What :func:`comfy_nb.sweep` runs for ``workflow``: unchanged unless it is a
    :class:`WorkflowFunction`; then its workflow, the swept and fixed values under their
    ``--set`` names (each value checked), and its client when none is given."""
    if not isinstance(workflow, WorkflowFunction):
        return workflow, values, dict(named), overrides, client
    function = workflow
    swept: dict[str, Any] = {}
    for name, choices in {**(values or {}), **named}.items():
        item = function.inputs.get(name)
        if item is None:
            raise function._unknown(name)
        if len(item.paths) > 1:
            raise ParameterError(f"{name!r} sets {len(item.paths)} inputs at once; a sweep "
                                 "varies one input per name: sweep its inputs "
                                 f"({', '.join(item.paths)}) on function.workflow")
        if isinstance(choices, (list, tuple)):
            choices = [function.check(name, choice) for choice in choices]
        swept[item.address] = choices
    fixed = function.overrides(**dict(overrides or {})) if overrides else overrides
    chosen = client if client is not None else function._client
    return function._workflow, None, swept, fixed, chosen

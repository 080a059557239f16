"""Progress back ends: which ones there are, what each one makes, and which one a cell gets.

Owns: the registry of progress back ends, one :class:`ProgressBackend` each, that says for the
back end whether its view is shown in the cell with a ``display_id`` and replaced by the outcome
at the end (``widget``, ``html``), whether it has widgets whose clicks a waiting cell reads
(``widget``), whether a cell may choose it, and the panel it makes for each thing that is
followed: a job (panels of :mod:`.progress`), a sweep (panels of :mod:`.sweep_view`). The
command line's status line is the ``line`` back end (jobs only; not offered to cells).
:func:`choose_backend` picks the back end of a cell; ``COMFY_NB_PROGRESS=widget|html|text|off``
wins over what the environment suggests.

Must not: import ipywidgets, IPython or the modules whose panels it names: they import it, so
a panel class is named here as ``"module:Class"`` and imported when a panel is made.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .progress import LiveView

__all__ = ["ENV_VARIABLE", "JOB", "SWEEP", "ProgressBackend", "cell_backends", "choose_backend",
           "progress_backend", "register_backend"]

ENV_VARIABLE = "COMFY_NB_PROGRESS"
#: what a panel follows
JOB, SWEEP = "job", "sweep"


@dataclass(frozen=True)
class ProgressBackend:
    """One progress back end: how its views behave and the panel class it makes for each kind
    of thing followed (``{"job": "comfy_nb.notebook.progress:WidgetPanel", ...}``)."""

    name: str
    #: shown with a ``display_id`` and replaced by the outcome at the end (the outcome is then
    #: already on screen)
    displayed: bool = False
    #: has a Cancel button whose clicks a waiting cell can read; its panels take ``cancel=``
    clickable: bool = False
    #: a cell may choose it (``%config ComfyMagics.progress``, ``COMFY_NB_PROGRESS``)
    in_cells: bool = True
    panels: Mapping[str, str] = field(default_factory=dict)

    def panel_class(self, subject: str) -> Callable[..., LiveView]:
        """The class of this back end's panel for ``subject`` (:data:`JOB`, :data:`SWEEP`)."""
        where = self.panels.get(subject)
        if where is None:
            raise ValueError(f"the {self.name} progress back end has no panel for a {subject}")
        module, name = where.split(":")
        made: Callable[..., LiveView] = getattr(importlib.import_module(module), name)
        return made

    def make(self, subject: str, followed: Any, *, hint: str = "",
             cancel: Callable[[], Any] | None = None, **options: Any) -> LiveView:
        """A panel following ``followed`` (a job or a sweep); ``cancel`` reaches only the
        panels that have a Cancel button, ``options`` (``stream``, ``clock``) go to the panel."""
        if self.clickable:
            options["cancel"] = cancel
        return self.panel_class(subject)(followed, hint=hint, **options)


_REGISTRY: dict[str, ProgressBackend] = {}


def register_backend(backend: ProgressBackend) -> ProgressBackend:
    """Add (or replace) a back end under its name."""
    _REGISTRY[backend.name] = backend
    return backend


def progress_backend(name: str) -> ProgressBackend:
    """The back end called ``name`` (ValueError if there is none)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"progress back end {name!r} is unknown: use one of "
                         f"{', '.join(cell_backends())}") from None


def cell_backends() -> tuple[str, ...]:
    """The names of the back ends a cell may choose, in the order they are offered."""
    return tuple(name for name, backend in _REGISTRY.items() if backend.in_cells)


_PROGRESS = "comfy_nb.notebook.progress"
_SWEEP_VIEW = "comfy_nb.notebook.sweep_view"
register_backend(ProgressBackend(
    "widget", displayed=True, clickable=True,
    panels={JOB: f"{_PROGRESS}:WidgetPanel", SWEEP: f"{_SWEEP_VIEW}:SweepWidgetPanel"}))
register_backend(ProgressBackend(
    "html", displayed=True,
    panels={JOB: f"{_PROGRESS}:HtmlPanel", SWEEP: f"{_SWEEP_VIEW}:SweepHtmlPanel"}))
register_backend(ProgressBackend(
    "text", panels={JOB: f"{_PROGRESS}:TextPanel", SWEEP: f"{_SWEEP_VIEW}:SweepTextPanel"}))
register_backend(ProgressBackend(
    "off", panels={JOB: f"{_PROGRESS}:Panel", SWEEP: f"{_SWEEP_VIEW}:SweepPanel"}))
register_backend(ProgressBackend(
    "line", in_cells=False, panels={JOB: "comfy_nb.notebook.status_line:StatusLine"}))


# -- choosing a back end -------------------------------------------------------------------------


def _shell_name() -> str:
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None) if ipython is not None else None
    shell = get() if get is not None else None
    return type(shell).__name__ if shell is not None else ""


def _widget_front_end() -> bool:
    """Whether something will draw widgets: a kernel started by a Jupyter server (JupyterLab,
    Notebook, Binder, JupyterHub) or VS Code or Colab. nbclient and papermill set none of these,
    and there the html back end keeps the saved notebook readable."""
    return bool(os.environ.get("JPY_SESSION_NAME") or os.environ.get("VSCODE_PID")
                or "google.colab" in sys.modules)


def choose_backend(requested: str | None = None) -> str:
    """``requested`` (or ``$COMFY_NB_PROGRESS``) if given, else the best back end here."""
    value = (requested or os.environ.get(ENV_VARIABLE) or "auto").strip().lower()
    choices = cell_backends()
    if value not in (*choices, "auto"):
        raise ValueError(f"progress back end {value!r} is unknown: use one of "
                         f"{', '.join(choices)} or auto ({ENV_VARIABLE})")
    if value != "auto":
        return value
    shell = _shell_name()
    if shell != "ZMQInteractiveShell" or os.environ.get("QT_API") or any(
            name.startswith("SPYDER") for name in os.environ):
        return "text"
    return "widget" if _widget_front_end() else "html"

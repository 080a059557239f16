"""Parameter sweeps: every combination of some workflow inputs, run in parallel within a
concurrency limit, collected as one :class:`Sweep` (or :class:`AsyncSweep`).

The functions are :func:`comfy_nb.sweep` and :func:`comfy_nb.asweep`; this package holds them
and everything they use: expanding values into combinations (``product`` or ``zip``,
:mod:`._values`), the sweep's data (items, results, errors, :meth:`Sweep.rows`,
:mod:`._items`), the run loop (checking every combination before anything is submitted, never
more than ``concurrency`` jobs submitted and unfinished, cancelling a whole sweep,
:mod:`._run`) and the entry points (:mod:`._entry`). How many jobs run at once, when not
given, comes from :data:`settings` (:mod:`._settings`)::

    comfy_nb.sweep.settings.concurrency = 4      # every sweep, whatever the server
    comfy_nb.sweep.settings.tier = "pro"         # your Comfy Cloud plan: standard | creator | pro

Comfy Cloud runs 1, 3 or 5 jobs at once by plan (Standard, Creator, Pro) and the API does not
say which plan a key has: with no tier (``settings.tier``, ``tier=``, ``$COMFY_CLOUD_TIER``) a
Cloud sweep keeps ``settings.cloud_concurrency`` (3) jobs in flight. A local ComfyUI runs one
job at a time; ``settings.local_concurrency`` (2) keeps the next job waiting on the server so it
never idles between jobs, without flooding its queue.

Must not: import ipywidgets or draw anything. The notebook view (summary panel, labelled grid)
lives in :mod:`comfy_nb.notebook.sweep_view`, imported lazily, as :mod:`comfy_nb.result` does.
"""

from __future__ import annotations

from ._entry import asweep, sweep
from ._items import (
    CANCELLED,
    ENDED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    WAITING,
    SweepCounts,
    SweepData,
    SweepItem,
    error_text,
)
from ._run import AsyncSweep, Sweep, SweepTimeout
from ._settings import TIER_CONCURRENCY, SweepSettings, resolve_concurrency, settings
from ._values import MAX_JOBS, MODES, combinations, format_params, job_count, parse_sweep_values

__all__ = [
    "CANCELLED",
    "ENDED",
    "FAILED",
    "MAX_JOBS",
    "MODES",
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "TIER_CONCURRENCY",
    "WAITING",
    "AsyncSweep",
    "Sweep",
    "SweepCounts",
    "SweepData",
    "SweepItem",
    "SweepSettings",
    "SweepTimeout",
    "asweep",
    "combinations",
    "error_text",
    "format_params",
    "job_count",
    "parse_sweep_values",
    "resolve_concurrency",
    "settings",
    "sweep",
]

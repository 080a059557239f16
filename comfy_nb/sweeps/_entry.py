"""The public functions of sweeps: :func:`sweep` (a :class:`~comfy_nb.Client`, and a progress
panel in a notebook) and :func:`asweep` (an :class:`~comfy_nb.AsyncClient`).

Owns: choosing the client (the notebook session's, else one shared connection), the
concurrency (:func:`._settings.resolve_concurrency`) and the progress display of a sweep, and
cancelling it wherever an interruption lands while it starts.
Must not: schedule jobs (:mod:`._run` does) or import the notebook layer except lazily, when a
panel is wanted.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._session import shared_client
from ..job import Job
from ..workflow_function import sweep_arguments
from ._run import AsyncSweep, Sweep
from ._settings import resolve_concurrency, settings
from ._values import MAX_JOBS, sweep_axes

if TYPE_CHECKING:
    from ..client._client import AsyncClient, Client

__all__ = ["asweep", "sweep"]


async def asweep(workflow: Any, values: Mapping[str, Sequence[Any]] | None = None, /, *,
                 client: AsyncClient, mode: str = "product", concurrency: int | None = None,
                 tier: str | None = None, overrides: Mapping[str, Any] | None = None,
                 validate: bool = True, cache: bool | None = None, wait: bool = True,
                 timeout: float | None = None, submit_options: Mapping[str, Any] | None = None,
                 max_jobs: int | None = MAX_JOBS, **named: Sequence[Any]) -> AsyncSweep:
    """:func:`sweep` for an :class:`~comfy_nb.AsyncClient` (``client`` is required). Cancelling
    the awaiting task cancels the sweep's jobs on the server."""
    workflow, values, named, overrides, client = sweep_arguments(workflow, values, named,
                                                                 overrides, client)
    axes = sweep_axes(values, named, mode, max_jobs)  # before connecting
    await client.open()
    core = AsyncSweep(client, workflow, axes, mode,
                      concurrency=resolve_concurrency(client.dialect, concurrency, tier,
                                                      _capacity(client)),
                      overrides=overrides, validate=validate, cache=cache,
                      submit_options=submit_options)
    try:
        await core.prepare()
        core.start()
        if wait:
            await core.wait(timeout)
    except asyncio.CancelledError:
        await asyncio.shield(core.cancel())
        raise
    return core


def sweep(workflow: Any, values: Mapping[str, Sequence[Any]] | None = None, /, *,
          mode: str = "product", client: Client | None = None, concurrency: int | None = None,
          tier: str | None = None, overrides: Mapping[str, Any] | None = None,
          validate: bool = True, cache: bool | None = None, wait: bool = True,
          timeout: float | None = None, progress: str | None = None, save: str | None = None,
          submit_options: Mapping[str, Any] | None = None, max_jobs: int | None = MAX_JOBS,
          **named: Sequence[Any]) -> Sweep:
    """Run ``workflow`` once per combination of values and collect the outcomes::

        s = comfy_nb.sweep(wf, seed=[1, 2, 3], cfg=[4.0, 7.0])         # 6 jobs
        s = comfy_nb.sweep(wf, {"Positive Prompt.text": ["a fox", "a cat"]}, seed=[1, 2])
        s = comfy_nb.sweep(wf, seed=[1, 2, 3], cfg=[4.0, 5.0, 6.0], mode="zip")   # 3 jobs
        s.rows()       # [{"seed": 1, "cfg": 4.0, "status": "succeeded", "files": [...]}, ...]

    Names are those of :meth:`Workflow.set` (``"seed"``, ``"KSampler.cfg"``, ``"Positive
    Prompt.text"``: the ones with dots or spaces go into the dict). ``mode="product"`` runs
    every combination (the first parameter changes slowest), ``"zip"`` the i-th values together
    (equal lengths). ``overrides`` are fixed for every job.

    A sweep of more than ``max_jobs`` jobs (:data:`MAX_JOBS`, 1000) is refused before
    connecting; pass a larger number (or None) to run it. Every combination is checked before
    anything is submitted: an unknown name raises :class:`ParameterError`; a combination the
    node definitions reject fails alone (its cell says why); interrupting the check stops it
    with nothing submitted. Then at most ``concurrency`` jobs are in flight (submitted and
    unfinished) at once; see :func:`resolve_concurrency` for the default. A failing job keeps
    its error in its item; the others carry on. Interrupting it after the check (while it
    starts, shows its panel or waits) cancels every job of the sweep on the server; ``timeout``
    (seconds, whole sweep) does too and raises :class:`SweepTimeout`.
    ``cache`` is :meth:`Client.run`'s: None follows the result cache's global setting, so an
    identical combination run before comes back at once (``"random"`` seeds never hit it).

    ``client``: the notebook session's when ``%load_ext comfy_nb`` ran, else one shared
    :func:`comfy_nb.connect` client. ``progress``: ``widget``, ``html``, ``text`` or ``off``
    (default: chosen like the magics' panels inside IPython, ``off`` elsewhere); with a panel,
    full-size files are saved (``save``, default the notebook's ``output_dir``) and the panel
    becomes the labelled grid. ``wait=False`` returns at once (the sweep runs on).
    """
    workflow, values, named, overrides, client = sweep_arguments(workflow, values, named,
                                                                 overrides, client)
    axes = sweep_axes(values, named, mode, max_jobs)
    client = client if client is not None else shared_client()
    async_client = client.async_client
    core = AsyncSweep(async_client, workflow, axes, mode,
                      concurrency=resolve_concurrency(client.dialect, concurrency, tier,
                                                      _capacity(async_client)),
                      overrides=overrides, validate=validate, cache=cache,
                      submit_options=submit_options, wrap=lambda job: Job(job, client.loop))
    try:
        client.loop.run(_prepare_and_start(core))
        result = Sweep(core, client.loop)
        backend = _progress_backend(progress)
        if backend != "off":
            # the notebook layer, imported only when a panel is wanted
            from ..notebook.sweep_view import follow_sweep

            follow_sweep(result, backend, wait=wait, timeout=timeout, save=save)
        elif wait:
            result.wait(timeout)
    except KeyboardInterrupt:
        # wherever it landed: run() has stopped the check on the loop (it yields between
        # combinations); cancel whatever was submitted (again, if the wait did already)
        client.loop.run(core.cancel(), timeout=60)
        raise
    return result


# ``comfy_nb.sweep.settings``: the settings travel with the function users call
sweep.settings = settings  # type: ignore[attr-defined]


def _capacity(client: AsyncClient) -> int | None:
    """How many jobs ``client`` runs at once, when it knows (a pool does: its members')."""
    from ..client._pool import AsyncPool

    return client.capacity if isinstance(client, AsyncPool) else None


async def _prepare_and_start(core: AsyncSweep) -> None:
    await core.client.open()
    await core.prepare()
    core.start()


def _progress_backend(requested: str | None) -> str:
    if requested is None and "IPython" in sys.modules:
        from IPython import get_ipython

        if get_ipython() is not None:
            requested = "auto"
    if requested is None:
        return "off"
    from ..notebook.backends import choose_backend

    return choose_backend(None if requested == "auto" else requested)

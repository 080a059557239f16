"""Interactive parameters: :func:`interact` builds one widget with controls for chosen inputs of a
workflow (their kind and range from the server's node definitions), a Run button or debounced
runs on change, the live progress of the current job, its result, and a strip of earlier results
that put their values back into the controls when clicked.

Owns: the runs of one :class:`Interact` (a worker thread per Interact submits, cancels the
previous job, follows the current one and shows its outcome), the Interact's widget traffic
within one message budget (at most 10 messages in any second, previews at most 4 a second:
:class:`~.progress.RateLimit`, :class:`~.progress.LiveStatus`, :class:`~.progress.LivePreview`),
and :func:`interact_from_line` for ``%comfy_interact``. The controls are built by
:mod:`.controls`, the strip of earlier results by :mod:`.interact_history`.

Must not: speak HTTP (the client does), block the kernel in widget callbacks (they only queue
work for the worker: the kernel handles widget events only while idle), call ``display()``
(the cell displays the Interact), or capture output with ``with Output():`` (it swallows
exceptions). Errors are shown inside the widget *and* logged.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import html
import logging
import queue
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import ipywidgets as widgets

from .._session import session_client
from ..client import ComfyError, JobCancelled, connect
from ..workflow import ParameterError, Workflow, WorkflowError
from . import display as result_display
from .controls import Control, SeedControl, build_control, build_controls, parse_override
from .interact_history import HistoryEntry, HistoryStrip, close_tree, short_text
from .progress import MAX_WIDGET_MESSAGES, LivePreview, LiveStatus, RateLimit, status_html

if TYPE_CHECKING:
    from ..client import Client
    from ..job import Job
    from ..result import Result

__all__ = ["Control", "HistoryEntry", "Interact", "SeedControl", "build_control",
           "default_client", "interact", "interact_from_line"]

log = logging.getLogger("comfy_nb")

#: earlier results kept (and shown in the strip)
HISTORY_SIZE = 12
#: seconds between looks at the running job (the pacing decides what is actually sent)
TICK = 0.05
#: the window of the message budget, seconds: a little longer than one, as a message leaves a
#: moment after its slot is taken and no second of sending times may hold more than the limit
BUDGET_WINDOW = 1.1

_STOP = ("stop", None)


# -- the interact --------------------------------------------------------------------------------


def default_client() -> tuple[Client, bool]:
    """The client for ``client=None``: the notebook session's when ``%load_ext comfy_nb`` is
    loaded, else a new :func:`comfy_nb.connect` (the second item says it is a new one)."""
    session = session_client()
    if session is not None:
        return session, False
    return connect(), True


def _load_workflow(workflow: Any, object_info: Mapping[str, Any] | None) -> Workflow:
    if isinstance(workflow, str) and re.fullmatch(r"[a-z0-9_]+", workflow) \
            and not Path(workflow).exists():
        from ..workflows import bundled

        with contextlib.suppress(FileNotFoundError):
            workflow = bundled(workflow)
    loaded = Workflow.load(workflow, object_info=object_info)
    if loaded.format == "ui":
        if object_info is None:
            raise WorkflowError("an editor (UI-format) workflow needs the server's node "
                                "definitions: pass client= or object_info=")
        loaded = Workflow.load(loaded.to_api(object_info), object_info=object_info)
    return loaded


def _flatten(names: Sequence[Any]) -> list[str]:
    flat: list[str] = []
    for name in names:
        if isinstance(name, (list, tuple)):
            flat.extend(_flatten(name))
        elif isinstance(name, str):
            flat.append(name)
        else:
            raise ParameterError(f"an input name is a string like 'KSampler.cfg', not {name!r}")
    return flat


class Interact:
    """Controls for chosen inputs of a workflow, one displayed widget (see :func:`interact`).

    ``values`` are the controls' current values (by the names given), ``run()`` starts a run
    (``run(wait=True)`` returns its Result; a new run cancels the one in flight), ``wait()``
    waits for the latest, ``result`` is the latest Result, ``history`` / ``results`` the
    finished runs (oldest first, the last ``history_size``), ``close()`` ends it all.
    """

    def __init__(self, workflow: Any, names: Sequence[str] = (), *,
                 client: Client | None = None, auto: bool = False, debounce: float = 0.5,
                 object_info: Mapping[str, Any] | None = None,
                 controls: Mapping[str, Any] | None = None, seed_control: str = "fixed",
                 validate: bool = True, history_size: int = HISTORY_SIZE) -> None:
        if debounce < 0:
            raise ValueError(f"debounce is seconds >= 0, not {debounce!r}")
        self._client = client
        self._owns_client = False
        self.debounce = float(debounce)
        self.validate = validate
        self.history_size = max(1, int(history_size))
        try:
            if object_info is None and isinstance(workflow, Workflow):
                object_info = workflow.object_info
            if object_info is None:
                object_info = self.client.object_info()
            self.object_info: Mapping[str, Any] = object_info
            self.workflow = _load_workflow(workflow, object_info)
            self.controls: dict[str, Control] = build_controls(
                self.workflow.to_api(), object_info, _flatten(names), dict(controls or {}),
                seed_control)
        except BaseException:
            if self._owns_client and self._client is not None:
                self._client.close()  # a connection opened for nothing
            raise

        self._lock = threading.Lock()
        self._local = threading.local()
        # thread-safe; take() for what may be skipped (progress frames), take_blocking() for
        # what must arrive (results, restored values)
        self._pacer = RateLimit(MAX_WIDGET_MESSAGES, BUDGET_WINDOW)
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._closed = False
        # the worker's state (read elsewhere only for reporting)
        self._job: Job | None = None
        self._job_values: dict[str, Any] = {}
        self._job_number = 0
        self._waiters: list[concurrent.futures.Future[Result]] = []
        self._outcome: Result | BaseException | None = None
        self._runs = 0
        self._history: list[HistoryEntry] = []
        self._build_widgets(auto)

    # -- construction ---------------------------------------------------------------------------

    def _build_widgets(self, auto: bool) -> None:
        self._run_button = widgets.Button(description="Run", icon="play", button_style="primary",
                                          tooltip="run with these values (cancels a run in "
                                                  "progress)", _dom_classes=("comfy-nb-run",))
        self._cancel_button = widgets.Button(description="Cancel", icon="stop",
                                             tooltip="cancel the run in progress",
                                             _dom_classes=("comfy-nb-cancel",))
        self._auto = widgets.Checkbox(value=bool(auto), description="run on change",
                                      indent=False, tooltip="run after each change (once the "
                                      "controls are still for a moment)",
                                      layout=widgets.Layout(width="auto"),
                                      _dom_classes=("comfy-nb-auto",))
        self._live_status = LiveStatus(self._idle_html(), "comfy-nb-status")
        self._live_preview = LivePreview()
        self._status = self._live_status.widget
        self._preview = self._live_preview.widget
        self._result_view = widgets.HTML(value="", _dom_classes=("comfy-nb-latest",))
        self._strip = HistoryStrip(self._pacer, lambda entry: self._send(("restore", entry)))
        for control in self.controls.values():
            control.observe(self._changed)
        self._run_button.on_click(lambda _button: self.run())
        self._cancel_button.on_click(lambda _button: self.cancel())
        self._auto.observe(self._auto_changed, names="value")
        toolbar = widgets.HBox([self._run_button, self._cancel_button, self._auto])
        controls = widgets.VBox([c.widget for c in self.controls.values()],
                                _dom_classes=("comfy-nb-controls",))
        self.widget = widgets.VBox(
            [controls, toolbar, self._status, self._preview, self._result_view,
             self._strip.widget],
            _dom_classes=("comfy-nb-interact",))

    # -- public ---------------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The client runs go to (the session's, or a new connection, on first use)."""
        if self._client is None:
            self._client, self._owns_client = default_client()
        return self._client

    @property
    def auto(self) -> bool:
        """Whether changes start runs (after ``debounce`` seconds without another change)."""
        return bool(self._auto.value)

    @auto.setter
    def auto(self, value: bool) -> None:
        self._auto.value = bool(value)

    @property
    def values(self) -> dict[str, Any]:
        """The controls' current values, by the names they were given."""
        return {name: control.value for name, control in self.controls.items()}

    def set_values(self, values: Mapping[str, Any] | None = None, **named: Any) -> Interact:
        """Put values into the controls (no run starts, even in auto mode)."""
        changes = {**(values or {}), **named}
        unknown = [name for name in changes if name not in self.controls]
        if unknown:
            raise ParameterError(f"no control named {', '.join(map(repr, unknown))}; the "
                                 f"controls are {', '.join(map(repr, self.controls))}")
        self._check_open()
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._send(("set", (changes, done)))  # the worker sends them within the budget
        done.result()
        return self

    @property
    def job(self) -> Job | None:
        """The job in flight, if any."""
        return self._job

    @property
    def history(self) -> list[HistoryEntry]:
        """The finished runs, oldest first (at most ``history_size``)."""
        return list(self._history)

    @property
    def results(self) -> list[Result]:
        """The Results of :attr:`history`."""
        return [entry.result for entry in self._history]

    @property
    def result(self) -> Result | None:
        """The latest Result."""
        return self._history[-1].result if self._history else None

    @overload
    def run(self, *, wait: Literal[True], timeout: float | None = None) -> Result: ...

    @overload
    def run(self, *, wait: Literal[False] = False, timeout: float | None = None) -> None: ...

    def run(self, *, wait: bool = False, timeout: float | None = None) -> Result | None:
        """Run with the current values; a run in flight is cancelled first. Returns at once;
        ``wait=True`` waits and returns the Result, or raises what went wrong (WorkflowInvalid,
        ExecutionFailed...). A cell that waits cannot receive widget events until it ends."""
        self._check_open()
        _ = self.client  # connect here, on the caller's thread (a banner may show), not later
        with self._lock:
            if self._timer is not None:  # an explicit run supersedes a pending auto run
                self._timer.cancel()
                self._timer = None
        future: concurrent.futures.Future[Result] = concurrent.futures.Future()
        self._send(("run", future))
        return future.result(timeout) if wait else None

    def wait(self, timeout: float | None = None) -> Result:
        """Wait for the latest run (one still waiting out the debounce included) and return its
        Result; raises what it raised. RuntimeError when nothing has run."""
        self._check_open()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                timer = self._timer
            if timer is None:
                break
            timer.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("the debounced run did not start in time")
        future: concurrent.futures.Future[Result] = concurrent.futures.Future()
        self._send(("wait", future))
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return future.result(remaining)

    def cancel(self) -> None:
        """Cancel the run in flight (the widget says so)."""
        self._check_open()
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._send(("cancel", None))

    def close(self) -> None:
        """Cancel the run in flight, stop the worker and close every widget (and the client,
        when this Interact opened it)."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        worker = self._worker
        if worker is not None:
            self._inbox.put(_STOP)
            worker.join(30)
        job = self._job
        if job is not None and not job.done:
            self._cancel_job(job)
        for future in self._waiters:
            future.set_exception(RuntimeError("the interact was closed"))
        self._waiters = []
        close_tree(self.widget)
        self._strip.close_shared()
        if self._owns_client and self._client is not None:
            self._client.close()

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={short_text(value, 30)}" for name, value in self.values.items())
        state = "closed" if self._closed else f"{len(self._history)} results"
        return f"<comfy_nb Interact: {shown}; {state}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> dict[str, Any]:
        render = getattr(self.widget, "_repr_mimebundle_", None)
        bundle: dict[str, Any] = dict(render(**kwargs) or {}) if render and not self._closed \
            else {}
        bundle["text/plain"] = repr(self)
        return bundle

    # -- callbacks (kernel thread: queue work, never block) -------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this interact is closed; make a new one")

    @contextlib.contextmanager
    def _muted(self) -> Iterator[None]:
        """Value changes made inside (by this thread) do not start auto runs."""
        self._local.muted = True
        try:
            yield
        finally:
            self._local.muted = False

    def _changed(self, _control: Control) -> None:
        if self._closed or getattr(self._local, "muted", False) or not self._auto.value:
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.debounce, self._debounced)
            self._timer.daemon = True
            self._timer.start()

    def _debounced(self) -> None:
        with self._lock:
            if self._timer is not threading.current_thread():
                return  # a later change took over
            self._timer = None
        if not self._closed:
            future: concurrent.futures.Future[Result] = concurrent.futures.Future()
            self._send(("run", future))

    def _auto_changed(self, change: Mapping[str, Any]) -> None:
        if not change["new"]:
            with self._lock:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
        if self._job is None:  # the idle line says how runs start
            self._send(("idle", None))

    def _send(self, command: tuple[str, Any]) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="comfy-nb-interact",
                                                daemon=True)
                self._worker.start()
        self._inbox.put(command)

    # -- the worker (all runs and widget updates happen here) ------------------------------------

    def _work(self) -> None:
        while True:
            try:
                command: tuple[str, Any] | None = self._inbox.get(
                    timeout=TICK if self._job is not None else None)
            except queue.Empty:
                command = None
            batch = [command] if command is not None else []
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._inbox.get_nowait())
            stop = _STOP in batch
            if stop:
                batch = batch[:batch.index(_STOP)]
            try:
                self._handle(batch)
                if not stop:
                    self._follow()
            except Exception as exc:  # a bug here must not kill the worker silently
                log.exception("comfy_nb: interact: unexpected error")
                self._show_problem([f"{type(exc).__name__}: {exc}"])
            if stop:
                return

    def _handle(self, batch: list[tuple[str, Any]]) -> None:
        carried: list[concurrent.futures.Future[Result]] = []
        for index, (kind, argument) in enumerate(batch):
            later_run = any(k == "run" for k, _ in batch[index + 1:])
            if kind == "run":
                carried.append(argument)
                if not later_run:  # runs asked for together: only the last one happens
                    self._start_run(carried)
                    carried = []
            elif kind == "wait":
                if later_run:
                    carried.append(argument)
                else:
                    self._add_waiter(argument)
            elif kind == "cancel" and not later_run and self._job is not None:
                self._cancel_job(self._job)
            elif kind == "restore":
                self._restore(argument)
            elif kind == "set":
                self._set_values(*argument)
            elif kind == "idle" and self._job is None:
                self._set(self._status, "value", self._idle_html())

    def _add_waiter(self, future: concurrent.futures.Future[Result]) -> None:
        if self._job is not None:
            self._waiters.append(future)
        elif isinstance(self._outcome, BaseException):
            future.set_exception(self._outcome)
        elif self._outcome is not None:
            future.set_result(self._outcome)
        else:
            future.set_exception(RuntimeError("nothing has run yet: press Run or call run()"))

    def _start_run(self, futures: list[concurrent.futures.Future[Result]]) -> None:
        previous = self._job
        if previous is not None and previous.done:
            self._finish()  # it ended before this run: its result counts
        elif previous is not None:
            log.info("comfy_nb: interact: a new run cancels job %s", previous.id)
            self._cancel_job(previous)
            self._job = None
        futures = self._waiters + futures
        self._waiters = []
        try:
            values = self.values
            overrides = {self.controls[name].path: value for name, value in values.items()}
            job = self.client.submit(self.workflow, overrides=overrides,
                                     validate=self.validate)
        except Exception as exc:
            self._fail(exc, futures)
            return
        self._runs += 1
        self._job, self._job_values, self._job_number = job, values, self._runs
        self._waiters = futures
        self._live_status.restart()
        self._live_preview.restart()
        with self._muted():  # seeds move on as in the editor ("control after generate")
            for control in self.controls.values():
                new = control.next_value()
                if new is not None:
                    self._set(control.value_widget, "value", new)
        self._tick(job)

    def _cancel_job(self, job: Job) -> None:
        try:
            job.cancel()
        except ComfyError as exc:
            log.warning("comfy_nb: interact: could not cancel job %s: %s", job.id, exc)

    def _follow(self) -> None:
        job = self._job
        if job is None:
            return
        self._tick(job)
        if job.done or job.lost:
            self._finish()

    def _tick(self, job: Job) -> None:
        """Show the job's progress if its time has come and the budget has room (skipped
        otherwise: the next tick shows the newer state)."""
        now = time.monotonic()
        progress = job.progress()
        self._live_preview.update(progress, now, self._pacer)
        self._live_status.update(
            lambda: status_html(job.id, progress, job.workflow, hint=f"run #{self._job_number}"),
            now, self._pacer)

    def _finish(self) -> None:
        job = self._job
        assert job is not None
        self._job = None
        futures, self._waiters = self._waiters, []
        try:
            result = job.wait(timeout=60)
        except Exception as exc:
            self._fail(exc, futures)
            return
        try:
            result_display.save_for_notebook(result)
        except Exception as exc:  # outputs that cannot be read fail the run, as in a cell
            self._fail(exc, futures)
            return
        entry = HistoryEntry(self._job_number, dict(self._job_values), result, job.id,
                             job.elapsed)
        self._history.append(entry)
        self._outcome = result
        try:
            self._show(entry, restored=False)
            self._add_to_strip(entry)
        except Exception as exc:  # the run itself worked: its waiters get the Result
            log.exception("comfy_nb: interact: showing the result of job %s failed", job.id)
            self._show_problem([f"the result could not be shown: {type(exc).__name__}: {exc}"])
        finally:
            for future in futures:
                future.set_result(result)

    def _fail(self, exc: BaseException, futures: list[concurrent.futures.Future[Result]]
              ) -> None:
        if isinstance(exc, JobCancelled):
            log.info("comfy_nb: interact: %s", exc)
        elif isinstance(exc, ComfyError):
            log.warning("comfy_nb: interact: the run failed: %s", exc)
        else:
            log.warning("comfy_nb: interact: the run failed", exc_info=exc)
        lines = exc.notebook_lines() if isinstance(exc, ComfyError) \
            else [f"{type(exc).__name__}: {exc}"]
        self._show_problem(lines, cancelled=isinstance(exc, JobCancelled))
        self._outcome = exc
        for future in futures:
            future.set_exception(exc)

    # -- what the widget shows (worker thread, paced) -------------------------------------------

    def _set(self, widget: Any, name: str, value: Any) -> None:
        """Set a synced trait, waiting for room in the message budget if it changes."""
        if getattr(widget, name) != value:
            self._pacer.take_blocking()
            setattr(widget, name, value)

    def _idle_html(self) -> str:
        how = (f"changes run by themselves ({self.debounce:g} s after the last one)"
               if self._auto.value else "press Run")
        return f'<div class="comfy-nb-status"><b>comfy_nb</b> interact: {how}</div>'

    def _show_problem(self, lines: list[str], *, cancelled: bool = False) -> None:
        css = "comfy-nb-cancelled" if cancelled else "comfy-nb-error"
        color = "#666" if cancelled else "#b00"
        body = html.escape("\n".join(lines))
        self._set(self._preview.layout, "display", "none")
        self._set(self._status, "value",
                  f'<div class="{css}" style="color:{color}"><pre>{body}</pre></div>')

    def _show(self, entry: HistoryEntry, *, restored: bool) -> None:
        """Make ``entry`` the result on show (its gallery, then the status line)."""
        bundle = result_display.render_result(entry.result, include=("text/html",))
        self._set(self._result_view, "value", bundle.get("text/html", ""))
        self._set(self._preview.layout, "display", "none")
        what = (f"showing run #{entry.number}; its values are back in the controls" if restored
                else f"run #{entry.number} done in {entry.seconds:.1f} s")
        self._set(self._status, "value",
                  f'<div class="comfy-nb-status"><b>comfy_nb</b> job '
                  f"<code>{html.escape(entry.job_id[:8])}</code>: {html.escape(what)}</div>")

    def _add_to_strip(self, entry: HistoryEntry) -> None:
        """Put ``entry`` at the front of the history strip; the runs beyond ``history_size``
        leave it (and :attr:`history`)."""
        dropped = self._history[:-self.history_size]
        del self._history[:-self.history_size]
        self._strip.add(entry, list(reversed(self._history)), dropped)

    def _set_values(self, changes: Mapping[str, Any], done: concurrent.futures.Future[None]
                    ) -> None:
        try:
            with self._muted():
                for name, value in changes.items():
                    control = self.controls[name]
                    self._set(control.value_widget, "value", control.widget_value(value))
        except Exception as exc:  # a value the widget refuses: the caller gets the error
            done.set_exception(exc)
        else:
            done.set_result(None)

    def _restore(self, entry: HistoryEntry) -> None:
        with self._muted():
            for name, value in entry.values.items():
                control = self.controls.get(name)
                if control is not None:
                    self._set(control.value_widget, "value", control.widget_value(value))
        if self._job is None:
            self._outcome = entry.result
        self._show(entry, restored=True)


# -- entry points --------------------------------------------------------------------------------


def interact(workflow: Any, *names: str, client: Client | None = None, auto: bool = False,
             debounce: float = 0.5, object_info: Mapping[str, Any] | None = None,
             seed_control: str = "fixed", validate: bool = True,
             history_size: int = HISTORY_SIZE, **controls: Any) -> Interact:
    """Controls for inputs of ``workflow``, built from the server's node definitions, in one
    widget with a Run button, the live progress, the latest result and earlier ones::

        ui = comfy_nb.interact("txt2img", "seed", "cfg", "Positive Prompt.text",
                               steps=(1, 50), sampler_name=["euler", "dpmpp_2m"])
        ui                        # show it; press Run
        ui.run(wait=True)         # or run it from code and get the Result

    ``workflow`` is anything :meth:`Workflow.load` takes, or a bundled workflow's name. Names
    address inputs as :meth:`Workflow.set` does (``"seed"``, ``"KSampler.cfg"``,
    ``"Positive Prompt.text"``, ``"6.text"``); none at all means every value input.
    ``**controls`` override a control: a widget, a ``(min, max[, step])`` tuple or a list of
    choices (``**{"KSampler.cfg": (1, 12)}`` for dotted names).

    ``auto=True`` (the "run on change" box) runs after each change once the controls have
    been still for ``debounce`` seconds; a new run cancels the one in flight. Seeds get
    "fixed / increment / randomize" (``seed_control``, the mode they start in) and a 🎲
    button. ``client=None`` uses the notebook session's client (``%load_ext comfy_nb``), else
    :func:`comfy_nb.connect`.
    """
    return Interact(workflow, names, client=client, auto=auto, debounce=debounce,
                    object_info=object_info, controls=controls, seed_control=seed_control,
                    validate=validate, history_size=history_size)


def interact_from_line(client: Client | None, workflow: Any, names: Sequence[str],
                       **options: Any) -> Interact:
    """What ``%comfy_interact`` calls: ``names`` are the line's input names, each optionally
    with a range or choices — ``cfg``, ``cfg=1:12``, ``cfg=1:12:0.5``,
    ``sampler_name=euler,dpmpp_2m`` (values are JSON when they parse). ``options`` go to
    :class:`Interact` (``auto``, ``debounce``, ``seed_control``, ``validate``...)."""
    plain: list[str] = []
    controls: dict[str, Any] = dict(options.pop("controls", None) or {})
    for token in names:
        name, separator, text = token.partition("=")
        name = name.strip()
        if not name:
            raise ParameterError(f"{token!r} names no input")
        plain.append(name)
        if separator:
            controls[name] = parse_override(name, text.strip())
    return Interact(workflow, plain, client=client, controls=controls, **options)

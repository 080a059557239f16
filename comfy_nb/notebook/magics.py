"""The IPython extension: ``%%comfy_run`` / ``%comfy_run`` and ``%comfy ...``, with settings as
traits of :class:`ComfyMagics` (``%config ComfyMagics.output_dir = "renders"``).

It owns the notebook session (the connected client, the jobs submitted from cells), the magics'
options and the flow of one run: submit, show a progress panel in the submitting cell (whose
Cancel button works while the cell waits, :mod:`.cell_events`), replace it by the result (or an
error) when the job ends, store the result in a variable.

Must not: speak HTTP (the client does), read cell bodies (:mod:`.cell_input`), draw panels
(:mod:`.progress`), render results (:mod:`.display`) or carry out the ``%comfy`` commands
(:mod:`.commands` does, given the session).
"""

from __future__ import annotations

import contextlib
import keyword
import logging
import math
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, CaselessStrEnum, Float, Int, TraitError, Unicode, observe
from traitlets import validate as validate_trait  # the class has a trait named validate

from .. import ledger
from .._config import normalize_url
from .._secret import Secret
from ..client import Client, ComfyError, JobCancelled, JobTimeout, connect
from ..client._pool_members import pool_urls
from ..job import Job
from ..result import Result, folder_problem
from ..workflow._params import parse_assignments
from . import display as result_display
from . import progress
from .backends import cell_backends, choose_backend, progress_backend
from .cell_events import cell_events
from .cell_input import parse_cell, parse_line, workflow_from_path
from .commands import COMMANDS, banner, show
from .progress import StaticNote, follow, follow_in_background, make_panel

log = logging.getLogger("comfy_nb")

BLOCKING_HINT = "interrupt the kernel (■ stop) to cancel this job"


class _EmulatorNoticeInBanner(logging.Filter):
    """While connecting from a magic, the banner says "emulator": drop the log line that says
    it again (on stderr, where notebooks paint it like an error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "embedded emulator" not in record.getMessage()

    def __enter__(self) -> None:
        log.addFilter(self)

    def __exit__(self, *exc: object) -> None:
        log.removeFilter(self)


# -- the magics ----------------------------------------------------------------------------------


@magics_class
class ComfyMagics(Magics):
    """Run ComfyUI workflows from cells. Settings: ``%config ComfyMagics``."""

    url = Unicode(None, allow_none=True, config=True,
                  help="Server for new connections: a URL, 'cloud' or 'emulator'. None: "
                       "COMFY_URL, COMFY_CLOUD_API_KEY, a ComfyUI on 127.0.0.1:8188, else the "
                       "emulator.")
    progress = CaselessStrEnum(["auto", *cell_backends()], default_value="auto",
                               config=True,
                               help="Progress display; 'auto' picks one (COMFY_NB_PROGRESS).")
    output_dir = Unicode("comfy_outputs", allow_none=True, config=True,
                         help="Folder (next to the notebook) for full-size outputs; None "
                              "keeps only inline thumbnails.")
    thumbnail_size = Int(256, config=True, help="Longest side of inline thumbnails, px.")
    max_items = Int(24, config=True, help="Thumbnails shown inline per result.")
    embed_limit = Int(5_000_000, config=True,
                      help="Largest video/audio (bytes) embedded in the notebook; larger "
                           "files are linked from output_dir.")
    short_errors = Bool(True, config=True,
                        help="Show comfy_nb errors as a few lines instead of a traceback.")
    timeout = Float(None, allow_none=True, config=True,
                    help="Default seconds to wait for a job (None: no limit).")
    validate = Bool(True, config=True,
                    help="Check workflows against the server's node definitions first.")
    cache = Bool(True, config=True,
                 help="Serve identical runs from the result cache (comfy_nb.cache; "
                      "COMFY_NB_CACHE=off switches it off everywhere).")

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.client: Client | None = None
        self._clients: dict[str, Client] = {}  # other servers named by --url
        self.jobs: list[Job] = []
        self.recording: Any = None  # a comfy_nb.recordings.Recording while %comfy record runs
        self._apply_display_settings()
        ComfyError.short_tracebacks = self.short_errors

    # -- settings ---------------------------------------------------------------------------

    @observe("output_dir", "thumbnail_size", "max_items", "embed_limit")
    def _display_settings_changed(self, change: Any) -> None:
        self._apply_display_settings()

    def _apply_display_settings(self) -> None:
        settings = result_display.settings
        settings.output_dir = self.output_dir
        settings.thumbnail_size = self.thumbnail_size
        settings.max_items = self.max_items
        settings.embed_limit = self.embed_limit

    @observe("short_errors")
    def _short_errors_changed(self, change: Any) -> None:
        ComfyError.short_tracebacks = bool(change["new"])

    @validate_trait("timeout")
    def _valid_timeout(self, proposal: Any) -> float | None:
        value = proposal["value"]
        if value is not None and not _is_seconds(value):
            raise TraitError("ComfyMagics.timeout takes a positive number of seconds (or None "
                             f"for no limit), not {value!r}")
        return value

    def _check_save_folder(self, save: str | None) -> None:
        """Refuse a --save folder (or ComfyMagics.output_dir) that cannot hold the outputs,
        before anything is submitted."""
        if save is not None:
            problem = folder_problem(save)
            if problem is not None:
                raise UsageError(f"--save {save}: {problem}")
        elif self.output_dir is not None:
            problem = folder_problem(self.output_dir)
            if problem is not None:
                raise UsageError(f"ComfyMagics.output_dir {self.output_dir!r}: {problem}; "
                                 "choose another with %config ComfyMagics.output_dir = 'NAME' "
                                 "(or --save DIR)")

    # -- session ----------------------------------------------------------------------------

    def connect(self, url: str | list[str] | None = None,
                api_key: str | Secret | None = None) -> Client:
        """Connect the session (closing the previous connection) and show a banner. ``url`` as
        in :func:`comfy_nb.connect` (a URL, ``cloud`` or ``emulator``; several make a pool)."""
        api_key = Secret.of(api_key, "api_key")  # no frame below holds it in the clear
        with _EmulatorNoticeInBanner():
            client = connect(url, api_key=api_key)
        if self.client is not None:
            self.client.close()
        self.client = client
        show(banner(client))
        return client

    def session_client(self, url: str | None = None) -> Client:
        """The client for a run: the session's, or one for ``--url`` (kept for reuse; URLs
        separated by commas make a pool)."""
        if url:
            try:
                members = pool_urls(url)
            except ValueError as exc:
                raise UsageError(f"--url {url}: {exc}") from None
            key = ",".join(members) if members else normalize_url(url)
            if key not in self._clients:
                self._clients[key] = connect(members or key)
            return self._clients[key]
        if self.client is None:
            self.connect(self.url or None)
        assert self.client is not None
        return self.client

    def close(self) -> None:
        """Close every connection of the session."""
        if self.recording is not None:
            self.recording.stop()
            self.recording = None
        for client in [self.client, *self._clients.values()]:
            if client is not None:
                client.close()
        self.client = None
        self._clients.clear()

    # -- %%comfy_run -------------------------------------------------------------------------

    @no_var_expand
    @magic_arguments()
    @argument("target", nargs="?", metavar="VAR|PATH",
              help="cell magic: the variable that receives the Result (or the Job with "
                   "--no-wait); line magic: the workflow file (JSON, PNG, WEBP) or a bundled "
                   "workflow's name (txt2img)")
    @argument("--file", "-f", metavar="PATH",
              help="cell magic: run this file; the cell holds only # comments")
    @argument("--set", "-s", action="append", default=[], metavar="NODE.INPUT=VALUE",
              help="change an input first (repeatable): --set KSampler.cfg=6.5, "
                   "--set 'Positive Prompt.text=a red fox', --set steps=30")
    @argument("--seed", metavar="N|random", help="the sampler seed (random: a new one)")
    @argument("--url", metavar="URL", help="run on this server instead of the session's")
    @argument("--no-wait", action="store_true",
              help="return the Job at once; the panel keeps updating and has a Cancel button")
    @argument("--timeout", type=float, metavar="S",
              help="give up (and cancel the job) after S seconds")
    @argument("--save", metavar="DIR", help="folder for full-size outputs (default: "
                                            "ComfyMagics.output_dir)")
    @argument("--sweep", action="append", default=[], metavar="NAME=V1,V2,...",
              help="run every combination (repeatable): --sweep seed=1,2,3 --sweep cfg=4,7; "
                   "1..5 is a range; VAR receives the Sweep")
    @argument("--zip", action="store_true",
              help="--sweep values go in step (first with first...) instead of every combination")
    @argument("--concurrency", type=int, metavar="N",
              help="--sweep: jobs in flight at once (default: what the server allows)")
    @argument("--max-jobs", type=int, metavar="N",
              help="--sweep: run up to N jobs (default: 1000; a larger sweep is refused)")
    @argument("--grid", metavar="X[,Y[,Z]]",
              help="--sweep: show the comparison grid (X along, Y down, Z as pages) as it fills")
    @argument("--no-cache", action="store_true",
              help="run on the server even if this exact run is in the result cache")
    @argument("--label", metavar="TEXT",
              help="name the job in the job ledger (%%comfy jobs) besides the cell's number")
    @argument("-q", "--quiet", action="store_true", help="no progress panel")
    @argument("-h", "--help", action="store_true", help="show this help")
    @line_cell_magic
    def comfy_run(self, line: str, cell: str | None = None) -> Any:
        """Run a ComfyUI workflow and show its outputs.

        As a cell magic the cell holds an API-format workflow (JSON, as saved by the editor's
        "Export (API)"); put notebook variables into it with ``{{name}}``::

            %%comfy_run result --set KSampler.steps=30 --seed random
            {"3": {"class_type": "KSampler", "inputs": {"seed": {{seed}}, ...}}, ...}

        As a line magic it runs a file: ``result = %comfy_run workflow.json --set cfg=6``.

        A progress panel follows the job in this cell and is replaced by the outputs when it
        ends; full-size files go to ``ComfyMagics.output_dir``. The panel's Cancel button (with
        ipykernel 7) or interrupting the kernel cancels the job on the server. The Result is
        stored in VAR and returned.
        """
        args = parse_line(self.comfy_run, line)
        if args.help:
            return self._help(self.comfy_run)
        _check_flags(args)
        if cell is None:
            if not args.target:
                raise UsageError("%comfy_run needs a workflow file: %comfy_run PATH [--set ...] "
                                 "(or use %%comfy_run with the workflow in the cell)")
            workflow = workflow_from_path(args.target)
            variable = None
        else:
            variable = args.target
            if variable is not None and (not variable.isidentifier()
                                         or keyword.iskeyword(variable)):
                raise UsageError(f"{variable!r} is not a variable name: %%comfy_run [VAR] "
                                 "[options]")
            workflow = self._cell_workflow(args.file, cell)
        try:
            overrides = parse_assignments(args.set, "--set")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if args.seed is not None:
            overrides["seed"] = "random" if args.seed == "random" else _seed(args.seed)
        with ledger.label(args.label) if args.label else contextlib.nullcontext():
            outcome = self._run_or_sweep(workflow, args, overrides)
        if variable is not None:
            self._namespace()[variable] = outcome
        return outcome

    def _run_or_sweep(self, workflow: Any, args: Any, overrides: dict[str, Any]) -> Any:
        if args.sweep:
            outcome: Any = self.sweep(workflow, args, overrides)
        else:
            outcome = self.run(workflow, overrides, url=args.url, wait=not args.no_wait,
                               timeout=args.timeout if args.timeout is not None
                               else self.timeout, save=args.save, quiet=args.quiet,
                               cache=self.cache and not args.no_cache)
        return outcome

    def _namespace(self) -> dict[str, Any]:
        assert self.shell is not None
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    def _cell_workflow(self, path: str | None, cell: str) -> Any:
        # lines starting with # are comments (IPython refuses a cell magic with no body, so a
        # --file cell holds one)
        cell = "\n".join(line for line in cell.splitlines() if not line.lstrip().startswith("#"))
        if path:
            if cell.strip():
                raise UsageError("--file and a workflow in the cell: use one of them")
            return workflow_from_path(path)
        if not cell.strip():
            raise UsageError("the cell is empty: put an API-format workflow (JSON) in it, or "
                             "use --file PATH")
        return parse_cell(cell, self._namespace())

    def run(self, workflow: Any, overrides: dict[str, Any], *, url: str | None = None,
            wait: bool = True, timeout: float | None = None, save: str | None = None,
            quiet: bool = False, cache: bool = True) -> Result | Job:
        """Submit ``workflow`` and follow it in this cell (see :meth:`comfy_run`). With
        ``cache``, an identical earlier run comes from the result cache (comfy_nb.cache)."""
        self._check_save_folder(save)
        client = self.session_client(url)
        job = client.submit(workflow, overrides=overrides, validate=self.validate,
                            cache=None if cache else False)
        panel: Any = None
        events = None
        try:  # from here on, the stop button cancels the job wherever it lands
            self.jobs.append(job)
            backend = "off" if quiet else choose_backend(
                None if self.progress == "auto" else self.progress)
            from_cache = job.done  # served from the result cache: nothing was queued
            if not wait and not from_cache:
                panel = make_panel(job, backend, cancel=job.cancel)
                panel.show()
                follow_in_background(job, panel,
                                     lambda: self._end(job, panel, save, raise_=False))
                return job
            label = getattr(client, "label", None)  # a replay: "replayed from <date>, <server>"
            # a widget panel's Cancel button works in a waiting cell where its clicks can be read
            clickable = progress_backend(backend).clickable and not from_cache
            events = cell_events() if clickable else None
            hint = "" if events is not None else BLOCKING_HINT
            panel = make_panel(job, backend, hint=hint if not from_cache else label or "",
                               cancel=job.cancel if events is not None else None)
            if events is not None:
                events.watch(getattr(panel, "cancel_button", None))
            panel.show()
            follow(job, panel, timeout=timeout, events=events)
        except KeyboardInterrupt:
            self._cancel_quietly(job)
            if panel is not None:
                panel.finish(StaticNote(f"comfy_nb: job {job.id} was cancelled (kernel "
                                        "interrupted)", "comfy-nb-cancelled"))
            raise
        finally:
            if events is not None:
                events.close()
        if not job.done:
            error = JobTimeout(job.id, timeout or 0.0, cancelled=self._cancel_quietly(job))
            panel.finish(StaticNote(f"comfy_nb: {error}", "comfy-nb-cancelled"))
            raise error
        result = self._end(job, panel, save, raise_=True)
        assert result is not None
        if progress_backend(backend).displayed:
            result_display.mark_shown(result)
        return result

    def sweep(self, workflow: Any, args: Any, overrides: dict[str, Any]) -> Any:
        """``%%comfy_run --sweep ...``: every combination, a summary panel, then the grid."""
        from ..sweeps import MAX_JOBS, job_count, parse_sweep_values
        from .sweep_view import run_sweep_in_cell

        try:
            values = parse_sweep_values(args.sweep)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        lengths = {name: len(given) for name, given in values.items()}
        if args.zip and len(set(lengths.values())) > 1:
            sizes = ", ".join(f"{name} has {size}" for name, size in lengths.items())
            raise UsageError(f"--zip needs lists of the same length: {sizes}; drop --zip for "
                             "every combination")
        count = job_count(lengths, "zip" if args.zip else "product")
        limit = args.max_jobs if args.max_jobs is not None else MAX_JOBS
        if count > limit:
            raise UsageError(f"--sweep would run {count} jobs, more than the limit of {limit}; "
                             f"add --max-jobs {count} to run them all (or sweep fewer values)")
        grid_axes = _grid_axes(args.grid, values, "zip" if args.zip else "product")
        self._check_save_folder(args.save)
        result = run_sweep_in_cell(
            self.session_client(args.url), workflow, values,
            mode="zip" if args.zip else "product", overrides=overrides,
            concurrency=args.concurrency,
            backend="off" if args.quiet or grid_axes else (
                None if self.progress == "auto" else self.progress),
            wait=not args.no_wait and not (grid_axes and not args.quiet),
            timeout=args.timeout if args.timeout is not None else self.timeout,
            save=args.save, validate=self.validate,
            cache=None if self.cache and not args.no_cache else False, max_jobs=limit)
        self.jobs.extend(item.job for item in result.items if isinstance(item.job, Job))
        if grid_axes and not args.quiet:
            from .sweep_grid import show_sweep_grid

            show_sweep_grid(result, grid_axes, wait=not args.no_wait, timeout=args.timeout
                            if args.timeout is not None else self.timeout, save=args.save,
                            backend=None if self.progress == "auto" else self.progress)
        return result

    def _end(self, job: Job, panel: Any, save: str | None, *, raise_: bool) -> Result | None:
        """Replace the panel by the outcome: the result (saved to disk), or what went wrong."""
        try:
            result = job.wait(timeout=60)
            ledger.note_saved(result, result_display.save_for_notebook(result, save))
        except JobCancelled as exc:
            how = " (Cancel button)" if panel.cancel_clicked else ""
            panel.finish(StaticNote(f"comfy_nb: {exc}{how}", "comfy-nb-cancelled"))
            if raise_:
                raise
            return None
        except (ComfyError, OSError) as exc:
            lines = exc.notebook_lines() if isinstance(exc, ComfyError) else [str(exc)]
            panel.finish(StaticNote("\n".join(lines), "comfy-nb-error"))
            if raise_:
                raise
            log.warning("comfy_nb: job %s: %s", job.id, exc)
            return None
        except RuntimeError:
            if raise_ or not job.client_closed:
                raise
            # the connection was closed (%comfy connect, client.close()) before the job ended
            text = (f"comfy_nb: job {job.id}: its connection was closed before it ended; it "
                    f"may still run on the server (%comfy cancel {job.id})")
            panel.finish(StaticNote(text, "comfy-nb-error"))
            return None
        panel.finish(result)
        return result

    def attach(self, job: Job) -> Result | None:
        """Show ``job`` (submitted earlier, by this kernel or another) in this cell: the live
        progress panel of ``%%comfy_run`` while it runs, then its outputs (saved as a run's
        are) or what went wrong. Stopping the kernel stops the watching, not the job."""
        backend = choose_backend(None if self.progress == "auto" else self.progress)
        panel = make_panel(job, backend, hint="interrupt the kernel (■ stop) to stop watching; "
                                              "the job runs on")
        panel.show()
        try:
            follow(job, panel, timeout=self.timeout)
        except KeyboardInterrupt:
            panel.finish(StaticNote(f"comfy_nb: stopped watching job {job.id}; it runs on "
                                    f"(%comfy cancel {job.id} stops it)", "comfy-nb-banner"))
            raise
        if not job.done:
            panel.finish(StaticNote(f"comfy_nb: job {job.id} is still running after "
                                    f"{self.timeout:g} s; %comfy jobs --attach {job.id} "
                                    "follows it again", "comfy-nb-banner"))
            return None
        result = self._end(job, panel, None, raise_=False)
        if result is not None and progress_backend(backend).displayed:
            result_display.mark_shown(result)
        return result

    @staticmethod
    def _cancel_quietly(job: Job) -> bool:
        """Cancel ``job``; False (and a log line) if that failed."""
        try:
            job.cancel()
        except ComfyError as exc:
            log.warning("comfy_nb: could not cancel job %s: %s", job.id, exc)
            return False
        return True

    def _help(self, magic: Any) -> None:
        from IPython.core import page

        page.page(magic.__doc__ or "")  # magic_arguments put the usage into the docstring

    # -- %comfy_interact ----------------------------------------------------------------------

    @magic_arguments()
    @argument("workflow", metavar="WORKFLOW",
              help="a notebook variable holding a workflow, a workflow file, or a bundled "
                   "workflow's name (txt2img)")
    @argument("names", nargs="*", metavar="INPUT[=RANGE]",
              help="inputs to control: seed, cfg=1:12, cfg=1:12:0.5, "
                   "sampler_name=euler,dpmpp_2m, 'Positive Prompt.text' (default: every input)")
    @argument("--auto", action="store_true", help="run on every change (debounced), no button")
    @argument("--debounce", type=float, default=0.5, metavar="S",
              help="with --auto: run once the controls rest this long")
    @argument("--url", metavar="URL", help="run on this server instead of the session's")
    @argument("-h", "--help", action="store_true", help="show this help")
    @line_magic
    def comfy_interact(self, line: str) -> Any:
        """Controls for a workflow's inputs, built from the server's node definitions: sliders
        with the real ranges, dropdowns of the server's models and samplers, seed boxes with
        fixed / increment / randomize. Run shows live progress, the result and a strip of
        earlier results (click one to restore its values)::

            %comfy_interact txt2img seed cfg=1:12 steps=1:50 'Positive Prompt.text'
        """
        from .interact import interact_from_line

        args = parse_line(self.comfy_interact, line)
        if args.help:
            return self._help(self.comfy_interact)
        workflow = self._namespace().get(args.workflow)
        if workflow is None:
            workflow = workflow_from_path(args.workflow)
        return interact_from_line(self.session_client(args.url), workflow, args.names,
                                  auto=args.auto, debounce=args.debounce)

    # -- %comfy -------------------------------------------------------------------------------

    @magic_arguments()
    @argument("command", nargs="?", default="status",
              choices=["connect", "status", "queue", "cancel", "interrupt", "upload", "nodes",
                       "models", "record", "replay", "jobs"],
              help="connect URL|cloud|emulator [URL ...] · status · queue · "
                   "cancel [ID ...|--all] · interrupt · upload PATH · nodes [PATTERN] · "
                   "models [FOLDER] · record [PATH|--stop] · "
                   "replay [PATH] · jobs [--attach ID]")
    @argument("values", nargs="*", help="the command's arguments")
    @argument("--all", action="store_true", help="cancel: every queued and running job")
    @argument("--stop", action="store_true", help="record: stop recording")
    @argument("--attach", metavar="ID",
              help="jobs: follow this job (a unique start of its id) in the cell")
    @argument("-h", "--help", action="store_true", help="show this help")
    @line_magic
    def comfy(self, line: str) -> Any:
        """Manage the session's server: ``%comfy connect URL|cloud|emulator`` (several servers,
        ``%comfy connect URL URL``, make a pool), ``%comfy status``,
        ``%comfy queue``, ``%comfy cancel [ID ...|--all]``, ``%comfy interrupt``,
        ``%comfy upload PATH``, ``%comfy nodes [PATTERN]``, ``%comfy models [FOLDER]`` (the
        server's model files, e.g. ``checkpoints``); ``%comfy record [PATH]`` writes
        every job of the notebook into a folder (default ``recording``; ``--stop`` ends it) and
        ``%comfy replay [PATH]`` serves the cells from it with no server and no key;
        ``%comfy jobs`` lists the jobs this folder's notebooks submitted to the server (from
        earlier kernels too) and ``%comfy jobs --attach ID`` follows one in the cell.
        Settings: ``%config ComfyMagics``.
        """
        args = parse_line(self.comfy, line)
        if args.help:
            return self._help(self.comfy)
        return COMMANDS[args.command](self, args)



def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--seed takes a whole number or 'random', not {text!r}") from None


def _is_seconds(value: float) -> bool:
    """A usable timeout: a positive, finite number of seconds."""
    return math.isfinite(value) and value > 0


def _check_flags(args: Any) -> None:
    """Refuse ``%comfy_run`` flag values that cannot work, before anything connects."""
    if args.timeout is not None and not _is_seconds(args.timeout):
        raise UsageError(f"--timeout takes a positive number of seconds, not {args.timeout:g}")
    for flag, value in (("--concurrency", args.concurrency), ("--max-jobs", args.max_jobs)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} takes a whole number of at least 1, not {value}")
    if not args.sweep:
        alone = [flag for flag, given in (("--zip", args.zip), ("--grid", args.grid is not None),
                                          ("--concurrency", args.concurrency is not None),
                                          ("--max-jobs", args.max_jobs is not None)) if given]
        if alone:
            raise UsageError(f"{' and '.join(alone)} only go{'es' if len(alone) == 1 else ''} "
                             "with --sweep (e.g. --sweep seed=1,2,3)")


def _grid_axes(option: str | None, values: Any, mode: str) -> tuple[str | None, ...]:
    """``--grid X,Y,Z`` checked against the swept names (None: no grid)."""
    if option is None:
        return ()
    from .sweep_grid import GridError, check_axes, parse_grid_option

    try:
        axes = parse_grid_option(option)
        check_axes(list(values.items()), mode, *axes)
    except GridError as exc:
        raise UsageError(str(exc)) from None
    return axes


# -- the extension -------------------------------------------------------------------------------


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext comfy_nb``: register the magics once (a second load changes nothing)."""
    if getattr(shell, "_comfy_nb_magics", None) is not None:
        return
    magics = ComfyMagics(shell=shell)
    shell.register_magics(magics)  # also adds it to shell.configurables: %config works
    shell._comfy_nb_magics = magics
    shell.events.register("post_run_cell", result_display.forget_shown)
    shell.events.register("pre_run_cell", progress.resend_background_endings)


def unload_ipython_extension(shell: Any) -> None:
    """``%unload_ext comfy_nb`` (and ``%reload_ext``): close connections, forget the magics."""
    magics = getattr(shell, "_comfy_nb_magics", None)
    if magics is None:
        return
    magics.close()
    shell.configurables[:] = [c for c in shell.configurables if c is not magics]
    for kind in ("line", "cell"):
        for name in ("comfy_run", "comfy", "comfy_interact"):
            shell.magics_manager.magics[kind].pop(name, None)
    shell.magics_manager.registry.pop(type(magics).__name__, None)
    with contextlib.suppress(ValueError):
        shell.events.unregister("post_run_cell", result_display.forget_shown)
    with contextlib.suppress(ValueError):
        shell.events.unregister("pre_run_cell", progress.resend_background_endings)
    shell._comfy_nb_magics = None

"""The ``comfy-nb`` command: ``emulator`` serves the emulator; ``run`` runs a workflow (the
bundled text-to-image graph by default) with a progress line (the ``line`` back end of
:mod:`comfy_nb.notebook.backends`) and saves its outputs; ``queue``
and ``cancel`` manage the server's queue. ``--url`` takes a URL, ``cloud`` or ``emulator``
(``--emulator`` is the same as ``--url emulator``); without --url/--cloud/--emulator the server
is found as :func:`comfy_nb.connect` finds it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .emulator import STAND_IN_NOTICE, RunningEmulator
from .emulator._server import EmulatorOptions, netloc
from .workflow._params import parse_assignments


def _emulator_options(args: argparse.Namespace) -> EmulatorOptions:
    return EmulatorOptions(
        dialect=args.dialect, host=args.host, port=args.port, step_delay=args.step_delay,
        node_delay=args.node_delay, api_key=args.api_key, tier=args.tier,
        data_dir=Path(args.data_dir) if args.data_dir else None, token=args.token,
    )


def _add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dialect", choices=["local", "cloud", "v2"], default="local",
                        help="emulate a local ComfyUI server, Comfy Cloud, or the Comfy API v2 "
                             "(/api/v2, as comfy-api-proxy serves it) (default: local)")
    parser.add_argument("--step-delay", type=float, default=0.05, metavar="S",
                        help="seconds per sampler step (default: 0.05)")
    parser.add_argument("--node-delay", type=float, default=0.0, metavar="S",
                        help="extra seconds for every executed node (default: 0)")
    parser.add_argument("--tier", choices=["standard", "creator", "pro"], default="creator",
                        help="cloud: concurrency tier, 1/3/5 jobs at once (default: creator)")
    parser.add_argument("--api-key", default=None,
                        help="cloud: the key the emulator accepts (default: a generated one)")
    parser.add_argument("--token", default=None,
                        help="v2: require 'Authorization: Bearer TOKEN' on /api/v2/* "
                             "(default: no auth)")
    parser.add_argument("--data-dir", default=None,
                        help="keep input/, output/ and temp/ here (default: a temporary folder)")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE",
                        help="start with a fault set, e.g. latency=0.2 or http_error_count=3 "
                             "(repeatable; change later with POST /_emulator/faults)")


def serve_forever(args: argparse.Namespace) -> int:
    try:
        options = _emulator_options(args)
    except ValueError as exc:
        print(f"comfy-nb emulator: {exc}", file=sys.stderr)
        return 2
    emulator = RunningEmulator(options)
    try:
        emulator.set_faults(**parse_assignments(args.fault, "--fault"))
    except ValueError as exc:
        print(f"comfy-nb emulator: {exc}", file=sys.stderr)
        return 2
    try:
        emulator.start()
    except OSError as exc:
        print(f"comfy-nb emulator: cannot listen on {netloc(args.host, args.port)}: "
              f"{exc.strerror}. Pick another port with --port.", file=sys.stderr)
        emulator.stop()
        return 1
    print(f"comfy_nb emulator ({options.dialect} dialect) listening on {emulator.url}", flush=True)
    print(f"  {STAND_IN_NOTICE}.", flush=True)
    if options.dialect == "cloud":
        print(f"  storage origin: {emulator.storage_url}", flush=True)
        if args.api_key is None:
            print(f"  emulator key (not a Comfy key): {emulator.api_key}", flush=True)
    if options.dialect == "v2":
        auth = "Bearer token required" if options.token else "no auth (start with --token)"
        print(f"  Comfy API v2 at {emulator.url}/api/v2 ({auth})", flush=True)
    print("  Press Ctrl+C to stop.", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Any]:
    """A connected client for --url (a URL, ``cloud`` or ``emulator``) / --cloud / --emulator,
    or by the usual resolution order; an emulator started for it stops with it."""
    from .client import connect

    url = args.url
    if args.emulator:
        url = "emulator"
    elif args.cloud:
        if not os.environ.get("COMFY_CLOUD_API_KEY"):
            raise SystemExit("comfy-nb: --cloud needs COMFY_CLOUD_API_KEY in the environment")
        url = "cloud"
    with connect(url, emulator_options={"step_delay": args.step_delay}) as client:
        yield client


def run(args: argparse.Namespace) -> int:
    from .client import ComfyError, InvalidURL
    from .result import folder_problem
    from .workflow import Workflow, WorkflowError
    from .workflows import bundled

    problem = folder_problem(args.out)
    if problem is not None:
        print(f"comfy-nb run: --out {args.out}: {problem}", file=sys.stderr)
        return 2
    try:
        source = bundled("txt2img") if args.workflow is None else args.workflow
        workflow = Workflow.load(source)
        overrides = parse_assignments(args.set, "--set")
        if workflow.format == "api":  # editor workflows are set after conversion, on submit
            workflow.set(overrides)
            overrides = {}
    except (ValueError, WorkflowError) as exc:
        print(f"comfy-nb run: {exc}", file=sys.stderr)
        return 2
    with _terminate_as_interrupt():
        try:
            with _client(args) as client:
                return _run_with(client, workflow, overrides, args)
        except InvalidURL as exc:
            print(f"comfy-nb run: {exc}", file=sys.stderr)
            return 2
        except ComfyError as exc:
            print(f"comfy-nb run: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt as stop:  # before a job was submitted, or after it ended
            print(f"comfy-nb run: {_stopped(stop)}", file=sys.stderr)
            return _stopped_status(stop)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl+C's KeyboardInterrupt so that it stops a run the same way:
    the job is cancelled on the server and the client is closed."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`_Terminated` in the main thread (once: later
    ones are ignored while the job is being cancelled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stopped(stop: KeyboardInterrupt) -> str:
    return "terminated" if isinstance(stop, _Terminated) else "interrupted"


def _stopped_status(stop: KeyboardInterrupt) -> int:
    """The exit status of a run stopped by a signal: 128 + its number, as shells report it."""
    return 128 + (signal.SIGTERM if isinstance(stop, _Terminated) else signal.SIGINT)


def _run_with(client: Any, workflow: Any, overrides: dict[str, Any],
              args: argparse.Namespace) -> int:
    import uuid

    from .client import ComfyError, JobTimeout
    from .notebook.backends import JOB, progress_backend

    if client.emulator is not None:
        print(f"comfy-nb run: on the embedded emulator ({STAND_IN_NOTICE})", file=sys.stderr)
    # the status line's class is imported before submitting: a stop that lands after the job
    # was queued then lands in the wait below, which cancels the job
    status_line = progress_backend("line").panel_class(JOB)
    prompt_id = str(uuid.uuid4())  # known before submitting, so a stop meanwhile can cancel it
    try:
        job = client.submit(workflow, overrides=overrides, prompt_id=prompt_id,
                            cache=False if args.no_cache else None)
    except KeyboardInterrupt as stop:  # the request may have reached the server
        cancelled = _cancel_quietly(client, prompt_id)
        print(f"comfy-nb run: {_stopped(stop)} while submitting"
              + (f"; job {prompt_id} was cancelled" if cancelled else ""), file=sys.stderr)
        return _stopped_status(stop)
    if job.done:  # served from the result cache: nothing was queued
        print(f"from cache {job.id}{_cached_on(job.wait())}; --no-cache runs it again",
              file=sys.stderr)
    else:
        print(f"queued {job.id}", file=sys.stderr)
    line = status_line(job, stream=sys.stderr)
    job.on(lambda _event: line.tick())  # drawn from the client's thread as events arrive
    try:
        result = job.wait(args.timeout)
    except KeyboardInterrupt as stop:  # job.wait() has cancelled the job on the server
        line.finish(None)
        print(f"comfy-nb run: {_stopped(stop)}; job {job.id} was cancelled", file=sys.stderr)
        return _stopped_status(stop)
    except JobTimeout as exc:
        line.finish(None)
        try:
            live = client.cancel(job.id)
        except ComfyError:
            live = None
        if live is False:
            print(f"comfy-nb run: job {job.id} did not finish within {exc.timeout:g} s (it "
                  "ended just after; nothing was left to cancel)", file=sys.stderr)
        else:
            print(f"comfy-nb run: {JobTimeout(job.id, exc.timeout, cancelled=bool(live))}",
                  file=sys.stderr)
        return 1
    except ComfyError as exc:
        line.finish(None)
        print(f"comfy-nb run: {exc}", file=sys.stderr)
        return 1
    line.finish(None)
    try:
        files = result.save(args.out)
    except OSError as exc:
        print(f"comfy-nb run: job {job.id} succeeded, but its outputs were not saved: {exc}",
              file=sys.stderr)
        return 1
    for node_id, texts in result.text.items():
        for text in texts:
            print(f"node {node_id}: {text}")
    for path in files:
        print(path)
    return 0


def _cancel_quietly(client: Any, prompt_id: str) -> bool:
    """Cancel a job; whether the server took the cancel (a failure is not raised: the caller
    is already reporting why the run stopped)."""
    from .client import ComfyError

    try:
        return bool(client.cancel(prompt_id))
    except ComfyError:
        return False


def _cached_on(result: Any) -> str:
    """`` (run on <local date and time>)`` of a result from the result cache, if it says."""
    if result.cached_at is None:
        return ""
    return f" (run on {time.strftime('%Y-%m-%d %H:%M', time.localtime(result.cached_at))})"


def show_queue(args: argparse.Namespace) -> int:
    from .client import ComfyError, InvalidURL

    try:
        with _client(args) as client:
            entries = client.queue()
    except InvalidURL as exc:
        print(f"comfy-nb queue: {exc}", file=sys.stderr)
        return 2
    except ComfyError as exc:
        print(f"comfy-nb queue: {exc}", file=sys.stderr)
        return 1
    if not entries:
        print("the queue is empty")
    for entry in entries:
        where = "running" if entry["running"] else f"pending #{entry['position']}"
        print(f"{entry['id']}  {where}")
    return 0


def cancel(args: argparse.Namespace) -> int:
    from .client import ComfyError, InvalidURL

    if not args.ids and not args.all:
        print("comfy-nb cancel: name job ids, or --all", file=sys.stderr)
        return 2
    try:
        with _client(args) as client:
            if args.all:
                client.clear_queue()
                client.interrupt()
                print("cleared the queue and interrupted the running job")
                return 0
            missing = [job_id for job_id in args.ids if not client.cancel(job_id)]
    except InvalidURL as exc:
        print(f"comfy-nb cancel: {exc}", file=sys.stderr)
        return 2
    except ComfyError as exc:
        print(f"comfy-nb cancel: {exc}", file=sys.stderr)
        return 1
    for job_id in missing:
        print(f"comfy-nb cancel: {job_id} is neither queued nor running", file=sys.stderr)
    return 1 if missing else 0


def _add_server_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", default=None,
                       help="ComfyUI server URL, 'cloud' or 'emulator' (default: COMFY_URL, "
                            "COMFY_CLOUD_API_KEY, a server on 127.0.0.1:8188, else the embedded "
                            "emulator)")
    where.add_argument("--cloud", action="store_true",
                       help="Comfy Cloud, with the key from COMFY_CLOUD_API_KEY")
    where.add_argument("--emulator", action="store_true", help="the embedded emulator")
    parser.add_argument("--step-delay", type=float, default=0.05, metavar="S",
                        help="embedded emulator: seconds per sampler step (default: 0.05)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="comfy-nb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    emulator = commands.add_parser("emulator", help="serve the ComfyUI / Comfy Cloud emulator")
    emulator.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    emulator.add_argument("--port", type=int, default=8188, help="port (default: 8188; 0 = any)")
    _add_emulator_arguments(emulator)
    emulator.set_defaults(handler=serve_forever)

    runner = commands.add_parser("run", help="run a workflow and save its outputs")
    runner.add_argument("workflow", nargs="?", default=None,
                        help="API-format workflow JSON (default: the bundled text-to-image graph)")
    runner.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE",
                        help="change an input first, e.g. --set KSampler.seed=7 (repeatable)")
    runner.add_argument("--out", default="comfy_outputs",
                        help="folder for the output files (default: ./comfy_outputs, as in "
                             "notebooks)")
    runner.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="give up (and cancel the job) after S seconds")
    runner.add_argument("--no-cache", action="store_true",
                        help="run on the server even if this exact run is in the result cache")
    _add_server_arguments(runner)
    runner.set_defaults(handler=run)

    queue = commands.add_parser("queue", help="show the server's queue")
    _add_server_arguments(queue)
    queue.set_defaults(handler=show_queue)

    cancel_parser = commands.add_parser("cancel", help="cancel queued or running jobs")
    cancel_parser.add_argument("ids", nargs="*", help="job (prompt) ids")
    cancel_parser.add_argument("--all", action="store_true",
                               help="clear the queue and interrupt the running job")
    _add_server_arguments(cancel_parser)
    cancel_parser.set_defaults(handler=cancel)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

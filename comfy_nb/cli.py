"""The ``comfy-nb`` command: ``comfy-nb emulator`` serves the emulator; ``comfy-nb run`` runs a
workflow (the bundled text-to-image graph by default) and writes its outputs to a folder, on the
embedded emulator unless ``--url`` names a server.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .emulator import STAND_IN_NOTICE, RunningEmulator
from .emulator._server import EmulatorOptions


def _emulator_options(args: argparse.Namespace, port: int) -> EmulatorOptions:
    return EmulatorOptions(
        dialect=args.dialect, host=args.host, port=port, step_delay=args.step_delay,
        node_delay=args.node_delay, api_key=args.api_key, tier=args.tier,
        data_dir=Path(args.data_dir) if args.data_dir else None,
    )


def _add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dialect", choices=["local", "cloud"], default="local",
                        help="emulate a local ComfyUI server or Comfy Cloud (default: local)")
    parser.add_argument("--step-delay", type=float, default=0.05, metavar="S",
                        help="seconds per sampler step (default: 0.05)")
    parser.add_argument("--node-delay", type=float, default=0.0, metavar="S",
                        help="extra seconds for every executed node (default: 0)")
    parser.add_argument("--tier", choices=["standard", "creator", "pro"], default="creator",
                        help="cloud: concurrency tier, 1/3/5 jobs at once (default: creator)")
    parser.add_argument("--api-key", default=None,
                        help="cloud: the key the emulator accepts (default: a generated one)")
    parser.add_argument("--data-dir", default=None,
                        help="keep input/, output/ and temp/ here (default: a temporary folder)")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE",
                        help="start with a fault set, e.g. latency=0.2 or http_error_count=3 "
                             "(repeatable; change later with POST /_emulator/faults)")


def serve_forever(args: argparse.Namespace) -> int:
    try:
        options = _emulator_options(args, args.port)
    except ValueError as exc:
        print(f"comfy-nb emulator: {exc}", file=sys.stderr)
        return 2
    emulator = RunningEmulator(options)
    try:
        emulator.set_faults(**_parse_faults(args.fault))
    except ValueError as exc:
        print(f"comfy-nb emulator: {exc}", file=sys.stderr)
        return 2
    try:
        emulator.start()
    except OSError as exc:
        print(f"comfy-nb emulator: cannot listen on {args.host}:{args.port}: {exc.strerror}. "
              "Pick another port with --port.", file=sys.stderr)
        emulator.stop()
        return 1
    print(f"comfy_nb emulator ({options.dialect} dialect) listening on {emulator.url}", flush=True)
    print(f"  {STAND_IN_NOTICE}.", flush=True)
    if options.dialect == "cloud":
        print(f"  storage origin: {emulator.storage_url}", flush=True)
        if args.api_key is None:
            print(f"  emulator key (not a Comfy key): {emulator.api_key}", flush=True)
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


def _parse_faults(items: list[str]) -> dict[str, Any]:
    faults: dict[str, Any] = {}
    for item in items:
        name, separator, text = item.partition("=")
        if not separator:
            raise ValueError(f"--fault takes NAME=VALUE, not {item!r}")
        try:
            faults[name.strip()] = json.loads(text)
        except ValueError:
            faults[name.strip()] = text
    return faults


def run(args: argparse.Namespace) -> int:
    from ._quickrun import RunFailed, run_workflow
    from .workflows import bundled

    try:
        workflow = _load_workflow(args.workflow)
    except (OSError, ValueError) as exc:
        print(f"comfy-nb run: cannot read the workflow: {exc}", file=sys.stderr)
        return 2
    if args.workflow is None:
        workflow = bundled("txt2img")
    out_dir = Path(args.out)
    emulator: RunningEmulator | None = None
    url = args.url
    if url is None:
        emulator = RunningEmulator(EmulatorOptions(step_delay=args.step_delay)).start()
        url = emulator.url
        print(f"no --url given: running on the embedded emulator ({STAND_IN_NOTICE})",
              file=sys.stderr)
    try:
        files = run_workflow(url.rstrip("/"), workflow, out_dir, timeout=args.timeout)
    except RunFailed as exc:
        print(f"comfy-nb run: {exc}", file=sys.stderr)
        return 1
    finally:
        if emulator is not None:
            emulator.stop()
    for path in files:
        print(path)
    return 0


def _load_workflow(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    if "prompt" in data and isinstance(data["prompt"], dict):
        data = data["prompt"]
    if "nodes" in data and "links" in data:
        raise ValueError("this is an editor (UI-format) workflow; export it with "
                         "'Export (API)' in ComfyUI and run that file")
    return data


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
    runner.add_argument("--url", default=None,
                        help="ComfyUI server URL (default: start the embedded emulator)")
    runner.add_argument("--out", default="comfy_nb_outputs",
                        help="folder for the output files (default: ./comfy_nb_outputs)")
    runner.add_argument("--timeout", type=float, default=300.0, metavar="S",
                        help="give up (and cancel the job) after S seconds (default: 300)")
    runner.add_argument("--step-delay", type=float, default=0.05, metavar="S",
                        help="embedded emulator: seconds per sampler step (default: 0.05)")
    runner.set_defaults(handler=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

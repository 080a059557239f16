"""The ``%comfy`` commands (``connect``, ``status``, ``queue``, ``cancel``, ``interrupt``,
``upload``, ``nodes``, ``models``, ``record``, ``replay``; ``jobs`` is in :mod:`.ledger_view`),
each a function of the session's
:class:`~.magics.ComfyMagics` and the parsed line (:data:`COMMANDS` maps a command to it), and
the small displays they show (:class:`Table`, the connection banner).

Owns: what each command does with the session and shows. Must not: parse the line or register
magics (:mod:`.magics` does), or speak HTTP (the client does).
"""

from __future__ import annotations

import fnmatch
import getpass
import html
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from .._config import KEY_VARIABLE, on_binder
from .._secret import Secret
from ..errors import ComfyError
from .pool_view import describe_pool, is_pool
from .progress import StaticNote

if TYPE_CHECKING:
    from ..client import Client
    from .magics import ComfyMagics

__all__ = ["COMMANDS", "Table", "banner", "is_replay", "matches", "session_word", "show"]


# -- small displays ------------------------------------------------------------------------------


class Table:
    """Rows shown as text and as an HTML table."""

    def __init__(self, columns: list[str], rows: list[list[Any]], caption: str = "") -> None:
        self.columns = columns
        self.rows = [[str(cell) for cell in row] for row in rows]
        self.caption = caption

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._html()}

    def __repr__(self) -> str:
        if not self.rows:
            return self.caption
        rows = [self.columns, *self.rows]
        widths = [max(len(row[i]) for row in rows) for i in range(len(self.columns))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                 for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(([self.caption] if self.caption else []) + lines)

    def _html(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
                       for row in self.rows)
        caption = f"<div>{esc(self.caption)}</div>" if self.caption else ""
        if not self.rows:
            return caption
        return f"{caption}<table class=\"comfy-nb-table\"><tr>{head}</tr>{body}</table>"


def show(obj: Any) -> None:
    """Display ``obj`` in the current cell."""
    from IPython.display import display

    display(obj)


def banner(client: Client) -> StaticNote:
    """What a connection says about itself (server, dialect, emulator or not; for a pool,
    each member with its capacity)."""
    if is_pool(client):
        return StaticNote(describe_pool(client), "comfy-nb-banner")
    return StaticNote(client.describe(), "comfy-nb-banner")


# -- the commands --------------------------------------------------------------------------------


def comfy_connect(magics: ComfyMagics, args: Any) -> None:
    if not args.values:
        raise UsageError("%comfy connect URL|cloud|emulator (e.g. %comfy connect "
                         "http://127.0.0.1:8188; several servers make a pool: %comfy connect "
                         "URL URL ...)")
    targets = connect_targets(args.values)
    target: str | list[str] = targets[0] if len(targets) == 1 else targets
    api_key = None
    # the key typed in goes to Comfy Cloud alone, also as a member of a pool (comfy_nb.connect
    # gives a pool's one key to its one "cloud" member and to no other)
    if any(name.lower() == "cloud" for name in targets) and not os.environ.get(KEY_VARIABLE):
        if on_binder():
            raise UsageError("this is a public Binder session: do not enter an API key "
                             "here. Run the notebook on your own machine for Comfy Cloud.")
        # typed in, and straight into a Secret: no frame ever holds it in the clear
        api_key = Secret.of(
            getpass.getpass("Comfy Cloud API key (not stored in the notebook): ").strip())
        if not api_key:
            raise UsageError(f"no key given: set {KEY_VARIABLE} or paste the key")
    try:
        magics.connect(target, api_key=api_key)
    except ValueError as exc:  # servers that cannot make a pool (Comfy Cloud named twice)
        if len(targets) == 1 or isinstance(exc, ComfyError):
            raise
        raise UsageError(f"%comfy connect: {exc}") from None


def connect_targets(values: list[str]) -> list[str]:
    """The servers ``%comfy connect`` names: one, or several (separated by spaces or commas)
    for a pool; a server named twice or an empty name is refused."""
    from ..client._pool import pool_urls

    if len(values) == 1 and "," not in values[0]:
        return list(values)
    # "URL, URL" arrives as two values, the first ending with its comma
    text = values[0] if len(values) == 1 else ",".join(value.strip(",") for value in values)
    try:
        urls = pool_urls(text)
    except ValueError as exc:
        raise UsageError(f"%comfy connect: {exc}") from None
    return urls or [text]

def comfy_record(magics: ComfyMagics, args: Any) -> None:
    from ..recordings import record

    if len(args.values) > 1:
        raise UsageError("%comfy record [PATH] (or %comfy record --stop)")
    if magics.recording is not None:
        magics.recording.stop()
        magics.recording = None
    if args.stop:
        show(StaticNote("comfy_nb: recording stopped", "comfy-nb-banner"))
        return
    path = args.values[0] if args.values else "recording"
    try:
        magics.recording = record(path)
    except OSError as exc:  # a file, a folder of other files, or nowhere to write
        raise UsageError(str(exc)) from None
    show(StaticNote(f"comfy_nb: recording every job into {path}/ (replay it with "
                     f"%comfy replay {path})", "comfy-nb-banner"))

def comfy_replay(magics: ComfyMagics, args: Any) -> None:
    from ..recordings import ReplayError, replay

    if len(args.values) > 1:
        raise UsageError("%comfy replay [PATH]")
    try:
        client = replay(args.values[0] if args.values else "recording")
    except ReplayError as exc:
        raise UsageError(str(exc)) from None
    if magics.client is not None:
        magics.client.close()
    magics.client = client
    show(banner(client))

def comfy_status(magics: ComfyMagics, args: Any) -> None:
    connected = magics.client is not None
    client = magics.session_client()  # connecting shows the banner
    if connected:
        show(banner(client))
    queue = client.queue()
    running = sum(1 for entry in queue if entry["running"])
    rows = [[job.id, job.status.value, f"{job.elapsed:.1f} s"] for job in magics.jobs[-10:]]
    columns = ["job", "status", "time"]
    if is_pool(client):  # which member each job went to
        columns.append("server")
        for row, job in zip(rows, magics.jobs[-10:], strict=True):
            row.append(client.server_of(job.id) or "-")  # "-": from an earlier connection
    caption = (f"queue: {running} running, {len(queue) - running} pending · "
               f"jobs from this {session_word(magics)}: {len(magics.jobs)}")
    show(Table(columns, rows, caption))

def session_word(magics: ComfyMagics) -> str:
    """What the jobs of this session come from: a kernel (notebooks, consoles) or a shell
    (terminal IPython)."""
    return "kernel" if getattr(magics.shell, "kernel", None) is not None else "shell"

def comfy_queue(magics: ComfyMagics, args: Any) -> None:
    client = magics.session_client()
    entries = client.queue()
    rows = [[e["id"], "running" if e["running"] else f"pending #{e['position']}"]
            for e in entries]
    columns = ["job", "state"]
    if is_pool(client):  # a pool's queue is its members': each entry says whose
        columns.append("server")
        for row, entry in zip(rows, entries, strict=True):
            row.append(entry.get("server", "?"))
    show(Table(columns, rows, "the queue is empty" if not rows else ""))

def comfy_cancel(magics: ComfyMagics, args: Any) -> None:
    client = magics.session_client()
    if args.all:
        if is_replay(client):
            show(StaticNote("comfy_nb: this session replays a recording and runs no jobs: "
                             "there is nothing to cancel", "comfy-nb-banner"))
            return
        client.clear_queue()
        client.interrupt()
        show(StaticNote("comfy_nb: cleared the queue and interrupted the running job",
                         "comfy-nb-cancelled"))
        return
    ids = list(args.values)
    if not ids:
        live = [job for job in magics.jobs if not job.done]
        if not live:
            raise UsageError(f"no job of this {session_word(magics)} is running; name one: "
                             "%comfy cancel ID (or --all)")
        ids = [live[-1].id]
    done = client.cancel_many(ids)  # pending ones first: none starts in between
    missing = [job_id for job_id in ids if job_id not in done]
    lines = [f"comfy_nb: cancelled {job_id}" for job_id in done]
    lines += [f"comfy_nb: {job_id} is neither queued nor running" for job_id in missing]
    show(StaticNote("\n".join(lines), "comfy-nb-cancelled"))

def comfy_interrupt(magics: ComfyMagics, args: Any) -> None:
    client = magics.session_client()
    if is_replay(client):
        show(StaticNote("comfy_nb: this session replays a recording and runs no jobs: "
                         "there is nothing to interrupt", "comfy-nb-banner"))
        return
    client.interrupt()
    show(StaticNote("comfy_nb: interrupted the running job", "comfy-nb-cancelled"))

def comfy_upload(magics: ComfyMagics, args: Any) -> str:
    if len(args.values) != 1:
        raise UsageError("%comfy upload PATH")
    path = Path(args.values[0])
    if path.is_dir():
        raise UsageError(f"{str(path)!r} is a folder; upload one image from it: "
                         f"%comfy upload {path / 'NAME.png'}")
    if not path.is_file():
        raise UsageError(f"no file {str(path)!r}")
    return magics.session_client().upload_image(path)

def comfy_nodes(magics: ComfyMagics, args: Any) -> None:
    pattern = " ".join(args.values).strip().lower()
    info = magics.session_client().object_info()
    found = []
    for name, node in sorted(info.items()):
        fields = [name, str(node.get("display_name", "")), str(node.get("category", ""))]
        if not pattern or any(matches(pattern, field.lower()) for field in fields):
            found.append((name, node))
    rows = []
    for name, node in found[:50]:
        inputs = node.get("input", {})
        names = [n for section in ("required", "optional")
                 for n in (inputs.get(section) or {})]
        rows.append([name, node.get("display_name") or name, node.get("category") or "",
                     ", ".join(names)])
    more = f" (first 50 of {len(found)})" if len(found) > 50 else ""
    show(Table(["class", "name", "category", "inputs"], rows,
                f"{len(found)} node types match {pattern!r}{more}" if pattern
                else f"{len(found)} node types{more}"))

def comfy_models(magics: ComfyMagics, args: Any) -> list[str]:
    if len(args.values) > 1:
        raise UsageError("%comfy models [FOLDER] (e.g. %comfy models checkpoints; no folder "
                         "lists the folders)")
    return magics.session_client().models(args.values[0] if args.values else None)


def comfy_jobs(magics: ComfyMagics, args: Any) -> Any:
    from .ledger_view import comfy_jobs as show_jobs

    return show_jobs(magics, args)


def matches(pattern: str, text: str) -> bool:
    """``pattern`` (a glob when it has ``*?[``, else a substring) found in ``text``."""
    if any(char in pattern for char in "*?["):
        return fnmatch.fnmatch(text, pattern)
    return pattern in text


def is_replay(client: Client) -> bool:
    """Whether ``client`` replays a recording (it runs no jobs)."""
    from ..recordings import ReplayClient

    return isinstance(client, ReplayClient)


COMMANDS: dict[str, Callable[[ComfyMagics, Any], Any]] = {
    "connect": comfy_connect,
    "record": comfy_record,
    "replay": comfy_replay,
    "status": comfy_status,
    "queue": comfy_queue,
    "cancel": comfy_cancel,
    "interrupt": comfy_interrupt,
    "upload": comfy_upload,
    "nodes": comfy_nodes,
    "models": comfy_models,
    "jobs": comfy_jobs,
}

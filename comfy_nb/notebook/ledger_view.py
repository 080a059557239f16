"""``%comfy jobs``: the job ledger (:mod:`comfy_nb.ledger`) in a cell, as a table of the jobs
this folder's notebooks submitted to the session's server (id, label, when, status, outputs:
links to the files the notebook saved, else their names), and ``%comfy jobs --attach ID`` (a
unique prefix of the id will do): a live progress panel for a job still running, the outputs
of one that ended.

Owns: the table and what attaching shows. Must not: read or write the ledger file itself (the
ledger does), or speak HTTP (the client does).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from .. import ledger
from ..client import ComfyError, JobStatus
from .commands import is_replay, show
from .display import href
from .progress import StaticNote

if TYPE_CHECKING:
    from .magics import ComfyMagics

__all__ = ["JobsTable", "comfy_jobs"]

LISTED = 20  # jobs the table shows
OUTPUT_WAIT = 30.0  # seconds to read the outputs of an ended job, at most


class JobsTable:
    """Rows of ledger jobs, as text and as an HTML table whose outputs are links."""

    columns = ("job", "label", "submitted", "status", "outputs")

    def __init__(self, rows: list[tuple[str, str, str, str, list[tuple[str, str | None]]]],
                 caption: str) -> None:
        self.rows = rows  # ..., [(name, link or None)]
        self.caption = caption

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._html()}

    def __repr__(self) -> str:
        if not self.rows:
            return self.caption
        table = [list(self.columns)] + [[*row[:4], ", ".join(name for name, _ in row[4])]
                                        for row in self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(self.columns))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                 for row in table]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join([self.caption, *lines])

    def _html(self) -> str:
        esc = html.escape
        caption = f"<div>{esc(self.caption)}</div>"
        if not self.rows:
            return caption
        head = "".join(f"<th>{esc(c)}</th>" for c in self.columns)
        body = []
        for *cells, outputs in self.rows:
            links = ", ".join(f"<a href=\"{esc(link)}\" target=\"_blank\">{esc(name)}</a>"
                              if link else esc(name) for name, link in outputs)
            body.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in cells)
                        + f"<td>{links}</td></tr>")
        return (f"{caption}<table class=\"comfy-nb-table\"><tr>{head}</tr>{''.join(body)}"
                "</table>")


def comfy_jobs(magics: ComfyMagics, args: Any) -> Any:
    """``%comfy jobs`` and ``%comfy jobs --attach ID``."""
    if args.values:
        raise UsageError("%comfy jobs (the table) or %comfy jobs --attach ID")
    client = magics.session_client()
    if is_replay(client):
        raise UsageError("this session replays a recording and runs no jobs: %comfy connect "
                         "to a server to see its jobs")
    if args.attach:
        try:
            job = ledger.find(args.attach, client)
        except LookupError as exc:
            raise UsageError(str(exc)) from None
        if not job.known:
            show(StaticNote(f"comfy_nb: job {job.id} ({job.label or 'no label'}): "
                            f"{job.problem or 'the server does not know it'}",
                            "comfy-nb-error"))
            return None
        return magics.attach(job)
    found = ledger.jobs(client, limit=LISTED)
    rows = [(job.id, job.label, job.submitted.strftime("%Y-%m-%d %H:%M:%S"),
             job.status.value, _outputs(job)) for job in found]
    where = ledger.ledger_path()
    caption = (f"jobs submitted from here to {client.url} (newest first; %comfy jobs --attach "
               f"ID follows one)" if rows else
               "the job ledger is off (COMFY_NB_JOBS=off)" if where is None else
               f"no job of {where} was submitted to {client.url}")
    show(JobsTable(rows, caption))
    return None


def _outputs(job: ledger.LedgerJob) -> list[tuple[str, str | None]]:
    """The job's saved files as links, else the names of its outputs (once it succeeded)."""
    if job.saved:
        return [(Path(path).name, href(Path(path))) for path in job.saved]
    if job.status is not JobStatus.SUCCEEDED:
        return []
    try:
        result = job.wait(OUTPUT_WAIT)
    except (ComfyError, RuntimeError):
        return []
    return [(file.filename, None) for file in result.files]

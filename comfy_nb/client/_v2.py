"""Comfy API v2 (``openapi-v2.yaml``): the third dialect, :class:`V2Dialect`.

Owns: the ``/api/v2`` routes, the v2 status vocabulary mapped onto :class:`JobStatus` (with
``expired`` confirmed before it is believed: comfy-api-proxy reports it, falsely, for a job that
finishes between its two reads of ComfyUI), a job's outputs (asset ids and links) as the
``{node: {"images": [...]}}`` outputs every Result reads, and the asset behind each such file
(for downloads), the v2 error envelope ``{"error": {"code", "message", "details"}}`` as the
errors of :mod:`comfy_nb.errors`, cancelling with a truthful answer, and the job listing used
as the queue and to find a submission whose answer was lost (by its ``metadata`` marker).

Must not: send anything but what the spec (or the proxy, for ``metadata`` and the job list)
takes; hold a key (the transport adds it); post a submission (that is
:mod:`comfy_nb.client._v2_submit`) or upload bytes (:mod:`comfy_nb.client._v2_assets`).
One instance per connection: it remembers the assets of the outputs it has seen.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..errors import (
    ComfyError,
    ExecutionFailed,
    FeatureUnavailable,
    NotFoundError,
    Problem,
    RequestError,
    WorkflowError,
    WorkflowInvalid,
)
from ._dialects import (
    SUBMISSION_MARK,
    Dialect,
    JobSnapshot,
    JobStatus,
    QueueEntry,
    Requester,
    job_path,
)

log = logging.getLogger("comfy_nb")

PREFIX = "/api/v2"
HEALTH = PREFIX + "/health"
JOBS = PREFIX + "/jobs"
LIST_LIMIT = 100  # the most jobs one listing may ask for (the proxy refuses more)
LOOKUP_WINDOW = 20  # newest jobs searched for a submission whose answer was lost

V2_STATES: dict[str, JobStatus] = {
    "queued": JobStatus.QUEUED,
    "running": JobStatus.RUNNING,
    "canceling": JobStatus.RUNNING,  # asked to stop; not over yet
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "canceled": JobStatus.CANCELLED,
}
#: the terminal :class:`JobStatus` values as v2 spells them
V2_OUTCOMES = {JobStatus.SUCCEEDED: "succeeded", JobStatus.FAILED: "failed",
               JobStatus.CANCELLED: "canceled"}
#: terminal states a server is known to report falsely for a moment: read again before believing
RACY_TERMINAL = frozenset({"expired"})
#: seconds between the reads that confirm a racy terminal state (it must hold on every one)
CONFIRM_DELAYS = (0.05, 0.15, 0.4)
#: v2 output types -> the ComfyUI output key a Result reads them under
OUTPUT_KEYS = {"image": "images", "video": "video", "audio": "audio", "latent": "latents",
               "text": "files", "file": "files"}


def v2_status(raw: str) -> JobStatus:
    """A v2 status as :class:`JobStatus`; ``expired`` (the job is gone) as UNKNOWN, and a
    value the spec does not know as still running (poll until a known terminal value)."""
    if raw == "expired":
        return JobStatus.UNKNOWN
    return V2_STATES.get(raw, JobStatus.RUNNING)


def envelope(body: Any) -> tuple[str, str, dict[str, Any]]:
    """(code, message, details) of a v2 error body; empty when it is not an envelope."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", "", {}
    details = error.get("details")
    return (str(error.get("code") or ""), str(error.get("message") or ""),
            details if isinstance(details, dict) else {})


def submission_error(exc: RequestError) -> ComfyError:
    """The error a refused v2 submission means: ``invalid_workflow`` as
    :class:`WorkflowInvalid` (ComfyUI's node errors as its table), ``workflow_format_ui`` and
    ``missing_asset`` as :class:`WorkflowError` saying what to do; anything else unchanged."""
    code, message, details = envelope(exc.body)
    if code == "invalid_workflow":
        problems = problems_from(details.get("node_errors"), message)
        return WorkflowInvalid(problems)
    if code == "workflow_format_ui":
        return WorkflowError("the server takes API-format workflows only (this one is in the "
                             "editor's format): export it with 'Export (API)', or load it "
                             "with comfy_nb.Workflow, which converts it where node definitions "
                             "are available")
    if code == "missing_asset":
        missing = details.get("missing_ids")
        which = f" ({', '.join(map(str, missing))})" if isinstance(missing, list) else ""
        return WorkflowError(f"the workflow names uploaded files the server does not have"
                             f"{which}: upload them again (client.upload_image)")
    return exc


def problems_from(node_errors: Any, message: str) -> list[Problem]:
    """ComfyUI's ``node_errors`` (as the v2 envelope carries them) as table rows; the
    envelope's message alone when there are none (an unknown node class, say)."""
    problems: list[Problem] = []
    if isinstance(node_errors, dict):
        for node_id, entry in node_errors.items():
            if not isinstance(entry, dict):
                continue
            class_type = str(entry.get("class_type") or "") or None
            for error in entry.get("errors") or []:
                if not isinstance(error, dict):
                    continue
                extra = error.get("extra_info")
                name = extra.get("input_name") if isinstance(extra, dict) else None
                problems.append(Problem(
                    node_id=str(node_id), class_type=class_type,
                    input_name=str(name) if name else None,
                    type=str(error.get("type") or "invalid_workflow"),
                    message=str(error.get("message") or ""),
                    details=str(error.get("details") or "")))
    if not problems:
        problems.append(Problem(node_id=None, class_type=None, input_name=None,
                                type="invalid_workflow", message=message or
                                "the server refused the workflow"))
    return problems


class V2Dialect(Dialect):
    """A Comfy API v2 server (comfy-api-proxy, Comfy Cloud's v2 surface)."""

    name = "v2"
    honours_prompt_id = False  # the server names the job; a lost answer is found by marker

    def __init__(self) -> None:
        #: (filename, subfolder, type) of an output as a Result names it -> its asset id
        self.assets: dict[tuple[str, str, str], str] = {}
        #: uploaded file name -> asset id, for ``core/ASSET`` references in submissions
        self.uploads: dict[str, str] = {}
        self._cancel_claimed: set[str] = set()  # the server said it was cancelling these
        self._told: set[str] = set()

    def ws_url(self, base_url: str, client_id: str, api_key: str | None) -> str:
        raise FeatureUnavailable("Comfy API v2 has no websocket: events come from "
                                 "/api/v2/jobs/{id}/events")

    # -- submitting --------------------------------------------------------------------------

    def submit_body(self, workflow: dict[str, Any], prompt_id: str | None, client_id: str,
                    extra_data: dict[str, Any] | None, front: bool) -> dict[str, Any]:
        """``{"workflow", "extra_data", "metadata"}``: the marker of the submission rides in
        ``metadata`` (an opaque label); ``extra_data`` is closed in v2 (only
        ``api_key_comfy_org``), so anything else in it is refused here, before sending."""
        extra = dict(extra_data or {})
        marker = extra.pop(SUBMISSION_MARK, None)
        unknown = sorted(key for key in extra if key != "api_key_comfy_org")
        if unknown:
            raise WorkflowError(f"Comfy API v2 takes only api_key_comfy_org in extra_data, not "
                                f"{', '.join(map(repr, unknown))}: leave those out")
        if prompt_id is not None:
            raise WorkflowError("a Comfy API v2 server names its jobs itself: submit without "
                                "prompt_id")
        body: dict[str, Any] = {"workflow": self.with_asset_refs(workflow)}
        if extra:
            body["extra_data"] = extra
        if marker is not None:
            body["metadata"] = f"comfy_nb:{marker}"
        return body

    def with_asset_refs(self, workflow: dict[str, Any]) -> dict[str, Any]:
        """``workflow`` with each input naming a file this client uploaded as a ``core/ASSET``
        reference to it (the v2 way to name an input file)."""
        if not self.uploads:
            return workflow
        changed: dict[str, Any] = {}
        for node_id, node in workflow.items():
            inputs = node.get("inputs") if isinstance(node, dict) else None
            if not isinstance(inputs, dict):
                changed[node_id] = node
                continue
            new = {name: ({"__type": "core/ASSET",
                           "info": {"id": self.uploads[value], "file_path": value}}
                          if isinstance(value, str) and value in self.uploads else value)
                   for name, value in inputs.items()}
            changed[node_id] = {**node, "inputs": new}
        return changed

    # -- reading jobs ------------------------------------------------------------------------

    async def read_job(self, http: Requester, prompt_id: str) -> dict[str, Any] | None:
        """The job object, or None when the server does not know it (404)."""
        try:
            response = await http.request("GET", f"{JOBS}/{job_path(prompt_id)}",
                                          what="reading the job")
        except NotFoundError:
            return None
        body = response.json()
        return body if isinstance(body, dict) else None

    async def snapshot(self, http: Requester, prompt_id: str) -> JobSnapshot:
        """The job's state. A racy terminal state (``expired``) is read again, and believed
        only if every read in :data:`CONFIRM_DELAYS` says the same; then the job is gone
        (UNKNOWN: followed a few more times, then lost)."""
        body = await self.read_job(http, prompt_id)
        for delay in CONFIRM_DELAYS:
            if body is None or str(body.get("status")) not in RACY_TERMINAL:
                break
            log.debug("comfy_nb: job %s reads %s; confirming", prompt_id, body.get("status"))
            await asyncio.sleep(delay)
            body = await self.read_job(http, prompt_id)
        if body is None:
            return JobSnapshot(JobStatus.UNKNOWN)
        snap = self.snapshot_of(prompt_id, body)
        if snap.status.terminal and prompt_id in self._cancel_claimed:
            self._cancel_claimed.discard(prompt_id)
            if snap.status is not JobStatus.CANCELLED:
                self._tell(prompt_id, f"comfy_nb: the server said it was cancelling job "
                           f"{prompt_id}, but the job went on to {snap.status.value}: the "
                           "server did not cancel it")
        return snap

    def snapshot_of(self, prompt_id: str, body: dict[str, Any]) -> JobSnapshot:
        """A job object as a :class:`JobSnapshot` (outputs as a Result reads them)."""
        status = v2_status(str(body.get("status", "")))
        error = body.get("error")
        position = body.get("queue_position")
        return JobSnapshot(
            status,
            outputs=self.outputs_of(body.get("outputs")),
            error=failure_of(prompt_id, error) if isinstance(error, dict) else None,
            position=position if isinstance(position, int) else
            (0 if status is JobStatus.RUNNING else None))

    def outputs_of(self, outputs: Any) -> dict[str, Any]:
        """v2 outputs (assets) as ComfyUI's ``{node: {key: [file, ...]}}``; each file's asset
        is remembered for :meth:`asset_of`."""
        found: dict[str, Any] = {}
        for output in outputs if isinstance(outputs, list) else []:
            entry = self.file_of(output)
            if entry is not None:
                key, item = entry
                node = found.setdefault(str(output.get("node_id") or ""), {})
                node.setdefault(key, []).append(item)
        return found

    def file_of(self, output: Any) -> tuple[str, dict[str, str]] | None:
        """(output key, ``{"filename", "subfolder", "type"}``) of one v2 output, remembered."""
        if not isinstance(output, dict):
            return None
        asset, name = output.get("id"), output.get("name")
        if not isinstance(asset, str) or not asset or not isinstance(name, str) or not name:
            return None
        self.assets[(name, "", "output")] = asset
        key = OUTPUT_KEYS.get(str(output.get("type") or "file"), "files")
        return key, {"filename": name, "subfolder": "", "type": "output"}

    def asset_of(self, params: dict[str, str]) -> str:
        """The asset id of an output file named by its ``/view`` parameters."""
        found = self.assets.get((params.get("filename", ""), params.get("subfolder", ""),
                                 params.get("type", "")))
        if found is None:
            raise NotFoundError(f"{params.get('filename')!r} is not an output this client has "
                                "seen on the v2 server: read it from the job's Result",
                                status=404)
        return found

    async def find_submission(self, http: Requester, prompt_id: str | None, marker: str | None,
                              skip: set[str], since: float) -> str | None:
        """Among the newest jobs, the one whose ``metadata`` is the submission's marker."""
        if marker is None:
            return None
        for job in await self._list(http, {"limit": LOOKUP_WINDOW}):
            job_id = job.get("id")
            if (isinstance(job_id, str) and job_id not in skip
                    and job.get("metadata") == f"comfy_nb:{marker}"):
                return job_id
        return None

    async def _list(self, http: Requester, params: dict[str, Any]) -> list[dict[str, Any]]:
        """``GET /api/v2/jobs`` (comfy-api-proxy's listing; not in the spec)."""
        try:
            response = await http.request("GET", JOBS, params=params, what="listing jobs")
        except NotFoundError:
            raise FeatureUnavailable("this Comfy API v2 server does not list jobs (GET "
                                     "/api/v2/jobs): follow a job by its id instead") from None
        body = response.json()
        jobs = body.get("jobs") if isinstance(body, dict) else None
        return [job for job in jobs if isinstance(job, dict)] if isinstance(jobs, list) else []

    async def queue(self, http: Requester) -> list[QueueEntry]:
        live = await self._list(http, {"status": "queued,running", "limit": LIST_LIMIT})
        running = [job for job in live if job.get("status") == "running"]
        waiting = sorted((job for job in live if job.get("status") == "queued"),
                         key=lambda job: (job.get("queue_position") or 0))
        entries = [QueueEntry(str(job["id"]), 0, True, None) for job in running]
        entries += [QueueEntry(str(job["id"]), n, False, None)
                    for n, job in enumerate(waiting, 1)]
        return entries

    async def recent_jobs(self, http: Requester, limit: int) -> list[dict[str, Any]]:
        jobs = await self._list(http, {"limit": max(1, min(limit, LIST_LIMIT))})
        return [{"id": str(job.get("id")), "status": (v2_status(str(job.get("status")))
                                                       .value)} for job in jobs]

    # -- cancelling --------------------------------------------------------------------------

    async def cancel(self, http: Requester, prompt_id: str) -> bool:
        """Ask the server to cancel; True only if it says it is cancelling (or has cancelled)
        the job, and still says so when asked again. comfy-api-proxy over a ComfyUI without a
        cancel route answers ``canceling`` (or ``queued``) and lets the job run on: that is
        reported (a warning) and answered False."""
        response = await http.request("POST", f"{JOBS}/{job_path(prompt_id)}/cancel",
                                      retry_unsafe=True, what="cancelling the job")
        body = response.json()
        status = str(body.get("status", "")) if isinstance(body, dict) else ""
        if status == "canceled":
            return True
        if status in ("succeeded", "failed", "expired"):
            return False  # over already: nothing to cancel
        if status == "canceling":
            again = await self.read_job(http, prompt_id)
            status = str(again.get("status", "")) if again else "expired"
            if status in ("canceling", "canceled"):
                if status == "canceling":
                    self._cancel_claimed.add(prompt_id)
                return True
        self._tell(prompt_id, f"comfy_nb: the server did not cancel job {prompt_id}: asked to, "
                   f"it still reports it {status or 'unchanged'}, so it runs on (this server "
                   "cannot cancel jobs)")
        return False

    async def interrupt(self, http: Requester, prompt_id: str | None) -> None:
        targets = [prompt_id] if prompt_id else [
            entry.prompt_id for entry in await self.queue(http) if entry.running]
        for target in targets:
            await self.cancel(http, target)

    async def delete_pending(self, http: Requester, prompt_ids: list[str]) -> None:
        for prompt_id in prompt_ids:
            await self.cancel(http, prompt_id)

    async def clear_queue(self, http: Requester) -> None:
        await self.delete_pending(http, [e.prompt_id for e in await self.queue(http)
                                         if not e.running])

    async def models(self, http: Requester, folder: str | None) -> list[str]:
        """The v1 model lists of the same origin, where the server has them."""
        try:
            await http.request("GET", self.models_route, what="listing models")
        except RequestError as exc:
            if exc.status not in (404, 405):
                raise
            raise FeatureUnavailable(unavailable("model lists (client.models)")) from None
        return await super().models(http, folder)

    def _tell(self, prompt_id: str, message: str) -> None:
        """Warn once per job and message."""
        if message not in self._told:
            self._told.add(message)
            log.warning("%s", message)


def unavailable(what: str) -> str:
    """The message for something a v2 server without the v1 routes does not offer."""
    return (f"{what} need the server's node definitions or v1 routes, which this Comfy API v2 "
            "server does not serve (no /api/object_info on the same origin): unavailable here. "
            "Workflows still run, and the server checks them when they are submitted")


def failure_of(prompt_id: str, error: dict[str, Any]) -> ExecutionFailed:
    """A v2 ``job.error`` as :class:`ExecutionFailed`."""
    traceback = error.get("traceback")
    return ExecutionFailed(
        prompt_id=prompt_id, node_id=str(error.get("node_id") or ""),
        node_type=str(error.get("class_type") or ""),
        exception_type=str(error.get("code") or ""),
        exception_message=str(error.get("message") or ""),
        traceback=traceback.splitlines(keepends=True) if isinstance(traceback, str) else [])

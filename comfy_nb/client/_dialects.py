"""What differs between a local ComfyUI server and Comfy Cloud, and nothing else: route prefixes,
the websocket URL, how a job's state is read (local ``/history`` + ``/queue``; Cloud
``/api/jobs/{id}``), the status vocabularies mapped onto one :class:`JobStatus`, cancelling, the
queue's tuple layouts, and how a submission whose answer was lost is found again (local ComfyUI
uses the ``prompt_id`` the client sends; Cloud is not known to, so the job is looked for by a
marker in ``extra_data``). Both dialects use the ``/api`` routes, which local ComfyUI also serves.
A job id goes into a URL path only through :func:`job_path`, which refuses any id that could
address another endpoint.
"""

from __future__ import annotations

import asyncio
import enum
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import ExecutionFailed, InvalidJobId, NotFoundError

SUBMISSION_MARK = "comfy_nb_submission"  # extra_data key naming one submission (Cloud)
LOOKUP_WINDOW = 20  # newest jobs of the account searched for a lost submission (Cloud)
CLOCK_SKEW = 300.0  # seconds a server's clock may be behind the client's (job create times)


class JobStatus(str, enum.Enum):
    """One status vocabulary for both servers."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # not (or no longer) known to the server

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


# Cloud's raw states (``/api/job/{id}/status``), its ``/api/jobs`` states, and v2 spellings.
CLOUD_STATES: dict[str, JobStatus] = {
    **dict.fromkeys(["submitted", "queued_limited", "queued_waiting", "allocated", "preparing",
                     "pending_execution", "waiting_to_dispatch", "pending", "queued"],
                    JobStatus.QUEUED),
    **dict.fromkeys(["executing", "executed", "in_progress", "running"], JobStatus.RUNNING),
    **dict.fromkeys(["success", "completed", "succeeded"], JobStatus.SUCCEEDED),
    **dict.fromkeys(["error", "non_retryable_error", "retryable_error", "erroring", "lost",
                     "failed"], JobStatus.FAILED),
    **dict.fromkeys(["cancelled", "canceled", "cancel_requested", "cancel_pending",
                     "cancelling_preparing", "canceling"], JobStatus.CANCELLED),
}


def cloud_status(raw: str) -> JobStatus:
    """Map any Cloud status spelling; unknown values count as still running (the docs advise
    polling until a known terminal value)."""
    return CLOUD_STATES.get(raw, JobStatus.RUNNING)


@dataclass
class JobSnapshot:
    """A job's state as the server's REST endpoints report it (the authority)."""

    status: JobStatus
    outputs: dict[str, Any] = field(default_factory=dict)
    error: ExecutionFailed | None = None
    interrupted_at: str | None = None
    position: int | None = None  # 0 = running, 1 = next, ...
    workflow: dict[str, Any] | None = None


@dataclass
class QueueEntry:
    prompt_id: str
    position: int  # 0 = running
    running: bool
    workflow: dict[str, Any] | None


class Requester(Protocol):
    """The part of the transport the dialects use."""

    async def request(self, method: str, path: str, *, params: Any = None, json: Any = None,
                      files: Any = None, data: Any = None, retry_unsafe: bool = False,
                      what: str | None = None, ok_statuses: Any = (),
                      headers: Any = None) -> Any: ...


def job_path(job_id: str) -> str:
    """``job_id`` as one URL path segment, every reserved character escaped. An id that could
    still address another endpoint (empty, only dots, ``/``, ``\\`` or ``%`` that a server may
    decode before routing, control characters) raises :class:`InvalidJobId`."""
    if (not isinstance(job_id, str) or not job_id.strip(".") or len(job_id) > 256
            or any(c in "/\\%" or not c.isprintable() for c in job_id)):
        shown = repr(job_id) if len(repr(job_id)) <= 80 else repr(job_id)[:77] + "..."
        raise InvalidJobId(f"{shown} cannot be a job id (it could address another endpoint): "
                           "use the id submit() or client.jobs() gave")
    return urllib.parse.quote(job_id, safe="")


def failure_from(prompt_id: str, data: dict[str, Any]) -> ExecutionFailed:
    return ExecutionFailed(
        prompt_id=prompt_id,
        node_id=str(data.get("node_id", "")),
        node_type=str(data.get("node_type", "")),
        exception_type=str(data.get("exception_type", "")),
        exception_message=str(data.get("exception_message", "")),
        traceback=[str(line) for line in data.get("traceback", []) or []],
    )


class Dialect:
    """Shared behaviour; subclasses fill in what differs."""

    name = ""
    pending_in_heap_order = False
    honours_prompt_id = False  # the server makes a client-sent prompt_id the job's id

    def ws_url(self, base_url: str, client_id: str, api_key: str | None) -> str:
        scheme = "wss" if base_url.startswith("https") else "ws"
        host = base_url.split("://", 1)[1]
        query = {"clientId": client_id}
        if api_key and self.name == "cloud":
            query["token"] = api_key
        return f"{scheme}://{host}/ws?{urllib.parse.urlencode(query)}"

    def submit_body(self, workflow: dict[str, Any], prompt_id: str | None, client_id: str,
                    extra_data: dict[str, Any] | None, front: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": workflow, "client_id": client_id}
        if prompt_id is not None:
            body["prompt_id"] = prompt_id
        if extra_data:
            body["extra_data"] = extra_data
        if front and self.name == "local":
            body["front"] = True
        return body

    async def snapshot(self, http: Requester, prompt_id: str) -> JobSnapshot:
        raise NotImplementedError

    async def find_submission(self, http: Requester, prompt_id: str | None, marker: str | None,
                              skip: set[str], since: float) -> str | None:
        """The id of the job of a submission whose answer was lost: it was sent with
        ``prompt_id`` (where the server honours it) or with ``marker`` in ``extra_data``, at
        ``since`` (``time.time()``). None when it was not found; jobs in ``skip`` are known not
        to be it. Raises :class:`ComfyError` when the server cannot be asked."""
        raise NotImplementedError

    async def queue(self, http: Requester) -> list[QueueEntry]:
        """Running jobs (position 0), then pending ones in the order they will run."""
        body = (await http.request("GET", "/api/queue", what="reading the queue")).json()
        entries = [QueueEntry(item[1], 0, True, item[2]) for item in body.get("queue_running", [])]
        pending = body.get("queue_pending", [])
        if self.pending_in_heap_order:  # local: heap order; they run by ascending number
            pending = sorted(pending, key=lambda item: (item[0], item[1]))
        entries += [QueueEntry(item[1], n, False, item[2]) for n, item in enumerate(pending, 1)]
        return entries

    async def cancel(self, http: Requester, prompt_id: str) -> bool:
        raise NotImplementedError

    async def cancel_many(self, http: Requester, prompt_ids: list[str]) -> list[str]:
        """Cancel several jobs; the ids of those that were live."""
        cancelled = await asyncio.gather(*(self.cancel(http, pid) for pid in prompt_ids))
        return [pid for pid, live in zip(prompt_ids, cancelled, strict=True) if live]

    async def interrupt(self, http: Requester, prompt_id: str | None) -> None:
        raise NotImplementedError

    async def delete_pending(self, http: Requester, prompt_ids: list[str]) -> None:
        await http.request("POST", "/api/queue", json={"delete": prompt_ids},
                           what="deleting queued jobs")

    async def clear_queue(self, http: Requester) -> None:
        await http.request("POST", "/api/queue", json={"clear": True},
                           what="clearing the queue")

    async def recent_jobs(self, http: Requester, limit: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    models_route = "/api/models"

    async def models(self, http: Requester, folder: str | None) -> list[str]:
        """The model folders (``folder`` None), or the files in one (empty when the server has
        no such folder). Local answers names; Cloud answers ``{"name": ...}`` objects."""
        path = self.models_route
        if folder is not None:
            path += "/" + urllib.parse.quote(folder, safe="")
        response = await http.request("GET", path, ok_statuses=(404,),
                                      what="listing models" if folder is None
                                      else f"listing the models in {folder}")
        if response.status == 404:
            return []
        return [str(item.get("name") if isinstance(item, dict) else item)
                for item in response.json() if isinstance(item, (dict, str))]


class LocalDialect(Dialect):
    """A local ComfyUI server (as recorded from 0.3.64)."""

    name = "local"
    pending_in_heap_order = True
    honours_prompt_id = True  # as recorded: used as sent (even when sent twice: it runs twice)

    async def snapshot(self, http: Requester, prompt_id: str) -> JobSnapshot:
        response = await http.request("GET", f"/api/history/{job_path(prompt_id)}",
                                      what="reading the job's history")
        entry = response.json().get(prompt_id)
        if entry is None:  # queued, running, or unknown: history is filled only at the end
            for item in await self.queue(http):
                if item.prompt_id == prompt_id:
                    status = JobStatus.RUNNING if item.running else JobStatus.QUEUED
                    return JobSnapshot(status, position=item.position, workflow=item.workflow)
            return JobSnapshot(JobStatus.UNKNOWN)
        return self.snapshot_from_history(prompt_id, entry)

    async def find_submission(self, http: Requester, prompt_id: str | None, marker: str | None,
                              skip: set[str], since: float) -> str | None:
        """By its id: in the queue while it waits or runs, in history once it ended (until
        the server restarts or history is cleared)."""
        if prompt_id is None:
            return None
        known = await self.snapshot(http, prompt_id)
        return prompt_id if known.status is not JobStatus.UNKNOWN else None

    @staticmethod
    def snapshot_from_history(prompt_id: str, entry: dict[str, Any]) -> JobSnapshot:
        status = entry.get("status") or {}
        outputs = entry.get("outputs") or {}
        prompt = entry.get("prompt")
        workflow = prompt[2] if isinstance(prompt, list) and len(prompt) > 2 else None
        if status.get("status_str") == "success":
            return JobSnapshot(JobStatus.SUCCEEDED, outputs=outputs, workflow=workflow)
        for event, data in status.get("messages", []):
            if event == "execution_interrupted":
                return JobSnapshot(JobStatus.CANCELLED, outputs=outputs, workflow=workflow,
                                   interrupted_at=data.get("node_id"))
            if event == "execution_error":
                return JobSnapshot(JobStatus.FAILED, outputs=outputs, workflow=workflow,
                                   error=failure_from(prompt_id, data))
        return JobSnapshot(JobStatus.FAILED, outputs=outputs, workflow=workflow)

    async def cancel(self, http: Requester, prompt_id: str) -> bool:
        return bool(await self.cancel_many(http, [prompt_id]))

    async def cancel_many(self, http: Requester, prompt_ids: list[str]) -> list[str]:
        """The pending ones are removed first, in one request (one by one, the next of them
        could start while another is interrupted); then those running are interrupted, read
        again after the removal, so one that started between the first read and the removal is
        stopped too. ``/interrupt {"prompt_id"}`` stops only that job, and only if it runs."""
        wanted = set(prompt_ids)
        found = [item for item in await self.queue(http) if item.prompt_id in wanted]
        pending = [item.prompt_id for item in found if not item.running]
        running = [item.prompt_id for item in found if item.running]
        if pending:
            await self.delete_pending(http, pending)
            running = [item.prompt_id for item in await self.queue(http)
                       if item.running and item.prompt_id in wanted]
        for prompt_id in running:
            await self.interrupt(http, prompt_id)
        return [item.prompt_id for item in found]

    async def interrupt(self, http: Requester, prompt_id: str | None) -> None:
        body = {"prompt_id": prompt_id} if prompt_id else {}
        await http.request("POST", "/api/interrupt", json=body, what="interrupting")

    async def recent_jobs(self, http: Requester, limit: int) -> list[dict[str, Any]]:
        jobs = [{"id": e.prompt_id, "status": (JobStatus.RUNNING if e.running
                                                else JobStatus.QUEUED).value}
                for e in await self.queue(http)]
        history = (await http.request("GET", "/api/history", params={"max_items": limit},
                                      what="reading history")).json()
        for prompt_id, entry in reversed(list(history.items())):
            snap = self.snapshot_from_history(prompt_id, entry)
            jobs.append({"id": prompt_id, "status": snap.status.value})
        return jobs[:limit]


class CloudDialect(Dialect):
    """Comfy Cloud (``openapi-cloud.yaml``)."""

    name = "cloud"
    models_route = "/api/experiment/models"

    async def snapshot(self, http: Requester, prompt_id: str) -> JobSnapshot:
        try:
            response = await http.request("GET", f"/api/jobs/{job_path(prompt_id)}",
                                          what="reading the job")
        except NotFoundError:  # just submitted: not listed yet
            return JobSnapshot(JobStatus.UNKNOWN)
        body = response.json()
        status = cloud_status(str(body.get("status", "")))
        error = body.get("execution_error")
        workflow = body.get("workflow")
        if isinstance(workflow, dict) and isinstance(workflow.get("prompt"), dict):
            workflow = workflow["prompt"]
        position = None
        if status is JobStatus.QUEUED:  # where it waits: from the account's queue
            position = next((e.position for e in await self.queue(http)
                             if e.prompt_id == prompt_id), None)
        return JobSnapshot(
            status,
            outputs=body.get("outputs") or {},
            error=failure_from(prompt_id, error) if isinstance(error, dict) else None,
            position=position,
            workflow=workflow if isinstance(workflow, dict) else None,
        )

    async def find_submission(self, http: Requester, prompt_id: str | None, marker: str | None,
                              skip: set[str], since: float) -> str | None:
        """By ``marker``, among the account's newest :data:`LOOKUP_WINDOW` jobs created since
        the submission (give or take :data:`CLOCK_SKEW`): in the ``extra_data`` of a job's
        ``workflow`` (``/api/jobs/{id}``, as local ComfyUI's jobs API shapes it). The Cloud spec
        promises no ``extra_data`` there, so not finding it proves nothing."""
        if marker is None:
            return None
        body = (await http.request("GET", "/api/jobs", params={"limit": LOOKUP_WINDOW},
                                   what="looking for the submitted job")).json()
        jobs = body.get("jobs") if isinstance(body, dict) else None
        for entry in jobs if isinstance(jobs, list) else []:
            job_id = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(job_id, str) or job_id in skip:
                continue
            created = _seconds(entry.get("create_time"))
            if created is not None and created < since - CLOCK_SKEW:
                break  # newest first: every later one is older still
            try:
                path = f"/api/jobs/{job_path(job_id)}"
                detail = (await http.request("GET", path,
                                             what="looking for the submitted job")).json()
            except (InvalidJobId, NotFoundError):  # not usable, or deleted meanwhile
                continue
            workflow = detail.get("workflow") if isinstance(detail, dict) else None
            extra = workflow.get("extra_data") if isinstance(workflow, dict) else None
            if isinstance(extra, dict) and extra.get(SUBMISSION_MARK) == marker:
                return job_id
        return None

    async def cancel(self, http: Requester, prompt_id: str) -> bool:
        response = await http.request("POST", f"/api/jobs/{job_path(prompt_id)}/cancel",
                                      what="cancelling the job")
        return bool(response.json().get("cancelled"))

    async def interrupt(self, http: Requester, prompt_id: str | None) -> None:
        if prompt_id is not None:  # Cloud's /api/interrupt would stop every running job
            await self.cancel(http, prompt_id)
            return
        await http.request("POST", "/api/interrupt", what="interrupting")

    async def recent_jobs(self, http: Requester, limit: int) -> list[dict[str, Any]]:
        body = (await http.request("GET", "/api/jobs", params={"limit": limit},
                                   what="listing jobs")).json()
        return [{"id": job["id"], "status": cloud_status(job["status"]).value}
                for job in body.get("jobs", [])]


def _seconds(timestamp: Any) -> float | None:
    """A Unix timestamp in seconds, from seconds or milliseconds (Cloud's ``create_time`` is
    documented in one and served in the other)."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        return None
    return timestamp / 1000 if timestamp > 10**11 else float(timestamp)


DIALECTS: dict[str, Dialect] = {"local": LocalDialect(), "cloud": CloudDialect()}

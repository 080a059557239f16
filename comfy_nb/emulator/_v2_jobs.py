"""Jobs of the v2 dialect: ``POST /api/v2/jobs`` (single-use ``Idempotency-Key``, ``core/ASSET``
references, ComfyUI's validation), ``GET /api/v2/jobs`` (list), ``GET /api/v2/jobs/{id}``,
``/workflow`` and ``/cancel``, and :class:`V2Server`, the dialect's state: its jobs, claimed keys,
assets and output ids over the emulator's queue and executor (a job is a local prompt whose
prompt id and client id are the job id).

A job's status is read as comfy-api-proxy 0.1.6 reads it from ComfyUI: history first
(interrupted → canceled, success → succeeded, else failed, with outputs), then the queue
(running, or queued with its 1-based position in ``/queue`` order), else ``expired``.
``started_at`` / ``completed_at`` stay null and a running job's progress is ``{0, 0/0}``, as
recorded. Faults: ``expired_race`` reports a just-finished job ``expired``; ``cancel_noop``
makes cancel answer without cancelling, as the proxy over ComfyUI 0.3.64 does.
"""

from __future__ import annotations

import asyncio
import collections
import json
import mimetypes
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from ._executor import now_ms
from ._local_routes import submit_prompt
from ._server import EmulatorState
from ._v2_assets import AssetBook, OutputIds, resolve_asset_ref
from ._v2_http import RETENTION, error, external_base, is_uuid, iso, now, v2_of

OUTPUT_KINDS = {"images": "image", "gifs": "video", "audio": "audio", "text": "text",
                "files": "file", "latents": "latent"}
TERMINAL = frozenset({"succeeded", "failed", "canceled", "expired"})
STATUSES = frozenset({"queued", "running", "succeeded", "canceling", "canceled", "failed",
                      "expired"})
MAX_KEY_LENGTH = 255
MAX_KEYS = 10_000
MAX_METADATA_BYTES = 1024
PRIORITY_RANGE = (-1_000_000, 1_000_000)
LIST_LIMIT = (1, 100)
DEFAULT_LIST_LIMIT = 50
KEY_REUSED = ("This Idempotency-Key has already been used. Keys are single-use; poll or list "
              "your jobs instead of resubmitting with the same key.")


@dataclass
class V2Job:
    """What the dialect remembers of a job besides the queue: the graph it ran (asset
    references resolved) and the submitter's label and priority."""

    id: str
    workflow: dict[str, Any]
    created_at: datetime
    metadata: str | None
    priority: int | None


class V2Server:
    """State of one v2-dialect server, on top of the emulator's :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.jobs: dict[str, V2Job] = {}
        self.keys: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.canceled: set[str] = set()  # queued jobs a cancel took off the queue
        self.canceling: set[str] = set()  # running jobs being interrupted: read as canceling
        self.assets = AssetBook()
        self.output_ids = OutputIds(secrets.token_bytes(32))
        self.open_streams = 0
        self.stream_tasks: set[asyncio.Task[Any]] = set()  # the handlers of open event streams

    # -- idempotency -------------------------------------------------------------------------

    def claim(self, key: str) -> bool:
        if key in self.keys:
            return False
        self.keys[key] = None
        if len(self.keys) > MAX_KEYS:
            self.keys.popitem(last=False)
        return True

    def release(self, key: str) -> None:
        self.keys.pop(key, None)

    # -- status ------------------------------------------------------------------------------

    def status_of(self, job_id: str, base: str) -> dict[str, Any]:
        """``status``, ``outputs``, ``outputs_reused`` and, by status, ``error``,
        ``progress`` or ``queue_position``; ``unknown`` when the queue never had it."""
        state = self.state
        entry = state.queue.history_entry(job_id)
        if entry is not None and self.just_finished(job_id):  # the expired_race fault
            return {"status": "unknown", "outputs": [], "outputs_reused": False}
        if entry is not None:
            messages = (entry.get("status") or {}).get("messages") or []
            events = [m[0] for m in messages if isinstance(m, list) and len(m) == 2]
            reused = any(m[0] == "execution_cached" and m[1].get("nodes")
                         for m in messages if isinstance(m, list) and len(m) == 2)
            outputs = self.outputs(job_id, entry, base)
            if "execution_interrupted" in events:
                return {"status": "canceled", "outputs": outputs, "outputs_reused": reused}
            if (entry.get("status") or {}).get("status_str", "success") == "success":
                return {"status": "succeeded", "outputs": outputs, "outputs_reused": reused}
            return {"status": "failed", "outputs": outputs, "error": failure(messages),
                    "outputs_reused": reused}
        if any(item.prompt_id == job_id for item in state.queue.running()):
            return {"status": "canceling" if job_id in self.canceling else "running",
                    "outputs": [], "outputs_reused": False,
                    "progress": {"value": 0.0, "nodes_done": 0, "nodes_total": 0}}
        pending = [item.prompt_id for item in state.queue.pending()]
        if job_id in pending:
            return {"status": "queued", "outputs": [], "outputs_reused": False,
                    "queue_position": pending.index(job_id) + 1}
        if job_id in self.canceled:
            return {"status": "canceled", "outputs": [], "outputs_reused": False}
        return {"status": "unknown", "outputs": [], "outputs_reused": False}

    def just_finished(self, job_id: str) -> bool:
        """The ``expired_race`` fault: the job ended less than that many seconds ago."""
        window = self.state.faults.expired_race
        if window <= 0:
            return False
        with self.state.jobs_lock:
            record = self.state.jobs.get(job_id)
            ended = record.execution_end_time if record is not None else None
        return ended is not None and now_ms() - ended < window * 1000

    def outputs(self, job_id: str, entry: dict[str, Any], base: str) -> list[dict[str, Any]]:
        found = []
        for node_id, produced in (entry.get("outputs") or {}).items():
            for key, items in produced.items():
                kind = OUTPUT_KINDS.get(key)
                if kind is None or not isinstance(items, list):
                    continue
                for item in items:
                    if not isinstance(item, dict) or "filename" not in item:
                        continue
                    asset_id = self.output_ids.mint(job_id, item["filename"],
                                                    item.get("subfolder", ""),
                                                    item.get("type", "output"))
                    found.append({
                        "node_id": node_id,
                        "name": item["filename"],
                        "type": kind,
                        "content_type": (mimetypes.guess_type(item["filename"])[0]
                                         or "application/octet-stream"),
                        "size_bytes": 0,
                        "id": asset_id,
                        "hash": None,
                        "url": f"{base}/api/v2/assets/{asset_id}/content",
                        "url_expires_at": iso(now() + RETENTION),
                        "job_id": job_id,
                    })
        return found

    def job_json(self, job_id: str, found: dict[str, Any], base: str) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        created = job.created_at if job is not None else now()
        status = found["status"]
        body: dict[str, Any] = {
            "id": job_id,
            "status": "expired" if status == "unknown" else status,
            "created_at": iso(created),
            "started_at": None,
            "completed_at": None,
            "expires_at": iso(created + RETENTION),
            "queue_position": found.get("queue_position"),
            "progress": found.get("progress"),
            "outputs": found.get("outputs", []),
            "error": found.get("error"),
            "outputs_reused": bool(found.get("outputs_reused")),
            "urls": {
                "self": f"{base}/api/v2/jobs/{job_id}",
                "events": f"{base}/api/v2/jobs/{job_id}/events",
                "cancel": f"{base}/api/v2/jobs/{job_id}/cancel",
            },
        }
        if job is not None and job.metadata is not None:
            body["metadata"] = job.metadata
        if job is not None and job.priority is not None:
            body["priority"] = job.priority
        return body


def failure(messages: list[Any]) -> dict[str, Any]:
    """A failed job's ``error`` from its ``execution_error`` message."""
    for message in messages:
        if isinstance(message, list) and len(message) == 2 and message[0] == "execution_error":
            data = message[1]
            return {"code": "node_execution_error", "message": data.get("exception_message", ""),
                    "node_id": data.get("node_id"), "class_type": data.get("node_type"),
                    "traceback": None}
    return {"code": "node_execution_error", "message": "execution failed", "node_id": None,
            "class_type": None, "traceback": None}


def not_found(job_id: str) -> web.Response:
    return error(404, "not_found", f"No job {job_id}.")


# -- submission ---------------------------------------------------------------------------------


def _label_and_priority(body: dict[str, Any]) -> tuple[str | None, int | None] | web.Response:
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, str):
            return error(422, "invalid_request", "'metadata' must be a string (opaque label).")
        if len(metadata.encode("utf-8")) > MAX_METADATA_BYTES:
            return error(422, "invalid_request",
                         f"'metadata' exceeds {MAX_METADATA_BYTES} UTF-8 bytes.")
    priority = body.get("priority")
    if priority is not None:
        if isinstance(priority, bool) or not isinstance(priority, int):
            return error(422, "invalid_request", "'priority' must be an integer (advisory).")
        low, high = PRIORITY_RANGE
        if not low <= priority <= high:
            return error(422, "invalid_request", f"'priority' must be between {low} and {high}.")
    return metadata, priority


def _extra_data_problem(extra: Any) -> web.Response | None:
    if extra is None:
        return None
    if not isinstance(extra, dict) or set(extra) - {"api_key_comfy_org"}:
        return error(400, "invalid_request",
                     "'extra_data' accepts only the 'api_key_comfy_org' field.")
    if "api_key_comfy_org" in extra and not isinstance(extra["api_key_comfy_org"], str):
        return error(400, "invalid_request", "'extra_data.api_key_comfy_org' must be a string.")
    return None


def _resolve_assets(v2: V2Server, value: Any, missing: list[str]) -> Any:
    """``value`` with every ``core/ASSET`` reference replaced by the input value it names."""
    if isinstance(value, dict) and value.get("__type") == "core/ASSET":
        info = value.get("info")
        if not isinstance(info, dict):
            missing.append("<malformed core/ASSET: missing info>")
            return value
        resolved = resolve_asset_ref(v2, info)
        if resolved is None:
            missing.append(str(info.get("id", "<no id>")))
            return value
        return resolved
    if isinstance(value, dict):
        return {key: _resolve_assets(v2, item, missing) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve_assets(v2, item, missing) for item in value]
    return value


async def submit_job(request: web.Request) -> web.Response:
    v2 = v2_of(request)
    try:
        body = await request.json()
    except ValueError:
        return error(400, "invalid_request", "Body must be JSON.")
    if not isinstance(body, dict):
        return error(400, "invalid_request", "Body must be a JSON object.")
    if body.get("webhook_url") is not None or body.get("inputs") is not None:
        return error(422, "invalid_workflow",
                     "'webhook_url' and 'inputs' are reserved and not accepted.")
    workflow = body.get("workflow")
    if not isinstance(workflow, dict):
        return error(422, "invalid_workflow", "Missing 'workflow' (API-format graph).")
    if isinstance(workflow.get("nodes"), list) and "links" in workflow:
        return error(422, "workflow_format_ui",
                     "This is a UI-export graph. Export the workflow in API format instead.")
    labelled = _label_and_priority(body)
    if isinstance(labelled, web.Response):
        return labelled
    extra = body.get("extra_data")
    refused = _extra_data_problem(extra)
    if refused is not None:
        return refused
    missing: list[str] = []
    resolved = _resolve_assets(v2, workflow, missing)
    if missing:
        return error(422, "missing_asset",
                     f"Unresolvable core/ASSET reference(s): {', '.join(missing)}",
                     missing_ids=missing)
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        if not key or len(key) > MAX_KEY_LENGTH:
            return error(400, "invalid_request",
                         f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters.")
        if not v2.claim(key):
            return error(422, "idempotency_key_reuse", KEY_REUSED)
    job_id = str(uuid.uuid4())
    prompt: dict[str, Any] = {"prompt": resolved, "prompt_id": job_id, "client_id": job_id}
    if extra:
        prompt["extra_data"] = extra
    queued = submit_prompt(v2.state, prompt, account="")
    if queued.status != 200:
        if key:
            v2.release(key)  # nothing was queued: the key may be used again
        answer = json.loads(bytes(queued.body or b"{}"))  # type: ignore[arg-type]
        message = (answer.get("error") or {}).get("message", "Workflow rejected.")
        return error(422, "invalid_workflow", message,
                     node_errors=answer.get("node_errors") or {})
    metadata, priority = labelled
    v2.jobs[job_id] = V2Job(job_id, resolved, now(), metadata, priority)
    found = {"status": "queued", "outputs": [], "outputs_reused": False}
    return web.json_response(v2.job_json(job_id, found, external_base(request)), status=201)


# -- reading and cancelling ---------------------------------------------------------------------


async def list_jobs(request: web.Request) -> web.Response:
    v2 = v2_of(request)
    query = request.rel_url.query
    try:
        limit = int(query.get("limit", str(DEFAULT_LIST_LIMIT)))
    except ValueError:
        return error(400, "invalid_request", "'limit' must be an integer.")
    low, high = LIST_LIMIT
    if not low <= limit <= high:
        return error(400, "invalid_request", f"'limit' must be between {low} and {high}.")
    wanted: set[str] | None = None
    if query.get("status"):
        wanted = {s.strip() for s in query["status"].split(",") if s.strip()}
        unknown = wanted - STATUSES
        if unknown:
            return error(400, "invalid_request",
                         f"Unknown status filter value(s): {', '.join(sorted(unknown))}.")
    base = external_base(request)
    listed: list[dict[str, Any]] = []
    for job in sorted(v2.jobs.values(), key=lambda job: job.created_at, reverse=True):
        if len(listed) >= limit:
            break
        body = v2.job_json(job.id, v2.status_of(job.id, base), base)
        if wanted is None or body["status"] in wanted:
            listed.append(body)
    return web.json_response({"jobs": listed, "truncated": False})


def _known_job(request: web.Request) -> tuple[V2Server, str, str, dict[str, Any]] | web.Response:
    """The server, job id, external base URL and status of the job a request names, or the 404
    for an id that is no UUID or a job the server never had."""
    v2 = v2_of(request)
    job_id = request.match_info["id"]
    if not is_uuid(job_id):
        return not_found(job_id)
    base = external_base(request)
    found = v2.status_of(job_id, base)
    if found["status"] == "unknown" and job_id not in v2.jobs:
        return not_found(job_id)
    return v2, job_id, base, found


async def get_job(request: web.Request) -> web.Response:
    known = _known_job(request)
    if isinstance(known, web.Response):
        return known
    v2, job_id, base, found = known
    return web.json_response(v2.job_json(job_id, found, base))


async def get_workflow(request: web.Request) -> web.Response:
    v2 = v2_of(request)
    job_id = request.match_info["id"]
    if not is_uuid(job_id):
        return not_found(job_id)
    job = v2.jobs.get(job_id)
    if job is None:
        return error(404, "not_found", f"No recoverable workflow for job {job_id}.")
    return web.json_response({"workflow": job.workflow, "format": "api"})


async def cancel_job(request: web.Request) -> web.Response:
    """Cancel: a running job is interrupted (``canceling``, then ``canceled``), a queued one
    leaves the queue (``canceled``); a finished one answers its state. With ``cancel_noop``
    nothing is cancelled and a running job answers ``canceling``, a queued one ``queued``."""
    known = _known_job(request)
    if isinstance(known, web.Response):
        return known
    v2, job_id, base, found = known
    if not v2.state.faults.cancel_noop:
        if found["status"] == "running":
            v2.canceling.add(job_id)  # read as canceling until the interrupt ends it
            v2.state.interrupt(job_id)
        elif found["status"] == "queued" and v2.state.cancel_pending({job_id}):
            v2.canceled.add(job_id)
        found = v2.status_of(job_id, base)
    if found["status"] == "running":
        found["status"] = "canceling"
    return web.json_response(v2.job_json(job_id, found, base))

"""Jobs on the cloud dialect: ``POST /api/prompt``, ``/api/jobs``, ``/api/job/{id}/status``, the
account's queue, interrupt, and history (``POST /api/history``, the deprecated ``history_v2``).

Owns how a job looks through Comfy Cloud's API: its friendly status (``pending``,
``in_progress``, ``completed``, ``failed``, ``cancelled``), the job entry with its outputs and
``execution_error``, paging and filtering, and that an account sees only its own jobs. A
``prompt_id`` in ``POST /api/prompt`` is ignored (the job gets the server's own id) unless
``EmulatorOptions.cloud_honours_prompt_id``; ``/api/jobs/{id}`` shows the job's ``workflow`` as
local ComfyUI's jobs API does, ``{"prompt", "extra_data"}`` (partner keys removed);
``POST /api/history`` deletes finished jobs from history and from ``/api/jobs`` alike.
Validation and execution are the local dialect's
(:func:`~comfy_nb.emulator._local_routes.submit_prompt`).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from . import _local_routes as local
from ._cloud_http import error
from ._requests import prompt_error
from ._server import STATE, EmulatorState, JobRecord

TERMINAL = {"success": "completed", "error": "failed", "cancelled": "cancelled"}
SECRET_EXTRA_DATA = ("api_key_comfy_org", "auth_token_comfy_org")  # never shown back


async def post_prompt(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = await request.json()
    except ValueError:
        return error(400, "invalid_json", "The request body is not valid JSON.")
    if not isinstance(body, dict):
        return error(400, "invalid_request", "The request body must be a JSON object.")
    if state.faults.no_credits:
        return error(402, "insufficient_credits",
                     "Insufficient credits: add credits to your Comfy account.")
    if state.faults.rate_limited:
        return error(429, "rate_limited", "Rate limit exceeded. Please try again later.",
                     **{"Retry-After": "1"})
    prompt_id = body.get("prompt_id") if state.options.cloud_honours_prompt_id else None
    if prompt_id is not None:
        with state.jobs_lock:
            existing = state.jobs.get(str(prompt_id))
        if existing is not None:  # a retried submission: answer it, never run it twice
            return web.json_response({"prompt_id": existing.prompt_id, "number": 0,
                                      "node_errors": {}})
    # number and front are ignored (fair per-user scheduling); clientId means nothing on Cloud
    body = {k: v for k, v in body.items() if k not in ("number", "front", "client_id")}
    if "prompt" in body and not isinstance(body["prompt"], dict):
        return prompt_error("invalid_prompt", "prompt must be an object in API format.",
                            f"prompt is a {type(body['prompt']).__name__}")
    if "prompt" in body and _looks_like_ui_workflow(body["prompt"]):
        return prompt_error(
            "invalid_prompt", "Cannot execute because a node is missing the class_type property.",
            "The workflow is in UI format; export it in API format.")
    prompt_id = str(prompt_id) if prompt_id is not None else str(uuid.uuid4())
    body["prompt_id"] = prompt_id
    response = local.submit_prompt(state, body, account=state.account)
    if response.status != 200:
        return response
    workflow_id = body.get("workflow_id")
    extra_data = body.get("extra_data")
    with state.jobs_lock:
        record = state.jobs.get(prompt_id)
        if record is not None:
            if isinstance(workflow_id, str):
                record.extra["workflow_id"] = workflow_id
            record.extra["extra_data"] = {
                k: v for k, v in (extra_data if isinstance(extra_data, dict) else {}).items()
                if k not in SECRET_EXTRA_DATA}
    return response


def _looks_like_ui_workflow(prompt: dict[str, Any]) -> bool:
    return "nodes" in prompt and "links" in prompt


async def get_prompt(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"exec_info": {"queue_remaining": state.queue.remaining(
        state.account)}})


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _job(state: EmulatorState, job_id: str) -> JobRecord | web.Response:
    with state.jobs_lock:
        record = state.jobs.get(job_id)
    if record is None:
        return error(404, "not_found", f"Job {job_id} not found")
    if record.account != state.account:
        return error(403, "forbidden", "This job belongs to another user")
    return record


def friendly_status(record: JobRecord) -> str:
    if record.raw_status in TERMINAL:
        return TERMINAL[record.raw_status]
    return "in_progress" if record.raw_status == "executing" else "pending"


def _execution_error(record: JobRecord) -> dict[str, Any] | None:
    if record.history is None:
        return None
    for event, data in record.history["status"]["messages"]:
        if event == "execution_error":
            return {
                "node_id": data["node_id"], "node_type": data["node_type"],
                "exception_message": data["exception_message"],
                "exception_type": data["exception_type"], "traceback": data["traceback"],
                "current_inputs": data["current_inputs"], "current_outputs": {},
            }
    return None


def _output_files(outputs: dict[str, Any]) -> list[dict[str, Any]]:
    files = []
    for node_id, output in outputs.items():
        for key, items in output.items():
            if key == "animated" or not isinstance(items, list):
                continue
            for entry in items:
                if isinstance(entry, dict) and "filename" in entry:
                    files.append({**entry, "nodeId": node_id, "mediaType": key})
    return files


def job_entry(record: JobRecord, detail: bool = False) -> dict[str, Any]:
    status = friendly_status(record)
    entry: dict[str, Any] = {"id": record.prompt_id, "status": status,
                             "create_time": record.create_time}
    if isinstance(record.extra.get("workflow_id"), str):
        entry["workflow_id"] = record.extra["workflow_id"]
    terminal = record.raw_status in TERMINAL
    outputs = (record.history or {}).get("outputs", {}) if terminal else {}
    files = _output_files(outputs)
    if terminal:
        entry["outputs_count"] = len(files)
        if files:
            entry["preview_output"] = files[0]
        if record.execution_start_time is not None:
            entry["execution_start_time"] = record.execution_start_time
        entry["execution_end_time"] = record.execution_end_time or record.update_time
    failure = _execution_error(record)
    if failure is not None:
        entry["execution_error"] = failure
    if detail:
        entry["update_time"] = record.update_time
        entry["workflow"] = {"prompt": record.prompt,
                             "extra_data": record.extra.get("extra_data", {})}
        if terminal:
            entry["outputs"] = outputs
            history = record.history or {}
            entry["execution_status"] = history.get("status", {"status_str": "error",
                                                               "completed": False,
                                                               "messages": []})
            entry["execution_meta"] = history.get("meta", {})
    return entry


async def get_job_status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    record = _job(state, request.match_info["job_id"])
    if isinstance(record, web.Response):
        return record
    failure = _execution_error(record)
    message = json.dumps(failure) if failure is not None else None
    if record.raw_status == "cancelled":
        message = None
    return web.json_response({
        "id": record.prompt_id,
        "status": record.raw_status,
        "created_at": _iso(record.create_time),
        "updated_at": _iso(record.update_time or record.create_time),
        "last_state_update": _iso(record.update_time or record.create_time),
        "assigned_inference": "emulated-worker" if record.execution_start_time is not None
        else None,
        "error_message": message,
    })


async def get_jobs(request: web.Request) -> web.Response:
    state = request.app[STATE]
    query = request.rel_url.query
    try:
        offset = int(query.get("offset", "0"))
        limit = int(query.get("limit", "100"))
    except ValueError:
        return error(400, "invalid_parameter", "offset and limit must be integers")
    if offset < 0 or not 1 <= limit <= 1000:
        return error(400, "invalid_parameter", "offset must be >= 0 and limit 1..1000")
    sort_by = query.get("sort_by", "create_time")
    sort_order = query.get("sort_order", "desc")
    if sort_by not in ("create_time", "execution_time") or sort_order not in ("asc", "desc"):
        return error(400, "invalid_parameter",
                     "sort_by is create_time|execution_time, sort_order asc|desc")
    wanted = {s for s in query.get("status", "").split(",") if s}
    output_type = query.get("output_type")
    with state.jobs_lock:
        records = [r for r in state.jobs.values() if r.account == state.account]
    # submission order breaks ties (several jobs can share a create_time millisecond)
    numbered = [(seq, job_entry(r)) for seq, r in enumerate(records)]
    if wanted:
        numbered = [(n, e) for n, e in numbered if e["status"] in wanted]
    if "workflow_id" in query:
        numbered = [(n, e) for n, e in numbered if e.get("workflow_id") == query["workflow_id"]]
    if output_type:
        numbered = [(n, e) for n, e in numbered if e["status"] == "completed"
                    and _has_output_type(state, e["id"], output_type)]

    def sort_key(item: tuple[int, dict[str, Any]]) -> tuple[int, int]:
        seq, entry = item
        if sort_by == "execution_time":
            start, end = entry.get("execution_start_time"), entry.get("execution_end_time")
            return ((end - start) if start is not None and end is not None else -1), seq
        return int(entry["create_time"]), seq

    numbered.sort(key=sort_key, reverse=sort_order == "desc")
    entries = [e for _, e in numbered]
    page = entries[offset: offset + limit]
    return web.json_response({"jobs": page, "pagination": {
        "offset": offset, "limit": limit, "total": len(entries),
        "has_more": offset + len(page) < len(entries)}})


def _has_output_type(state: EmulatorState, job_id: str, output_type: str) -> bool:
    with state.jobs_lock:
        record = state.jobs.get(job_id)
    if record is None:  # deleted meanwhile
        return False
    outputs = (record.history or {}).get("outputs", {})
    extensions = {"image": (".png", ".jpg", ".jpeg", ".webp", ".gif"),
                  "video": (".mp4", ".webm", ".mov"),
                  "audio": (".flac", ".mp3", ".wav", ".opus", ".ogg")}.get(output_type, ())
    return any(f["filename"].lower().endswith(extensions) for f in _output_files(outputs))


async def get_job_detail(request: web.Request) -> web.Response:
    state = request.app[STATE]
    record = _job(state, request.match_info["job_id"])
    if isinstance(record, web.Response):
        return record
    return web.json_response(job_entry(record, detail=True))


def _history_entry(state: EmulatorState, record: JobRecord) -> dict[str, Any] | None:
    """The local-style history entry of a finished job of the account, or None."""
    if record.account != state.account or record.raw_status not in TERMINAL:
        return None
    return state.queue.history_entry(record.prompt_id)


async def get_history_v2(request: web.Request) -> web.Response:
    """Deprecated ``/api/history_v2``: finished jobs, newest first, in the light format
    (the editor workflow removed from ``extra_pnginfo``)."""
    state = request.app[STATE]
    query = request.rel_url.query
    try:
        offset = int(query.get("offset", "0"))
        max_items = int(query["max_items"]) if "max_items" in query else None
    except ValueError:
        return error(400, "invalid_parameter", "max_items and offset must be integers")
    with state.jobs_lock:
        records = sorted(state.jobs.values(), key=lambda r: r.create_time, reverse=True)
    history = []
    for record in records:
        entry = _history_entry(state, record)
        if entry is None:
            continue
        number, prompt_id, _, extra_data, _ = entry["prompt"]
        extra = dict(extra_data)
        if isinstance(extra.get("extra_pnginfo"), dict):
            extra["extra_pnginfo"] = {k: v for k, v in extra["extra_pnginfo"].items()
                                      if k != "workflow"}
        item: dict[str, Any] = {
            "prompt_id": prompt_id, "create_time": record.create_time,
            "prompt": {"priority": number, "prompt_id": prompt_id, "extra_data": extra},
            "outputs": entry["outputs"], "status": entry["status"],
            "meta": entry.get("meta", {}),
        }
        if isinstance(record.extra.get("workflow_id"), str):
            item["workflow_id"] = record.extra["workflow_id"]
        history.append(item)
    end = None if max_items is None else offset + max(0, max_items)
    return web.json_response({"history": history[offset:end]})


async def get_history_v2_item(request: web.Request) -> web.Response:
    """Deprecated ``/api/history_v2/{id}``: 404 until the job has finished."""
    state = request.app[STATE]
    prompt_id = request.match_info["prompt_id"]
    with state.jobs_lock:
        record = state.jobs.get(prompt_id)
    entry = _history_entry(state, record) if record is not None else None
    if entry is None:
        return error(404, "not_found", f"No finished job {prompt_id}")
    number, _, prompt, extra_data, outputs_to_execute = entry["prompt"]
    return web.json_response({prompt_id: {
        "prompt": {"priority": number, "prompt_id": prompt_id, "prompt": prompt,
                   "extra_data": extra_data, "outputs_to_execute": outputs_to_execute},
        "outputs": entry["outputs"], "status": entry["status"], "meta": entry.get("meta", {}),
    }})


async def post_job_cancel(request: web.Request) -> web.Response:
    state = request.app[STATE]
    record = _job(state, request.match_info["job_id"])
    if isinstance(record, web.Response):
        return record
    cancelled = False
    if record.raw_status not in TERMINAL:
        # pending: dequeue it; else (running, or just taken by a worker) interrupt it
        cancelled = bool(state.cancel_pending({record.prompt_id}))
        if not cancelled:
            cancelled = state.interrupt(record.prompt_id)
    return web.json_response({"cancelled": cancelled})


async def get_queue(request: web.Request) -> web.Response:
    state = request.app[STATE]

    def row(position: int, item: Any) -> list[Any]:
        return [position, item.prompt_id, item.prompt, item.outputs_to_execute,
                {"create_time": item.create_time}]

    running = [i for i in state.queue.running() if i.account == state.account]
    pending = sorted((i for i in state.queue.pending() if i.account == state.account),
                     key=lambda i: i.create_time)
    return web.json_response({
        "queue_running": [row(n, i) for n, i in enumerate(running, 1)],
        "queue_pending": [row(n, i) for n, i in enumerate(pending, len(running) + 1)],
    })


async def post_queue(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await _manage_request(request)
    if isinstance(body, web.Response):
        return body
    deleted: list[str] = []
    if body.get("clear"):
        deleted += state.cancel_pending(None)
    if body.get("delete"):
        deleted += state.cancel_pending(set(body["delete"]))
    return web.json_response({"deleted": deleted, "cleared": bool(body.get("clear"))})


async def _manage_request(request: web.Request) -> dict[str, Any] | web.Response:
    """A valid ``QueueManageRequest`` / ``HistoryManageRequest`` body, or the 400 answer."""
    try:
        body = await request.json()
    except ValueError:
        return error(400, "invalid_json", "The request body is not valid JSON.")
    problem = _manage_request_problem(body)
    if problem is not None:
        return error(400, "invalid_request", problem)
    assert isinstance(body, dict)
    return body


def _manage_request_problem(body: Any) -> str | None:
    """Why a ``QueueManageRequest`` / ``HistoryManageRequest`` body is invalid, or None."""
    if not isinstance(body, dict) or set(body) - {"delete", "clear"}:
        return 'Send {"delete": [job ids]} and/or {"clear": true}, nothing else.'
    delete = body.get("delete", [])
    if not isinstance(delete, list) or not all(isinstance(i, str) for i in delete):
        return "delete must be a list of job id strings."
    if not isinstance(body.get("clear", False), bool):
        return "clear must be a boolean."
    return None


async def post_interrupt(request: web.Request) -> web.Response:
    state = request.app[STATE]
    await request.read()
    state.interrupt(None)  # every running job of the account
    return web.Response(status=200)


async def post_history(request: web.Request) -> web.Response:
    """Delete (or clear) finished jobs of the account: from history and from ``/api/jobs``.
    Pending and running jobs are left alone."""
    state = request.app[STATE]
    body = await _manage_request(request)
    if isinstance(body, web.Response):
        return body
    with state.jobs_lock:
        finished = [pid for pid, r in state.jobs.items()
                    if r.account == state.account and r.raw_status in TERMINAL]
        chosen = finished if body.get("clear") else [p for p in body.get("delete", [])
                                                     if p in finished]
        for prompt_id in chosen:
            del state.jobs[prompt_id]
    state.queue.delete_history(chosen)
    return web.Response(status=200)

"""The cloud dialect's application: Comfy Cloud's API per ``openapi-cloud.yaml`` and its
documentation, assembled from its parts, with the websocket and the account and server routes.

Routes live under ``/api`` only; ``X-API-Key`` is required except on the public operations, and
every error the API itself answers is an ``ErrorResponse`` JSON body (``{"code", "message"}``):
both in :mod:`._cloud_http`. Jobs are seen through ``/api/jobs`` and ``/api/job/{id}/status``
(:mod:`._cloud_jobs`); ``POST /api/prompt`` answers a rejected prompt with the local
``{"error", "node_errors"}`` shape. Uploads and ``/api/view``, which redirects (302) to the
separate storage origin, are in :mod:`._cloud_files`. The websocket needs ``token=<key>`` and
broadcasts every job of the account. Execution, validation and files are shared with the local
dialect.
"""

from __future__ import annotations

from aiohttp import web

from . import _local_routes as local
from ._cloud_files import CLOUD_MAX_UPLOAD, get_view, post_upload
from ._cloud_http import Handler, error, json_errors, key_matches, require_api_key
from ._cloud_jobs import (
    get_history_v2,
    get_history_v2_item,
    get_job_detail,
    get_job_status,
    get_jobs,
    get_prompt,
    get_queue,
    post_history,
    post_interrupt,
    post_job_cancel,
    post_prompt,
    post_queue,
)
from ._faults import faults_middleware
from ._server import STATE, EmulatorState
from ._storage import build_storage_app


async def websocket(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if not key_matches(state, request.rel_url.query.get("token")):
        return error(401, "unauthorized", "Invalid or missing token: connect with ?token=<key>.")
    if state.faults.ws_refuse:
        return error(503, "emulated_fault", "websocket refused")
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    conn = state.hub.register(ws, request.rel_url.query.get("clientId", ""), account=state.account)
    try:
        remaining = state.queue.remaining(state.account)
        await state.hub.send_now(conn, "status", {"status": {"exec_info": {
            "queue_remaining": remaining}}, "sid": conn.sid})
        await local.read_client_messages(state, conn, ws)
    finally:
        state.hub.unregister(conn)
    return ws


# -- account and server ---------------------------------------------------------------------


async def get_user(request: web.Request) -> web.Response:
    return web.json_response({"status": "active"})


async def get_system_stats(request: web.Request) -> web.Response:
    stats = local.system_stats(request.app[STATE])
    stats["system"]["cloud_version"] = "comfy_nb-emulator"
    return web.json_response(stats)


async def get_workflow_templates(request: web.Request) -> web.Response:
    return web.json_response({})


async def get_experiment_model_folder(request: web.Request) -> web.StreamResponse:
    response = await local.get_experiment_model_folder(request)
    if response.status == 404:
        return error(404, "not_found", f"No models in folder {request.match_info['folder']}")
    return response


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/api/prompt", post_prompt),
    ("GET", "/api/prompt", get_prompt),
    ("GET", "/api/job/{job_id}/status", get_job_status),
    ("GET", "/api/jobs", get_jobs),
    ("GET", "/api/jobs/{job_id}", get_job_detail),
    ("POST", "/api/jobs/{job_id}/cancel", post_job_cancel),
    ("GET", "/api/queue", get_queue),
    ("POST", "/api/queue", post_queue),
    ("POST", "/api/interrupt", post_interrupt),
    ("POST", "/api/history", post_history),
    ("GET", "/api/history_v2", get_history_v2),
    ("GET", "/api/history_v2/{prompt_id}", get_history_v2_item),
    ("POST", "/api/upload/image", post_upload),
    ("POST", "/api/upload/mask", post_upload),
    ("GET", "/api/view", get_view),
    ("GET", "/api/object_info", local.get_object_info),
    ("GET", "/api/features", local.get_features),
    ("GET", "/api/system_stats", get_system_stats),
    ("GET", "/api/user", get_user),
    ("GET", "/api/workflow_templates", get_workflow_templates),
    ("GET", "/api/experiment/models", local.get_experiment_models),
    ("GET", "/api/experiment/models/{folder}", get_experiment_model_folder),
    ("GET", "/ws", websocket),
]


def build_cloud_apps(state: EmulatorState) -> list[tuple[web.Application, int]]:
    api = web.Application(
        middlewares=[json_errors, faults_middleware(state.faults), require_api_key],
        client_max_size=CLOUD_MAX_UPLOAD + 1024 * 1024,
    )
    api[STATE] = state
    for method, path, handler in ROUTES:
        api.router.add_route(method, path, handler)
    api.router.add_get("/_emulator/faults", local.get_faults)
    api.router.add_post("/_emulator/faults", local.post_faults)
    return [(api, state.options.port), (build_storage_app(state), 0)]

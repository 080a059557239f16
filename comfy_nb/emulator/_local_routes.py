"""HTTP and websocket routes of the local dialect: ComfyUI 0.3.64 as recorded. Every route answers
both bare and under ``/api`` (``/internal/*`` bare only); a request whose ``Origin`` names another
host than ``Host`` gets 403 with an empty body; unknown paths get ComfyUI's empty 404.

Handlers read and change :class:`~comfy_nb.emulator._server.EmulatorState`; they never run nodes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import sys
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ._faults import faulty_file
from ._queue import QueueItem
from ._ranges import ranged
from ._requests import (
    bad_requests_as_json,
    fault_problem,
    id_list_problem,
    int_query,
    json_body,
    prompt_body_problem,
    prompt_error,
    read_form,
    refused_name,
    request_error,
)
from ._server import STAND_IN_NOTICE, STATE, EmulatorState
from ._validation import validate_prompt
from ._view_files import file_content_type, render_view

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COMFYUI_VERSION = "0.3.64"
FRONTEND_VERSION = "1.27.10"
TEMPLATES_VERSION = "0.1.95"
MODEL_FOLDERS = [
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models",
    "clip_vision", "style_models", "embeddings", "diffusers", "vae_approx", "controlnet",
    "gligen", "upscale_models", "custom_nodes", "hypernetworks", "photomaker", "classifiers",
    "model_patches", "audio_encoders",
]


def state_of(request: web.Request) -> EmulatorState:
    return request.app[STATE]


def empty(status: int = 200) -> web.Response:
    return web.Response(status=status)


# -- middlewares ------------------------------------------------------------------------------


@web.middleware
async def origin_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """ComfyUI's origin check: a browser request from another origin is refused."""
    host = request.headers.get("Host")
    origin = request.headers.get("Origin")
    if host is not None and origin is not None:
        origin_netloc = urllib.parse.urlparse(origin).netloc.lower()
        if host.lower() != origin_netloc:
            return empty(403)
    return await handler(request)


@web.middleware
async def comfy_not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown routes: an empty 404, as ComfyUI's static catch-all answers."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        response = web.StreamResponse(status=404)
        response.content_type = "application/octet-stream"
        return response


# -- websocket --------------------------------------------------------------------------------


async def websocket(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    if state.faults.ws_refuse:
        return web.json_response({"code": "emulated_fault", "message": "websocket refused"},
                                 status=503)
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    conn = state.hub.register(ws, request.rel_url.query.get("clientId", ""))
    try:
        remaining = state.queue.remaining()
        await state.hub.send_now(conn, "status", {"status": {"exec_info": {
            "queue_remaining": remaining}}, "sid": conn.sid})
        for worker in state.workers:
            job = worker.job
            if job is not None and job.sid == conn.sid and job.last_node_id is not None:
                await state.hub.send_now(conn, "executing", {"node": job.last_node_id})
        await read_client_messages(state, conn, ws)
    finally:
        state.hub.unregister(conn)
    return ws


async def read_client_messages(state: EmulatorState, conn: Any,
                               ws: web.WebSocketResponse) -> None:
    """Read what a client sends on its websocket until it closes: only a first
    ``feature_flags`` message means something, and is answered with the server's flags."""
    first = True
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            first = False
            continue
        try:
            data = json.loads(msg.data)
        except ValueError:
            first = False
            continue
        if first and isinstance(data, dict) and data.get("type") == "feature_flags":
            flags = data.get("data") or {}
            conn.supports_preview_metadata = bool(flags.get("supports_preview_metadata"))
            await state.hub.send_now(conn, "feature_flags", server_features(state))
        first = False


def server_features(state: EmulatorState) -> dict[str, Any]:
    return {"supports_preview_metadata": True, "max_upload_size": state.options.max_upload_size}


# -- prompt and queue -------------------------------------------------------------------------


async def post_prompt(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await request.json()  # invalid JSON or an empty body: 500, as ComfyUI
    return submit_prompt(state, body, account="")


def submit_prompt(state: EmulatorState, body: Any, account: str) -> web.Response:
    """Validate and enqueue a ``POST /prompt`` body; shared by both dialects. A body of the
    wrong shape is refused with a 400 (see :func:`prompt_body_problem`), except where the
    recordings show ComfyUI crashing: those still raise."""
    if not isinstance(body, dict) or "prompt" not in body:
        return prompt_error("no_prompt", "No prompt provided", "No prompt provided")
    refused = prompt_body_problem(body)
    if refused is not None:
        return refused
    number = state.next_number(body)
    prompt = body["prompt"]
    prompt_id = str(body.get("prompt_id", uuid.uuid4()))
    targets = body.get("partial_execution_targets")
    classes = ({str(node.get("class_type")) for node in prompt.values() if isinstance(node, dict)}
               if isinstance(prompt, dict) else None)  # validation reads these classes only
    outcome = validate_prompt(prompt, state.object_info(classes),
                              partial_execution_targets=targets,
                              input_dir=state.input_dir)
    extra_data: dict[str, Any] = dict(body.get("extra_data") or {})  # checked: an object
    if "client_id" in body:
        extra_data["client_id"] = body["client_id"]
    if not outcome.ok:
        return web.json_response({"error": outcome.error, "node_errors": outcome.node_errors},
                                 status=400)
    item = QueueItem(number=number, prompt_id=prompt_id, prompt=prompt, extra_data=extra_data,
                     outputs_to_execute=list(outcome.outputs_to_execute), account=account,
                     create_time=int(time.time() * 1000))
    state.enqueue(item)
    return web.json_response(
        {"prompt_id": prompt_id, "number": number, "node_errors": outcome.node_errors}
    )


async def get_prompt(request: web.Request) -> web.Response:
    remaining = state_of(request).queue.remaining()
    return web.json_response({"exec_info": {"queue_remaining": remaining}})


async def get_queue(request: web.Request) -> web.Response:
    queue = state_of(request).queue
    return web.json_response({
        "queue_running": [i.as_list() for i in queue.running()],
        "queue_pending": [i.as_list() for i in queue.pending()],
    })


async def post_queue(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await json_body(request)
    problem = id_list_problem(body)
    if problem is not None:
        return request_error(problem)
    if body.get("clear"):
        state.cancel_pending(None)
    for prompt_id in body.get("delete", []):
        if isinstance(prompt_id, str):  # any other id matches no prompt
            state.cancel_pending({prompt_id})
    return empty()


async def post_interrupt(request: web.Request) -> web.Response:
    state = state_of(request)
    try:
        body = await request.json()
    except ValueError:  # not JSON (or not UTF-8): as no body, interrupt whatever runs
        body = {}
    prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
    if prompt_id is not None and not isinstance(prompt_id, str):
        return empty()  # it names no running prompt: nothing to interrupt, as in ComfyUI
    state.interrupt(prompt_id or None)
    return empty()


async def post_free(request: web.Request) -> web.Response:
    await request.read()
    return empty()


async def get_history(request: web.Request) -> web.Response:
    query = request.rel_url.query
    max_items = int_query(query, "max_items")
    offset = int_query(query, "offset")
    return web.json_response(state_of(request).queue.history(
        max_items=max_items, offset=-1 if offset is None else offset))


async def get_history_item(request: web.Request) -> web.Response:
    return web.json_response(state_of(request).queue.history(request.match_info["prompt_id"]))


async def post_history(request: web.Request) -> web.Response:
    queue = state_of(request).queue
    body = await json_body(request)
    problem = id_list_problem(body)
    if problem is not None:
        return request_error(problem)
    if body.get("clear"):
        queue.clear_history()
    if "delete" in body:
        queue.delete_history([i for i in body["delete"] if isinstance(i, str)])
    return empty()


# -- node definitions and server info ---------------------------------------------------------


async def get_object_info(request: web.Request) -> web.Response:
    return web.json_response(state_of(request).object_info())


async def get_object_info_node(request: web.Request) -> web.Response:
    name = request.match_info["node_class"]
    info = state_of(request).object_info([name])
    return web.json_response({name: info[name]} if name in info else {})


def system_stats(state: EmulatorState) -> dict[str, Any]:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        pages = free = 0
    argv = ["main.py", "--listen", state.options.host]
    if state.options.preview_method != "none":
        argv += ["--preview-method", "latent2rgb"]
    return {
        "system": {
            "os": os.name,
            "ram_total": pages,
            "ram_free": free,
            "comfyui_version": COMFYUI_VERSION,
            "required_frontend_version": FRONTEND_VERSION,
            "installed_templates_version": TEMPLATES_VERSION,
            "required_templates_version": TEMPLATES_VERSION,
            "python_version": sys.version,
            "pytorch_version": "none (comfy_nb emulator)",
            "embedded_python": False,
            "argv": argv,
        },
        "devices": [{
            "name": "cpu", "type": "cpu", "index": None, "vram_total": pages, "vram_free": free,
            "torch_vram_total": pages, "torch_vram_free": free,
        }],
        "emulator": {
            "name": "comfy_nb emulator",
            "dialect": state.options.dialect,
            "stand_in_pixels": True,
            "notice": STAND_IN_NOTICE,
            "platform": platform.platform(),
        },
    }


async def get_system_stats(request: web.Request) -> web.Response:
    return web.json_response(system_stats(state_of(request)))


async def get_features(request: web.Request) -> web.Response:
    return web.json_response(server_features(state_of(request)))


async def get_embeddings(request: web.Request) -> web.Response:
    return web.json_response([])


async def get_extensions(request: web.Request) -> web.Response:
    return web.json_response([])


async def get_models(request: web.Request) -> web.Response:
    return web.json_response(MODEL_FOLDERS)


def model_files(state: EmulatorState, folder: str) -> list[str] | None:
    """The model files the emulator pretends to have, from object_info's loader combos."""
    if folder not in MODEL_FOLDERS:
        return None
    loaders = {"checkpoints": ("CheckpointLoaderSimple", "ckpt_name"),
               "loras": ("LoraLoader", "lora_name"), "vae": ("VAELoader", "vae_name")}
    if folder not in loaders:
        return []
    class_name, input_name = loaders[folder]
    spec = state.object_info([class_name]).get(class_name, {}).get("input", {}).get("required", {})
    choices = spec.get(input_name, [[]])[0]
    return [c for c in choices if isinstance(c, str) and c.endswith((".safetensors", ".ckpt",
                                                                      ".pt", ".pth"))]


async def get_model_folder(request: web.Request) -> web.Response:
    files = model_files(state_of(request), request.match_info["folder"])
    if files is None:
        return empty(404)
    return web.json_response(files)


async def get_experiment_models(request: web.Request) -> web.Response:
    return web.json_response([{"name": f, "folders": [f]} for f in MODEL_FOLDERS])


async def get_experiment_model_folder(request: web.Request) -> web.Response:
    state = state_of(request)
    files = model_files(state, request.match_info["folder"])
    if not files:
        return empty(404)
    stamp = state.started_at
    return web.json_response([{"name": f, "pathIndex": 0, "modified": stamp, "created": stamp,
                               "size": 0} for f in files])


async def get_view_metadata(request: web.Request) -> web.Response:
    files = model_files(state_of(request), request.match_info["folder"]) or []
    if request.rel_url.query.get("filename") not in files:
        return empty(404)
    return web.json_response({"note": "comfy_nb emulator stand-in model: no weights"})


async def get_settings(request: web.Request) -> web.Response:
    return web.json_response({})


async def get_users(request: web.Request) -> web.Response:
    return web.json_response({"storage": "server", "migrated": True})


async def get_folder_paths(request: web.Request) -> web.Response:
    state = state_of(request)
    return web.json_response({f: [str(state.data_dir / "models" / f)] for f in MODEL_FOLDERS})


async def get_index(request: web.Request) -> web.Response:
    return web.Response(
        text=f"<!doctype html><title>comfy_nb emulator</title><p>{STAND_IN_NOTICE}.</p>",
        content_type="text/html",
    )


# -- files ------------------------------------------------------------------------------------


def directory_by_type(state: EmulatorState, kind: str | None) -> Path | None:
    return {"input": state.input_dir, "output": state.output_dir, "temp": state.temp_dir}.get(
        kind or ""
    )


def annotated(name: str) -> tuple[str, str | None]:
    """``name.png [output]`` → (``name.png``, ``"output"``)."""
    for kind in ("input", "output", "temp"):
        suffix = f" [{kind}]"
        if name.endswith(suffix):
            return name[: -len(suffix)], kind
    return name, None


def resolve_view_path(state: EmulatorState, query: Any) -> Path | int:
    """The file a ``/view`` query names, or the status ComfyUI answers instead (400 for names
    the file system cannot take: too long, a NUL in them)."""
    try:
        return _view_path(state, query)
    except (OSError, ValueError) as exc:
        if refused_name(exc):
            return 400
        raise


def _view_path(state: EmulatorState, query: Any) -> Path | int:
    if "filename" not in query:
        return 404
    filename, kind = annotated(query["filename"])
    if not filename:
        return 400
    if filename[0] == "/" or ".." in filename:
        return 400
    base = directory_by_type(state, kind or query.get("type", "output"))
    if base is None:
        return 400
    folder = base.resolve()
    if "subfolder" in query:
        candidate = (folder / query["subfolder"]).resolve()
        if os.path.commonpath((str(candidate), str(folder))) != str(folder):
            return 403
        folder = candidate
    path = folder / os.path.basename(filename)
    return path if path.is_file() else 404


async def get_view(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    resolved = resolve_view_path(state, request.rel_url.query)
    if isinstance(resolved, int):
        return empty(resolved)
    query = request.rel_url.query
    if not state.faults.file_faults_armed() and "preview" not in query and (
            query.get("channel", "rgba") not in ("rgb", "a")):
        # the file as it is, answered as aiohttp's FileResponse (ComfyUI's) answers: Range
        # honoured. Read here rather than by FileResponse, whose reads go to the loop's thread
        # pool, which stops taking work once the interpreter starts to exit: an embedded
        # emulator must still serve the downloads a client finishes at exit.
        try:
            body = resolved.read_bytes()
        except OSError:
            return empty(404)
        response = ranged(request, body, file_content_type(resolved.name))
        response.headers["Content-Disposition"] = f'filename="{resolved.name}"'
        return response
    try:
        body, content_type = render_view(resolved, request.rel_url.query)
    except (OSError, ValueError, SyntaxError):  # preview / channel of a file that is no image
        return empty(400)
    headers = {"Content-Disposition": f'filename="{resolved.name}"', "Content-Type": content_type}
    faulty = await faulty_file(request, state.faults, body, headers)
    return faulty if faulty is not None else web.Response(body=body, headers=headers)


async def save_upload(
    state: EmulatorState,
    post: Any,
    default_type: str = "input",
    write: Callable[[bytes, Path], None] | None = None,
) -> web.Response:
    """ComfyUI's ``image_upload``: rename on conflict unless ``overwrite``, dedupe identical
    bytes, ``subfolder`` inside the type folder, 400 without an ``image`` part."""
    image = post.get("image")
    if image is None or not hasattr(image, "file"):
        return empty(400)
    filename = image.filename
    if not filename:
        return empty(400)
    kind = post.get("type") or default_type
    subfolder = post.get("subfolder", "")
    overwrite = post.get("overwrite")
    if not all(isinstance(field, str) for field in (kind, subfolder, overwrite or "")):
        return empty(400)  # a file where a text field belongs
    base = directory_by_type(state, kind)
    if base is None:
        return empty(400)  # ComfyUI crashes on an unknown type (not recorded)
    try:
        return _store_upload(base, filename, subfolder, kind, overwrite, image.file.read(),
                             write)
    except (OSError, ValueError) as exc:  # a name the file system refuses, or (a ValueError
        if refused_name(exc):             # from ``write``) data that cannot be stored as asked
            return empty(400)
        raise


def _store_upload(base: Path, filename: str, subfolder: str, kind: str, overwrite: str | None,
                  data: bytes, write: Callable[[bytes, Path], None] | None) -> web.Response:
    base = base.resolve()
    folder = (base / os.path.normpath(subfolder)).resolve() if subfolder else base
    path = (folder / filename).resolve()
    if os.path.commonpath((str(base), str(path))) != str(base):
        return empty(400)
    folder.mkdir(parents=True, exist_ok=True)
    duplicate = False
    if overwrite not in ("true", "1"):
        stem, suffix = os.path.splitext(filename)
        counter = 1
        while path.exists():
            if hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest():
                duplicate = True
                break
            filename = f"{stem} ({counter}){suffix}"
            path = folder / filename
            counter += 1
    if not duplicate:
        if write is not None:
            write(data, path)
        else:
            path.write_bytes(data)
    return web.json_response({"name": filename, "subfolder": subfolder, "type": kind})


async def post_upload_image(request: web.Request) -> web.Response:
    try:
        post = await read_form(request)
    except web.HTTPBadRequest:
        return empty(400)  # as ComfyUI's other upload refusals: no body
    return await save_upload(state_of(request), post)


def apply_mask(original: bytes, mask: bytes) -> bytes:
    """The original image with its alpha replaced by the mask's, as PNG bytes that keep the
    original's text chunks (ComfyUI's mask upload)."""
    with Image.open(io.BytesIO(original)) as image:
        info = PngInfo()
        for key, value in getattr(image, "text", {}).items():
            info.add_text(key, value)
        rgba = image.convert("RGBA")
    with Image.open(io.BytesIO(mask)) as mask_image:
        rgba.putalpha(mask_image.convert("RGBA").getchannel("A"))
    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG", compress_level=4, pnginfo=info)
    return buffer.getvalue()


def mask_original(state: EmulatorState, post: Any) -> Path | None:
    """The file the mask upload's ``original_ref`` names (it may not exist), or None when the
    reference is malformed: not JSON, not an object, no usable ``filename`` or ``type``."""
    text = post.get("original_ref")
    try:
        ref = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    if not isinstance(ref, dict) or not isinstance(ref.get("filename"), str):
        return None
    name, kind = annotated(ref["filename"])
    subfolder = ref.get("subfolder", "")
    if not name or name[0] == "/" or ".." in name or not isinstance(subfolder, str):
        return None
    kind = kind or ref.get("type", "output")
    base = directory_by_type(state, kind) if isinstance(kind, str) else None
    return None if base is None else base / subfolder / name


def mask_writer(original: Path) -> Callable[[bytes, Path], None]:
    """ComfyUI's mask upload: the original's alpha replaced by the mask's alpha, as PNG."""

    def write(data: bytes, path: Path) -> None:
        if not original.is_file():
            return
        try:
            masked = apply_mask(original.read_bytes(), data)
        except (OSError, ValueError, SyntaxError) as exc:  # Pillow's "not an image" errors
            raise ValueError(f"the mask or its original is not an image: {exc}") from exc
        path.write_bytes(masked)

    return write


async def post_upload_mask(request: web.Request) -> web.Response:
    state = state_of(request)
    try:
        post = await read_form(request)
    except web.HTTPBadRequest:
        return empty(400)
    original = mask_original(state, post)
    if original is None:
        return empty(400)
    return await save_upload(state, post, write=mask_writer(original))


# -- emulator control -------------------------------------------------------------------------


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(state_of(request).faults.as_dict())


async def post_faults(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await json_body(request)
    problem = fault_problem(body)
    if problem is not None:
        return web.json_response({"code": "bad_fault", "message": problem}, status=400)
    if body.pop("restart", False):
        state.restart()
    try:
        state.faults.update(**body)
    except (ValueError, TypeError) as exc:
        return web.json_response({"code": "bad_fault", "message": str(exc)}, status=400)
    return web.json_response(state.faults.as_dict())


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/ws", websocket),
    ("GET", "/embeddings", get_embeddings),
    ("GET", "/models", get_models),
    ("GET", "/models/{folder}", get_model_folder),
    ("GET", "/extensions", get_extensions),
    ("POST", "/upload/image", post_upload_image),
    ("POST", "/upload/mask", post_upload_mask),
    ("GET", "/view", get_view),
    ("GET", "/view_metadata/{folder}", get_view_metadata),
    ("GET", "/system_stats", get_system_stats),
    ("GET", "/features", get_features),
    ("GET", "/prompt", get_prompt),
    ("GET", "/object_info", get_object_info),
    ("GET", "/object_info/{node_class}", get_object_info_node),
    ("GET", "/history", get_history),
    ("GET", "/history/{prompt_id}", get_history_item),
    ("GET", "/queue", get_queue),
    ("POST", "/prompt", post_prompt),
    ("POST", "/queue", post_queue),
    ("POST", "/interrupt", post_interrupt),
    ("POST", "/free", post_free),
    ("POST", "/history", post_history),
    ("GET", "/settings", get_settings),
    ("GET", "/users", get_users),
    ("GET", "/experiment/models", get_experiment_models),
    ("GET", "/experiment/models/{folder}", get_experiment_model_folder),
]


def build_local_app(state: EmulatorState) -> list[tuple[web.Application, int]]:
    from ._faults import faults_middleware

    app = web.Application(
        middlewares=[comfy_not_found, origin_only, faults_middleware(state.faults),
                     bad_requests_as_json],
        client_max_size=state.options.max_upload_size,
    )
    app[STATE] = state
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, "/api" + path, handler)
    app.router.add_get("/internal/folder_paths", get_folder_paths)
    app.router.add_get("/", get_index)
    app.router.add_get("/_emulator/faults", get_faults)
    app.router.add_post("/_emulator/faults", post_faults)
    return [(app, state.options.port)]

"""Assets of the v2 dialect: uploaded inputs as uuid-identified records over blake3-addressed
bytes (``POST /api/v2/assets``, ``from-hash``, ``HEAD by-hash``, ``GET``, ``/content`` with
Range, ``DELETE``), and the signed ids of job outputs (``<base64url payload>.<HMAC tag>``, the
payload naming job, file, subfolder and type) that ``/content`` reads back.

As recorded on comfy-api-proxy 0.1.6: an upload is stored as ComfyUI's ``/upload/image`` stores
it (in the emulator's input folder); known bytes and ``from-hash`` return the existing record
(200, ``created_new: false``); model files and host paths are refused as the proxy refuses them
without ``--comfyui-base-dir``; an output's metadata has ``size_bytes`` 0 and ``hash`` null; a
range the file cannot satisfy is the proxy's 502 ``upstream_error``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import mimetypes
import posixpath
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import blake3
from aiohttp import BodyPartReader, web

from ._local_routes import directory_by_type, save_upload
from ._ranges import NOT_SATISFIABLE, ranged
from ._v2_http import RETENTION, error, external_base, iso, now, v2_of
from ._view_files import file_content_type

if TYPE_CHECKING:
    from ._v2_jobs import V2Server

# Folders a model file may be placed in (ComfyUI's model roots); the emulator never places one.
MODEL_ROOTS = frozenset({
    "checkpoints", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
    "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen",
    "upscale_models", "latent_upscale_models", "hypernetworks", "photomaker", "classifiers",
    "model_patches", "audio_encoders", "background_removal", "frame_interpolation",
    "geometry_estimation", "optical_flow",
})
NO_BASE_DIR = ("Model-directory placement requires the proxy to run co-located with ComfyUI "
               "(start it with --comfyui-base-dir).")
NO_HOST_PATHS = ("Host-path registration requires --comfyui-base-dir (the proxy must share a "
                 "filesystem with ComfyUI).")
UNKNOWN_ASSET = "Unknown asset id."


@dataclass
class AssetRecord:
    """One uploaded asset and the input file holding its bytes."""

    id: str
    hash: str  # "blake3:<hex>"
    size_bytes: int
    content_type: str
    file_path: str  # as the client named it
    created_at: str
    filename: str  # where ComfyUI's upload put it: input/<subfolder>/<filename>
    subfolder: str
    tags: list[str] = field(default_factory=list)

    @property
    def comfy_name(self) -> str:
        """The value a LoadImage-style input takes for it."""
        return posixpath.join(self.subfolder, self.filename) if self.subfolder else self.filename


class AssetBook:
    """Uploaded assets by id and by hash (the first upload of some bytes owns the hash)."""

    def __init__(self) -> None:
        self._by_id: dict[str, AssetRecord] = {}
        self._by_hash: dict[str, str] = {}

    def get(self, asset_id: str) -> AssetRecord | None:
        return self._by_id.get(asset_id)

    def by_hash(self, digest: str) -> AssetRecord | None:
        asset_id = self._by_hash.get(digest)
        return self._by_id.get(asset_id) if asset_id is not None else None

    def add(self, record: AssetRecord) -> None:
        self._by_id[record.id] = record
        self._by_hash.setdefault(record.hash, record.id)

    def delete(self, asset_id: str) -> bool:
        record = self._by_id.pop(asset_id, None)
        if record is None:
            return False
        if self._by_hash.get(record.hash) == asset_id:
            del self._by_hash[record.hash]
        return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class OutputIds:
    """Stateless, signed ids of job outputs: only this server's ids decode."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _tag(self, payload: str) -> bytes:
        return hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).digest()

    def mint(self, job_id: str, filename: str, subfolder: str, kind: str) -> str:
        payload = _b64(json.dumps({"j": job_id, "f": filename, "s": subfolder, "t": kind}).encode())
        return f"{payload}.{_b64(self._tag(payload))}"

    def read(self, asset_id: str) -> dict[str, str] | None:
        """The ``{j, f, s, t}`` an id names, or None for anything this server did not mint."""
        payload, dot, tag = asset_id.partition(".")
        if not dot:
            return None
        try:
            if not hmac.compare_digest(self._tag(payload), _unb64(tag)):
                return None
            named = json.loads(_unb64(payload))
        except ValueError:
            return None
        if isinstance(named, dict) and {"f", "s", "t"} <= named.keys():
            return {key: str(value) for key, value in named.items()}
        return None


def asset_json(record: AssetRecord, base: str, created_new: bool | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": record.id,
        "hash": record.hash,
        "size_bytes": record.size_bytes,
        "content_type": record.content_type,
        "file_path": record.file_path,
        "created_at": record.created_at,
        "url": f"{base}/api/v2/assets/{record.id}/content",
        "url_expires_at": iso(now() + RETENTION),
    }
    if created_new is not None:
        body["created_new"] = created_new
    return body


class PathRefused(ValueError):
    """A ``file_path`` an upload may not use."""


def input_place(file_path: str) -> tuple[bool, str]:
    """``(is_model, path)`` for an upload's ``file_path``: a model root (optionally under
    ``models/``) or an input path (``input/`` stripped; a bare name is an input)."""
    if not file_path or file_path.startswith(("/", "\\")):
        raise PathRefused(f"file_path must be relative: {file_path!r}")
    rest = file_path.removeprefix("models/")
    parts = rest.split("/")
    if any(part in ("..", "") for part in parts):
        raise PathRefused(f"file_path must not contain '..': {file_path!r}")
    if len(parts) < 2:
        return False, rest
    if parts[0] in MODEL_ROOTS:
        return True, rest
    if parts[0] != "input":
        allowed = sorted({"input"} | MODEL_ROOTS)
        raise PathRefused(f"'{parts[0]}' is not an allowlisted placement root (allowed: {allowed})")
    return False, "/".join(parts[1:])


async def _read_upload(request: web.Request, limit: int) -> tuple[
        dict[str, str], list[str], bytes | None, str] | web.Response:
    """The text fields, tags, file bytes and file part Content-Type of a multipart upload."""
    fields: dict[str, str] = {}
    tags: list[str] = []
    data: bytes | None = None
    part_type = "application/octet-stream"
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.name == "file":
                part_type = part.headers.get("Content-Type", part_type)
                chunks = bytearray()
                while chunk := await part.read_chunk(1 << 16):
                    chunks += chunk
                    if len(chunks) > limit:
                        return error(413, "payload_too_large", f"Upload exceeds {limit} bytes.")
                data = bytes(chunks)
            elif part.name == "tags":
                tags.append((await part.text()).strip())
            else:
                fields[part.name] = (await part.text()).strip()
    except (ValueError, AssertionError):
        return error(422, "invalid_request", "Malformed multipart body.")
    return fields, tags, data, part_type


async def upload_asset(request: web.Request) -> web.Response:
    v2 = v2_of(request)
    base = external_base(request)
    if not request.content_type.startswith("multipart/"):
        return error(422, "invalid_request", "Expected multipart/form-data.")
    read = await _read_upload(request, v2.state.options.max_upload_size)
    if isinstance(read, web.Response):
        return read
    fields, tags, data, part_type = read
    if data is None:
        return error(422, "invalid_request", "Missing 'file' part.")
    file_path = fields.get("file_path")
    if not file_path:
        return error(422, "invalid_request", "Missing 'file_path'.")
    try:
        is_model, place = input_place(file_path)
    except PathRefused as exc:
        return error(422, "invalid_request", str(exc))
    digest = "blake3:" + blake3.blake3(data).hexdigest()
    expected = fields.get("expected_hash")
    if expected and expected.lower() != digest:
        return error(409, "hash_mismatch",
                     "Client-declared hash does not match the received bytes.")
    existing = v2.assets.by_hash(digest)
    if existing is not None:
        return web.json_response(asset_json(existing, base, created_new=False))
    if is_model:
        return error(422, "invalid_request", NO_BASE_DIR)
    subfolder, filename = posixpath.split(place)
    content_type = fields.get("content_type") or part_type
    stored = await save_upload(v2.state, {
        "image": SimpleNamespace(file=io.BytesIO(data), filename=filename),
        "type": "input", "subfolder": subfolder})
    if stored.status != 200 or stored.body is None:
        return error(500, "upstream_error", "ComfyUI rejected the upload.")
    where = json.loads(bytes(stored.body))  # type: ignore[arg-type]
    record = AssetRecord(
        id=str(uuid.uuid4()), hash=digest, size_bytes=len(data), content_type=content_type,
        file_path=file_path, created_at=iso(now()), filename=where["name"],
        subfolder=where["subfolder"], tags=tags)
    v2.assets.add(record)
    return web.json_response(asset_json(record, base, created_new=True), status=201)


async def asset_from_hash(request: web.Request) -> web.Response:
    v2 = v2_of(request)
    try:
        body = await request.json()
    except ValueError:
        return error(400, "invalid_request", "Body must be JSON.")
    digest = body.get("hash") if isinstance(body, dict) else None
    if not isinstance(digest, str):
        return error(422, "invalid_request", "Missing 'hash'.")
    record = v2.assets.by_hash(digest)
    if record is None:
        return error(404, "blob_not_found", "No blob the caller may mint from.")
    return web.json_response(asset_json(record, external_base(request), created_new=False))


async def asset_from_path(request: web.Request) -> web.Response:
    return error(422, "invalid_request", NO_HOST_PATHS)


async def head_by_hash(request: web.Request) -> web.Response:
    known = v2_of(request).assets.by_hash(request.match_info["hash"]) is not None
    return web.Response(status=200 if known else 404)


async def get_asset(request: web.Request) -> web.Response:
    v2 = v2_of(request)
    asset_id = request.match_info["id"]
    base = external_base(request)
    record = v2.assets.get(asset_id)
    if record is not None:
        return web.json_response(asset_json(record, base, created_new=None))
    named = v2.output_ids.read(asset_id)
    if named is None:
        return error(404, "not_found", UNKNOWN_ASSET)
    moment = now()
    body: dict[str, Any] = {
        "id": asset_id, "hash": None, "size_bytes": 0,
        "content_type": mimetypes.guess_type(named["f"])[0] or "application/octet-stream",
        "file_path": named["f"], "created_at": iso(moment),
        "url": f"{base}/api/v2/assets/{asset_id}/content",
        "url_expires_at": iso(moment + RETENTION),
    }
    if "j" in named:
        body["job_id"] = named["j"]
    return web.json_response(body)


def _file_of(root: Path | None, subfolder: str, filename: str) -> Path | None:
    """``root/subfolder/filename`` if it is a file inside ``root``."""
    if root is None:
        return None
    root = root.resolve()
    path = (root / subfolder / filename).resolve()
    if root not in path.parents or not path.is_file():
        return None
    return path


async def get_content(request: web.Request) -> web.Response:
    v2 = v2_of(request)
    asset_id = request.match_info["id"]
    record = v2.assets.get(asset_id)
    if record is not None:
        path = _file_of(v2.state.input_dir, record.subfolder, record.filename)
    else:
        named = v2.output_ids.read(asset_id)
        if named is None:
            return error(404, "not_found", UNKNOWN_ASSET)
        path = _file_of(directory_by_type(v2.state, named["t"]), named["s"], named["f"])
    if path is None:
        return error(404, "output_unavailable",
                     "Output bytes are no longer retrievable upstream. Retrying cannot help; "
                     "re-execute with a changed prompt hash.")
    answer = ranged(request, path.read_bytes(), file_content_type(path.name))
    if answer.status == NOT_SATISFIABLE:
        return error(502, "upstream_error",
                     "ComfyUI returned an unexpected status for the output.")
    return answer


async def delete_asset(request: web.Request) -> web.Response:
    if not v2_of(request).assets.delete(request.match_info["id"]):
        return error(404, "not_found", UNKNOWN_ASSET)
    return web.Response(status=204)


def resolve_asset_ref(v2: V2Server, info: dict[str, Any]) -> str | None:
    """The input value a ``core/ASSET`` reference stands for: an uploaded asset's stored name
    (by id, then by hash), or a job output's ``subfolder/filename``; None if unknown."""
    asset_id = info.get("id")
    record = v2.assets.get(asset_id) if isinstance(asset_id, str) else None
    if record is None and isinstance(asset_id, str):
        named = v2.output_ids.read(asset_id)
        if named is not None:
            return posixpath.join(named["s"], named["f"]) if named["s"] else named["f"]
    if record is None and isinstance(info.get("hash"), str):
        record = v2.assets.by_hash(info["hash"])
    return record.comfy_name if record is not None else None

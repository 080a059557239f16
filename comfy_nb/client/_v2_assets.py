"""Files on a Comfy API v2 server: uploads by content hash, outputs downloaded by asset.

An upload hashes the bytes with blake3 (the spec's content hash) and asks first whether the
server has them (``HEAD /api/v2/assets/by-hash/blake3:<hex>``): if it does, an asset is minted
over them without sending a byte (``POST /api/v2/assets/from-hash``); otherwise they are sent
once (``POST /api/v2/assets``, multipart, with ``expected_hash`` so the server checks what it
got). Uploads carry no ``Idempotency-Key`` (single-use keys would refuse a retry): sending the
same bytes again is harmless, as the server deduplicates them by hash, so an upload whose
answer was lost is simply sent again. The name handed back goes into the workflow; submissions
turn it into a ``core/ASSET`` reference (see :meth:`~comfy_nb.client._v2.V2Dialect.
with_asset_refs`).

An output is downloaded from ``GET /api/v2/assets/{id}/content``, streamed to disk when a path
is given (a ``302`` to a signed URL is followed without credentials, by the transport).

Must not: keep bytes, or know anything of jobs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import NotFoundError, RequestError
from ._dialects import Requester, job_path
from ._transport import Transport
from ._v2 import PREFIX, V2Dialect

ASSETS = PREFIX + "/assets"


def content_hash(data: bytes) -> str:
    """The spec's content hash of ``data``: ``blake3:<hex>``."""
    from blake3 import blake3

    return "blake3:" + blake3(data).hexdigest()


async def upload(http: Requester, dialect: V2Dialect, filename: str, data: bytes,
                 content_type: str) -> dict[str, Any]:
    """Make ``data`` an input asset named after ``filename``, sending the bytes only if the
    server does not have them; ``{"name", "subfolder", "asset", "sent"}``."""
    digest = content_hash(data)
    what = "uploading " + filename
    asset: Any = None
    sent = False
    known = await http.request("HEAD", f"{ASSETS}/by-hash/{digest}", ok_statuses=(404,),
                               what=what)
    if known.status == 200:
        try:
            asset = (await http.request("POST", ASSETS + "/from-hash", retry_unsafe=True,
                                        json={"hash": digest, "file_path": filename},
                                        what=what)).json()
        except NotFoundError:  # gone since, or not ours to mint from: send the bytes
            asset = None
    if not isinstance(asset, dict):
        answer = await http.request(
            "POST", ASSETS, retry_unsafe=True, what=what,
            files={"file": (filename, data, content_type)},
            data={"content_type": content_type, "file_path": filename, "expected_hash": digest,
                  "tags": "input"})
        asset, sent = answer.json(), True
    asset_id = asset.get("id") if isinstance(asset, dict) else None
    if not isinstance(asset_id, str) or not asset_id:
        raise RequestError(f"{what}: the server did not say the asset's id", status=200)
    name = str(asset.get("file_path") or filename)
    dialect.uploads[name] = asset_id
    return {"name": name, "subfolder": "", "type": "input", "asset": asset_id, "sent": sent}


async def download(http: Transport, dialect: V2Dialect, params: dict[str, str],
                   to: Path | None) -> bytes | Path:
    """The bytes of the output named by ``params`` (as ``/view`` would take them), or the
    path they were streamed into."""
    asset_id = dialect.asset_of(params)
    return await http.download(f"{ASSETS}/{job_path(asset_id)}/content", {}, to=to)

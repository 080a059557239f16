"""Where a saved output came from: the API-format workflow, the parameters and resolved seeds,
the server (URL without credentials, dialect, version), the comfy_nb version and the time.

PNGs carry it as text chunks the way ComfyUI writes them (``prompt`` holds the workflow) plus a
``comfy_nb`` chunk with the rest; every other file gets a sidecar ``<name>.comfy_nb.json`` with
the same two entries. :func:`read` gives the record back from either, and
``Workflow.load(path)`` gives the workflow.

Must not: hold secrets. Records are built from the fields below only — never from requests, so
no API key, signed URL or ``extra_data`` can reach a file.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import struct
import urllib.parse
import zlib
from pathlib import Path
from typing import Any, BinaryIO

from . import _saving
from ._version import package_version

SIDECAR_SUFFIX = ".comfy_nb.json"
CHUNK_KEY = "comfy_nb"


def public_url(url: str | None) -> str | None:
    """``url`` without user, password, query or fragment (signed URLs keep their secrets in
    the query)."""
    if not url:
        return url
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def record(*, prompt_id: str, server_url: str | None, dialect: str | None,
           server_version: str | None, parameters: dict[str, Any] | None,
           resolved_seeds: dict[str, int] | None) -> dict[str, Any]:
    """The provenance of one job's outputs (without the workflow, which travels as
    ``prompt``)."""
    return {
        "comfy_nb": package_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "prompt_id": prompt_id,
        "server": {"url": public_url(server_url), "dialect": dialect, "version": server_version},
        "parameters": _json_safe(parameters or {}),
        "resolved_seeds": dict(resolved_seeds or {}),
    }


def _json_safe(value: Any) -> Any:
    """Plain JSON: what is not (an uploaded image, say) becomes its type name."""
    return json.loads(json.dumps(value, default=lambda v: f"<{type(v).__name__}>"))


# -- PNG -----------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
_IMAGE_DATA = (b"IDAT", b"acTL", b"fcTL")


def _chunks(data: bytes) -> list[tuple[int, bytes, bytes]] | None:
    """``(offset, type, body)`` of each chunk, or None if ``data`` is not a well-formed PNG."""
    if not data.startswith(_PNG_SIGNATURE):
        return None
    found = []
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if pos + 12 + length > len(data):
            return None
        found.append((pos, kind, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
        if kind == b"IEND":
            return found
    return None


def png_text(data: bytes) -> dict[str, str]:
    """The tEXt entries of a PNG (first of each key)."""
    entries: dict[str, str] = {}
    for _, kind, body in _chunks(data) or []:
        if kind == b"tEXt" and b"\x00" in body:
            key, _, text = body.partition(b"\x00")
            entries.setdefault(key.decode("latin-1"), text.decode("latin-1"))
    return entries


def png_text_insertion(handle: BinaryIO, size: int,
                       entries: dict[str, str]) -> tuple[int, bytes] | None:
    """Where and what to insert so that the PNG in ``handle`` (``size`` bytes, read from its
    start) carries a tEXt chunk per entry whose key it lacks: ``(offset, chunks)`` before the
    first image data, or None when nothing is to be added or it is not a well-formed PNG.
    Reads chunk headers and text keys only, so a PNG of any size costs little memory."""
    handle.seek(0)
    if handle.read(8) != _PNG_SIGNATURE:
        return None
    present: set[str] = set()
    at = None
    pos = 8
    while True:
        if pos + 8 > size:
            return None
        handle.seek(pos)
        length, kind = struct.unpack(">I4s", handle.read(8))
        if pos + 12 + length > size:
            return None
        if kind in _TEXT_CHUNKS:
            present.add(handle.read(min(length, 80)).split(b"\x00", 1)[0].decode("latin-1"))
        if at is None and kind in _IMAGE_DATA:
            at = pos
        pos += 12 + length
        if kind == b"IEND":
            break
    new = b""
    for key, text in entries.items():
        if key in present:
            continue
        body = key.encode("latin-1") + b"\x00" + text.encode("latin-1")
        new += struct.pack(">I", len(body)) + b"tEXt" + body
        new += struct.pack(">I", zlib.crc32(b"tEXt" + body) & 0xFFFFFFFF)
    return (at, new) if at is not None and new else None


def add_png_text(data: bytes, entries: dict[str, str]) -> bytes:
    """``data`` with a tEXt chunk per entry whose key it lacks, before the first image data.
    Bytes that are not a well-formed PNG come back unchanged; so do pixels and other chunks.
    Text is JSON-escaped to ASCII, which tEXt (Latin-1) holds losslessly."""
    insertion = png_text_insertion(io.BytesIO(data), len(data), entries)
    if insertion is None:
        return data
    at, new = insertion
    return data[:at] + new + data[at:]


def provenance_entries(workflow: dict[str, Any] | None,
                       provenance: dict[str, Any] | None) -> dict[str, str]:
    """The PNG text entries that carry ``prompt`` (the workflow, as ComfyUI writes it) and
    ``comfy_nb`` (the provenance). Keys are sorted, like the result cache stores them, so that
    an output served from the cache is saved with the same bytes as when it was made."""
    entries = {}
    if workflow is not None:
        entries["prompt"] = json.dumps(workflow, sort_keys=True)
    if provenance is not None:
        entries[CHUNK_KEY] = json.dumps(provenance, sort_keys=True)
    return entries


def png_with_provenance(data: bytes, workflow: dict[str, Any] | None,
                        provenance: dict[str, Any] | None) -> bytes:
    """A PNG carrying ``prompt`` (the workflow, as ComfyUI writes it) and ``comfy_nb``."""
    entries = provenance_entries(workflow, provenance)
    return add_png_text(data, entries) if entries else data


# -- sidecars ------------------------------------------------------------------------------------


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where the provenance of ``path`` is written when the file itself cannot carry it."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def sidecar_bytes(workflow: dict[str, Any] | None, provenance: dict[str, Any] | None) -> bytes:
    """The content of a sidecar: ``{"prompt": workflow, "comfy_nb": provenance}`` as JSON."""
    body = json.dumps({"prompt": workflow, CHUNK_KEY: provenance}, indent=1, sort_keys=True)
    return (body + "\n").encode("utf-8")


def write_sidecar(path: str | os.PathLike[str], workflow: dict[str, Any] | None,
                  provenance: dict[str, Any] | None, *, overwrite: bool = False) -> Path:
    """Write the sidecar of ``path`` atomically and return its path.

    Like the outputs it describes, a sidecar never replaces a file unless ``overwrite``: one
    with the same content is left as it is; any other file of that name (another output, a
    file of the user's) raises FileExistsError and stays untouched. (Saving a Result avoids
    this by giving the output a name whose sidecar name is free.)"""
    target = sidecar_path(path)
    data = sidecar_bytes(workflow, provenance)
    if not _saving.write_new(target, data, overwrite=overwrite) \
            and target.read_bytes() != data:
        raise FileExistsError(f"{target} exists and holds something else; the provenance of "
                              f"{Path(path).name} was not written there")
    return target


def read(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``{"prompt": workflow, "comfy_nb": provenance}`` of a saved output (its PNG chunks or
    its sidecar), or of a sidecar itself; None when there is none."""
    path = Path(path)
    if path.name.endswith(SIDECAR_SUFFIX):
        found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return found
    with open(path, "rb") as handle:  # only a PNG is read whole: a video may be huge
        is_png = handle.read(len(_PNG_SIGNATURE)) == _PNG_SIGNATURE
        handle.seek(0)
        text = png_text(handle.read()) if is_png else {}
    if CHUNK_KEY in text or "prompt" in text:
        return {"prompt": json.loads(text["prompt"]) if "prompt" in text else None,
                CHUNK_KEY: json.loads(text[CHUNK_KEY]) if CHUNK_KEY in text else None}
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        return read(sidecar)
    return None

"""Reading a recording: :func:`load_recording` (the index, the node definitions, each run's
folder as a :class:`RecordedRun`), a run's output files checked against their recorded SHA-256
(:class:`RecordedFiles`), and the Result a replayed run gives (:class:`ReplayedResult`).

Owns: reading and checking what :mod:`._writing` wrote. Must not: write into a recording, or
make a network request.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._naming import file_key
from ..errors import ReplayError
from ..result import FileSource, OutputFile, Result
from ._layout import (
    FORMAT,
    INDEX,
    JOB_FILE,
    NODE_DEFINITIONS,
    RUN_FOLDER,
    WORKFLOW_FILE,
    ReplayedFrom,
    date_label,
    server_label,
    sha256_hex,
)
from ._matching import match_form, match_key


class ReplayedResult(Result):
    """A :class:`~comfy_nb.Result` served from a recording; :attr:`replayed_from` says when and
    where it was recorded, and every rendering of it says so too."""

    def __init__(self, prompt_id: str, outputs: dict[str, Any], *,
                 replayed_from: ReplayedFrom, source: FileSource | None,
                 workflow: dict[str, Any] | None = None, cache_dir: Path | None = None,
                 status: str = "succeeded", server: str | None = None,
                 provenance: dict[str, Any] | None = None) -> None:
        super().__init__(prompt_id, outputs, source=source, workflow=workflow,
                         cache_dir=cache_dir, status=status, server=server,
                         provenance=provenance)
        #: the recording's date and server (``result.replayed_from.label`` for a caption)
        self.replayed_from = replayed_from

    def _repr_mimebundle_(self, include: Collection[str] | None = None,
                          exclude: Collection[str] | None = None,
                          **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(include, exclude, **kwargs)
        label = self.replayed_from.label
        if "text/plain" in bundle and label not in bundle["text/plain"]:
            bundle["text/plain"] = f"{label}\n{bundle['text/plain']}"
        if "text/html" in bundle and "comfy-nb-replayed" not in bundle["text/html"]:
            bundle["text/html"] = (f'<div class="comfy-nb-replayed" style="color:#666;'
                                   f'font-size:smaller">⟲ {html.escape(label)}</div>'
                                   + bundle["text/html"])
        return bundle

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", {self.replayed_from.label}>"


@dataclass
class RecordedRun:
    """One recorded run, as read from its folder."""

    folder: Path
    prompt_id: str
    status: str  # "succeeded" or "failed"
    recorded: str  # ISO 8601, UTC
    server: dict[str, Any]
    workflow: dict[str, Any]
    parameters: dict[str, Any]
    resolved_seeds: dict[str, int]
    random: list[str]
    inputs: dict[str, str]  # "<node>.<input>" -> sha256 of the uploaded bytes
    outputs: dict[str, Any]
    files: list[dict[str, Any]]
    events: dict[str, Any]
    error: dict[str, Any] | None
    provenance: dict[str, Any] | None
    key: str = ""
    form: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.form = match_form(self.workflow, self.inputs, self.random)
        self.key = match_key(self.form, self.inputs)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def replayed_from(self) -> ReplayedFrom:
        return ReplayedFrom(date_label(self.recorded), server_label(self.server))

    @classmethod
    def load(cls, folder: Path) -> RecordedRun:
        try:
            data = json.loads((folder / JOB_FILE).read_text("utf-8"))
            workflow = json.loads((folder / WORKFLOW_FILE).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ReplayError(f"the recorded run {folder.name} cannot be read ({exc}); record "
                              "the notebook again") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT \
                or not isinstance(workflow, dict):
            raise ReplayError(f"{folder / JOB_FILE} is not a run recorded by this version of "
                              "comfy_nb; record the notebook again")
        return cls(
            folder=folder, prompt_id=str(data.get("prompt_id", "")),
            status=str(data.get("status", "succeeded")), recorded=str(data.get("recorded", "")),
            server=dict(data.get("server") or {}), workflow=workflow,
            parameters=dict(data.get("parameters") or {}),
            resolved_seeds=dict(data.get("resolved_seeds") or {}),
            random=list(data.get("random") or []), inputs=dict(data.get("inputs") or {}),
            outputs=dict(data.get("outputs") or {}), files=list(data.get("files") or []),
            events=dict(data.get("events") or {}), error=data.get("error"),
            provenance=data.get("provenance") or _provenance(data))

    def _recorded(self, file: OutputFile) -> tuple[Path, Any]:
        """Where one output file's recorded bytes are, and their recorded SHA-256."""
        wanted = file_key(file)
        for item in self.files:
            if file_key(item) == wanted:
                return self.folder / str(item["path"]), item.get("sha256")
        raise ReplayError(f"{file.filename!r} is not part of the recorded run {self.name}")

    @staticmethod
    def _changed(path: Path) -> ReplayError:
        return ReplayError(f"{path} was changed after it was recorded; record the notebook "
                           "again")

    @staticmethod
    def _missing(path: Path) -> ReplayError:
        return ReplayError(f"{path} is missing from the recording; record the notebook again")

    def read(self, file: OutputFile) -> bytes:
        """The recorded bytes of one output file; ReplayError if missing or changed."""
        path, digest = self._recorded(file)
        try:
            data = path.read_bytes()
        except OSError:
            raise self._missing(path) from None
        if sha256_hex(data) != digest:
            raise self._changed(path)
        return data

    def copy_to(self, file: OutputFile, target: Path) -> None:
        """Copy the recorded bytes of one output file into the existing file ``target``, a
        chunk at a time; ReplayError if missing or changed (``target`` then holds a part)."""
        path, digest = self._recorded(file)
        hasher = hashlib.sha256()
        if not path.is_file():
            raise self._missing(path)
        with open(path, "rb") as reader, open(target, "r+b") as writer:
            writer.truncate(0)
            while chunk := reader.read(1 << 20):
                hasher.update(chunk)
                writer.write(chunk)
        if hasher.hexdigest() != digest:
            raise self._changed(path)


def _provenance(job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The provenance of a succeeded run's outputs, from the fields of its ``job.json`` (which
    holds each of them once)."""
    if job.get("status", "succeeded") != "succeeded":
        return None
    server = job.get("server")
    server = server if isinstance(server, Mapping) else {}
    return {"comfy_nb": job.get("comfy_nb"), "created": job.get("recorded"),
            "prompt_id": job.get("prompt_id"),
            "server": {"url": server.get("url"), "dialect": server.get("dialect"),
                       "version": server.get("version")},
            "parameters": dict(job.get("parameters") or {}),
            "resolved_seeds": dict(job.get("resolved_seeds") or {})}


class RecordedFiles:
    """A recorded run's folder as the :class:`~comfy_nb.result.FileSource` of its result (no
    client involved, so its files stay readable after the replaying client is closed)."""

    def __init__(self, run: RecordedRun) -> None:
        self._run = run

    def fetch(self, file: OutputFile) -> bytes:
        return self._run.read(file)

    async def afetch(self, file: OutputFile) -> bytes:
        return await asyncio.to_thread(self._run.read, file)

    def fetch_to(self, file: OutputFile, path: Path) -> None:
        self._run.copy_to(file, path)

    async def afetch_to(self, file: OutputFile, path: Path) -> None:
        await asyncio.to_thread(self._run.copy_to, file, path)


@dataclass
class LoadedRecording:
    """A whole recording, read from disk."""

    path: Path
    shown_as: str  # the path as the user gave it
    created: str
    server: dict[str, Any]
    runs: list[RecordedRun]
    object_info: dict[str, Any] | None

    @property
    def replayed_from(self) -> ReplayedFrom:
        return ReplayedFrom(date_label(self.created), server_label(self.server))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def load_recording(path: str | os.PathLike[str], *,
                   require_definitions: bool = True) -> LoadedRecording:
    """The recording in ``path``; ReplayError if it is missing or damaged. Every recording
    with runs has the node definitions its cells are staged and checked with (``--set``,
    sweeps, editor workflows need them): a missing file is damage, refused here rather than
    by every cell."""
    folder = Path(path)
    index_path = folder / INDEX
    if not index_path.is_file():
        raise ReplayError(f"no recording at {os.fspath(path)!r} (no {INDEX}); make one with "
                          f"comfy_nb.record({os.fspath(path)!r}) while a server runs the notebook")
    try:
        index = read_json(index_path)
    except (OSError, ValueError) as exc:
        raise ReplayError(f"{index_path} cannot be read ({exc}); record the notebook again"
                          ) from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ReplayError(f"{index_path} is not a recording of this version of comfy_nb; "
                          "record the notebook again")
    runs = [RecordedRun.load(folder / str(entry["folder"])) for entry in index.get("jobs", [])
            if isinstance(entry, dict) and RUN_FOLDER.match(str(entry.get("folder", "")))]
    object_info = None
    if runs and require_definitions and not (folder / NODE_DEFINITIONS).is_file():
        raise ReplayError(f"the recording {os.fspath(path)!r} is incomplete: "
                          f"{NODE_DEFINITIONS} (the server's node definitions) is missing; "
                          "restore it, or record the notebook again")
    if (folder / NODE_DEFINITIONS).is_file():
        try:
            found = read_json(folder / NODE_DEFINITIONS)
        except (OSError, ValueError) as exc:
            raise ReplayError(f"{folder / NODE_DEFINITIONS} cannot be read ({exc})") from None
        if not isinstance(found, dict):
            raise ReplayError(f"{folder / NODE_DEFINITIONS} holds no node definitions; restore "
                              "it, or record the notebook again")
        object_info = found
    return LoadedRecording(path=folder, shown_as=os.fspath(path),
                           created=str(index.get("created", "")),
                           server=dict(index.get("server") or {}), runs=runs,
                           object_info=object_info)

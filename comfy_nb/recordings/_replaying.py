"""The replaying clients: :class:`AsyncReplayClient` and :class:`ReplayClient` (what
:func:`replay` returns) serve the runs of a recording through the client's surface with no server.

A replaying client is an :class:`~comfy_nb.AsyncClient` made of a recording's parts
(:mod:`comfy_nb.client._parts`): :class:`_RecordedServer` answers for the server (an empty queue,
the recorded files and version), :class:`_RecordedRuns` stages each run as a live client would,
matches it against the recorded ones (:mod:`._matching`) and hosts its job
(:class:`~comfy_nb.client._host.JobHost`), ended as recorded before it is handed out.

Owns: the replaying clients and the parts they are made of. Must not: make any network request
(whatever needs a server raises :class:`~comfy_nb.errors.ReplayError`), or serve a near match.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

from .._content import OutputKind
from ..client._caching import UPLOAD_MARK, keyed
from ..client._client import AsyncClient, Client
from ..client._dialects import JobSnapshot, JobStatus, job_path
from ..client._staging import Staged, Stager, WorkflowLike
from ..client._uploads import upload_payload
from ..errors import ExecutionFailed, ReplayError, ReplayMismatch
from ..events import (
    Cached,
    Event,
    Failed,
    Finished,
    NodeExecuted,
    NodeStarted,
    Progress,
    Started,
    Succeeded,
)
from ..job import AsyncJob
from ..result import OutputFile, Result
from ._layout import sha256_hex
from ._matching import (
    MAX_DIFFERENCES,
    closest_run,
    input_value,
    match_form,
    match_key,
    url_inputs,
    what_differs,
)
from ._reading import LoadedRecording, RecordedFiles, RecordedRun, ReplayedResult, load_recording


def _needs_server(url: str) -> ReplayError:
    return ReplayError(f"this needs a server, and {url} replays a recording without one (no "
                       "network request is made); connect to a server for it")


class _RecordedServer:
    """The :class:`~comfy_nb.client._parts.Server` part of a replaying client: the recording
    answers what it can (its runs, its files, the recorded server's version); the queue is
    empty, cancelling does nothing, and what needs a server raises :class:`ReplayError`."""

    def __init__(self, loaded: LoadedRecording) -> None:
        self.recording = loaded
        dialect = loaded.server.get("dialect")
        self._dialect = dialect if dialect in ("local", "cloud") else "unknown"
        self.client_id = uuid.uuid4().hex
        self.poll_interval = 1.0
        self.queue_remaining: int | None = None
        self.server_version: str | None = loaded.server.get("version")
        self.stats: dict[str, Any] | None = None
        self.emulator: Any = None
        self._closed = False

    @property
    def url(self) -> str:
        return f"replay:{self.recording.shown_as}"

    @property
    def dialect(self) -> str:
        return self._dialect

    @property
    def closed(self) -> bool:
        return self._closed

    def check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this client is closed; create a new one")

    async def open(self) -> None:
        self.check_open()

    async def close(self) -> None:
        self._closed = True

    async def jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The recorded runs as ``{"id", "status"}`` dicts, newest first."""
        return [{"id": run.prompt_id, "status": run.status}
                for run in reversed(self.recording.runs)][:limit]

    async def queue(self) -> list[dict[str, Any]]:
        return []

    async def cancel(self, prompt_id: str) -> bool:
        return False

    async def cancel_many(self, prompt_ids: list[str]) -> list[str]:
        return []

    async def interrupt(self, prompt_id: str | None = None) -> None:
        return None

    async def clear_queue(self) -> None:
        return None

    async def delete(self, prompt_ids: list[str]) -> None:
        return None

    async def download(self, params: dict[str, str], to: Path | None) -> bytes | Path:
        """A recorded output file's bytes (or the path they were written to)."""
        for run in self.recording.runs:
            for item in run.files:
                if (item["filename"], item["subfolder"], item["type"]) == (
                        params.get("filename"), params.get("subfolder", ""),
                        params.get("type", "output")):
                    wanted = OutputFile(str(item["node_id"]), item["filename"],
                                        item["subfolder"], item["type"], OutputKind.OTHER, "", "")
                    data = await asyncio.to_thread(run.read, wanted)
                    if to is None:
                        return data
                    await asyncio.to_thread(to.write_bytes, data)
                    return to
        raise ReplayError(f"{params.get('filename')!r} is not in the recording "
                          f"{self.recording.shown_as!r}")

    async def models(self, folder: str | None = "checkpoints") -> list[str]:
        raise _needs_server(self.url)

    async def system_stats(self) -> dict[str, Any]:
        """The recorded server's version, and a ``replay`` section with the label."""
        server = self.recording.server
        version_key = "cloud_version" if server.get("dialect") == "cloud" else "comfyui_version"
        stats: dict[str, Any] = {
            "system": {version_key: server.get("version")},
            "replay": {"path": self.recording.shown_as, "created": self.recording.created,
                       "server": dict(server), "runs": len(self.recording.runs),
                       "label": self.recording.replayed_from.label}}
        if server.get("notice"):
            stats["emulator"] = {"notice": server["notice"]}
        return stats

    async def user(self) -> dict[str, Any]:
        return {"status": "replay (no server, no account)"}


class _RecordedDefinitions:
    """The node definitions of the classes the recorded runs used (never the server's own)."""

    def __init__(self, loaded: LoadedRecording) -> None:
        self._recording = loaded

    @property
    def confirmed(self) -> bool:
        return False

    async def get(self, refresh: bool = False) -> dict[str, Any]:
        if self._recording.object_info is None:
            raise ReplayError(f"the recording {self._recording.shown_as!r} holds no node "
                              "definitions; record it again, or connect to a server")
        return self._recording.object_info


class _RecordedRuns:
    """The :class:`~comfy_nb.client._parts.Runs` part of a replaying client, and the
    :class:`~comfy_nb.client._host.JobHost` of its jobs: each run submitted is matched against
    the recorded ones and served as a job that has already ended, as recorded."""

    def __init__(self, loaded: LoadedRecording, server: _RecordedServer) -> None:
        self.recording = loaded
        self._server = server
        self._definitions = _RecordedDefinitions(loaded)
        self._stager = Stager(self._definitions)
        self._upload_digests: dict[str, str] = {}  # name from upload_image -> sha256
        self._served: dict[str, int] = {}  # match key -> how many runs of it were served
        self._recorded_uploads = {digest: name for run in loaded.runs
                                  for path, digest in run.inputs.items()
                                  if isinstance(name := input_value(run.workflow, path), str)}

    # -- runs --------------------------------------------------------------------------------

    async def submit(self, workflow: WorkflowLike, *, prompt_id: str | None,
                     extra_data: dict[str, Any] | None, partner_key: object, front: bool,
                     validate: bool, overrides: dict[str, Any] | None, cache: bool | None,
                     params: dict[str, Any]) -> AsyncJob:
        """The recorded job of this run, already ended (``prompt_id``, ``extra_data``,
        ``partner_key``, ``front`` and ``cache`` change nothing). Raises
        :class:`ReplayMismatch` if the run was not recorded."""
        self._server.check_open()
        wanted = {**(overrides or {}), **params}
        run, staged = await self._find(workflow, wanted, validate)
        self._served[run.key] = self._served.get(run.key, 0) + 1
        return self._replayed_job(run, staged, wanted)

    async def _find(self, workflow: WorkflowLike, wanted: dict[str, Any],
                    validate: bool) -> tuple[RecordedRun, Staged]:
        """The recorded run to serve for this one (the next of its kind, by submit order). A run
        that was not recorded raises :class:`ReplayMismatch`, or, when ``validate`` and the
        recorded node definitions find it invalid, the ``WorkflowInvalid`` that recording it
        raised (invalid runs never reach a server, so they are never recorded)."""
        object_info = self.recording.object_info
        fetched = url_inputs(workflow, wanted, object_info)
        if fetched:
            raise ReplayError(f"{', '.join(fetched)}: a file given by URL would have to be "
                              "downloaded, and a replay makes no network request; download it "
                              "and pass the local file (or its bytes) instead")
        staged = await self._stager.stage(workflow, wanted, object_info is not None)
        form, inputs = keyed(staged.api, self._upload_digests)
        form = match_form(form, inputs, staged.seeds)
        key = match_key(form, inputs)
        same = [run for run in self.recording.runs if run.key == key]
        if same:
            return same[min(self._served.get(key, 0), len(same) - 1)], staged
        if validate and staged.object_info is not None:
            self._validate(staged)
        closest = closest_run(form, self.recording.runs)
        differences = (what_differs(form, staged.api, closest.form) if closest else [])
        if len(differences) > MAX_DIFFERENCES:
            more = len(differences) - MAX_DIFFERENCES + 1
            differences = [*differences[:MAX_DIFFERENCES - 1], f"… and {more} more"]
        raise ReplayMismatch(self.recording.shown_as, closest.name if closest else None,
                             differences or ["the uploaded files"],
                             len(self.recording.runs))

    def _validate(self, staged: Staged) -> None:
        """Raise ``WorkflowInvalid`` if the recorded node definitions find ``staged`` invalid;
        files uploaded while recording, or being uploaded now, count as on the server. A node
        class the recording has no definition of cannot be judged: then nothing is raised."""
        from ..workflow._check import validate_workflow

        assert staged.object_info is not None
        classes = {node.get("class_type") if isinstance(node, dict) else None
                   for node in staged.api.values()}
        if not classes <= staged.object_info.keys():
            return
        uploading = {value for node in staged.api.values() if isinstance(node, dict)
                     for value in (node.get("inputs") or {}).values()
                     if isinstance(value, str) and value.startswith(UPLOAD_MARK)}
        recorded = {name.removesuffix(" [input]") for name in self._recorded_uploads.values()}
        validate_workflow(staged.api, staged.object_info,
                          known_files=(*uploading, *recorded, *self._recorded_uploads.values()))

    def _replayed_job(self, run: RecordedRun, staged: Staged,
                      wanted: dict[str, Any]) -> AsyncJob:
        """A job that has already ended as recorded; its events retell the recorded run."""
        titles = {node_id: node.get("_meta") for node_id, node in staged.api.items()
                  if isinstance(node, dict) and "_meta" in node}
        workflow = {node_id: ({**node, "_meta": titles[node_id]}
                              if node_id in titles and isinstance(node, dict) else node)
                    for node_id, node in run.workflow.items()}
        job = AsyncJob(self, run.prompt_id, workflow)
        job.resolved_seeds = {k: int(v) for k, v in run.resolved_seeds.items()}
        job.parameters = {name: ("sha256:" + value[len(UPLOAD_MARK):]
                                 if isinstance(value, str) and value.startswith(UPLOAD_MARK)
                                 else value)
                          for name, value in wanted.items()}
        for event in self._events(run):
            job.feed(event)
        error = None
        if run.status == "failed":
            details = run.error or {}
            error = ExecutionFailed(
                prompt_id=run.prompt_id, node_id=str(details.get("node_id", "")),
                node_type=str(details.get("node_type", "")),
                exception_type=str(details.get("exception_type", "")),
                exception_message=str(details.get("exception_message", "")),
                traceback=[str(line) for line in details.get("traceback") or []],
                node_title=details.get("node_title"))
        status = JobStatus.FAILED if error is not None else JobStatus.SUCCEEDED
        job.finish(JobSnapshot(status, outputs=run.outputs, error=error, workflow=workflow),
                   result=self._result(run, workflow, status.value))
        return job

    def _result(self, run: RecordedRun, workflow: dict[str, Any], status: str) -> Result:
        """The Result of a replayed run, its files read from the recording."""
        record = dict(run.provenance or {})
        record["replayed_from"] = {"date": run.replayed_from.date,
                                   "server": run.replayed_from.server}
        return ReplayedResult(run.prompt_id, run.outputs, replayed_from=run.replayed_from,
                              source=RecordedFiles(run), workflow=workflow, status=status,
                              server=self._server.url, provenance=record)

    @staticmethod
    def _events(run: RecordedRun) -> list[Event]:
        pid = run.prompt_id
        summary = run.events
        events: list[Event] = [Started(pid)]
        cached = tuple(str(node) for node in summary.get("cached") or ())
        if cached:
            events.append(Cached(pid, cached))
        steps = summary.get("steps") or {}
        for node in summary.get("executed") or ():
            events.append(NodeStarted(pid, str(node)))
            if node in steps:
                events.append(Progress(pid, str(node), steps[node], steps[node]))
            if isinstance(run.outputs.get(node), dict):
                events.append(NodeExecuted(pid, str(node), run.outputs[node]))
        if run.status == "failed":
            error = run.error or {}
            events.append(Failed(pid, error.get("node_id"), error.get("node_type"),
                                 str(error.get("exception_type", "")),
                                 str(error.get("exception_message", "")),
                                 tuple(error.get("traceback") or ())))
        else:
            events += [Succeeded(pid), Finished(pid)]
        return events

    async def prepare(self, workflow: WorkflowLike, overrides: dict[str, Any],
                      validate: bool) -> tuple[dict[str, Any], dict[str, int]]:
        """The workflow as it would be submitted, checked against the recorded node
        definitions; a file to upload raises :class:`ReplayError` (nothing is uploaded)."""
        from ..workflow._check import validate_workflow

        staged = await self._stager.stage(workflow, overrides, validate)
        if staged.uploads.pending:
            raise _needs_server(self._server.url)
        if validate and staged.object_info is not None:
            validate_workflow(staged.api, staged.object_info, known_files=())
        return staged.api, staged.seeds

    async def cached_result(self, workflow: WorkflowLike, overrides: dict[str, Any],
                            validate: bool) -> Result | None:
        """The recorded Result of this run, or None if it was not recorded."""
        try:
            run, staged = await self._find(workflow, overrides, validate=False)
        except ReplayMismatch:
            return None
        return await self._replayed_job(run, staged, overrides).wait()

    async def follow(self, prompt_id: str) -> AsyncJob:
        job_path(prompt_id)  # refuses an id that could address another endpoint
        raise _needs_server(self._server.url)

    async def object_info(self, refresh: bool = False) -> dict[str, Any]:
        """The recorded definitions of the node classes the recorded runs used."""
        return await self._definitions.get(refresh)

    async def upload_image(self, image: Any, *, name: str | None, subfolder: str,
                           overwrite: bool, kind: str) -> str:
        """Nothing is uploaded: the name the recording's server gave these bytes (a
        placeholder naming their content if they were never uploaded while recording)."""
        _, data, _ = await asyncio.to_thread(upload_payload, image, name)
        digest = sha256_hex(data)
        recorded = self._recorded_uploads.get(digest)
        if recorded is None:
            return UPLOAD_MARK + digest
        recorded = recorded.removesuffix(" [input]")
        self._upload_digests[recorded] = digest
        return recorded

    async def upload_mask(self, mask: Any, original: str, *, name: str | None,
                          subfolder: str, kind: str) -> str:
        raise _needs_server(self._server.url)

    def settled(self, prompt_id: str, result: Result) -> bool:
        return True  # nothing is cached or recorded from a replay

    async def settle(self, prompt_id: str, result: Result) -> None:
        return None

    async def flush(self, timeout: float = 10.0) -> None:
        return None

    async def wind_down(self) -> None:
        return None

    # -- the host of its jobs (each one ended before it is handed out) -------------------------

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def closed(self) -> bool:
        return self._server.closed

    @property
    def socket_connected(self) -> bool:
        return False

    @property
    def finished_follows_outcome(self) -> bool:
        return self._server.dialect == "local"

    def poll_delay(self, *, completion_hinted: bool, unsure: bool, failures: int) -> float:
        return self._server.poll_interval

    async def snapshot(self, prompt_id: str) -> JobSnapshot:
        raise _needs_server(self._server.url)

    async def cancel(self, prompt_id: str) -> bool:
        return False

    def forget(self, job: AsyncJob) -> None:
        return None

    def make_result(self, job: AsyncJob, outputs: dict[str, Any],
                    workflow: dict[str, Any] | None, status: str) -> Result:
        # every replayed job ends with its Result (see _replayed_job): never reach a server
        raise ReplayError(f"job {job.id} is not part of {self._server.url}")


class AsyncReplayClient(AsyncClient):
    """Serves the runs of a recording (see :mod:`comfy_nb.recordings`) through the
    :class:`~comfy_nb.AsyncClient` surface, with no server and no network request: ``submit``
    and ``run`` give the recorded job (or raise :class:`ReplayMismatch`), ``queue`` is empty,
    ``cancel`` and ``interrupt`` do nothing, ``object_info`` holds the recorded classes only, and
    every call that needs a server raises :class:`ReplayError`. ``path`` is the recording's
    folder (or the recording, read already)."""

    def __init__(self, path: str | os.PathLike[str] | LoadedRecording) -> None:
        loaded = path if isinstance(path, LoadedRecording) else load_recording(path)
        server = _RecordedServer(loaded)
        self._compose(server, _RecordedRuns(loaded, server))
        self.recording = loaded

    @property
    def label(self) -> str:
        """``replayed from <date>, <server>`` for the whole recording."""
        return self.recording.replayed_from.label

    @property
    def runs(self) -> list[RecordedRun]:
        """The recorded runs, in the order they were submitted."""
        return list(self.recording.runs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.recording.shown_as!r}: {self.label}>"


class ReplayClient(Client):
    """The synchronous :class:`AsyncReplayClient`: what :func:`replay` returns."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        loaded = load_recording(path)
        self._loaded = loaded
        self._start_core(lambda: AsyncReplayClient(loaded))

    @property
    def replay_client(self) -> AsyncReplayClient:
        client = self.async_client
        assert isinstance(client, AsyncReplayClient)
        return client

    @property
    def label(self) -> str:
        """``replayed from <date>, <server>`` for the whole recording."""
        return self.replay_client.label

    @property
    def runs(self) -> list[RecordedRun]:
        """The recorded runs, in the order they were submitted."""
        return self.replay_client.runs

    def __repr__(self) -> str:
        return f"<ReplayClient {self._loaded.shown_as!r}: {self.label}>"


def replay(path: str | os.PathLike[str] = "recording") -> ReplayClient:
    """A client serving the runs recorded in ``path`` (see :func:`record`) with no server, no
    key and no network request; a run that was not recorded raises :class:`ReplayMismatch`."""
    return ReplayClient(path)

"""Runs queued prompts the way ComfyUI's prompt worker does: one worker thread per concurrency slot,
ComfyUI's node ordering (a depth-first stack with its "output nodes first" pick), the classic
output cache (an identical node is not run again; a cached SaveImage reports the same file), and
the websocket event sequence of the recordings, with ComfyUI's routing guards for prompts sent
without ``client_id``.

It owns execution state (running jobs, caches, interrupts). It never speaks HTTP.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._hub import encode_preview_legacy, encode_preview_with_metadata, encode_text
from ._object_info import recorded_object_info
from ._queue import QueueItem
from .nodes import IMPLEMENTATIONS, InterruptedByUser, NotEmulatedError, PreviewImage

if TYPE_CHECKING:
    from ._server import EmulatorState

log = logging.getLogger("comfy_nb.emulator")

FILE_INPUT_NODES = {"LoadImage": "image", "LoadImageMask": "image", "LoadAudio": "audio"}
# Nodes whose IS_CHANGED returns a new value every time (SaveImageWebsocket returns time.time()):
# they are never served from the cache.
ALWAYS_CHANGED_NODES = {"SaveImageWebsocket"}


def now_ms() -> int:
    return int(time.time() * 1000)


def is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def full_type_name(exc: BaseException) -> str:
    module = type(exc).__module__
    name = type(exc).__qualname__
    return name if module == "builtins" else f"{module}.{name}"


def format_input_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@dataclass
class CacheEntry:
    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None


@dataclass
class RunningJob:
    """What a worker knows about the job it runs."""

    item: QueueItem
    sid: str | None  # where its events go (client_id locally, the account on Cloud)
    interrupted: threading.Event = field(default_factory=threading.Event)
    discarded: bool = False  # the server "restarted": the job leaves no trace
    last_node_id: str | None = None
    node_prompt: dict[str, Any] | None = None  # the prompt as nodes see it (with is_changed)


class ProgressState:
    """ComfyUI's per-prompt progress registry, sent as ``progress_state``."""

    def __init__(self, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        self.nodes: dict[str, dict[str, Any]] = {}

    def _entry(self, node_id: str, value: float, total: float, state: str) -> dict[str, Any]:
        return {
            "value": value,
            "max": total,
            "state": state,
            "node_id": node_id,
            "prompt_id": self.prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }

    def start(self, node_id: str) -> dict[str, Any]:
        self.nodes[node_id] = self._entry(node_id, 0.0, 1.0, "running")
        return self.snapshot()

    def update(self, node_id: str, value: float, total: float) -> dict[str, Any]:
        # kept as the node reported them: ints from a sampler or SaveImageWebsocket stay ints
        # (recorded: `"value": 1, "max": 4` after the node's `"value": 0.0, "max": 1.0` start)
        entry = self.nodes.setdefault(node_id, self._entry(node_id, 0.0, 1.0, "running"))
        entry["value"], entry["max"] = value, total
        return self.snapshot()

    def finish(self, node_id: str) -> dict[str, Any]:
        entry = self.nodes.get(node_id)
        if entry is None:
            self.nodes[node_id] = self._entry(node_id, 1, 1, "finished")
        else:
            entry["state"] = "finished"
            entry["value"] = entry["max"]
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        return {"prompt_id": self.prompt_id, "nodes": json.loads(json.dumps(self.nodes))}


class NodeRun:
    """The :class:`~comfy_nb.emulator.nodes.NodeContext` handed to a node implementation."""

    def __init__(self, worker: Worker, job: RunningJob, node_id: str, progress: ProgressState):
        state = worker.state
        self._worker = worker
        self._job = job
        self._progress = progress
        self.node_id = node_id
        self.prompt_id = job.item.prompt_id
        self.prompt = job.node_prompt if job.node_prompt is not None else job.item.prompt
        self.extra_pnginfo = job.item.extra_data.get("extra_pnginfo")
        self.input_dir: Path = state.input_dir
        self.output_dir: Path = state.output_dir
        self.temp_dir: Path = state.temp_dir
        self.step_delay: float = state.options.step_delay

    def check_interrupted(self) -> None:
        if self._job.interrupted.is_set():
            raise InterruptedByUser("Processing interrupted")

    def sleep(self, seconds: float) -> None:
        if seconds > 0 and self._job.interrupted.wait(seconds):
            raise InterruptedByUser("Processing interrupted")
        self.check_interrupted()

    def progress(self, value: int, total: int, preview: PreviewImage | None = None) -> None:
        self.check_interrupted()
        hub, sid = self._worker.state.hub, self._job.sid
        hub.send_json("progress_state", self._progress.update(self.node_id, value, total), sid)
        frame = self._encode_preview(preview) if preview is not None else None
        if frame is not None and sid is not None:
            # type 4 only for a prompt whose own socket negotiated it: ComfyUI checks the
            # feature flag of the prompt's client_id, and a prompt without one gets type 1
            image_bytes, mime = frame
            metadata = {
                "node_id": self.node_id,
                "prompt_id": self.prompt_id,
                "display_node_id": self.node_id,
                "parent_node_id": None,
                "real_node_id": self.node_id,
                "image_type": mime,
            }
            hub.send_binary(encode_preview_with_metadata(image_bytes, metadata), sid,
                            only="metadata")
        hub.send_json(
            "progress",
            {"value": value, "max": total, "prompt_id": self.prompt_id, "node": self.node_id},
            sid,
        )
        if frame is not None:
            hub.send_binary(encode_preview_legacy(frame[0], frame[1]), sid, only="legacy")

    def send_text(self, text: str) -> None:
        self._worker.state.hub.send_binary(encode_text(self.node_id, text), self._job.sid)

    def _encode_preview(self, preview: PreviewImage) -> tuple[bytes, str] | None:
        if self._worker.state.options.preview_method == "none" and preview.format == "JPEG":
            return None  # like --preview-method none: no sampler previews (SaveImageWebsocket
            # frames, which are PNG, are always sent)
        image = preview.image
        max_size = preview.max_size
        if max_size is not None:
            max_size = min(max_size, self._worker.state.options.preview_size)
            if max(image.size) != max_size:
                scale = max_size / max(image.size)
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                image = image.resize(size)
        buffer = io.BytesIO()
        if preview.format == "PNG":
            image.save(buffer, format="PNG", compress_level=1)
            return buffer.getvalue(), "image/png"
        image.convert("RGB").save(buffer, format="JPEG", quality=95)
        return buffer.getvalue(), "image/jpeg"


class ExecutionOrder:
    """ComfyUI's ExecutionList: nodes are added depth-first from each output (a stack, inputs in
    prompt order, cached inputs not added), and among ready nodes an output node is picked
    first, then a node that unblocks an output, then one two steps from an output."""

    def __init__(self, prompt: dict[str, Any], is_cached: Callable[[str], bool],
                 is_output: Callable[[str], bool]) -> None:
        self.prompt = prompt
        self.is_cached = is_cached
        self.is_output = is_output
        self.pending: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, bool]] = {}

    def add_output(self, node_id: str) -> None:
        stack = [node_id]
        links: list[tuple[str, str]] = []
        while stack:
            current = stack.pop()
            if current in self.pending:
                continue
            self.pending[current] = True
            self.block_count[current] = 0
            self.blocking[current] = {}
            for value in self.prompt[current]["inputs"].values():
                if is_link(value):
                    source = value[0]
                    if not self.is_cached(source):
                        stack.append(source)
                        links.append((source, current))
        for source, target in links:
            if source in self.pending and target not in self.blocking[source]:
                self.blocking[source][target] = True
                self.block_count[target] += 1

    def next_node(self) -> str | None:
        ready = [n for n in self.pending if self.block_count[n] == 0]
        if not ready:
            return None
        for candidate in ready:
            if self.is_output(candidate):
                return candidate
        for candidate in ready:
            if any(self.is_output(b) for b in self.blocking[candidate]):
                return candidate
        for candidate in ready:
            for blocked in self.blocking[candidate]:
                if any(self.is_output(b) for b in self.blocking[blocked]):
                    return candidate
        return ready[0]

    def complete(self, node_id: str) -> None:
        del self.pending[node_id]
        for blocked in self.blocking.pop(node_id):
            self.block_count[blocked] -= 1


class Worker:
    """One prompt worker thread (a concurrency slot) with its own classic cache."""

    def __init__(self, state: EmulatorState, index: int) -> None:
        self.state = state
        self.index = index
        self.cache: dict[str, CacheEntry] = {}
        self.job: RunningJob | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"comfy-nb-emulator-worker-{index}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.ident is not None:  # started
            self._thread.join(timeout)

    def interrupt(self, prompt_id: str | None = None, discard: bool = False) -> bool:
        job = self.job
        if job is None or (prompt_id is not None and job.item.prompt_id != prompt_id):
            return False
        job.discarded = job.discarded or discard
        job.interrupted.set()
        return True

    def _run(self) -> None:
        queue = self.state.queue
        while True:
            taken = queue.get(timeout=None)
            if taken is None:
                return
            item_id, item = taken
            try:
                self._execute_item(item_id, item)
            except Exception:  # the worker must survive anything a prompt does
                log.exception("emulator worker crashed on prompt %s", item.prompt_id)
                self.job = None
                self.state.finish_job(item_id, item, None, "error")

    # -- one prompt --------------------------------------------------------------------------

    def _execute_item(self, item_id: int, item: QueueItem) -> None:
        state = self.state
        sid = item.account if state.options.dialect == "cloud" else item.extra_data.get("client_id")
        job = RunningJob(item=item, sid=sid)
        self.job = job
        state.job_started(item)
        messages: list[list[Any]] = []
        hub = state.hub

        def add_message(event: str, data: dict[str, Any], broadcast: bool) -> None:
            data = {**data, "timestamp": now_ms()}
            messages.append([event, data])
            if (sid is not None or broadcast) and not job.discarded:
                hub.send_json(event, data, sid)

        prompt = item.prompt
        prompt_id = item.prompt_id
        file_hashes = {node_id: self._file_hash(node) for node_id, node in prompt.items()
                       if node.get("class_type") in FILE_INPUT_NODES}
        memo: dict[str, str] = {}
        signatures = {node_id: self._signature(prompt, node_id, memo, file_hashes)
                      for node_id in prompt}
        job.node_prompt = self._prompt_for_nodes(prompt, file_hashes)
        live = set(signatures.values())
        self.cache = {k: v for k, v in self.cache.items() if k in live}

        add_message("execution_start", {"prompt_id": prompt_id}, broadcast=False)
        cached_nodes = [n for n in prompt if signatures[n] in self.cache]
        add_message("execution_cached", {"nodes": cached_nodes, "prompt_id": prompt_id},
                    broadcast=False)

        progress = ProgressState(prompt_id)
        results: dict[str, tuple[Any, ...]] = {}
        ui_outputs: dict[str, Any] = {}
        executed: list[str] = []
        info = recorded_object_info()
        outputs = {n for n, node in prompt.items()
                   if info.get(node.get("class_type"), {}).get("output_node")}
        order = ExecutionOrder(
            prompt,
            is_cached=lambda n: signatures[n] in self.cache,
            is_output=outputs.__contains__,
        )
        for output_id in item.outputs_to_execute:
            order.add_output(output_id)

        status = "success"
        while (node_id := order.next_node()) is not None:
            job.last_node_id = node_id
            outcome = self._execute_node(job, node_id, signatures, results, ui_outputs,
                                         progress, executed)
            if outcome is not None:
                exc, inputs = outcome
                class_type = prompt[node_id]["class_type"]
                if isinstance(exc, InterruptedByUser):
                    add_message("execution_interrupted", {
                        "prompt_id": prompt_id, "node_id": node_id, "node_type": class_type,
                        "executed": list(executed),
                    }, broadcast=True)
                    status = "cancelled"
                else:
                    add_message("execution_error", {
                        "prompt_id": prompt_id,
                        "node_id": node_id,
                        "node_type": class_type,
                        "executed": list(executed),
                        "exception_message": f"{exc}\n",
                        "exception_type": full_type_name(exc),
                        "traceback": traceback.format_tb(exc.__traceback__),
                        "current_inputs": inputs,
                        "current_outputs": list(prompt),
                    }, broadcast=False)
                    status = "error"
                break
            order.complete(node_id)
        else:
            add_message("execution_success", {"prompt_id": prompt_id}, broadcast=False)

        meta = {
            node_id: {"node_id": node_id, "display_node": node_id, "parent_node": None,
                      "real_node_id": node_id}
            for node_id in ui_outputs
        }
        success = status == "success"
        history = {
            "outputs": ui_outputs,
            "status": {"status_str": "success" if success else "error", "completed": success,
                       "messages": messages},
            "meta": meta,
        }
        self.job = None
        if job.discarded:
            state.finish_job(item_id, item, None, "lost")
            return
        if state.faults.history_delay > 0:  # a slow disk or a busy server: the outcome is
            time.sleep(state.faults.history_delay)  # announced before it is on record
        state.finish_job(item_id, item, history, status)
        if sid is not None:
            hub.send_json("executing", {"node": None, "prompt_id": prompt_id}, sid)

    def _execute_node(
        self,
        job: RunningJob,
        node_id: str,
        signatures: dict[str, str],
        results: dict[str, tuple[Any, ...]],
        ui_outputs: dict[str, Any],
        progress: ProgressState,
        executed: list[str],
    ) -> tuple[BaseException, dict[str, Any]] | None:
        """Run (or serve from cache) one node. Returns (exception, current_inputs) on failure."""
        state, hub, sid = self.state, self.state.hub, job.sid
        item = job.item
        node = item.prompt[node_id]
        class_type = node["class_type"]
        cached = self.cache.get(signatures[node_id])
        if cached is not None:
            self._report_done(job, node_id, cached.ui, ui_outputs, progress)
            results[node_id] = cached.outputs
            return None

        hub.send_json("progress_state", progress.start(node_id), sid)
        if sid is not None:
            hub.send_json("executing", {"node": node_id, "display_node": node_id,
                                        "prompt_id": item.prompt_id}, sid)
        inputs: dict[str, Any] = {}
        for name, value in node["inputs"].items():
            inputs[name] = self._output_of(value, signatures, results) if is_link(value) else value
        current_inputs = {k: [format_input_value(v)] for k, v in inputs.items()}
        context = NodeRun(self, job, node_id, progress)
        try:
            context.check_interrupted()
            implementation = IMPLEMENTATIONS.get(class_type)
            if implementation is None:
                raise NotEmulatedError(
                    f"{class_type} is not emulated: the comfy_nb emulator runs model-free core "
                    "nodes and a stand-in text-to-image graph only. Run this workflow on a real "
                    "ComfyUI server or on Comfy Cloud."
                )
            if state.options.node_delay > 0:
                context.sleep(state.options.node_delay)
            result = implementation(context, **inputs)
        except Exception as exc:
            return exc, current_inputs
        results[node_id] = tuple(result.outputs)
        self.cache[signatures[node_id]] = CacheEntry(tuple(result.outputs), result.ui)
        self._report_done(job, node_id, result.ui, ui_outputs, progress)
        executed.append(node_id)
        return None

    def _report_done(self, job: RunningJob, node_id: str, ui: dict[str, Any] | None,
                     ui_outputs: dict[str, Any], progress: ProgressState) -> None:
        """A node finished (or came from the cache): its ``executed`` output, if it has one,
        then ``progress_state`` with the node finished."""
        hub, sid = self.state.hub, job.sid
        if ui is not None:
            ui_outputs[node_id] = ui
            if sid is not None:
                hub.send_json("executed", {"node": node_id, "display_node": node_id,
                                           "output": ui, "prompt_id": job.item.prompt_id}, sid)
        hub.send_json("progress_state", progress.finish(node_id), sid)

    def _output_of(self, link: list[Any], signatures: dict[str, str],
                   results: dict[str, tuple[Any, ...]]) -> Any:
        """The value behind a link: from this run, or from the cache for a cached node (which
        is never staged, as in ComfyUI)."""
        source, slot = link
        outputs = results.get(source)
        if outputs is None:
            outputs = self.cache[signatures[source]].outputs
        return outputs[slot]

    def _signature(self, prompt: dict[str, Any], node_id: str, memo: dict[str, str],
                   file_hashes: dict[str, str | None]) -> str:
        """ComfyUI's input signature: class, inputs, linked ancestors' signatures and, for
        nodes that read input files, the file's content hash (their IS_CHANGED)."""
        if node_id in memo:
            return memo[node_id]
        memo[node_id] = "cycle"
        node = prompt[node_id]
        parts: dict[str, Any] = {}
        for name, value in node["inputs"].items():
            if is_link(value) and value[0] in prompt:
                parts[name] = ["link", self._signature(prompt, value[0], memo, file_hashes),
                               value[1]]
            else:
                parts[name] = value
        changed = self._is_changed(node, file_hashes.get(node_id))
        text = json.dumps([node["class_type"], changed, parts], sort_keys=True, default=str)
        memo[node_id] = hashlib.sha256(text.encode()).hexdigest()
        return memo[node_id]

    @staticmethod
    def _prompt_for_nodes(prompt: dict[str, Any],
                          file_hashes: dict[str, str | None]) -> dict[str, Any]:
        """The prompt handed to nodes (SaveImage's PNG ``prompt`` chunk, the WEBP EXIF prompt).
        ComfyUI's IsChangedCache writes each IS_CHANGED result into the prompt's node as
        ``"is_changed": [value]``, so a LoadImage node carries its file's sha256 there (recorded
        in the PNGs of upload_load_scale_save and load_subfolder_preview); history keeps the
        prompt as posted."""
        annotated = copy.deepcopy(prompt)
        for node_id, digest in file_hashes.items():
            if digest is not None:
                annotated[node_id]["is_changed"] = [digest]
        return annotated

    @staticmethod
    def _is_changed(node: dict[str, Any], file_hash: str | None) -> str:
        """ComfyUI's IS_CHANGED value: always new for SaveImageWebsocket, the input file's
        hash for the Load* nodes, nothing for the rest."""
        if node["class_type"] in ALWAYS_CHANGED_NODES:
            return f"changed at {time.time()!r} {uuid.uuid4().hex}"
        if node["class_type"] not in FILE_INPUT_NODES:
            return ""
        return file_hash or "missing"

    def _file_hash(self, node: dict[str, Any]) -> str | None:
        """LoadImage's IS_CHANGED: the sha256 of the input file (None when it is missing)."""
        input_name = FILE_INPUT_NODES[node["class_type"]]
        name = str(node["inputs"].get(input_name, "")).rsplit(" [", 1)[0]
        path = self.state.input_dir / name
        try:
            return hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return None

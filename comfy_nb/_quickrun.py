"""``comfy-nb run``: submit one API-format workflow to a local-dialect ComfyUI server, wait for it
through ``/history``, and write its output files to a folder. A small synchronous path for the
command line; it prints progress to stderr and raises :class:`RunFailed` with a short message.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx


class RunFailed(Exception):
    """The workflow could not be submitted, failed on the server, or timed out."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_workflow(base_url: str, workflow: dict[str, Any], out_dir: Path,
                 timeout: float = 300.0) -> list[Path]:
    """Run ``workflow`` on the server at ``base_url`` and return the files written."""
    prompt_id = f"comfy-nb-{uuid.uuid4()}"
    with httpx.Client(base_url=base_url, timeout=30.0) as http:
        try:
            response = http.post("/prompt", json={"prompt": workflow, "prompt_id": prompt_id})
        except httpx.HTTPError as exc:
            raise RunFailed(f"cannot reach {base_url}: {exc}") from None
        if response.status_code != 200:
            raise RunFailed(_describe_rejection(response))
        _say(f"queued {prompt_id}")
        entry = _wait_for_history(http, prompt_id, timeout)
        status = entry.get("status", {})
        if status.get("status_str") != "success":
            raise RunFailed(_describe_failure(status))
        return _download_outputs(http, entry.get("outputs", {}), out_dir)


def _describe_rejection(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"server refused the workflow (HTTP {response.status_code})"
    error = body.get("error", {})
    lines = [f"server refused the workflow: {error.get('message', response.status_code)}"]
    for node_id, node in body.get("node_errors", {}).items():
        for problem in node.get("errors", []):
            lines.append(f"  node {node_id} ({node.get('class_type')}): {problem.get('message')}"
                         f" - {problem.get('details')}")
    return "\n".join(lines)


def _describe_failure(status: dict[str, Any]) -> str:
    for event, data in status.get("messages", []):
        if event == "execution_error":
            return (f"node {data.get('node_id')} ({data.get('node_type')}) failed: "
                    f"{str(data.get('exception_message', '')).strip()}")
        if event == "execution_interrupted":
            return "the run was interrupted"
    return "the run failed"


def _wait_for_history(http: httpx.Client, prompt_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = http.get(f"/history/{prompt_id}")
        response.raise_for_status()
        entry: dict[str, Any] | None = response.json().get(prompt_id)
        if entry is not None:
            return entry
        time.sleep(0.1)
    http.post("/queue", json={"delete": [prompt_id]})
    http.post("/interrupt", json={"prompt_id": prompt_id})
    raise RunFailed(f"no result after {timeout:.0f} s; the job was cancelled")


def _download_outputs(http: httpx.Client, outputs: dict[str, Any], out_dir: Path) -> list[Path]:
    written: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for output in outputs.values():
        for key, items in output.items():
            if key == "animated" or not isinstance(items, list):
                continue
            for item in items:
                if not isinstance(item, dict) or "filename" not in item:
                    continue
                params = {k: item.get(k, "") for k in ("filename", "subfolder", "type")}
                response = http.get("/view", params=params)
                response.raise_for_status()
                written.append(_write_atomically(out_dir / os.path.basename(item["filename"]),
                                                 response.content))
    return written


def _write_atomically(target: Path, data: bytes) -> Path:
    """Write via a temporary file and rename, so a crash never leaves a half-written file."""
    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target

"""``print(event)``: one short line per event, naming its class, its job and what happened."""

from __future__ import annotations

import comfy_nb
from comfy_nb.emulator import serve
from comfy_nb.events import (
    Cached,
    Failed,
    FeatureFlags,
    NodeExecuted,
    Preview,
    Progress,
    ProgressState,
    Queued,
    Text,
    Unknown,
)

JOB = "1f0c9a2e-5b7d-4c3e-9a1b-2c3d4e5f6a7b"


def test_each_event_of_a_real_job_prints_as_one_short_line() -> None:
    with serve(step_delay=0.001) as server, comfy_nb.connect(server.url) as client:
        job = client.submit("txt2img", overrides={"steps": 3})
        lines = [str(event) for event in job]
    assert len(lines) > 10
    assert all("\n" not in line and len(line) <= 80 for line in lines), lines
    assert all(f"(job {job.id[:8]}" in line for line in lines), lines
    assert f"Progress(job {job.id[:8]}: node 3, step 3/3)" in lines
    assert lines[-1] == f"Finished(job {job.id[:8]})"


def test_what_each_kind_says() -> None:
    huge = {str(i): {"state": "finished" if i < 70 else "running", "value": 1, "max": 1}
            for i in range(75)}
    assert str(ProgressState(JOB, huge)) == (
        "ProgressState(job 1f0c9a2e: 75 nodes: 70 finished, 5 running)")
    assert str(Queued(JOB, 3)) == "Queued(job 1f0c9a2e: number 3)"
    assert str(Cached(JOB, tuple(str(i) for i in range(10)))) == (
        "Cached(job 1f0c9a2e: nodes 0, 1, 2, 3, 4, 5, 6, 7 and 2 more)")
    assert str(Progress(JOB, "3", 12, 20)) == "Progress(job 1f0c9a2e: node 3, step 12/20)"
    assert str(NodeExecuted(JOB, "9", {"images": [{"filename": "a.png"}] * 40})) == (
        "NodeExecuted(job 1f0c9a2e: node 9, images)")
    failed = Failed(JOB, "3", "KSampler", "RuntimeError", "out of memory " * 20, ("tb",) * 50)
    assert str(failed).startswith("Failed(job 1f0c9a2e: node 3 (KSampler), RuntimeError: out of")
    assert len(str(failed)) < 120
    assert str(Preview(None, "3", "image/jpeg", b"\xff" * 5000)) == (
        "Preview(node 3, image/jpeg, 5000 bytes)")
    assert str(Text(JOB, "4", "a\nb")) == "Text(job 1f0c9a2e: node 4, 'a\\nb')"
    assert str(FeatureFlags(None, {"supports_preview_metadata": True})) == (
        "FeatureFlags(supports_preview_metadata=True)")
    assert str(Unknown(None, "binary:77", b"x" * 100)) == "Unknown(binary:77)"
    # repr still shows the fields
    assert repr(Progress(JOB, "3", 12, 20)).startswith(f"Progress(prompt_id='{JOB}'")

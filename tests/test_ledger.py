"""The job ledger (comfy_nb.ledger): jobs recorded next to the notebook are found again by a new
process, with their state on the server, over real sockets on the emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import comfy_nb
from comfy_nb import ledger
from comfy_nb.client import JobStatus
from comfy_nb.emulator import RunningEmulator, serve
from comfy_nb.workflows import bundled

from .factories import Clients, Emulators
from .wiretap import Wiretap

WAIT = 60.0
ROOT = Path(__file__).resolve().parents[1]


def txt2img(steps: int = 2) -> dict[str, Any]:
    workflow = bundled("txt2img")
    workflow["3"]["inputs"]["steps"] = steps
    workflow["5"]["inputs"].update(width=64, height=64)
    return workflow


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A ledger of this test's own, for this process and the processes it starts."""
    path = tmp_path / "ledger" / "jobs.jsonl"
    monkeypatch.setenv("COMFY_NB_JOBS", str(path))
    yield path
    ledger.settings.__init__()  # type: ignore[misc]


@pytest.fixture(scope="module")
def local(module_emulators: Emulators) -> RunningEmulator:
    return module_emulators(step_delay=0.0)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def python(script: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[
        str]:
    """Run ``script`` in a new Python process with the worktree first on the path."""
    environment = {**os.environ, **env,
                   "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=environment,
                          capture_output=True, text=True, timeout=timeout)


# -- a job outlives the process that submitted it -------------------------------------------------

SUBMIT_AND_DIE = """
    import os, signal
    import comfy_nb
    client = comfy_nb.connect()
    job = client.submit({workflow!r})
    print(job.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""

FIND_AND_FOLLOW = """
    import comfy_nb
    found = comfy_nb.jobs()
    print(len(found), found[0].id, found[0].status.value, flush=True)
    result = found[0].wait(60)
    print(result.status, ",".join(f.filename for f in result.files), len(result.images[0].read()))
"""


@pytest.mark.parametrize("dialect", ["local", "cloud"])
def test_a_new_process_follows_the_job_of_a_killed_one(dialect: str, journal: Path) -> None:
    with serve(dialect, step_delay=0.3) as server:
        if dialect == "local":
            env = {"COMFY_URL": server.url}
        else:  # the key from the environment, as for Comfy Cloud
            assert server.api_key
            env = {"COMFY_NB_CLOUD_URL": server.url, "COMFY_CLOUD_API_KEY": server.api_key}
        first = python(SUBMIT_AND_DIE.format(workflow=txt2img(steps=12)), env)
        assert first.returncode == -signal.SIGKILL, first.stderr
        job_id = first.stdout.strip()
        assert [entry["id"] for entry in lines(journal)] == [job_id]
        second = python(FIND_AND_FOLLOW, env)
        assert second.returncode == 0, second.stderr
        listed, result = second.stdout.splitlines()
        count, found, status = listed.split()
        assert (count, found) == ("1", job_id)
        assert status in ("queued", "running")  # 12 steps of 0.3 s: it had not ended
        state, files, size = result.split()
        assert (state, files) == ("succeeded", "ComfyUI_00001_.png") and int(size) > 100


# -- what a line holds -----------------------------------------------------------------------------


def test_an_entry_says_what_ran_where_and_never_a_secret(journal: Path, clients: Clients,
                                                         tmp_path: Path) -> None:
    canary = "comfyui-canary-key-1234567890"
    with serve("cloud", step_delay=0.0, api_key=canary) as cloud:
        client = clients.connect(cloud)
        workflow = txt2img()
        workflow["6"]["inputs"]["text"] = "a prompt-text-marker"
        result = client.run(workflow, partner_key=True, extra_data={"note": "extra-marker"},
                            timeout=WAIT)
        result.save(tmp_path / "out")
        with ledger.label(f"typed {canary} by mistake"):  # a key in a label or a value
            client.run(txt2img(), seed=4, timeout=WAIT, **{"Positive Prompt.text": canary})
        stored = journal.read_bytes()
        for secret in (canary, "api_key_comfy_org", "extra-marker", "prompt-text-marker",
                       cloud.storage_url, "token=", "Signature"):
            assert secret.encode() not in stored, secret
        entry, keyed = lines(journal)
        assert keyed["label"].startswith("typed [redacted] by mistake · ")
        assert keyed["label"].endswith(" · seed=4")  # (cell N between, under IPython)
        assert entry["id"] == result.prompt_id
        assert entry["server"] == cloud.url and entry["dialect"] == "cloud"
        assert entry["workflow"] == ledger.workflow_hash(result.workflow)
        assert entry["comfy_nb"] == comfy_nb.__version__
        assert abs(entry["submitted"] - time.time()) < 3600
        assert oct(journal.stat().st_mode & 0o777) == "0o600"


def test_a_label_names_the_jobs_submitted_under_it(journal: Path, clients: Clients,
                                                   local: RunningEmulator) -> None:
    client = clients.connect(local)
    with ledger.label("portraits"):
        client.run(txt2img(), seed=5, timeout=WAIT)
    client.run(txt2img(), timeout=WAIT)
    first, second = lines(journal)
    # (with " · cell N" in between where an IPython shell runs in this process)
    assert first["label"].startswith("portraits · ") and first["label"].endswith(" · seed=5")
    assert "portraits" not in second["label"] and "seed" not in second["label"]
    with ledger.label("x" * 10_000):  # a line stays under PIPE_BUF
        job = client.submit(txt2img())
    assert len(journal.read_bytes().splitlines()[-1]) <= ledger.LINE_LIMIT
    assert ledger.read_entries()[-1].id == job.id
    job.wait(WAIT)


# -- what is not recorded ------------------------------------------------------------------------


def test_cache_hits_replays_and_a_ledger_turned_off_record_nothing(
        journal: Path, clients: Clients, local: RunningEmulator, tmp_path: Path) -> None:
    cache = comfy_nb.ResultCache(tmp_path / "cache")
    client = clients.connect(local, result_cache=cache)
    first = client.run(txt2img(), seed=9, cache=True, timeout=WAIT)
    again = client.run(txt2img(), seed=9, cache=True, timeout=WAIT)
    assert again.from_cache and [entry["id"] for entry in lines(journal)] == [first.prompt_id]

    with comfy_nb.record(tmp_path / "recording"):
        client.run(txt2img(), seed=10, timeout=WAIT)
    before = journal.read_bytes()
    replayed = comfy_nb.replay(tmp_path / "recording")
    try:
        replayed.run(txt2img(), seed=10, timeout=WAIT)
    finally:
        replayed.close()
    assert journal.read_bytes() == before

    ledger.settings.path = "off"
    client.run(txt2img(), seed=11, timeout=WAIT)
    assert journal.read_bytes() == before
    ledger.settings.path = None
    os.environ["COMFY_NB_JOBS"] = "off"  # (the fixture's monkeypatch puts it back)
    client.run(txt2img(), seed=12, timeout=WAIT)
    assert journal.read_bytes() == before and ledger.ledger_path() is None


# -- reading the file ----------------------------------------------------------------------------


def entry_line(job_id: str, server: str = "http://127.0.0.1:1", *, age_days: float = 0.0,
               label: str = "") -> str:
    return json.dumps({"v": 1, "id": job_id, "server": server, "dialect": "local",
                       "workflow": "sha256:00", "label": label,
                       "submitted": time.time() - age_days * 86400, "comfy_nb": "0"}) + "\n"


def test_damaged_lines_are_skipped(journal: Path) -> None:
    journal.parent.mkdir(parents=True)
    journal.write_text(entry_line("a") + "{not json\n" + '["a list"]\n' + '{"id": 5}\n'
                       + '{"id": "b", "server": "x"}\n' + entry_line("c")
                       + '{"v": 1, "id": "c", "saved": ["out/c.png", 7]}\n'
                       + entry_line("d")[:40])
    entries = ledger.read_entries()
    assert [entry.id for entry in entries] == ["a", "c"]
    assert entries[1].saved == ["out/c.png"]


def test_pruning_drops_old_entries_and_keeps_the_newest(journal: Path) -> None:
    journal.parent.mkdir(parents=True)
    journal.write_text(entry_line("old", age_days=31) + "garbage\n"
                       + "".join(entry_line(f"j{n}", age_days=10 - n) for n in range(8))
                       + '{"v": 1, "id": "j7", "saved": ["out/j7.png"]}\n'
                       + '{"v": 1, "id": "old", "saved": ["out/old.png"]}\n')
    ledger.prune()
    assert [entry.id for entry in ledger.read_entries()] == [f"j{n}" for n in range(8)]
    ledger.settings.max_entries = 3
    ledger.prune()
    kept = ledger.read_entries()
    assert [entry.id for entry in kept] == ["j5", "j6", "j7"] and kept[2].saved == ["out/j7.png"]
    assert b"old" not in journal.read_bytes() and b"garbage" not in journal.read_bytes()
    left = {p.name for p in journal.parent.iterdir()}  # no temporary file is left behind
    assert left <= {"jobs.jsonl", "jobs.jsonl.lock"}
    inode = journal.stat().st_ino
    ledger.prune()  # nothing to drop: the file is not rewritten
    assert journal.stat().st_ino == inode


APPENDER = """
    import sys, time
    from pathlib import Path
    from comfy_nb import ledger
    name, path = sys.argv[1], Path(sys.argv[2])
    for n in range(300):
        ledger.append({{"v": 1, "id": f"{{name}}-{{n}}", "server": "s", "dialect": "local",
                       "workflow": "w", "label": name * 3000, "submitted": time.time(),
                       "comfy_nb": "0"}}, path)
        if n % 10 == 0:
            ledger.prune(path)
"""


def test_processes_appending_at_once_never_mix_their_lines(journal: Path) -> None:
    script = textwrap.dedent(APPENDER.format())
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([sys.executable, "-c", script, name, str(journal)],
                                env=environment) for name in ("a", "b")]
    assert [writer.wait(120) for writer in writers] == [0, 0]
    raw = journal.read_bytes().splitlines()
    assert len(raw) == 600 and all(json.loads(line)["id"] for line in raw)
    ids = {entry.id for entry in ledger.read_entries()}
    assert ids == {f"{name}-{n}" for name in "ab" for n in range(300)}


# -- listing ---------------------------------------------------------------------------------------


def test_jobs_lists_this_servers_jobs_newest_first_with_their_state(
        journal: Path, clients: Clients, local: RunningEmulator, emulators: Emulators) -> None:
    client = clients.connect(local)
    done = client.run(txt2img(), seed=1, timeout=WAIT)
    slow = emulators(step_delay=0.2)
    other = clients.connect(slow)
    running = other.submit(txt2img(steps=30))
    with journal.open("a") as file:  # a job the server forgot (e.g. it was restarted)
        file.write(entry_line("forgotten-job", public(client.url)))
    found = comfy_nb.jobs(client)
    assert [job.id for job in found] == ["forgotten-job", done.prompt_id]
    forgotten, finished = found
    assert forgotten.status is JobStatus.UNKNOWN and not forgotten.known
    assert "does not know" in (forgotten.problem or "")
    assert finished.status is JobStatus.SUCCEEDED and finished.known
    assert finished.wait(WAIT).files[0].filename == done.files[0].filename

    everywhere = comfy_nb.jobs(client, all_servers=True)
    assert [job.id for job in everywhere] == ["forgotten-job", running.id, done.prompt_id]
    assert everywhere[1].problem == f"submitted to {public(slow.url)}, not to " \
        f"{public(client.url)}"
    with pytest.raises(comfy_nb.ComfyError, match="follow it with a client of that server"):
        everywhere[1].wait(1)
    (mine,) = comfy_nb.jobs(other)
    assert mine.id == running.id and mine.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    assert mine.cancel() is True
    with pytest.raises(comfy_nb.JobCancelled):
        mine.wait(WAIT)
    assert len(comfy_nb.jobs(client, limit=1)) == 1
    with pytest.raises(comfy_nb.JobLost):
        forgotten.wait(WAIT)
    with pytest.raises(ValueError, match="limit"):
        comfy_nb.jobs(client, limit=0)


def test_a_job_beyond_the_servers_listing_is_read_on_its_own(
        journal: Path, clients: Clients, local: RunningEmulator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    client = clients.connect(local)
    first = client.run(txt2img(), seed=1, timeout=WAIT)
    ledger.settings.path = "off"
    client.run(txt2img(), seed=2, timeout=WAIT)  # newer, and not in the ledger
    ledger.settings.path = None
    monkeypatch.setattr(ledger, "LISTING_WINDOW", 1)  # the listing shows only that one
    (older,) = comfy_nb.jobs(client)
    assert older.id == first.prompt_id and older.status is JobStatus.SUCCEEDED
    assert older.wait(WAIT).files[0].filename == first.files[0].filename


def public(url: str) -> str:
    from comfy_nb.provenance import public_url

    return public_url(url) or ""


async def test_jobs_wants_a_synchronous_client(journal: Path, clients: Clients,
                                               local: RunningEmulator) -> None:
    api = await clients.api("async", local)
    with pytest.raises(TypeError, match=r"takes a comfy_nb\.Client"):
        comfy_nb.jobs(api.client)


@pytest.mark.parametrize("dialect", ["local", "cloud"])
def test_the_status_of_many_jobs_comes_from_one_listing(dialect: str, journal: Path,
                                                        clients: Clients,
                                                        emulators: Emulators) -> None:
    server = emulators(dialect, step_delay=0.0)
    tap = Wiretap(server.url).start()
    try:
        client = clients.connect(server, url=tap.url)
        ids = [client.run(txt2img(), seed=seed, timeout=WAIT).prompt_id for seed in range(4)]
        restarted = clients.connect(server, url=tap.url)  # a new kernel's client
        before = len(tap.requests())
        found = comfy_nb.jobs(restarted)
        sent = [head.split(b" ")[1].split(b"?")[0] for head in tap.requests()[before:]]
    finally:
        tap.close()
    assert [job.id for job in found] == ids[::-1]
    assert {job.status for job in found} == {JobStatus.SUCCEEDED}
    expected = [b"/api/queue", b"/api/history"] if dialect == "local" else [b"/api/jobs"]
    assert sent == expected


def test_recording_jobs_prunes_the_ledger_off_the_clients_event_loop(
        journal: Path, local: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    pruned_on: list[str] = []
    real_prune = ledger.prune

    def prune(path: Path | None = None) -> None:
        pruned_on.append(threading.current_thread().name)
        real_prune(path)

    monkeypatch.setattr(ledger, "prune", prune)
    monkeypatch.setattr(ledger, "_recorded", 0)  # the next job recorded is a pruning one
    ledger.settings.max_entries = 1
    with comfy_nb.connect(local.url) as client:
        first = client.submit(txt2img())
        first.wait(WAIT)
        for _ in range(100):
            if pruned_on:
                break
            time.sleep(0.05)
        assert pruned_on == ["comfy_nb-ledger-prune"]
        assert [entry.id for entry in ledger.read_entries()] == [first.id]


def test_the_jobs_of_a_pool_are_those_of_its_members(journal: Path, emulators: Emulators,
                                                     local: RunningEmulator) -> None:
    first, second = emulators(node_delay=0.3), emulators(node_delay=0.3)
    with comfy_nb.connect(local.url) as elsewhere:
        elsewhere.run(txt2img(3))
    with comfy_nb.connect([first.url, second.url]) as pool:
        submitted = [pool.submit(txt2img(steps)) for steps in (4, 5)]
        assert {pool.server_of(job.id) for job in submitted} == {first.url, second.url}
        for job in submitted:
            job.wait(WAIT)
        found = comfy_nb.jobs(pool)
        assert [job.id for job in found] == [job.id for job in reversed(submitted)]
        assert {job.server for job in found} == {first.url, second.url}
        assert all(job.status is JobStatus.SUCCEEDED for job in found)
        assert found[0].wait(WAIT).images  # followed through the pool, on its member
        assert ledger.find(submitted[0].id[:8], pool).id == submitted[0].id
        everything = comfy_nb.jobs(pool, all_servers=True)
        assert len(everything) == 3 and everything[-1].server == local.url
        assert everything[-1].status is JobStatus.UNKNOWN

"""comfy_nb.recordings: recording the jobs of a process against the emulator over real sockets, and
replaying them with no server and no network request — through the synchronous and the async
clients (the ``mode`` fixture), in the magics, and in ``notebooks/record_replay.ipynb`` run in a
kernel whose network is closed.

The session's conftest keeps the result cache off; tests that need it pass their own
``ResultCache``.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from PIL import Image

import comfy_nb
from comfy_nb import ExecutionFailed, ResultCache, WorkflowInvalid
from comfy_nb.client import _runs as client_module
from comfy_nb.emulator import RunningEmulator, serve
from comfy_nb.recordings import (
    AsyncReplayClient,
    Recording,
    ReplayClient,
    ReplayedResult,
    ReplayError,
    ReplayMismatch,
)
from comfy_nb.workflows import bundled

from .both_clients import WAIT, Api, load_and_save
from .factories import Clients, Emulators
from .notebook.nbrun import execute_notebook, notebook_problems

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "record_replay.ipynb"
FOX = {"Positive Prompt.text": "a red fox in the snow"}


# -- workflows -------------------------------------------------------------------------------------


def txt2img() -> dict[str, Any]:
    """The bundled text-to-image graph, small and short."""
    workflow = bundled("txt2img")
    workflow["3"]["inputs"]["steps"] = 2
    workflow["5"]["inputs"].update(width=64, height=64)
    return workflow


def solid(color: int = 0x336699) -> dict[str, Any]:
    """EmptyImage -> SaveImage."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                     "color": color},
              "_meta": {"title": "Canvas"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                    "filename_prefix": "replay_test"}},
    }


def failing() -> dict[str, Any]:
    """A graph whose ImageSharpen node fails on the emulator."""
    broken = solid()
    broken["3"] = {"class_type": "ImageSharpen", "inputs": {
        "image": ["1", 0], "sharpen_radius": 1, "sigma": 1.0, "alpha": 1.0}}
    broken["4"] = {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}
    return broken


def editor_solid() -> dict[str, Any]:
    """:func:`solid` as the editor saves it (UI format)."""
    return {"nodes": [
        {"id": 1, "type": "EmptyImage", "inputs": [], "mode": 0,
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
         "widgets_values": [8, 8, 1, 0x123456]},
        {"id": 2, "type": "SaveImage", "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
         "outputs": [], "mode": 0, "widgets_values": ["replay_ui"]}],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]], "groups": [], "version": 0.4}


def picture(color: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (4, 4), color)


def every_byte(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file())


# -- the network, closed -------------------------------------------------------------------------


class NetworkClosed:
    """Every connect, datagram and name lookup of this process refused and noted."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def refuse(self, kind: str, address: Any) -> OSError:
        self.attempts.append(f"{kind} {address!r}")
        return ConnectionRefusedError(f"the network is closed: {kind} {address!r}")


@pytest.fixture
def network_closed(monkeypatch: pytest.MonkeyPatch) -> NetworkClosed:
    closed = NetworkClosed()

    def connect(self: socket.socket, address: Any) -> None:
        raise closed.refuse("connect", address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        raise closed.refuse("connect_ex", address)

    def sendto(self: socket.socket, data: bytes, *rest: Any) -> int:
        raise closed.refuse("sendto", rest[-1])

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise closed.refuse("getaddrinfo", host)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return closed


# -- clients, both ways ---------------------------------------------------------------------------


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def server(module_emulators: Emulators) -> RunningEmulator:
    return module_emulators(step_delay=0.0)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "recording"


@pytest.fixture
async def clients(mode: str, server: RunningEmulator, clients: Clients) -> AsyncIterator[Any]:
    """``await clients.live(**options)`` (made by the ``clients`` factory of tests/conftest.py)
    and ``await clients.replay(path)``; closed at the end."""
    made: list[Api] = []

    class Make:
        @staticmethod
        async def live(url: str | None = None, **options: Any) -> Api:
            options = {"poll_interval": 0.2, **options}
            return await clients.api(mode, server, url=url, **options)

        @staticmethod
        async def replay(path: Path) -> Api:
            client: Any = (comfy_nb.replay(path) if mode == "sync"
                           else await AsyncReplayClient(path).open())
            made.append(Api(mode, client))
            return made[-1]

    yield Make
    for api in made:
        await api.close()


async def stop(recording: Recording, mode: str) -> None:
    if mode == "sync":
        recording.stop()
    else:
        await recording.astop()


@pytest.fixture(autouse=True)
def no_recording_left() -> Iterator[None]:
    """A failing test must not leave its recording registered for the next ones."""
    yield
    for recording in recordings_observing():
        recording.stop(timeout=5)
    assert recordings_observing() == []


def recordings_observing() -> list[Recording]:
    """The recordings told of every job (the job ledger is told too, always)."""
    return [observer.__self__ for observer in client_module.job_observers
            if isinstance(getattr(observer, "__self__", None), Recording)]


# -- record, then replay ---------------------------------------------------------------------------


async def test_record_then_replay(clients: Any, folder: Path, mode: str) -> None:
    live = await clients.live()
    recording = comfy_nb.record(folder)
    first = await live.run(txt2img(), seed=42, timeout=WAIT)
    second = await live.run(txt2img(), overrides=FOX, seed="random", timeout=WAIT)
    assert len(recording.written) == 2  # run() returns once its job is written
    await stop(recording, mode)
    await live.close()

    replayed = await clients.replay(folder)
    assert replayed.url == f"replay:{folder}" and replayed.dialect == "local"
    again = await replayed.run(txt2img(), seed=42, timeout=WAIT)
    assert isinstance(again, ReplayedResult) and again.prompt_id == first.prompt_id
    assert await replayed.read(again.images[0]) == await live.read(first.images[0])
    assert again.replayed_from.server == "the comfy_nb emulator (local)"
    label = again.replayed_from.label
    assert label.startswith("replayed from 20") and label in repr(again)
    bundle = again._repr_mimebundle_()
    assert label in bundle["text/plain"] and "comfy-nb-replayed" in bundle["text/html"]
    assert again.workflow is not None and again.workflow["3"]["inputs"]["seed"] == 42

    # the "random" seed replays, with the seed drawn while recording
    job = await replayed.submit(txt2img(), overrides=FOX, seed="random")
    fox = await replayed.wait(job)
    assert fox.prompt_id == second.prompt_id
    assert job.resolved_seeds == second.provenance["resolved_seeds"] != {}
    assert await replayed.read(fox.images[0]) == await live.read(second.images[0])
    assert fox.provenance["replayed_from"]["server"] == fox.replayed_from.server

    # what the progress display reads: a finished job, every node accounted for
    progress = job.progress()
    assert job.done and progress.nodes_done == progress.nodes_total == 7
    assert job.node_progress.get("3") == (2, 2)


async def test_a_changed_cell_is_a_mismatch_never_a_near_match(clients: Any,
                                                              folder: Path, mode: str) -> None:
    live = await clients.live()
    async with comfy_nb.record(folder):
        await live.run(txt2img(), seed=42, timeout=WAIT)
        await live.run(solid(), timeout=WAIT)
    replayed = await clients.replay(folder)

    with pytest.raises(ReplayMismatch) as caught:
        await replayed.run(txt2img(), seed=7, timeout=WAIT)
    error = caught.value
    assert error.closest is not None and error.closest.startswith("01-")
    assert error.differences == ["KSampler.seed: recorded 42, now 7"]
    lines = error.notebook_lines()
    assert len(lines) <= 6 and "KSampler.seed: recorded 42, now 7" in "\n".join(lines)
    assert "comfy_nb.record(" in lines[-1]

    changed = solid()
    changed["3"] = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    with pytest.raises(ReplayMismatch) as caught:
        await replayed.submit(changed)
    assert caught.value.closest is not None and caught.value.closest.startswith("02-")
    assert caught.value.differences == ["PreviewImage: a node not in the recorded run"]

    with pytest.raises(ReplayMismatch, match="random"):
        await replayed.run(txt2img(), seed="random", timeout=WAIT)  # recorded with 42
    assert isinstance(await replayed.run(txt2img(), seed=42, timeout=WAIT), ReplayedResult)


async def test_uploaded_files_match_by_their_bytes(clients: Any, folder: Path,
                                                   mode: str) -> None:
    live = await clients.live()
    red, blue = picture((255, 0, 0)), picture((0, 0, 255))
    async with comfy_nb.record(folder):
        await live.run(load_and_save("placeholder.png"), image=red, timeout=WAIT)
        name = await live.upload_image(blue, name="blue.png")
        await live.run(load_and_save(name), timeout=WAIT)
    recorded = every_byte(folder)
    replayed = await clients.replay(folder)
    assert isinstance(await replayed.run(load_and_save("placeholder.png"), image=red,
                                         timeout=WAIT), ReplayedResult)
    assert await replayed.upload_image(blue, name="blue.png") == name  # nothing is uploaded
    assert isinstance(await replayed.run(load_and_save(name), timeout=WAIT), ReplayedResult)

    with pytest.raises(ReplayMismatch) as caught:
        await replayed.run(load_and_save("placeholder.png"), image=picture((0, 255, 0)),
                           timeout=WAIT)
    (difference,) = caught.value.differences
    assert difference.startswith("LoadImage.image: recorded a file with sha256 ")
    assert every_byte(folder) == recorded  # replaying writes nothing into the recording


async def test_cache_hits_are_recorded(clients: Any, folder: Path, tmp_path: Path,
                                       server: RunningEmulator, mode: str) -> None:
    live = await clients.live(result_cache=ResultCache(tmp_path / "cache"))
    made = await live.run(solid(0x445566), cache=True, timeout=WAIT)
    submitted = len(server.state.jobs)
    async with comfy_nb.record(folder) as recording:
        hit = await live.run(solid(0x445566), cache=True, timeout=WAIT)
        assert hit.from_cache and len(server.state.jobs) == submitted
        fresh = await live.run(solid(0x778899), cache=True, timeout=WAIT)
        assert not fresh.from_cache and len(recording.written) == 2
    replayed = await clients.replay(folder)
    again = await replayed.run(solid(0x445566), timeout=WAIT)
    assert await replayed.read(again.images[0]) == await live.read(made.images[0])
    assert (await replayed.submit(solid(0x445566))).nodes_cached == {"1", "2"}


async def test_failed_runs_replay_as_the_same_failure(clients: Any, folder: Path,
                                                      mode: str) -> None:
    live = await clients.live()
    with pytest.raises(ExecutionFailed) as recorded:
        async with comfy_nb.record(folder):
            await live.run(failing(), timeout=WAIT)
    replayed = await clients.replay(folder)
    with pytest.raises(ExecutionFailed) as replayed_error:
        await replayed.run(failing(), timeout=WAIT)
    assert str(replayed_error.value) == str(recorded.value)
    assert replayed_error.value.node_type == "ImageSharpen"


async def test_invalid_runs_replay_as_the_same_validation_error(clients: Any, folder: Path,
                                                              mode: str) -> None:
    """An invalid run never reaches the server, so it is not recorded: replaying the unchanged
    cell must show its validation problems again, not call it a changed cell."""
    live = await clients.live()
    bad = {"KSampler.cfg": 300, "steps": 0}
    async with comfy_nb.record(folder):
        await live.run(txt2img(), seed=42, timeout=WAIT)
        with pytest.raises(WorkflowInvalid) as recorded:
            await live.run(txt2img(), overrides=bad, seed=42, timeout=WAIT)
    replayed = await clients.replay(folder)
    with pytest.raises(WorkflowInvalid) as replayed_error:
        await replayed.run(txt2img(), overrides=bad, seed=42, timeout=WAIT)
    assert str(replayed_error.value) == str(recorded.value)
    with pytest.raises(ReplayMismatch):  # valid but not recorded: still a mismatch
        await replayed.run(txt2img(), seed=43, timeout=WAIT)
    with pytest.raises(ReplayMismatch):  # validate=False: never judged, only matched
        await replayed.run(txt2img(), overrides=bad, seed=42, validate=False, timeout=WAIT)


async def test_editor_workflows_replay_with_the_recorded_node_definitions(
        clients: Any, folder: Path, mode: str) -> None:
    live = await clients.live()
    async with comfy_nb.record(folder):
        made = await live.run(editor_solid(), overrides={"EmptyImage.width": 16}, timeout=WAIT)
    info = json.loads((folder / "object_info.json").read_text())
    assert sorted(info) == ["EmptyImage", "SaveImage"]  # the classes used, nothing more
    replayed = await clients.replay(folder)
    again = await replayed.run(editor_solid(), overrides={"EmptyImage.width": 16}, timeout=WAIT)
    assert await replayed.read(again.images[0]) == await live.read(made.images[0])
    assert sorted(await replayed.object_info()) == ["EmptyImage", "SaveImage"]


# -- no server, no network, no secret ------------------------------------------------------------


def test_replay_makes_no_network_request(server: RunningEmulator, folder: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         request: pytest.FixtureRequest) -> None:
    with comfy_nb.connect(server.url) as live, comfy_nb.record(folder):
        made = live.run(txt2img(), seed=42, timeout=WAIT)
        expected = made.images[0].read()
    monkeypatch.setenv("COMFY_URL", "http://127.0.0.1:9")  # nothing there, and never tried
    monkeypatch.delenv("COMFY_CLOUD_API_KEY", raising=False)
    closed: NetworkClosed = request.getfixturevalue("network_closed")
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", 9))  # the guard works
    closed.attempts.clear()

    with comfy_nb.replay(folder) as replayed:
        result = replayed.run(txt2img(), seed=42, timeout=WAIT)
        assert result.images[0].read() == expected
        assert replayed.queue() == [] and replayed.cancel(result.prompt_id) is False
        replayed.interrupt()
        assert replayed.label in replayed.system_stats()["replay"]["label"]
        assert "KSampler" in replayed.object_info()
        with pytest.raises(ReplayMismatch):
            replayed.run(txt2img(), seed=1, timeout=WAIT)
        with pytest.raises(ReplayError, match="needs a server"):
            replayed.upload_mask(picture((1, 2, 3)), "x.png")
        with pytest.raises(ReplayError, match="no network request"):
            replayed.run(load_and_save("https://example.com/cat.png"), timeout=WAIT)
        assert result.save(folder.parent / "saved")[0].read_bytes().startswith(b"\x89PNG")
    assert closed.attempts == []


async def test_no_secret_in_a_recording(clients: Any, folder: Path, mode: str) -> None:
    with serve(dialect="cloud", step_delay=0.0) as cloud:
        assert cloud.api_key
        live = await clients.live(cloud.url, api_key=cloud.api_key)
        async with comfy_nb.record(folder):
            await live.run(txt2img(), seed=3, partner_key=True,
                           extra_data={"note": "extra-data-marker"}, timeout=WAIT)
            await live.run(solid(), partner_key="partner-key-marker", timeout=WAIT)
            await live.run(load_and_save("x.png"), image=picture((9, 9, 9)), timeout=WAIT)
        await live.close()
        stored = every_byte(folder)
        assert len(json.loads((folder / "recording.json").read_text())["jobs"]) == 3
        for secret in (cloud.api_key, "Signature", "api_key_comfy_org", "partner-key-marker",
                       "extra-data-marker", cloud.storage_url, "token="):
            assert secret.encode() not in stored, secret
        replayed = await clients.replay(folder)
        assert replayed.dialect == "cloud"
        assert isinstance(await replayed.run(solid(), timeout=WAIT), ReplayedResult)


async def test_a_run_holding_its_key_is_not_recorded(clients: Any, folder: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    with serve(dialect="cloud", step_delay=0.0) as cloud:
        assert cloud.api_key
        live = await clients.live(cloud.url, api_key=cloud.api_key)
        async with comfy_nb.record(folder) as recording:
            await live.run(txt2img(), overrides={"Positive Prompt.text": cloud.api_key},
                           timeout=WAIT)
        assert recording.written == [] and "contains a key" in caplog.text
        assert not folder.exists() or cloud.api_key.encode() not in every_byte(folder)


# -- the folder ------------------------------------------------------------------------------------


def test_recordings_are_plain_files_that_diff_well(tmp_path: Path) -> None:
    """The same cells recorded twice, each time on a newly started emulator (a new port)."""
    folders = [tmp_path / "one", tmp_path / "two"]
    for target in folders:
        with serve(step_delay=0.0) as server, comfy_nb.connect(server.url) as live, \
                comfy_nb.record(target):
            live.run(txt2img(), seed=5, timeout=WAIT)
            live.run(solid(), timeout=WAIT)
    one, two = ({p.relative_to(f).as_posix() for p in f.rglob("*") if p.is_file()}
                for f in folders)
    assert one == two  # same runs: same folder and file names
    names = sorted(one)
    assert names[-2:] == ["object_info.json", "recording.json"]
    assert [n for n in names if n.endswith("workflow.json")] == [
        n for n in names if n.startswith(("01-", "02-")) and n.endswith("workflow.json")]
    for name in names:
        if name.endswith("workflow.json"):
            text = (folders[0] / name).read_text()
            assert text == (folders[1] / name).read_text()  # identical runs diff as nothing
            assert text == json.dumps(json.loads(text), indent=1, sort_keys=True,
                                      ensure_ascii=False) + "\n"
    index = json.loads((folders[0] / "recording.json").read_text())
    assert [job["folder"][:3] for job in index["jobs"]] == ["01-", "02-"]
    assert index["server"]["emulator"] and "url" not in index["server"]  # its port churns

    # recording the same runs again changes the ids and times, nothing else
    def lines(path: Path) -> list[str]:
        churn = ('"prompt_id":', '"recorded":', '"created":')
        return [line for line in path.read_text().splitlines()
                if not line.strip().startswith(churn)]

    for name in names:
        if name.endswith(".json"):
            assert lines(folders[0] / name) == lines(folders[1] / name), name
    job = json.loads(next(folders[0].glob("01-*/job.json")).read_text())
    assert set(job) == {"format", "comfy_nb", "prompt_id", "status", "recorded", "server",
                        "parameters", "resolved_seeds", "random", "inputs", "outputs", "files",
                        "events", "error"}


def test_identical_runs_are_stored_once(server: RunningEmulator, folder: Path) -> None:
    with comfy_nb.connect(server.url) as live, comfy_nb.record(folder) as recording:
        live.run(solid(), timeout=WAIT)
        live.run(solid(), timeout=WAIT)
        live.run(txt2img(), seed="random", timeout=WAIT)
        live.run(txt2img(), seed="random", timeout=WAIT)
    assert len(recording.written) == 3  # two random seeds make two pictures
    with comfy_nb.replay(folder) as replayed:
        served = [replayed.run(txt2img(), seed="random", timeout=WAIT).prompt_id
                  for _ in range(3)]
    assert served[0] != served[1] == served[2]  # in recorded order, then the last again


def test_a_new_recording_replaces_the_old_one(server: RunningEmulator, folder: Path,
                                              tmp_path: Path) -> None:
    with comfy_nb.connect(server.url) as live:
        with comfy_nb.record(folder):
            live.run(solid(1), timeout=WAIT)
        (folder / "notes.txt").write_text("mine")
        with comfy_nb.record(folder):
            live.run(solid(2), timeout=WAIT)
        with comfy_nb.record(folder, append=True):
            live.run(solid(3), timeout=WAIT)
    with comfy_nb.replay(folder) as replayed:
        assert [run.name[:3] for run in replayed.runs] == ["01-", "02-"]
        with pytest.raises(ReplayMismatch):
            replayed.run(solid(1), timeout=WAIT)
        replayed.run(solid(2), timeout=WAIT)
        replayed.run(solid(3), timeout=WAIT)
    assert (folder / "notes.txt").read_text() == "mine"  # only the recording is replaced

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("1,2")
    with pytest.raises(FileExistsError):
        comfy_nb.record(foreign)
    with pytest.raises(ReplayError, match="no recording"):
        comfy_nb.replay(tmp_path / "nothing")


def test_a_changed_output_file_is_refused(server: RunningEmulator, folder: Path) -> None:
    with comfy_nb.connect(server.url) as live, comfy_nb.record(folder):
        live.run(solid(), timeout=WAIT)
    (png,) = folder.glob("01-*/outputs/*.png")
    png.write_bytes(png.read_bytes() + b"x")
    with comfy_nb.replay(folder) as replayed:
        result = replayed.run(solid(), timeout=WAIT)
        with pytest.raises(ReplayError, match="changed after it was recorded"):
            result.images[0].read()
        with pytest.raises(ReplayError, match="changed after it was recorded"):
            result.save(folder.parent / "saved")  # streamed, and checked all the same
        assert not (folder.parent / "saved").exists()
        png.unlink()
        with pytest.raises(ReplayError, match="missing from the recording"):
            result.save(folder.parent / "saved")


# -- the magics ------------------------------------------------------------------------------------


def test_comfy_run_cells_replay(server: RunningEmulator, folder: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``%comfy record PATH`` / ``%comfy replay PATH`` do: record, or make the session's
    client a ReplayClient; ``%%comfy_run`` cells then run as before."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("COMFY_URL", server.url)
    monkeypatch.setenv("COMFY_NB_PROGRESS", "html")
    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "comfy_nb")
    try:
        magics = ip._comfy_nb_magics  # type: ignore[attr-defined]
        with comfy_nb.record(folder):
            made = magics.run(txt2img(), {"seed": "random"}, quiet=True)
        magics.client.close()
        magics.client = comfy_nb.replay(folder)
        again = magics.run(txt2img(), {"seed": "random"}, quiet=True)
        assert isinstance(again, ReplayedResult) and again.prompt_id == made.prompt_id
        assert (tmp_path / "comfy_outputs").is_dir()
        with pytest.raises(ReplayMismatch):
            magics.run(txt2img(), {"seed": 1}, quiet=True)
    finally:
        ip.run_line_magic("unload_ext", "comfy_nb")


# -- the notebook, with the network closed -------------------------------------------------------

GUARD = '''
"""Close the network to this kernel: every connect, datagram and name lookup is refused and
written to $COMFY_NB_NETWORK_LOG (the kernel's own channels are ZeroMQ, not Python sockets)."""
import json as _json, os as _os, socket as _socket


def _comfy_nb_close_the_network() -> None:
    log = _os.environ["COMFY_NB_NETWORK_LOG"]

    def refuse(kind, address):
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(_json.dumps({"call": kind, "address": repr(address)}) + "\\n")
        return ConnectionRefusedError(f"the network is closed to this kernel: {kind} {address!r}")

    def connect(self, address):
        raise refuse("connect", address)

    def connect_ex(self, address):
        raise refuse("connect_ex", address)

    def sendto(self, data, *rest):
        raise refuse("sendto", rest[-1])

    def bind(self, address):
        raise refuse("bind", address)

    def getaddrinfo(host, *args, **kwargs):
        raise refuse("getaddrinfo", host)

    _socket.socket.connect = connect
    _socket.socket.connect_ex = connect_ex
    _socket.socket.sendto = sendto
    _socket.socket.bind = bind
    _socket.getaddrinfo = getaddrinfo
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(_json.dumps({"call": "guard installed", "pid": _os.getpid()}) + "\\n")


_comfy_nb_close_the_network()
del _comfy_nb_close_the_network
'''

PROBE = '''import socket
try:
    socket.socket().connect(("127.0.0.1", 9))
except ConnectionRefusedError as exc:
    print("probe:", exc)'''


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_notebook_replays_with_the_network_closed(tmp_path: Path) -> None:
    """Run ``record_replay.ipynb`` on an emulator (it records, then replays); then run it again
    without its cells tagged ``record``, in a kernel with no server and the network closed:
    the replayed cells show their results, labelled, and the changed cell fails as a mismatch —
    and the kernel tried no connection but the probe's."""
    workdir = tmp_path / "notebooks"
    workdir.mkdir()
    shutil.copy(NOTEBOOK, workdir / NOTEBOOK.name)
    with serve(step_delay=0.01) as emulator:
        recorded = execute_notebook(workdir / NOTEBOOK.name, env={"COMFY_URL": emulator.url},
                                    timeout=120)
    assert notebook_problems(recorded) == []
    assert (workdir / "recording" / "recording.json").is_file()
    size = sum(p.stat().st_size for p in (workdir / "recording").rglob("*") if p.is_file())
    assert size < 300_000

    offline = nbformat.read(workdir / NOTEBOOK.name, as_version=4)
    offline.cells = [cell for cell in offline.cells
                     if "record" not in cell.get("metadata", {}).get("tags", [])]
    offline.cells.append(nbformat.v4.new_code_cell(PROBE, id="probe"))
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-close-the-network.py").write_text(GUARD)
    log = tmp_path / "network.log"
    executed = execute_notebook(offline, cwd=workdir, timeout=120, env={
        "IPYTHONDIR": str(tmp_path / "ipython"), "COMFY_NB_NETWORK_LOG": str(log),
        "COMFY_URL": f"http://127.0.0.1:{closed_port()}"})

    assert notebook_problems(executed) == []
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls[0]["call"] == "guard installed"
    assert [(c["call"], c["address"]) for c in calls[1:]] == [("connect", "('127.0.0.1', 9)")]
    outputs = {cell.get("id"): cell.get("outputs", []) for cell in executed.cells}
    assert "the network is closed" in "".join(o.get("text", "") for o in outputs["probe"])
    for cell_id in ("rr-replay-1", "rr-replay-2"):
        html = "".join("".join(o.get("data", {}).get("text/html", ""))
                       for o in outputs[cell_id])
        assert "replayed from" in html and "comfy-nb-result" in html, cell_id
    (error,) = [o for o in outputs["rr-mismatch"] if o["output_type"] == "error"]
    assert error["ename"] == "ReplayMismatch"
    assert "KSampler.seed: recorded 42, now 7" in "\n".join(error["traceback"])


def test_the_notebook_is_committed_clean() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") and cell.get("execution_count") is None
               for cell in nb.cells if cell.cell_type == "code")
    tags = {cell.get("id"): cell.get("metadata", {}).get("tags", []) for cell in nb.cells}
    assert "raises-exception" in tags["rr-mismatch"] and "record" in tags["rr-connect"]


def test_public_names() -> None:
    for name in ("record", "replay", "Recording", "ReplayClient", "AsyncReplayClient",
                 "ReplayError", "ReplayMismatch"):
        assert name in comfy_nb.__all__ and hasattr(comfy_nb, name)
    assert issubclass(ReplayMismatch, comfy_nb.ComfyError)
    assert issubclass(ReplayClient, comfy_nb.Client)



# -- damage and mistakes -------------------------------------------------------------------------


def test_the_closest_run_is_the_one_differing_in_fewest_inputs(server: RunningEmulator,
                                                                folder: Path) -> None:
    one_off = solid(6)  # differs from the run below in its color only
    two_off = solid(5)
    two_off["1"]["inputs"].update(width=16, height=16)  # the same node, two other inputs
    with comfy_nb.connect(server.url) as live, comfy_nb.record(folder):
        live.run(one_off, timeout=WAIT)
        live.run(two_off, timeout=WAIT)  # recorded last: it wins ties
    with comfy_nb.replay(folder) as replayed, pytest.raises(ReplayMismatch) as caught:
        replayed.run(solid(5), timeout=WAIT)
    assert caught.value.closest is not None and caught.value.closest.startswith("01-")
    assert caught.value.differences == ["Canvas.color: recorded 6, now 5"]


def test_recording_into_a_place_that_cannot_be_written_is_refused_at_once(
        tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with pytest.raises(OSError, match=r"cannot record into '.*afile/rec': .*; record into a "
                                      "folder you can write to"):
        comfy_nb.record(afile / "rec")
    if Path("/proc/self").is_dir():
        with pytest.raises(OSError, match="cannot record into '/proc/rec'"):
            comfy_nb.record("/proc/rec")
    assert recordings_observing() == []  # nothing was started
    made = comfy_nb.record(tmp_path / "new" / "rec")  # made and probed, the probe removed
    made.stop()
    assert list((tmp_path / "new" / "rec").iterdir()) == []


def test_a_recording_without_its_node_definitions_is_refused(server: RunningEmulator,
                                                             folder: Path) -> None:
    with comfy_nb.connect(server.url) as live, comfy_nb.record(folder):
        live.run(solid(), timeout=WAIT)
    (folder / "object_info.json").unlink()
    with pytest.raises(ReplayError, match=r"is incomplete: object_info.json .* is missing"):
        comfy_nb.replay(folder)
    with comfy_nb.connect(server.url) as live, comfy_nb.record(folder, append=True):
        live.run(solid(2), timeout=WAIT)  # appending writes them again
    with comfy_nb.replay(folder) as replayed:
        assert replayed.run(solid(), timeout=WAIT).images

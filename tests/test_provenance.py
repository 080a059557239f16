"""Provenance of saved outputs: save → load gives back the workflow and the parameters, for PNGs
(text chunks, as ComfyUI writes them) and for every other file (a sidecar); no secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import comfy_nb
from comfy_nb import provenance
from comfy_nb.emulator import RunningEmulator, serve
from comfy_nb.workflows import bundled
from tests import fixture_paths

from .factories import Clients, Emulators

RUNS = fixture_paths.RUNS


def recorded_workflow(run: str) -> dict[str, Any]:
    """The API-format prompt of a recorded run."""
    body = json.loads((RUNS / run / "post_prompt.json").read_text("utf-8"))
    return dict(body["request"]["body"]["prompt"])


@pytest.fixture(scope="module")
def local(module_emulators: Emulators, module_clients: Clients) -> comfy_nb.Client:
    return module_clients.connect(module_emulators(step_delay=0.0))


def test_a_png_carries_the_workflow_and_the_parameters(local: comfy_nb.Client,
                                                       tmp_path: Path) -> None:
    result = local.run(bundled("txt2img"), overrides={"KSampler.steps": 3, "cfg": 5.5},
                       seed="random")
    (path,) = result.save(tmp_path)
    found = provenance.read(path)
    assert found is not None
    assert found["prompt"] == result.workflow
    record = found["comfy_nb"]
    assert record["parameters"] == {"KSampler.steps": 3, "cfg": 5.5, "seed": "random"}
    seed = result.workflow["3"]["inputs"]["seed"]
    assert list(record["resolved_seeds"].values()) == [seed]
    assert record["server"] == {"url": local.url, "dialect": "local", "version": "0.3.64"}
    assert record["comfy_nb"] == comfy_nb.__version__
    assert record["prompt_id"] == result.prompt_id and record["created"].endswith("+00:00")
    # Workflow.load gives back the workflow that made it; running it again gives the same image
    again = comfy_nb.Workflow.load(path)
    assert again.to_api() == result.workflow
    assert local.run(again).images[0].read() == result.images[0].read()


@pytest.mark.parametrize("run", ["audio_empty_save", "video_save"])
def test_other_files_get_a_sidecar(local: comfy_nb.Client, tmp_path: Path, run: str) -> None:
    result = local.run(recorded_workflow(run), overrides={})
    paths = result.save(tmp_path)
    assert paths
    for path in paths:
        if path.suffix == ".png":
            continue
        sidecar = provenance.sidecar_path(path)
        assert sidecar.is_file(), path
        assert comfy_nb.Workflow.load(path).to_api() == result.workflow
        assert comfy_nb.Workflow.load(sidecar).to_api() == result.workflow
        assert provenance.read(path)["comfy_nb"]["prompt_id"] == result.prompt_id  # type: ignore[index]


def test_no_secret_reaches_a_saved_file(tmp_path: Path) -> None:
    emulator: RunningEmulator
    with serve(dialect="cloud", step_delay=0.0) as emulator:
        key = emulator.api_key
        assert key
        with comfy_nb.connect(emulator.url, api_key=key) as cloud:
            result = cloud.run(recorded_workflow("video_save"))
            paths = result.save(tmp_path)
    files = [*paths, *tmp_path.glob("*.comfy_nb.json")]
    assert any(p.name.endswith(".comfy_nb.json") for p in files)
    for path in files:
        data = path.read_bytes()
        assert key.encode() not in data
        assert b"Signature" not in data and b"api_key_comfy_org" not in data
    record: Any = provenance.read(paths[0])
    assert record["comfy_nb"]["server"]["dialect"] == "cloud"


def test_public_url_drops_credentials_and_queries() -> None:
    assert provenance.public_url("https://u:p@host:8443/api?sig=1#x") == "https://host:8443/api"
    assert provenance.public_url("http://[::1]:8188") == "http://[::1]:8188"
    assert provenance.public_url(None) is None


def test_png_text_is_added_once_and_left_alone_when_present() -> None:
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (4, 4)).save(out, "PNG")
    first = provenance.png_with_provenance(out.getvalue(), {"1": {}}, {"a": 1})
    assert provenance.png_text(first) == {"prompt": json.dumps({"1": {}}),
                                          "comfy_nb": json.dumps({"a": 1})}
    assert provenance.png_with_provenance(first, {"2": {}}, {"b": 2}) == first
    assert Image.open(BytesIO(first)).size == (4, 4)
    assert provenance.png_with_provenance(b"not a png", {}, {}) == b"not a png"


def test_a_sidecar_never_replaces_another_file(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypisom")
    theirs = provenance.sidecar_path(video)
    theirs.write_text("another output, or the user's own notes")
    with pytest.raises(FileExistsError, match=r"clip\.mp4\.comfy_nb\.json exists"):
        provenance.write_sidecar(video, {"1": {}}, {"a": 1})
    assert theirs.read_text() == "another output, or the user's own notes"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    assert provenance.write_sidecar(video, {"1": {}}, {"a": 1}, overwrite=True) == theirs
    assert provenance.read(video) == {"prompt": {"1": {}}, "comfy_nb": {"a": 1}}


def test_an_identical_sidecar_is_left_as_it_is(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    written = provenance.write_sidecar(video, {"1": {}}, {"a": 1})
    stamp = (written.stat().st_ino, written.stat().st_mtime_ns)
    assert provenance.write_sidecar(video, {"1": {}}, {"a": 1}) == written
    assert (written.stat().st_ino, written.stat().st_mtime_ns) == stamp


def test_saving_a_result_twice_writes_each_file_and_sidecar_once(local: comfy_nb.Client,
                                                                 tmp_path: Path) -> None:
    result = local.run(recorded_workflow("audio_empty_save"), overrides={})
    first = result.save(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert result.save(tmp_path) == first  # re-running a notebook piles up no copies
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert all(provenance.read(path) is not None for path in first)

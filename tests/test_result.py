"""comfy_nb.result: outputs parsed from every recorded history, lazy cached reads, safe saving."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from comfy_nb.result import (
    FileSource,
    OutputFile,
    Result,
    add_png_prompt,
    folder_problem,
    safe_filename,
)
from tests import fixture_paths

RUNS = fixture_paths.RUNS

Key = tuple[str, str, str]


class FakeSource:
    """Bytes from a dict keyed by (filename, subfolder, type); counts every fetch."""

    def __init__(self, blobs: dict[Key, bytes] | None = None, *, fail: bool = False) -> None:
        self.blobs = dict(blobs or {})
        self.fail = fail
        self.fetches: list[Key] = []

    def _get(self, file: OutputFile) -> bytes:
        key = (file.filename, file.subfolder, file.type)
        self.fetches.append(key)
        if self.fail:
            raise ConnectionError("the server went away")
        return self.blobs[key]

    def fetch(self, file: OutputFile) -> bytes:
        return self._get(file)

    async def afetch(self, file: OutputFile) -> bytes:
        await asyncio.sleep(0)
        return self._get(file)


def load_run(name: str) -> tuple[str, dict[str, Any], dict[str, Any], FakeSource]:
    """(prompt_id, outputs, workflow, a source serving the recorded /view bytes)."""
    folder = RUNS / name
    body = json.loads((folder / "history.json").read_text())["response"]["body"]
    (prompt_id, entry), = body.items()
    blobs: dict[Key, bytes] = {}
    views = folder / "view_responses.json"
    for exchange in json.loads(views.read_text()) if views.exists() else []:
        query = parse_qs(urlsplit(exchange["request"]["path"]).query, keep_blank_values=True)
        key = (query["filename"][0], query["subfolder"][0], query["type"][0])
        blobs[key] = (folder / exchange["saved_as"]).read_bytes()
    return prompt_id, entry["outputs"], entry["prompt"][2], FakeSource(blobs)


def run_result(name: str, **kwargs: Any) -> tuple[Result, FakeSource]:
    prompt_id, outputs, workflow, source = load_run(name)
    return Result(prompt_id, outputs, source=source, workflow=workflow, **kwargs), source


def summary(result: Result) -> list[tuple[str, str, str, str, str, str, bool]]:
    return [(f.node_id, f.filename, f.type, f.key, f.kind, f.mime_type, f.animated)
            for f in result.files]


def png(color: tuple[int, int, int] = (10, 20, 30), **text: str) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), color).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def synthetic(outputs: dict[str, Any], blobs: dict[Key, bytes] | None = None,
              **kwargs: Any) -> tuple[Result, FakeSource]:
    source = FakeSource(blobs)
    return Result("3f2a9c1e-0000-4000-8000-000000000000", outputs, source=source, **kwargs), source


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- every recorded history ----------------------------------------------------------------------

ALL_RUNS = sorted(p.name for p in RUNS.iterdir() if (p / "history.json").exists())


def test_the_fixtures_are_there() -> None:
    assert len(ALL_RUNS) >= 20


@pytest.mark.parametrize("name", ALL_RUNS)
def test_every_recorded_run_parses_and_every_file_reads_back(name: str) -> None:
    result, source = run_result(name)
    assert len(result) == len(result.files) == len(list(result))
    assert source.fetches == []
    for file in result:
        assert file.read() == source.blobs[(file.filename, file.subfolder, file.type)]
        assert file.params() == {"filename": file.filename, "subfolder": file.subfolder,
                                 "type": file.type}
    assert len(source.fetches) == len(result.files)
    assert repr(result).startswith(f"<Result {result.prompt_id[:8]}…")


def test_saved_image() -> None:
    result, _ = run_result("empty_invert_save")
    assert summary(result) == [
        ("3", "invert_00001_.png", "output", "images", "image", "image/png", False)]
    assert result.files[0].subfolder == "comfy_nb_fixture"
    assert not result.files[0].is_preview
    assert result.images == result.files and result.videos == [] and result.audio == []
    assert result.text == {}
    assert [im.size for im in result.pil_images()] == [(64, 64)]
    assert repr(result) == "<Result cfc07378… 1 image>"


def test_temp_previews() -> None:
    result, _ = run_result("preview_image_temp")
    assert summary(result) == [
        ("2", "ComfyUI_temp_qxmys_00001_.png", "temp", "images", "image", "image/png", False),
        ("2", "ComfyUI_temp_qxmys_00002_.png", "temp", "images", "image", "image/png", False)]
    assert all(f.is_preview and f.subfolder == "" for f in result.images)
    assert [im.size for im in result.pil_images()] == [(32, 32), (32, 32)]


def test_animated_webp_and_png_stay_images() -> None:
    result, _ = run_result("animated_webp_png")
    assert summary(result) == [
        ("5", "anim_00001_.webp", "output", "images", "image", "image/webp", True),
        ("6", "anim_00002_.png", "output", "images", "image", "image/png", True)]
    frames = result.pil_images()
    assert [im.size for im in frames] == [(48, 48), (48, 48)]
    assert all(getattr(im, "n_frames", 1) == 1 for im in frames)  # the first frame only


def test_videos_under_images_with_animated() -> None:
    result, _ = run_result("video_save")
    assert summary(result) == [
        ("7", "comfy_nb_webm_00001_.webm", "output", "images", "video", "video/webm", True),
        ("6", "comfy_nb_fixture_00001_.mp4", "output", "images", "video", "video/mp4", True)]
    assert result.videos == result.files and result.images == []
    with pytest.raises(ValueError, match="video"):
        result.videos[0].image()
    assert result.pil_images() == []
    assert repr(result) == "<Result 08551e08… 2 videos>"


def test_audio_flac_and_mp3() -> None:
    result, _ = run_result("audio_empty_save")
    assert summary(result) == [
        ("2", "comfy_nb_fixture_00001_.flac", "output", "audio", "audio", "audio/flac", False),
        ("4", "ComfyUI_temp_papqj_00001_.flac", "temp", "audio", "audio", "audio/flac", False),
        ("3", "comfy_nb_fixture_00002_.mp3", "output", "audio", "audio", "audio/mpeg", False)]
    assert result.audio == result.files
    assert result.files[0].read().startswith(b"fLaC")
    assert repr(result) == "<Result f1a3e0cb… 3 audio>"


def test_text_outputs_are_kept_apart_from_files() -> None:
    result, _ = run_result("multi_output_text")
    assert result.text == {"7": ["16"], "5": ["hello, comfy"]}
    assert result.texts == ["16", "hello, comfy"]  # in the order of the outputs
    assert [(f.node_id, f.type) for f in result.files] == [("2", "output"), ("3", "temp")]
    assert repr(result) == "<Result 183ea1ca… 2 images, text from 2 nodes>"


@pytest.mark.parametrize("name", ["save_image_websocket_legacy", "save_image_websocket_metadata",
                                  "runtime_error_regex", "interrupt_global"])
def test_runs_without_outputs(name: str, tmp_path: Path) -> None:
    result, _ = run_result(name)
    assert result.files == [] and result.text == {} and len(result) == 0
    assert result.save(tmp_path) == []
    assert repr(result).endswith(" no outputs>")


def test_save_image_websocket_empty_output_gives_no_files() -> None:
    result, _ = synthetic({"2": {}})
    assert result.files == [] and result.text == {}


def test_client_supplied_prompt_id_repr() -> None:
    result, _ = run_result("client_supplied_prompt_id")
    assert repr(result) == "<Result comfy-nb… 1 image>"
    assert result.prompt_id.startswith("comfy-nb-")


# -- other keys, Cloud shapes --------------------------------------------------------------------

def test_cloud_duplicate_under_video_and_videos_is_listed_once() -> None:
    item = {"filename": "clip_00001_.mp4", "subfolder": "", "type": "output"}
    result, _ = synthetic({"9": {"video": [item], "videos": [dict(item)]},
                           "10": {"videos": [dict(item)]}})
    assert [(f.node_id, f.key, f.kind, f.mime_type) for f in result.files] == [
        ("9", "video", "video", "video/mp4"), ("10", "videos", "video", "video/mp4")]


def test_gifs_3d_latents_and_unknown_extensions() -> None:
    result, _ = synthetic({
        "1": {"gifs": [{"filename": "a.gif", "subfolder": "", "type": "output",
                        "format": "image/gif"},
                       {"filename": "b.mp4", "subfolder": "", "type": "output",
                        "format": "video/h264-mp4", "fullpath": "/srv/out/b.mp4"}]},
        "2": {"3d": [{"filename": "mesh.glb", "subfolder": "3d", "type": "output"}]},
        "3": {"latents": [{"filename": "x.latent", "subfolder": "", "type": "output"}]},
        "4": {"audio": [{"filename": "voice.opus", "type": "output"},
                        {"filename": "noext", "subfolder": "", "type": "output"}]},
        "5": {"images": [{"filename": "still.apng", "subfolder": "", "type": "output"}]},
    })
    assert [(f.key, f.kind, f.mime_type, f.animated) for f in result.files] == [
        ("gifs", "image", "image/gif", True),
        ("gifs", "video", "video/mp4", True),
        ("3d", "model3d", "model/gltf-binary", False),
        ("latents", "other", "application/octet-stream", False),
        ("audio", "audio", "audio/ogg", False),
        ("audio", "audio", "application/octet-stream", False),
        ("images", "image", "image/png", False)]
    assert result.files[4].subfolder == ""  # missing subfolder -> ""
    assert repr(result).endswith(
        "2 images, 1 video, 2 audio, 1 3D model, 1 other file>")


def test_non_file_values_are_ignored() -> None:
    result, _ = synthetic({
        "1": {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}, "junk",
                         {"no_filename": 1}, {"filename": 5}], "animated": [False],
              "count": 3, "meta": {"filename": "not-a-list.png"}},
        "2": "not a dict",
        "3": {"text": ["one", "two"], "ui": None},
    })
    assert [f.filename for f in result.files] == ["a.png"]
    assert result.text == {"3": ["one", "two"]}
    assert result.texts == ["one", "two"]


def test_node_titles_from_workflow_meta() -> None:
    workflow = {"1": {"class_type": "SaveImage", "inputs": {}, "_meta": {"title": "Final"}},
                "2": {"class_type": "PreviewImage", "inputs": {}}}
    result, _ = synthetic({"1": {"images": [{"filename": "a.png", "subfolder": "",
                                             "type": "output"}]},
                           "2": {"images": [{"filename": "b.png", "subfolder": "",
                                             "type": "temp"}]}}, workflow=workflow)
    assert [f.node_title for f in result.files] == ["Final", None]


def test_equality_ignores_the_binding() -> None:
    result, _ = run_result("empty_invert_save")
    bare = OutputFile(node_id="3", filename="invert_00001_.png", subfolder="comfy_nb_fixture",
                      type="output", key="images", kind="image", mime_type="image/png")
    assert bare == result.files[0] and hash(bare) == hash(result.files[0])
    with pytest.raises(RuntimeError, match="not bound"):
        bare.read()


def test_source_protocol_and_missing_source() -> None:
    assert isinstance(FakeSource(), FileSource)
    prompt_id, outputs, _, _ = load_run("empty_invert_save")
    result = Result(prompt_id, outputs, source=None)
    assert len(result) == 1
    with pytest.raises(RuntimeError, match="no file source"):
        result.files[0].read()


# -- lazy, cached reads --------------------------------------------------------------------------

def test_lazy_and_cached_in_memory() -> None:
    result, source = run_result("preview_image_temp")
    assert source.fetches == []
    first = result.files[0]
    assert first.read() is first.read()
    first.image()
    assert len(source.fetches) == 1


def test_on_disk_cache_survives_a_new_result(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result, source = run_result("audio_empty_save", cache_dir=cache, server="http://a:8188")
    data = [f.read() for f in result.files]
    assert len(source.fetches) == 3 and len(list(cache.iterdir())) == 3
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]

    again, source2 = run_result("audio_empty_save", cache_dir=cache, server="http://a:8188")
    assert [f.read() for f in again.files] == data
    assert source2.fetches == []

    other_server, source3 = run_result("audio_empty_save", cache_dir=cache,
                                       server="http://b:8188")
    other_server.files[0].read()
    assert len(source3.fetches) == 1


def test_source_must_return_bytes() -> None:
    result, source = synthetic({"1": {"images": [{"filename": "a.png", "subfolder": "",
                                                  "type": "output"}]}})
    source.blobs[("a.png", "", "output")] = "text"  # type: ignore[assignment]
    with pytest.raises(TypeError, match="not bytes"):
        result.files[0].read()


async def test_aread_and_asave_in_an_event_loop(tmp_path: Path) -> None:
    result, source = run_result("audio_empty_save")
    first = await result.files[0].aread()
    assert first.startswith(b"fLaC") and len(source.fetches) == 1
    paths = await result.asave(tmp_path)
    assert [p.name for p in paths] == [
        "comfy_nb_fixture_00001_.flac", "ComfyUI_temp_papqj_00001_.flac",
        "comfy_nb_fixture_00002_.mp3"]
    assert len(source.fetches) == 3  # the first file came from the cache
    for file, path in zip(result.files, paths, strict=True):
        assert path.read_bytes() == file.read()
    single = await result.files[2].asave(tmp_path)
    assert single.name == "comfy_nb_fixture_00002_ (1).mp3"


async def test_asave_writes_in_order_and_never_clobbers_its_own_files(tmp_path: Path) -> None:
    items = {"1": {"images": [{"filename": "same.png", "subfolder": "a", "type": "output"},
                              {"filename": "same.png", "subfolder": "b", "type": "output"}]}}
    blobs = {("same.png", "a", "output"): png((1, 1, 1)), ("same.png", "b", "output"): png()}
    result, _ = synthetic(items, blobs)
    paths = await result.asave(tmp_path, overwrite=True)
    assert [p.name for p in paths] == ["same.png", "same (1).png"]
    assert [p.read_bytes() for p in paths] == [blobs[("same.png", "a", "output")],
                                               blobs[("same.png", "b", "output")]]


# -- saving: names, collisions, atomicity --------------------------------------------------------

HOSTILE = ["../../etc/passwd", "/abs/x.png", "a\\b.png", "x\x00.png", "..", "", ".",
           "C:\\Windows\\evil.png", "sub/../../up.png", "x" * 500 + ".png", "é" * 300 + ".webp",
           "\u202egnp.exe", "CON", "name. . ", "\n\t.png"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_saved_inside_the_directory(tmp_path: Path, name: str) -> None:
    target = tmp_path / "out"
    item = {"filename": name, "subfolder": "../../..", "type": "output"}
    result, _ = synthetic({"1": {"images": [item]}}, {(name, "../../..", "output"): b"data"})
    path, = result.save(target)
    assert path.parent == target.resolve()
    assert path.resolve().relative_to(target.resolve())
    assert path.read_bytes() == b"data"
    assert path.name not in ("", ".", "..")
    assert len(path.name.encode()) <= 255
    assert not any(ord(ch) < 32 for ch in path.name)
    assert listing(target) == [path.name]
    assert listing(tmp_path) == ["out"]


def test_safe_filename_rules() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("/abs/x.png") == "x.png"
    assert safe_filename("a\\b.png") == "b.png"
    assert safe_filename("x\x00.png") == "x_.png"
    assert safe_filename("D:evil.png") == "evil.png"
    assert safe_filename("..") == safe_filename("") == safe_filename(".") == "output"
    assert safe_filename("CON.txt") == "_CON.txt"
    assert safe_filename("a<b>:c.png") == "a_b__c.png"
    long = safe_filename("y" * 1000 + ".png")
    assert long.endswith(".png") and len(long.encode()) <= 200
    wide = safe_filename("é" * 1000 + ".flac")
    assert wide.endswith(".flac") and len(wide.encode()) <= 200
    assert safe_filename("ComfyUI_00001_.png") == "ComfyUI_00001_.png"


def test_explicit_name_is_sanitised_too(tmp_path: Path) -> None:
    result, _ = run_result("empty_invert_save")
    path = result.files[0].save(tmp_path, name="../mine.png")
    assert path == tmp_path.resolve() / "mine.png"


def test_no_silent_overwrite_then_overwrite(tmp_path: Path) -> None:
    result, source = run_result("empty_invert_save")
    file = result.files[0]
    (tmp_path / "invert_00001_.png").write_bytes(b"precious")
    first = file.save(tmp_path)
    second = file.save(tmp_path)
    assert (first.name, second.name) == ("invert_00001_ (1).png", "invert_00001_ (2).png")
    assert (tmp_path / "invert_00001_.png").read_bytes() == b"precious"
    replaced = file.save(tmp_path, overwrite=True)
    assert replaced == tmp_path.resolve() / "invert_00001_.png"
    assert replaced.read_bytes() == file.read()
    assert listing(tmp_path) == ["invert_00001_ (1).png", "invert_00001_ (2).png",
                                 "invert_00001_.png"]
    assert len(source.fetches) == 1


def test_result_save_twice_keeps_both(tmp_path: Path) -> None:
    result, _ = run_result("preview_image_temp")
    first = result.save(tmp_path)
    second = result.save(tmp_path)
    assert [p.name for p in first] == ["ComfyUI_temp_qxmys_00001_.png",
                                       "ComfyUI_temp_qxmys_00002_.png"]
    assert [p.name for p in second] == ["ComfyUI_temp_qxmys_00001_ (1).png",
                                        "ComfyUI_temp_qxmys_00002_ (1).png"]
    assert result.save(tmp_path, overwrite=True) == first


@pytest.mark.skipif(os.name != "posix", reason="symlinks need privileges on Windows")
def test_an_existing_symlink_is_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"keep")
    target = tmp_path / "out"
    target.mkdir()
    (target / "invert_00001_.png").symlink_to(outside)
    result, _ = run_result("empty_invert_save")
    path = result.files[0].save(target, overwrite=True)
    assert path.name == "invert_00001_ (1).png"
    assert outside.read_bytes() == b"keep"


def test_a_failing_source_leaves_no_file(tmp_path: Path) -> None:
    prompt_id, outputs, workflow, _ = load_run("audio_empty_save")
    result = Result(prompt_id, outputs, source=FakeSource(fail=True), workflow=workflow,
                    cache_dir=tmp_path / "cache")
    with pytest.raises(ConnectionError):
        result.save(tmp_path / "out")
    with pytest.raises(ConnectionError):
        result.files[1].save(tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()
    with pytest.raises(ConnectionError):
        result.files[1].save(tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_result_save_downloads_everything_before_writing(tmp_path: Path) -> None:
    result, source = run_result("audio_empty_save")
    del source.blobs[("comfy_nb_fixture_00002_.mp3", "audio", "output")]  # the last one fails
    with pytest.raises(KeyError):
        result.save(tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def test_saving_into_a_file_says_it_is_not_a_folder(tmp_path: Path) -> None:
    result, _ = run_result("audio_empty_save")
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with pytest.raises(NotADirectoryError, match=r"'.*afile': is a file, not a folder"):
        result.save(afile)
    with pytest.raises(NotADirectoryError, match=r"afile/sub': .*afile is a file, not a folder"):
        result.save(afile / "sub")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        asyncio.run(result.files[0].asave(afile))
    assert afile.read_text() == "mine"
    assert folder_problem(afile) == "is a file, not a folder"
    assert folder_problem(tmp_path / "new" / "deeper") is None  # made when saving


def test_a_failing_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, _ = run_result("empty_invert_save")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        result.files[0].save(tmp_path)
    assert list(tmp_path.iterdir()) == []


async def test_a_failing_async_source_leaves_no_file(tmp_path: Path) -> None:
    prompt_id, outputs, _, _ = load_run("video_save")
    result = Result(prompt_id, outputs, source=FakeSource(fail=True))
    with pytest.raises(ConnectionError):
        await result.asave(tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- PNG metadata --------------------------------------------------------------------------------

def test_png_gains_the_prompt_chunk_with_pixels_unchanged(tmp_path: Path) -> None:
    workflow = {"1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 3}}}
    original = png(author="me")
    result, _ = synthetic({"2": {"images": [{"filename": "p.png", "subfolder": "",
                                             "type": "output"}]}},
                          {("p.png", "", "output"): original}, workflow=workflow)
    path, = result.save(tmp_path)
    with Image.open(path) as saved, Image.open(io.BytesIO(original)) as before:
        assert saved.text["prompt"] == json.dumps(workflow)
        assert saved.text["author"] == "me"
        assert saved.tobytes() == before.tobytes() and saved.size == before.size
        assert saved.mode == before.mode
    assert result.files[0].read() == original  # the cached bytes stay as the server sent them


def test_png_that_already_has_a_prompt_is_byte_identical(tmp_path: Path) -> None:
    result, _ = run_result("txt2img_random_sd15_legacy_previews")
    path, = result.save(tmp_path)
    assert path.read_bytes() == result.files[0].read()


def test_animated_png_gains_the_prompt_and_keeps_its_frames(tmp_path: Path) -> None:
    result, _ = run_result("animated_webp_png")
    webp, apng = result.save(tmp_path)
    assert webp.read_bytes() == result.files[0].read()  # only PNGs are touched
    with Image.open(apng) as saved:
        assert json.loads(saved.info["prompt"]) == result.workflow
        assert saved.n_frames == 4
        frames = []
        for index in range(saved.n_frames):
            saved.seek(index)
            frames.append(saved.convert("RGB").tobytes())
    with Image.open(io.BytesIO(result.files[1].read())) as before:
        for index in range(before.n_frames):
            before.seek(index)
            assert before.convert("RGB").tobytes() == frames[index]


def test_no_workflow_no_chunk_and_non_png_untouched(tmp_path: Path) -> None:
    original = png()
    result, _ = synthetic({"1": {"images": [{"filename": "p.png", "subfolder": "",
                                             "type": "output"}]}},
                          {("p.png", "", "output"): original})
    path, = result.save(tmp_path)
    assert path.read_bytes() == original
    assert add_png_prompt(b"not a png", {"1": {}}) == b"not a png"
    assert add_png_prompt(original[:40], {"1": {}}) == original[:40]  # truncated: left alone

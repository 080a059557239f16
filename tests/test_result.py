"""comfy_nb.result: outputs parsed from every recorded history, lazy cached reads, safe saving
(no overwrite, identical files kept, sidecars paired with their files), content checks, and
bounded memory for large outputs (against the emulator over real sockets)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from PIL import Image

import comfy_nb
from comfy_nb import ComfyError, DownloadTimeout, TransportError, UnexpectedContent, provenance
from comfy_nb.emulator import serve
from comfy_nb.result import (
    MEDIA_KINDS,
    FileSource,
    OutputFile,
    OutputKind,
    Result,
    add_png_prompt,
    folder_problem,
    safe_filename,
)
from tests import fixture_paths

RUNS = fixture_paths.RUNS

Key = tuple[str, str, str]


class BytesSource:
    """Bytes from a dict keyed by (filename, subfolder, type); counts every fetch. Only
    ``fetch``/``afetch``: a source written before streaming, whose bytes pass through memory."""

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


class FakeSource(BytesSource):
    """A :class:`BytesSource` that also streams into files, as every source of the package."""

    def fetch_to(self, file: OutputFile, path: Path) -> None:
        data = self._get(file)
        with open(path, "r+b") as out:
            out.write(data)

    async def afetch_to(self, file: OutputFile, path: Path) -> None:
        await asyncio.sleep(0)
        self.fetch_to(file, path)


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

ALL_RUNS = [p.name for p in fixture_paths.listing(RUNS,
                                                   where=lambda p: (p / "history.json").exists())]


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


def test_kinds_are_an_enum_that_reads_as_the_strings_it_stands_for() -> None:
    outputs = {"3": {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}],
                     "gifs": [{"filename": "b.mp4", "subfolder": "", "type": "output"}],
                     "audio": [{"filename": "c.flac", "subfolder": "", "type": "output"}],
                     "3d": [{"filename": "d.glb", "subfolder": "", "type": "output"}],
                     "latents": [{"filename": "e.latent", "subfolder": "", "type": "output"}]}}
    files = Result("p", outputs, source=None).files
    assert [f.kind for f in files] == [OutputKind.IMAGE, OutputKind.VIDEO, OutputKind.AUDIO,
                                       OutputKind.MODEL3D, OutputKind.OTHER]
    assert [f.kind for f in files] == ["image", "video", "audio", "model3d", "other"]
    assert all(isinstance(f.kind, OutputKind) for f in files)
    assert {f.kind for f in files} & MEDIA_KINDS == {"image", "video", "audio"}
    assert f"{files[0].kind}" == str(files[0].kind) == "image"
    assert json.dumps({files[1].kind: files[1].kind}) == '{"video": "video"}'
    assert "kind='image'" in repr(files[0])  # a file's repr reads as before


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
    assert not isinstance(BytesSource(), FileSource)  # it still works: see the bytes-only tests
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
    assert single == paths[2]  # the same content is there already: kept, not copied
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".mp3") == [
        "comfy_nb_fixture_00002_.mp3"]


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
    data = png() if name.lower().endswith(".png") else b"RIFF\x00\x00\x00\x00WEBPVP8 data"
    result, _ = synthetic({"1": {"images": [item]}}, {(name, "../../..", "output"): data})
    path, = result.save(target)
    assert path.parent == target.resolve()
    assert path.resolve().relative_to(target.resolve())
    assert path.read_bytes() == data
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
    prompt_id, outputs, workflow, source = load_run("empty_invert_save")
    result = Result(prompt_id, outputs, source=source, workflow=workflow,
                    cache_dir=tmp_path / "downloads")
    file = result.files[0]
    out = tmp_path / "out"
    out.mkdir()
    (out / "invert_00001_.png").write_bytes(b"precious")
    first = file.save(out)
    second = file.save(out)  # the same content again: the file already there is named
    assert first == second == out.resolve() / "invert_00001_ (1).png"
    assert (out / "invert_00001_.png").read_bytes() == b"precious"
    replaced = file.save(out, overwrite=True)
    assert replaced == out.resolve() / "invert_00001_.png"
    assert replaced.read_bytes() == first.read_bytes() == add_png_prompt(file.read(), workflow)
    assert listing(out) == ["invert_00001_ (1).png", "invert_00001_.png"]
    assert len(source.fetches) == 1  # downloaded once, into the download cache


def test_saving_again_keeps_identical_files_and_renames_changed_ones(tmp_path: Path) -> None:
    result, _ = run_result("preview_image_temp")
    first = result.save(tmp_path)
    assert [p.name for p in first] == ["ComfyUI_temp_qxmys_00001_.png",
                                       "ComfyUI_temp_qxmys_00002_.png"]
    before = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in first]
    assert result.save(tmp_path) == first  # a re-run: nothing new on disk
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in first] == before
    assert listing(tmp_path) == [p.name for p in first]
    first[0].write_bytes(b"edited by hand")
    again = result.save(tmp_path)
    assert [p.name for p in again] == ["ComfyUI_temp_qxmys_00001_ (1).png",
                                       "ComfyUI_temp_qxmys_00002_.png"]
    assert first[0].read_bytes() == b"edited by hand"
    assert result.saved_path(result.files[0]) == again[0]  # the file that holds the content
    assert result.save(tmp_path, overwrite=True) == first
    assert first[0].read_bytes() == again[0].read_bytes()


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
        assert json.loads(saved.text["prompt"]) == workflow
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


# -- sources with bytes only, open() -------------------------------------------------------------

def test_a_source_with_bytes_only_still_reads_opens_and_saves(tmp_path: Path) -> None:
    prompt_id, outputs, workflow, recorded = load_run("audio_empty_save")
    result = Result(prompt_id, outputs, source=BytesSource(recorded.blobs), workflow=workflow)
    paths = result.save(tmp_path)
    for file, path in zip(result.files, paths, strict=True):
        assert path.read_bytes() == file.read()
        with file.open() as handle:
            assert handle.read() == file.read()


def test_open_reads_the_download_cache_or_a_temporary_file(tmp_path: Path) -> None:
    cached, source = run_result("video_save", cache_dir=tmp_path / "downloads")
    expected = source.blobs[("comfy_nb_webm_00001_.webm", "video", "output")]
    with cached.files[0].open() as handle:
        assert handle.read() == expected
    with cached.files[0].open() as handle:  # from the download cache now
        assert handle.read() == expected
    assert len(source.fetches) == 1

    plain, _ = run_result("video_save")
    with plain.files[0].open() as handle:
        spooled = Path(str(handle.name))
        assert spooled.is_file() and handle.read() == expected
    assert not spooled.exists()  # the temporary file goes when closed


# -- sidecars follow the rules of outputs --------------------------------------------------------

def test_a_sidecar_never_replaces_a_file_of_the_user(tmp_path: Path) -> None:
    result, _ = run_result("video_save")
    mine = tmp_path / "comfy_nb_webm_00001_.webm.comfy_nb.json"
    mine.write_text("my own notes")
    webm, mp4 = result.save(tmp_path)
    assert mine.read_text() == "my own notes"
    assert webm.name == "comfy_nb_webm_00001_ (1).webm"  # so that its sidecar name is free
    assert provenance.sidecar_path(webm).name == "comfy_nb_webm_00001_ (1).webm.comfy_nb.json"
    assert provenance.read(webm) == {"prompt": result.workflow, "comfy_nb": None}
    assert provenance.read(mp4) == {"prompt": result.workflow, "comfy_nb": None}


@pytest.mark.parametrize("order", ["sidecar name first", "video first"])
def test_an_output_named_like_a_sidecar_of_the_same_job_is_kept(tmp_path: Path,
                                                                  order: str) -> None:
    clip = {"filename": "clip.mp4", "subfolder": "", "type": "output"}
    notes = {"filename": "clip.mp4.comfy_nb.json", "subfolder": "", "type": "output"}
    video, text = b"\x00\x00\x00\x18ftypisom-video", b'{"made by": "a node"}'
    nodes = [("1", {"videos": [clip]}), ("2", {"json": [notes]})]
    if order == "sidecar name first":
        nodes.reverse()
    result, _ = synthetic(dict(nodes), {("clip.mp4", "", "output"): video,
                                        ("clip.mp4.comfy_nb.json", "", "output"): text},
                          workflow={"1": {"class_type": "SaveVideo", "inputs": {}}})
    paths = result.save(tmp_path)
    saved = {file.filename: path for file, path in zip(result.files, paths, strict=True)}
    assert saved["clip.mp4"].read_bytes() == video
    assert saved["clip.mp4.comfy_nb.json"].read_bytes() == text
    assert provenance.read(saved["clip.mp4"])["prompt"] == result.workflow  # type: ignore[index]


def test_identical_sidecars_are_left_alone_and_different_ones_move_with_their_file(
        tmp_path: Path) -> None:
    result, source = run_result("video_save")
    webm, _ = result.save(tmp_path)
    sidecar = provenance.sidecar_path(webm)
    stamp = (sidecar.stat().st_ino, sidecar.stat().st_mtime_ns)
    assert result.save(tmp_path)[0] == webm  # a re-run of the same job: nothing is written
    assert (sidecar.stat().st_ino, sidecar.stat().st_mtime_ns) == stamp

    changed = {**result.workflow, "99": {"class_type": "Note", "inputs": {}}}  # type: ignore[dict-item]
    other = Result(result.prompt_id, result.outputs, source=source, workflow=changed)
    moved, _ = other.save(tmp_path)  # the same video, another provenance: a pair of its own
    assert moved.name == "comfy_nb_webm_00001_ (1).webm"
    assert provenance.read(moved)["prompt"] == changed  # type: ignore[index]
    assert provenance.read(webm)["prompt"] == result.workflow  # type: ignore[index]
    assert (sidecar.stat().st_ino, sidecar.stat().st_mtime_ns) == stamp


# -- what came back is checked against what was asked for ----------------------------------------

LOGIN_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><form>"
              b"<input name=user></form></body></html>")


def test_an_html_page_is_never_saved_as_a_png(tmp_path: Path) -> None:
    items = [{"filename": name, "subfolder": "", "type": "output"} for name in ("a.png", "b.png")]
    result, _ = synthetic({"9": {"images": items}}, {("a.png", "", "output"): png(),
                                                     ("b.png", "", "output"): LOGIN_PAGE})
    with pytest.raises(UnexpectedContent, match=r"'b.png' should be a PNG image, but the server "
                                                r"sent an HTML page") as caught:
        result.save(tmp_path / "out")
    assert isinstance(caught.value, ComfyError)
    assert (caught.value.filename, caught.value.found) == ("b.png", "an HTML page")
    assert not (tmp_path / "out").exists()  # not even a.png
    with pytest.raises(UnexpectedContent, match=r"b\.png"):
        result.pil_images()
    with pytest.raises(UnexpectedContent):
        asyncio.run(result.asave(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    assert result.files[0].image().size == (4, 3)


@pytest.mark.parametrize(("name", "key", "data", "found"), [
    ("clip.mp4", "videos", b'{"error": "unauthorized"}', "JSON text"),
    ("voice.flac", "audio", b"", "an empty file"),
    ("photo.jpg", "images", png(), "a PNG image"),
    ("clip.webm", "videos", b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code></Error>",
     "an XML document"),
    ("tone.wav", "audio", b"Service Unavailable\n", "text"),
    ("sound.pcm16", "audio", LOGIN_PAGE, "an HTML page"),  # no signature known: HTML is refused
])
def test_what_came_back_instead_is_named(tmp_path: Path, name: str, key: str, data: bytes,
                                         found: str) -> None:
    result, _ = synthetic({"3": {key: [{"filename": name, "subfolder": "", "type": "output"}]}},
                          {(name, "", "output"): data})
    with pytest.raises(UnexpectedContent) as caught:
        result.files[0].read()
    assert caught.value.found == found and f"sent {found}" in str(caught.value)
    with pytest.raises(UnexpectedContent):
        result.save(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_files_of_other_kinds_and_unknown_media_are_not_judged(tmp_path: Path) -> None:
    items = {"3": {"3d": [{"filename": "mesh.glb", "subfolder": "", "type": "output"}],
                   "audio": [{"filename": "sound.pcm16", "subfolder": "", "type": "output"}]}}
    result, _ = synthetic(items, {("mesh.glb", "", "output"): b"<html>not checked</html>",
                                  ("sound.pcm16", "", "output"): b"\x01\x02 raw samples"})
    assert [f.kind for f in result.files] == ["model3d", "audio"]
    assert [p.name for p in result.save(tmp_path)] == ["mesh.glb", "sound.pcm16"]


# -- names the server sends ----------------------------------------------------------------------

def test_lone_surrogates_in_names_are_replaced_once_for_every_use(tmp_path: Path) -> None:
    items = [{"filename": "odd\udc80.png", "subfolder": "sub\udcff", "type": "output"}]
    result, source = synthetic({"9\udc80": {"images": items}},
                               {("odd\ufffd.png", "sub\ufffd", "output"): png()})
    file, = result.files
    assert (file.node_id, file.filename, file.subfolder) == ("9\ufffd", "odd\ufffd.png",
                                                            "sub\ufffd")
    assert "odd%EF%BF%BD.png" in urlencode(file.params())  # a request can carry it
    path, = result.save(tmp_path)
    assert path.name == "odd\ufffd.png" and path.read_bytes().startswith(png()[:8])
    assert source.fetches == [("odd\ufffd.png", "sub\ufffd", "output")]


def tiny_workflow(prefix: str = "result_test") -> dict[str, Any]:
    return {"1": {"class_type": "EmptyImage",
                  "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0x446688}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                        "filename_prefix": prefix}}}


def test_a_name_with_a_lone_surrogate_downloads_and_saves(tmp_path: Path) -> None:
    """ComfyUI reports a file whose name on disk is not UTF-8 with Python's surrogate escapes
    (JSON ``"\\udc80"``); its web framework reads a replacement character back from a query."""
    with serve(step_delay=0.0) as server, comfy_nb.connect(server.url) as client:
        made = client.run(tiny_workflow(), cache=False)
        Path(server.output_dir, "odd\ufffd.png").write_bytes(png((1, 2, 3)))
        items = [{"filename": "odd\udc80.png", "subfolder": "", "type": "output"},
                 made.outputs["2"]["images"][0]]
        odd = Result("odd", {"2": {"images": items}}, source=made.source,
                     cache_dir=tmp_path / "downloads")
        paths = odd.save(tmp_path / "out")
    assert [p.name for p in paths] == ["odd\ufffd.png", made.files[0].filename]
    assert paths[0].read_bytes() == png((1, 2, 3))


# -- against the emulator: login pages, slow servers ---------------------------------------------

@pytest.mark.parametrize("dialect", ["local", "cloud"])
def test_a_proxy_login_page_is_refused_and_nothing_is_kept(tmp_path: Path, dialect: str) -> None:
    with serve(dialect=dialect, step_delay=0.0) as server, \
            comfy_nb.connect(server.url, api_key=server.api_key) as client:
        result = client.run(tiny_workflow(), cache=False)
        server.faults.update(html_view=True)
        name = result.files[0].filename
        with pytest.raises(UnexpectedContent, match=re.escape(
                f"'{name}' should be a PNG image, but the server sent an HTML page")):
            result.save(tmp_path / "out")
        assert not (tmp_path / "out").exists()
        with pytest.raises(UnexpectedContent):
            result.pil_images()
        server.faults.update(html_view=False)  # nothing of the page was kept anywhere
        path, = result.save(tmp_path / "out")
        assert result.pil_images()[0].size == (8, 8)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_trickling_server_ends_in_a_download_timeout(tmp_path: Path) -> None:
    with serve(step_delay=0.0) as server, \
            comfy_nb.connect(server.url, download_timeout=0.5) as client:
        result = client.run(tiny_workflow(), cache=False)
        server.faults.update(trickle_view=0.05)  # a byte every 0.05 s: never a read timeout
        with pytest.raises(DownloadTimeout, match="download_timeout") as caught:
            result.save(tmp_path / "out")
        assert isinstance(caught.value, TransportError) and isinstance(caught.value, TimeoutError)
        with pytest.raises(DownloadTimeout):
            asyncio.run(result.asave(tmp_path / "out"))
        assert not (tmp_path / "out").exists()
        assert not [p for p in (result.cache_dir or tmp_path).iterdir()
                    if p.name.endswith(".part")]


# -- memory: large outputs stream to disk --------------------------------------------------------

BIG = 48 * 1024 * 1024
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def large_outputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """An emulator in a process of its own (so that its memory is not counted here) serving two
    48 MiB videos; its URL and their names."""
    data = tmp_path_factory.mktemp("emulator")
    names = ["large_1.mp4", "large_2.mp4"]
    (data / "output").mkdir()
    for name in names:
        with open(data / "output" / name, "wb") as out:
            out.write(b"\x00\x00\x00\x18ftypisom")
            for _ in range(BIG // MiB):
                out.write(os.urandom(MiB))
            out.truncate(BIG)
    process = subprocess.Popen(
        [sys.executable, "-m", "comfy_nb.cli", "emulator", "--port", "0", "--step-delay", "0",
         "--data-dir", str(data)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    try:
        url = process.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://"), url
        yield url, names
    finally:
        process.terminate()
        process.wait(30)


def large_result(source: Any, names: list[str], downloads: Path) -> Result:
    items = [{"filename": name, "subfolder": "", "type": "output"} for name in names]
    return Result("large", {"7": {"images": items}}, source=source, cache_dir=downloads)


def traced(action: Any) -> tuple[Any, int, int]:
    """``action()``'s value, and the bytes Python still holds afterwards and held at most
    meanwhile (on every thread)."""
    tracemalloc.start()
    try:
        value = action()
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return value, held, peak


def test_saving_large_outputs_takes_little_memory(large_outputs: tuple[str, list[str]],
                                                  tmp_path: Path) -> None:
    url, names = large_outputs
    with comfy_nb.connect(url) as client:
        source = client.run(tiny_workflow("large"), cache=False).source
        result = large_result(source, names, tmp_path / "downloads")
        paths, held, peak = traced(lambda: result.save(tmp_path / "out"))
        assert [p.stat().st_size for p in paths] == [BIG, BIG]
        assert peak < 16 * MiB and held < 4 * MiB  # the old way: both files, 96 MiB, for good

        size, held, _ = traced(lambda: len(result.files[0].read()))
        assert size == BIG and held < 4 * MiB  # read() hands them out, but does not keep them


def test_saving_large_outputs_asynchronously_takes_little_memory(
        large_outputs: tuple[str, list[str]], tmp_path: Path) -> None:
    url, names = large_outputs

    async def save() -> list[Path]:
        async with comfy_nb.AsyncClient(url) as client:
            made = await client.run(tiny_workflow("large"), cache=False)
            result = large_result(made.source, names, tmp_path / "downloads")
            return await result.asave(tmp_path / "out")

    paths, _, peak = traced(lambda: asyncio.run(save()))
    assert [p.stat().st_size for p in paths] == [BIG, BIG]
    assert peak < 16 * MiB


def test_the_caption_names_the_file_that_holds_the_content(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from comfy_nb.notebook.display import render_result

    monkeypatch.chdir(tmp_path)
    item = {"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"}
    result, _ = synthetic({"9": {"images": [item]}}, {("ComfyUI_00001_.png", "", "output"): png()})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "ComfyUI_00001_.png").write_bytes(png((9, 9, 9)))  # an earlier picture
    path, = result.save("out")
    assert path.name == "ComfyUI_00001_ (1).png"
    html = render_result(result)["text/html"]
    assert '<a href="out/ComfyUI_00001_%20%281%29.png">ComfyUI_00001_ (1).png</a>' in html

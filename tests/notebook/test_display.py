"""comfy_nb.notebook.display: the mimebundle of a Result (thumbnails, gallery, fallbacks) and
save_for_notebook, on real PNG/WEBP/MP4/WAV bytes and on a real emulator run."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from IPython.core.formatters import DisplayFormatter
from PIL import Image

import comfy_nb
import comfy_nb.workflows
from comfy_nb.emulator import serve
from comfy_nb.notebook import display
from comfy_nb.notebook.display import render_result, save_for_notebook
from comfy_nb.result import OutputFile, Result

DATA_URI = re.compile(r'src="data:([a-z0-9/+.-]+);base64,([A-Za-z0-9+/=]+)"')


class Source:
    """Bytes by filename; a filename mapped to an exception raises it. Counts fetches."""

    def __init__(self, blobs: dict[str, bytes | Exception]) -> None:
        self.blobs = blobs
        self.fetches: list[str] = []

    def fetch(self, file: OutputFile) -> bytes:
        self.fetches.append(file.filename)
        blob = self.blobs[file.filename]
        if isinstance(blob, Exception):
            raise blob
        return blob

    async def afetch(self, file: OutputFile) -> bytes:
        await asyncio.sleep(0)
        return self.fetch(file)


def make_result(files: dict[str, bytes | Exception], *, key: str = "images",
                title: str = "Save Image", status: str = "succeeded",
                text: list[str] | None = None, animated: bool = False) -> tuple[Result, Source]:
    source = Source(files)
    output: dict[str, Any] = {key: [{"filename": name, "subfolder": "", "type": "output"}
                                    for name in files]}
    if animated:
        output["animated"] = [True]
    outputs: dict[str, Any] = {"9": output}
    workflow: dict[str, Any] = {"9": {"class_type": "SaveImage", "inputs": {},
                                      "_meta": {"title": title}}}
    if text is not None:
        outputs["12"] = {"text": text}
        workflow["12"] = {"class_type": "PreviewAny", "inputs": {}}
    return Result("4f9c2d1e-prompt", outputs, source=source, workflow=workflow,
                  status=status), source


def noise_png(width: int, height: int, mode: str = "RGB") -> bytes:
    """Incompressible pixels, so a full-resolution copy in the HTML would be obvious."""
    channels = len(mode)
    pixels = np.random.default_rng(width * height).integers(
        0, 256, (height, width, channels), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, "PNG")
    return buffer.getvalue()


def small_png(color: tuple[int, int, int] = (200, 30, 30),
              size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def animated_webp(frames: int = 60, size: tuple[int, int] = (600, 400)) -> bytes:
    pictures = [Image.new("RGB", size, (i * 4 % 256, 50, 255 - i * 4 % 256)) for i in range(frames)]
    buffer = io.BytesIO()
    pictures[0].save(buffer, "WEBP", save_all=True, append_images=pictures[1:], duration=40,
                     loop=0, lossless=True)
    return buffer.getvalue()


def mp4(frames: int = 12) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        encoder = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream: Any = container.add_stream(encoder, rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index in range(frames):
            pixels = np.full((64, 64, 3), index * 20 % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def wav(seconds: float = 0.2, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        samples = (np.sin(np.arange(int(rate * seconds)) / 5) * 8000).astype("<i2")
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def embedded(html: str) -> list[tuple[str, bytes]]:
    """(MIME type, bytes) of every data: URI in the HTML."""
    return [(mime, base64.b64decode(data)) for mime, data in DATA_URI.findall(html)]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test runs in its own directory with the default settings."""
    monkeypatch.chdir(tmp_path)
    for name, value in vars(display.DisplaySettings()).items():
        monkeypatch.setattr(display.settings, name, value)
    return tmp_path


# -- images --------------------------------------------------------------------------------------


def test_thumbnails_are_small_jpegs_and_the_html_stays_small() -> None:
    files = {f"ComfyUI_{i:05d}_.png": noise_png(1024, 768) for i in range(3)}
    result, _ = make_result(dict(files))
    bundle = render_result(result)

    assert set(bundle) == {"text/plain", "text/html", "image/jpeg"}
    html = bundle["text/html"]
    assert len(html) < 200_000 < sum(len(blob) for blob in files.values())
    images = embedded(html)
    assert [mime for mime, _ in images] == ["image/jpeg"] * 3
    for _, data in images:
        with Image.open(io.BytesIO(data)) as picture:
            assert picture.format == "JPEG"
            assert max(picture.size) == 256 and picture.size == (256, 192)
    assert html.count('width="256" height="192"') == 3
    assert html.count("<figure") == 3 and html.count("<figcaption>Save Image<br>") == 3
    with Image.open(io.BytesIO(bundle["image/jpeg"])) as fallback:
        assert fallback.format == "JPEG" and fallback.size == (256, 192)
    assert isinstance(bundle["image/jpeg"], bytes)


def test_the_thumbnail_size_and_format_follow_the_settings() -> None:
    display.settings.thumbnail_size = 100
    display.settings.thumbnail_format = "png"
    result, _ = make_result({"big.png": noise_png(300, 600)})
    bundle = render_result(result)
    with Image.open(io.BytesIO(bundle["image/png"])) as picture:
        assert picture.format == "PNG" and picture.size == (50, 100)
    assert embedded(bundle["text/html"])[0][0] == "image/png"


def test_transparent_images_keep_png_and_small_images_are_not_enlarged() -> None:
    result, _ = make_result({"alpha.png": noise_png(512, 512, "RGBA"), "tiny.png": small_png()})
    bundle = render_result(result)
    (mime1, data1), (mime2, data2) = embedded(bundle["text/html"])
    assert mime1 == "image/png" and Image.open(io.BytesIO(data1)).mode == "RGBA"
    assert mime2 == "image/jpeg" and Image.open(io.BytesIO(data2)).size == (64, 48)
    assert set(bundle) == {"text/plain", "text/html", "image/png"}


def test_captions_and_text_are_escaped() -> None:
    evil = "<script>alert(1)</script>.png"
    result, _ = make_result({evil: small_png()}, title='<script>alert("t")</script>',
                            text=["<b>not bold</b> & <script>x</script>"])
    bundle = render_result(result)
    html = bundle["text/html"]
    assert "<script" not in html and "<b>not bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.png" in html
    assert "&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt;" in html
    assert "<pre>&lt;b&gt;not bold&lt;/b&gt; &amp; &lt;script&gt;x&lt;/script&gt;</pre>" in html
    assert "<strong>PreviewAny</strong>" in html  # a node without a title shows its class
    assert f"<script>alert(\"t\")</script>/{evil}" in bundle["text/plain"]


def test_an_animated_webp_becomes_a_gif_with_a_still_fallback() -> None:
    result, _ = make_result({"clip.webp": animated_webp()}, title="Save Animated WEBP",
                            animated=True)
    assert result.files[0].animated
    bundle = render_result(result)
    html = bundle["text/html"]
    assert "image/webp" not in html
    (mime, data), = embedded(html)
    assert mime == "image/gif"
    with Image.open(io.BytesIO(data)) as gif:
        assert gif.format == "GIF" and gif.size == (256, 171)
        assert 2 <= gif.n_frames <= 48
    still = bundle["image/jpeg"]
    with Image.open(io.BytesIO(still)) as picture:
        assert picture.format == "JPEG" and getattr(picture, "n_frames", 1) == 1
        assert picture.size == (256, 171)


def test_thumbnails_are_made_once(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[int] = []
    original = display.make_thumbnail

    def counting(data: bytes, size: int, fmt: str) -> Any:
        made.append(size)
        return original(data, size, fmt)

    monkeypatch.setattr(display, "make_thumbnail", counting)
    result, source = make_result({"a.png": small_png(), "b.png": small_png((0, 0, 255))})
    first = render_result(result)
    assert render_result(result) == first
    assert made == [256, 256] and sorted(source.fetches) == ["a.png", "b.png"]
    display.settings.thumbnail_size = 32  # a new size is a new thumbnail, not a new download
    render_result(result)
    assert made == [256, 256, 32, 32] and len(source.fetches) == 2


def test_a_batch_of_64_shows_max_items_then_one_more_line(isolated: Path) -> None:
    files = {f"ComfyUI_{i:05d}_.png": small_png((i * 4, 0, 0)) for i in range(64)}
    result, source = make_result(dict(files))
    bundle = render_result(result)
    html = bundle["text/html"]
    assert html.count("<img ") == 24 and html.count("<figure") == 24
    assert "… and 40 more files (not shown; save them with result.save(dir))" in html
    assert len(source.fetches) == 24  # the hidden ones are not even downloaded
    plain = bundle["text/plain"].splitlines()
    assert plain[0] == "<Result 4f9c2d1e… 64 images>" and len(plain) == 12
    assert plain[1] == "  Save Image/ComfyUI_00000_.png" and plain[-1] == "  ... and 54 more"

    paths = save_for_notebook(result)
    assert [p.name for p in paths] == list(files)
    assert all(p.parent == isolated / "comfy_outputs" for p in paths)
    html = render_result(result)["text/html"]
    assert html.count("<img ") == 24
    assert "… and 40 more files in comfy_outputs: " in html
    assert '<a href="comfy_outputs/ComfyUI_00063_.png">ComfyUI_00063_.png</a>' in html
    assert '<a href="comfy_outputs/ComfyUI_00000_.png"><img ' in html


def test_a_broken_file_does_not_break_the_gallery() -> None:
    result, _ = make_result({"ok.png": small_png(), "gone.png": ConnectionError("server gone"),
                             "junk.png": b"\x89PNG\r\n\x1a\nnot a picture",
                             "ok2.png": small_png((0, 90, 0))})
    bundle = render_result(result)
    html = bundle["text/html"]
    assert html.count("<img ") == 2 and html.count("<figure") == 4
    assert "could not be shown: ConnectionError: server gone" in html
    assert "could not be shown: UnidentifiedImageError: " in html
    assert "image/jpeg" in bundle
    broken_first, _ = make_result({"gone.png": OSError("x"), "ok.png": small_png()})
    assert "image/jpeg" in render_result(broken_first)  # the fallback skips the broken one


def test_a_failed_result_shows_its_status() -> None:
    result, _ = make_result({}, status="failed")
    bundle = render_result(result)
    assert "failed" in bundle["text/plain"]
    assert "<strong>Status: failed</strong>" in bundle["text/html"]
    assert set(bundle) == {"text/plain", "text/html"}


# -- video, audio, other files -------------------------------------------------------------------


def test_a_small_video_is_embedded(isolated: Path) -> None:
    clip = mp4()
    result, _ = make_result({"clip.mp4": clip}, key="videos", title="Save Video")
    assert result.files[0].kind == "video" and len(clip) < display.settings.embed_limit
    html = render_result(result)["text/html"]
    (mime, data), = embedded(html)
    assert mime == "video/mp4" and data == clip
    assert "<video" in html
    assert list(isolated.iterdir()) == []


def test_a_large_video_is_saved_and_linked_not_embedded(isolated: Path) -> None:
    clip = mp4()
    display.settings.embed_limit = len(clip) - 1
    result, _ = make_result({"my clip.mp4": clip}, key="videos", title="Save Video")
    html = render_result(result)["text/html"]
    assert "base64" not in html
    saved = isolated / "comfy_outputs" / "my clip.mp4"
    assert saved.read_bytes() == clip and result.saved_path(result.files[0]) == saved
    assert '<video src="comfy_outputs/my%20clip.mp4"' in html
    assert '<a href="comfy_outputs/my%20clip.mp4">my clip.mp4</a>' in html
    assert "comfy_outputs/my clip.mp4" in render_result(result)["text/plain"]
    assert sorted(p.name for p in saved.parent.iterdir()) == [  # saved once, with provenance
        "my clip.mp4", "my clip.mp4.comfy_nb.json"]
    fresh, _ = make_result({"other.mp4": clip}, key="videos")
    assert render_result(fresh)["text/plain"].endswith("/other.mp4 -> comfy_outputs/other.mp4")


def test_a_large_video_without_an_output_dir_says_so(isolated: Path) -> None:
    display.settings.embed_limit = 100
    display.settings.output_dir = None
    result, _ = make_result({"clip.mp4": mp4()}, key="videos")
    html = render_result(result)["text/html"]
    assert "not embedded (0.0 MB &gt; embed_limit); save it with result.save(dir)" in html
    assert "base64" not in html and list(isolated.iterdir()) == []
    assert save_for_notebook(result) == [] and list(isolated.iterdir()) == []


def test_audio_is_embedded_or_linked(isolated: Path) -> None:
    sound = wav()
    result, _ = make_result({"tone.wav": sound}, key="audio", title="Save Audio")
    html = render_result(result)["text/html"]
    (mime, data), = embedded(html)
    assert mime == "audio/wav" and data == sound and "<audio" in html

    display.settings.embed_limit = 10
    result, _ = make_result({"tone.wav": sound}, key="audio")
    html = render_result(result)["text/html"]
    assert "base64" not in html and '<source src="comfy_outputs/tone.wav"' in html
    assert (isolated / "comfy_outputs" / "tone.wav").read_bytes() == sound


def test_other_files_are_listed_with_a_link_once_saved(isolated: Path) -> None:
    result, _ = make_result({"mesh.glb": b"glTF\x02\x00\x00\x00"}, key="3d", title="Save GLB")
    html = render_result(result)["text/html"]
    assert "Save GLB: mesh.glb (3D model, model/gltf-binary)" in html and "<figure" not in html
    save_for_notebook(result, "out dir")
    html = render_result(result)["text/html"]
    assert '<a href="out%20dir/mesh.glb">mesh.glb</a>' in html
    assert (isolated / "out dir" / "mesh.glb").is_file()


# -- the bundle, saving ---------------------------------------------------------------------------


def test_include_and_exclude_are_honoured() -> None:
    result, source = make_result({"a.png": small_png()})
    assert set(render_result(result, include={"text/plain"})) == {"text/plain"}
    assert source.fetches == []  # nothing was downloaded for a text-only bundle
    assert set(render_result(result, exclude={"text/html", "image/jpeg"})) == {"text/plain"}
    assert set(render_result(result, include={"image/jpeg", "text/html"})) == {
        "image/jpeg", "text/html"}
    assert set(result._repr_mimebundle_(exclude={"text/plain"})) == {"text/html", "image/jpeg"}


def test_a_result_already_on_screen_shows_nothing_more_as_the_cells_value(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    result, _ = make_result({"a.png": small_png()})
    other, _ = make_result({"b.png": small_png()})
    written: list[dict[str, Any]] = []
    monkeypatch.setattr(shell.displayhook, "write_format_data",
                        lambda data, metadata=None: written.append(data))
    display.mark_shown(result)
    shell.displayhook(result)  # Out[n] of the cell whose panel became the gallery: nothing
    assert written == []
    assert shell.user_ns["_"] is result  # still the cell's value
    shell.displayhook(other)
    assert set(written[0]) == {"text/plain", "text/html", "image/jpeg"}
    # display(result) asked for on purpose still shows the gallery
    published: list[dict[str, Any]] = []
    monkeypatch.setattr(shell.display_pub, "publish",
                        lambda data, **kwargs: published.append(data))
    from IPython.display import display as ipython_display

    ipython_display(result)
    assert set(published[0]) == {"text/plain", "text/html", "image/jpeg"}
    display.forget_shown(object())  # IPython's post_run_cell passes an ExecutionResult
    shell.displayhook(result)
    assert set(written[1]) == {"text/plain", "text/html", "image/jpeg"}


def test_ipython_formats_a_result() -> None:
    display.settings.thumbnail_format = "png"
    result, _ = make_result({"a.png": small_png()})
    data, _metadata = DisplayFormatter().format(result)
    assert {"text/html", "text/plain", "image/png"} <= set(data)
    assert data["text/plain"].startswith("<Result 4f9c2d1e… 1 image>")


def test_save_for_notebook_writes_once_and_remembers_paths(isolated: Path) -> None:
    result, _ = make_result({"a.png": small_png(), "b.png": small_png((1, 2, 3))})
    paths = save_for_notebook(result)
    assert paths == [isolated / "comfy_outputs" / "a.png", isolated / "comfy_outputs" / "b.png"]
    assert save_for_notebook(result) == paths  # already there: nothing new is written
    assert sorted(os.listdir(isolated / "comfy_outputs")) == ["a.png", "b.png"]
    elsewhere = save_for_notebook(result, isolated / "elsewhere")
    assert [p.parent for p in elsewhere] == [isolated / "elsewhere"] * 2
    assert result.saved_path(result.files[0]) == elsewhere[0]
    assert "-> elsewhere/a.png" in render_result(result)["text/plain"]


def test_save_for_notebook_raises_when_a_download_fails_and_writes_nothing(
        isolated: Path) -> None:
    result, _ = make_result({"a.png": small_png(), "gone.png": ConnectionError("gone")})
    with pytest.raises(ConnectionError, match="gone"):
        save_for_notebook(result)
    assert not (isolated / "comfy_outputs").exists()


def test_save_for_notebook_lets_a_replay_error_through(isolated: Path) -> None:
    from comfy_nb.recordings import ReplayError

    damaged = ReplayError("recording/01-x/outputs/node9-1.png is missing from the recording")
    result, _ = make_result({"a.png": damaged})
    with pytest.raises(ReplayError, match="missing from the recording"):
        save_for_notebook(result)


def test_save_for_notebook_refuses_a_file_as_the_folder(isolated: Path) -> None:
    (isolated / "afile").write_text("mine")
    result, _ = make_result({"a.png": small_png()})
    with pytest.raises(NotADirectoryError, match="'afile': is a file, not a folder"):
        save_for_notebook(result, "afile")
    assert (isolated / "afile").read_text() == "mine"


def test_every_save_method_records_the_paths(isolated: Path) -> None:
    result, _ = make_result({"a.png": small_png(), "b.png": small_png((1, 2, 3))})
    first, second = result.files
    assert result.saved_path(first) is None
    assert result.save("x") == [result.saved_path(first), result.saved_path(second)]
    assert asyncio.run(result.asave("y")) == [isolated / "y" / "a.png", isolated / "y" / "b.png"]
    assert result.saved_path(second) == isolated / "y" / "b.png"
    assert first.save("z") == result.saved_path(first) == isolated / "z" / "a.png"
    assert asyncio.run(second.asave("z", name="c.png")) == result.saved_path(second)
    assert result.saved_path(second) == isolated / "z" / "c.png"


# -- end to end ----------------------------------------------------------------------------------


def test_a_run_on_the_emulator_renders(isolated: Path) -> None:
    with serve() as server, comfy_nb.connect(server.url) as client:
        result = client.run(comfy_nb.workflows.bundled("txt2img"), timeout=60)
        data, _ = DisplayFormatter().format(result)
        paths = save_for_notebook(result)
        linked = render_result(result)["text/html"]
    assert result.status == "succeeded" and len(result.images) == 1
    (mime, thumb), = embedded(data["text/html"])
    full = Image.open(io.BytesIO(result.images[0].read()))
    assert mime == "image/jpeg" and max(full.size) > 256
    assert max(Image.open(io.BytesIO(thumb)).size) == 256
    assert data["image/jpeg"] == thumb
    assert "<figcaption>Save Image<br>ComfyUI_00001_.png</figcaption>" in data["text/html"]
    assert data["text/plain"].splitlines()[1] == "  Save Image/ComfyUI_00001_.png"
    assert paths == [isolated / "comfy_outputs" / "ComfyUI_00001_.png"]
    assert '<a href="comfy_outputs/ComfyUI_00001_.png"><img ' in linked

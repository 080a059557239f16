"""Tests of the emulator's node implementations, called directly through IMPLEMENTATIONS with a
fake context, and compared with the files recorded on a real ComfyUI 0.3.64 server."""

from __future__ import annotations

import io
import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from comfy_nb.emulator.nodes import IMPLEMENTATIONS, NodeResult, PreviewImage
from comfy_nb.emulator.nodes.sampling import StandInConditioning, StandInModel
from comfy_nb.emulator.nodes.video import EmulatedVideo
from tests import fixture_paths

FIXTURES = fixture_paths.COMFYUI
RUNS = FIXTURES / "runs"
TEMP_NAME = re.compile(r"^ComfyUI_temp_[a-z]{5}_(\d{5})_\.(png|flac)$")


# -- helpers -------------------------------------------------------------------------------------


@dataclass
class FakeContext:
    """Records what a node reports; folders live under pytest's tmp_path."""

    input_dir: Path
    output_dir: Path
    temp_dir: Path
    node_id: str = "1"
    prompt_id: str = "test-prompt"
    prompt: dict[str, Any] = field(default_factory=dict)
    extra_pnginfo: dict[str, Any] | None = None
    step_delay: float = 0.0
    progress_calls: list[tuple[int, int, PreviewImage | None]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def progress(self, value: int, total: int, preview: PreviewImage | None = None) -> None:
        self.progress_calls.append((value, total, preview))

    def send_text(self, text: str) -> None:
        self.texts.append(text)

    def check_interrupted(self) -> None:
        pass

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
def ctx(tmp_path: Path) -> FakeContext:
    dirs = [tmp_path / name for name in ("input", "output", "temp")]
    for folder in dirs:
        folder.mkdir()
    return FakeContext(input_dir=dirs[0], output_dir=dirs[1], temp_dir=dirs[2])


def run(ctx: FakeContext, class_type: str, **inputs: Any) -> NodeResult:
    return IMPLEMENTATIONS[class_type](ctx, **inputs)


def out(ctx: FakeContext, class_type: str, **inputs: Any) -> Any:
    """The first output of a node."""
    return run(ctx, class_type, **inputs).outputs[0]


def ui_of(result: NodeResult) -> dict[str, Any]:
    assert result.ui is not None
    return result.ui


def png_text(path: Path) -> dict[str, str]:
    """The tEXt chunks of a PNG, in file order."""
    image: Any = Image.open(path)
    return dict(image.text)


def recorded_prompt(run_name: str) -> dict[str, Any]:
    body = json.loads((RUNS / run_name / "post_prompt.json").read_text())["request"]["body"]
    return dict(body)


def recorded_outputs(run_name: str) -> dict[str, Any]:
    history = json.loads((RUNS / run_name / "history.json").read_text())["response"]["body"]
    (entry,) = history.values()
    return dict(entry["outputs"])


def execute(ctx: FakeContext, prompt: dict[str, Any]) -> dict[str, NodeResult]:
    """A tiny executor for recorded API prompts: runs the nodes in dependency order."""
    results: dict[str, NodeResult] = {}

    def visit(node_id: str) -> NodeResult:
        if node_id not in results:
            spec = prompt[node_id]
            inputs = {
                name: visit(value[0]).outputs[value[1]] if isinstance(value, list) else value
                for name, value in spec["inputs"].items()
            }
            ctx.node_id = node_id
            results[node_id] = run(ctx, spec["class_type"], **inputs)
        return results[node_id]

    for node_id in prompt:
        visit(node_id)
    return results


def pixels(path: Path | bytes) -> np.ndarray[Any, Any]:
    image = Image.open(io.BytesIO(path) if isinstance(path, bytes) else path)
    return np.asarray(image.convert("RGB")).astype(int)


def image_of(color: int, width: int = 8, height: int = 8, batch: int = 1) -> Any:
    return out(
        FakeContext(Path(), Path(), Path()),
        "EmptyImage",
        width=width,
        height=height,
        batch_size=batch,
        color=color,
    )


def gradient(width: int = 16, height: int = 12) -> np.ndarray[Any, Any]:
    x = np.linspace(0, 1, width, dtype=np.float32)
    y = np.linspace(0, 1, height, dtype=np.float32)
    image = np.stack(np.broadcast_arrays(x[None, :], y[:, None], 0.5 * x[None, :]), axis=-1)
    return image[None].astype(np.float32)


def audio_info(path: Path) -> dict[str, Any]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return {
            "rate": stream.codec_context.sample_rate,
            "channels": stream.codec_context.channels,
            "samples": samples,
            "codec": stream.codec_context.name,
            # the muxer's version tag ("encoder": "Lavf62.x") depends on the PyAV build
            "metadata": {k: v for k, v in container.metadata.items() if k != "encoder"},
        }


def video_info(path: Path) -> dict[str, Any]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return {
            "codec": stream.codec_context.name,
            "size": (stream.codec_context.width, stream.codec_context.height),
            "pix_fmt": stream.codec_context.pix_fmt,
            "fps": stream.average_rate,
            "frames": frames,
            "duration": container.duration,
        }


# -- registry ------------------------------------------------------------------------------------

BRIEF_NODES = [
    "EmptyImage",
    "LoadImage",
    "LoadImageMask",
    "ImageInvert",
    "ImageScale",
    "ImageScaleBy",
    "ImageBlur",
    "ImageCrop",
    "ImageBatch",
    "RepeatImageBatch",
    "SaveImage",
    "PreviewImage",
    "SaveAnimatedWEBP",
    "SaveAnimatedPNG",
    "GetImageSize",
    "SaveImageWebsocket",
    "EmptyAudio",
    "LoadAudio",
    "SaveAudio",
    "SaveAudioMP3",
    "SaveAudioOpus",
    "PreviewAudio",
    "CreateVideo",
    "SaveVideo",
    "SaveWEBM",
    "StringConcatenate",
    "RegexReplace",
    "PreviewAny",
    "StringLength",
    "StringSubstring",
    "StringReplace",
    "StringTrim",
    "StringContains",
    "CaseConverter",
    "CheckpointLoaderSimple",
    "LoraLoader",
    "CLIPTextEncode",
    "EmptyLatentImage",
    "KSampler",
    "KSamplerAdvanced",
    "VAEDecode",
    "VAEEncode",
]


def test_every_node_of_the_brief_is_registered() -> None:
    assert set(BRIEF_NODES) <= set(IMPLEMENTATIONS)


def test_every_implementation_is_a_real_node_class() -> None:
    object_info = json.loads((FIXTURES / "http" / "object_info.json").read_text())
    assert set(IMPLEMENTATIONS) <= set(object_info)


# -- images: create, transform -------------------------------------------------------------------


def test_empty_image_colour_and_shape(ctx: FakeContext) -> None:
    image = out(ctx, "EmptyImage", width=5, height=3, batch_size=2, color=0x3366CC)
    assert image.shape == (2, 3, 5, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image[1, 2, 4], [0x33 / 255, 0x66 / 255, 0xCC / 255], rtol=1e-6)


def test_empty_image_defaults(ctx: FakeContext) -> None:
    assert out(ctx, "EmptyImage").shape == (1, 512, 512, 3)


def test_image_invert(ctx: FakeContext) -> None:
    inverted = out(ctx, "ImageInvert", image=image_of(0xFF8000))
    np.testing.assert_allclose(inverted[0, 0, 0], [0.0, 127 / 255, 1.0], atol=1e-6)


def test_image_scale_sizes_and_aspect(ctx: FakeContext) -> None:
    image = gradient(16, 12)
    for method in ("nearest-exact", "bilinear", "area", "bicubic", "lanczos"):
        scaled = out(
            ctx,
            "ImageScale",
            image=image,
            upscale_method=method,
            width=40,
            height=20,
            crop="disabled",
        )
        assert scaled.shape == (1, 20, 40, 3), method
    keep_ratio = out(
        ctx,
        "ImageScale",
        image=image,
        upscale_method="bilinear",
        width=32,
        height=0,
        crop="disabled",
    )
    assert keep_ratio.shape == (1, 24, 32, 3)
    keep_ratio = out(
        ctx, "ImageScale", image=image, upscale_method="area", width=0, height=6, crop="disabled"
    )
    assert keep_ratio.shape == (1, 6, 8, 3)
    same = out(
        ctx, "ImageScale", image=image, upscale_method="area", width=0, height=0, crop="disabled"
    )
    assert same is image


def test_image_scale_nearest_and_area_values(ctx: FakeContext) -> None:
    image = np.arange(4, dtype=np.float32).reshape(1, 1, 4, 1).repeat(3, axis=-1) / 4
    nearest = out(
        ctx,
        "ImageScale",
        image=image,
        upscale_method="nearest-exact",
        width=8,
        height=1,
        crop="disabled",
    )
    np.testing.assert_allclose(nearest[0, 0, :, 0], [0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75])
    area = out(
        ctx, "ImageScale", image=image, upscale_method="area", width=2, height=1, crop="disabled"
    )
    np.testing.assert_allclose(area[0, 0, :, 0], [0.125, 0.625])


def test_image_scale_center_crop(ctx: FakeContext) -> None:
    image = np.zeros((1, 10, 20, 3), dtype=np.float32)
    image[:, :, 5:15] = 1.0  # a white square in the middle, black bands left and right
    scaled = out(
        ctx,
        "ImageScale",
        image=image,
        upscale_method="nearest-exact",
        width=10,
        height=10,
        crop="center",
    )
    assert scaled.shape == (1, 10, 10, 3)
    assert scaled.min() == 1.0  # the bands were cropped away


def test_image_scale_by(ctx: FakeContext) -> None:
    scaled = out(
        ctx, "ImageScaleBy", image=gradient(16, 12), upscale_method="bicubic", scale_by=2.5
    )
    assert scaled.shape == (1, 30, 40, 3)


def test_image_blur(ctx: FakeContext) -> None:
    image = np.zeros((1, 9, 9, 3), dtype=np.float32)
    image[0, 4, 4] = 1.0
    blurred = out(ctx, "ImageBlur", image=image, blur_radius=2, sigma=1.0)
    assert blurred.shape == image.shape
    assert 0 < blurred[0, 4, 4, 0] < 1 and blurred[0, 4, 5, 0] > 0 and blurred[0, 0, 0, 0] == 0
    assert blurred[0, 4, 5, 0] == pytest.approx(blurred[0, 5, 4, 0])
    assert blurred.sum() == pytest.approx(image.sum(), rel=1e-5)
    flat = image_of(0x808080, 16, 16)
    np.testing.assert_allclose(
        out(ctx, "ImageBlur", image=flat, blur_radius=5, sigma=3.0), flat, atol=1e-6
    )
    assert out(ctx, "ImageBlur", image=image, blur_radius=0, sigma=1.0) is image


def test_image_crop(ctx: FakeContext) -> None:
    image = gradient(16, 12)
    cropped = out(ctx, "ImageCrop", image=image, width=4, height=3, x=2, y=5)
    np.testing.assert_array_equal(cropped, image[:, 5:8, 2:6])
    clipped = out(ctx, "ImageCrop", image=image, width=100, height=100, x=50, y=50)
    assert clipped.shape == (1, 1, 1, 3)


def test_image_batch_and_repeat(ctx: FakeContext) -> None:
    red, blue = image_of(0xFF0000, 8, 8), image_of(0x0000FF, 4, 6)
    batch = out(ctx, "ImageBatch", image1=red, image2=blue)
    assert batch.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(batch[1, 3, 3], [0, 0, 1], atol=1e-6)
    repeated = out(ctx, "RepeatImageBatch", image=batch, amount=3)
    assert repeated.shape == (6, 8, 8, 3)
    assert [float(frame[0, 0, 0]) for frame in repeated] == [1, 0, 1, 0, 1, 0]


# -- images: load --------------------------------------------------------------------------------


def test_load_image_rgb_subfolder_and_annotation(ctx: FakeContext) -> None:
    (ctx.input_dir / "sub").mkdir()
    Image.new("RGB", (6, 4), (255, 0, 0)).save(ctx.input_dir / "sub" / "red.png")
    image, mask = run(ctx, "LoadImage", image="sub/red.png").outputs
    assert image.shape == (1, 4, 6, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image[0, 0, 0], [1, 0, 0])
    assert mask.shape == (1, 64, 64) and mask.max() == 0
    annotated, _ = run(ctx, "LoadImage", image="sub/red.png [input]").outputs
    np.testing.assert_array_equal(annotated, image)
    Image.new("RGB", (2, 2), (0, 255, 0)).save(ctx.output_dir / "made.png")
    from_output, _ = run(ctx, "LoadImage", image="made.png [output]").outputs
    np.testing.assert_allclose(from_output[0, 0, 0], [0, 1, 0])


def test_load_image_alpha_mask_is_inverted(ctx: FakeContext) -> None:
    Image.new("RGBA", (3, 2), (10, 20, 30, 255 // 5)).save(ctx.input_dir / "a.png")
    image, mask = run(ctx, "LoadImage", image="a.png").outputs
    assert image.shape == (1, 2, 3, 3) and mask.shape == (1, 2, 3)
    np.testing.assert_allclose(mask, 1 - 51 / 255, atol=1e-6)


def test_load_image_multi_frame_gives_a_batch(ctx: FakeContext) -> None:
    frames = [Image.new("RGB", (5, 5), color) for color in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(ctx.input_dir / "anim.gif", save_all=True, append_images=frames[1:])
    image, mask = run(ctx, "LoadImage", image="anim.gif").outputs
    assert image.shape == (3, 5, 5, 3) and mask.shape[0] == 3


def test_load_image_errors(ctx: FakeContext) -> None:
    with pytest.raises(FileNotFoundError):
        run(ctx, "LoadImage", image="missing.png")
    with pytest.raises(ValueError):
        run(ctx, "LoadImage", image="../output/x.png")


def test_load_image_mask_channels(ctx: FakeContext) -> None:
    Image.new("RGBA", (4, 4), (255, 128, 0, 64)).save(ctx.input_dir / "m.png")
    expected = {"red": 1.0, "green": 128 / 255, "blue": 0.0, "alpha": 1 - 64 / 255}
    for channel, value in expected.items():
        mask = out(ctx, "LoadImageMask", image="m.png", channel=channel)
        assert mask.shape == (1, 4, 4)
        np.testing.assert_allclose(mask, value, atol=1e-6)
    Image.new("RGB", (4, 4), (255, 0, 0)).save(ctx.input_dir / "rgb.png")
    assert out(ctx, "LoadImageMask", image="rgb.png", channel="alpha").max() == 0


# -- images: save --------------------------------------------------------------------------------


def test_empty_invert_save_matches_recording(ctx: FakeContext) -> None:
    ctx.prompt = recorded_prompt("empty_invert_save")["prompt"]
    results = execute(ctx, ctx.prompt)
    assert results["3"].ui == recorded_outputs("empty_invert_save")["3"]
    saved = ctx.output_dir / "comfy_nb_fixture" / "invert_00001_.png"
    recorded = RUNS / "empty_invert_save" / "view_0_invert_00001_.png"
    np.testing.assert_array_equal(pixels(saved), pixels(recorded))  # truncation, e.g. 50 not 51
    assert png_text(saved) == png_text(recorded)  # byte-identical prompt chunk


def test_extra_pnginfo_chunks_match_recording(ctx: FakeContext) -> None:
    body = recorded_prompt("client_supplied_prompt_id")
    ctx.prompt, ctx.extra_pnginfo = body["prompt"], body["extra_data"]["extra_pnginfo"]
    execute(ctx, ctx.prompt)
    saved = ctx.output_dir / "comfy_nb_fixture" / "custom_pid_00001_.png"
    recorded = RUNS / "client_supplied_prompt_id" / "view_0_custom_pid_00001_.png"
    assert list(png_text(saved).items()) == list(png_text(recorded).items())


def test_save_image_counters_and_subfolders(ctx: FakeContext) -> None:
    image = image_of(0x123456, 4, 4)
    names = [
        ui_of(run(ctx, "SaveImage", images=image, filename_prefix="sub/dir/cat")) for _ in range(2)
    ]
    assert names[0] == {
        "images": [{"filename": "cat_00001_.png", "subfolder": "sub/dir", "type": "output"}]
    }
    assert names[1]["images"][0]["filename"] == "cat_00002_.png"
    batch = run(ctx, "SaveImage", images=image_of(0, 4, 4, batch=2), filename_prefix="sub/dir/cat")
    assert [e["filename"] for e in ui_of(batch)["images"]] == ["cat_00003_.png", "cat_00004_.png"]
    other = run(ctx, "SaveImage", images=image, filename_prefix="sub/dir/dog")
    assert ui_of(other)["images"][0]["filename"] == "dog_00001_.png"
    top = run(ctx, "SaveImage", images=image, filename_prefix="top")
    assert ui_of(top)["images"][0] == {
        "filename": "top_00001_.png",
        "subfolder": "",
        "type": "output",
    }
    assert (ctx.output_dir / "sub" / "dir" / "cat_00004_.png").is_file()


def test_save_image_prefix_variables(ctx: FakeContext) -> None:
    batch = run(
        ctx,
        "SaveImage",
        images=image_of(0, 4, 3, batch=2),
        filename_prefix="b%batch_num%_%width%x%height%",
    )
    assert [e["filename"] for e in ui_of(batch)["images"]] == [
        "b0_4x3_00001_.png",
        "b1_4x3_00002_.png",
    ]
    dated = run(ctx, "SaveImage", images=image_of(0, 4, 4), filename_prefix="%date:yyyy-MM-dd%/d")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", ui_of(dated)["images"][0]["subfolder"])


def test_save_image_refuses_to_leave_the_output_folder(ctx: FakeContext) -> None:
    with pytest.raises(Exception, match="outside the output folder"):
        run(ctx, "SaveImage", images=image_of(0), filename_prefix="../escape/x")
    assert not (ctx.output_dir.parent / "escape").exists()


def test_preview_image_temp_naming_matches_recording(ctx: FakeContext) -> None:
    ctx.prompt = recorded_prompt("preview_image_temp")["prompt"]
    ui = execute(ctx, ctx.prompt)["2"].ui
    recorded = recorded_outputs("preview_image_temp")["2"]
    assert ui is not None and len(ui["images"]) == len(recorded["images"]) == 2
    for mine, theirs in zip(ui["images"], recorded["images"], strict=True):
        assert TEMP_NAME.match(mine["filename"]) and TEMP_NAME.match(theirs["filename"])
        assert mine["filename"][-10:] == theirs["filename"][-10:]  # same counters
        assert (mine["subfolder"], mine["type"]) == ("", "temp")
    assert ui["images"][0]["filename"][:18] == ui["images"][1]["filename"][:18]
    saved = ctx.temp_dir / ui["images"][0]["filename"]
    np.testing.assert_array_equal(
        pixels(saved), pixels(RUNS / "preview_image_temp" / "view_0_ComfyUI_temp_qxmys_00001_.png")
    )
    assert png_text(saved)["prompt"] == json.dumps(ctx.prompt)


def test_load_subfolder_preview_matches_recording(ctx: FakeContext) -> None:
    (ctx.input_dir / "comfy_nb").mkdir()
    (ctx.input_dir / "comfy_nb" / "grad.png").write_bytes(
        (FIXTURES / "inputs" / "gradient_64x48.png").read_bytes()
    )
    ui = execute(ctx, recorded_prompt("load_subfolder_preview")["prompt"])["12"].ui
    assert ui is not None
    saved = ctx.temp_dir / ui["images"][0]["filename"]
    recorded = RUNS / "load_subfolder_preview" / "view_0_ComfyUI_temp_bqals_00001_.png"
    np.testing.assert_array_equal(pixels(saved), pixels(recorded))


def test_upload_load_scale_save_matches_recording(ctx: FakeContext) -> None:
    (ctx.input_dir / "comfy_nb_gradient.png").write_bytes(
        (FIXTURES / "inputs" / "gradient_64x48.png").read_bytes()
    )
    results = execute(ctx, recorded_prompt("upload_load_scale_save")["prompt"])
    assert results["12"].ui == recorded_outputs("upload_load_scale_save")["12"]
    mine = pixels(ctx.output_dir / "comfy_nb_fixture" / "scaled_00001_.png")
    theirs = pixels(RUNS / "upload_load_scale_save" / "view_0_scaled_00001_.png")
    assert mine.shape == theirs.shape == (96, 128, 3)
    np.testing.assert_array_equal(mine, theirs)  # bilinear like torch, pixel for pixel


def test_animated_webp_and_png_match_recording(ctx: FakeContext) -> None:
    ctx.prompt = recorded_prompt("animated_webp_png")["prompt"]
    results = execute(ctx, ctx.prompt)
    recorded = recorded_outputs("animated_webp_png")
    assert results["5"].ui == recorded["5"] and results["6"].ui == recorded["6"]
    folder = ctx.output_dir / "comfy_nb_fixture"
    for mine_name, theirs_name in (
        ("anim_00001_.webp", "view_0_anim_00001_.webp"),
        ("anim_00002_.png", "view_1_anim_00002_.png"),
    ):
        mine, theirs = (
            Image.open(folder / mine_name),
            Image.open(RUNS / "animated_webp_png" / theirs_name),
        )
        assert (
            (mine.format, mine.mode, mine.size, getattr(mine, "n_frames", 1))
            == (theirs.format, theirs.mode, theirs.size, getattr(theirs, "n_frames", 1))
            == (mine.format, "RGB", (48, 48), 4)
        )
        for index in range(4):
            mine.seek(index)
            theirs.seek(index)
            assert np.abs(pixels_of(mine) - pixels_of(theirs)).max() <= 2
    webp = Image.open(folder / "anim_00001_.webp")
    assert webp.getexif()[0x0110] == "prompt:" + json.dumps(ctx.prompt)
    apng = Image.open(folder / "anim_00002_.png")
    assert apng.info["duration"] == 250
    assert chunks(folder / "anim_00002_.png") == chunks(
        RUNS / "animated_webp_png" / "view_1_anim_00002_.png"
    )


def pixels_of(image: Image.Image) -> np.ndarray[Any, Any]:
    return np.asarray(image.convert("RGB")).astype(int)


def chunks(path: Path) -> list[tuple[bytes, bytes | None]]:
    """PNG chunk types in order, with the data of the metadata (``comf``/``tEXt``) chunks."""
    data, offset, found = path.read_bytes(), 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        found.append((kind, body if kind in (b"comf", b"tEXt") else None))
        offset += 12 + length
    return found


def test_animated_webp_single_frame_is_not_animated(ctx: FakeContext) -> None:
    ui = run(
        ctx,
        "SaveAnimatedWEBP",
        images=image_of(0xFF, 8, 8),
        filename_prefix="one",
        fps=6.0,
        lossless=True,
        quality=80,
        method="fastest",
    ).ui
    assert ui == {
        "images": [{"filename": "one_00001_.webp", "subfolder": "", "type": "output"}],
        "animated": [False],
    }


def test_animated_metadata_with_extra_pnginfo(ctx: FakeContext) -> None:
    ctx.prompt, ctx.extra_pnginfo = {"1": {}}, {"workflow": {"nodes": []}, "other": 1}
    frames = image_of(0xFF, 8, 8, batch=2)
    run(
        ctx,
        "SaveAnimatedWEBP",
        images=frames,
        filename_prefix="m",
        fps=6.0,
        lossless=True,
        quality=80,
        method="default",
    )
    run(ctx, "SaveAnimatedPNG", images=frames, filename_prefix="m", fps=6.0, compress_level=4)
    exif = Image.open(ctx.output_dir / "m_00001_.webp").getexif()
    assert exif[0x010F] == 'workflow:{"nodes": []}' and exif[0x010E] == "other:1"
    comf = [body for kind, body in chunks(ctx.output_dir / "m_00002_.png") if kind == b"comf"]
    assert comf == [b'prompt\0{"1": {}}', b'workflow\0{"nodes": []}', b"other\x001"]


# -- GetImageSize, PreviewAny, websocket images --------------------------------------------------


def test_multi_output_text_matches_recording(ctx: FakeContext) -> None:
    ctx.prompt = recorded_prompt("multi_output_text")["prompt"]
    results = execute(ctx, ctx.prompt)
    recorded = recorded_outputs("multi_output_text")
    for node_id in ("2", "5", "7"):
        assert results[node_id].ui == recorded[node_id], node_id
    assert results["6"].outputs == (16, 16, 1)
    frame = (RUNS / "multi_output_text" / "binary_frame_0.bin").read_bytes()
    event, id_length = struct.unpack(">II", frame[:8])
    assert event == 3 and frame[8 : 8 + id_length] == b"6"
    assert ctx.texts == [frame[8 + id_length :].decode("utf-8")]


def test_get_image_size(ctx: FakeContext) -> None:
    assert run(ctx, "GetImageSize", image=image_of(0, 7, 5, batch=3)).outputs == (7, 5, 3)
    assert ctx.texts == ["width: 7, height: 5\n batch size: 3"]


def test_save_image_websocket_matches_recording(ctx: FakeContext) -> None:
    results = execute(ctx, recorded_prompt("save_image_websocket_legacy")["prompt"])
    assert results["2"].ui is None and results["2"].outputs == ()
    assert [(value, total) for value, total, _ in ctx.progress_calls] == [(0, 2), (1, 2)]
    frame = (RUNS / "save_image_websocket_legacy" / "binary_frame_0.bin").read_bytes()
    assert struct.unpack(">II", frame[:8]) == (1, 2)
    for _, _, preview in ctx.progress_calls:
        assert preview is not None and preview.format == "PNG" and preview.max_size is None
        np.testing.assert_array_equal(pixels_of(preview.image), pixels(frame[8:]))
    assert not any(ctx.output_dir.iterdir()) and not any(ctx.temp_dir.iterdir())


def test_preview_any_formats(ctx: FakeContext) -> None:
    cases = [
        ("text", "text"),
        (16, "16"),
        (1.5, "1.5"),
        (True, "True"),
        (None, "None"),
        ([1, "a"], '[1, "a"]'),
        ({"k": 2}, '{"k": 2}'),
    ]
    for value, expected in cases:
        assert run(ctx, "PreviewAny", source=value).ui == {"text": [expected]}
    array_text = ui_of(run(ctx, "PreviewAny", source=np.zeros(2)))
    assert array_text == {"text": [str(np.zeros(2))]}


# -- strings -------------------------------------------------------------------------------------


def test_regex_replace_raises_the_recorded_error(ctx: FakeContext) -> None:
    body = recorded_prompt("runtime_error_regex")
    ws = json.loads((RUNS / "runtime_error_regex" / "ws_messages.json").read_text())
    (error,) = [
        f["msg"]["data"]
        for f in ws["frames"]
        if f["kind"] == "text" and f["msg"]["type"] == "execution_error"
    ]
    with pytest.raises(re.error) as caught:
        run(ctx, "RegexReplace", **body["prompt"]["1"]["inputs"])
    assert error["exception_type"] == "re.error"
    assert str(caught.value) + "\n" == error["exception_message"]


def test_regex_replace(ctx: FakeContext) -> None:
    assert (
        out(ctx, "RegexReplace", string="Hello hello", regex_pattern="hello", replace="bye")
        == "bye bye"
    )
    assert (
        out(
            ctx,
            "RegexReplace",
            string="Hello hello",
            regex_pattern="hello",
            replace="bye",
            case_insensitive=False,
            count=1,
        )
        == "Hello bye"
    )
    assert (
        out(ctx, "RegexReplace", string="a\nb", regex_pattern="a.b", replace="-", dotall=True)
        == "-"
    )


def test_string_nodes(ctx: FakeContext) -> None:
    assert out(ctx, "StringConcatenate", string_a="a", string_b="b", delimiter=", ") == "a, b"
    assert out(ctx, "StringLength", string="hello") == 5
    assert out(ctx, "StringSubstring", string="hello", start=1, end=3) == "el"
    assert out(ctx, "StringReplace", string="aXa", find="a", replace="b") == "bXb"
    assert out(ctx, "StringTrim", string="  x ", mode="Left") == "x "
    assert out(ctx, "StringTrim", string="  x ", mode="Both") == "x"
    assert (
        out(ctx, "StringContains", string="Hello", substring="hell", case_sensitive=False) is True
    )
    assert (
        out(ctx, "StringContains", string="Hello", substring="hell", case_sensitive=True) is False
    )
    assert out(ctx, "CaseConverter", string="hello world", mode="Title Case") == "Hello World"
    assert out(ctx, "CaseConverter", string="Hello", mode="UPPERCASE") == "HELLO"
    assert (
        out(
            ctx,
            "StringCompare",
            string_a="Hello",
            string_b="LO",
            mode="Ends With",
            case_sensitive=False,
        )
        is True
    )
    assert (
        out(
            ctx,
            "RegexMatch",
            string="abc",
            regex_pattern="(",
            case_insensitive=True,
            multiline=False,
            dotall=False,
        )
        is False
    )
    assert (
        out(
            ctx,
            "RegexExtract",
            string="a1 b2",
            regex_pattern=r"([a-z])(\d)",
            mode="All Groups",
            case_insensitive=True,
            multiline=False,
            dotall=False,
            group_index=2,
        )
        == "1\n2"
    )
    assert (
        out(
            ctx,
            "RegexExtract",
            string="a1 b2",
            regex_pattern=r"\d",
            mode="First Match",
            case_insensitive=True,
            multiline=False,
            dotall=False,
            group_index=1,
        )
        == "1"
    )


# -- audio ---------------------------------------------------------------------------------------


def test_empty_audio(ctx: FakeContext) -> None:
    audio = out(ctx, "EmptyAudio", duration=0.5, sample_rate=16000, channels=2)
    assert audio["sample_rate"] == 16000 and audio["waveform"].shape == (1, 2, 8000)
    assert audio["waveform"].dtype == np.float32 and not audio["waveform"].any()


def test_audio_empty_save_matches_recording(ctx: FakeContext) -> None:
    ctx.prompt = recorded_prompt("audio_empty_save")["prompt"]
    results = execute(ctx, ctx.prompt)
    recorded = recorded_outputs("audio_empty_save")
    assert results["2"].ui == recorded["2"] and results["3"].ui == recorded["3"]
    preview = results["4"].ui
    assert preview is not None
    (entry,) = preview["audio"]
    assert TEMP_NAME.match(entry["filename"]) and entry["filename"].endswith("_00001_.flac")
    assert (entry["subfolder"], entry["type"]) == ("", "temp")
    run_dir = RUNS / "audio_empty_save"
    pairs = [
        (
            ctx.output_dir / "audio" / "comfy_nb_fixture_00001_.flac",
            run_dir / "view_0_comfy_nb_fixture_00001_.flac",
        ),
        (ctx.temp_dir / entry["filename"], run_dir / "view_1_ComfyUI_temp_papqj_00001_.flac"),
        (
            ctx.output_dir / "audio" / "comfy_nb_fixture_00002_.mp3",
            run_dir / "view_2_comfy_nb_fixture_00002_.mp3",
        ),
    ]
    for mine, theirs in pairs:
        assert audio_info(mine) == audio_info(theirs)


def test_audio_load_save_matches_recording(ctx: FakeContext) -> None:
    (ctx.input_dir / "comfy_nb_sine.wav").write_bytes(
        (FIXTURES / "inputs" / "sine_440hz_0.5s.wav").read_bytes()
    )
    body = recorded_prompt("audio_load_save")
    ctx.prompt = body["prompt"]
    results = execute(ctx, ctx.prompt)
    assert results["2"].ui == recorded_outputs("audio_load_save")["2"]
    loaded = results["1"].outputs[0]
    assert loaded["sample_rate"] == 16000 and loaded["waveform"].shape == (1, 1, 8000)
    mine = ctx.output_dir / "audio" / "comfy_nb_sine_00001_.flac"
    theirs = RUNS / "audio_load_save" / "view_0_comfy_nb_sine_00001_.flac"
    info_mine, info_theirs = audio_info(mine), audio_info(theirs)
    assert info_mine["metadata"]["prompt"] == json.dumps(ctx.prompt)
    info_mine.pop("metadata")
    info_theirs.pop("metadata")  # the recorded prompt carries the server's "is_changed" hash
    assert info_mine == info_theirs
    # the FLAC samples themselves are identical (lossless, same conversion to 16 bits)
    (ctx.input_dir / "mine.flac").write_bytes(mine.read_bytes())
    (ctx.input_dir / "theirs.flac").write_bytes(theirs.read_bytes())
    np.testing.assert_array_equal(
        out(ctx, "LoadAudio", audio="mine.flac")["waveform"],
        out(ctx, "LoadAudio", audio="theirs.flac")["waveform"],
    )


def test_audio_batches_stereo_and_formats(ctx: FakeContext) -> None:
    waveform = np.stack([np.sin(np.linspace(0, 200, 4410, dtype=np.float32))] * 2)[None] * 0.3
    audio = {"waveform": np.concatenate([waveform, waveform]), "sample_rate": 44100}
    flac = ui_of(run(ctx, "SaveAudio", audio=audio, filename_prefix="a/s"))
    assert [e["filename"] for e in flac["audio"]] == ["s_00001_.flac", "s_00002_.flac"]
    mp3 = ui_of(run(ctx, "SaveAudioMP3", audio=audio, filename_prefix="a/s", quality="320k"))
    assert mp3["audio"][0]["filename"] == "s_00003_.mp3"
    opus = ui_of(run(ctx, "SaveAudioOpus", audio=audio, filename_prefix="a/s", quality="64k"))
    assert opus["audio"][0]["filename"] == "s_00005_.opus"
    info = audio_info(ctx.output_dir / "a" / "s_00001_.flac")
    assert (info["rate"], info["channels"], info["samples"]) == (44100, 2, 4410)
    assert audio_info(ctx.output_dir / "a" / "s_00003_.mp3")["rate"] == 44100
    opus_info = audio_info(ctx.output_dir / "a" / "s_00005_.opus")
    assert (opus_info["codec"], opus_info["rate"], opus_info["channels"]) == ("opus", 48000, 2)


# -- video ---------------------------------------------------------------------------------------


def test_video_save_matches_recording(ctx: FakeContext) -> None:
    ctx.prompt = recorded_prompt("video_save")["prompt"]
    results = execute(ctx, ctx.prompt)
    recorded = recorded_outputs("video_save")
    assert results["6"].ui == recorded["6"] and results["7"].ui == recorded["7"]
    video = results["5"].outputs[0]
    assert isinstance(video, EmulatedVideo) and video.frames.shape == (8, 64, 64, 3)
    pairs = [
        (
            ctx.output_dir / "video" / "comfy_nb_fixture_00001_.mp4",
            RUNS / "video_save" / "view_1_comfy_nb_fixture_00001_.mp4",
        ),
        (
            ctx.output_dir / "video" / "comfy_nb_webm_00001_.webm",
            RUNS / "video_save" / "view_0_comfy_nb_webm_00001_.webm",
        ),
    ]
    for mine, theirs in pairs:
        assert video_info(mine) == video_info(theirs)
        with av.open(str(mine)) as container:
            metadata = {key.lower(): value for key, value in container.metadata.items()}
        assert metadata["prompt"] == json.dumps(ctx.prompt)


def test_video_with_audio_and_components(ctx: FakeContext) -> None:
    frames = image_of(0x00FF00, 32, 32, batch=6)
    audio = out(ctx, "EmptyAudio", duration=2.0, sample_rate=22050, channels=1)
    video = out(ctx, "CreateVideo", images=frames, fps=12.0, audio=audio)
    images, same_audio, fps = run(ctx, "GetVideoComponents", video=video).outputs
    assert images is frames and same_audio is audio and fps == 12.0
    ui = ui_of(run(ctx, "SaveVideo", video=video, filename_prefix="v", format="mp4", codec="h264"))
    assert ui["images"][0]["filename"] == "v_00001_.mp4" and ui["animated"] == [True]
    with av.open(str(ctx.output_dir / "v_00001_.mp4")) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
    assert video_info(ctx.output_dir / "v_00001_.mp4")["frames"] == 6


# -- the text-to-image stand-in ------------------------------------------------------------------


def txt2img(
    ctx: FakeContext,
    *,
    seed: int = 42,
    steps: int = 4,
    size: int = 128,
    positive: str = "masterpiece best quality girl",
    negative: str = "bad hands",
    cfg: float = 7.0,
    sampler: str = "euler",
    scheduler: str = "normal",
    denoise: float = 1.0,
    ckpt: str = "random_sd15.safetensors",
    lora: tuple[str, float] | None = None,
    latent: Any = None,
) -> Any:
    """The default txt2img graph; returns the KSampler latent samples."""
    model, clip, _ = run(ctx, "CheckpointLoaderSimple", ckpt_name=ckpt).outputs
    if lora is not None:
        model, clip = run(
            ctx,
            "LoraLoader",
            model=model,
            clip=clip,
            lora_name=lora[0],
            strength_model=lora[1],
            strength_clip=lora[1],
        ).outputs
    if latent is None:
        latent = out(ctx, "EmptyLatentImage", width=size, height=size, batch_size=1)
    return out(
        ctx,
        "KSampler",
        model=model,
        seed=seed,
        steps=steps,
        cfg=cfg,
        sampler_name=sampler,
        scheduler=scheduler,
        positive=out(ctx, "CLIPTextEncode", text=positive, clip=clip),
        negative=out(ctx, "CLIPTextEncode", text=negative, clip=clip),
        latent_image=latent,
        denoise=denoise,
    )["samples"]


def test_loader_and_encoder_stand_ins(ctx: FakeContext) -> None:
    model, clip, vae = run(ctx, "CheckpointLoaderSimple", ckpt_name="x.safetensors").outputs
    assert (model.ckpt_name, clip.ckpt_name, vae.ckpt_name) == ("x.safetensors",) * 3
    first = out(ctx, "CLIPTextEncode", text="a cat", clip=clip)
    assert isinstance(first, StandInConditioning) and first.text == "a cat"
    assert first == out(ctx, "CLIPTextEncode", text="a cat", clip=clip)
    assert first.vector != out(ctx, "CLIPTextEncode", text="a dog", clip=clip).vector
    lora_model, lora_clip = run(
        ctx,
        "LoraLoader",
        model=model,
        clip=clip,
        lora_name="l.pt",
        strength_model=0.5,
        strength_clip=1.0,
    ).outputs
    assert isinstance(lora_model, StandInModel) and lora_model.loras == (("l.pt", 0.5),)
    assert out(ctx, "CLIPTextEncode", text="a cat", clip=lora_clip).vector != first.vector
    unchanged = run(
        ctx,
        "LoraLoader",
        model=model,
        clip=clip,
        lora_name="l.pt",
        strength_model=0.0,
        strength_clip=0.0,
    ).outputs
    assert unchanged == (model, clip)


def test_empty_latent_image(ctx: FakeContext) -> None:
    latent = out(ctx, "EmptyLatentImage", width=512, height=256, batch_size=2)
    assert latent["samples"].shape == (2, 4, 32, 64) and not latent["samples"].any()


def test_ksampler_progress_and_previews_match_recording(ctx: FakeContext) -> None:
    ctx.step_delay = 0.25
    txt2img(ctx, steps=4)
    ws = json.loads((RUNS / "txt2img_random_sd15_legacy_previews" / "ws_messages.json").read_text())
    recorded = [
        (f["msg"]["data"]["value"], f["msg"]["data"]["max"])
        for f in ws["frames"]
        if f["kind"] == "text" and f["msg"]["type"] == "progress"
    ]
    assert [(value, total) for value, total, _ in ctx.progress_calls] == recorded
    assert ctx.sleeps == [0.25] * 4
    frame = (RUNS / "txt2img_random_sd15_legacy_previews" / "binary_frame_0.bin").read_bytes()
    recorded_preview = Image.open(io.BytesIO(frame[8:]))
    for _, _, preview in ctx.progress_calls:
        assert preview is not None and preview.format == "JPEG" and preview.max_size == 512
        assert preview.image.size == recorded_preview.size == (512, 512)
        assert preview.image.mode == recorded_preview.mode == "RGB"


def test_ksampler_previews_are_512_on_the_longer_side(ctx: FakeContext) -> None:
    model, clip, _ = run(ctx, "CheckpointLoaderSimple", ckpt_name="m").outputs
    cond = out(ctx, "CLIPTextEncode", text="x", clip=clip)
    latent = out(ctx, "EmptyLatentImage", width=256, height=64, batch_size=1)
    run(
        ctx,
        "KSampler",
        model=model,
        seed=1,
        steps=2,
        cfg=8.0,
        sampler_name="euler",
        scheduler="karras",
        positive=cond,
        negative=cond,
        latent_image=latent,
        denoise=1.0,
    )
    assert [call[2].image.size for call in ctx.progress_calls if call[2]] == [(512, 128)] * 2


def test_stand_in_is_deterministic_and_sensitive(ctx: FakeContext) -> None:
    base = txt2img(ctx)
    assert base.shape == (1, 4, 16, 16) and base.dtype == np.float32
    np.testing.assert_array_equal(base, txt2img(ctx))  # bit-identical
    variations: dict[str, dict[str, Any]] = {
        "seed": {"seed": 43},
        "positive": {"positive": "a red car"},
        "negative": {"negative": "blurry"},
        "cfg": {"cfg": 3.0},
        "sampler": {"sampler": "dpmpp_2m"},
        "scheduler": {"scheduler": "karras"},
        "denoise": {"denoise": 0.6},
        "ckpt": {"ckpt": "other.safetensors"},
        "lora": {"lora": ("style.safetensors", 0.8)},
        "latent": {"latent": {"samples": np.full((1, 4, 16, 16), 0.5, dtype=np.float32)}},
    }
    for name, change in variations.items():
        assert not np.array_equal(base, txt2img(ctx, **change)), name


def test_vae_decode_is_a_smooth_stand_in_image(ctx: FakeContext) -> None:
    samples = txt2img(ctx, size=128)
    vae = run(ctx, "CheckpointLoaderSimple", ckpt_name="m").outputs[2]
    image = out(ctx, "VAEDecode", samples={"samples": samples}, vae=vae)
    assert image.shape == (1, 128, 128, 3) and image.dtype == np.float32
    assert image.min() >= 0 and image.max() <= 1 and image.std() > 0.02
    assert np.abs(np.diff(image, axis=2)).mean() < 0.01  # smooth fields, not noise
    other = out(ctx, "VAEDecode", samples={"samples": txt2img(ctx, seed=7)}, vae=vae)
    assert np.abs(image - other).mean() > 0.05  # another seed is visibly different


def test_txt2img_graph_saves_like_the_recording(ctx: FakeContext) -> None:
    ctx.prompt = recorded_prompt("txt2img_random_sd15_legacy_previews")["prompt"]
    results = execute(ctx, ctx.prompt)
    assert results["9"].ui == recorded_outputs("txt2img_random_sd15_legacy_previews")["9"]
    mine_path = ctx.output_dir / "comfy_nb_fixture" / "txt2img_00001_.png"
    theirs_path = RUNS / "txt2img_random_sd15_legacy_previews" / "view_0_txt2img_00001_.png"
    mine, theirs = Image.open(mine_path), Image.open(theirs_path)
    assert (mine.size, mine.mode) == (theirs.size, theirs.mode) == ((128, 128), "RGB")
    assert png_text(mine_path) == png_text(theirs_path)


def test_ksampler_advanced(ctx: FakeContext) -> None:
    model, clip, _ = run(ctx, "CheckpointLoaderSimple", ckpt_name="m").outputs
    cond = out(ctx, "CLIPTextEncode", text="x", clip=clip)
    latent = out(ctx, "EmptyLatentImage", width=64, height=64, batch_size=1)
    common: dict[str, Any] = {
        "model": model,
        "add_noise": "enable",
        "noise_seed": 5,
        "steps": 10,
        "cfg": 8.0,
        "sampler_name": "euler",
        "scheduler": "normal",
        "positive": cond,
        "negative": cond,
        "latent_image": latent,
    }
    first = out(
        ctx,
        "KSamplerAdvanced",
        **common,
        start_at_step=0,
        end_at_step=4,
        return_with_leftover_noise="enable",
    )
    assert [(v, t) for v, t, _ in ctx.progress_calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    clean = out(
        ctx,
        "KSamplerAdvanced",
        **common,
        start_at_step=0,
        end_at_step=4,
        return_with_leftover_noise="disable",
    )
    assert np.abs(first["samples"] - clean["samples"]).mean() > 0.1  # noise left in
    ctx.progress_calls.clear()
    second = out(
        ctx,
        "KSamplerAdvanced",
        **{**common, "latent_image": first, "add_noise": "disable"},
        start_at_step=4,
        end_at_step=10000,
        return_with_leftover_noise="disable",
    )
    assert [v for v, _, _ in ctx.progress_calls] == [1, 2, 3, 4, 5, 6]
    assert second["samples"].shape == (1, 4, 8, 8)
    nothing = out(
        ctx,
        "KSamplerAdvanced",
        **common,
        start_at_step=10,
        end_at_step=10,
        return_with_leftover_noise="disable",
    )
    assert nothing is latent


def test_vae_encode_round_trip_and_latent_upscale(ctx: FakeContext) -> None:
    vae = run(ctx, "CheckpointLoaderSimple", ckpt_name="m").outputs[2]
    image = np.clip(gradient(70, 52) * 0.8 + 0.1, 0, 1)
    latent = out(ctx, "VAEEncode", pixels=image, vae=vae)
    assert latent["samples"].shape == (1, 4, 6, 8)
    np.testing.assert_array_equal(
        latent["samples"], out(ctx, "VAEEncode", pixels=image, vae=vae)["samples"]
    )
    decoded = out(ctx, "VAEDecode", samples=latent, vae=vae)
    assert decoded.shape == (1, 48, 64, 3)
    assert np.abs(decoded - image[:, 2:50, 3:67]).mean() < 0.05
    bigger = out(
        ctx,
        "LatentUpscale",
        samples=latent,
        upscale_method="bilinear",
        width=128,
        height=0,
        crop="disabled",
    )
    assert bigger["samples"].shape == (1, 4, 12, 16)
    by = out(ctx, "LatentUpscaleBy", samples=latent, upscale_method="nearest-exact", scale_by=1.5)
    assert by["samples"].shape == (1, 4, 9, 12)

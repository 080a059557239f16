"""VIDEO nodes with PyAV: the :class:`EmulatedVideo` value, CreateVideo, GetVideoComponents,
SaveVideo (MP4 / H.264) and SaveWEBM (VP9, or AV1 when an encoder is available)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np
from av.video.stream import VideoStream

from ._base import NodeContext, NodeResult, node
from ._files import file_entry, metadata_items, save_path

Array = np.ndarray[Any, Any]


@dataclass
class EmulatedVideo:
    """A VIDEO value: IMAGE frames ``[N, H, W, 3]``, a frame rate and optional AUDIO."""

    frames: Array
    fps: float
    audio: dict[str, Any] | None = None

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])


def _rgb24(frame: Array) -> av.VideoFrame:
    """One IMAGE frame as an 8-bit RGB video frame (values truncated like ComfyUI)."""
    pixels = np.clip(frame[..., :3] * np.float32(255.0), 0, 255).astype(np.uint8)
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")


def _frame_rate(fps: float) -> Fraction:
    return Fraction(round(fps * 1000), 1000)


@node("CreateVideo")
def create_video(
    ctx: NodeContext, images: Array, fps: float = 30.0, audio: dict[str, Any] | None = None
) -> NodeResult:
    return NodeResult((EmulatedVideo(images, float(fps), audio),))


@node("GetVideoComponents")
def get_video_components(ctx: NodeContext, video: EmulatedVideo) -> NodeResult:
    return NodeResult((video.frames, video.audio, video.fps))


def write_mp4(path: str, video: EmulatedVideo, metadata: dict[str, str]) -> None:
    """H.264 (yuv420p) in MP4, plus AAC audio trimmed to the video's length when present."""
    rate = _frame_rate(video.fps)
    with av.open(path, mode="w", options={"movflags": "use_metadata_tags"}) as container:
        for key, value in metadata.items():
            container.metadata[key] = value
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        audio_stream = None
        if video.audio is not None:
            sample_rate = int(video.audio["sample_rate"])
            audio_stream = container.add_stream("aac", rate=sample_rate)
        for frame in video.frames:
            container.mux(stream.encode(_rgb24(frame).reformat(format="yuv420p")))
        container.mux(stream.encode(None))
        if audio_stream is not None and video.audio is not None:
            waveform = video.audio["waveform"][0]
            waveform = waveform[:, : math.ceil(sample_rate / rate * len(video.frames))]
            layout = "mono" if waveform.shape[0] == 1 else "stereo"
            packed = np.ascontiguousarray(waveform.T.reshape(1, -1), dtype=np.float32)
            audio_frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=layout)
            audio_frame.sample_rate = sample_rate
            audio_frame.pts = 0
            container.mux(audio_stream.encode(audio_frame))
            container.mux(audio_stream.encode(None))


@node("SaveVideo")
def save_video(
    ctx: NodeContext,
    video: EmulatedVideo,
    filename_prefix: str = "video/ComfyUI",
    format: str = "auto",
    codec: str = "auto",
) -> NodeResult:
    """The video as ``<prefix>_NNNNN_.mp4``; metadata: each extra_pnginfo key, then the prompt,
    as JSON strings."""
    if format not in ("auto", "mp4") or codec not in ("auto", "h264"):
        raise ValueError(f"Unsupported format/codec: {format}/{codec}")
    target = save_path(ctx.output_dir, filename_prefix, video.width, video.height)
    metadata = {key: json.dumps(value) for key, value in (ctx.extra_pnginfo or {}).items()}
    if ctx.prompt is not None:
        metadata["prompt"] = json.dumps(ctx.prompt)
    file = target.next_file("mp4")
    write_mp4(str(target.folder / file), video, metadata)
    entry = file_entry(file, target.subfolder, "output")
    return NodeResult(ui={"images": [entry], "animated": [True]})


def _av1_encoder() -> str:
    for name in ("libsvtav1", "libaom-av1"):
        if name in av.codecs_available:
            return name
    raise ValueError("No AV1 encoder is available in this PyAV build.")


@node("SaveWEBM")
def save_webm(
    ctx: NodeContext,
    images: Array,
    filename_prefix: str = "ComfyUI",
    codec: str = "vp9",
    fps: float = 24.0,
    crf: float = 32.0,
) -> NodeResult:
    """The batch as ``<prefix>_NNNNN_.webm`` (VP9 yuv420p, or AV1 yuv420p10le) at ``crf``."""
    target = save_path(ctx.output_dir, filename_prefix, images.shape[2], images.shape[1])
    file = target.next_file("webm")
    with av.open(str(target.folder / file), mode="w") as container:
        for key, value in metadata_items(ctx):
            container.metadata[key] = value
        encoder = "libvpx-vp9" if codec == "vp9" else _av1_encoder()
        stream = container.add_stream(encoder, rate=_frame_rate(fps))
        assert isinstance(stream, VideoStream)  # older PyAV types add_stream loosely
        stream.width, stream.height = images.shape[2], images.shape[1]
        stream.pix_fmt = "yuv420p10le" if codec == "av1" else "yuv420p"
        stream.bit_rate = 0
        stream.options = {"crf": str(crf)}
        if codec == "av1":
            stream.options["preset"] = "6"
        for frame in images:
            container.mux(stream.encode(_rgb24(frame)))
        container.mux(stream.encode(None))
    entry = file_entry(file, target.subfolder, "output")
    return NodeResult(ui={"images": [entry], "animated": [True]})

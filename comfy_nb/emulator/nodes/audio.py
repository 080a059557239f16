"""AUDIO nodes with PyAV: EmptyAudio, LoadAudio, SaveAudio (FLAC), SaveAudioMP3, SaveAudioOpus
and PreviewAudio (a FLAC file in the temp folder).

An AUDIO value is ``{"waveform": float32 [batch, channels, samples], "sample_rate": int}``.
"""

from __future__ import annotations

import io
from typing import Any

import av
import numpy as np
from av.audio.stream import AudioStream

from ._base import NodeContext, NodeResult, node
from ._files import annotated_path, file_entry, metadata_items, save_path, temp_prefix

Array = np.ndarray[Any, Any]

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
MP3_BITRATES = {"128k": 128_000, "320k": 320_000}


def _layout(channels: int) -> str:
    return "mono" if channels == 1 else "stereo"


@node("EmptyAudio")
def empty_audio(
    ctx: NodeContext, duration: float = 60.0, sample_rate: int = 44100, channels: int = 2
) -> NodeResult:
    """Silence: ``round(duration * sample_rate)`` zero samples per channel."""
    samples = round(duration * sample_rate)
    waveform = np.zeros((1, channels, samples), dtype=np.float32)
    return NodeResult(({"waveform": waveform, "sample_rate": sample_rate},))


def decode_audio(path: str) -> tuple[Array, int]:
    """The first audio stream of a file as float32 ``[channels, samples]`` and its rate."""
    with av.open(path) as container:
        if not container.streams.audio:
            raise ValueError("No audio stream found in the file.")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        layout = stream.codec_context.layout.name
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks = [
            converted.to_ndarray()
            for frame in container.decode(stream)
            for converted in resampler.resample(frame)
        ]
        chunks += [converted.to_ndarray() for converted in resampler.resample(None)]
    if not chunks:
        raise ValueError("No audio frames decoded.")
    return np.concatenate(chunks, axis=1).astype(np.float32), rate


@node("LoadAudio")
def load_audio(ctx: NodeContext, audio: str) -> NodeResult:
    """An input audio file (wav, flac, mp3, ... anything FFmpeg decodes)."""
    waveform, rate = decode_audio(str(annotated_path(ctx, audio)))
    return NodeResult(({"waveform": waveform[None], "sample_rate": rate},))


def _opus_rate(rate: int) -> int:
    """The Opus rate used for ``rate``: the next supported one up, at most 48 kHz."""
    return next((r for r in OPUS_RATES if r >= rate), 48000)


def encode_audio(
    waveform: Array, rate: int, fmt: str, metadata: list[tuple[str, str]], quality: str = ""
) -> bytes:
    """One ``[channels, samples]`` waveform as a FLAC, MP3 or Opus file (PyAV converts the
    samples to what the encoder takes, including the rate for Opus)."""
    layout = _layout(waveform.shape[0])
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=fmt) as container:
        for key, value in metadata:
            container.metadata[key] = value
        codec = {"mp3": "libmp3lame", "opus": "libopus"}.get(fmt, "flac")
        stream = container.add_stream(codec, rate=_opus_rate(rate) if fmt == "opus" else rate,
                                      layout=layout)
        assert isinstance(stream, AudioStream)  # older PyAV types add_stream loosely
        if fmt == "mp3" and quality == "V0":
            context: Any = stream.codec_context
            context.qscale = 1
        elif fmt == "mp3":
            stream.bit_rate = MP3_BITRATES[quality]
        elif fmt == "opus":
            stream.bit_rate = int(quality.rstrip("k")) * 1000
        packed = np.ascontiguousarray(waveform.T.reshape(1, -1), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=layout)
        frame.sample_rate = rate
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def _save_audio(
    ctx: NodeContext,
    audio: dict[str, Any],
    filename_prefix: str,
    fmt: str,
    *,
    temp: bool = False,
    quality: str = "",
) -> NodeResult:
    """One file per batch entry, named like images (``<prefix>_NNNNN_.<fmt>``)."""
    target = save_path(ctx.temp_dir if temp else ctx.output_dir, filename_prefix)
    metadata = metadata_items(ctx)
    results = []
    for batch_number, waveform in enumerate(audio["waveform"]):
        file = target.next_file(fmt, batch_number)
        data = encode_audio(waveform, int(audio["sample_rate"]), fmt, metadata, quality)
        (target.folder / file).write_bytes(data)
        results.append(file_entry(file, target.subfolder, "temp" if temp else "output"))
    return NodeResult(ui={"audio": results})


@node("SaveAudio")
def save_audio(
    ctx: NodeContext, audio: dict[str, Any], filename_prefix: str = "audio/ComfyUI"
) -> NodeResult:
    return _save_audio(ctx, audio, filename_prefix, "flac")


@node("SaveAudioMP3")
def save_audio_mp3(
    ctx: NodeContext,
    audio: dict[str, Any],
    filename_prefix: str = "audio/ComfyUI",
    quality: str = "V0",
) -> NodeResult:
    return _save_audio(ctx, audio, filename_prefix, "mp3", quality=quality)


@node("SaveAudioOpus")
def save_audio_opus(
    ctx: NodeContext,
    audio: dict[str, Any],
    filename_prefix: str = "audio/ComfyUI",
    quality: str = "128k",
) -> NodeResult:
    return _save_audio(ctx, audio, filename_prefix, "opus", quality=quality)


@node("PreviewAudio")
def preview_audio(ctx: NodeContext, audio: dict[str, Any]) -> NodeResult:
    """A FLAC file in the temp folder (``ComfyUI_temp_xxxxx_NNNNN_.flac``)."""
    return _save_audio(ctx, audio, temp_prefix(), "flac", temp=True)

"""LATENT nodes for audio latents and latent files: EmptyLatentAudio (zeros, ``[batch, 64,
length]`` with ComfyUI's length rule) and SaveLatent (a ``.latent`` file: safetensors with
``latent_tensor``, an empty ``latent_format_version_0`` and the prompt in its metadata, byte for
byte as ComfyUI writes it)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ._base import NodeContext, NodeResult, node
from ._files import file_entry, metadata_items, save_path

AUDIO_LATENT_CHANNELS = 64
AUDIO_SAMPLE_RATE = 44100
AUDIO_LATENT_STRIDE = 2048  # samples per latent frame


@node("EmptyLatentAudio")
def empty_latent_audio(ctx: NodeContext, seconds: float, batch_size: int = 1) -> NodeResult:
    length = round((seconds * AUDIO_SAMPLE_RATE / AUDIO_LATENT_STRIDE) / 2) * 2
    samples = np.zeros((batch_size, AUDIO_LATENT_CHANNELS, length), dtype=np.float32)
    return NodeResult(({"samples": samples, "type": "audio"},))


def write_safetensors(path: Path, tensors: dict[str, np.ndarray[Any, Any]],
                      metadata: dict[str, str]) -> None:
    """float32 ``tensors`` as a safetensors file: an 8-byte little-endian header length, the
    JSON header (``__metadata__``, then the tensors by name) padded with spaces to 8 bytes,
    then the data in the same order."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


@node("SaveLatent")
def save_latent(ctx: NodeContext, samples: dict[str, Any],
                filename_prefix: str = "latents/ComfyUI") -> NodeResult:
    target = save_path(ctx.output_dir, filename_prefix)
    file = target.next_file("latent")
    metadata = {"prompt": ""}  # ComfyUI writes the key even without a prompt
    metadata.update(metadata_items(ctx))
    write_safetensors(target.folder / file, {
        "latent_tensor": np.asarray(samples["samples"], dtype=np.float32),
        "latent_format_version_0": np.zeros((0,), dtype=np.float32),
    }, metadata)
    return NodeResult(ui={"latents": [file_entry(file, target.subfolder, "output")]})

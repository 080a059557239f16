"""Workflows the v2 tests run; each call differs from the last (a new colour or seed), so the
server's own cache never answers one with another's outputs."""

from __future__ import annotations

import itertools
from typing import Any

_FRESH = itertools.count(1)


def invert(prefix: str = "v2_invert") -> dict[str, Any]:
    """EmptyImage -> ImageInvert -> SaveImage: a quick job."""
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": next(_FRESH)}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                    "filename_prefix": prefix}},
    }


def txt2img(steps: int = 3) -> dict[str, Any]:
    """A small txt2img: progress per sampler step, and previews."""
    return {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": next(_FRESH), "steps": steps, "cfg": 7.0, "sampler_name": "euler",
            "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0],
            "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple",
              "inputs": {"ckpt_name": "random_sd15.safetensors"}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse",
                                                         "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "v2_txt2img",
                                                    "images": ["8", 0]}},
    }


def kinds() -> dict[str, Any]:
    """An animated WEBP, a FLAC and an MP4 from one job."""
    frames = {"width": 16, "height": 16, "batch_size": 3, "color": next(_FRESH)}
    return {
        "1": {"class_type": "EmptyImage", "inputs": frames},
        "2": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["1", 0], "filename_prefix": "v2_anim", "fps": 6.0, "lossless": False,
            "quality": 80, "method": "default"}},
        "3": {"class_type": "EmptyAudio", "inputs": {"duration": 0.25 + next(_FRESH) / 1000,
                                                     "sample_rate": 16000, "channels": 1}},
        "4": {"class_type": "SaveAudio", "inputs": {"audio": ["3", 0],
                                                    "filename_prefix": "v2_audio"}},
        "5": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8.0}},
        "6": {"class_type": "SaveVideo", "inputs": {"video": ["5", 0],
                                                    "filename_prefix": "v2_video",
                                                    "format": "auto", "codec": "auto"}},
    }


def load_image(name: Any) -> dict[str, Any]:
    """LoadImage(name) -> SaveImage."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                    "filename_prefix": "v2_loaded"}},
    }

"""Small workflows for tests that need many quick, distinct jobs (the pool tests)."""

from __future__ import annotations

from typing import Any


def invert(color: int = 0, prefix: str = "pool_test") -> dict[str, Any]:
    """EmptyImage -> ImageInvert -> SaveImage: one 8x8 image; each ``color`` is a job of its
    own (a new one defeats the server's cache)."""
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage",
              "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }

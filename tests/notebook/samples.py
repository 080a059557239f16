"""Workflows the notebook tests run on the emulator."""

from __future__ import annotations

from typing import Any

# ImageSharpen validates but is not emulated: the job fails while it runs, at node 2
FAILING: dict[str, Any] = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                 "color": 0}},
    "2": {"class_type": "ImageSharpen", "inputs": {"image": ["1", 0], "sharpen_radius": 1,
                                                   "sigma": 1.0, "alpha": 1.0},
          "_meta": {"title": "Sharpen"}},
    "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
}

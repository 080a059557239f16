"""What several benchmarks share: an emulator in a process of its own and the smallest graph
that makes an output. The scripts run as ``python benchmarks/<name>.py``, which puts this folder
on ``sys.path``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def small_workflow(index: int, prefix: str) -> dict:
    """EmptyImage 8x8 -> SaveImage, a colour of its own per ``index`` (the server caches nodes:
    a new index is a new run)."""
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": index % 16777215}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                    "filename_prefix": prefix}},
    }


def start_emulator(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """``comfy-nb emulator`` on a free port in a child process, and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "comfy_nb.cli", "emulator", "--port", "0", "--data-dir",
         str(data_dir)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().strip().rsplit(" ", 1)[-1]
    return process, url

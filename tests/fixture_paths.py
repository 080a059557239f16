"""Where the tests find the recorded reference material: ``tests/fixtures/`` in this repository
(see its README for where each file came from), or the folder named by ``COMFY_NB_FIXTURES``,
laid out the same way (``comfyui/``, ``ui2api/``, ``ui2api-fe158/``, ``reference/``)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(os.environ.get("COMFY_NB_FIXTURES") or Path(__file__).resolve().parent / "fixtures")
COMFYUI = ROOT / "comfyui"  # traffic of a real ComfyUI 0.3.64
RUNS = COMFYUI / "runs"
UI2API = ROOT / "ui2api"  # editor workflows and the API format the editor (1.27.10) made of them
UI2API_FE158 = ROOT / "ui2api-fe158"  # the same from the current editor (frontend 1.58.1)
CLOUD_SPEC = ROOT / "reference" / "openapi-cloud.yaml"  # the Comfy Cloud OpenAPI spec

"""Fitting the model files a bundled workflow names to the server it runs on.

The workflows shipped with comfy_nb name the emulator's checkpoint; a real ComfyUI or Comfy Cloud
has other files. :func:`fit_models` swaps a model file the server does not list for the first
one it lists for the same input (its checkpoints for ``ckpt_name``, its VAEs for ``vae_name``…).
It is applied to bundled workflows only: a user's own workflow is never changed behind their back.
It knows node definitions (``object_info``); it never speaks to a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._params import combo_choices, input_specs

MODEL_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".onnx")


@dataclass(frozen=True)
class ModelSwap:
    """One model file replaced: ``node.input`` named ``wanted``, the server has ``used``."""

    node_id: str
    input: str
    wanted: str
    used: str

    def __str__(self) -> str:
        return f"{self.input} {self.wanted!r} is not on this server; using {self.used!r}"


def is_model_file(value: Any) -> bool:
    """Whether a value names a model file (by its extension)."""
    return isinstance(value, str) and value.lower().endswith(MODEL_SUFFIXES)


def fit_models(api: dict[str, Any], object_info: Mapping[str, Any]) -> list[ModelSwap]:
    """Replace, in ``api`` (changed in place), each model file the server does not list with the
    first model file it lists for that input; the swaps made. Inputs whose list the server does
    not give, or that has no model file, are left for validation to report."""
    swaps: list[ModelSwap] = []
    for node_id, node in api.items():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        class_type = node.get("class_type") if isinstance(node, dict) else None
        if not isinstance(inputs, dict) or not isinstance(class_type, str):
            continue
        specs = input_specs(object_info, class_type)
        for name, value in inputs.items():
            choices = combo_choices(specs.get(name))
            if not is_model_file(value) or choices is None or value in choices:
                continue
            models = [choice for choice in choices if is_model_file(choice)]
            if models:
                inputs[name] = models[0]
                swaps.append(ModelSwap(str(node_id), name, value, models[0]))
    return swaps

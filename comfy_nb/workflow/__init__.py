"""ComfyUI workflows as objects: :class:`Workflow` loads API- or editor-format workflows from
dicts, JSON, files and the metadata of images ComfyUI saved, and sets parameters by name."""

from __future__ import annotations

from ..errors import ParameterError, WorkflowError
from ._model import Workflow, WorkflowSource
from ._params import Param

__all__ = ["Param", "ParameterError", "Workflow", "WorkflowError", "WorkflowSource"]

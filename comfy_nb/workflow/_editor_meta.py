"""What the ComfyUI editor (frontend 1.58.1) puts in a node's ``_meta``: its title, and the node
pack it came from.

The backend ignores ``_meta``; the editor sends it, so a faithful conversion does too. Rules are
read from the frontend's source at tag v1.58.1 (paths under ``src/``).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["DISPLAY_NAMES", "default_title", "node_meta"]

#: Display names the editor ships (``locales/en/nodeDefs.json``, the display names of current
#: ComfyUI) for classes whose ``object_info`` on ComfyUI 0.3.64 has no ``display_name`` and whose
#: name differs from the class name. The editor reads a node's default title from the server's
#: ``display_name`` first and falls back to this list, then to the class name
#: (``i18n.ts``: ``resolveNodeDefText``; ``core/graph/nodeDef/ComfyNodeDefImpl.ts``).
DISPLAY_NAMES: dict[str, str] = {
    "AudioEncoderLoader": "Load Audio Encoder",
    "CLIPTextEncodeControlnet": "CLIP Text Encode (Controlnet)",
    "CLIPTextEncodeHiDream": "CLIP Text Encode (HiDream)",
    "CLIPTextEncodePixArtAlpha": "CLIP Text Encode (PixArt Alpha)",
    "CLIPTextEncodeSD3": "CLIP Text Encode (SD3)",
    "CLIPTextEncodeSDXL": "CLIP Text Encode (SDXL)",
    "CLIPTextEncodeSDXLRefiner": "CLIP Text Encode (SDXL Refiner)",
    "Canny": "Detect Edges (Canny)",
    "EmptyAceStepLatentAudio": "Empty Ace Step 1.0 Latent Audio",
    "EmptyCosmosLatentVideo": "Empty Cosmos Latent Video",
    "EmptyLTXVLatentVideo": "Empty LTXV Latent Video",
    "FluxKontextMultiReferenceLatentMethod": "Edit Model Reference Method",
    "ImageBlend": "Blend Images",
    "ImageBlur": "Blur Image",
    "ImageQuantize": "Quantize Image",
    "ImageRGBToYUV": "Image RGB to YUV",
    "ImageScaleToTotalPixels": "Scale Image to Total Pixels",
    "ImageSharpen": "Sharpen Image",
    "ImageYUVToRGB": "Image YUV to RGB",
    "LTXVPreprocess": "LTXV Preprocess",
    "LatentBatch": "Batch Latents (DEPRECATED)",
    "PerpNegGuider": "Perp-Neg Guider",
    "PhotoMakerEncode": "PhotoMaker Encode",
    "PhotoMakerLoader": "Load PhotoMaker Model",
    "QuadrupleCLIPLoader": "Load CLIP (Quadruple)",
    "ReferenceLatent": "Set Reference Latent",
    "SaveWEBM": "Save WEBM",
    "StableCascade_EmptyLatentImage": "Empty Stable Cascade Latent Image",
    "StableCascade_StageC_VAEEncode": "Stable Cascade Stage C VAE Encode",
    "T5TokenizerOptions": "T5 Tokenizer Options",
    "TextEncodeQwenImageEdit": "Text Encode Qwen Image Edit",
    "TextEncodeQwenImageEditPlus": "Text Encode Qwen Image Edit Plus",
    "TripleCLIPLoader": "Load CLIP (Triple)",
    "TrimVideoLatent": "Trim Video Latent",
}

#: The editor's own node types (``stores/nodeDefStore.ts``).
_FRONTEND_TITLES = {"PrimitiveNode": "Primitive", "Reroute": "Reroute", "Note": "Note",
                    "MarkdownNote": "Markdown Note"}

# platform/workflow/validation/schemas/workflowSchema.ts: what cnr_id, aux_id and ver may hold
_REPO_LIKE = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9._-]*[a-zA-Z0-9])?$")
_GITHUB_USER = re.compile(r"^(?!-)(?!.*--)[a-zA-Z0-9-]+(?<!-)$")
_GIT_HASH = re.compile(r"^[0-9a-fA-F]{4,40}$")
_SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
                     r"(?:-([0-9a-z-]+(?:\.[0-9a-z-]+)*))?(?:\+([0-9a-z-]+(?:\.[0-9a-z-]+)*))?$")


def default_title(class_type: str, object_info: dict[str, Any]) -> str:
    """The title of a node nobody renamed: the server's display name, else the editor's, else
    the class name (``services/litegraphService.ts``: ``display_name || name``)."""
    if class_type in _FRONTEND_TITLES:
        return _FRONTEND_TITLES[class_type]
    definition = object_info.get(class_type)
    backend = definition.get("display_name") if isinstance(definition, dict) else None
    if isinstance(backend, str) and backend:
        return backend
    return DISPLAY_NAMES.get(class_type, class_type)


def node_meta(title: Any, properties: Any) -> dict[str, Any]:
    """``_meta`` of one node: its title, then the pack it came from when its ``properties`` say
    so in a form the editor accepts (``utils/executionUtil.ts``, ``zNodePackMetadata``)."""
    meta: dict[str, Any] = {"title": title}
    if not isinstance(properties, dict):
        return meta
    cnr_id = properties.get("cnr_id")
    if _is_repo_like(cnr_id):
        meta["cnr_id"] = cnr_id
    aux_id = properties.get("aux_id")
    if isinstance(aux_id, str) and aux_id.count("/") == 1:
        user, repo = aux_id.split("/")
        if _GITHUB_USER.fullmatch(user) and len(user) <= 39 and _is_repo_like(repo):
            meta["aux_id"] = aux_id
    version = _version(properties.get("ver"))
    if version is not None:
        meta["ver"] = version
    return meta


def _is_repo_like(value: Any) -> bool:
    return (isinstance(value, str) and 1 <= len(value) <= 100 and bool(_REPO_LIKE.fullmatch(value))
            and value[0] not in "_-." and value[-1] not in "_-.")


def _version(value: Any) -> str | None:
    """A pack version as the editor keeps it: ``"unknown"``, or a semantic version or git hash
    with any leading ``v`` removed."""
    if not isinstance(value, str):
        return None
    if value == "unknown":
        return value
    stripped = value[1:] if value.startswith("v") else value
    if _SEMVER.fullmatch(stripped) or _GIT_HASH.fullmatch(stripped):
        return stripped
    return None

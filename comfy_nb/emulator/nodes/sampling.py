"""A deterministic, procedural stand-in for the text-to-image graph. NOT a diffusion model.

Owns CheckpointLoaderSimple, LoraLoader, CLIPTextEncode, EmptyLatentImage, KSampler,
KSamplerAdvanced, VAEDecode, VAEEncode, LatentUpscale and LatentUpscaleBy.

How the stand-in works:

- The "model", "clip" and "vae" are small records of the checkpoint name (and applied LoRAs).
- CLIPTextEncode turns the text into a 16-number vector from its SHA-256 (never ``hash()``, so
  the result is the same in every process).
- KSampler builds a smooth "clean" latent: a colour bias and a gradient chosen by the
  conditioning vectors (positive pushed away from negative by ``cfg``), plus a few soft blobs
  whose places and sizes come from the seed and the checkpoint name. Sampler, scheduler and
  LoRAs nudge it. Each step removes a share of seeded gaussian noise, so the previews go from
  noise to the smooth picture the way real previews do.
- VAEDecode renders the latent: upsample x8, mix the 4 channels into RGB, squash with a sigmoid.
  VAEEncode is its approximate inverse.

Same inputs give a bit-identical latent; another seed gives another layout.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ._base import NodeContext, NodeResult, PreviewImage, node
from ._resample import resize_latent

Array = np.ndarray[Any, Any]

# The latent -> RGB factors of ComfyUI's latent2rgb previews for SD1.x latents (4 x RGB).
LATENT_RGB = np.array(
    [
        [0.3512, 0.2297, 0.3227],
        [0.3250, 0.4974, 0.2350],
        [-0.2829, 0.1762, 0.2721],
        [-0.2120, -0.2616, -0.7177],
    ],
    dtype=np.float32,
)
DECODE_GAIN = 2.2  # VAEDecode: rgb = sigmoid(DECODE_GAIN * latent @ LATENT_RGB)
PREVIEW_SIZE = 512  # longer side of the sampler previews
VECTOR_SIZE = 16  # length of a conditioning vector

# How fast the noise level falls per scheduler: level = (1 - step / steps) ** exponent.
SCHEDULER_EXPONENTS = {"karras": 3.0, "exponential": 2.0, "kl_optimal": 1.5, "beta": 1.2}


# -- stable hashing ------------------------------------------------------------------------------


def _digest(*parts: Any) -> bytes:
    return hashlib.sha256(json.dumps(parts, default=str).encode("utf-8")).digest()


def stable_vector(*parts: Any, size: int = VECTOR_SIZE) -> Array:
    """``size`` numbers in -1..1 derived from ``parts`` with SHA-256."""
    data = b""
    block = 0
    while len(data) < size:
        data += _digest(block, *parts)
        block += 1
    return (np.frombuffer(data[:size], dtype=np.uint8).astype(np.float32) / 127.5) - 1.0


def stable_rng(*parts: Any) -> np.random.Generator:
    """A numpy generator seeded from ``parts`` with SHA-256."""
    return np.random.default_rng(int.from_bytes(_digest(*parts)[:16], "big"))


# -- stand-in values -----------------------------------------------------------------------------

Loras = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class StandInModel:
    """MODEL stand-in: the checkpoint name and the (lora_name, strength_model) applied."""

    ckpt_name: str
    loras: Loras = ()


@dataclass(frozen=True)
class StandInClip:
    """CLIP stand-in: the checkpoint name and the (lora_name, strength_clip) applied."""

    ckpt_name: str
    loras: Loras = ()


@dataclass(frozen=True)
class StandInVae:
    """VAE stand-in: the checkpoint name."""

    ckpt_name: str


@dataclass(frozen=True)
class StandInConditioning:
    """CONDITIONING stand-in: the text and its vector (a tuple, so the value stays hashable)."""

    text: str
    vector: tuple[float, ...]

    def as_array(self) -> Array:
        return np.array(self.vector, dtype=np.float32)


# -- loaders and encoders ------------------------------------------------------------------------


@node("CheckpointLoaderSimple")
def checkpoint_loader_simple(ctx: NodeContext, ckpt_name: str) -> NodeResult:
    return NodeResult((StandInModel(ckpt_name), StandInClip(ckpt_name), StandInVae(ckpt_name)))


@node("LoraLoader")
def lora_loader(
    ctx: NodeContext,
    model: StandInModel,
    clip: StandInClip,
    lora_name: str,
    strength_model: float = 1.0,
    strength_clip: float = 1.0,
) -> NodeResult:
    """Record the LoRA and its strengths on the model and clip (unchanged when both are 0)."""
    if strength_model == 0 and strength_clip == 0:
        return NodeResult((model, clip))
    return NodeResult(
        (
            StandInModel(model.ckpt_name, (*model.loras, (lora_name, float(strength_model)))),
            StandInClip(clip.ckpt_name, (*clip.loras, (lora_name, float(strength_clip)))),
        )
    )


@node("CLIPTextEncode")
def clip_text_encode(ctx: NodeContext, text: str, clip: StandInClip) -> NodeResult:
    """The text's vector, shifted by each LoRA of the clip."""
    vector = stable_vector("text", text)
    for lora_name, strength in clip.loras:
        vector = vector + 0.3 * strength * stable_vector("lora-clip", lora_name)
    return NodeResult((StandInConditioning(text, tuple(float(v) for v in vector)),))


@node("EmptyLatentImage")
def empty_latent_image(
    ctx: NodeContext, width: int = 512, height: int = 512, batch_size: int = 1
) -> NodeResult:
    samples = np.zeros((batch_size, 4, height // 8, width // 8), dtype=np.float32)
    return NodeResult(({"samples": samples},))


# -- the "sampler" -------------------------------------------------------------------------------


def _blob(xx: Array, yy: Array, rng: np.random.Generator, aspect: float) -> Array:
    """A soft round blob at a random place, 1 at its centre."""
    cx, cy = rng.uniform(0.0, aspect), rng.uniform(0.0, 1.0)
    radius = rng.uniform(0.12, 0.35)
    return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2.0 * radius * radius))


def clean_latent(
    shape: tuple[int, ...],
    *,
    model: StandInModel,
    seed: int,
    guidance: Array,
    sampler_name: str,
    scheduler: str,
) -> Array:
    """The smooth latent the stand-in sampler converges to (``[B, 4, h, w]``)."""
    batch, channels, height, width = shape
    aspect = width / height
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    yy, xx = (yy + 0.5) / height, (xx + 0.5) / height  # the same scale on both axes
    out = np.zeros(shape, dtype=np.float64)
    gain = 1.0 + 0.08 * stable_vector("sampler", sampler_name, scheduler, size=channels)
    index = np.arange(channels)
    # three per-channel slices of the guidance vector: colour bias, gradient, blob tint
    bias, slope, tint = (guidance[(index + 4 * k) % VECTOR_SIZE] for k in range(3))
    for b in range(batch):
        rng = stable_rng("layout", seed, b, model.ckpt_name)
        angle = rng.uniform(0.0, 2.0 * math.pi)
        ramp = math.cos(angle) * (xx - aspect / 2) + math.sin(angle) * (yy - 0.5)
        field = 0.6 * bias[:, None, None] + 1.6 * slope[:, None, None] * ramp
        for _ in range(6):
            weights = rng.normal(size=channels) * 0.9 + 0.5 * tint
            field = field + weights[:, None, None] * _blob(xx, yy, rng, aspect)
        for lora_name, strength in model.loras:
            lora_rng = stable_rng("lora-model", lora_name)
            weights = lora_rng.normal(size=channels) * 0.6 * strength
            field += weights[:, None, None] * _blob(xx, yy, lora_rng, aspect)
        out[b] = field * gain[:, None, None]
    return out.astype(np.float32)


def _noise_levels(steps: int, scheduler: str) -> Array:
    """Noise level after each of ``steps`` steps, from 1 (index 0) down to 0 (index steps)."""
    remaining = 1.0 - np.arange(steps + 1) / steps
    return remaining ** SCHEDULER_EXPONENTS.get(scheduler, 1.0)


def latent_preview(samples: Array) -> Image.Image:
    """A latent2rgb rendering of the first latent of a batch, scaled up so that its longer side
    is 512 px (the size of the recorded previews)."""
    rgb = np.einsum("chw,cr->hwr", samples[0, :4], LATENT_RGB)
    pixels = (np.clip((rgb + 1.0) / 2.0, 0.0, 1.0) * 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    scale = PREVIEW_SIZE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR)


def _guidance(positive: StandInConditioning, negative: StandInConditioning, cfg: float) -> Array:
    """The positive vector pushed away from the negative one, more so with a higher cfg."""
    pos, neg = positive.as_array(), negative.as_array()
    return np.tanh(pos + 0.1 * (cfg - 1.0) * (pos - neg))


def _sample(
    ctx: NodeContext,
    *,
    model: StandInModel,
    seed: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: StandInConditioning,
    negative: StandInConditioning,
    latent_image: dict[str, Any],
    strength: float,
    levels: Array,
    add_noise: bool = True,
    keep_noise: bool = False,
) -> NodeResult:
    """Walk ``x = clean + level * noise`` through ``levels`` (one progress step per level after
    the first) and return the last ``x`` (``clean`` itself unless ``keep_noise``).

    ``clean`` blends the input latent with the stand-in target by ``strength`` (the denoise).
    """
    latent_in = np.asarray(latent_image["samples"], dtype=np.float32)
    target = clean_latent(
        latent_in.shape,
        model=model,
        seed=seed,
        guidance=_guidance(positive, negative, cfg),
        sampler_name=sampler_name,
        scheduler=scheduler,
    )
    clean = (1.0 - strength) * latent_in + strength * (target + 0.1 * latent_in)
    noise = stable_rng("noise", seed).standard_normal(latent_in.shape).astype(np.float32)
    if not add_noise:
        noise = np.zeros_like(noise)
    steps = len(levels) - 1
    x = clean + levels[0] * noise
    for step in range(1, steps + 1):
        ctx.sleep(ctx.step_delay)
        x = clean + levels[step] * noise
        ctx.progress(step, steps, PreviewImage(latent_preview(x), "JPEG", PREVIEW_SIZE))
    result = x if keep_noise else clean
    return NodeResult(({**latent_image, "samples": result.astype(np.float32)},))


@node("KSampler")
def ksampler(
    ctx: NodeContext,
    model: StandInModel,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: StandInConditioning,
    negative: StandInConditioning,
    latent_image: dict[str, Any],
    denoise: float = 1.0,
) -> NodeResult:
    """Progress 1..steps of steps, each with a JPEG preview; returns the stand-in latent."""
    return _sample(
        ctx,
        model=model,
        seed=seed,
        cfg=cfg,
        sampler_name=sampler_name,
        scheduler=scheduler,
        positive=positive,
        negative=negative,
        latent_image=latent_image,
        strength=denoise,
        levels=denoise * _noise_levels(steps, scheduler),
    )


@node("KSamplerAdvanced")
def ksampler_advanced(
    ctx: NodeContext,
    model: StandInModel,
    add_noise: str,
    noise_seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: StandInConditioning,
    negative: StandInConditioning,
    latent_image: dict[str, Any],
    start_at_step: int = 0,
    end_at_step: int = 10000,
    return_with_leftover_noise: str = "disable",
) -> NodeResult:
    """Steps start_at_step..min(end_at_step, steps) of the schedule (progress 1..n of n).
    Starting later keeps more of the input latent; leftover noise is kept on request."""
    end = min(end_at_step, steps)
    if start_at_step >= end:
        return NodeResult((latent_image,))
    return _sample(
        ctx,
        model=model,
        seed=noise_seed,
        cfg=cfg,
        sampler_name=sampler_name,
        scheduler=scheduler,
        positive=positive,
        negative=negative,
        latent_image=latent_image,
        strength=1.0 - start_at_step / steps,
        levels=_noise_levels(steps, scheduler)[start_at_step : end + 1],
        add_noise=add_noise == "enable",
        keep_noise=return_with_leftover_noise == "enable",
    )


# -- "VAE" ---------------------------------------------------------------------------------------


@node("VAEDecode")
def vae_decode(ctx: NodeContext, samples: dict[str, Any], vae: StandInVae) -> NodeResult:
    """Render ``[B, 4, h, w]`` as an IMAGE ``[B, 8h, 8w, 3]``: smooth upsampling, then the
    latent2rgb colour mix squashed into 0..1 with a sigmoid."""
    latent = np.asarray(samples["samples"], dtype=np.float32)
    height, width = latent.shape[2] * 8, latent.shape[3] * 8
    upsampled = resize_latent(latent, width, height, "bicubic", "disabled")
    mixed = np.einsum("bchw,cr->bhwr", upsampled[:, :4], LATENT_RGB)
    image = 1.0 / (1.0 + np.exp(-DECODE_GAIN * mixed))
    return NodeResult((image.astype(np.float32),))


@node("VAEEncode")
def vae_encode(ctx: NodeContext, pixels: Array, vae: StandInVae) -> NodeResult:
    """The approximate inverse of VAEDecode: centre-crop to multiples of 8, average 8x8
    blocks, undo the sigmoid and solve the colour mix (least squares)."""
    height, width = (pixels.shape[1] // 8) * 8, (pixels.shape[2] // 8) * 8
    top, left = (pixels.shape[1] % 8) // 2, (pixels.shape[2] % 8) // 2
    cropped = pixels[:, top : top + height, left : left + width, :3].astype(np.float64)
    blocks = cropped.reshape(cropped.shape[0], height // 8, 8, width // 8, 8, 3).mean(axis=(2, 4))
    clipped = np.clip(blocks, 1e-3, 1 - 1e-3)
    mixed = np.log(clipped / (1.0 - clipped)) / DECODE_GAIN
    latent = np.einsum("bhwr,rc->bchw", mixed, np.linalg.pinv(LATENT_RGB.astype(np.float64)))
    return NodeResult(({"samples": latent.astype(np.float32)},))


@node("LatentUpscale")
def latent_upscale(
    ctx: NodeContext,
    samples: dict[str, Any],
    upscale_method: str = "nearest-exact",
    width: int = 512,
    height: int = 512,
    crop: str = "disabled",
) -> NodeResult:
    """Resize to width x height pixels (a 0 side keeps the aspect ratio; at least 64 px)."""
    latent = np.asarray(samples["samples"])
    if width == 0 and height == 0:
        return NodeResult((samples,))
    if width == 0:
        height = max(64, height)
        width = max(64, round(latent.shape[-1] * height / latent.shape[-2]))
    elif height == 0:
        width = max(64, width)
        height = max(64, round(latent.shape[-2] * width / latent.shape[-1]))
    else:
        width, height = max(64, width), max(64, height)
    resized = resize_latent(latent, width // 8, height // 8, upscale_method, crop)
    return NodeResult(({**samples, "samples": resized},))


@node("LatentUpscaleBy")
def latent_upscale_by(
    ctx: NodeContext,
    samples: dict[str, Any],
    upscale_method: str = "nearest-exact",
    scale_by: float = 1.5,
) -> NodeResult:
    latent = np.asarray(samples["samples"])
    width = round(latent.shape[-1] * scale_by)
    height = round(latent.shape[-2] * scale_by)
    resized = resize_latent(latent, width, height, upscale_method, "disabled")
    return NodeResult(({**samples, "samples": resized},))

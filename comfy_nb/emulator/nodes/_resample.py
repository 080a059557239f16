"""Resizing of IMAGE and LATENT arrays the way ComfyUI's ``common_upscale`` does it.

ComfyUI resizes with ``torch.nn.functional.interpolate`` (no antialiasing, ``align_corners``
off), which is separable: each output row (column) is a fixed weighted sum of input rows
(columns). So each method here builds that ``[out, in]`` weight matrix and applies it along one
axis at a time. Lanczos is the exception: ComfyUI goes through Pillow for it, and so do we.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image

Array = np.ndarray[Any, Any]

UPSCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")


def _nearest_exact(n_in: int, n_out: int) -> Array:
    weights = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        weights[o, min(math.floor((o + 0.5) * scale), n_in - 1)] = 1.0
    return weights


def _bilinear(n_in: int, n_out: int) -> Array:
    weights = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        src = max((o + 0.5) * scale - 0.5, 0.0)
        i0 = min(math.floor(src), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        frac = src - i0
        weights[o, i0] += 1.0 - frac
        weights[o, i1] += frac
    return weights


def _cubic(x: float, a: float = -0.75) -> float:
    """The cubic convolution kernel torch uses for bicubic (a = -0.75)."""
    x = abs(x)
    if x <= 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return 0.0


def _bicubic(n_in: int, n_out: int) -> Array:
    weights = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        src = (o + 0.5) * scale - 0.5
        base = math.floor(src)
        frac = src - base
        for k in (-1, 0, 1, 2):
            index = min(max(base + k, 0), n_in - 1)
            weights[o, index] += _cubic(k - frac)
    return weights


def _area(n_in: int, n_out: int) -> Array:
    weights = np.zeros((n_out, n_in))
    for o in range(n_out):
        start = math.floor(o * n_in / n_out)
        end = math.ceil((o + 1) * n_in / n_out)
        weights[o, start:end] = 1.0 / (end - start)
    return weights


_MATRICES = {
    "nearest-exact": _nearest_exact,
    "bilinear": _bilinear,
    "bicubic": _bicubic,
    "area": _area,
}


def _resize_axis(array: Array, axis: int, size: int, method: str) -> Array:
    if array.shape[axis] == size:
        return array
    weights = _MATRICES[method](array.shape[axis], size).astype(np.float32)
    # Each output line only uses a few input lines: gather those (the "taps") instead of doing a
    # dense matrix product, which would be slow for large images.
    taps = int((weights != 0).sum(axis=1).max())
    columns = np.argsort(weights == 0, axis=1, kind="stable")[:, :taps]
    tap_weights = np.take_along_axis(weights, columns, axis=1)
    broadcast = [1] * array.ndim
    broadcast[axis] = size
    out_shape = list(array.shape)
    out_shape[axis] = size
    out = np.zeros(out_shape, dtype=np.float32)
    for t in range(taps):
        out += tap_weights[:, t].reshape(broadcast) * np.take(array, columns[:, t], axis=axis)
    return out


def _lanczos(images: Array, height: int, width: int) -> Array:
    """Lanczos through Pillow, on 8-bit images like ComfyUI. ``images`` is ``[B, H, W, C]``."""
    out = []
    for image in images:
        pixels = np.clip(np.float32(255.0) * image, 0, 255).astype(np.uint8)
        channels = [
            np.asarray(
                Image.fromarray(pixels[..., c]).resize((width, height), Image.Resampling.LANCZOS)
            )
            for c in range(pixels.shape[-1])
        ]
        out.append(np.stack(channels, axis=-1).astype(np.float32) / np.float32(255.0))
    return np.stack(out)


def center_crop_box(
    old_height: int, old_width: int, height: int, width: int
) -> tuple[int, int, int, int]:
    """``(y, x, h, w)`` of the centred region with the target aspect ratio (``crop="center"``)."""
    old_aspect, new_aspect = old_width / old_height, width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_width - old_width * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_height - old_height * (old_aspect / new_aspect)) / 2)
    return y, x, old_height - 2 * y, old_width - 2 * x


def resize_images(images: Array, width: int, height: int, method: str, crop: str) -> Array:
    """Resize an IMAGE ``[B, H, W, C]`` to ``width`` x ``height`` (``crop`` is "disabled" or
    "center"). Unknown methods (e.g. the latent-only "bislerp") fall back to bilinear."""
    if crop == "center":
        y, x, h, w = center_crop_box(images.shape[1], images.shape[2], height, width)
        images = images[:, y : y + h, x : x + w]
    if method == "lanczos":
        return _lanczos(images, height, width)
    method = method if method in _MATRICES else "bilinear"
    return _resize_axis(_resize_axis(images, 1, height, method), 2, width, method)


def resize_latent(samples: Array, width: int, height: int, method: str, crop: str) -> Array:
    """Resize latent samples ``[B, C, h, w]`` (sizes in latent pixels)."""
    moved = np.moveaxis(samples, 1, -1)
    if method == "lanczos":
        # Pillow works on 8-bit images; latents are not in 0..1, so keep to bicubic here.
        method = "bicubic"
    return np.moveaxis(resize_images(moved, width, height, method, crop), -1, 1)

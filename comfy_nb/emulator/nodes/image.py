"""IMAGE nodes: making, loading, transforming and saving images with numpy and Pillow.

Owns EmptyImage, LoadImage, LoadImageMask, ImageInvert, ImageScale, ImageScaleBy, ImageBlur,
ImageCrop, ImageBatch, RepeatImageBatch, GetImageSize, SaveImage, PreviewImage,
SaveAnimatedWEBP, SaveAnimatedPNG and SaveImageWebsocket.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageOps, ImageSequence
from PIL.PngImagePlugin import PngInfo

from ._base import NodeContext, NodeResult, PreviewImage, node
from ._files import (
    annotated_path,
    file_entry,
    from_pil,
    metadata_items,
    save_path,
    temp_prefix,
    to_pil,
)
from ._resample import resize_images

Array = np.ndarray[Any, Any]

# -- creating and loading ------------------------------------------------------------------------


@node("EmptyImage")
def empty_image(
    ctx: NodeContext, width: int = 512, height: int = 512, batch_size: int = 1, color: int = 0
) -> NodeResult:
    """A batch of images filled with one 0xRRGGBB colour."""
    channels = [((color >> shift) & 0xFF) / 0xFF for shift in (16, 8, 0)]
    image = np.empty((batch_size, height, width, 3), dtype=np.float32)
    image[...] = np.array(channels, dtype=np.float32)
    return NodeResult((image,))


def _frame_to_rgb(frame: Image.Image) -> Image.Image:
    """A frame as RGB; 32-bit integer frames ("I" modes) are first scaled down by 255."""
    if frame.mode.startswith("I;16"):
        frame = frame.convert("I")
    if frame.mode == "I":
        frame = frame.point(lambda value: value * (1 / 255))
    return frame.convert("RGB")


def _alpha_mask(frame: Image.Image) -> Array:
    """ComfyUI's mask for one frame: 1 - alpha, or a 64x64 zero mask when there is no alpha."""
    if "A" in frame.getbands():
        alpha = frame.getchannel("A")
    elif frame.mode == "P" and "transparency" in frame.info:
        alpha = frame.convert("RGBA").getchannel("A")
    else:
        return np.zeros((64, 64), dtype=np.float32)
    return np.float32(1.0) - np.asarray(alpha).astype(np.float32) / np.float32(255.0)


@node("LoadImage")
def load_image(ctx: NodeContext, image: str) -> NodeResult:
    """An input file as IMAGE (RGB) and MASK (from alpha). Every frame of the same size as the
    first becomes one batch entry (MPO files give their first frame only)."""
    source = Image.open(str(annotated_path(ctx, image)))
    images: list[Array] = []
    masks: list[Array] = []
    for raw in ImageSequence.Iterator(source):
        frame = ImageOps.exif_transpose(raw)
        rgb = _frame_to_rgb(frame)
        if images and rgb.size != (images[0].shape[1], images[0].shape[0]):
            continue
        images.append(from_pil(rgb))
        masks.append(_alpha_mask(frame))
        if source.format == "MPO":
            break
    return NodeResult((np.stack(images), np.stack(masks)))


@node("LoadImageMask")
def load_image_mask(ctx: NodeContext, image: str, channel: str = "alpha") -> NodeResult:
    """One channel of an input file as MASK (alpha is inverted, the colour channels are not)."""
    picture = ImageOps.exif_transpose(Image.open(str(annotated_path(ctx, image))))
    if picture.getbands() != ("R", "G", "B", "A"):
        if picture.mode.startswith("I;16"):
            picture = picture.convert("I")
        if picture.mode == "I":
            picture = picture.point(lambda value: value * (1 / 255))
        picture = picture.convert("RGBA")
    band = channel[0].upper()
    mask = np.asarray(picture.getchannel(band)).astype(np.float32) / np.float32(255.0)
    if band == "A":
        mask = np.float32(1.0) - mask
    return NodeResult((mask[None],))


# -- transforming --------------------------------------------------------------------------------


@node("ImageInvert")
def image_invert(ctx: NodeContext, image: Array) -> NodeResult:
    return NodeResult((np.float32(1.0) - image,))


@node("ImageScale")
def image_scale(
    ctx: NodeContext,
    image: Array,
    upscale_method: str = "nearest-exact",
    width: int = 512,
    height: int = 512,
    crop: str = "disabled",
) -> NodeResult:
    """Resize to width x height; a 0 side keeps the aspect ratio, both 0 keeps the image."""
    if width == 0 and height == 0:
        return NodeResult((image,))
    old_height, old_width = image.shape[1], image.shape[2]
    if width == 0:
        width = max(1, round(old_width * height / old_height))
    elif height == 0:
        height = max(1, round(old_height * width / old_width))
    return NodeResult((resize_images(image, width, height, upscale_method, crop),))


@node("ImageScaleBy")
def image_scale_by(
    ctx: NodeContext, image: Array, upscale_method: str = "nearest-exact", scale_by: float = 1.0
) -> NodeResult:
    width = round(image.shape[2] * scale_by)
    height = round(image.shape[1] * scale_by)
    return NodeResult((resize_images(image, width, height, upscale_method, "disabled"),))


def _gaussian_taps(blur_radius: int, sigma: float) -> Array:
    """The 1-D factor of ComfyUI's blur kernel: a gaussian sampled at ``2r + 1`` points spread
    over -1..1 (so ``sigma`` is relative to the radius), normalised to sum 1."""
    x = np.linspace(-1.0, 1.0, 2 * blur_radius + 1)
    taps = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return (taps / taps.sum()).astype(np.float32)


@node("ImageBlur")
def image_blur(
    ctx: NodeContext, image: Array, blur_radius: int = 1, sigma: float = 1.0
) -> NodeResult:
    """Gaussian blur with reflected borders (the 2-D kernel is separable, so blur rows then
    columns)."""
    if blur_radius == 0:
        return NodeResult((image,))
    taps = _gaussian_taps(blur_radius, sigma)
    r = blur_radius
    out = image.astype(np.float32)
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="reflect")
        size = out.shape[axis]
        blurred = np.zeros_like(out)
        for k, weight in enumerate(taps):
            blurred += weight * np.take(padded, np.arange(k, k + size), axis=axis)
        out = blurred
    return NodeResult((out,))


@node("ImageCrop")
def image_crop(
    ctx: NodeContext, image: Array, width: int = 512, height: int = 512, x: int = 0, y: int = 0
) -> NodeResult:
    """The width x height region at (x, y), clipped to the image."""
    x = min(x, image.shape[2] - 1)
    y = min(y, image.shape[1] - 1)
    return NodeResult((image[:, y : y + height, x : x + width, :],))


@node("ImageBatch")
def image_batch(ctx: NodeContext, image1: Array, image2: Array) -> NodeResult:
    """Both batches in one; image2 is resized (bilinear, centre crop) to image1's size first."""
    if image1.shape[1:] != image2.shape[1:]:
        image2 = resize_images(image2, image1.shape[2], image1.shape[1], "bilinear", "center")
    return NodeResult((np.concatenate((image1, image2), axis=0),))


@node("RepeatImageBatch")
def repeat_image_batch(ctx: NodeContext, image: Array, amount: int = 1) -> NodeResult:
    """The whole batch repeated ``amount`` times (a, b, a, b, ...)."""
    return NodeResult((np.tile(image, (amount, 1, 1, 1)),))


@node("GetImageSize")
def get_image_size(ctx: NodeContext, image: Array) -> NodeResult:
    """width, height and batch size; also shown on the node as a progress text."""
    batch_size, height, width = image.shape[0], image.shape[1], image.shape[2]
    ctx.send_text(f"width: {width}, height: {height}\n batch size: {batch_size}")
    return NodeResult((width, height, batch_size))


# -- saving --------------------------------------------------------------------------------------


def _png_info(ctx: NodeContext) -> PngInfo:
    """The prompt and each extra_pnginfo key as PNG tEXt chunks."""
    info = PngInfo()
    for key, value in metadata_items(ctx):
        info.add_text(key, value)
    return info


def _save_pngs(
    ctx: NodeContext,
    images: Array,
    filename_prefix: str,
    *,
    temp: bool,
    compress_level: int,
) -> NodeResult:
    base_dir = ctx.temp_dir if temp else ctx.output_dir
    target = save_path(base_dir, filename_prefix, images.shape[2], images.shape[1])
    results = []
    for batch_number, image in enumerate(images):
        file = target.next_file("png", batch_number)
        to_pil(image).save(
            target.folder / file, pnginfo=_png_info(ctx), compress_level=compress_level
        )
        results.append(file_entry(file, target.subfolder, "temp" if temp else "output"))
    return NodeResult(ui={"images": results})


@node("SaveImage")
def save_image(ctx: NodeContext, images: Array, filename_prefix: str = "ComfyUI") -> NodeResult:
    """One PNG per image in the output folder, with the prompt and workflow embedded."""
    return _save_pngs(ctx, images, filename_prefix, temp=False, compress_level=4)


@node("PreviewImage")
def preview_image(ctx: NodeContext, images: Array) -> NodeResult:
    """One PNG per image in the temp folder (``ComfyUI_temp_xxxxx_NNNNN_.png``)."""
    return _save_pngs(ctx, images, temp_prefix(), temp=True, compress_level=1)


_WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}


@node("SaveAnimatedWEBP")
def save_animated_webp(
    ctx: NodeContext,
    images: Array,
    filename_prefix: str = "ComfyUI",
    fps: float = 6.0,
    lossless: bool = True,
    quality: int = 80,
    method: str = "default",
) -> NodeResult:
    """The whole batch as one animated WEBP; the prompt goes in EXIF tag 0x0110 and each
    extra_pnginfo key in tags 0x010F, 0x010E, ... as ``"key:json"``."""
    target = save_path(ctx.output_dir, filename_prefix, images.shape[2], images.shape[1])
    frames = [to_pil(image) for image in images]
    exif = frames[0].getexif()
    tag = 0x010F
    for key, value in metadata_items(ctx):
        if key == "prompt":
            exif[0x0110] = f"prompt:{value}"
        else:
            exif[tag] = f"{key}:{value}"
            tag -= 1
    file = target.next_file("webp")
    frames[0].save(
        target.folder / file,
        save_all=True,
        append_images=frames[1:],
        duration=int(1000.0 / fps),
        exif=exif,
        lossless=lossless,
        quality=quality,
        method=_WEBP_METHODS[method],
    )
    entry = file_entry(file, target.subfolder, "output")
    return NodeResult(ui={"images": [entry], "animated": [len(frames) != 1]})


@node("SaveAnimatedPNG")
def save_animated_png(
    ctx: NodeContext,
    images: Array,
    filename_prefix: str = "ComfyUI",
    fps: float = 6.0,
    compress_level: int = 4,
) -> NodeResult:
    """The whole batch as one APNG; metadata goes in private ``comf`` chunks after the image
    data (``key\\0json``), as ComfyUI writes it."""
    target = save_path(ctx.output_dir, filename_prefix, images.shape[2], images.shape[1])
    frames = [to_pil(image) for image in images]
    info = PngInfo()
    for key, value in metadata_items(ctx):
        info.add(b"comf", key.encode("latin-1") + b"\0" + value.encode("latin-1"), after_idat=True)
    file = target.next_file("png")
    frames[0].save(
        target.folder / file,
        pnginfo=info,
        compress_level=compress_level,
        save_all=True,
        duration=int(1000.0 / fps),
        append_images=frames[1:],
    )
    entry = file_entry(file, target.subfolder, "output")
    return NodeResult(ui={"images": [entry], "animated": [True]})


@node("SaveImageWebsocket")
def save_image_websocket(ctx: NodeContext, images: Array) -> NodeResult:
    """Each image sent as a full-size PNG preview with progress i of n; nothing is written."""
    total = images.shape[0]
    for step, image in enumerate(images):
        ctx.progress(step, total, PreviewImage(to_pil(image), "PNG", None))
    return NodeResult(ui=None)

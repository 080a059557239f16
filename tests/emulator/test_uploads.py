"""Local-dialect uploads beyond the recorded ones: masks (the original's alpha replaced by the
mask's, text chunks kept) and the answers to bad mask requests."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from comfy_nb.emulator import serve


def _png(array: np.ndarray, mode: str, text: dict[str, str] | None = None) -> bytes:
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def test_mask_upload_replaces_alpha_and_keeps_metadata() -> None:
    rgb = np.random.default_rng(1).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    alpha = np.zeros((16, 24, 4), dtype=np.uint8)
    alpha[..., 3] = np.arange(24, dtype=np.uint8)[None, :] * 10
    with serve() as server, httpx.Client(base_url=server.url) as http:
        original = http.post("/upload/image", files={
            "image": ("photo.png", _png(rgb, "RGB", {"prompt": "{}"}), "image/png")},
            data={"type": "input"}).json()
        ref = json.dumps({"filename": original["name"], "subfolder": "", "type": "input"})
        answer = http.post("/upload/mask", files={
            "image": ("mask.png", _png(alpha, "RGBA"), "image/png")},
            data={"original_ref": ref, "type": "input", "subfolder": "clipspace"})
        assert answer.status_code == 200
        assert answer.json() == {"name": "mask.png", "subfolder": "clipspace", "type": "input"}
        with Image.open(server.input_dir / "clipspace" / "mask.png") as result:
            assert result.mode == "RGBA"
            assert result.text == {"prompt": "{}"}
            pixels = np.asarray(result)
    assert np.array_equal(pixels[..., :3], rgb)
    assert np.array_equal(pixels[..., 3], alpha[..., 3])


def test_mask_upload_without_an_image_part_is_400() -> None:
    with serve() as server, httpx.Client(base_url=server.url) as http:
        assert http.post("/upload/mask", data={"original_ref": "{}"}).status_code == 400
        assert http.get("/queue").status_code == 200

"""A generated image corpus for processor parity: sizes from 1×1 to 5000×300, extreme aspect ratios (up to the
200:1 limit), every PIL mode the processor must read, EXIF-rotated JPEGs, NumPy (HWC / CHW, uint8 / float in
[0, 1]) and torch inputs. Contents mix gradients, hard edges (text-like strokes) and noise so resampling differences
cannot hide."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image, ImageDraw


def _rgb(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)),
                     ((x + y) * 7) % 256], axis=-1).astype(np.int32)
    noise = rng.integers(-40, 40, size=(height, width, 3))
    image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for i in range(max(1, min(height, width) // 12)):  # dark "text" strokes
        top = int(rng.integers(0, height))
        draw.line([(int(rng.integers(0, width)), top), (int(rng.integers(0, width)), top)], fill=(10, 10, 10),
                  width=int(rng.integers(1, 4)))
    return np.array(image)


def _mode(height: int, width: int, mode: str, seed: int) -> Image.Image:
    rgb = Image.fromarray(_rgb(height, width, seed))
    rng = np.random.default_rng(seed + 1)
    if mode in ("RGBA", "LA"):
        alpha = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8))
        image = rgb.convert("RGBA" if mode == "RGBA" else "LA")
        image.putalpha(alpha)
        return image
    if mode == "P+transparency":
        image = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
        image.info["transparency"] = 5
        return image
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "I":
        return Image.fromarray(rng.integers(0, 70000, (height, width)).astype(np.int32))
    if mode == "F":
        return Image.fromarray((rng.random((height, width)) * 255).astype(np.float32))
    return rgb.convert(mode)


def _exif_jpeg(path: str, height: int, width: int, orientation: int, seed: int) -> str:
    image = Image.fromarray(_rgb(height, width, seed))
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, format="JPEG", quality=92, exif=exif.tobytes())
    return path


def make_corpus(directory: str) -> list[tuple[str, object]]:
    """[(name, image or path)]; paths point to files written into ``directory``."""
    items: list[tuple[str, object]] = []
    sizes = [(1, 1), (1, 3), (7, 5), (15, 17), (16, 16), (32, 32), (100, 100), (300, 100), (500, 30),
             (213, 167), (1080, 1920), (2048, 2048), (33, 4000), (5000, 300), (300, 5000), (20, 4000),
             (4000, 20), (3000, 2000), (777, 1333)]
    for i, (h, w) in enumerate(sizes):
        items.append((f"rgb-{h}x{w}", Image.fromarray(_rgb(h, w, i))))
    for j, mode in enumerate(["RGBA", "L", "LA", "P", "P+transparency", "CMYK", "I;16", "I", "F", "1", "YCbCr"]):
        items.append((f"mode-{mode}", _mode(123 + 7 * j, 201 - 5 * j, mode, 100 + j)))
    for orientation in (3, 6, 8):
        path = os.path.join(directory, f"exif-{orientation}.jpg")
        items.append((f"exif-{orientation}.jpg", _exif_jpeg(path, 240, 420, orientation, 200 + orientation)))
    for mode in ("RGB", "L", "P", "CMYK"):
        path = os.path.join(directory, f"file-{mode}.{'jpg' if mode == 'CMYK' else 'png'}")
        _mode(190, 260, mode, 300).save(path)
        items.append((os.path.basename(path), path))
    hwc = _rgb(150, 230, 400)
    items += [
        ("numpy-hwc-uint8", hwc),
        ("numpy-chw-uint8", np.ascontiguousarray(hwc.transpose(2, 0, 1))),
        ("numpy-hwc-rgba-uint8", np.concatenate([hwc, np.full((150, 230, 1), 128, np.uint8)], axis=-1)),
        ("numpy-hw1-uint8", hwc[..., :1].copy()),
        ("numpy-hwc-float01", (hwc / 255.0).astype(np.float32)),
        ("torch-chw-uint8", torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)))),
        ("torch-chw-float01", torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)) / 255.0).float()),
    ]
    return items


def call_kwargs(name: str) -> dict:
    """Float inputs already lie in [0, 1]: the documented way to pass them is do_rescale=False."""
    return {"do_rescale": False} if "float01" in name else {}

"""HunYuanVL image processors: any image in, ``pixel_values (Σ gh·gw, 768)`` and ``image_grid_thw`` out.

Per image (spec §2): to RGB (transparency composited on white) → ``smart_resize`` to multiples of patch × merge = 32
inside [min_pixels, max_pixels] → BICUBIC resize → ×1/255 → CLIP mean/std → cut into 16×16 patches in plain raster
order, each flattened (C, t, py, px). ``image_grid_thw`` rows are ``[1, gh, gw]`` in 16-px patch units.

Two backends share everything but the pixel arithmetic:
- ``HunYuanVLImageProcessorPil`` (PIL/NumPy) is bit-exact with transformers' ``HunYuanVLImageProcessorPil`` for
  every input kind, including its quirks (float images pass through uint8 for PIL; an ambiguous (C|H, W, C) array
  is read channels-first).
- ``HunYuanVLImageProcessor`` (torch tensors, optional ``device=``) resizes with ``interpolate(bicubic,
  antialias=True)`` like torchvision would; its difference from PIL is measured in tests and docs/processing.md.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..loading import read_optional_json
from .batch import BatchFeature, check_return_tensors
from .sources import ImageSourceError, load_image

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_ASPECT_RATIO = 200
PROCESSOR_CONFIG_NAME = "processor_config.json"
IMAGE_PROCESSOR_CONFIG_NAME = "preprocessor_config.json"


def smart_resize(height: int, width: int, factor: int = 32, min_pixels: int = 512 * 512,
                 max_pixels: int = 2048 * 2048) -> tuple[int, int]:
    """Target (height, width): multiples of ``factor``, pixel count inside [min, max], aspect ratio kept.

    Python's ``round`` (banker's rounding) as in the reference; >>> smart_resize(1080, 1920) == (1088, 1920)
    """
    if min(height, width) < 1:
        raise ValueError(f"image has an empty side: {height}x{width} (height x width)")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"absolute aspect ratio must be smaller than {MAX_ASPECT_RATIO}, got "
                         f"{max(height, width) / min(height, width)} for a {height}x{width} (height x width) image")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


# ----------------------------------------------------------------------------------------------------------------
# Input normalisation: any image → channels-first array, the way transformers' PIL backend reads it.

def flatten_images(images: Any) -> list[Any]:
    """One flat list from an image, a list of images, a list of lists (per prompt) or a 4-D batch array."""
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
        return list(images)
    if not isinstance(images, (list, tuple)):
        return [images]
    return [image for item in images for image in flatten_images(item)]


def infer_channels_first(array: np.ndarray, num_channels: tuple[int, ...] = (1, 3, 4)) -> bool:
    """True for (C, H, W). An ambiguous shape such as (3, 5, 3) is read channels-first, as transformers does."""
    if array.ndim != 3:
        raise ValueError(f"an image array must have 2 or 3 dimensions, got shape {tuple(array.shape)}")
    if array.shape[0] in num_channels:
        return True
    if array.shape[-1] in num_channels:
        return False
    raise ValueError(f"cannot tell the channel axis of an image array of shape {tuple(array.shape)}: "
                     f"neither the first nor the last axis has 1, 3 or 4 entries")


def pil_to_rgb(image: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8; transparency (alpha band or a palette/transparency key) is composited onto white."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.array(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.array(image.convert("RGB"))


def _array_to_rgb(array: np.ndarray, channels_first: bool) -> np.ndarray:
    """Channels-last work: 1 channel repeated, 4 channels composited onto white (float64 blend, then rounded)."""
    image = np.moveaxis(array, 0, -1) if channels_first else array
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] == 4:
        if np.issubdtype(image.dtype, np.floating) and (image.min() < 0.0 or image.max() > 1.0):
            raise ValueError(f"a 4-channel float image must lie in [0, 1] to be composited, got "
                             f"[{image.min()}, {image.max()}]")
        white = 255 if np.issubdtype(image.dtype, np.integer) else 1.0
        alpha = image[..., 3:4] / white
        blended = alpha * image[..., :3] + (1 - alpha) * white
        image = np.round(blended).astype(image.dtype) if white == 255 else blended.astype(image.dtype)
    return np.moveaxis(image, -1, 0) if channels_first else image


def to_channels_first(image: Any, do_convert_rgb: bool = True, input_data_format: str | None = None) -> np.ndarray:
    """(C, H, W) array of one image (uint8 or float), RGB unless ``do_convert_rgb=False``."""
    if isinstance(image, Image.Image):
        array = pil_to_rgb(image) if do_convert_rgb else np.array(image)
        return array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a PIL image, NumPy array, torch tensor, path, URL or bytes; got {type(image).__name__}")
    if image.ndim == 2:  # grayscale (transformers rejects this; we read it as one channel)
        image = image[None]
        channels_first = True
    elif input_data_format is not None:
        if input_data_format not in ("channels_first", "channels_last"):
            raise ValueError(f"input_data_format must be 'channels_first' or 'channels_last', got {input_data_format!r}")
        channels_first = input_data_format == "channels_first"
    else:
        channels_first = infer_channels_first(image)
    if do_convert_rgb:
        image = _array_to_rgb(image, channels_first)
    return image if channels_first else np.moveaxis(image, -1, 0)


# ----------------------------------------------------------------------------------------------------------------
# Configuration shared by both backends.

class _ImageProcessorBase:
    """Settings, config files and the per-image loop; subclasses implement ``_pixels`` (resize → normalise)."""

    model_input_names = ["pixel_values", "image_grid_thw"]
    spatial_patch_size = 1  # merged-token units per merge step; read by the processor's token accounting
    _SETTINGS = ("do_resize", "resample", "do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std",
                 "do_convert_rgb", "patch_size", "temporal_patch_size", "merge_size")

    def __init__(self, *, size: dict | None = None, min_pixels: int | None = None, max_pixels: int | None = None,
                 do_resize: bool = True, resample: int = 3, do_rescale: bool = True, rescale_factor: float = 1 / 255,
                 do_normalize: bool = True, image_mean: Sequence[float] = OPENAI_CLIP_MEAN,
                 image_std: Sequence[float] = OPENAI_CLIP_STD, do_convert_rgb: bool = True, patch_size: int = 16,
                 temporal_patch_size: int = 1, merge_size: int = 2, **extra: Any):
        self.size = self._size(size, min_pixels, max_pixels)
        self.do_resize, self.do_rescale, self.do_normalize = do_resize, do_rescale, do_normalize
        # `resample` is stored and saved but never used: the original HunyuanOCR processor called PIL's resize
        # without a filter (BICUBIC), so its config's resample=1 (LANCZOS) never took effect. We keep that.
        self.resample = resample
        self.rescale_factor = rescale_factor
        self.image_mean, self.image_std = tuple(image_mean), tuple(image_std)
        self.do_convert_rgb = do_convert_rgb
        self.patch_size, self.temporal_patch_size, self.merge_size = patch_size, temporal_patch_size, merge_size
        self.extra = {k: v for k, v in extra.items() if k not in ("image_processor_type", "processor_class")}
        self._validate()

    @staticmethod
    def _size(size: dict | None, min_pixels: int | None, max_pixels: int | None) -> dict:
        size = dict(size) if size is not None else {"shortest_edge": 512 * 512, "longest_edge": 2048 * 2048}
        size.setdefault("shortest_edge", size.pop("min_pixels", None))
        size.setdefault("longest_edge", size.pop("max_pixels", None))
        if min_pixels is not None:
            size["shortest_edge"] = min_pixels
        if max_pixels is not None:
            size["longest_edge"] = max_pixels
        return {"shortest_edge": size["shortest_edge"], "longest_edge": size["longest_edge"]}

    def _validate(self) -> None:
        lo, hi = self.size["shortest_edge"], self.size["longest_edge"]
        if not lo or not hi:
            raise ValueError(f"`size` must contain 'shortest_edge' (min_pixels) and 'longest_edge' (max_pixels), "
                             f"got {self.size}")
        if lo > hi:
            raise ValueError(f"min_pixels ({lo}) must not exceed max_pixels ({hi})")
        for name in ("patch_size", "merge_size", "temporal_patch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if len(self.image_mean) != 3 or len(self.image_std) != 3:
            raise ValueError(f"image_mean and image_std need 3 entries (RGB), got {self.image_mean} and {self.image_std}")

    @property
    def min_pixels(self) -> int:
        return self.size["shortest_edge"]

    @property
    def max_pixels(self) -> int:
        return self.size["longest_edge"]

    # -- config files --------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        out = {name: getattr(self, name) for name in self._SETTINGS}
        out["image_mean"], out["image_std"] = list(self.image_mean), list(self.image_std)
        out["size"] = dict(self.size)
        out["image_processor_type"] = "HunYuanVLImageProcessor"  # both backends save under one name, like transformers
        return {**copy.deepcopy(self.extra), **out}

    @classmethod
    def from_dict(cls, config: dict, **overrides: Any):
        return cls(**{**config, **overrides})

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, *, subfolder: str = "", **kwargs: Any):
        """Read ``processor_config.json`` (its ``image_processor`` entry) or ``preprocessor_config.json``."""
        hub = {k: kwargs.pop(k) for k in ("revision", "cache_dir", "local_files_only", "token") if k in kwargs}
        config = load_image_processor_config(path_or_repo_id, subfolder=subfolder, **hub)
        return cls.from_dict(config, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike) -> str:
        """Write ``preprocessor_config.json`` (the processor writes its own ``processor_config.json``)."""
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, IMAGE_PROCESSOR_CONFIG_NAME)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=2, sort_keys=True)
        return path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({json.dumps(self.to_dict(), sort_keys=True)})"

    # -- token accounting ----------------------------------------------------------------------------------------
    def get_number_of_image_patches(self, height: int, width: int, images_kwargs: dict | None = None) -> tuple[int, int]:
        """``(gh, gw)`` in 16-px patches for an image of this size (what vLLM asks without the image)."""
        kw = images_kwargs or {}
        patch = kw.get("patch_size", self.patch_size)
        factor = patch * kw.get("merge_size", self.merge_size)
        h, w = smart_resize(height, width, factor, kw.get("min_pixels", self.min_pixels),
                            kw.get("max_pixels", self.max_pixels))
        return h // patch, w // patch

    # -- processing ----------------------------------------------------------------------------------------------
    def __call__(self, images: Any, **kwargs: Any) -> BatchFeature:
        return self.preprocess(images, **kwargs)

    def preprocess(self, images: Any, return_tensors: str | None = None, input_data_format: str | None = None,
                   **overrides: Any) -> BatchFeature:
        """Images (PIL / NumPy / torch / path / URL / bytes, or lists of them) → ``pixel_values``, ``image_grid_thw``.

        Any constructor setting may be overridden for this call (``max_pixels=1024*1024``, ``do_rescale=False``).
        """
        check_return_tensors(return_tensors)
        settings = self._call_settings(overrides)
        flat = flatten_images(images)
        if not flat:
            raise ValueError("no images were given")
        patches, grids = [], []
        for index, source in enumerate(flat):
            try:
                image = to_channels_first(load_image(source), settings.do_convert_rgb, input_data_format)
                pixels = self._pixels(image, settings)
            except (ImageSourceError, TypeError, ValueError) as err:
                raise type(err)(f"image {index}: {err}") from None
            patches.append(self._patchify(pixels, settings))
            grids.append([1, pixels.shape[-2] // settings.patch_size, pixels.shape[-1] // settings.patch_size])
        return BatchFeature({"pixel_values": self._concat(patches), "image_grid_thw": np.array(grids, dtype=np.int64)},
                            tensor_type=return_tensors)

    def _call_settings(self, overrides: dict) -> "_ImageProcessorBase":
        if not overrides:
            return self
        known = set(self._SETTINGS) | {"size", "min_pixels", "max_pixels", "device"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown image processor argument(s) {unknown}; known: {sorted(known)}")
        settings = copy.copy(self)
        size = overrides.pop("size", None)
        settings.size = self._size(size if size is not None else self.size, overrides.pop("min_pixels", None),
                                   overrides.pop("max_pixels", None))
        for key, value in overrides.items():
            setattr(settings, key, tuple(value) if key in ("image_mean", "image_std") else value)
        settings._validate()
        return settings

    def _target_size(self, height: int, width: int, settings: "_ImageProcessorBase") -> tuple[int, int]:
        if not settings.do_resize:
            factor = settings.patch_size * settings.merge_size
            if height % factor or width % factor:
                raise ValueError(f"with do_resize=False the image sides must be multiples of {factor}, "
                                 f"got {height}x{width} (height x width)")
            return height, width
        return smart_resize(height, width, settings.patch_size * settings.merge_size,
                            settings.min_pixels, settings.max_pixels)


# ----------------------------------------------------------------------------------------------------------------
# PIL / NumPy backend

def _pil_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """BICUBIC resize of a (C, H, W) array through PIL; float images travel as uint8 (×255) like transformers."""
    hwc = np.moveaxis(image, 0, -1)
    hwc = hwc[..., 0] if hwc.shape[-1] == 1 else hwc
    scaled = _needs_255_scaling(hwc)
    if scaled:
        hwc = (hwc.astype(np.float64) * 255).astype(np.float32)
    resized = np.array(Image.fromarray(hwc.astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC))
    resized = np.moveaxis(resized[..., None] if resized.ndim == 2 else resized, -1, 0)
    return (resized.astype(np.float64) * (1 / 255)).astype(np.float32) if scaled else resized


def _needs_255_scaling(image: np.ndarray) -> bool:
    """Whether a float image in [0, 1] must be multiplied by 255 to become uint8 (transformers' rule)."""
    if image.dtype == np.uint8:
        return False
    if np.allclose(image, image.astype(int)):
        if np.all(image >= 0) and np.all(image <= 255):
            return False
        raise ValueError(f"image values must lie in [0, 255], got [{image.min()}, {image.max()}]")
    if np.all(image >= 0) and np.all(image <= 1):
        return True
    raise ValueError(f"a float image must lie in [0, 1] (with do_rescale=False) or hold integers in [0, 255], "
                     f"got [{image.min()}, {image.max()}]")


class HunYuanVLImageProcessorPil(_ImageProcessorBase):
    """PIL/NumPy image processor, bit-exact with transformers 5.23's ``HunYuanVLImageProcessorPil``.

    >>> proc = HunYuanVLImageProcessorPil(max_pixels=1024 * 1024)
    >>> out = proc(Image.new("RGB", (640, 480)), return_tensors="pt")
    >>> out["pixel_values"].shape, out["image_grid_thw"].tolist()
    (torch.Size([1280, 768]), [[1, 32, 40]])
    """

    backend = "pil"

    def _pixels(self, image: np.ndarray, s: _ImageProcessorBase) -> np.ndarray:
        height, width = self._target_size(*image.shape[-2:], s)
        if s.do_resize:
            image = _pil_resize(image, height, width)
        if s.do_rescale:
            image = (image.astype(np.float64) * s.rescale_factor).astype(np.float32)
        if s.do_normalize:
            image = image if np.issubdtype(image.dtype, np.floating) else image.astype(np.float32)
            mean = np.array(s.image_mean, dtype=image.dtype)[:, None, None]
            std = np.array(s.image_std, dtype=image.dtype)[:, None, None]
            image = (image - mean) / std
        return image

    @staticmethod
    def _patchify(image: np.ndarray, s: _ImageProcessorBase) -> np.ndarray:
        return _patchify(np.asarray(image, dtype=np.float32), s.patch_size, s.temporal_patch_size)

    @staticmethod
    def _concat(patches: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(patches, axis=0)


def _patchify(image, patch: int, temporal: int):
    """(C, H, W) → (gh·gw, C·t·p·p): raster order of 16×16 patches, each flattened (C, t, py, px).

    Works for NumPy arrays and torch tensors alike (reshape / transpose / broadcast only).
    """
    channels, height, width = image.shape
    gh, gw = height // patch, width // patch
    patches = image.reshape(channels, gh, patch, gw, patch)                     # (C, gh, py, gw, px)
    if isinstance(image, torch.Tensor):
        patches = patches.permute(1, 3, 0, 2, 4).unsqueeze(3)                   # (gh, gw, C, 1, py, px)
        patches = patches.expand(gh, gw, channels, temporal, patch, patch)
    else:
        patches = patches.transpose(1, 3, 0, 2, 4)[:, :, :, None]
        patches = np.broadcast_to(patches, (gh, gw, channels, temporal, patch, patch))
    return patches.reshape(gh * gw, channels * temporal * patch * patch)


# ----------------------------------------------------------------------------------------------------------------
# torch backend

class HunYuanVLImageProcessor(_ImageProcessorBase):
    """torch image processor (no torchvision needed); ``device="cuda"`` resizes on the GPU.

    Resizing uses ``interpolate(mode="bicubic", antialias=True)`` on the uint8 values, rounded back to uint8, as
    torchvision does; it differs from PIL's bicubic by a few grey levels (docs/processing.md has the numbers).
    Use ``HunYuanVLImageProcessorPil`` (``backend="pil"``) for results identical to the reference.
    """

    backend = "torch"

    def __init__(self, *, device: str | torch.device | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.device = device

    def _pixels(self, image: np.ndarray, s: _ImageProcessorBase) -> torch.Tensor:
        height, width = self._target_size(*image.shape[-2:], s)
        tensor = torch.from_numpy(np.ascontiguousarray(image)).to(getattr(s, "device", None) or "cpu")
        if s.do_resize and (height, width) != tuple(tensor.shape[-2:]):
            resized = F.interpolate(tensor[None].float(), size=(height, width), mode="bicubic", antialias=True,
                                    align_corners=False)[0]
            tensor = resized.round_().clamp_(0, 255).to(torch.uint8) if tensor.dtype == torch.uint8 else resized
        mean = torch.tensor(s.image_mean, device=tensor.device)
        std = torch.tensor(s.image_std, device=tensor.device)
        if s.do_rescale and s.do_normalize:  # fused: (x - 255·mean) / (255·std)
            mean, std = mean * (1.0 / s.rescale_factor), std * (1.0 / s.rescale_factor)
            return (tensor.float() - mean[:, None, None]) / std[:, None, None]
        if s.do_rescale:
            return tensor.float() * s.rescale_factor
        if s.do_normalize:
            return (tensor.float() - mean[:, None, None]) / std[:, None, None]
        return tensor.float()

    @staticmethod
    def _patchify(image: torch.Tensor, s: _ImageProcessorBase) -> torch.Tensor:
        return _patchify(image, s.patch_size, s.temporal_patch_size)

    @staticmethod
    def _concat(patches: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(patches, dim=0)


def load_image_processor_config(path_or_repo_id: str | os.PathLike, *, subfolder: str = "", **hub: Any) -> dict:
    """The image-processor settings of a checkpoint: ``processor_config.json``'s ``image_processor`` entry
    (transformers ≥ 5) or else ``preprocessor_config.json``."""
    nested = read_optional_json(path_or_repo_id, PROCESSOR_CONFIG_NAME, subfolder=subfolder, **hub)
    if isinstance(nested.get("image_processor"), dict):
        return nested["image_processor"]
    config = read_optional_json(path_or_repo_id, IMAGE_PROCESSOR_CONFIG_NAME, subfolder=subfolder, **hub)
    if not config:
        raise FileNotFoundError(f"no image processor settings in {path_or_repo_id}: expected {PROCESSOR_CONFIG_NAME} "
                                f"with an 'image_processor' entry or {IMAGE_PROCESSOR_CONFIG_NAME}")
    return config

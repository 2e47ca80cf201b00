"""``AutoProcessor``, ``AutoTokenizer``, ``AutoModel*``: pick the class from a checkpoint's
``config.json`` (``model_type``, else ``architectures``), so transformers code runs with only the import changed.

>>> model = AutoModelForImageTextToText.from_pretrained("tencent/HunyuanOCR", device_map="auto")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

from .config import CONFIG_NAME
from .loading import read_json_object, resolve_file
from .modeling import (HunYuanDenseV1ForCausalLM, HunYuanDenseV1ForSequenceClassification, HunYuanDenseV1Model,
                       HunYuanMoEV1ForCausalLM, HunYuanMoEV1ForSequenceClassification, HunYuanMoEV1Model,
                       HunYuanVLForConditionalGeneration, HunYuanVLModel)
from .processing import HunYuanTokenizer, HunYuanVLProcessor

TEXT_MODEL_TYPES = ("hunyuan_v1_dense", "hunyuan_v1_moe")  # their processor is the tokenizer
_HUB_KEYS = ("subfolder", "revision", "cache_dir", "local_files_only", "token")


def _model_type(path: str, kwargs: dict[str, Any], optional: bool = False) -> tuple[str, list[str]]:
    """(model_type, architectures) of a checkpoint's config.json; ("", []) when optional and there is none."""
    hub = {k: kwargs[k] for k in _HUB_KEYS if k in kwargs}
    config_file = path if os.path.isfile(path) else resolve_file(path, CONFIG_NAME, optional=optional, **hub)
    config = read_json_object(config_file) if config_file is not None else {}
    return str(config.get("model_type", "")), list(config.get("architectures") or [])


class _AutoModel:
    # model_type -> class; the architectures named in config.json are tried when model_type is unknown
    registry: dict[str, type] = {}

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} is not instantiated; use {type(self).__name__}.from_pretrained(...)")

    @classmethod
    def class_for(cls, model_type: str, architectures: list[str]) -> type:
        if model_type in cls.registry:
            return cls.registry[model_type]
        by_name = {c.__name__: c for c in cls.registry.values()}
        for arch in architectures:
            if arch in by_name:
                return by_name[arch]
        raise ValueError(f"{cls.__name__} does not support model_type={model_type!r} (architectures "
                         f"{architectures}); supported model types: {sorted(cls.registry)}")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        path = str(pretrained_model_name_or_path)
        model_class = cls.class_for(*_model_type(path, kwargs))
        return model_class.from_pretrained(path, *args, **kwargs)


class AutoModelForImageTextToText(_AutoModel):
    registry = {"hunyuan_vl": HunYuanVLForConditionalGeneration}


class AutoModel(_AutoModel):
    registry = {"hunyuan_vl": HunYuanVLModel, "hunyuan_v1_dense": HunYuanDenseV1Model,
                "hunyuan_v1_moe": HunYuanMoEV1Model}


class AutoModelForCausalLM(_AutoModel):
    # a VL checkpoint generates text too, as its conditional-generation class
    registry = {"hunyuan_v1_dense": HunYuanDenseV1ForCausalLM, "hunyuan_v1_moe": HunYuanMoEV1ForCausalLM,
                "hunyuan_vl": HunYuanVLForConditionalGeneration}


class AutoModelForSequenceClassification(_AutoModel):
    registry = {"hunyuan_v1_dense": HunYuanDenseV1ForSequenceClassification,
                "hunyuan_v1_moe": HunYuanMoEV1ForSequenceClassification}


class AutoTokenizer:
    """The tokenizer of a checkpoint: ``tokenizer.json`` (tokenizers) or ``hy.tiktoken`` (tiktoken), whichever the
    checkpoint ships, as one ``HunYuanTokenizer``."""

    def __init__(self) -> None:
        raise TypeError("AutoTokenizer is not instantiated; use AutoTokenizer.from_pretrained(...)")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> HunYuanTokenizer:
        return HunYuanTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs)


class AutoProcessor:
    """The processor of a checkpoint: ``HunYuanVLProcessor`` for HunYuanVL / HunyuanOCR; for the text-only models
    (``hunyuan_v1_dense`` / ``hunyuan_v1_moe``), their tokenizer, as transformers does."""

    def __init__(self) -> None:
        raise TypeError("AutoProcessor is not instantiated; use AutoProcessor.from_pretrained(...)")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike,
                        **kwargs: Any) -> HunYuanVLProcessor | HunYuanTokenizer:
        path = str(pretrained_model_name_or_path)
        if _model_type(path, kwargs, optional=True)[0] in TEXT_MODEL_TYPES:
            kwargs.pop("backend", None)
            return HunYuanTokenizer.from_pretrained(path, **kwargs)
        return HunYuanVLProcessor.from_pretrained(path, **kwargs)

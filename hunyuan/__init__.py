"""hunyuan: a fast, faithful PyTorch implementation of Tencent's HunYuan models (HunyuanOCR / HunYuanVL).

>>> from hunyuan import HunYuanVLForConditionalGeneration
>>> model = HunYuanVLForConditionalGeneration.from_pretrained("path/to/HunyuanOCR", dtype="bfloat16")
"""

from .config import HunYuanVLConfig, HunYuanVLTextConfig, HunYuanVLVisionConfig
from .engine.kv_cache import DynamicCache
from .loading import CheckpointError
from .modeling import (HunYuanVLForConditionalGeneration, HunYuanVLModel, HunYuanVLTextModel,
                       HunYuanVLVisionTransformer)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "DynamicCache",
    "HunYuanVLConfig",
    "HunYuanVLForConditionalGeneration",
    "HunYuanVLModel",
    "HunYuanVLTextConfig",
    "HunYuanVLTextModel",
    "HunYuanVLVisionConfig",
    "HunYuanVLVisionTransformer",
]

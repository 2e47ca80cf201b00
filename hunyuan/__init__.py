"""hunyuan: a fast, faithful PyTorch implementation of Tencent's HunYuan models (HunyuanOCR / HunYuanVL).

>>> from hunyuan import HunYuanVLForConditionalGeneration
>>> model = HunYuanVLForConditionalGeneration.from_pretrained("path/to/HunyuanOCR", dtype="bfloat16")
"""

from .auto import AutoModel, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor
from .config import HunYuanVLConfig, HunYuanVLTextConfig, HunYuanVLVisionConfig
from .engine import (DynamicCache, GenerationConfig, GenerationResponse, GenerationStats, StaticCache,
                     stream_generate)
from .loading import CheckpointError
from .modeling import (HunYuanVLForConditionalGeneration, HunYuanVLModel, HunYuanVLTextModel,
                       HunYuanVLVisionTransformer)
from .processing import (BatchFeature, HunYuanTokenizer, HunYuanVLImageProcessor, HunYuanVLImageProcessorPil,
                         HunYuanVLProcessor, ImageSourceError, IncrementalDetokenizer)

__version__ = "0.1.0"

__all__ = [
    "AutoModel",
    "AutoModelForCausalLM",
    "AutoModelForImageTextToText",
    "AutoProcessor",
    "BatchFeature",
    "CheckpointError",
    "DynamicCache",
    "GenerationConfig",
    "GenerationResponse",
    "GenerationStats",
    "HunYuanVLConfig",
    "HunYuanTokenizer",
    "HunYuanVLForConditionalGeneration",
    "HunYuanVLImageProcessor",
    "HunYuanVLImageProcessorPil",
    "HunYuanVLModel",
    "HunYuanVLProcessor",
    "HunYuanVLTextConfig",
    "HunYuanVLTextModel",
    "HunYuanVLVisionConfig",
    "HunYuanVLVisionTransformer",
    "ImageSourceError",
    "IncrementalDetokenizer",
    "StaticCache",
    "stream_generate",
]

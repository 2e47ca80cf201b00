"""hunyuan: a fast, faithful PyTorch implementation of Tencent's HunYuan models (HunyuanOCR / HunYuanVL, and the
HunYuanDenseV1 / HunYuanMoEV1 language models such as Hunyuan-A13B).

>>> from hunyuan import HunYuanVLForConditionalGeneration
>>> model = HunYuanVLForConditionalGeneration.from_pretrained("path/to/HunyuanOCR", dtype="bfloat16")
"""

from .auto import (AutoModel, AutoModelForCausalLM, AutoModelForImageTextToText, AutoModelForSequenceClassification,
                   AutoProcessor, AutoTokenizer)
from .config import (HunYuanDenseV1Config, HunYuanMoEV1Config, HunYuanVLConfig, HunYuanVLTextConfig,
                     HunYuanVLVisionConfig)
from .engine import (DynamicCache, GenerationConfig, GenerationResponse, GenerationStats, StaticCache,
                     stream_generate)
from .loading import CheckpointError
from .modeling import (HunYuanDenseV1ForCausalLM, HunYuanDenseV1ForSequenceClassification, HunYuanDenseV1Model,
                       HunYuanDenseV1PreTrainedModel, HunYuanMoEV1ForCausalLM, HunYuanMoEV1ForSequenceClassification,
                       HunYuanMoEV1Model, HunYuanMoEV1PreTrainedModel, HunYuanVLForConditionalGeneration,
                       HunYuanVLModel, HunYuanVLTextModel, HunYuanVLVisionTransformer)
from .processing import (BatchFeature, HunYuanTokenizer, HunYuanVLImageProcessor, HunYuanVLImageProcessorPil,
                         HunYuanVLProcessor, ImageSourceError, IncrementalDetokenizer)

__version__ = "0.1.0"

__all__ = [
    "AutoModel",
    "AutoModelForCausalLM",
    "AutoModelForImageTextToText",
    "AutoModelForSequenceClassification",
    "AutoProcessor",
    "AutoTokenizer",
    "BatchFeature",
    "CheckpointError",
    "DynamicCache",
    "GenerationConfig",
    "GenerationResponse",
    "GenerationStats",
    "HunYuanDenseV1Config",
    "HunYuanDenseV1ForCausalLM",
    "HunYuanDenseV1ForSequenceClassification",
    "HunYuanDenseV1Model",
    "HunYuanDenseV1PreTrainedModel",
    "HunYuanMoEV1Config",
    "HunYuanMoEV1ForCausalLM",
    "HunYuanMoEV1ForSequenceClassification",
    "HunYuanMoEV1Model",
    "HunYuanMoEV1PreTrainedModel",
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

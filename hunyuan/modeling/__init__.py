"""Model definitions. Each file reads top to bottom like the architecture it implements."""

from .hunyuan_v1 import (HunYuanDenseV1ForCausalLM, HunYuanDenseV1ForSequenceClassification, HunYuanDenseV1Model,
                         HunYuanDenseV1PreTrainedModel, HunYuanMoEV1ForCausalLM, HunYuanMoEV1ForSequenceClassification,
                         HunYuanMoEV1Model, HunYuanMoEV1PreTrainedModel)
from .hunyuan_vl import (HunYuanVLForConditionalGeneration, HunYuanVLModel, HunYuanVLTextModel,
                         HunYuanVLVisionTransformer)

__all__ = [
    "HunYuanDenseV1ForCausalLM",
    "HunYuanDenseV1ForSequenceClassification",
    "HunYuanDenseV1Model",
    "HunYuanDenseV1PreTrainedModel",
    "HunYuanMoEV1ForCausalLM",
    "HunYuanMoEV1ForSequenceClassification",
    "HunYuanMoEV1Model",
    "HunYuanMoEV1PreTrainedModel",
    "HunYuanVLForConditionalGeneration",
    "HunYuanVLModel",
    "HunYuanVLTextModel",
    "HunYuanVLVisionTransformer",
]

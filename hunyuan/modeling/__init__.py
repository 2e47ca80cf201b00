"""Model definitions. Each file reads top to bottom like the architecture it implements."""

from .hunyuan_vl import (HunYuanVLForConditionalGeneration, HunYuanVLModel, HunYuanVLTextModel,
                         HunYuanVLVisionTransformer)

__all__ = ["HunYuanVLForConditionalGeneration", "HunYuanVLModel", "HunYuanVLTextModel", "HunYuanVLVisionTransformer"]

"""Everything between raw inputs and token ids: images, tokenizer, chat templates and the processor that joins them."""

from .batch import BatchFeature
from .image import HunYuanVLImageProcessor, HunYuanVLImageProcessorPil, smart_resize
from .processor import HunYuanVLProcessor
from .sources import ImageSourceError, load_image
from .tokenizer import HunYuanTokenizer, IncrementalDetokenizer

__all__ = ["BatchFeature", "HunYuanTokenizer", "HunYuanVLImageProcessor", "HunYuanVLImageProcessorPil",
           "HunYuanVLProcessor", "ImageSourceError", "IncrementalDetokenizer", "load_image", "smart_resize"]

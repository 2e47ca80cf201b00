"""Generation engine: KV caches, sampling and the step -> stream -> result layers."""

from .generate import GenerationResponse, GenerationStats, decode_step, generate_steps, prefill, stream_generate
from .generation_config import GenerationConfig
from .kv_cache import DynamicCache, StaticCache

__all__ = ["DynamicCache", "GenerationConfig", "GenerationResponse", "GenerationStats", "StaticCache", "decode_step",
           "generate_steps", "prefill", "stream_generate"]

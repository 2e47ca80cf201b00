"""Generation engine: KV caches, sampling and the step -> stream -> result layers."""

from .kv_cache import DynamicCache

__all__ = ["DynamicCache"]

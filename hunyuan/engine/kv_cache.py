"""KV caches. The model only needs ``update(k, v, layer_idx) -> (keys, values)`` and ``get_seq_length()``.

``DynamicCache`` grows by concatenation (simple, used for plain ``forward(use_cache=True)`` calls); ``StaticCache``
is allocated once per generation (the engine uses it). Both hold keys already rotated and QK-normed, exactly what
attention consumes.
"""

from __future__ import annotations

import torch


class DynamicCache:
    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        # key, value: (B, Hkv, L_new, d)
        if layer_idx == len(self.keys):
            self.keys.append(key)
            self.values.append(value)
        else:
            self.keys[layer_idx] = torch.cat((self.keys[layer_idx], key), dim=2)
            self.values[layer_idx] = torch.cat((self.values[layer_idx], value), dim=2)
        return self.keys[layer_idx], self.values[layer_idx]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.keys[layer_idx].shape[2] if layer_idx < len(self.keys) else 0

    def __len__(self) -> int:
        return len(self.keys)


class StaticCache:
    """A KV cache allocated once for a whole generation: per layer (B, Hkv, max_len, d) key and value buffers.

    Rows are left-padded, so every row writes its next token at the same column ``length`` and a decode step is a
    fixed-shape write. ``update`` writes at ``length`` and returns views of the filled part; whoever runs the forward
    calls ``advance`` once afterwards (all layers write at the same offset). ``select_rows`` drops finished rows so
    they stop costing compute.
    """

    def __init__(self, num_layers: int, batch_size: int, num_kv_heads: int, max_len: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device | str) -> None:
        shape = (batch_size, num_kv_heads, max_len, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.max_len = max_len
        self.length = 0

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        # key, value: (B, Hkv, L_new, d)
        end = self.length + key.shape[2]
        if end > self.max_len:
            raise ValueError(f"StaticCache overflow: writing up to position {end} but max_len={self.max_len}")
        self.keys[layer_idx][:, :, self.length:end] = key
        self.values[layer_idx][:, :, self.length:end] = value
        return self.keys[layer_idx][:, :, :end], self.values[layer_idx][:, :, :end]

    def advance(self, num_tokens: int) -> None:
        self.length += num_tokens

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length

    def select_rows(self, rows: torch.Tensor) -> None:
        """Keep only the batch rows ``rows`` (1-D index tensor), in that order."""
        self.keys = [k.index_select(0, rows) for k in self.keys]
        self.values = [v.index_select(0, rows) for v in self.values]

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]

    def __len__(self) -> int:
        return len(self.keys)

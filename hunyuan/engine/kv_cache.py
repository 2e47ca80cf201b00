"""KV caches. The model only needs ``update(k, v, layer_idx) -> (keys, values)`` and ``get_seq_length()``.

``DynamicCache`` grows by concatenation (simple, used for plain ``forward(use_cache=True)`` calls); it holds keys
already rotated and QK-normed, exactly what attention consumes.
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

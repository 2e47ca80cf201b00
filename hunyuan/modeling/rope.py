"""Rotary position embeddings: default, linear, dynamic NTK, NTK-alpha, and HunYuan's xD-RoPE.

xD-RoPE (spec 5.4) gives every token one position per axis (A = 3 or 4 axes: [sequence,] width, height,
image index). The rotary angles of a head are laid out like plain NeoX RoPE (``[f, f]``, d lanes), then the d lanes
are cut into consecutive chunks of ``2 * mrope_section[k]`` and chunk k takes its positions from axis ``k mod A``.
So each rotation pair (lane j, lane j + d/2) may mix two axes. That is how the model was trained: keep it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def compute_inv_freq(rope: dict[str, Any], head_dim: int, max_position_embeddings: int,
                     seq_len: int | None = None, device: torch.device | None = None) -> torch.Tensor:
    """Inverse frequencies (head_dim / 2,) for the configured rope type; formulas as transformers 5.23."""
    base = float(rope["rope_theta"])
    rope_type = rope["rope_type"]
    if rope_type == "dynamic" and rope.get("alpha"):
        # NTK-alpha (all real HunYuan checkpoints): a static stretch of the base
        base = base * rope["alpha"] ** (head_dim / (head_dim - 2))
    elif rope_type == "dynamic":
        # dynamic NTK by factor: the base grows once the sequence exceeds max_position_embeddings
        factor = rope["factor"]
        seq_len = max(seq_len or max_position_embeddings, max_position_embeddings)
        base = base * ((factor * seq_len / max_position_embeddings) - (factor - 1)) ** (head_dim / (head_dim - 2))
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float)
                               / head_dim))
    if rope_type == "linear":
        inv_freq = inv_freq / rope["factor"]
    return inv_freq


def xdrope_lane_axes(mrope_section: list[int] | None, head_dim: int) -> torch.Tensor:
    """Axis index for each of the head_dim rotary lanes (all zeros for plain 1-D RoPE)."""
    if not mrope_section:
        return torch.zeros(head_dim, dtype=torch.long)
    axes = [k % len(mrope_section) for k, s in enumerate(mrope_section) for _ in range(2 * s)]
    return torch.tensor(axes, dtype=torch.long)


class RotaryEmbedding(nn.Module):
    """Computes (cos, sin) of shape (B, L, head_dim) once per forward, shared by every layer."""

    def __init__(self, rope: dict[str, Any], head_dim: int, max_position_embeddings: int) -> None:
        super().__init__()
        self.rope = rope
        self.head_dim = head_dim
        self.max_position_embeddings = max_position_embeddings
        self.mrope_section = rope.get("mrope_section")
        self.num_axes = len(self.mrope_section) if self.mrope_section else 1
        self.length_dependent = rope["rope_type"] == "dynamic" and not rope.get("alpha")
        self.register_buffer("inv_freq", torch.empty(head_dim // 2), persistent=False)
        self.register_buffer("lane_axes", torch.empty(head_dim, dtype=torch.long), persistent=False)
        if not self.inv_freq.is_meta:  # on the meta device, from_pretrained calls reset_buffers once loaded
            self.reset_buffers(self.inv_freq.device)

    def reset_buffers(self, device: torch.device) -> None:
        """(Re)compute the non-persistent buffers on ``device``."""
        self.inv_freq = compute_inv_freq(self.rope, self.head_dim, self.max_position_embeddings, device=device)
        self.lane_axes = xdrope_lane_axes(self.mrope_section, self.head_dim).to(device)

    @torch.no_grad()
    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        # position_ids: (A, B, L)
        inv_freq = self.inv_freq
        if self.length_dependent:
            seq_len = int(position_ids.max()) + 1
            if seq_len > self.max_position_embeddings:
                inv_freq = compute_inv_freq(self.rope, self.head_dim, self.max_position_embeddings, seq_len,
                                            device=inv_freq.device)
        lane_pos = position_ids.index_select(0, self.lane_axes).permute(1, 2, 0)  # (B, L, d): position of each lane
        angles = lane_pos.float() * torch.cat((inv_freq, inv_freq)).float()
        return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                 upcast: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """q: (B, H, L, d), k: (B, Hkv, L, d), cos/sin: (B, L, d). ``upcast`` rotates in fp32 (the VL model does)."""
    dtype = q.dtype
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    if upcast:
        q, k, cos, sin = q.float(), k.float(), cos.float(), sin.float()
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    return q.to(dtype), k.to(dtype)

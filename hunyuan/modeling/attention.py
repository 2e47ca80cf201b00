"""The one place that picks the attention backend.

Two implementations with the same contract:

* ``"eager"``: the reference path (explicit matmul, additive mask, softmax in fp32), the only one that can return
  attention weights;
* ``"sdpa"`` (default): ``torch.nn.functional.scaled_dot_product_attention``, which picks a fused kernel
  (flash / memory-efficient on CUDA, the flash CPU kernel when no mask is given); on the CPU, one query per row
  (a decode step) goes to our kernel ``hunyuan.kernels.decode_attention`` instead, which computes the same in fp32
  without copying a bf16 cache to fp32.

``tests/test_attention.py`` proves the two agree. Masks are boolean (True = may attend) and every query row keeps
at least its own key, so a fully padded row never produces NaN that could leak into real rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import kernels
from .layers import compute_dtype

ATTN_IMPLEMENTATIONS = ("eager", "sdpa")
DEFAULT_ATTN_IMPLEMENTATION = "sdpa"
# eager vision attention works on query blocks of this many rows so a 16k-patch page never needs a 16k x 16k matrix
_EAGER_QUERY_BLOCK = 1024


def resolve_implementation(name: str | None) -> str:
    name = name or DEFAULT_ATTN_IMPLEMENTATION
    if name not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation={name!r} is not supported: expected one of {ATTN_IMPLEMENTATIONS}")
    return name


def causal_mask(attention_mask: torch.Tensor | None, q_len: int, kv_len: int,
                device: torch.device) -> torch.Tensor | None:
    """Boolean (B, 1, q_len, kv_len) mask for causal attention over a cache of ``kv_len`` keys, or None when plain
    causal attention (q_len == kv_len, no padding) or full attention (q_len == 1, no padding) is enough.

    ``attention_mask`` (B, kv_len) marks real tokens with 1 and padding with 0. A 4-D boolean mask
    (B, 1, q_len, kv_len) is taken as already built (the generation engine passes one per decode step, which
    avoids a host sync).
    """
    if attention_mask is not None and attention_mask.ndim == 4:
        return attention_mask
    has_padding = attention_mask is not None and not bool(attention_mask.all())
    if not has_padding and (q_len == kv_len or q_len == 1):
        return None
    query_pos = torch.arange(kv_len - q_len, kv_len, device=device)[:, None]
    key_pos = torch.arange(kv_len, device=device)[None, :]
    mask = (key_pos <= query_pos)[None, None]  # (1, 1, q, kv)
    if has_padding:
        mask = mask & attention_mask[:, None, None, -kv_len:].to(device=device, dtype=torch.bool)
        mask = mask | (key_pos == query_pos)[None, None]  # a padded query still sees itself: no empty rows
    return mask


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: torch.Tensor | None, causal: bool,
           scale: float, implementation: str, need_weights: bool = False
           ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q (B, H, L, d); k, v (B, Hkv, S, d) with H a multiple of Hkv (GQA). Returns (B, L, H*d) and the weights
    (B, H, L, S) when ``need_weights`` (eager only)."""
    # with no mask, causal matters only for square attention: one query over a cache attends to every key (SDPA's
    # is_causal would align the triangle top-left and hide all but the first key)
    causal = causal and mask is None and q.shape[2] == k.shape[2] and q.shape[2] > 1
    if need_weights and implementation != "eager":
        raise ValueError("output_attentions=True needs attn_implementation='eager' (SDPA does not expose weights)")
    if implementation == "sdpa" and not need_weights and kernels.attention_applies(q, k, v, mask):
        return kernels.decode_attention(q, k, v, mask, scale), None  # one query per row: our CPU kernel
    if implementation == "sdpa":
        # half-precision SDPA on CPUs without half matmul units is ~8x slower than fp32 for one decode query over a
        # long cache (layers.py): compute there in fp32, as for the linear layers
        dtype = compute_dtype(q, k.shape[2])
        out = F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype), attn_mask=mask, is_causal=causal,
                                             scale=scale, enable_gqa=k.shape[1] != q.shape[1]).to(q.dtype)
        weights = None
    else:
        out, weights = _eager(q, k, v, mask, causal, scale)
    b, h, l, d = out.shape
    return out.transpose(1, 2).reshape(b, l, h * d), weights


def _eager(q, k, v, mask, causal, scale):
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    scores = torch.matmul(q, k.transpose(2, 3)) * scale
    if causal:
        l, s = scores.shape[-2:]
        mask = torch.ones(l, s, dtype=torch.bool, device=q.device).tril(s - l)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(weights, v), weights


def attend_segments(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths: list[int], *, scale: float,
                    implementation: str) -> torch.Tensor:
    """Block-diagonal (per image) bidirectional attention over one packed sequence without building a mask over
    all patches. q, k, v: (1, H, N, d) with N = sum(lengths). Returns (1, N, H*d)."""
    outs = []
    for q_s, k_s, v_s in zip(q.split(lengths, 2), k.split(lengths, 2), v.split(lengths, 2)):
        if implementation == "sdpa":
            outs.append(F.scaled_dot_product_attention(q_s, k_s, v_s, scale=scale))
        else:
            outs.extend(_eager(q_b, k_s, v_s, None, False, scale)[0] for q_b in q_s.split(_EAGER_QUERY_BLOCK, 2))
    out = torch.cat(outs, dim=2)
    _, h, n, d = out.shape
    return out.transpose(1, 2).reshape(1, n, h * d)

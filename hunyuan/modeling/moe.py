"""The HunYuan MoE block (spec 6): an fp32 softmax router picks the top-k of E experts per token (weights
renormalised to sum to 1), the routed experts' outputs are summed with those weights, and one shared MLP is added.

Experts are stored stacked, as transformers keeps them in memory: ``gate_up_proj`` (E, 2I, H) with the gate rows
first, ``down_proj`` (E, H, I). On disk they are per-expert ``experts.{e}.{gate,up,down}_proj.weight``;
``loading.py`` stacks them at load and splits them at save.

The routed computation is grouped: the (token, expert) pairs are sorted by expert, and every expert that received
tokens runs one gate/up product and one down product over all of its tokens; experts nobody picked cost nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import HunYuanMoEV1Config
from .layers import ACT_FNS, GatedMLP, linear


class HunYuanMoEV1Gate(nn.Module):
    """Router: logits (T, E) from an fp32 projection, softmax in fp32, top-k, renormalised weights."""

    def __init__(self, config: HunYuanMoEV1Config, layer_idx: int) -> None:
        super().__init__()
        self.top_k = config.top_k(layer_idx)
        # created (and kept, see HunYuanPreTrainedModel.keep_fp32) in fp32 even in a bf16 model, as the reference
        self.wg = nn.Linear(config.hidden_size, config.num_experts, bias=False, dtype=torch.float32)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # x: (T, H) -> router_logits (T, E), weights (T, k), experts (T, k)
        if self.wg.weight.dtype == torch.float32:
            x = x.float()
        router_logits = F.linear(x, self.wg.weight)
        probs = F.softmax(router_logits, dim=-1, dtype=torch.float32)
        weights, experts = torch.topk(probs, self.top_k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        return router_logits, weights.to(router_logits.dtype), experts


class HunYuanMoEV1Experts(nn.Module):
    """E gated MLPs with stacked weights, computed grouped by expert."""

    def __init__(self, config: HunYuanMoEV1Config) -> None:
        super().__init__()
        self.num_experts = config.num_experts
        self.intermediate_size = config.intermediate_size
        e, i, h = config.num_experts, config.intermediate_size, config.hidden_size
        self.gate_up_proj = nn.Parameter(torch.empty(e, 2 * i, h))  # rows [0, I) gate, [I, 2I) up
        self.down_proj = nn.Parameter(torch.empty(e, h, i))
        self.act_fn = ACT_FNS[config.hidden_act]

    def forward(self, x: torch.Tensor, experts: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        # x: (T, H); experts, weights: (T, k) -> (T, H)
        t, k = experts.shape
        flat = experts.reshape(-1)  # (T*k,) pair p = token p // k, slot p % k
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=self.num_experts).tolist()  # the one host sync of the block
        token_of_pair = order // k
        xs = x.index_select(0, token_of_pair)  # (T*k, H), grouped by expert
        out = torch.empty_like(xs)
        start = 0
        for expert, count in enumerate(counts):
            if count == 0:
                continue
            rows = slice(start, start + count)
            gate, up = linear(xs[rows], self.gate_up_proj[expert]).chunk(2, dim=-1)
            out[rows] = linear(self.act_fn(gate) * up, self.down_proj[expert])
            start += count
        # weight each pair (fp32 router weights promote the product), put pairs back in router order, sum a
        # token's k pairs in that precision and round once (as the reference's grouped path does)
        weighted = out * weights.reshape(-1).index_select(0, order).unsqueeze(-1)
        unsorted = torch.empty_like(weighted).index_copy_(0, order, weighted)
        return unsorted.view(t, k, -1).sum(dim=1).to(x.dtype)


class HunYuanMoEV1Moe(nn.Module):
    """Routed experts + shared MLP. Returns the output (B, L, H) and the router logits (B*L, E)."""

    def __init__(self, config: HunYuanMoEV1Config, layer_idx: int) -> None:
        super().__init__()
        self.gate = HunYuanMoEV1Gate(config, layer_idx)
        self.experts = HunYuanMoEV1Experts(config)
        self.shared_mlp = GatedMLP(config.hidden_size, config.intermediate_size, config.hidden_act)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, l, h = x.shape
        flat = x.reshape(-1, h)
        router_logits, weights, experts = self.gate(flat)
        routed = self.experts(flat, experts, weights).view(b, l, h)
        return routed + self.shared_mlp(x), router_logits

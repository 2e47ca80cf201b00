"""The HunYuan decoder shared by the VL text backbone and the Dense V1 / MoE V1 language models (one attention,
one RoPE, one MLP for all three; the MoE model only swaps the MLP for an MoE block).

Layer: ``h = h + Attn(input_layernorm(h))``, ``h = h + MLP(post_attention_layernorm(h))``.
Attention: GQA projections, RoPE (xD-RoPE when the config has ``mrope_section``), *then* per-head RMSNorm on q and
k (``query_layernorm`` / ``key_layernorm``), then the KV cache (it stores rotated, normed keys), then attention.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import HunYuanTextConfigBase
from ..engine.kv_cache import DynamicCache
from .attention import attend, causal_mask
from .layers import GatedMLP, Linear, RMSNorm
from .outputs import BaseModelOutputWithPast
from .rope import RotaryEmbedding, apply_rotary


class HunYuanAttention(nn.Module):
    def __init__(self, config: HunYuanTextConfigBase, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.rope_in_fp32 = config.rope_in_fp32
        h, bias = config.hidden_size, config.attention_bias
        self.q_proj = Linear(h, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = Linear(h, self.num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = Linear(h, self.num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = Linear(self.num_heads * self.head_dim, h, bias=bias)
        self.query_layernorm = RMSNorm(self.head_dim, eps=config.rms_norm_eps)
        self.key_layernorm = RMSNorm(self.head_dim, eps=config.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos_sin: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None,
                cache, implementation: str, need_weights: bool = False):
        b, l, _ = x.shape
        q = self.q_proj(x).view(b, l, -1, self.head_dim).transpose(1, 2)  # (B, H, L, d)
        k = self.k_proj(x).view(b, l, -1, self.head_dim).transpose(1, 2)  # (B, Hkv, L, d)
        v = self.v_proj(x).view(b, l, -1, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, k, *cos_sin, upcast=self.rope_in_fp32)
        q, k = self.query_layernorm(q), self.key_layernorm(k)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        out, weights = attend(q, k, v, mask=mask, causal=True, scale=self.scaling, implementation=implementation,
                              need_weights=need_weights)
        return self.o_proj(out), weights


class HunYuanDecoderLayer(nn.Module):
    def __init__(self, config: HunYuanTextConfigBase, layer_idx: int, mlp: nn.Module | None = None) -> None:
        super().__init__()
        self.self_attn = HunYuanAttention(config, layer_idx)
        self.mlp = mlp if mlp is not None else GatedMLP(config.hidden_size, config.intermediate_size,
                                                        config.hidden_act)
        self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, h, cos_sin, mask, cache, implementation, need_weights=False):
        attn_out, weights = self.self_attn(self.input_layernorm(h), cos_sin, mask, cache, implementation,
                                           need_weights)
        h = h + attn_out
        mlp_out, router_logits = self.mlp(self.post_attention_layernorm(h)), None
        if isinstance(mlp_out, tuple):  # an MoE block also returns its router logits
            mlp_out, router_logits = mlp_out
        return h + mlp_out, weights, router_logits


class HunYuanDecoder(nn.Module):
    """Embedding, decoder layers and final norm. ``position_ids`` may be (L,), (B, L) or (A, B, L).

    The Dense/MoE ``*Model`` classes are this decoder *and* a ``HunYuanPreTrainedModel`` (their parameters sit at
    the top level, as in transformers): they run ``HunYuanPreTrainedModel.__init__`` and then ``build``.
    """

    output_class = BaseModelOutputWithPast

    def __init__(self, config: HunYuanTextConfigBase | None = None) -> None:
        super().__init__()
        if config is not None:
            self.build(config)

    def build(self, config: HunYuanTextConfigBase) -> None:
        self.config = config
        pad = config.pad_token_id
        pad = pad if pad is not None and 0 <= pad < config.vocab_size else None  # legacy configs carry pad -1
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, pad)
        self.layers = nn.ModuleList(self._make_layer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = RotaryEmbedding(config.rope_parameters, config.head_dim, config.max_position_embeddings)

    def _make_layer(self, config: HunYuanTextConfigBase, layer_idx: int) -> HunYuanDecoderLayer:
        return HunYuanDecoderLayer(config, layer_idx)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache=None, output_attentions=False, output_hidden_states=False,
                output_router_logits=None, return_dict=True, **kwargs):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache()
        cache = past_key_values if use_cache or past_key_values is not None else None
        b, l, _ = inputs_embeds.shape
        past = cache.get_seq_length() if cache is not None else 0
        position_ids = self._axis_positions(position_ids, b, l, past, inputs_embeds.device)
        mask = causal_mask(attention_mask, l, past + l, inputs_embeds.device)
        cos_sin = self.rotary_emb(position_ids, inputs_embeds.dtype)
        implementation = getattr(self.config, "_attn_implementation", None) or "sdpa"

        if output_router_logits is None:
            output_router_logits = getattr(self.config, "output_router_logits", False)
        h = inputs_embeds
        all_hidden, all_attn, all_router = [], [], []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(h)
            h, weights, router_logits = layer(h, cos_sin, mask, cache, implementation, output_attentions)
            if output_attentions:
                all_attn.append(weights)
            if router_logits is not None:
                all_router.append(router_logits)
        h = self.norm(h)
        if output_hidden_states:
            all_hidden.append(h)
        fields = dict(last_hidden_state=h, past_key_values=cache if use_cache else None,
                      hidden_states=tuple(all_hidden) if output_hidden_states else None,
                      attentions=tuple(all_attn) if output_attentions else None)
        if output_router_logits and all_router:
            fields["router_logits"] = tuple(all_router)
        out = self.output_class(**fields)
        return out if return_dict else out.to_tuple()

    def _axis_positions(self, position_ids, b, l, past, device) -> torch.Tensor:
        """Normalise positions to (A, B, L) with A = number of rope axes."""
        a = self.rotary_emb.num_axes
        if position_ids is None:
            return (torch.arange(l, device=device) + past).view(1, 1, l).expand(a, b, l)
        if position_ids.ndim == 1:
            position_ids = position_ids.view(1, -1).expand(b, -1)
        if position_ids.ndim == 2:
            return position_ids[None].expand(a, -1, -1)
        if position_ids.ndim != 3 or position_ids.shape[0] != a:
            raise ValueError(f"Expected position_ids of shape (B, L) or ({a}, B, L) for {a} rope axes, got "
                             f"{tuple(position_ids.shape)}")
        return position_ids

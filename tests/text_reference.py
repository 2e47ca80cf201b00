"""Tiny random HunYuanDenseV1 / HunYuanMoEV1 models built with the transformers reference (test-only oracle).

Every parameter is perturbed after construction so norms and routers carry information.
"""

from __future__ import annotations

import copy

import torch

NTK = {"rope_type": "dynamic", "alpha": 1000.0, "factor": 1.0, "rope_theta": 10000.0}


def text_config(moe: bool, *, topk=2, experts=4, tie=False, kv_heads=2, rope=None, layers=2) -> dict:
    config = dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=kv_heads, head_dim=16, pad_token_id=0, bos_token_id=1,
                  eos_token_id=2, tie_word_embeddings=tie, max_position_embeddings=256,
                  rope_parameters=copy.deepcopy(rope or {"rope_type": "default", "rope_theta": 10000.0}))
    if moe:
        config.update(num_experts=experts, moe_topk=topk)
    return config


# name -> (family, config)
TEXT_VARIANTS = {
    "dense-gqa-untied": ("dense", text_config(False)),
    "dense-mha-tied-ntk": ("dense", text_config(False, tie=True, kv_heads=4, rope=NTK)),
    "moe-top1": ("moe", text_config(True, topk=1)),
    "moe-top2-ntk": ("moe", text_config(True, topk=2, rope=NTK)),
    "moe-per-layer-topk-tied": ("moe", text_config(True, topk=[1, 3], tie=True)),
}


def reference_class(family: str, head: str):
    import transformers

    prefix = {"dense": "HunYuanDenseV1", "moe": "HunYuanMoEV1"}[family]
    return getattr(transformers, prefix + head), getattr(transformers, prefix + "Config")


def build_text_reference(family: str, config: dict, head: str = "ForCausalLM", seed: int = 0, **extra):
    model_class, config_class = reference_class(family, head)
    torch.manual_seed(seed)
    model = model_class(config_class(**copy.deepcopy(config), **extra))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def padded_batch(seed: int = 0, lengths=(9, 6, 3), side: str = "left", vocab: int = 256) -> dict:
    """Random prompts (ids >= 3, so none is pad 0 / bos / eos) padded with 0 on ``side``."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        span = slice(width - n, width) if side == "left" else slice(0, n)
        ids[row, span] = torch.randint(3, vocab, (n,), generator=g)
        mask[row, span] = 1
    return {"input_ids": ids, "attention_mask": mask}

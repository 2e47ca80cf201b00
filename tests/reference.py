"""Tiny random HunYuanVL checkpoints built with the transformers reference (the numerical oracle, test-only).

Every reference parameter is perturbed with noise after construction so norms, biases and merger vectors all
carry information (a wrong bias or a skipped norm weight shows up in the logits).
"""

from __future__ import annotations

import copy

import torch

IMAGE, START, END = 5, 6, 7
AXES_SECTIONS = {3: [3, 3, 2], 4: [2, 2, 2, 2]}


def tiny_config(axes: int = 4, kv_heads: int = 2, tie: bool = True, rope: str = "ntk_alpha",
                pos_embed_resize: str = "transformers") -> dict:
    rope_parameters = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": AXES_SECTIONS[axes]}
    if rope == "ntk_alpha":
        rope_parameters.update(rope_type="dynamic", alpha=1000.0, factor=1.0)
    text = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=kv_heads, head_dim=16, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                tie_word_embeddings=tie, max_position_embeddings=512, rope_parameters=rope_parameters)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, patch_size=16,
                  spatial_merge_size=2, max_image_size=128, pos_embed_resize=pos_embed_resize)
    return dict(text_config=text, vision_config=vision, image_token_id=IMAGE, im_start_id=START, im_end_id=END,
                tie_word_embeddings=tie)


VARIANTS = {
    "4axes-gqa-tied-ntk": tiny_config(),
    "3axes-gqa-tied-ntk": tiny_config(axes=3),
    "4axes-mha-untied-default": tiny_config(kv_heads=4, tie=False, rope="default"),
    "3axes-mha-tied-default": tiny_config(axes=3, kv_heads=4, rope="default"),
}


def build_reference(config: dict, attn: str = "eager", seed: int = 0):
    from transformers import HunYuanVLConfig, HunYuanVLForConditionalGeneration

    torch.manual_seed(seed)
    model = HunYuanVLForConditionalGeneration(HunYuanVLConfig(**copy.deepcopy(config)))
    model.set_attn_implementation(attn)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def image_span(grid: list[int], merge: int = 2) -> list[int]:
    """Prompt ids of one image as the processor writes them: start, N image tokens, end."""
    _, gh, gw = grid
    return [START] + [IMAGE] * ((gh // merge) * (gw // merge + 1) + 2) + [END]


def make_prompt(grids: list[list[int]], seed: int = 0, text_len: int = 3) -> tuple[list[int], torch.Tensor | None]:
    """A prompt with text around each image, and random pixel values for the given grids."""
    g = torch.Generator().manual_seed(seed)
    ids = [1] + torch.randint(10, 250, (text_len,), generator=g).tolist()
    for grid in grids:
        ids += image_span(grid) + torch.randint(10, 250, (text_len,), generator=g).tolist()
    pixels = torch.randn(sum(h * w for _, h, w in grids), 768, generator=g) if grids else None
    return ids, pixels


def model_inputs(ids: list[int], pixels: torch.Tensor | None, grids: list[list[int]]) -> dict:
    input_ids = torch.tensor([ids])
    out = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), mm_token_type_ids=(input_ids == IMAGE)
               .int())
    if grids:
        out.update(pixel_values=pixels, image_grid_thw=torch.tensor(grids))
    return out


def left_pad_batch(rows: list[tuple[list[int], torch.Tensor | None, list[list[int]]]]) -> dict:
    """Left-pad several prompts into one batch (pad id 0), concatenating their images in row order."""
    width = max(len(ids) for ids, _, _ in rows)
    input_ids = torch.tensor([[0] * (width - len(ids)) + ids for ids, _, _ in rows])
    attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids, _, _ in rows])
    grids = [g for _, _, gs in rows for g in gs]
    out = dict(input_ids=input_ids, attention_mask=attention_mask, mm_token_type_ids=(input_ids == IMAGE).int())
    if grids:
        out.update(pixel_values=torch.cat([p for _, p, gs in rows if gs]), image_grid_thw=torch.tensor(grids))
    return out

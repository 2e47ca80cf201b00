"""HunYuanVL vision tower: patch embedding -> 27 SigLIP-style blocks -> per-image patch merger (spec section 4).

All images of a request are packed into one sequence of patches, (sum gh*gw, 768); attention is block-diagonal per
image (``attend_segments``), never a dense mask over every patch of every image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import HunYuanVLVisionConfig
from .attention import attend_segments
from .layers import ACT_FNS, Linear, RMSNorm, conv2d, linear
from .outputs import BaseModelOutputWithPooling


class VisionEmbeddings(nn.Module):
    def __init__(self, config: HunYuanVLVisionConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embedding = nn.Conv2d(config.num_channels, config.hidden_size, kernel_size=config.patch_size,
                                         stride=config.patch_size, bias=True)
        self.edge = config.position_grid_edge
        # row 0 is an unused "cls" slot; rows 1.. are the E x E learned grid in raster order
        self.position_embedding = nn.Embedding(self.edge**2 + 1, config.hidden_size)

    def resized_positions(self, gh: int, gw: int) -> torch.Tensor:
        """Learned grid resized to (gh, gw) in fp32, flattened row-major -> (gh*gw, Hv)."""
        grid = self.position_embedding.weight[1:].reshape(1, self.edge, self.edge, -1).permute(0, 3, 1, 2).float()
        if self.config.pos_embed_resize == "original":
            # the formula the model was trained with: output size floor(E * (g + 0.1) / E) = g, but the sampling
            # coordinates follow the +0.1 scale (HunYuan's code, vLLM, llama.cpp); spec 13.1. A side whose size
            # equals E is copied unchanged: that is what F.interpolate does, so the original code does it too.
            scale = ((gh + 0.1) / self.edge, (gw + 0.1) / self.edge)
            grid = F.interpolate(grid, scale_factor=scale, mode=self.config.interpolate_mode, align_corners=False)
        else:  # "transformers": transformers 5.23 resizes to the exact size
            grid = F.interpolate(grid, size=(gh, gw), mode=self.config.interpolate_mode, align_corners=False)
        return grid.permute(0, 2, 3, 1).reshape(gh * gw, -1)

    def forward(self, pixel_values: torch.Tensor, grid_thw: list[list[int]]) -> torch.Tensor:
        # pixel_values: (Np, C*p*p) -> conv over each (C, p, p) patch == a linear map on the flat vector
        p, c = self.config.patch_size, self.config.num_channels
        w = self.patch_embedding.weight
        x = linear(pixel_values.to(w.dtype), w.reshape(w.shape[0], c * p * p), self.patch_embedding.bias)
        pos = torch.cat([self.resized_positions(h, wd).repeat(t, 1) for t, h, wd in grid_thw])
        return x + pos.to(x.dtype)  # (Np, Hv)


class VisionAttention(nn.Module):
    def __init__(self, config: HunYuanVLVisionConfig) -> None:
        super().__init__()
        hv = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = hv // self.num_heads
        self.scaling = self.head_dim**-0.5
        self.q_proj = Linear(hv, hv, bias=True)
        self.k_proj = Linear(hv, hv, bias=True)
        self.v_proj = Linear(hv, hv, bias=True)
        self.o_proj = Linear(hv, hv, bias=True)

    def forward(self, x: torch.Tensor, lengths: list[int], implementation: str) -> torch.Tensor:
        n = x.shape[0]
        q, k, v = (proj(x).view(1, n, self.num_heads, self.head_dim).transpose(1, 2)  # (1, heads, Np, hd)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        out = attend_segments(q, k, v, lengths, scale=self.scaling, implementation=implementation)
        return self.o_proj(out[0])


class VisionMLP(nn.Module):
    def __init__(self, config: HunYuanVLVisionConfig) -> None:
        super().__init__()
        self.fc1 = Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = Linear(config.intermediate_size, config.hidden_size)
        self.act = ACT_FNS[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class VisionBlock(nn.Module):
    def __init__(self, config: HunYuanVLVisionConfig) -> None:
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.self_attn = VisionAttention(config)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mlp = VisionMLP(config)

    def forward(self, x: torch.Tensor, lengths: list[int], implementation: str) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x), lengths, implementation)
        return x + self.mlp(self.layer_norm2(x))


class PatchMerger(nn.Module):
    """(gh*gw, Hv) patches of one image -> mh*(mw+1)+2 text-space tokens:
    RMSNorm, 2x2 conv (Hv->2Hv), GELU, 1x1 conv (2Hv->4Hv), a learned newline column after each row, linear to
    the text width, learned begin/end tokens around it, RMSNorm. (``image_sep`` is in checkpoints, never used.)"""

    learned_vectors = ("image_newline", "image_begin", "image_end", "image_sep")

    def __init__(self, config: HunYuanVLVisionConfig) -> None:
        super().__init__()
        hv, ht, m = config.hidden_size, config.text_hidden_size, config.spatial_merge_size
        self.proj_conv = nn.Conv2d(hv, 2 * hv, kernel_size=m, stride=m)
        self.act = ACT_FNS[config.hidden_act]
        self.proj_out = nn.Conv2d(2 * hv, 4 * hv, kernel_size=1)
        self.mlp = Linear(4 * hv, ht)
        std = ht**-0.5
        self.image_newline = nn.Parameter(torch.randn(4 * hv) * std)
        self.image_begin = nn.Parameter(torch.randn(ht) * std)
        self.image_end = nn.Parameter(torch.randn(ht) * std)
        self.image_sep = nn.Parameter(torch.randn(ht) * std)
        self.before_rms = RMSNorm(hv, eps=config.rms_norm_eps)
        self.after_rms = RMSNorm(ht, eps=config.rms_norm_eps)

    def forward(self, x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        x = self.before_rms(x)
        dtype = x.dtype
        x = x.T.reshape(1, -1, gh, gw)  # (1, Hv, gh, gw), raster order
        x = conv2d(self.act(conv2d(x, self.proj_conv)), self.proj_out)  # (1, 4Hv, mh, mw)
        _, c, mh, mw = x.shape
        newline = self.image_newline.view(1, c, 1, 1).expand(1, c, mh, 1).to(dtype)
        x = torch.cat([x, newline], dim=-1).reshape(c, mh * (mw + 1)).T  # (mh*(mw+1), 4Hv)
        x = self.mlp(x)
        x = torch.cat([self.image_begin[None].to(dtype), x, self.image_end[None].to(dtype)])
        return self.after_rms(x)  # (mh*(mw+1)+2, H_text)


class HunYuanVLVisionTransformer(nn.Module):
    """``forward(pixel_values (Np, 768), grid_thw (n_img, 3))`` -> ``BaseModelOutputWithPooling`` with
    ``last_hidden_state`` (1, Np, Hv) and ``pooler_output`` (1, sum N_i, H_text)."""

    def __init__(self, config: HunYuanVLVisionConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = VisionEmbeddings(config)
        self.layers = nn.ModuleList(VisionBlock(config) for _ in range(config.num_hidden_layers))
        self.patch_merger = PatchMerger(config)

    @property
    def dtype(self) -> torch.dtype:
        return self.embeddings.patch_embedding.weight.dtype

    def forward(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor, output_hidden_states: bool = False,
                return_dict: bool = True, **kwargs) -> BaseModelOutputWithPooling:
        grids = [list(map(int, row)) for row in grid_thw.tolist()]
        self._check_inputs(pixel_values, grids)
        implementation = getattr(self.config, "_attn_implementation", None) or "sdpa"
        lengths = [h * w for t, h, w in grids for _ in range(t)]  # attention segments: one per frame
        x = self.embeddings(pixel_values, grids)
        hidden = []
        for layer in self.layers:
            if output_hidden_states:
                hidden.append(x[None])
            x = layer(x, lengths, implementation)
        if output_hidden_states:
            hidden.append(x[None])
        merged = [self.patch_merger(item, h, w) for (t, h, w), item in zip(grids, x.split([t * h * w for t, h, w
                                                                                           in grids]))]
        out = BaseModelOutputWithPooling(last_hidden_state=x[None], pooler_output=torch.cat(merged)[None],
                                         hidden_states=tuple(hidden) if output_hidden_states else None)
        return out if return_dict else out.to_tuple()

    def _check_inputs(self, pixel_values: torch.Tensor, grids: list[list[int]]) -> None:
        c, p, m = self.config.num_channels, self.config.patch_size, self.config.spatial_merge_size
        if pixel_values.ndim != 2 or pixel_values.shape[1] != c * p * p:
            raise ValueError(f"pixel_values must have shape (num_patches, {c * p * p}), got "
                             f"{tuple(pixel_values.shape)}")
        expected = sum(t * h * w for t, h, w in grids)
        if pixel_values.shape[0] != expected:
            raise ValueError(f"pixel_values has {pixel_values.shape[0]} patches but image_grid_thw {grids} "
                             f"describes {expected}")
        for t, h, w in grids:
            if t != 1 or h < 2 or w < 2 or h % m or w % m:
                raise ValueError(f"image_grid_thw row {[t, h, w]} is invalid: expected t == 1 and h, w >= 2, "
                                 f"multiples of spatial_merge_size={m}")

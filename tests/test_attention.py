"""The attention backends agree, masks behave, and the vision tower never attends across images densely."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from hunyuan import HunYuanVLConfig, HunYuanVLForConditionalGeneration, HunYuanVLVisionConfig
from hunyuan.modeling.attention import attend, attend_segments, causal_mask, resolve_implementation
from hunyuan.modeling.vision import HunYuanVLVisionTransformer, VisionEmbeddings
from reference import VARIANTS, left_pad_batch, make_prompt


def qkv(b=2, h=4, kv=2, lq=7, lk=7, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, h, lq, d, generator=g), torch.randn(b, kv, lk, d, generator=g),
            torch.randn(b, kv, lk, d, generator=g))


def naive(q, k, v, allowed):
    """Textbook attention: softmax over allowed keys only."""
    k = k.repeat_interleave(q.shape[1] // k.shape[1], 1)
    v = v.repeat_interleave(q.shape[1] // v.shape[1], 1)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~allowed, float("-inf"))
    out = torch.softmax(scores, -1) @ v
    return out.transpose(1, 2).flatten(2)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_causal_prefill_and_decode_against_textbook(implementation):
    q, k, v = qkv()
    allowed = torch.ones(7, 7, dtype=torch.bool).tril()
    out, _ = attend(q, k, v, mask=causal_mask(None, 7, 7, q.device), causal=True, scale=0.25,
                    implementation=implementation)
    assert torch.allclose(out, naive(q, k, v, allowed), atol=1e-5)
    q1 = q[:, :, -1:]  # one decode step over a 7-key cache sees every key
    out, _ = attend(q1, k, v, mask=causal_mask(None, 1, 7, q.device), causal=True, scale=0.25,
                    implementation=implementation)
    assert torch.allclose(out, naive(q1, k, v, torch.ones(1, 7, dtype=torch.bool)), atol=1e-5)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_left_padding_and_chunked_prefill(implementation):
    q, k, v = qkv(lq=3, lk=7)
    attention_mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]])
    mask = causal_mask(attention_mask, 3, 7, q.device)
    out, _ = attend(q, k, v, mask=mask, causal=True, scale=0.25, implementation=implementation)
    allowed = torch.ones(3, 7, dtype=torch.bool).tril(4)[None, None] & attention_mask[:, None, None].bool()
    assert torch.allclose(out, naive(q, k, v, allowed), atol=1e-5)


def test_fully_padded_query_rows_stay_finite():
    q, k, v = qkv()
    attention_mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [1] * 7])
    for implementation in ("eager", "sdpa"):
        out, _ = attend(q, k, v, mask=causal_mask(attention_mask, 7, 7, q.device), causal=True, scale=0.25,
                        implementation=implementation)
        assert torch.isfinite(out).all()


def test_eager_weights_and_sdpa_refuses_them():
    q, k, v = qkv()
    _, weights = attend(q, k, v, mask=None, causal=True, scale=0.25, implementation="eager", need_weights=True)
    assert weights.shape == (2, 4, 7, 7) and torch.allclose(weights.sum(-1), torch.ones(2, 4, 7))
    assert (weights.triu(1) == 0).all()
    with pytest.raises(ValueError, match="attn_implementation='eager'"):
        attend(q, k, v, mask=None, causal=True, scale=0.25, implementation="sdpa", need_weights=True)
    with pytest.raises(ValueError, match="'flash_attention_9'"):
        resolve_implementation("flash_attention_9")


def test_segments_are_block_diagonal():
    q, k, v = qkv(b=1, h=2, kv=2, lq=10, lk=10)
    lengths = [4, 6]
    allowed = torch.zeros(10, 10, dtype=torch.bool)
    allowed[:4, :4] = allowed[4:, 4:] = True
    expected = naive(q, k, v, allowed)
    for implementation in ("eager", "sdpa"):
        got = attend_segments(q, k, v, lengths, scale=0.25, implementation=implementation)
        assert torch.allclose(got, expected, atol=1e-5)


class LargestSquare(TorchDispatchMode):
    """Records the largest trailing (n, n) block of any tensor produced by any op."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.ndim >= 2 and t.shape[-1] == t.shape[-2]:
                self.largest = max(self.largest, t.shape[-1])
        return out


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_vision_tower_never_builds_a_mask_over_all_patches(implementation):
    config = HunYuanVLVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                                   max_image_size=512, text_hidden_size=64)
    config._attn_implementation = implementation
    tower = HunYuanVLVisionTransformer(config).eval()
    grids = torch.tensor([[1, 32, 32], [1, 32, 30]])  # 1024 + 960 patches
    with torch.no_grad(), LargestSquare() as probe:
        tower(torch.randn(1984, 768), grids)
    assert probe.largest < 1984  # nothing spans both images
    assert probe.largest <= 1024


def test_full_model_sdpa_equals_eager():
    torch.manual_seed(0)
    config = HunYuanVLConfig(**VARIANTS["4axes-gqa-tied-ntk"])
    eager = HunYuanVLForConditionalGeneration(config, attn_implementation="eager").eval()
    sdpa = HunYuanVLForConditionalGeneration(HunYuanVLConfig(**VARIANTS["4axes-gqa-tied-ntk"]),
                                             attn_implementation="sdpa").eval()
    sdpa.load_state_dict(eager.state_dict())
    batch = left_pad_batch([(*make_prompt([[1, 4, 4]], seed=1), [[1, 4, 4]]),
                            (*make_prompt([[1, 4, 2]], seed=2, text_len=1), [[1, 4, 2]])])
    with torch.no_grad():
        a, b = eager(**batch).logits, sdpa(**batch).logits
    valid = batch["attention_mask"].bool()
    assert (a[valid] - b[valid]).abs().max() <= 1e-5


def _bilinear_reference(grid: np.ndarray, out_h: int, out_w: int, scale_h: float, scale_w: float) -> np.ndarray:
    """Bilinear resampling with half-pixel centres, sampling source coordinate (dst + 0.5) / scale - 0.5."""
    e_h, e_w = grid.shape[:2]

    def taps(n_out, n_in, scale):
        src = np.maximum((np.arange(n_out) + 0.5) / scale - 0.5, 0.0)
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    y0, y1, wy = taps(out_h, e_h, scale_h)
    x0, x1, wx = taps(out_w, e_w, scale_w)
    top = grid[y0][:, x0] * (1 - wx)[None, :, None] + grid[y0][:, x1] * wx[None, :, None]
    bottom = grid[y1][:, x0] * (1 - wx)[None, :, None] + grid[y1][:, x1] * wx[None, :, None]
    return top * (1 - wy)[:, None, None] + bottom * wy[:, None, None]


def _original_scale(g: int, e: int) -> float:
    # a side whose size does not change is copied (PyTorch's interpolate does this, so the original code does too)
    return 1.0 if g == e else (g + 0.1) / e


@pytest.mark.parametrize("gh,gw", [(4, 6), (3, 5), (16, 2), (8, 8), (8, 5), (12, 8)])
def test_default_position_resize_is_the_original_formula(gh, gw):
    """Spec 13.1: by default the learned E x E grid is sampled at scale (g + 0.1) / E, as the HunYuan team's own
    code does; 'transformers' samples at g / E. Both checked against an independent bilinear implementation.
    (Here E = 128 / 16 = 8, so the (8, *) cases pin the unchanged-side rule.)"""
    config = HunYuanVLVisionConfig(hidden_size=8, num_attention_heads=2, max_image_size=128, text_hidden_size=16)
    assert config.pos_embed_resize == "original"
    torch.manual_seed(0)
    emb = VisionEmbeddings(config)
    torch.nn.init.normal_(emb.position_embedding.weight)
    e = config.position_grid_edge
    grid = emb.position_embedding.weight[1:].detach().reshape(e, e, -1).double().numpy()
    got = emb.resized_positions(gh, gw).detach().reshape(gh, gw, -1).double().numpy()
    expected = _bilinear_reference(grid, gh, gw, _original_scale(gh, e), _original_scale(gw, e))
    assert np.abs(got - expected).max() < 1e-5
    config.pos_embed_resize = "transformers"
    got_tf = emb.resized_positions(gh, gw).detach().reshape(gh, gw, -1).double().numpy()
    assert np.abs(got_tf - _bilinear_reference(grid, gh, gw, gh / e, gw / e)).max() < 1e-5
    if (gh, gw) != (e, e):
        assert np.abs(got_tf - got).max() > 1e-3  # the two modes really differ


def test_half_precision_cpu_upcast_policy(monkeypatch):
    """On CPUs without half-precision matmul units, many-row bf16 products run in fp32 and round back (layers.py);
    the result must match torch's own bf16 kernels to bf16 rounding, and single rows keep the bf16 GEMV path."""
    from hunyuan.modeling import layers


    torch.manual_seed(0)
    x, w, b = torch.randn(64, 96, dtype=torch.bfloat16), torch.randn(80, 96, dtype=torch.bfloat16), \
        torch.randn(80, dtype=torch.bfloat16)
    q, k = torch.randn(1, 4, 1, 16, dtype=torch.bfloat16), torch.randn(1, 2, 40, 16, dtype=torch.bfloat16)
    results = {}
    for forced in ("0", "1"):
        monkeypatch.setenv("HUNYUAN_CPU_UPCAST", forced)
        layers.cpu_lacks_half_matmul.cache_clear()
        assert layers.compute_dtype(x, 64) == (torch.float32 if forced == "1" else torch.bfloat16)
        assert layers.compute_dtype(x, layers.UPCAST_MIN_ROWS - 1) == torch.bfloat16
        out = layers.linear(x, w, b)
        att, _ = attend(q, k, k, mask=None, causal=True, scale=0.25, implementation="sdpa")
        assert out.dtype == att.dtype == torch.bfloat16
        results[forced] = (out.float(), att.float())
    layers.cpu_lacks_half_matmul.cache_clear()
    exact = F.linear(x.float(), w.float(), b.float())
    for out, att in results.values():
        assert ((out - exact).abs() <= exact.abs() * 2**-7 + 1e-2).all()
    assert torch.allclose(results["0"][1], results["1"][1], atol=2e-2)

"""Our compiled CPU kernels (hunyuan/kernels): the small-M linear and the decode attention against float64 math
and PyTorch's own kernels, every shape edge (k tails, partial blocks, strided rows, GQA groups, masks), the routing
in layers/attention, and the fallback when the kernels are off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from hunyuan import kernels
from hunyuan.modeling import layers
from hunyuan.modeling.attention import attend

pytestmark = pytest.mark.skipif(not kernels.available(), reason="needs an x86-64 CPU with AVX2/FMA and gcc")

DTYPES = (torch.float32, torch.bfloat16)


def _linear_bound(x64, w64):
    """A bound on fp32 summation error: K * eps32 * sum |x| |w| per output."""
    return x64.shape[-1] * 2.0**-23 * (x64.abs() @ w64.abs().T) + 1e-30


@pytest.mark.parametrize("w_dtype", DTYPES)
@pytest.mark.parametrize("x_dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 15, 16, 17, 40, 1030])
def test_small_m_linear_matches_float64(w_dtype, x_dtype, k):
    g = torch.Generator().manual_seed(k)
    for m in (1, 2, 3, 4, 7, 15):
        for n in (1, 5, 33):
            x = torch.randn(m, k, generator=g).to(x_dtype)
            w = torch.randn(n, k, generator=g).to(w_dtype)
            y = kernels.small_m_linear(x, w)
            assert y.dtype == x_dtype and y.shape == (m, n)
            ref = x.double() @ w.double().T
            bound = _linear_bound(x.double(), w.double())
            if x_dtype == torch.bfloat16:  # one rounding of the fp32 sum to bf16: half an ulp (2^-8 relative)
                bound = bound + ref.abs() * 2.0**-8
            assert ((y.double() - ref).abs() <= bound * 1.01).all(), (m, n, k)


def test_small_m_linear_rounds_like_pytorch():
    """A bf16 result is the fp32 sum rounded to nearest even, like F.linear's: compare on sums exact in fp32."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-8, 8, (5, 64), generator=g).to(torch.bfloat16)
    w = torch.randint(-8, 8, (300, 64), generator=g).to(torch.bfloat16) / 64  # products and sums are exact in fp32
    x = x + 1 / 128  # sums need more than bf16's 8 bits, so rounding matters
    assert torch.equal(kernels.small_m_linear(x, w), F.linear(x, w))


def test_small_m_linear_strided_rows_batch_dims_and_bias():
    g = torch.Generator().manual_seed(1)
    wide = torch.randn(2, 3, 200, generator=g)
    x = wide[..., 7:135]  # rows with stride 200, 3-D
    w = torch.randn(70, 128, generator=g)
    bias = torch.randn(70, generator=g)
    y = kernels.small_m_linear(x, w, bias)
    assert y.shape == (2, 3, 70)
    torch.testing.assert_close(y, F.linear(x, w, bias), rtol=1e-5, atol=1e-5)
    # a weight that is a row slice of a bigger matrix (unit stride along k, row stride > K)
    big = torch.randn(70, 300, generator=g).to(torch.bfloat16)
    xs = torch.randn(4, 128, generator=g).to(torch.bfloat16)
    torch.testing.assert_close(kernels.small_m_linear(xs, big[:, 100:228]), F.linear(xs, big[:, 100:228]),
                               rtol=2**-7, atol=1e-2)


def test_small_m_linear_propagates_nan_and_inf():
    x = torch.ones(2, 32)
    x[0, 3] = float("nan")
    x[1, 5] = float("inf")
    w = torch.ones(4, 32).to(torch.bfloat16)
    y = kernels.small_m_linear(x.to(torch.bfloat16), w)
    assert y[0].isnan().all() and (y[1] == float("inf")).all()


def test_linear_routes_by_rows_and_autograd():
    w = torch.randn(8, 16, requires_grad=True)
    x = torch.randn(15, 16)
    with torch.no_grad():
        assert kernels.applies(x, w, 15)
        assert not kernels.applies(torch.randn(16, 16), w, 16)  # 16+ rows: the vendor GEMM
        assert not kernels.applies(x.half(), w, 15)  # fp16 is not ours
        torch.testing.assert_close(layers.linear(x, w), F.linear(x, w), rtol=1e-5, atol=1e-5)
    assert not kernels.applies(x, w, 15)  # grad enabled and the weight needs it: PyTorch keeps autograd
    out = layers.linear(x, w)
    out.sum().backward()
    assert w.grad is not None


def _sdpa64(q, k, v, mask, scale):
    out = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=mask, scale=scale,
                                         enable_gqa=True)
    b, h, _, d = out.shape
    return out.transpose(1, 2).reshape(b, 1, h * d)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("heads,kv_heads,dim", [(16, 8, 128), (4, 4, 64), (6, 2, 20), (16, 1, 8)])
def test_decode_attention_matches_float64(dtype, heads, kv_heads, dim):
    g = torch.Generator().manual_seed(heads * dim)
    b, s, max_len = 3, 37, 50
    cache_k = torch.randn(b, kv_heads, max_len, dim, generator=g).to(dtype)  # a StaticCache-like buffer
    cache_v = torch.randn(b, kv_heads, max_len, dim, generator=g).to(dtype)
    k, v = cache_k[:, :, :s], cache_v[:, :, :s]
    q = torch.randn(b, 1, heads, dim, generator=g).to(dtype).transpose(1, 2)  # the projection's layout
    row_mask = torch.rand(b, 1, 1, s, generator=g) > 0.3
    row_mask[..., -1] = True
    for mask in (None, row_mask, row_mask[:1]):
        out = kernels.decode_attention(q, k, v, mask, dim**-0.5)
        assert out.dtype == dtype and out.shape == (b, 1, heads * dim)
        ref = _sdpa64(q, k, v, mask, dim**-0.5)
        tol = 1e-5 if dtype == torch.float32 else 2**-8 * 2
        torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)


def test_attend_uses_the_kernel_for_one_query_and_matches_sdpa():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(2, 8, 1, 32, generator=g)
    k, v = torch.randn(2, 4, 9, 32, generator=g), torch.randn(2, 4, 9, 32, generator=g)
    mask = torch.ones(2, 1, 1, 9, dtype=torch.bool)
    mask[0, ..., :4] = False
    assert kernels.attention_applies(q, k, v, mask)
    out, _ = attend(q, k, v, mask=mask, causal=True, scale=0.2, implementation="sdpa")
    eager, _ = attend(q, k, v, mask=mask, causal=True, scale=0.2, implementation="eager")
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-5)
    assert not kernels.attention_applies(torch.randn(2, 8, 2, 32), k, v, None)  # two queries: SDPA


def test_decode_attention_rejects_a_row_with_no_key():
    q, k = torch.randn(1, 2, 1, 16), torch.randn(1, 2, 5, 16)
    with pytest.raises(ValueError, match="no key it may attend to"):
        kernels.decode_attention(q, k, k, torch.zeros(1, 1, 1, 5, dtype=torch.bool), 0.25)


def test_kernels_off_falls_back_to_pytorch(tmp_path):
    """HUNYUAN_CPU_KERNELS=0: nothing is built or loaded, and the same products come from PyTorch."""
    code = ("import torch; from hunyuan import kernels; from hunyuan.modeling import layers\n"
            "assert not kernels.available()\n"
            "x, w = torch.randn(3, 40), torch.randn(9, 40)\n"
            "assert torch.equal(layers.linear(x, w), torch.nn.functional.linear(x, w))\n"
            "print('fallback ok')")
    env = {**os.environ, "HUNYUAN_CPU_KERNELS": "0", "HUNYUAN_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "fallback ok" in done.stdout
    assert not (tmp_path / "kernels").exists()


def test_build_reports_a_missing_compiler(tmp_path):
    """No compiler: the kernels are reported unavailable (the model still runs on PyTorch's kernels)."""
    code = ("import logging; logging.basicConfig(level=logging.INFO)\n"
            "from hunyuan import kernels\nprint(kernels.available())")
    env = {**os.environ, "CC": "no-such-cc", "HUNYUAN_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert "no C compiler 'no-such-cc'" in done.stderr

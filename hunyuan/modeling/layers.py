"""Small building blocks shared by the text and vision stacks, and the one place that decides the compute dtype
of matrix products on the CPU.

CPUs without native bf16/fp16 matrix instructions (no AVX512-BF16 / AMX: e.g. AVX2-only x86 machines) run PyTorch's
half-precision GEMMs ~8x slower than fp32 ones (measured: bf16 ~20 GFLOP/s vs fp32 ~170 GFLOP/s on 2 cores), except
for single-row GEMVs, which have a fast path. So on such CPUs a half-precision product over many rows (vision tower,
prefill) is computed in fp32 and rounded back: the same result a bf16 GEMM gives (it accumulates in fp32 too),
up to summation order. Weights stay in their dtype; only a transient fp32 copy of one matrix exists at a time.
``HUNYUAN_CPU_UPCAST=0|1`` forces the choice.

Products with few rows (decode steps: 1..15 rows) go to our own memory-bound kernel instead (``hunyuan.kernels``,
docs/cpu-kernels.md) where it is built; it streams each weight once for all rows, in bf16 or fp32.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch import nn

from .. import kernels

# below this many rows the half-precision kernels are as fast (GEMV fast path) and avoid converting the weight
UPCAST_MIN_ROWS = 16

ACT_FNS = {
    "silu": F.silu,
    "gelu": F.gelu,  # exact erf GELU, as the vision tower uses
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


@functools.lru_cache(maxsize=1)
def cpu_lacks_half_matmul() -> bool:
    """True when this CPU has no native bf16/fp16 matrix instructions (see the module docstring)."""
    forced = os.environ.get("HUNYUAN_CPU_UPCAST")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:  # not Linux: trust the vendor kernels
        return False
    return bool(flags) and not {"avx512_bf16", "amx_bf16", "avx512_fp16"} & set(flags)


def compute_dtype(x: torch.Tensor, rows: int) -> torch.dtype:
    """The dtype to multiply ``x`` in when the product has ``rows`` output rows."""
    if x.device.type == "cpu" and x.dtype in (torch.bfloat16, torch.float16) and rows >= UPCAST_MIN_ROWS \
            and cpu_lacks_half_matmul():
        return torch.float32
    return x.dtype


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` returning ``x``'s dtype: on our small-M CPU kernel for decode-sized products (``kernels``), else
    in the compute dtype ``compute_dtype`` picks."""
    rows = x.numel() // max(x.shape[-1], 1)
    if kernels.applies(x, weight, rows):
        return kernels.small_m_linear(x, weight, bias)
    dtype = compute_dtype(x, rows)
    if dtype == x.dtype:
        return F.linear(x, weight, bias)
    bias = bias.to(dtype) if bias is not None else None
    return F.linear(x.to(dtype), weight.to(dtype), bias).to(x.dtype)


def conv2d(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` for x (1, C, H, W) in the compute dtype ``compute_dtype`` picks, returning ``x``'s dtype."""
    dtype = compute_dtype(x, x.shape[-1] * x.shape[-2])
    bias = conv.bias.to(dtype) if conv.bias is not None else None
    return F.conv2d(x.to(dtype), conv.weight.to(dtype), bias, conv.stride, conv.padding).to(x.dtype)


class Linear(nn.Linear):
    """``nn.Linear`` whose product runs in the compute dtype picked by ``linear``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


class RMSNorm(nn.Module):
    """T5/Llama RMSNorm: variance in fp32, normalise, cast back to the input dtype, then scale."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * h.to(dtype)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


class GatedMLP(nn.Module):
    """``down(act(gate(x)) * up(x))`` without biases: the text MLP and the MoE shared expert."""

    def __init__(self, hidden_size: int, intermediate_size: int, hidden_act: str = "silu") -> None:
        super().__init__()
        self.gate_proj = Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = Linear(intermediate_size, hidden_size, bias=False)
        self.act_fn = ACT_FNS[hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))

"""Our own CPU kernels, compiled on first use with the system C compiler and loaded with ``ctypes``.

Two kernels, both for decode steps, where the work is reading weights and the KV cache from memory once:

* ``cpu_linear.c`` -> ``small_m_linear``: matrix products with 1..15 rows. PyTorch has no memory-bound kernel for
  these on AVX2 CPUs: its bf16 GEMV is compute-bound (bf16 -> fp32 widening, ~20 GB/s) and its products with 2..15
  rows cost about rows x one GEMV, because each row streams the whole weight again. Ours streams each weight row
  once for all rows.
* ``cpu_attention.c`` -> ``decode_attention``: one query per row over a KV cache in fp32 arithmetic, reading a
  bf16 cache as bf16 (PyTorch's bf16 SDPA is ~8x slower than fp32 on such CPUs, and upcasting first copies the
  whole cache every step) and sharing each cache read among the query heads of a GQA group.

docs/cpu-kernels.md has the design and the measurements.

Build: ``$CC`` (default ``gcc``) ``-O3 -mavx2 -mfma -fopenmp`` into ``$HUNYUAN_CACHE_DIR`` (default
``~/.cache/hunyuan``), keyed by a hash of the source and flags, written atomically so parallel processes never load a
half-written library. Anything missing (not x86-64, no AVX2/FMA, no compiler, a failed build) means the callers use
PyTorch's kernels: never an error, one log line at INFO. ``HUNYUAN_CPU_KERNELS=0`` turns the kernels off.

Under ``torch.compile`` the kernels are reached through the custom ops ``hunyuan::small_m_linear`` and
``hunyuan::decode_attention`` (a ctypes call would break the graph); in eager mode they are called directly, which
saves the dispatcher's ~10 us per call.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

_SOURCES = [Path(__file__).with_name(name) for name in ("cpu_linear.c", "cpu_attention.c")]
_HEADERS = [Path(__file__).with_name("hy_common.h")]  # part of the cache key
_FLAGS = ["-O3", "-mavx2", "-mfma", "-fopenmp", "-shared", "-fPIC"]
# the kernel pays off below this many rows; above it the vendor GEMMs are faster (docs/cpu-kernels.md)
MAX_ROWS = 15
WEIGHT_DTYPES = (torch.bfloat16, torch.float32)


def _cache_dir() -> Path:
    root = os.environ.get("HUNYUAN_CACHE_DIR")
    if root:
        return Path(root) / "kernels"
    home = Path.home() / ".cache" / "hunyuan" / "kernels"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if os.access(home, os.W_OK):
            return home
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"hunyuan-{os.getuid() if hasattr(os, 'getuid') else 'user'}" / "kernels"


def _cpu_has_avx2_fma() -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return False
    return {"avx2", "fma"} <= set(flags)


def _build() -> Path:
    """Compile the kernel sources into one library unless one for these sources and flags is cached; return its
    path."""
    compiler = os.environ.get("CC", "gcc")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C compiler {compiler!r} on PATH")
    source = b"".join(path.read_bytes() for path in _SOURCES + _HEADERS)
    key = hashlib.sha256(source + " ".join([compiler, *_FLAGS, sys.platform]).encode()).hexdigest()[:16]
    out_dir = _cache_dir()
    target = out_dir / f"hunyuan-cpu-{key}.so"
    if target.exists():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
    os.close(fd)
    try:
        done = subprocess.run([compiler, *_FLAGS, *map(str, _SOURCES), "-o", tmp, "-lm"], capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{compiler} failed to build the CPU kernels: {done.stderr.strip()[-2000:]}")
        os.replace(tmp, target)  # atomic: a concurrent process sees no file or a whole one
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


_UNSET = object()
_LIB = _UNSET  # a plain global, not lru_cache: torch.compile traces through this and guards on the global


def _library():
    """The loaded kernel library, or None (with the reason logged) when it cannot be used here."""
    global _LIB
    if _LIB is _UNSET:
        _LIB = _load()
    return _LIB


def _load():
    if os.environ.get("HUNYUAN_CPU_KERNELS", "1") == "0":
        logger.info("hunyuan CPU kernels off (HUNYUAN_CPU_KERNELS=0): using PyTorch's kernels")
        return None
    if not _cpu_has_avx2_fma():
        logger.info("hunyuan CPU kernels need an x86-64 CPU with AVX2 and FMA: using PyTorch's kernels")
        return None
    try:
        lib = ctypes.CDLL(str(_build()))
    except (OSError, RuntimeError) as err:
        logger.info("hunyuan CPU kernels unavailable (%s): using PyTorch's kernels", err)
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    flag = ctypes.c_int
    lib.hy_linear.restype = ctypes.c_int
    lib.hy_linear.argtypes = [ptr, flag, i64, i64, i64, ptr, flag, i64, i64, ptr, flag, i64, ctypes.c_int]
    lib.hy_decode_attention.restype = ctypes.c_int
    lib.hy_decode_attention.argtypes = [ptr, flag, i64, i64, ptr, ptr, flag, i64, i64, i64, ptr, i64,
                                        i64, i64, i64, i64, i64, ctypes.c_float, ptr, flag, i64, ctypes.c_int]
    return lib


def available() -> bool:
    """True when the compiled kernels are loaded and will be used."""
    return _library() is not None


def applies(x: torch.Tensor, weight: torch.Tensor, rows: int) -> bool:
    """Whether ``small_m_linear`` should compute ``F.linear(x, weight)`` with ``rows`` rows of x: CPU tensors, bf16
    or fp32 for x and the weight with unit stride along their rows, 1..MAX_ROWS rows, no autograd, and the library
    loaded."""
    return (0 < rows <= MAX_ROWS and x.dtype in WEIGHT_DTYPES and weight.dtype in WEIGHT_DTYPES
            and x.device.type == "cpu" and weight.device.type == "cpu" and weight.dim() == 2
            and weight.stride(1) == 1 and x.stride(-1) == 1
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and _library() is not None)


def _run(x2d: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(M, N) = x2d (M, K) @ weight (N, K)^T in x2d's dtype on the compiled kernel (fp32 sums, one rounding)."""
    m, k = x2d.shape
    n = weight.shape[0]
    if weight.shape[1] != k:
        raise ValueError(f"linear: input has {k} features but the weight {tuple(weight.shape)} expects {weight.shape[1]}")
    y = torch.empty(m, n, dtype=x2d.dtype)
    bf16 = torch.bfloat16
    if _library().hy_linear(x2d.data_ptr(), x2d.dtype == bf16, m, k, x2d.stride(0), weight.data_ptr(),
                            weight.dtype == bf16, n, weight.stride(0), y.data_ptr(), y.dtype == bf16, n,
                            torch.get_num_threads()):
        raise MemoryError(f"linear: no memory for a {m} x {k} fp32 copy of the input")
    return y


@torch.library.custom_op("hunyuan::small_m_linear", mutates_args=())
def _small_m_linear_op(x2d: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return _run(x2d, weight)


@_small_m_linear_op.register_fake
def _(x2d: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x2d.new_empty((x2d.shape[0], weight.shape[0]))


def small_m_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` for few rows on the compiled kernel (call only where ``applies``): the product
    is accumulated in fp32 and rounded to x's dtype once, as PyTorch's kernels do."""
    x2d = x.reshape(-1, x.shape[-1])
    y = _small_m_linear_op(x2d, weight) if torch.compiler.is_compiling() else _run(x2d, weight)
    if bias is not None:
        y = y + bias
    return y.reshape(*x.shape[:-1], weight.shape[0])


# -- decode attention --------------------------------------------------------------------------------------------------
MAX_GROUP, MAX_HEAD_DIM = 16, 512  # cpu_attention.c's limits


def attention_applies(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> bool:
    """Whether ``decode_attention`` handles this call: CPU, one query per row, q/k/v bf16 or fp32 (k and v alike,
    as a KV cache is), the head dim contiguous, GQA groups of at most 16 heads, a boolean (B or 1, 1, 1, S) mask or
    none, no autograd, and the library loaded."""
    b, h, l, d = q.shape
    return (l == 1 and q.device.type == "cpu" and k.device.type == "cpu" and q.dtype in WEIGHT_DTYPES
            and k.dtype in WEIGHT_DTYPES and v.dtype == k.dtype and k.shape == v.shape and k.stride() == v.stride()
            and k.shape[1] > 0 and h % k.shape[1] == 0 and h // k.shape[1] <= MAX_GROUP and d <= MAX_HEAD_DIM
            and k.shape[0] == b and k.shape[3] == d and q.stride(3) == 1 and k.stride(3) == 1
            and (mask is None or (mask.dtype == torch.bool and mask.dim() == 4 and mask.shape[1:3] == (1, 1)
                                  and mask.shape[0] in (1, b) and mask.shape[3] == k.shape[2]))
            and not (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad))
            and _library() is not None)


def _run_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                   scale: float) -> torch.Tensor:
    b, h, _, d = q.shape
    hkv, s = k.shape[1], k.shape[2]
    out = torch.empty(b, 1, h * d, dtype=q.dtype)
    if mask is not None:
        mask = mask.reshape(mask.shape[0], s)
        if mask.stride(1) != 1:
            mask = mask.contiguous()
    mask_sb = 0 if mask is None or mask.shape[0] == 1 else mask.stride(0)
    bf16 = torch.bfloat16
    status = _library().hy_decode_attention(
        q.data_ptr(), q.dtype == bf16, q.stride(0), q.stride(1), k.data_ptr(), v.data_ptr(), k.dtype == bf16,
        k.stride(0), k.stride(1), k.stride(2), mask.data_ptr() if mask is not None else None, mask_sb,
        b, h, hkv, s, d, scale, out.data_ptr(), q.dtype == bf16, out.stride(0), torch.get_num_threads())
    if status == -2:
        raise MemoryError(f"decode attention: no memory for {h // hkv} x {s} scores per thread")
    if status:
        raise ValueError(f"decode attention: a row has no key it may attend to (mask {tuple(mask.shape)})"
                         if mask is not None else f"decode attention: bad sizes q {tuple(q.shape)} k {tuple(k.shape)}")
    return out


@torch.library.custom_op("hunyuan::decode_attention", mutates_args=())
def _decode_attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                         scale: float) -> torch.Tensor:
    return _run_attention(q, k, v, mask, scale)


@_decode_attention_op.register_fake
def _(q, k, v, mask, scale):
    return q.new_empty((q.shape[0], 1, q.shape[1] * q.shape[3]))


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                     scale: float) -> torch.Tensor:
    """Attention of one query per row (call only where ``attention_applies``): q (B, H, 1, d), k/v (B, Hkv, S, d),
    mask (B or 1, 1, 1, S) boolean (True = may attend) or None. Returns (B, 1, H * d) in q's dtype, computed in fp32
    like ``scaled_dot_product_attention`` on fp32 inputs."""
    if torch.compiler.is_compiling():
        return _decode_attention_op(q, k, v, mask, scale)
    return _run_attention(q, k, v, mask, scale)

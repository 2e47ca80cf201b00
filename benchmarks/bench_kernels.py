"""Our CPU decode kernels (hunyuan/kernels) vs what PyTorch runs for the same call, on the decode shapes of the
models, in one process.

* linear: ``kernels.small_m_linear`` vs ``F.linear`` (the reference's call) for 1..15 rows, bf16 and fp32. The
  weights cycle through a model's worth of distinct matrices (more than the L3 cache), so every call reads its
  weight from memory as in a real decode step; GB/s = weight bytes / time.
* attention: ``kernels.decode_attention`` vs SDPA on the same tensors (bf16 SDPA, and SDPA after an fp32 upcast of
  the cache, the faster of PyTorch's options on CPUs without bf16 units), one query per row over a 1,092-key cache,
  16 query / 8 kv heads of 128, 24 layers' worth of caches.

Prints one JSON line per figure (median of --reps timings) and writes them to benchmarks/results/bench_kernels.jsonl.

    python benchmarks/bench_kernels.py            # ~1 minute
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from hunyuan import kernels  # noqa: E402

# (name, out_features, in_features, how many distinct copies a decode step reads)
LINEAR_SHAPES = [
    ("ocr gate/up 3584x1024", 3584, 1024, 48),
    ("ocr down 1024x3584", 1024, 3584, 24),
    ("ocr q 2048x1024", 2048, 1024, 24),
    ("ocr lm_head 120818x1024", 120818, 1024, 1),
    ("a13b expert gate_up 6144x4096", 6144, 4096, 8),
]


def _time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_linear(dtype: torch.dtype, rows: list[int], reps: int) -> list[dict]:
    lines = []
    g = torch.Generator().manual_seed(0)
    for name, n, k, copies in LINEAR_SHAPES:
        weights = [torch.randn(n, k, generator=g).to(dtype) for _ in range(copies)]
        nbytes = sum(w.numel() * w.element_size() for w in weights)
        for m in rows:
            x = torch.randn(m, k, generator=g).to(dtype)
            for w in weights[:2]:  # correctness on the way: same result as PyTorch up to summation order
                torch.testing.assert_close(kernels.small_m_linear(x, w), F.linear(x, w), rtol=2e-2, atol=2e-2)
            ours = _time(lambda: [kernels.small_m_linear(x, w) for w in weights], reps)
            ref = _time(lambda: [F.linear(x, w) for w in weights], reps)
            lines.append({"what": "linear", "shape": name, "rows": m, "dtype": str(dtype).split(".")[1],
                          "ours_ms": round(ours / copies * 1e3, 3), "torch_ms": round(ref / copies * 1e3, 3),
                          "ours_gb_s": round(nbytes / ours / 1e9, 1), "torch_gb_s": round(nbytes / ref / 1e9, 1),
                          "ratio": round(ref / ours, 2)})
            print(json.dumps(lines[-1]), flush=True)
    return lines


def bench_attention(dtype: torch.dtype, batches: list[int], reps: int, keys: int = 1092) -> list[dict]:
    lines = []
    g = torch.Generator().manual_seed(1)
    for b in batches:
        caches = [(torch.randn(b, 8, keys + 64, 128, generator=g).to(dtype)[:, :, :keys],
                   torch.randn(b, 8, keys + 64, 128, generator=g).to(dtype)[:, :, :keys]) for _ in range(24)]
        q = torch.randn(b, 16, 1, 128, generator=g).to(dtype)

        def sdpa(up: torch.dtype):
            return [F.scaled_dot_product_attention(q.to(up), k.to(up), v.to(up), scale=128**-0.5, enable_gqa=True)
                    for k, v in caches]

        ours = _time(lambda: [kernels.decode_attention(q, k, v, None, 128**-0.5) for k, v in caches], reps)
        ref_fp32 = _time(lambda: sdpa(torch.float32), reps)
        line = {"what": "decode attention x24 layers", "batch": b, "keys": keys, "dtype": str(dtype).split(".")[1],
                "ours_ms": round(ours * 1e3, 2), "torch_sdpa_fp32_ms": round(ref_fp32 * 1e3, 2)}
        if dtype != torch.float32:
            line["torch_sdpa_own_dtype_ms"] = round(_time(lambda: sdpa(dtype), reps) * 1e3, 2)
        line["ratio"] = round(min(v for key, v in line.items() if key.startswith("torch_")) / line["ours_ms"], 2)
        lines.append(line)
        print(json.dumps(line), flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    if not kernels.available():
        sys.exit("the hunyuan CPU kernels are not available here (needs x86-64 with AVX2/FMA and gcc)")
    torch.manual_seed(0)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    lines = []
    for dtype in (torch.bfloat16, torch.float32):
        lines += bench_linear(dtype, [1, 2, 4, 8, 15], args.reps)
        lines += bench_attention(dtype, [1, 4], args.reps)
    os.makedirs(os.path.join(ROOT, "benchmarks", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "benchmarks", "results", "bench_kernels.jsonl"), "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({**line, "machine": machine}) + "\n" for line in lines)


if __name__ == "__main__":
    main()

"""Generation speed: ours vs the transformers 5.23 reference (SDPA) on the full-size HunyuanOCR 1.0 architecture.

Both load the same seeded random checkpoint (written once, in bf16, in the real on-disk layout) with the same dtype
and are fed the same inputs: a page image plus a 30-token prompt. Every measurement runs in a fresh worker process
(so peak RSS is per implementation), and ours and the reference take turns. Both are timed the same way, through
``model.generate``: forward hooks on the vision tower time the image encoder, a streamer timestamps every token.

Figures (one JSON line each, median over the repetitions; also written to benchmarks/results/):
  vision_s, prefill_s (= time to first token - vision), time_to_first_token_s, decode_tok_s (batch 1, 128 forced
  new tokens), peak_rss_gib; and batch4_decode_tok_s (ours, 4 pages of 1024x768, aggregate; one run by default,
  --batch4-reps for more) against the reference's batch-1 decode.

    python benchmarks/bench_generate.py            # fp32 and bf16, 3 repetitions, 1024x1024 page (< 30 min)
    python benchmarks/bench_generate.py --quick    # bf16, 1 repetition, 512x512 page (< 5 min)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common import peak_rss_gib  # noqa: E402  (benchmarks/common.py, beside this script)

# spec 1.6: the real tencent/HunyuanOCR config.json (flat legacy layout); pos_embed_resize follows transformers so
# both implementations compute the same function
HUNYUAN_OCR_CONFIG = {
    "architectures": ["HunYuanVLForConditionalGeneration"], "model_type": "hunyuan_vl",
    "hidden_size": 1024, "intermediate_size": 3584, "num_hidden_layers": 24, "num_attention_heads": 16,
    "num_key_value_heads": 8, "head_dim": 128, "attention_head_dim": 128, "vocab_size": 120818,
    "org_vocab_size": 120818, "hidden_act": "silu", "rms_norm_eps": 1e-5, "max_position_embeddings": 32768,
    "attention_bias": False, "mlp_bias": False, "norm_type": "rms", "use_qk_norm": True, "use_cla": False,
    "rope_theta": 10000.0, "rope_scaling": {"type": "xdrope", "alpha": 1000.0, "factor": 1.0, "beta_fast": 32,
                                            "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0,
                                            "xdrope_section": [16, 16, 16, 16]},
    "bos_token_id": 120000, "eos_token_id": [120007, 120020], "eod_token_id": 120020, "pad_token_id": -1,
    "pad_id": 120002, "sep_token_id": 0, "tie_word_embeddings": True, "image_token_id": 120120,
    "image_start_token_id": 120118, "image_end_token_id": 120119, "image_newline_token_id": 120121,
    "vision_config": {"hidden_size": 1152, "out_hidden_size": 1024, "num_hidden_layers": 27,
                      "num_attention_heads": 16, "intermediate_size": 4304, "patch_size": 16, "num_channels": 3,
                      "spatial_merge_size": 2, "rms_norm_eps": 1e-5, "interpolate_mode": "bilinear",
                      "hidden_act": "gelu", "max_image_size": 2048, "pos_embed_resize": "transformers"},
}
BOS, USER, IMAGE_START, IMAGE_END, IMAGE = 120000, 120006, 120118, 120119, 120120
NEW_TOKENS = 128


# -- set-up ------------------------------------------------------------------------------------------------------------
def write_checkpoint(directory: str) -> None:
    from hunyuan import HunYuanVLConfig, HunYuanVLForConditionalGeneration

    torch.manual_seed(0)
    model = HunYuanVLForConditionalGeneration(HunYuanVLConfig(**HUNYUAN_OCR_CONFIG)).to(torch.bfloat16)
    model.save_pretrained(directory)


def page(width: int, height: int, seed: int):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for row in range(height // 24 - 2):
        draw.text((24, 24 + row * 24), f"{seed}.{row}: the quick brown fox jumps over the lazy dog " * 3, fill="black")
    return image


def make_inputs(width: int, height: int, batch: int) -> dict:
    """``batch`` pages of width x height, each with the same 30 prompt tokens (equal lengths: no padding)."""
    from hunyuan import HunYuanVLImageProcessorPil
    from hunyuan.processing.processor import num_image_tokens

    vision = HunYuanVLImageProcessorPil(min_pixels=256 * 256, max_pixels=2048 * 2048)(
        [page(width, height, i) for i in range(batch)], return_tensors="pt")
    text = torch.randint(1000, 100000, (30,), generator=torch.Generator().manual_seed(0)).tolist()
    rows = []
    for _, gh, gw in vision["image_grid_thw"].tolist():
        rows.append([BOS, IMAGE_START] + [IMAGE] * num_image_tokens(gh, gw) + [IMAGE_END] + text + [USER])
    input_ids = torch.tensor(rows)
    return dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                mm_token_type_ids=(input_ids == IMAGE).int(), **vision)


# -- one measurement (worker process) --------------------------------------------------------------------------------
class _Clock:
    """Streamer + vision hooks: timestamps of vision start/end and of every generated token."""

    def __init__(self) -> None:
        self.start = self.vision_start = self.vision_end = 0.0
        self.token_times: list[float] = []
        self.tokens: list[int] = []
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.token_times.append(time.perf_counter())
        self.tokens.append(int(value.reshape(-1)[0]))

    def end(self) -> None:
        pass

    def vision_pre(self, *args) -> None:
        self.vision_start = time.perf_counter()

    def vision_post(self, *args) -> None:
        self.vision_end = time.perf_counter()


def worker(impl: str, checkpoint: str, dtype: str, width: int, height: int, batch: int) -> dict:
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    if impl == "ours":
        from hunyuan import HunYuanVLForConditionalGeneration
        model = HunYuanVLForConditionalGeneration.from_pretrained(checkpoint, dtype=torch_dtype,
                                                                  attn_implementation="sdpa")
    else:
        from transformers import HunYuanVLForConditionalGeneration
        model = HunYuanVLForConditionalGeneration.from_pretrained(checkpoint, dtype=torch_dtype,
                                                                  attn_implementation="sdpa").eval()
    inputs = make_inputs(width, height, batch)
    clock = _Clock()
    model.model.vision_tower.register_forward_pre_hook(clock.vision_pre)
    model.model.vision_tower.register_forward_hook(clock.vision_post)
    with torch.inference_mode():
        clock.start = time.perf_counter()
        out = model.generate(**inputs, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                             streamer=clock)
    first, last = clock.token_times[0], clock.token_times[-1]
    vision = clock.vision_end - clock.vision_start
    return {
        "impl": impl, "dtype": dtype, "batch": batch, "page": f"{width}x{height}",
        "prompt_tokens": inputs["input_ids"].shape[1], "new_tokens": out.shape[1] - inputs["input_ids"].shape[1],
        "vision_s": vision, "prefill_s": first - clock.start - vision, "time_to_first_token_s": first - clock.start,
        "decode_tok_s": batch * (len(clock.token_times) - 1) / (last - first),
        "peak_rss_gib": peak_rss_gib(),
        "first_tokens": out[0, inputs["input_ids"].shape[1]:][:16].tolist(),
    }


def run_worker(impl: str, checkpoint: str, dtype: str, width: int, height: int, batch: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, "--checkpoint", checkpoint, "--dtype", dtype,
           "--page", f"{width}x{height}", "--batch", str(batch)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1",
                                                                    "TRANSFORMERS_VERBOSITY": "error"})
    if proc.returncode != 0:
        raise RuntimeError(f"worker {impl} {dtype} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"# {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


# -- the run -----------------------------------------------------------------------------------------------------------
def figure(name: str, dtype: str, shape: str, ours: list[float], reference: list[float], higher_is_better: bool,
           **extra) -> dict:
    o, r = statistics.median(ours), statistics.median(reference)
    ratio = (o / r if higher_is_better else r / o) if o and r else None
    return {"what": name, "dtype": dtype, "shape": shape, "ours": round(o, 4), "reference": round(r, 4),
            "speedup" if name != "peak_rss_gib" else "reference_over_ours": round(ratio, 3) if ratio else None,
            "runs": len(ours), **extra}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")
    flags = set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))
    return f"{name} ({', '.join(sorted(flags & {'avx2', 'avx512f', 'avx512_bf16', 'amx_bf16'}))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="bf16, one repetition, a 512x512 page")
    parser.add_argument("--dtypes", default=None, help="comma-separated: fp32,bf16")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--batch4-reps", type=int, default=1,
                        help="runs of the batch-4 measurement (one run is 4 x 127 decode steps)")
    parser.add_argument("--checkpoint", default=None, help="reuse a checkpoint written by an earlier run")
    parser.add_argument("--worker", choices=["ours", "ref"], help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="bf16", help=argparse.SUPPRESS)
    parser.add_argument("--page", default="1024x1024", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        width, height = map(int, args.page.split("x"))
        print(json.dumps(worker(args.worker, args.checkpoint, args.dtype, width, height, args.batch)))
        return

    dtypes = (args.dtypes or ("bf16" if args.quick else "fp32,bf16")).split(",")
    reps = args.reps or (1 if args.quick else 3)
    single, quad = ((512, 512), (512, 384)) if args.quick else ((1024, 1024), (1024, 768))
    began = time.perf_counter()
    tmp = None
    checkpoint = args.checkpoint
    if checkpoint is None:
        tmp = tempfile.TemporaryDirectory(prefix="hunyuan-bench-")
        checkpoint = tmp.name
        write_checkpoint(checkpoint)
    machine = {"cpu": _cpu_name(), "threads": torch.get_num_threads(),
               "torch": torch.__version__, "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    results = []
    for dtype in dtypes:
        runs = {"ours": [], "ref": []}
        for rep in range(reps):
            for impl in (("ref", "ours") if rep % 2 == 0 else ("ours", "ref")):
                runs[impl].append(run_worker(impl, checkpoint, dtype, *single, 1))
        quad_runs = [run_worker("ours", checkpoint, dtype, *quad, 4) for _ in range(args.batch4_reps)]
        shape = f"page {single[0]}x{single[1]} + 30-token prompt ({runs['ours'][0]['prompt_tokens']} tokens)"
        for key, better in (("vision_s", False), ("prefill_s", False), ("time_to_first_token_s", False),
                            ("decode_tok_s", True), ("peak_rss_gib", False)):
            results.append(figure(key, dtype, shape, [r[key] for r in runs["ours"]], [r[key] for r in runs["ref"]],
                                  better))
        results.append(figure("batch4_decode_tok_s", dtype, f"4 pages {quad[0]}x{quad[1]}, aggregate",
                              [r["decode_tok_s"] for r in quad_runs], [r["decode_tok_s"] for r in runs["ref"]], True,
                              reference_is="reference batch-1 decode_tok_s"))
        agree = [a == b for a, b in zip(runs["ours"][0]["first_tokens"], runs["ref"][0]["first_tokens"])]
        results.append({"what": "greedy_token_agreement", "dtype": dtype, "shape": shape,
                        "first_16_tokens_equal": sum(agree), "of": len(agree)})
    for line in results:
        line.update(machine=machine)
        print(json.dumps(line), flush=True)
    os.makedirs(os.path.join(ROOT, "benchmarks", "results"), exist_ok=True)
    name = f"bench_generate{'_quick' if args.quick else ''}_{'_'.join(dtypes)}.jsonl"
    with open(os.path.join(ROOT, "benchmarks", "results", name), "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in results)
    print(f"# total {time.perf_counter() - began:.0f} s", file=sys.stderr)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()

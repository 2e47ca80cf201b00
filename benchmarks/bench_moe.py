"""MoE speed: ours vs the transformers 5.23 reference on an Hunyuan-A13B-shaped MoE stack cut to one decoder layer.

The model: hidden 4096, 32 heads / 8 kv heads of 128, one decoder layer whose MLP is the A13B MoE block (64 experts
of width 3072, top-8, one shared MLP of width 3072), a 32k vocabulary with a tied head: ~2.5B parameters, ~5 GB in
bf16. Seeded random weights are written once (bf16, the real on-disk per-expert layout) and both implementations
load that checkpoint in bf16, each in its own worker process (so peak RSS is per implementation); ours and the
reference take turns.

Figures (one JSON line each, median over the repetitions; also written to benchmarks/results/):
  prefill_tok_s  one 512-token prompt, one forward (logits of the last position only)
  decode_tok_s_b1, decode_tok_s_b8  greedy decoding after a 16-token prompt, 32 forced new tokens per row, through
                 each library's ``model.generate``; a streamer timestamps every step (aggregate over the batch)
  peak_rss_gib

    python benchmarks/bench_moe.py               # 2 repetitions each
    python benchmarks/bench_moe.py --reps 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common import peak_rss_gib  # noqa: E402  (benchmarks/common.py, beside this script)

A13B_LAYER = {
    "architectures": ["HunYuanMoEV1ForCausalLM"], "model_type": "hunyuan_v1_moe",
    "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 3072, "num_hidden_layers": 1,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "num_experts": 64, "moe_topk": 8,
    "hidden_act": "silu", "rms_norm_eps": 1e-5, "max_position_embeddings": 32768, "tie_word_embeddings": True,
    "rope_parameters": {"rope_type": "dynamic", "alpha": 1000.0, "factor": 1.0, "rope_theta": 10000.0},
    "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
}
PREFILL_TOKENS, PROMPT_TOKENS, NEW_TOKENS = 512, 16, 32


def write_checkpoint(directory: str) -> None:
    from hunyuan import HunYuanMoEV1Config, HunYuanMoEV1ForCausalLM

    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # bf16 weights (the router stays fp32), built without an fp32 copy
    with torch.device("meta"):
        model = HunYuanMoEV1ForCausalLM(HunYuanMoEV1Config(**A13B_LAYER))
    torch.set_default_dtype(torch.float32)
    model.to_empty(device="cpu")
    model.reset_buffers(torch.device("cpu"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
                continue
            for rows in p.view(-1, p.shape[-1]).split(8192):  # seeded normal(0, 0.02), a slab at a time
                rows.copy_(torch.randn(rows.shape).mul_(0.02))
    model.save_pretrained(directory)


class StepClock:
    """A transformers-style streamer that timestamps every ``put`` (the prompt first, then one per step)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def worker(impl: str, directory: str) -> dict:
    torch.manual_seed(0)
    if impl == "ours":
        from hunyuan import HunYuanMoEV1ForCausalLM
        model = HunYuanMoEV1ForCausalLM.from_pretrained(directory, dtype=torch.bfloat16)
    else:
        from transformers import HunYuanMoEV1ForCausalLM
        model = HunYuanMoEV1ForCausalLM.from_pretrained(directory, dtype=torch.bfloat16).eval()
    g = torch.Generator().manual_seed(1)
    out = {}
    with torch.inference_mode():
        ids = torch.randint(3, 32000, (1, PREFILL_TOKENS), generator=g)
        model(input_ids=ids[:, :8], logits_to_keep=1)  # warm-up
        start = time.perf_counter()
        model(input_ids=ids, logits_to_keep=1, use_cache=False)
        out["prefill_tok_s"] = PREFILL_TOKENS / (time.perf_counter() - start)
        for batch in (1, 8):
            prompt = torch.randint(3, 32000, (batch, PROMPT_TOKENS), generator=g)
            clock = StepClock()
            model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=NEW_TOKENS + 1,
                           min_new_tokens=NEW_TOKENS + 1, do_sample=False, streamer=clock, pad_token_id=0)
            steps = clock.times[2:]  # after the prompt and the first token (the prefill)
            out[f"decode_tok_s_b{batch}"] = batch * (len(steps) - 1) / (steps[-1] - steps[0])
    out["peak_rss_gib"] = peak_rss_gib()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--checkpoint", default="/tmp/hunyuan_bench_moe", help="written there when absent")
    parser.add_argument("--worker", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.checkpoint)))
        return
    if not os.path.exists(os.path.join(args.checkpoint, "config.json")):
        write_checkpoint(args.checkpoint)
    runs: dict[str, list[dict]] = {"ours": [], "reference": []}
    for _ in range(args.reps):
        for impl in ("ours", "reference"):
            result = subprocess.run([sys.executable, __file__, "--worker", impl, "--checkpoint", args.checkpoint],
                                    capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            if result.returncode:
                sys.exit(f"{impl} worker failed:\n{result.stderr[-3000:]}")
            runs[impl].append(json.loads(result.stdout.strip().splitlines()[-1]))
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    lines = []
    for figure in ("prefill_tok_s", "decode_tok_s_b1", "decode_tok_s_b8", "peak_rss_gib"):
        ours = statistics.median(r[figure] for r in runs["ours"])
        ref = statistics.median(r[figure] for r in runs["reference"])
        ratio = ref / ours if figure == "peak_rss_gib" else ours / ref  # > 1 is better for us
        lines.append({"what": figure, "shape": "A13B MoE layer x1, 64 experts top-8, vocab 32k", "dtype": "bf16",
                      "ours": round(ours, 3), "reference": round(ref, 3), "ratio": round(ratio, 3),
                      "reps": args.reps, "machine": machine})
        print(json.dumps(lines[-1]), flush=True)
    os.makedirs(os.path.join(ROOT, "benchmarks", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "benchmarks", "results", "bench_moe_bf16.jsonl"), "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in lines)


if __name__ == "__main__":
    main()

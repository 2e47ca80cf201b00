"""``hunyuan`` command line: a thin dispatcher over library calls.

    hunyuan demo [--dtype fp32|bf16] [--image FILE]
                                           build a small random HunYuanVL checkpoint, reload it, preprocess a page
                                           image (a drawn one by default), run a forward pass and generate 16 tokens
    hunyuan info --model PATH_OR_ID        describe a checkpoint (architecture, sizes, parameter count)
    hunyuan generate --model PATH_OR_ID [--image FILE ...] --prompt TEXT [--system TEXT] [--max-new-tokens N]
                     [--dtype auto|bf16|fp32] [--device auto|cpu|cuda] [--temperature T] [--no-stream]
                                           answer a prompt about images, streaming the text to stdout

Errors a user can fix (missing directory, bad dtype, malformed config) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import torch

from .config import HunYuanVLConfig
from .engine import generate_steps
from .loading import CheckpointError
from .modeling import HunYuanVLForConditionalGeneration
from .processing import HunYuanVLImageProcessorPil, ImageSourceError
from .processing.processor import num_image_tokens

DEMO_CONFIG = dict(
    text_config=dict(vocab_size=1024, hidden_size=256, intermediate_size=896, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=64, pad_token_id=0,
                     rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "alpha": 1000.0,
                                      "mrope_section": [8, 8, 8, 8]}),
    vision_config=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                       max_image_size=512),
    image_token_id=5, im_start_id=6, im_end_id=7,
)


def _drawn_page():
    from PIL import Image, ImageDraw
    page = Image.new("RGB", (827, 1169), "white")  # A4 at 100 dpi
    draw = ImageDraw.Draw(page)
    for row in range(40):
        draw.text((60, 60 + row * 26), f"Line {row + 1}: the quick brown fox jumps over the lazy dog.", fill="black")
    return page


def _demo(args: argparse.Namespace) -> int:
    torch.manual_seed(0)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    model = HunYuanVLForConditionalGeneration(HunYuanVLConfig(**DEMO_CONFIG))
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        model = HunYuanVLForConditionalGeneration.from_pretrained(tmp, dtype=dtype)
    image = args.image if args.image is not None else _drawn_page()
    try:  # the demo tower's position table is small: cap the page at 512 x 384 pixels
        vision = HunYuanVLImageProcessorPil(min_pixels=64 * 64, max_pixels=512 * 384)(image, return_tensors="pt")
    except (ImageSourceError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _, gh, gw = vision["image_grid_thw"][0].tolist()
    n_image = num_image_tokens(gh, gw)
    ids = torch.tensor([[1, 20, 21] + [6] + [5] * n_image + [7] + [30, 31, 32]])
    inputs = dict(input_ids=ids, mm_token_type_ids=(ids == 5).int(), **vision)
    start = time.perf_counter()
    with torch.inference_mode():
        logits = model(**inputs, logits_to_keep=1).logits
    elapsed = time.perf_counter() - start
    steps = list(generate_steps(model, inputs, model.generation_config.update(max_new_tokens=16, min_new_tokens=16)))
    stats = steps[-1].stats
    print(json.dumps({"model": "HunYuanVL (random demo weights)", "parameters": model.num_parameters(),
                      "dtype": str(dtype).replace("torch.", ""), "image_patches": gh * gw, "image_tokens": n_image,
                      "sequence_length": ids.shape[1], "next_token": int(logits[0, -1].argmax()),
                      "forward_seconds": round(elapsed, 3), "generated": [t for step in steps for _, t in step.tokens],
                      "time_to_first_token_seconds": round(stats.time_to_first_token_s, 3),
                      "decode_tokens_per_second": round(stats.decode_tokens_per_s, 1)}))
    return 0


def _info(args: argparse.Namespace) -> int:
    config = HunYuanVLConfig.from_pretrained(args.model, subfolder=args.subfolder)
    with torch.device("meta"):
        model = HunYuanVLForConditionalGeneration(config)
    text, vision = config.text_config, config.vision_config
    print(json.dumps({"model_type": config.model_type, "parameters": model.num_parameters(),
                      "text": {"layers": text.num_hidden_layers, "hidden": text.hidden_size,
                               "heads": text.num_attention_heads, "kv_heads": text.num_key_value_heads,
                               "vocab": text.vocab_size, "rope": text.rope_parameters},
                      "vision": {"layers": vision.num_hidden_layers, "hidden": vision.hidden_size,
                                 "pos_embed_resize": vision.pos_embed_resize},
                      "tie_word_embeddings": config.tie_word_embeddings}, indent=2))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from .auto import AutoModelForCausalLM, AutoProcessor
    from .engine import stream_generate
    from .processing import load_image

    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if args.temperature < 0:
        raise ValueError(f"--temperature must be >= 0 (0 = greedy), got {args.temperature}")
    images = [load_image(path) for path in args.image]  # a bad image fails before the model loads
    dtype = {"auto": "auto", "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    processor = AutoProcessor.from_pretrained(args.model, subfolder=args.subfolder)
    model = AutoModelForCausalLM.from_pretrained(args.model, subfolder=args.subfolder, dtype=dtype,
                                                 device=args.device)
    if images and not hasattr(processor, "image_processor"):
        raise ValueError(f"{args.model} is a text-only model; it cannot take --image")
    content = [{"type": "image", "image": image} for image in images] + [{"type": "text", "text": args.prompt}]
    messages = [{"role": "system", "content": args.system}, {"role": "user", "content": content}]
    if not hasattr(processor, "image_processor"):  # a text LM: plain string contents, a system message if given
        messages = [{"role": "system", "content": args.system}] * bool(args.system) + \
            [{"role": "user", "content": args.prompt}]
    inputs = processor.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                           return_tensors="pt")
    sampling = {"do_sample": True, "temperature": args.temperature} if args.temperature > 0 else {"do_sample": False}
    text, stats = [], None
    for response in stream_generate(model, processor, inputs, max_new_tokens=args.max_new_tokens, **sampling):
        text.append(response.text)
        stats = response.stats
        if not args.no_stream:
            print(response.text, end="", flush=True)
    print("".join(text) if args.no_stream else "", flush=True)
    if stats is not None and args.verbose:
        print(f"[{stats.prompt_tokens} prompt tokens, time to first token {stats.time_to_first_token_s:.2f} s, "
              f"{stats.generated_tokens} tokens, decode {stats.decode_tokens_per_s:.1f} tok/s]", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hunyuan", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="random-weight forward pass demo (no download needed)")
    demo.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    demo.add_argument("--image", help="an image file or URL to preprocess (default: a drawn page)")
    demo.set_defaults(func=_demo)
    info = sub.add_parser("info", help="describe a checkpoint")
    info.add_argument("--model", required=True, help="checkpoint directory or hub repo id")
    info.add_argument("--subfolder", default="", help="e.g. v1.0 for the HunyuanOCR 1.0 weights")
    info.set_defaults(func=_info)
    gen = sub.add_parser("generate", help="answer a prompt (about images) with a checkpoint, streaming the text")
    gen.add_argument("--model", required=True, help="checkpoint directory or hub repo id")
    gen.add_argument("--subfolder", default="", help="e.g. v1.0 for the HunyuanOCR 1.0 weights")
    gen.add_argument("--image", action="append", default=[], help="an image file or URL (repeatable)")
    gen.add_argument("--prompt", required=True, help="the user's text")
    gen.add_argument("--system", default="", help="system message (HunyuanOCR expects one, empty by default)")
    gen.add_argument("--max-new-tokens", type=int, default=1024)
    gen.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto")
    gen.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    gen.add_argument("--temperature", type=float, default=0.0, help="0 (default) decodes greedily")
    gen.add_argument("--no-stream", action="store_true", help="print the answer once it is complete")
    gen.add_argument("--verbose", action="store_true", help="print timings to stderr")
    gen.set_defaults(func=_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, CheckpointError, OSError) as err:
        print(f"hunyuan {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Generation, layered step -> stream -> result.

* ``prefill`` and ``decode_step`` are plain functions over the model and a ``StaticCache`` (fixed shapes, no host
  syncs; ``torch.compile`` can wrap ``decode_step``).
* ``generate_steps`` runs them for a left-padded batch: image features once, one prefill, then one decode step per
  token; it yields the new token of every active row and drops finished rows from the batch. It knows nothing
  about tokenization.
* ``stream_generate`` adds text: one ``GenerationResponse`` per row and token with the text delta from the
  processor's incremental detokenizer, the finish reason and the timings.
* ``generate`` (and ``model.generate``) drain the steps into transformers-shaped output ids.

>>> for r in stream_generate(model, processor, inputs, max_new_tokens=64):      # doctest: +SKIP
...     print(r.text, end="", flush=True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch

from .generation_config import GenerationConfig
from .kv_cache import StaticCache
from .sampling import TokenChooser

_INPUT_KEYS = ("input_ids", "attention_mask", "pixel_values", "image_grid_thw", "mm_token_type_ids")


# -- the two model calls -----------------------------------------------------------------------------------------------
def prefill(model, cache: StaticCache, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
            position_ids: torch.Tensor, mm_encoder_outputs: dict | None = None) -> torch.Tensor:
    """Run the whole prompt (B, L) into an empty cache; returns the last position's logits (B, V)."""
    kwargs = {"mm_encoder_outputs": mm_encoder_outputs} if mm_encoder_outputs else {}
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                past_key_values=cache, use_cache=True, logits_to_keep=1, **kwargs)
    cache.advance(input_ids.shape[1])
    return out.logits[:, -1]


def decode_step(model, cache: StaticCache, tokens: torch.Tensor, position_ids: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
    """One token per row: tokens (B, 1), position_ids (A, B, 1), mask (B, 1, 1, S) or None -> logits (B, V).
    The caller advances the cache afterwards (so this function has no Python side effects to trace)."""
    out = model(input_ids=tokens, attention_mask=mask, position_ids=position_ids, past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    return out.logits[:, -1]


# -- results -----------------------------------------------------------------------------------------------------------
@dataclass
class GenerationStats:
    """Timings of one generation (seconds). Decode figures cover the steps after the first token."""

    prompt_tokens: int = 0
    batch_size: int = 0
    vision_s: float = 0.0
    prefill_s: float = 0.0
    time_to_first_token_s: float = 0.0
    decode_s: float = 0.0
    decode_steps: int = 0
    generated_tokens: int = 0

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens per second per row over the decode steps."""
        return self.decode_steps / self.decode_s if self.decode_s > 0 else 0.0


@dataclass
class Step:
    """What one engine step produced: (row, token) for every row still running, and the rows that finished."""

    tokens: list[tuple[int, int]]
    finished: dict[int, str] = field(default_factory=dict)  # row -> "stop" | "length" | "stop_hook"
    stats: GenerationStats | None = None
    sequences: torch.Tensor | None = None  # (B, L + steps so far) CPU: prompt + generated ids, finished rows padded


@dataclass
class GenerationResponse:
    """One generated token of one row. ``text`` is its text delta (may be '' while a character is incomplete);
    on the row's last token ``finish_reason`` is set and ``text`` includes whatever the detokenizer held back."""

    row: int
    text: str
    token: int
    finish_reason: str | None
    generation_tokens: int
    stats: GenerationStats


# -- the engine loop ---------------------------------------------------------------------------------------------------
def generate_steps(model, inputs: dict[str, Any], config: GenerationConfig, *,
                   stopping_criteria: Sequence[Callable] | None = None, generator: torch.Generator | None = None,
                   compile: bool = False) -> Iterator[Step]:
    """Yield one ``Step`` per generated position for a batch of prompts (left-padded when lengths differ).

    ``stopping_criteria``: callables ``(input_ids (B, cur_len), scores (B, V)) -> bool | BoolTensor (B,)`` (the
    transformers signature); a row they stop finishes with reason ``"stop_hook"``. A row that finished is padded
    with ``pad_token_id`` (or its first eos id) in ``Step.sequences``.
    """
    stats = GenerationStats()
    input_ids, attention_mask = _check_inputs(model, inputs)
    b, length = input_ids.shape
    device = model.device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    budget = config.new_token_budget(length)
    stats.prompt_tokens, stats.batch_size = int(attention_mask.sum()), b
    if budget == 0:
        return
    start = time.perf_counter()

    mm_outputs = None
    if inputs.get("pixel_values") is not None:
        features = model.get_image_features(inputs["pixel_values"].to(device), _opt(inputs, "image_grid_thw", device))
        mm_outputs = {"image": features}
        _sync(device)
        stats.vision_s = time.perf_counter() - start
    mm_token_type_ids, image_grid_thw = (_opt(inputs, key, device) for key in ("mm_token_type_ids", "image_grid_thw"))
    positions = model.generation_positions(input_ids, attention_mask, mm_token_type_ids=mm_token_type_ids,
                                           image_grid_thw=image_grid_thw)
    padded = not bool(attention_mask.all())
    text = model.text_config
    cache = StaticCache(text.num_hidden_layers, b, text.num_key_value_heads, length + budget, text.head_dim,
                        model.dtype, device)
    chooser = TokenChooser(config, input_ids, attention_mask, text.vocab_size, generator)
    prefill_start = time.perf_counter()
    logits = prefill(model, cache, input_ids, attention_mask if padded else None, positions, mm_outputs)
    del mm_outputs
    next_pos = positions[:, :, -1:] + 1  # (A, B, 1): every axis continues from the last prompt token
    key_mask = (torch.cat([attention_mask.bool(), attention_mask.new_ones(b, budget, dtype=torch.bool)], 1)
                if padded else None)
    step_fn = _compiled_decode(model) if compile else decode_step
    rows = list(range(b))  # original row index of each active batch row
    decode_start = prefill_start
    eos = set(config.eos_token_ids)
    hooks = list(stopping_criteria or [])
    pad = config.pad_token_id if config.pad_token_id is not None else (config.eos_token_ids or [0])[0]
    sequences = torch.full((b, length + budget), pad, dtype=torch.long)
    sequences[:, :length] = input_ids.cpu()

    for step in range(budget):
        tokens = chooser(logits, step)
        token_list = tokens.tolist()  # the one host sync per step: finish checks and streaming need the ids
        now = time.perf_counter()
        if step == 0:
            stats.prefill_s = now - prefill_start
            stats.time_to_first_token_s = now - start
        else:
            stats.decode_s, stats.decode_steps = now - decode_start, step
        stats.generated_tokens += len(rows)
        sequences[rows, length + step] = torch.tensor(token_list, dtype=sequences.dtype)
        finished = {}
        for row, token in zip(rows, token_list):
            if token in eos:
                finished[row] = "stop"
            elif step + 1 == budget:
                finished[row] = "length"
        if hooks:
            for row in _hook_stops(hooks, sequences[:, :length + step + 1], logits, rows):
                finished.setdefault(row, "stop_hook")
        yield Step(list(zip(rows, token_list)), finished, stats, sequences[:, :length + step + 1])
        if len(finished) == len(rows):
            return
        if step == 0:
            decode_start = time.perf_counter()
        if finished:  # drop finished rows: they stop costing compute
            keep = [i for i, row in enumerate(rows) if row not in finished]
            index = torch.tensor(keep, device=device)
            rows = [rows[i] for i in keep]
            tokens, next_pos = tokens.index_select(0, index), next_pos.index_select(1, index)
            cache.select_rows(index)
            chooser.select_rows(index)
            if key_mask is not None:
                key_mask = key_mask.index_select(0, index)
        mask = key_mask[:, None, None, :cache.length + 1] if key_mask is not None else None
        logits = step_fn(model, cache, tokens[:, None], next_pos, mask)
        cache.advance(1)
        next_pos = next_pos + 1


def stream_generate(model, processor, inputs: dict[str, Any], *, skip_special_tokens: bool = True,
                    generation_config: GenerationConfig | None = None, generator: torch.Generator | None = None,
                    compile: bool = False, **kwargs: Any) -> Iterator[GenerationResponse]:
    """Yield a ``GenerationResponse`` per row and generated token, with text deltas decoded incrementally by the
    processor's (or tokenizer's) detokenizer. ``kwargs`` are generation parameters (``max_new_tokens``, ...)."""
    config = (generation_config or model.generation_config).update(**kwargs)
    tokenizer = getattr(processor, "tokenizer", processor)
    detokenizers: dict[int, Any] = {}
    counts: dict[int, int] = {}
    for step in generate_steps(model, inputs, config, generator=generator, compile=compile):
        for row, token in step.tokens:
            detok = detokenizers.setdefault(row, tokenizer.detokenizer(skip_special_tokens=skip_special_tokens))
            counts[row] = counts.get(row, 0) + 1
            text = detok.add(token)
            reason = step.finished.get(row)
            if reason is not None:
                text += detok.finish()
            yield GenerationResponse(row, text, token, reason, counts[row], step.stats)


def generate(model, inputs: dict[str, Any], config: GenerationConfig, *, streamer: Any = None,
             stopping_criteria: Sequence[Callable] | None = None, generator: torch.Generator | None = None,
             compile: bool = False) -> torch.Tensor:
    """Prompt + generated ids (B, L + T) like transformers: a row that finished early is padded with
    ``pad_token_id`` (or its first eos id) up to the longest row. ``streamer`` gets the transformers calls
    ``put(prompt_ids)``, ``put(new_tokens)`` per step and ``end()``."""
    sequences = inputs.get("input_ids")  # validated by generate_steps before its first step
    for i, step in enumerate(generate_steps(model, inputs, config, stopping_criteria=stopping_criteria,
                                            generator=generator, compile=compile)):
        if streamer is not None:
            if i == 0:
                streamer.put(sequences.cpu())
            streamer.put(torch.tensor([token for _, token in step.tokens]))
        sequences = step.sequences
    if streamer is not None:
        streamer.end()
    return sequences.to(inputs["input_ids"].device)


# -- helpers -----------------------------------------------------------------------------------------------------------
def _check_inputs(model, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    unknown = sorted(k for k, v in inputs.items() if k not in _INPUT_KEYS and v is not None)
    if unknown:
        raise TypeError(f"generate() got unexpected model inputs {unknown}; expected some of {list(_INPUT_KEYS)}")
    input_ids = inputs.get("input_ids")
    if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2 or input_ids.shape[1] == 0:
        shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(f"generate() needs input_ids as a (batch, length) LongTensor with length >= 1, got {shape}")
    if inputs.get("pixel_values") is not None and inputs.get("image_grid_thw") is None:
        raise ValueError("generate() got pixel_values without image_grid_thw; pass every output of the processor")
    attention_mask = inputs.get("attention_mask")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape "
                         f"{tuple(input_ids.shape)}")
    if input_ids.shape[0] > 1 and not bool(attention_mask[:, -1].all()):
        raise ValueError("generate() needs left padding for batches of different lengths (the last column of "
                         "attention_mask is 0 in some row); use processor(..., padding_side='left') or "
                         "padding=True with the processor's default left padding")
    if not bool(attention_mask.any(dim=1).all()):
        raise ValueError("every row of attention_mask needs at least one real token")
    vocab = model.text_config.vocab_size
    if int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab:
        raise ValueError(f"input_ids must lie in [0, {vocab}) (the model's vocab_size); got values in "
                         f"[{int(input_ids.min())}, {int(input_ids.max())}]")
    return input_ids, attention_mask


def _opt(inputs: dict[str, Any], key: str, device: torch.device) -> torch.Tensor | None:
    value = inputs.get(key)
    return value.to(device) if isinstance(value, torch.Tensor) else value


def _hook_stops(hooks: Sequence[Callable], sequences: torch.Tensor, scores: torch.Tensor, rows: list[int]) -> list[int]:
    full_scores = scores.new_zeros(sequences.shape[0], scores.shape[-1])
    full_scores[rows] = scores.float()
    stops = torch.zeros(sequences.shape[0], dtype=torch.bool)
    for hook in hooks:
        result = hook(sequences, full_scores)
        stops |= torch.as_tensor(result, dtype=torch.bool).cpu().expand(sequences.shape[0])
    return [row for row in rows if stops[row]]


def _compiled_decode(model) -> Callable:
    fn = getattr(model, "_compiled_decode_step", None)
    if fn is None:
        fn = torch.compile(decode_step, dynamic=True)
        model._compiled_decode_step = fn
    return fn


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

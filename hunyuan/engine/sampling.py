"""Choosing the next token from fp32 logits, as tensor ops with no host sync.

Order as in transformers: repetition penalty, min_new_tokens (eos suppressed), then, when sampling, temperature,
top-k and top-p, then a draw. Greedy decoding is the argmax of the processed logits (warpers do not apply).
"""

from __future__ import annotations

import torch

from .generation_config import GenerationConfig


class TokenChooser:
    """Per-generation state for choosing tokens for a batch of rows: which ids each row has seen (for the
    repetition penalty) and which ids are eos (suppressed before ``min_new_tokens``)."""

    def __init__(self, config: GenerationConfig, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                 vocab_size: int, generator: torch.Generator | None = None) -> None:
        self.config = config
        self.generator = generator
        device = prompt_ids.device
        self.eos = torch.tensor([e for e in config.eos_token_ids if 0 <= e < vocab_size], dtype=torch.long,
                                device=device)
        self.seen = None
        if config.repetition_penalty != 1.0:
            # a row is penalised for its own prompt tokens only (not the padding the batch gave it)
            ids = prompt_ids.clamp(0, vocab_size - 1).masked_fill(~prompt_mask.bool(), 0)
            self.seen = torch.zeros(prompt_ids.shape[0], vocab_size, dtype=torch.bool, device=device)
            self.seen.scatter_(1, ids, prompt_mask.bool())

    def __call__(self, logits: torch.Tensor, step: int) -> torch.Tensor:
        """logits (B, V) -> next tokens (B,). ``step`` counts the tokens already generated."""
        logits = logits.float()
        config = self.config
        if self.seen is not None:
            penalised = torch.where(logits < 0, logits * config.repetition_penalty, logits / config.repetition_penalty)
            logits = torch.where(self.seen, penalised, logits)
        if step < config.min_new_tokens and self.eos.numel():
            logits = logits.index_fill(1, self.eos, float("-inf"))
        if config.do_sample:
            tokens = sample(logits, config.temperature, config.top_k, config.top_p, self.generator)
        else:
            tokens = logits.argmax(-1)
        if self.seen is not None:
            self.seen.scatter_(1, tokens[:, None], True)
        return tokens

    def select_rows(self, rows: torch.Tensor) -> None:
        if self.seen is not None:
            self.seen = self.seen.index_select(0, rows)


def sample(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Temperature, top-k and top-p (nucleus) filtering, then one draw per row. logits (B, V) fp32 -> (B,)."""
    logits = logits / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1)  # ascending
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative <= 1 - top_p
        drop[:, -1] = False  # the most likely token always stays
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    probs = logits.softmax(-1)
    # Gumbel-style draw: argmax(p / Exp(1)) ~ Categorical(p), without multinomial's host sync
    noise = torch.empty_like(probs).exponential_(1, generator=generator)
    return (probs / noise).argmax(-1)

"""What the task heads share: which positions get logits, the causal-LM loss, and sequence-classification pooling
and losses (transformers' conventions, so losses match the reference)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def keep_positions(hidden: torch.Tensor, logits_to_keep: int | torch.Tensor) -> torch.Tensor:
    """The positions of hidden (B, L, H) that get logits: the last ``k`` (0 = all), or an index tensor."""
    if isinstance(logits_to_keep, int):
        return hidden[:, -logits_to_keep:] if logits_to_keep > 0 else hidden
    return hidden[:, logits_to_keep]


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: int | None = None) -> torch.Tensor:
    """Next-token cross entropy in fp32: position t predicts labels[t+1]; -100 is ignored."""
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"labels must have shape {tuple(logits.shape[:-1])} (batch, sequence), got "
                         f"{tuple(labels.shape)}")
    shifted = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:].to(logits.device)
    reduction = "sum" if num_items_in_batch is not None else "mean"
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), shifted.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction=reduction)
    return loss / num_items_in_batch if num_items_in_batch is not None else loss


def last_token_index(input_ids: torch.Tensor | None, batch_size: int, pad_token_id: int | None) -> torch.Tensor | int:
    """Per row, the index of the rightmost token that is not padding (works for left and right padding);
    -1 (the last position) without input_ids or without a pad id (then the batch must have one row)."""
    if pad_token_id is None and batch_size != 1:
        raise ValueError(f"Cannot handle batch sizes > 1 if no padding token is defined (batch size {batch_size}); "
                         "set pad_token_id in the config")
    if pad_token_id is None or input_ids is None:
        return -1
    not_pad = (input_ids != pad_token_id).int()
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device, dtype=torch.int32)
    return (positions * not_pad).argmax(-1)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, num_labels: int,
                        problem_type: str | None) -> tuple[torch.Tensor, str]:
    """Loss of pooled logits (B, num_labels) and the problem type it used: regression (MSE) for one label, single-
    label classification (cross entropy) for integer labels, multi-label (BCE with logits) otherwise."""
    if problem_type is None:
        if num_labels == 1:
            problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem_type = "single_label_classification"
        else:
            problem_type = "multi_label_classification"
    labels = labels.to(logits.device)
    if problem_type == "regression":
        if num_labels == 1:
            return F.mse_loss(logits.squeeze(), labels.squeeze()), problem_type
        return F.mse_loss(logits, labels), problem_type
    if problem_type == "single_label_classification":
        return F.cross_entropy(logits.view(-1, num_labels), labels.view(-1), ignore_index=IGNORE_INDEX), problem_type
    if problem_type == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits, labels), problem_type
    raise ValueError(f"problem_type={problem_type!r} is invalid: expected 'regression', "
                     "'single_label_classification' or 'multi_label_classification'")

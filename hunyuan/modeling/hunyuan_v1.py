"""The HunYuan language models: HunYuanDenseV1 (Hunyuan-0.5B ... 7B) and HunYuanMoEV1 (Hunyuan-A13B).

Both are the shared HunYuan decoder (``text.py``: GQA attention, RoPE then per-head q/k RMSNorm, 1-D positions);
the MoE model replaces every layer's MLP with an MoE block (``moe.py``). Each family has a bare ``*Model``, a
``*ForCausalLM`` (LM head, tied to the embeddings when ``tie_word_embeddings``) and a
``*ForSequenceClassification`` (a ``score`` head read at each row's last non-pad token).

>>> model = HunYuanMoEV1ForCausalLM.from_pretrained("path/to/Hunyuan-A13B-Instruct", dtype="bfloat16")  # doctest: +SKIP
>>> ids = model.generate(**tokenizer("Hello", return_tensors="pt"), max_new_tokens=32)                 # doctest: +SKIP
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..config import HunYuanDenseV1Config, HunYuanMoEV1Config, HunYuanTextConfigBase
from ..loading import HUNYUAN_TEXT_BASE_FORMAT, HUNYUAN_TEXT_FORMAT
from .base import HunYuanPreTrainedModel
from .heads import causal_lm_loss, classification_loss, keep_positions, last_token_index
from .layers import Linear
from .moe import HunYuanMoEV1Moe
from .outputs import (CausalLMOutputWithPast, MoeCausalLMOutputWithPast, MoeModelOutputWithPast,
                      SequenceClassifierOutputWithPast)
from .text import HunYuanDecoder, HunYuanDecoderLayer

_HEADS = ("lm_head.weight", "score.weight")


# -- the two families' decoders ----------------------------------------------------------------------------------------
class HunYuanDenseV1PreTrainedModel(HunYuanPreTrainedModel):
    config_class = HunYuanDenseV1Config
    checkpoint_format = HUNYUAN_TEXT_FORMAT


class HunYuanMoEV1PreTrainedModel(HunYuanPreTrainedModel):
    config_class = HunYuanMoEV1Config
    checkpoint_format = HUNYUAN_TEXT_FORMAT
    keep_fp32 = ("mlp.gate.wg.weight",)


class _TextModel(HunYuanDecoder):
    """A decoder that is also a loadable model: ``embed_tokens``, ``layers``, ``norm`` at the top level."""

    checkpoint_format = HUNYUAN_TEXT_BASE_FORMAT
    ignored_on_load = _HEADS

    def __init__(self, config: HunYuanTextConfigBase, attn_implementation: str | None = None,
                 init_weights: bool = True) -> None:
        HunYuanPreTrainedModel.__init__(self, config)  # the module, config and generation config first ...
        self.build(config)  # ... then the decoder's layers (see HunYuanDecoder)
        if init_weights:
            self.set_attn_implementation(attn_implementation or getattr(config, "_attn_implementation", None))
            self.post_init()


class HunYuanDenseV1Model(_TextModel, HunYuanDenseV1PreTrainedModel):
    """The bare dense decoder: hidden states of the last layer."""


class HunYuanMoEV1Model(_TextModel, HunYuanMoEV1PreTrainedModel):
    """The bare MoE decoder; ``output_router_logits=True`` adds each layer's router logits."""

    output_class = MoeModelOutputWithPast

    def _make_layer(self, config: HunYuanMoEV1Config, layer_idx: int) -> HunYuanDecoderLayer:
        return HunYuanDecoderLayer(config, layer_idx, mlp=HunYuanMoEV1Moe(config, layer_idx))


# -- heads -------------------------------------------------------------------------------------------------------------
class _ForCausalLM:
    """``model`` + ``lm_head``; logits for the kept positions, causal-LM loss with ``labels``."""

    base_model_class: ClassVar[type]
    tied_weights = {"lm_head.weight": "model.embed_tokens.weight"}
    ignored_on_load = ("score.weight",)

    def __init__(self, config: HunYuanTextConfigBase, attn_implementation: str | None = None) -> None:
        super().__init__(config)
        self.model = self.base_model_class(config, init_weights=False)
        self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False)
        self.vocab_size = config.vocab_size
        self.set_attn_implementation(attn_implementation or getattr(config, "_attn_implementation", None))
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, logits_to_keep=0, output_attentions=False,
                output_hidden_states=False, output_router_logits=None, return_dict=True, **kwargs):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
                         output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                         output_router_logits=output_router_logits)
        logits = self.lm_head(keep_positions(out.last_hidden_state, logits_to_keep))
        loss = causal_lm_loss(logits, labels, kwargs.get("num_items_in_batch")) if labels is not None else None
        fields = dict(loss=loss, logits=logits, past_key_values=out.past_key_values, hidden_states=out.hidden_states,
                      attentions=out.attentions)
        if isinstance(out, MoeModelOutputWithPast):
            result = MoeCausalLMOutputWithPast(**fields, router_logits=out.router_logits)
        else:
            result = CausalLMOutputWithPast(**fields)
        return result if return_dict else result.to_tuple()


class _ForSequenceClassification:
    """``model`` + ``score`` (H -> num_labels, no bias), pooled at each row's last non-pad token."""

    base_model_class: ClassVar[type]
    ignored_on_load = ("lm_head.weight",)

    def __init__(self, config: HunYuanTextConfigBase, attn_implementation: str | None = None) -> None:
        super().__init__(config)
        self.num_labels = num_labels(config)
        self.model = self.base_model_class(config, init_weights=False)
        self.score = Linear(config.hidden_size, self.num_labels, bias=False)
        self.set_attn_implementation(attn_implementation or getattr(config, "_attn_implementation", None))
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, output_attentions=False,
                output_hidden_states=False, return_dict=True, **kwargs) -> SequenceClassifierOutputWithPast:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
                         output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        logits = self.score(out.last_hidden_state)  # (B, L, num_labels)
        b = logits.shape[0]
        last = last_token_index(input_ids, b, self.config.pad_token_id)
        pooled = logits[torch.arange(b, device=logits.device), last]
        loss = None
        if labels is not None:
            loss, self.config.problem_type = classification_loss(pooled, labels, self.num_labels,
                                                                 getattr(self.config, "problem_type", None))
        result = SequenceClassifierOutputWithPast(loss=loss, logits=pooled, past_key_values=out.past_key_values,
                                                  hidden_states=out.hidden_states, attentions=out.attentions)
        return result if return_dict else result.to_tuple()


def num_labels(config: HunYuanTextConfigBase) -> int:
    """``num_labels``, else the size of ``id2label``, else 2 (transformers' default)."""
    explicit = getattr(config, "extra", {}).get("num_labels")
    if explicit is not None:
        return int(explicit)
    id2label = getattr(config, "extra", {}).get("id2label")
    return len(id2label) if id2label else 2


class HunYuanDenseV1ForCausalLM(_ForCausalLM, HunYuanDenseV1PreTrainedModel):
    base_model_class = HunYuanDenseV1Model


class HunYuanMoEV1ForCausalLM(_ForCausalLM, HunYuanMoEV1PreTrainedModel):
    base_model_class = HunYuanMoEV1Model


class HunYuanDenseV1ForSequenceClassification(_ForSequenceClassification, HunYuanDenseV1PreTrainedModel):
    base_model_class = HunYuanDenseV1Model


class HunYuanMoEV1ForSequenceClassification(_ForSequenceClassification, HunYuanMoEV1PreTrainedModel):
    base_model_class = HunYuanMoEV1Model

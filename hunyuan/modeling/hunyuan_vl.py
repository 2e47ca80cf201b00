"""HunYuanVL: vision tower -> merged image tokens scattered into the text embeddings -> xD-RoPE decoder -> LM head.

Image tokens: each image becomes ``<start> <img> x N <end>`` in the ids with N = mh*(mw+1) + 2 (a learned begin
vector, mh rows of mw merged patches plus a newline column, a learned end vector). Their xD-RoPE positions come from
``get_rope_index``: the begin/end tokens keep sequential positions, the grid tokens get (column, row, image index).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import HunYuanVLConfig
from ..loading import HUNYUAN_VL_FORMAT, CheckpointFormat
from .base import HunYuanPreTrainedModel
from .heads import causal_lm_loss, keep_positions
from .layers import Linear
from .outputs import BaseModelOutputWithPooling, CausalLMOutputWithPast, HunYuanVLModelOutputWithPast
from .text import HunYuanDecoder
from .vision import HunYuanVLVisionTransformer


class HunYuanVLTextModel(HunYuanDecoder):
    """The dense text backbone of HunYuanVL (xD-RoPE, q/k rotated in fp32; both follow from HunYuanVLTextConfig)."""


class HunYuanVLModel(HunYuanPreTrainedModel):
    """Vision tower + text backbone, without the LM head."""

    config_class = HunYuanVLConfig
    # the base model's names lack the "model." prefix; the LM head in a full checkpoint is skipped
    checkpoint_format = CheckpointFormat(load_rules=HUNYUAN_VL_FORMAT.load_rules + ((r"^model\.", ""),),
                                         save_rules=((r"^", "model."),) + HUNYUAN_VL_FORMAT.save_rules)
    ignored_on_load = ("lm_head.weight",)

    def __init__(self, config: HunYuanVLConfig, attn_implementation: str | None = None,
                 init_weights: bool = True) -> None:
        super().__init__(config)
        self.language_model = HunYuanVLTextModel(config.text_config)
        self.vision_tower = HunYuanVLVisionTransformer(config.vision_config)
        self.rope_deltas: torch.Tensor | None = None
        if init_weights:
            self.set_attn_implementation(attn_implementation or getattr(config, "_attn_implementation", None))
            self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.language_model.embed_tokens

    # -- images ------------------------------------------------------------------------------------------------------
    def image_token_counts(self, image_grid_thw: torch.Tensor) -> list[int]:
        """Tokens per image in the text stream: mh * (mw + 1) + 2."""
        m = self.config.vision_config.spatial_merge_size
        mh, mw = (image_grid_thw[:, 1:] // m).unbind(-1)
        return (mh * (mw + 1) + 2).tolist()

    def get_image_features(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor,
                           return_dict: bool = True, **kwargs) -> BaseModelOutputWithPooling:
        """Run the vision tower; ``pooler_output`` is a tuple with one (N_i, H_text) tensor per image."""
        if image_grid_thw is None:
            raise ValueError("pixel_values were given without image_grid_thw (one [1, gh, gw] row per image)")
        out = self.vision_tower(pixel_values.to(self.vision_tower.dtype), image_grid_thw, **kwargs)
        out.pooler_output = torch.split(out.pooler_output[0], self.image_token_counts(image_grid_thw))
        return out if return_dict else out.to_tuple()

    def get_placeholder_mask(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor,
                             image_features: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, 1) boolean mask of the image-token positions; checks that their count equals the features'."""
        if input_ids is None:
            token = torch.tensor(self.config.image_token_id, device=inputs_embeds.device)
            mask = (inputs_embeds == self.get_input_embeddings()(token)).all(-1)
        else:
            mask = input_ids == self.config.image_token_id
        if image_features is not None:
            n_tokens, n_features = int(mask.sum()), image_features.shape[0]
            if n_tokens != n_features:
                raise ValueError(f"Image features and image tokens do not match: tokens: {n_tokens}, "
                                 f"features {n_features}")
        return mask.unsqueeze(-1)

    # -- positions ---------------------------------------------------------------------------------------------------
    def get_rope_index(self, input_ids: torch.Tensor, mm_token_type_ids: torch.Tensor,
                       image_grid_thw: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                       **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """xD-RoPE positions (A, B, L) and rope deltas (B, 1).

        Every valid token starts with its sequential index on all axes (padding gets 0). Each run of image tokens
        (``mm_token_type_ids == 1``) takes the next ``image_grid_thw`` row; its grid tokens get column (axis A-3),
        row (A-2) and the image's ordinal *within its batch row* (A-1; spec 13.2: a row's result never depends on
        the other rows). A run of G+2 tokens keeps sequential positions on its first and last (begin/end) token.
        """
        section = self.config.text_config.rope_parameters.get("mrope_section") or []
        a = len(section)
        if a < 3:
            raise ValueError(f"HunYuanVL expects at least 3 multimodal RoPE axes (mrope_section), got {a}")
        b, l = input_ids.shape
        device = input_ids.device
        position_ids = torch.zeros(a, b, l, dtype=input_ids.dtype, device=device)
        grids = image_grid_thw.tolist() if image_grid_thw is not None else []
        m = self.config.vision_config.spatial_merge_size
        next_grid, deltas = 0, []
        for row in range(b):
            valid = attention_mask[row].bool() if attention_mask is not None else torch.ones(l, dtype=torch.bool,
                                                                                             device=device)
            n = int(valid.sum())
            pos = torch.arange(n, dtype=input_ids.dtype, device=device).expand(a, n).clone()
            is_image = (mm_token_type_ids[row][valid] == 1).int() if grids else torch.zeros(n, dtype=torch.int)
            edges = torch.diff(F.pad(is_image, (1, 1))).tolist() if n else []
            starts = [i for i, e in enumerate(edges) if e == 1]
            ends = [i for i, e in enumerate(edges) if e == -1]
            for image_index, (start, end) in enumerate(zip(starts, ends)):
                if next_grid >= len(grids):
                    raise ValueError("Found more image placeholder spans than entries in `image_grid_thw`.")
                _, gh, gw = grids[next_grid]
                next_grid += 1
                mh, mw = gh // m, gw // m
                span, grid_tokens = end - start, mh * (mw + 1)
                if span not in (grid_tokens, grid_tokens + 2):
                    raise ValueError(f"Image placeholder span length does not match `image_grid_thw`: "
                                     f"span_length={span}, expected {grid_tokens} or {grid_tokens + 2}.")
                g0 = start + 1 if span == grid_tokens + 2 else start
                rows, cols = torch.meshgrid(torch.arange(mh, device=device), torch.arange(mw + 1, device=device),
                                            indexing="ij")
                pos[a - 3, g0:g0 + grid_tokens] = cols.flatten().to(pos.dtype)
                pos[a - 2, g0:g0 + grid_tokens] = rows.flatten().to(pos.dtype)
                pos[a - 1, g0:g0 + grid_tokens] = image_index
            position_ids[:, row, valid] = pos
            deltas.append((int(pos.max()) + 1 - n) if n else 0)
        if image_grid_thw is not None and next_grid != len(grids):
            raise ValueError(f"Found fewer image placeholder spans than entries in `image_grid_thw`: "
                             f"spans={next_grid}, images={len(grids)}.")
        return position_ids, torch.tensor(deltas, device=device).unsqueeze(1)

    def _compute_positions(self, input_ids, image_grid_thw, attention_mask, past_key_values, mm_token_type_ids):
        if image_grid_thw is not None and mm_token_type_ids is None and input_ids is not None:
            raise ValueError("Multimodal data was passed via `image_grid_thw` but `mm_token_type_ids` is missing; "
                             "pass the `mm_token_type_ids` the processor returns alongside `input_ids`.")
        past = past_key_values.get_seq_length() if past_key_values is not None else 0
        if input_ids is None or image_grid_thw is None or past != 0:
            return None
        position_ids, self.rope_deltas = self.get_rope_index(input_ids, mm_token_type_ids, image_grid_thw,
                                                             attention_mask)
        return position_ids

    # -- forward -----------------------------------------------------------------------------------------------------
    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache=None, pixel_values=None, image_grid_thw=None, mm_token_type_ids=None,
                mm_encoder_outputs=None, output_attentions=False, output_hidden_states=False, return_dict=True,
                **kwargs):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if pixel_values is not None and mm_encoder_outputs is not None:
            raise ValueError("You cannot specify both pixel_values and mm_encoder_outputs at the same time")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)

        image_outputs = (mm_encoder_outputs or {}).get("image")
        if image_outputs is None and pixel_values is not None:
            image_outputs = self.get_image_features(pixel_values, image_grid_thw)
        image_embeds = None
        if image_outputs is not None:
            image_embeds = torch.cat(tuple(image_outputs.pooler_output)).to(inputs_embeds.device, inputs_embeds.dtype)
            mask = self.get_placeholder_mask(input_ids, inputs_embeds, image_embeds)
            inputs_embeds = inputs_embeds.masked_scatter(mask, image_embeds)  # one scatter for all images

        if position_ids is None:
            position_ids = self._compute_positions(input_ids, image_grid_thw, attention_mask, past_key_values,
                                                   mm_token_type_ids)
        out = self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                  position_ids=position_ids, past_key_values=past_key_values, use_cache=use_cache,
                                  output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        result = HunYuanVLModelOutputWithPast(last_hidden_state=out.last_hidden_state,
                                              past_key_values=out.past_key_values, hidden_states=out.hidden_states,
                                              attentions=out.attentions, image_hidden_states=image_embeds)
        return result if return_dict else result.to_tuple()


class HunYuanVLForConditionalGeneration(HunYuanPreTrainedModel):
    """HunYuanVL with its LM head (tied to the input embeddings in the released checkpoints)."""

    config_class = HunYuanVLConfig
    checkpoint_format = HUNYUAN_VL_FORMAT
    tied_weights = {"lm_head.weight": "model.language_model.embed_tokens.weight"}

    def __init__(self, config: HunYuanVLConfig, attn_implementation: str | None = None) -> None:
        super().__init__(config)
        self.model = HunYuanVLModel(config, init_weights=False)
        self.lm_head = Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.vocab_size = config.text_config.vocab_size
        self.set_attn_implementation(attn_implementation or getattr(config, "_attn_implementation", None))
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def get_image_features(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor | None = None, **kwargs):
        return self.model.get_image_features(pixel_values, image_grid_thw, **kwargs)

    def generation_positions(self, input_ids, attention_mask, mm_token_type_ids=None, image_grid_thw=None):
        """xD-RoPE positions of a prompt (``get_rope_index``) when it has images, else plain per-row counts."""
        if image_grid_thw is None:
            return super().generation_positions(input_ids, attention_mask)
        if mm_token_type_ids is None:
            raise ValueError("generate() got image_grid_thw without mm_token_type_ids; pass every output of the "
                             "processor (mm_token_type_ids marks the image tokens)")
        positions, self.model.rope_deltas = self.model.get_rope_index(input_ids, mm_token_type_ids, image_grid_thw,
                                                                      attention_mask)
        return positions

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, logits_to_keep=0, pixel_values=None,
                image_grid_thw=None, mm_token_type_ids=None, mm_encoder_outputs=None, output_attentions=False,
                output_hidden_states=False, return_dict=True, **kwargs) -> CausalLMOutputWithPast:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
                         pixel_values=pixel_values, image_grid_thw=image_grid_thw,
                         mm_token_type_ids=mm_token_type_ids, mm_encoder_outputs=mm_encoder_outputs,
                         output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        logits = self.lm_head(keep_positions(out.last_hidden_state, logits_to_keep))
        loss = causal_lm_loss(logits, labels, kwargs.get("num_items_in_batch")) if labels is not None else None
        result = CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=out.past_key_values,
                                        hidden_states=out.hidden_states, attentions=out.attentions)
        return result if return_dict else result.to_tuple()

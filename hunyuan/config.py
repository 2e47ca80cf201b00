"""Configuration classes for the HunYuan family.

Every config is a plain dataclass built from keyword arguments (or a ``config.json`` dict). All legacy spellings
Tencent checkpoints carry on disk are normalised in exactly one place, the ``_normalize`` classmethod of each
config, so the modeling code only ever reads canonical fields:

* HunyuanOCR 1.0 ships a *flat* ``config.json`` (text fields at top level, ``pad_id``, ``attention_head_dim``,
  ``org_vocab_size``, ``rope_theta`` + ``rope_scaling {type: xdrope, alpha, xdrope_section}``);
* HunyuanOCR 1.5 ships the nested layout (``text_config`` / ``vision_config``, ``rope_parameters``).

Unknown keys are kept (readable as attributes, written back by ``to_dict``) but never change the architecture.
Invalid values raise ``ValueError`` naming the field, the value and what was expected.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

CONFIG_NAME = "config.json"

# Rope types the text models understand (after legacy normalisation); "xdrope" is the HunyuanOCR 1.0 spelling of
# "dynamic" and is rewritten on load, as transformers does.
ROPE_TYPES = ("default", "linear", "dynamic")
ACTIVATIONS = ("silu", "gelu", "gelu_pytorch_tanh", "relu")
POS_EMBED_RESIZE_MODES = ("original", "transformers")
INTERPOLATE_MODES = ("bilinear", "bicubic", "nearest")


def _fail(cls_name: str, field_name: str, value: Any, expected: str) -> None:
    raise ValueError(f"{cls_name}.{field_name}={value!r} is invalid: expected {expected}.")


def _check_positive_int(cls_name: str, **values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            _fail(cls_name, name, value, "a positive integer")


class BaseConfig:
    """Shared machinery: construction from kwargs with aliases, extras, dict/JSON round trips."""

    model_type: ClassVar[str] = ""
    # written as config.json's "architectures" when the config carries none (standalone LM configs)
    default_architecture: ClassVar[str | None] = None
    # legacy name -> canonical field; read and write through the alias work (``config.pad_id``)
    aliases: ClassVar[dict[str, str]] = {}

    def __init__(self, **kwargs: Any) -> None:
        kwargs = self._normalize(dict(kwargs))
        kwargs.pop("model_type", None)
        extra = {}
        names = {f.name for f in dataclasses.fields(self)}
        for f in dataclasses.fields(self):
            if f.name in kwargs:
                value = kwargs.pop(f.name)
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                value = f.default
            object.__setattr__(self, f.name, value)
        for key, value in kwargs.items():
            if key not in names:
                extra[key] = value
        object.__setattr__(self, "extra", extra)
        self._finalize()
        self.validate()

    # -- hooks -------------------------------------------------------------------------------------------------------
    @classmethod
    def _normalize(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Map legacy aliases onto canonical names. The alias wins when both are present (real OCR configs carry
        ``pad_token_id: -1`` next to ``pad_id: 120002``)."""
        for alias, canonical in cls.aliases.items():
            if alias in kwargs:
                kwargs[canonical] = kwargs.pop(alias)
        return kwargs

    def _finalize(self) -> None:
        """Fill derived defaults (after all fields are set)."""

    def validate(self) -> None:
        """Raise ValueError for inconsistent values."""

    # -- attribute access for aliases and extras ---------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails
        if name in type(self).aliases:
            return getattr(self, type(self).aliases[name])
        extra = self.__dict__.get("extra", {})
        if name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        name = type(self).aliases.get(name, name)
        if name.startswith("_") or name in {f.name for f in dataclasses.fields(self)} or name == "extra":
            object.__setattr__(self, name, value)
        else:
            self.__dict__.setdefault("extra", {})[name] = value

    # -- serialisation -----------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **overrides: Any):
        return cls(**{**copy.deepcopy(config_dict), **overrides})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model_type": self.model_type}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, BaseConfig) else copy.deepcopy(value)
        out.update(copy.deepcopy(self.extra))
        if self.default_architecture:
            out.setdefault("architectures", [self.default_architecture])
        return out

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        os.makedirs(save_directory, exist_ok=True)
        with open(os.path.join(save_directory, CONFIG_NAME), "w", encoding="utf-8") as fh:
            fh.write(self.to_json_string())

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, *, subfolder: str = "", **hub_kwargs: Any):
        """Read ``config.json`` from a local directory, a file path, or a hub repo id (local cache first)."""
        from .loading import read_json_object, resolve_file

        path = str(path_or_repo_id)
        if os.path.isfile(path):
            config_file = path
        else:
            config_file = resolve_file(path, CONFIG_NAME, subfolder=subfolder, **hub_kwargs)
        return cls.from_dict(read_json_object(config_file))

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()


# ---------------------------------------------------------------------------------------------------------------------
# Rope parameters
# ---------------------------------------------------------------------------------------------------------------------


def normalize_rope(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Fold legacy ``rope_theta`` / ``rope_scaling`` into ``rope_parameters`` and canonicalise its keys.

    ``type`` -> ``rope_type``; ``xdrope`` -> ``dynamic`` (it is NTK-alpha scaling plus xD sections);
    ``xdrope_section`` -> ``mrope_section`` (both present and different -> ValueError).
    """
    rope_theta = kwargs.pop("rope_theta", None)
    rope_scaling = kwargs.pop("rope_scaling", None)
    params = kwargs.get("rope_parameters")
    params = dict(params) if params else dict(rope_scaling or {})
    if "type" in params:
        params.setdefault("rope_type", params["type"])
        del params["type"]
    if params.get("rope_type", "default") == "xdrope":
        params["rope_type"] = "dynamic"
    params.setdefault("rope_type", "default")
    if "rope_theta" not in params:
        params["rope_theta"] = float(rope_theta) if rope_theta is not None else 10000.0
    legacy = params.pop("xdrope_section", None)
    if legacy is not None:
        current = params.get("mrope_section")
        if current is not None and [float(v) for v in current] != [float(v) for v in legacy]:
            raise ValueError(
                "rope parameters contain both mrope_section and legacy xdrope_section, but they differ: "
                f"mrope_section={current}, xdrope_section={legacy}"
            )
        params["mrope_section"] = legacy
    kwargs["rope_parameters"] = params
    return kwargs


def validate_rope(cls_name: str, params: dict[str, Any], head_dim: int) -> None:
    rope_type = params.get("rope_type")
    if rope_type not in ROPE_TYPES:
        _fail(cls_name, "rope_parameters.rope_type", rope_type, f"one of {ROPE_TYPES} (or legacy 'xdrope')")
    theta = params.get("rope_theta")
    if not isinstance(theta, (int, float)) or theta <= 0:
        _fail(cls_name, "rope_parameters.rope_theta", theta, "a positive number")
    if rope_type == "linear" and not _positive_number(params.get("factor")):
        _fail(cls_name, "rope_parameters.factor", params.get("factor"), "a positive number for linear rope")
    if rope_type == "dynamic":
        alpha, factor = params.get("alpha"), params.get("factor")
        if alpha is not None and not _positive_number(alpha):
            _fail(cls_name, "rope_parameters.alpha", alpha, "a positive number (NTK-alpha scaling)")
        if alpha is None and not _positive_number(factor):
            _fail(cls_name, "rope_parameters", params, "'alpha' (NTK-alpha) or 'factor' (dynamic NTK) for dynamic rope")
    section = params.get("mrope_section")
    if section is None:
        return
    if not isinstance(section, (list, tuple)) or not section or not all(_integral(v) for v in section):
        _fail(cls_name, "rope_parameters.mrope_section", section, "a non-empty list of integers")
    ints = [int(v) for v in section]
    if sum(ints) != head_dim // 2 or any(v < 0 for v in ints):
        _fail(cls_name, "rope_parameters.mrope_section", ints,
              f"non-negative half-head sections summing to head_dim // 2 = {head_dim // 2} (sum is {sum(ints)})")
    params["mrope_section"] = ints


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _integral(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()


# ---------------------------------------------------------------------------------------------------------------------
# Text backbone configs
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(init=False, repr=False, eq=False)
class HunYuanTextConfigBase(BaseConfig):
    """Fields shared by every HunYuan decoder (Dense V1, MoE V1, the VL text backbone)."""

    vocab_size: int = 290943
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-5
    use_cache: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    eod_token_id: int | None = 3
    pretraining_tp: int = 1
    tie_word_embeddings: bool = False
    rope_parameters: dict[str, Any] | None = None
    attention_bias: bool = False
    attention_dropout: float = 0.0
    head_dim: int | None = None

    # the VL text model rotates q/k in fp32 (transformers upcasts there); Dense/MoE rotate in the model dtype
    rope_in_fp32: ClassVar[bool] = False

    @classmethod
    def _normalize(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        return normalize_rope(super()._normalize(kwargs))

    def _finalize(self) -> None:
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None and isinstance(self.num_attention_heads, int) and self.num_attention_heads > 0:
            # project decision (spec 13.3): the reference crashes on head_dim=None; we fall back to H / heads
            self.head_dim = self.hidden_size // self.num_attention_heads

    def validate(self) -> None:
        name = type(self).__name__
        _check_positive_int(name, vocab_size=self.vocab_size, hidden_size=self.hidden_size,
                            intermediate_size=self.intermediate_size, num_hidden_layers=self.num_hidden_layers,
                            num_attention_heads=self.num_attention_heads,
                            num_key_value_heads=self.num_key_value_heads, head_dim=self.head_dim)
        if self.num_attention_heads % self.num_key_value_heads:
            _fail(name, "num_key_value_heads", self.num_key_value_heads,
                  f"a divisor of num_attention_heads={self.num_attention_heads}")
        if self.head_dim % 2:
            _fail(name, "head_dim", self.head_dim, "an even number (rotary pairs)")
        if self.hidden_act not in ACTIVATIONS:
            _fail(name, "hidden_act", self.hidden_act, f"one of {ACTIVATIONS}")
        if not _positive_number(self.rms_norm_eps):
            _fail(name, "rms_norm_eps", self.rms_norm_eps, "a positive number")
        validate_rope(name, self.rope_parameters, self.head_dim)

    @property
    def rope_scaling(self) -> dict[str, Any]:
        """Read alias of ``rope_parameters`` (transformers keeps it for old code)."""
        return self.rope_parameters


@dataclass(init=False, repr=False, eq=False)
class HunYuanVLTextConfig(HunYuanTextConfigBase):
    """Text backbone of HunYuanVL. Legacy aliases: ``attention_head_dim``, ``org_vocab_size``, ``pad_id``."""

    model_type: ClassVar[str] = "hunyuan_vl_text"
    aliases: ClassVar[dict[str, str]] = {
        "attention_head_dim": "head_dim",
        "org_vocab_size": "vocab_size",
        "pad_id": "pad_token_id",
    }
    rope_in_fp32: ClassVar[bool] = True

    tie_word_embeddings: bool = True
    sep_token_id: int | None = 4

    def validate(self) -> None:
        super().validate()
        section = self.rope_parameters.get("mrope_section")
        if section is not None and len(section) < 3:
            # images need (width, height, image index) axes; no sections at all means plain 1-D RoPE (text only)
            _fail(type(self).__name__, "rope_parameters.mrope_section", section,
                  "at least 3 xD-RoPE axes ([sequence,] width, height, image index)")

    @property
    def mrope_section(self) -> list[int] | None:
        return self.rope_parameters.get("mrope_section")


@dataclass(init=False, repr=False, eq=False)
class HunYuanDenseV1Config(HunYuanTextConfigBase):
    """HunYuan dense language model (Hunyuan-0.5B ... 7B). ``head_dim=None`` falls back to hidden / heads."""

    model_type: ClassVar[str] = "hunyuan_v1_dense"
    default_architecture: ClassVar[str | None] = "HunYuanDenseV1ForCausalLM"


@dataclass(init=False, repr=False, eq=False)
class HunYuanMoEV1Config(HunYuanTextConfigBase):
    """HunYuan mixture-of-experts language model (Hunyuan-A13B). Every layer is an MoE block: ``num_experts``
    routed experts of width ``intermediate_size`` (top-``moe_topk``, an int or one value per layer) plus one shared
    MLP of the same width.

    The A13B config.json also carries ``moe_intermediate_size``, ``num_shared_expert``, ``use_mixed_mlp_moe``,
    ``use_qk_norm`` and ``use_cla``. They are kept (written back by ``to_dict``) and, as in transformers, do not
    change the architecture; values that would describe a different architecture (CLA, several shared experts, no
    shared expert) are rejected here, and an expert width that differs from ``intermediate_size`` is named in the
    error when the checkpoint's expert shapes do not match.
    """

    model_type: ClassVar[str] = "hunyuan_v1_moe"
    default_architecture: ClassVar[str | None] = "HunYuanMoEV1ForCausalLM"
    aliases: ClassVar[dict[str, str]] = {"num_experts_per_tok": "moe_topk", "num_local_experts": "num_experts"}

    sep_token_id: int | None = 4
    num_experts: int = 1
    output_router_logits: bool = False
    moe_topk: int | list[int] = 1

    @classmethod
    def _normalize(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs = super()._normalize(kwargs)
        experts = kwargs.get("num_experts")
        if isinstance(experts, (list, tuple)) and experts and len(set(experts)) == 1:
            kwargs["num_experts"] = experts[0]  # a per-layer list of one value is that value
        return kwargs

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        if isinstance(self.num_experts, (list, tuple)):
            _fail(name, "num_experts", self.num_experts, "one int for every layer (per-layer expert counts differ "
                  "from what the released models and transformers support)")
        _check_positive_int(name, num_experts=self.num_experts)
        topk = self.moe_topk if isinstance(self.moe_topk, (list, tuple)) else [self.moe_topk]
        if isinstance(self.moe_topk, (list, tuple)) and len(topk) != self.num_hidden_layers:
            _fail(name, "moe_topk", self.moe_topk, f"an int or a list of num_hidden_layers={self.num_hidden_layers} "
                  f"ints (got {len(topk)} values)")
        for k in topk:
            if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= self.num_experts:
                _fail(name, "moe_topk", self.moe_topk, f"values in [1, num_experts={self.num_experts}]")
        if self.extra.get("use_cla"):
            _fail(name, "use_cla", self.extra["use_cla"], "false: cross-layer attention (Hunyuan-Large) is not "
                  "part of HunYuanMoEV1")
        shared = self.extra.get("num_shared_expert")
        for n in shared if isinstance(shared, (list, tuple)) else ([shared] if shared is not None else []):
            if n != 1:
                _fail(name, "num_shared_expert", shared, "1 per layer (HunYuanMoEV1 has exactly one shared MLP)")
        if self.extra.get("use_mixed_mlp_moe") is False:
            _fail(name, "use_mixed_mlp_moe", False, "true or absent (HunYuanMoEV1 always adds the shared MLP)")

    def top_k(self, layer_idx: int) -> int:
        """Experts per token in layer ``layer_idx``."""
        return self.moe_topk[layer_idx] if isinstance(self.moe_topk, (list, tuple)) else self.moe_topk

    @property
    def expert_width_note(self) -> str:
        """Why expert shapes may not match: a ``moe_intermediate_size`` that differs from ``intermediate_size``."""
        widths = self.extra.get("moe_intermediate_size")
        widths = widths if isinstance(widths, (list, tuple)) else [widths]
        if any(w is not None and w != self.intermediate_size for w in widths):
            return (f" config.moe_intermediate_size={self.extra['moe_intermediate_size']} differs from "
                    f"intermediate_size={self.intermediate_size}; HunYuanMoEV1 (like transformers) builds its experts "
                    "with intermediate_size, so this checkpoint describes a different architecture.")
        return ""


# ---------------------------------------------------------------------------------------------------------------------
# Vision tower config
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(init=False, repr=False, eq=False)
class HunYuanVLVisionConfig(BaseConfig):
    """Vision tower (SigLIP-derived NaViT) plus patch merger."""

    model_type: ClassVar[str] = "hunyuan_vl_vision"
    aliases: ClassVar[dict[str, str]] = {"attention_heads": "num_attention_heads", "layer_norm_eps": "rms_norm_eps"}

    hidden_act: str = "gelu"
    hidden_size: int = 1152
    intermediate_size: int = 4304
    interpolate_mode: str = "bilinear"
    rms_norm_eps: float = 1e-5
    attention_dropout: float = 0.0
    num_attention_heads: int = 16
    num_key_value_heads: int | None = None
    num_channels: int = 3
    num_hidden_layers: int = 27
    out_hidden_size: int = 4096
    patch_size: int = 16
    spatial_merge_size: int = 2
    temporal_patch_size: int = 1
    img_max_token_num: int = 4096
    max_image_size: int = 2048
    min_image_size: int = 512
    max_vit_seq_len: int = 16384
    text_hidden_size: int = 3072
    # how the learned 128x128 position grid is resized per image (spec 13.1): "original" is the formula the model
    # was trained with (HunYuan's own code, vLLM, llama.cpp); "transformers" reproduces transformers 5.23 exactly.
    pos_embed_resize: str = "original"

    def _finalize(self) -> None:
        if not self.num_key_value_heads:
            self.num_key_value_heads = self.num_attention_heads

    def validate(self) -> None:
        name = type(self).__name__
        _check_positive_int(name, hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
                            num_attention_heads=self.num_attention_heads, num_channels=self.num_channels,
                            num_hidden_layers=self.num_hidden_layers, patch_size=self.patch_size,
                            spatial_merge_size=self.spatial_merge_size, max_image_size=self.max_image_size,
                            min_image_size=self.min_image_size, text_hidden_size=self.text_hidden_size)
        if self.hidden_size % self.num_attention_heads:
            _fail(name, "num_attention_heads", self.num_attention_heads,
                  f"a divisor of hidden_size={self.hidden_size}")
        if self.max_image_size % self.patch_size:
            _fail(name, "max_image_size", self.max_image_size, f"a multiple of patch_size={self.patch_size}")
        if self.pos_embed_resize not in POS_EMBED_RESIZE_MODES:
            _fail(name, "pos_embed_resize", self.pos_embed_resize, f"one of {POS_EMBED_RESIZE_MODES}")
        if self.interpolate_mode not in INTERPOLATE_MODES:
            _fail(name, "interpolate_mode", self.interpolate_mode, f"one of {INTERPOLATE_MODES}")
        if self.hidden_act not in ACTIVATIONS:
            _fail(name, "hidden_act", self.hidden_act, f"one of {ACTIVATIONS}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def position_grid_edge(self) -> int:
        """Edge E of the learned E x E position grid (128 for the real model)."""
        return self.max_image_size // self.patch_size


# ---------------------------------------------------------------------------------------------------------------------
# Top-level VL config
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(init=False, repr=False, eq=False)
class HunYuanVLConfig(BaseConfig):
    """HunYuanVL = vision tower + patch merger + dense text backbone.

    Accepts the nested layout (``text_config`` / ``vision_config``) and the flat legacy HunyuanOCR 1.0 layout, where
    every text field sits at top level; those are moved into ``text_config`` here and nowhere else.
    """

    model_type: ClassVar[str] = "hunyuan_vl"

    text_config: HunYuanVLTextConfig = field(default_factory=dict)
    vision_config: HunYuanVLVisionConfig = field(default_factory=dict)
    image_token_id: int = 120120
    tie_word_embeddings: bool = True
    im_start_id: int = 120118
    im_end_id: int = 120119
    im_newline_id: int = 120121

    @classmethod
    def _normalize(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        text = kwargs.get("text_config")
        if text is None:
            text_keys = {f.name for f in dataclasses.fields(HunYuanVLTextConfig)}
            text_keys |= set(HunYuanVLTextConfig.aliases) | {"rope_scaling", "rope_theta"}
            # tie_word_embeddings is a top-level field, so (as in transformers) it is not moved
            text = {k: kwargs.pop(k) for k in list(kwargs) if k in text_keys and k != "tie_word_embeddings"}
        if isinstance(text, dict):
            text = HunYuanVLTextConfig.from_dict(text)
        vision = kwargs.get("vision_config") or {}
        if isinstance(vision, dict):
            vision = HunYuanVLVisionConfig.from_dict(vision)
        if not isinstance(text, HunYuanVLTextConfig) or not isinstance(vision, HunYuanVLVisionConfig):
            raise ValueError(
                "HunYuanVLConfig: text_config / vision_config must be dicts or HunYuanVLTextConfig / "
                f"HunYuanVLVisionConfig, got {type(text).__name__} / {type(vision).__name__}"
            )
        # the merger projects into the text hidden size whatever the vision config says (spec 1.4)
        vision.text_hidden_size = text.hidden_size
        kwargs["text_config"], kwargs["vision_config"] = text, vision
        if not kwargs.get("tie_word_embeddings", True) and text.tie_word_embeddings:
            kwargs["tie_word_embeddings"] = True
        return kwargs

    def validate(self) -> None:
        _check_positive_int(type(self).__name__, image_token_id=self.image_token_id)
        if self.image_token_id >= self.text_config.vocab_size:
            _fail(type(self).__name__, "image_token_id", self.image_token_id,
                  f"an id below text_config.vocab_size={self.text_config.vocab_size}")

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.setdefault("architectures", ["HunYuanVLForConditionalGeneration"])
        return out

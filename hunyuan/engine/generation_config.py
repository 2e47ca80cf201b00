"""``GenerationConfig``: the decoding parameters of ``generate``, read from a checkpoint's ``generation_config.json``
(falling back to the model config's eos/pad/bos ids) and overridden per call, with the transformers field names."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

GENERATION_CONFIG_NAME = "generation_config.json"
# used when neither the call nor generation_config.json bounds the length (the HunyuanOCR demo's value)
DEFAULT_MAX_NEW_TOKENS = 1024
# keys of generation_config.json that ask for something this engine does not do
_UNSUPPORTED = {"num_beams": 1, "num_return_sequences": 1, "num_beam_groups": 1, "penalty_alpha": None,
                "assistant_model": None}


@dataclass
class GenerationConfig:
    max_new_tokens: int | None = None
    max_length: int | None = None
    min_new_tokens: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GenerationConfig:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in values.items() if k in names}
        return cls(**known, extra={k: v for k, v in values.items() if k not in names})

    @classmethod
    def from_model_config(cls, config: Any) -> GenerationConfig:
        """eos/pad/bos from a model config (the text config of a VL model), as transformers derives them."""
        text = getattr(config, "text_config", config)
        return cls(eos_token_id=getattr(text, "eos_token_id", None), pad_token_id=getattr(text, "pad_token_id", None),
                   bos_token_id=getattr(text, "bos_token_id", None))

    @classmethod
    def from_checkpoint(cls, values: dict[str, Any], model_config: Any = None) -> GenerationConfig:
        """From a checkpoint's ``generation_config.json`` contents (``{}`` when it has none); ids the file omits
        come from the model config."""
        base = cls.from_model_config(model_config) if model_config is not None else cls()
        values = dict(values)
        for key in ("eos_token_id", "pad_token_id", "bos_token_id"):
            if values.get(key) is None:
                values[key] = getattr(base, key)
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **{k: v for k, v in out.items() if v is not None}}

    def save_pretrained(self, directory: str) -> None:
        with open(os.path.join(directory, GENERATION_CONFIG_NAME), "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=2, sort_keys=True)
            fh.write("\n")

    def update(self, **overrides: Any) -> GenerationConfig:
        """A copy with call-time overrides (None keeps the stored value); unknown names are an error."""
        names = {f.name for f in dataclasses.fields(self)} - {"extra"}
        unknown = sorted(set(overrides) - names - set(_UNSUPPORTED))
        if unknown:
            raise TypeError(f"generate() got unexpected keyword arguments {unknown}; supported: {sorted(names)}")
        new = dataclasses.replace(self, extra=dict(self.extra))
        for key, value in overrides.items():
            if key in _UNSUPPORTED:
                new.extra[key] = value
            elif value is not None:
                setattr(new, key, value)
        new.validate()
        return new

    # -- derived values ----------------------------------------------------------------------------------------------
    @property
    def eos_token_ids(self) -> list[int]:
        eos = self.eos_token_id
        return [] if eos is None else [int(eos)] if isinstance(eos, int) else [int(e) for e in eos]

    def new_token_budget(self, prompt_length: int) -> int:
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        if self.max_length is not None:
            return max(self.max_length - prompt_length, 0)
        return DEFAULT_MAX_NEW_TOKENS

    def validate(self) -> None:
        for key, allowed in _UNSUPPORTED.items():
            value = self.extra.get(key, allowed)
            if value != allowed and value is not None:
                raise ValueError(f"{key}={value!r} is not supported by this engine (greedy decoding and sampling "
                                 f"only); use {key}={allowed!r}")
        checks = [
            ("max_new_tokens", self.max_new_tokens is None or _int(self.max_new_tokens) and self.max_new_tokens >= 0,
             "an integer >= 0"),
            ("min_new_tokens", _int(self.min_new_tokens) and self.min_new_tokens >= 0, "an integer >= 0"),
            ("temperature", _num(self.temperature) and self.temperature > 0, "a number > 0"),
            ("top_k", self.top_k is None or _int(self.top_k) and self.top_k >= 0, "an integer >= 0 (0 = off)"),
            ("top_p", _num(self.top_p) and 0 < self.top_p <= 1, "a number in (0, 1]"),
            ("repetition_penalty", _num(self.repetition_penalty) and self.repetition_penalty > 0, "a number > 0"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: expected {expected}")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)

"""``from_pretrained`` / ``save_pretrained`` and weight initialisation shared by every HunYuan model class."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import BaseConfig
from ..engine.generate import generate as run_generation
from ..engine.generation_config import GENERATION_CONFIG_NAME, GenerationConfig
from ..loading import (CheckpointError, CheckpointFormat, checkpoint_dtype, iter_tensors, read_optional_json,
                       save_tensors, weight_files)
from .attention import resolve_implementation
from .layers import RMSNorm
from .vision import PatchMerger

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16, "half": torch.float16}


def resolve_dtype(dtype: Any) -> torch.dtype | str | None:
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if isinstance(dtype, str) and dtype.replace("torch.", "") in _DTYPES:
        return _DTYPES[dtype.replace("torch.", "")]
    raise ValueError(f"dtype={dtype!r} is not supported: expected 'auto', a torch dtype or one of {sorted(_DTYPES)}")


def resolve_device(device: Any) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, dict):  # a device_map of {"": device}
        device = device.get("", "cpu")
    if isinstance(device, int):
        device = f"cuda:{device}"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a valid torch device (use 'auto', 'cpu', 'cuda', 'cuda:N')") \
            from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device} was requested but CUDA is not available on this machine")
    return device


class HunYuanPreTrainedModel(nn.Module):
    config_class: ClassVar[type[BaseConfig]]
    checkpoint_format: ClassVar[CheckpointFormat | None] = None
    # output-embedding key -> input-embedding key, tied when config.tie_word_embeddings
    tied_weights: ClassVar[dict[str, str]] = {}
    # checkpoint keys (in-memory spelling) that this class deliberately does not load
    ignored_on_load: ClassVar[tuple[str, ...]] = ()
    # name suffixes of parameters that stay fp32 whatever dtype the model loads in
    keep_fp32: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: BaseConfig) -> None:
        super().__init__()
        self.config = config
        self.generation_config = GenerationConfig.from_model_config(config)

    # -- construction ------------------------------------------------------------------------------------------------
    def post_init(self) -> None:
        """Initialise weights (skipped on the meta device) and tie embeddings."""
        if next(self.parameters()).device.type != "meta":
            self.apply(self._init_weights)
        self.tie_weights()

    @property
    def _init_std(self) -> float:
        text = getattr(self.config, "text_config", self.config)
        return getattr(text, "initializer_range", 0.02)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        for name, _ in module.named_parameters(recurse=False):
            self._init_parameter(module, name)

    @torch.no_grad()
    def _init_parameter(self, module: nn.Module, name: str) -> None:
        """Initialise one parameter in place (also used for the weights a partial load lacks)."""
        param = getattr(module, name)
        if isinstance(module, (nn.LayerNorm, RMSNorm)) and name == "weight":
            param.fill_(1.0)
        elif name == "bias":
            param.zero_()
        elif name in PatchMerger.learned_vectors:
            param.normal_(0.0, module.mlp.out_features**-0.5)
        else:
            param.normal_(0.0, self._init_std)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                param[module.padding_idx].zero_()

    def _ties_enabled(self) -> bool:
        return bool(getattr(self.config, "tie_word_embeddings", False))

    def tie_weights(self) -> None:
        if not self._ties_enabled():
            return
        for out_key, in_key in self.tied_weights.items():
            out_mod, _, out_name = out_key.rpartition(".")
            setattr(self.get_submodule(out_mod), out_name, self.get_parameter(in_key))

    def set_attn_implementation(self, implementation: str | None) -> None:
        implementation = resolve_implementation(implementation)
        for config in (self.config, getattr(self.config, "text_config", None),
                       getattr(self.config, "vision_config", None)):
            if config is not None:
                config._attn_implementation = implementation

    def reset_buffers(self, device: torch.device) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_buffers"):
                module.reset_buffers(device)

    # -- introspection -----------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def text_config(self) -> BaseConfig:
        """The decoder's config (``config.text_config`` for the VL model, the config itself for text LMs)."""
        return getattr(self.config, "text_config", self.config)

    @property
    def dtype(self) -> torch.dtype:
        return next(p for p in self.parameters() if p.is_floating_point()).dtype

    def num_parameters(self) -> int:
        """Number of distinct parameters (a tied embedding counts once)."""
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())

    # -- loading -----------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *, config: BaseConfig | None = None,
                        dtype: Any = "auto", torch_dtype: Any = None, device: Any = None, device_map: Any = None,
                        attn_implementation: str | None = None, subfolder: str = "", strict: bool = True,
                        revision: str | None = None, cache_dir: str | None = None, local_files_only: bool = False,
                        token: str | bool | None = None, **config_overrides: Any):
        """Load a checkpoint from a local directory or a hub repo id (e.g. ``tencent/HunyuanOCR``; the 1.0
        checkpoint lives in ``subfolder="v1.0"``). Reads single-file or sharded safetensors with either the on-disk
        Tencent key names or the in-memory names. ``strict=False`` allows partial loads (missing weights are
        randomly initialised). The model is built on the meta device and weights are assigned one by one.
        """
        path = str(pretrained_model_name_or_path)
        hub = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
        if os.path.exists(path) and not os.path.isdir(path):
            raise FileNotFoundError(f"{path} is a file; pass the checkpoint directory that holds config.json")
        if config is None:
            config = cls.config_class.from_pretrained(path, subfolder=subfolder, **hub)
        for key, value in config_overrides.items():
            setattr(config, key, value)
        files = weight_files(path, subfolder=subfolder, **hub)
        dtype = resolve_dtype(torch_dtype if torch_dtype is not None else dtype)
        if dtype in (None, "auto"):
            dtype = checkpoint_dtype(files) or torch.float32
        device = resolve_device(device if device is not None else device_map)

        with torch.device("meta"):
            model = cls(config)
        model.set_attn_implementation(attn_implementation)
        model._load_weights(files, dtype, device, strict=strict, source=path)
        model.reset_buffers(device)
        model.generation_config = GenerationConfig.from_checkpoint(
            read_optional_json(path, GENERATION_CONFIG_NAME, subfolder=subfolder, **hub), config)
        return model.eval()

    def _load_weights(self, files: list[str], dtype: torch.dtype, device: torch.device, *, strict: bool,
                      source: str) -> None:
        expected = dict(self.named_parameters())  # tied output embeddings are not listed (same Parameter)
        ignored = set(self.ignored_on_load) | (set(self.tied_weights) if self._ties_enabled() else set())
        loaded, unexpected, mismatched = set(), [], []
        slices_loaded: dict[str, int] = {}  # stacked parameter -> per-expert slices copied in so far
        fmt = self.checkpoint_format
        for disk_name, tensor in iter_tensors(files, device="cpu" if device.type == "meta" else str(device)):
            name = fmt.to_memory(disk_name) if fmt else disk_name
            if name in ignored:
                continue
            located = fmt.locate_slice(name) if fmt else None
            target = located[0] if located else name
            if target not in expected:
                unexpected.append(disk_name)
                continue
            want = tuple(expected[target].shape)
            if located:  # one expert's row block of a stacked (E, rows, cols) parameter
                _, expert, spec = located
                if expert >= want[0]:
                    mismatched.append(f"{disk_name}: expert {expert} but the model has {want[0]} experts")
                    continue
                want = (want[1] // spec.parts, *want[2:])
            if tuple(tensor.shape) != want:
                mismatched.append(f"{disk_name}: checkpoint {tuple(tensor.shape)} vs model {want}")
                continue
            tensor = tensor.to(self._load_dtype(target, dtype)) if tensor.is_floating_point() else tensor
            if located is None:
                # with stacked experts, copy: a weight that kept the shard's memory map alive would keep the expert
                # pages read from it resident too (a second copy of the experts until loading ends)
                self._assign(target, tensor.to(device, copy=bool(fmt and fmt.stacked)))
                loaded.add(target)
                continue
            if expected[target].is_meta:  # first slice: materialise the stacked parameter once
                self._assign(target, torch.empty(expected[target].shape, dtype=tensor.dtype, device=device))
                expected[target] = self.get_parameter(target)
            _, expert, spec = located
            expected[target].data[expert].chunk(spec.parts)[spec.part].copy_(tensor)
            slices_loaded[target] = slices_loaded.get(target, 0) + 1
            if slices_loaded[target] == expected[target].shape[0] * spec.parts:
                loaded.add(target)
        missing = sorted(set(expected) - loaded)
        if mismatched:
            raise CheckpointError(f"checkpoint {source} has tensors of the wrong shape for {type(self).__name__} "
                                  f"(config and weights disagree): {'; '.join(mismatched[:10])}."
                                  f"{getattr(self.config, 'expert_width_note', '')}")
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:8])})")
            if unexpected:
                parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(sorted(unexpected)[:8])})")
            raise CheckpointError(f"checkpoint {source} does not match {type(self).__name__}: {'; '.join(parts)}. "
                                  "Pass strict=False to load it partially.")
        for name in missing:  # partial load: materialise and initialise only what the checkpoint lacks
            if expected[name].is_meta:
                self._assign(name, torch.empty(expected[name].shape, dtype=self._load_dtype(name, dtype),
                                               device=device))
            module_name, _, param_name = name.rpartition(".")
            self._init_parameter(self.get_submodule(module_name), param_name)
        self.tie_weights()

    def _load_dtype(self, name: str, dtype: torch.dtype) -> torch.dtype:
        """Floating-point weights load in ``dtype``, except those the architecture keeps in fp32 (MoE routers)."""
        return torch.float32 if name.endswith(self.keep_fp32) else dtype

    def _assign(self, name: str, tensor: torch.Tensor) -> None:
        module_name, _, param_name = name.rpartition(".")
        module = self.get_submodule(module_name)
        module._parameters[param_name] = nn.Parameter(tensor, requires_grad=tensor.is_floating_point())

    # -- saving ------------------------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike, *, max_shard_size: int | str = "5GB") -> None:
        """Write ``config.json`` and safetensors weights with the on-disk (Tencent) key names."""
        save_directory = str(save_directory)
        self.config.architectures = [type(self).__name__]
        self.config.save_pretrained(save_directory)
        self.generation_config.save_pretrained(save_directory)
        skip = set(self.tied_weights) if self._ties_enabled() else set()
        fmt = self.checkpoint_format
        tensors = {}
        for name, param in self.state_dict().items():
            if name in skip:
                continue
            split = fmt.split_stacked(name, param) if fmt else None
            tensors.update(split if split is not None else {(fmt.to_disk(name) if fmt else name): param})
        save_tensors(tensors, save_directory, max_shard_size)


    # -- generation --------------------------------------------------------------------------------------------------
    def generation_positions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                             mm_token_type_ids: torch.Tensor | None = None,
                             image_grid_thw: torch.Tensor | None = None) -> torch.Tensor:
        """Rope positions (A, B, L) of a left-padded prompt: each row counts its own tokens from 0 (padding gets
        0) on every axis. Multimodal models override this to place image tokens."""
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        section = (self.text_config.rope_parameters or {}).get("mrope_section")
        return positions[None].expand(len(section) if section else 1, -1, -1)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None, *,
                 generation_config: GenerationConfig | None = None, streamer: Any = None,
                 stopping_criteria: Any = None, generator: torch.Generator | None = None, compile: bool = False,
                 **kwargs: Any) -> torch.Tensor:
        """Prompt + generated ids (B, L + T), with the transformers call shape:

        >>> inputs = processor.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
        ...                                        return_tensors="pt")                  # doctest: +SKIP
        >>> ids = model.generate(**inputs, max_new_tokens=128)                         # doctest: +SKIP

        Model inputs: ``pixel_values``, ``image_grid_thw``, ``mm_token_type_ids``. Generation parameters (override
        ``generation_config`` / ``model.generation_config``): ``max_new_tokens``, ``min_new_tokens``,
        ``do_sample``, ``temperature``, ``top_k``, ``top_p``, ``repetition_penalty``, ``eos_token_id`` (int or
        list), ``pad_token_id``. ``streamer``: a transformers-style streamer (``put``/``end``);
        ``stopping_criteria``: callables ``(input_ids, scores) -> bool``; ``compile=True`` wraps the decode step
        in ``torch.compile``. Batches of different lengths must be left-padded.
        """
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        for key in ("pixel_values", "image_grid_thw", "mm_token_type_ids"):
            inputs[key] = kwargs.pop(key, None)
        if kwargs.pop("use_cache", True) is not True:
            raise ValueError("generate(use_cache=False) is not supported: the engine always decodes with a KV cache")
        config = (generation_config or self.generation_config).update(**kwargs)
        return run_generation(self, inputs, config, streamer=streamer, stopping_criteria=stopping_criteria,
                               generator=generator, compile=compile)

"""``HunYuanVLProcessor``: prompts + images → model inputs, identical to transformers 5.23.

Each ``<start><image><end>`` in a prompt stands for one image. The image is processed (``pixel_values``,
``image_grid_thw``) and its ``<image>`` is expanded to N placeholder tokens, N = (gh/m)·(gw/m + 1) + 2: one token
per merged patch, one newline token per merged row, plus the begin/end vectors the vision adapter adds. The
``<start>``/``<end>`` tokens stay, so an image becomes ``<start> <image>×N <end>`` in ``input_ids``;
``mm_token_type_ids`` is 1 exactly on the ``<image>`` tokens.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from ..loading import read_optional_json, resolve_file
from .batch import BatchFeature, check_return_tensors
from .chat import images_in, normalize_conversations, render, template_variables
from .image import (PROCESSOR_CONFIG_NAME, HunYuanVLImageProcessor, HunYuanVLImageProcessorPil, _ImageProcessorBase,
                    flatten_images, load_image_processor_config)
from .tokenizer import CHAT_TEMPLATE_FILE, HunYuanTokenizer

# The HunyuanOCR vocabulary's names for the tokens the processor needs. Older HunyuanOCR snapshots do not name them
# in tokenizer_config.json (transformers then refuses to build the processor); we name them when the vocabulary
# has them.
HUNYUAN_OCR_TOKENS = {
    "image_token": "<｜hy_place▁holder▁no▁102｜>",
    "image_start_token": "<｜hy_place▁holder▁no▁100｜>",
    "image_end_token": "<｜hy_place▁holder▁no▁101｜>",
    "pad_token": "<｜hy_▁pad▁｜>",
}
REQUIRED_TOKENS = ("image_token", "image_start_token", "image_end_token", "pad_token")
TEXT_KWARGS = ("padding", "truncation", "max_length", "pad_to_multiple_of", "padding_side", "add_special_tokens",
               "return_attention_mask")
IMAGE_KWARGS = ("size", "min_pixels", "max_pixels", "device", "input_data_format", *_ImageProcessorBase._SETTINGS)
BACKENDS = {"pil": HunYuanVLImageProcessorPil, "torch": HunYuanVLImageProcessor,
            "torchvision": HunYuanVLImageProcessor}


def num_image_tokens(grid_h: int, grid_w: int, merge_size: int = 2, cat_extra_token: bool = True) -> int:
    """Placeholder tokens of one image of ``grid_h × grid_w`` 16-px patches: (gh/m)·(gw/m + 1) + 2 — a token per
    merged patch, a newline token per merged row, and the begin/end vectors (``cat_extra_token``)."""
    return (grid_h // merge_size) * (grid_w // merge_size + 1) + (2 if cat_extra_token else 0)


class HunYuanVLProcessor:
    """Image processor + tokenizer + chat template of HunYuanVL / HunyuanOCR.

    >>> processor = HunYuanVLProcessor.from_pretrained("path/to/HunyuanOCR", backend="pil")   # doctest: +SKIP
    >>> messages = [{"role": "system", "content": ""},
    ...             {"role": "user", "content": [{"type": "image", "image": "page.png"},
    ...                                          {"type": "text", "text": "提取图中的文字。"}]}]
    >>> inputs = processor.apply_chat_template(messages, tokenize=True, return_tensors="pt")  # doctest: +SKIP
    """

    def __init__(self, image_processor: _ImageProcessorBase | None = None, tokenizer: HunYuanTokenizer | None = None,
                 chat_template: str | None = None, cat_extra_token: bool = True, **extra: Any):
        if tokenizer is None:
            raise ValueError("HunYuanVLProcessor needs a tokenizer")
        self.image_processor = image_processor if image_processor is not None else HunYuanVLImageProcessorPil()
        self.tokenizer = tokenizer
        for name in REQUIRED_TOKENS:
            if getattr(tokenizer, name, None) is None and tokenizer.convert_tokens_to_ids(HUNYUAN_OCR_TOKENS[name]) is not None:
                tokenizer.set_special_token(name, HUNYUAN_OCR_TOKENS[name])
            if getattr(tokenizer, name, None) is None or getattr(tokenizer, f"{name}_id", None) is None:
                raise ValueError(f"Tokenizer is missing required attribute '{name}'. Add it to `extra_special_tokens` "
                                 f"in tokenizer_config.json (e.g. \"{name}\": \"{HUNYUAN_OCR_TOKENS[name]}\").")
        self.image_token, self.image_token_id = tokenizer.image_token, tokenizer.image_token_id
        self.image_start_token, self.image_start_token_id = tokenizer.image_start_token, tokenizer.image_start_token_id
        self.image_end_token, self.image_end_token_id = tokenizer.image_end_token, tokenizer.image_end_token_id
        self.pad_token_id = tokenizer.pad_token_id
        self.cat_extra_token = cat_extra_token
        self.chat_template = chat_template if chat_template is not None else tokenizer.chat_template
        self.extra = {k: v for k, v in extra.items() if k != "processor_class"}

    # -- files -----------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, *, subfolder: str = "", backend: str = "pil",
                        **kwargs: Any) -> "HunYuanVLProcessor":
        """Load from a checkpoint directory or hub repo. ``backend="pil"`` (default, identical to the reference)
        or ``"torch"``; image settings (``min_pixels=...``) and tokenizer settings (``padding_side="left"``) may be
        overridden here."""
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r}")
        hub = {k: kwargs.pop(k) for k in ("revision", "cache_dir", "local_files_only", "token") if k in kwargs}
        image_kwargs = {k: kwargs.pop(k) for k in IMAGE_KWARGS if k in kwargs and k != "input_data_format"}
        if image_kwargs.get("device") is not None and BACKENDS[backend] is not HunYuanVLImageProcessor:
            raise ValueError(f"device= needs backend='torch' (the {backend!r} backend works on the CPU)")
        processor_config = read_optional_json(path_or_repo_id, PROCESSOR_CONFIG_NAME, subfolder=subfolder, **hub)
        tokenizer = HunYuanTokenizer.from_pretrained(path_or_repo_id, subfolder=subfolder, **hub,
                                                     **{k: kwargs.pop(k) for k in ("padding_side", "truncation_side")
                                                        if k in kwargs})
        image_config = load_image_processor_config(path_or_repo_id, subfolder=subfolder, **hub)
        image_processor = BACKENDS[backend].from_dict(image_config, **image_kwargs)
        template = _read_chat_template(path_or_repo_id, subfolder, hub, processor_config)
        for ignored in ("trust_remote_code", "use_fast"):  # transformers habits; nothing to do here
            kwargs.pop(ignored, None)
        unknown = sorted(set(kwargs) - {"cat_extra_token"})
        if unknown:
            raise TypeError(f"unknown argument(s) {unknown} for HunYuanVLProcessor.from_pretrained")
        saved = {k: v for k, v in processor_config.items() if k not in ("image_processor", "chat_template")}
        return cls(image_processor, tokenizer, chat_template=template, **{**saved, **kwargs})

    def save_pretrained(self, save_directory: str | os.PathLike) -> list[str]:
        """Write the transformers 5.x layout: tokenizer files, ``processor_config.json`` (with the image
        processor settings inside) and ``chat_template.jinja``."""
        paths = self.tokenizer.save_pretrained(save_directory, write_chat_template=False)
        config = {**self.extra, "cat_extra_token": self.cat_extra_token,
                  "image_processor": self.image_processor.to_dict(), "processor_class": "HunYuanVLProcessor"}
        paths.append(os.path.join(save_directory, PROCESSOR_CONFIG_NAME))
        with open(paths[-1], "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=2, ensure_ascii=False, sort_keys=True)
        if self.chat_template is not None:
            paths.append(os.path.join(save_directory, CHAT_TEMPLATE_FILE))
            with open(paths[-1], "w", encoding="utf-8") as fh:
                fh.write(self.chat_template)
        return paths

    # -- token accounting --------------------------------------------------------------------------------------
    def num_image_tokens(self, grid_h: int, grid_w: int, merge_size: int | None = None) -> int:
        """Placeholder tokens for an image of ``grid_h × grid_w`` 16-px patches (see :func:`num_image_tokens`)."""
        m = (merge_size or self.image_processor.merge_size) * self.image_processor.spatial_patch_size
        return num_image_tokens(grid_h, grid_w, m, self.cat_extra_token)

    def _get_num_multimodal_tokens(self, image_sizes: list[tuple[int, int]] | None = None,
                                   **kwargs: Any) -> BatchFeature:
        """For (height, width) pixel sizes: ``num_image_tokens`` and ``num_image_patches`` (what vLLM asks)."""
        data: dict = {}
        if image_sizes is not None:
            kw = {**kwargs.pop("images_kwargs", {}), **kwargs}
            grids = [self.image_processor.get_number_of_image_patches(h, w, kw) for h, w in image_sizes]
            data["num_image_tokens"] = [self.num_image_tokens(gh, gw, kw.get("merge_size")) for gh, gw in grids]
            data["num_image_patches"] = [gh * gw for gh, gw in grids]
        return BatchFeature(data)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", *self.image_processor.model_input_names, "mm_token_type_ids"]

    # -- the call ----------------------------------------------------------------------------------------------
    def __call__(self, images: Any = None, text: str | list[str] | None = None, *, padding: bool | str = True,
                 return_tensors: str | None = None, return_mm_token_type_ids: bool = True,
                 text_kwargs: dict | None = None, images_kwargs: dict | None = None, **kwargs: Any) -> BatchFeature:
        """Prompts with ``<start><image><end>`` markers and their images (in order of appearance across the batch)
        → ``input_ids, attention_mask, mm_token_type_ids[, pixel_values, image_grid_thw]``."""
        check_return_tensors(return_tensors)
        text_kw, image_kw = self._split_kwargs(kwargs, text_kwargs, images_kwargs)
        text_kw.setdefault("add_special_tokens", False)
        prompts = [text] if isinstance(text, str) else text
        flat_images = flatten_images(images) if images is not None else None
        self._validate(prompts, flat_images)

        data: dict = {}
        if flat_images is not None:
            data.update(self.image_processor(flat_images, **image_kw))
        if prompts is not None:
            grids = data["image_grid_thw"].tolist() if flat_images is not None else []
            prompts = self._expand_image_tokens(prompts, grids)
            encoded = self.tokenizer(prompts, padding=padding, **text_kw)
            data = {**encoded, **data}
            if return_mm_token_type_ids:
                data["mm_token_type_ids"] = [[int(i == self.image_token_id) for i in row] for row in encoded["input_ids"]]
        return BatchFeature(data, tensor_type=return_tensors)

    @staticmethod
    def _split_kwargs(kwargs: dict, text_kwargs: dict | None, images_kwargs: dict | None) -> tuple[dict, dict]:
        unknown = sorted(set(kwargs) - set(TEXT_KWARGS) - set(IMAGE_KWARGS))
        if unknown:
            raise TypeError(f"unknown processor argument(s) {unknown}; text arguments: {list(TEXT_KWARGS)}, "
                            f"image arguments: {sorted(IMAGE_KWARGS)}")
        text_kw = {**{k: v for k, v in kwargs.items() if k in TEXT_KWARGS}, **(text_kwargs or {})}
        image_kw = {**{k: v for k, v in kwargs.items() if k in IMAGE_KWARGS}, **(images_kwargs or {})}
        return text_kw, image_kw

    def _validate(self, prompts: list[str] | None, images: list | None) -> None:
        if prompts is None and images is None:
            raise ValueError("You need to provide at least one input to call HunYuanVLProcessor (text and/or images)")
        if prompts is None:
            return
        if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"`text` must be a string or list of strings, got {type(prompts).__name__}")
        found = sum(p.count(self.image_token) for p in prompts)
        if images is None and found:
            raise ValueError(f"Found {found} {self.image_token} tokens in the text but no images were passed.")
        if images is not None and found != len(images):
            raise ValueError(f"The total number of {self.image_token} tokens in the prompts should be the same as the "
                             f"number of images passed. Found total {found} {self.image_token} tokens and "
                             f"{len(images)} images.")
        wrapped = self.image_start_token + self.image_token + self.image_end_token
        for index, prompt in enumerate(prompts):
            if prompt.count(self.image_token) != prompt.count(wrapped):
                raise ValueError(
                    f"HunYuanVL image placeholders must be formatted as {wrapped} but prompt {index} has a bare "
                    f"{self.image_token}: {prompt!r}. Format prompts with the processor's chat template or write the "
                    f"image start/end tokens around each image token.")

    def _expand_image_tokens(self, prompts: list[str], grids: list[list[int]]) -> list[str]:
        counts = iter(self.num_image_tokens(gh, gw) for _, gh, gw in grids)
        pattern = re.compile(re.escape(self.image_token))
        return [pattern.sub(lambda _: self.image_token * next(counts), prompt) for prompt in prompts]

    # -- chat --------------------------------------------------------------------------------------------------
    def apply_chat_template(self, conversation: list, chat_template: str | None = None, *,
                            add_generation_prompt: bool = False, continue_final_message: bool = False,
                            tokenize: bool = False, return_dict: bool | None = None, return_tensors: str | None = None,
                            processor_kwargs: dict | None = None, tools: list | None = None,
                            documents: list | None = None, **kwargs: Any):
        """Render one conversation (or a list of them) with the chat template. ``tokenize=True`` also loads the
        conversations' images and runs the processor: it returns the ``BatchFeature`` of model inputs
        (``return_dict=False`` gives ``input_ids`` only)."""
        template = chat_template if chat_template is not None else self.chat_template
        if template is None:
            raise ValueError("Cannot use apply_chat_template because this processor does not have a chat template.")
        conversations, batched = normalize_conversations(conversation)
        variables = template_variables(template)
        processor_kwargs = {**(processor_kwargs or {}), **{k: v for k, v in kwargs.items() if k not in variables}}
        template_kwargs = {**self.tokenizer.special_tokens_map, **{k: v for k, v in kwargs.items() if k in variables}}
        prompts = render(template, conversations, add_generation_prompt=add_generation_prompt,
                         continue_final_message=continue_final_message, tools=tools, documents=documents,
                         **template_kwargs)
        if not tokenize:
            return prompts if batched else prompts[0]
        images = [image for chat in conversations for image in images_in(chat)]
        processor_kwargs.setdefault("return_tensors", return_tensors)
        out = self(text=prompts, images=images or None, **processor_kwargs)
        return out if return_dict in (None, True) else out["input_ids"]

    # -- decoding ----------------------------------------------------------------------------------------------
    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(image_processor={self.image_processor!r}, tokenizer={self.tokenizer!r}, "
                f"cat_extra_token={self.cat_extra_token})")


def _read_chat_template(path_or_repo_id: str | os.PathLike, subfolder: str, hub: dict,
                        processor_config: dict) -> str | None:
    """``chat_template.jinja``, else ``chat_template.json``, else the processor config's entry; else None (the
    tokenizer's own template is used)."""
    path = resolve_file(path_or_repo_id, CHAT_TEMPLATE_FILE, subfolder=subfolder, optional=True, **hub)
    if path is not None:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    legacy = read_optional_json(path_or_repo_id, "chat_template.json", subfolder=subfolder, **hub)
    return legacy.get("chat_template") or processor_config.get("chat_template")

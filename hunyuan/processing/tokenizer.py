"""The tokenizer: a ``tokenizers.Tokenizer`` loaded from ``tokenizer.json`` -- or, for checkpoints that ship only a
tiktoken vocabulary (``hy.tiktoken``, the Hunyuan-7B / A13B family), a ``tiktoken`` encoding behind the same calls
(``tiktoken_backend.py``) -- plus the settings of ``tokenizer_config.json`` (and ``special_tokens_map.json``), with
the transformers calling conventions. ``from_pretrained`` picks the backend from the files present.

Named special tokens come in two kinds: the standard ones (``bos_token``, ``eos_token``, ``pad_token``, ...) and the
model-specific ones HunYuanVL needs (``image_token``, ``image_start_token``, ``image_end_token``), which a v5
``tokenizer_config.json`` lists in ``extra_special_tokens`` / ``model_specific_special_tokens``. Each is readable as
``tok.<name>`` and ``tok.<name>_id``.

Special tokens are added to an encoding only by ``tokenizer.json``'s own post-processor; ``add_bos_token`` in the
config is ignored, as transformers 5.23 ignores it for a plain tokenizers-backed tokenizer (HunYuan chat templates
write the BOS themselves and the processor encodes with ``add_special_tokens=False``).

Streaming: :class:`IncrementalDetokenizer` turns ids into text deltas and never emits half a UTF-8 character.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from tokenizers import AddedToken, Tokenizer
from tokenizers.decoders import DecodeStream

from ..loading import read_optional_json, resolve_file
from .batch import BatchFeature, check_return_tensors
from .tiktoken_backend import TIKTOKEN_FILE, TiktokenBackend

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
STANDARD_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_NOT_A_LENGTH = 10 ** 12  # transformers writes ~1e30 as model_max_length when a model has no limit


def _content(token: Any) -> str | None:
    """A token as written in a config: a string, or an AddedToken dict ``{"content": ...}``."""
    if isinstance(token, dict):
        return token.get("content")
    return None if token is None else str(token)


def read_tokenizer_config(path_or_repo_id: str | os.PathLike, *, subfolder: str = "", **hub: Any) -> dict:
    """``tokenizer_config.json`` with the tokens named in ``special_tokens_map.json`` (both optional)."""
    config = read_optional_json(path_or_repo_id, TOKENIZER_CONFIG_FILE, subfolder=subfolder, **hub)
    special_map = read_optional_json(path_or_repo_id, SPECIAL_TOKENS_MAP_FILE, subfolder=subfolder, **hub)
    config.update({k: v for k, v in special_map.items() if v is not None})  # the map wins, as in transformers
    return config


class HunYuanTokenizer:
    """Tokenizer of the HunYuan models, built on the ``tokenizers`` library.

    >>> tok = HunYuanTokenizer.from_pretrained("path/to/HunyuanOCR")          # doctest: +SKIP
    >>> batch = tok(["short", "a longer prompt"], padding=True, return_tensors="pt")   # doctest: +SKIP
    >>> tok.decode(batch["input_ids"][1], skip_special_tokens=True)           # doctest: +SKIP
    'a longer prompt'
    """

    def __init__(self, tokenizer: Tokenizer, config: dict | None = None, chat_template: str | None = None):
        self._tokenizer = tokenizer
        self.config = copy.deepcopy(config or {})
        cfg = self.config
        self.padding_side = cfg.get("padding_side", "right")
        self.truncation_side = cfg.get("truncation_side", "right")
        for side in (self.padding_side, self.truncation_side):
            if side not in ("left", "right"):
                raise ValueError(f"padding_side / truncation_side must be 'left' or 'right', got {side!r}")
        max_len = cfg.get("model_max_length")
        self.model_max_length = int(max_len) if isinstance(max_len, (int, float)) and max_len < _NOT_A_LENGTH else None
        self.clean_up_tokenization_spaces = bool(cfg.get("clean_up_tokenization_spaces", False))
        self.chat_template = chat_template if chat_template is not None else _config_chat_template(cfg)
        self.special_tokens: dict[str, str] = {}
        for name in STANDARD_SPECIAL_TOKENS:
            if _content(cfg.get(name)) is not None:
                self.special_tokens[name] = _content(cfg.get(name))
        self.special_tokens.update(_named_extra_tokens(cfg))
        self.extra_special_tokens = [t for t in (_content(x) for x in _listed_extra_tokens(cfg)) if t]
        self._register_missing_tokens(cfg)

    # -- construction ----------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, *, subfolder: str = "", **kwargs: Any):
        """Load ``tokenizer.json`` -- else a tiktoken vocabulary (``hy.tiktoken`` or the ``vocab_file`` named in
        ``tokenizer_config.json``) -- with ``tokenizer_config.json``, ``special_tokens_map.json`` and
        ``chat_template.jinja``, from a local directory or a hub repo; ``kwargs`` override config entries (e.g.
        ``padding_side="left"``)."""
        hub = {k: kwargs.pop(k) for k in ("revision", "cache_dir", "local_files_only", "token") if k in kwargs}
        config = {**read_tokenizer_config(path_or_repo_id, subfolder=subfolder, **hub), **kwargs}
        backend = _load_backend(path_or_repo_id, subfolder, config, hub)
        template_file = resolve_file(path_or_repo_id, CHAT_TEMPLATE_FILE, subfolder=subfolder, optional=True, **hub)
        template = None
        if template_file is not None:
            with open(template_file, encoding="utf-8") as fh:
                template = fh.read()
        return cls(backend, config, chat_template=template)

    def save_pretrained(self, save_directory: str | os.PathLike, *, write_chat_template: bool = True) -> list[str]:
        """Write ``tokenizer.json``, ``tokenizer_config.json`` and (if any) ``chat_template.jinja``."""
        os.makedirs(save_directory, exist_ok=True)
        tiktoken = isinstance(self._tokenizer, TiktokenBackend)
        paths = [os.path.join(save_directory, TIKTOKEN_FILE if tiktoken else TOKENIZER_FILE),
                 os.path.join(save_directory, TOKENIZER_CONFIG_FILE)]
        self._tokenizer.save(paths[0])
        config = {k: v for k, v in self.config.items() if k not in ("chat_template", "model_specific_special_tokens",
                                                                     "added_tokens_decoder", "additional_special_tokens")}
        config.update({name: token for name, token in self.special_tokens.items()})
        named = {n: t for n, t in self.special_tokens.items() if n not in STANDARD_SPECIAL_TOKENS}
        config["extra_special_tokens"] = named if named else list(self.extra_special_tokens)
        config.update(padding_side=self.padding_side, truncation_side=self.truncation_side,
                      clean_up_tokenization_spaces=self.clean_up_tokenization_spaces)
        config.setdefault("tokenizer_class", "TokenizersBackend")
        if tiktoken:
            config["vocab_file"] = TIKTOKEN_FILE
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        with open(paths[1], "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=2, ensure_ascii=False, sort_keys=True)
        if write_chat_template and self.chat_template is not None:
            paths.append(os.path.join(save_directory, CHAT_TEMPLATE_FILE))
            with open(paths[-1], "w", encoding="utf-8") as fh:
                fh.write(self.chat_template)
        return paths

    def _register_missing_tokens(self, cfg: dict) -> None:
        """Named special tokens absent from ``tokenizer.json`` are added (as transformers does)."""
        wanted = [AddedToken(t, special=True, normalized=False) for t in
                  [*self.special_tokens.values(), *self.extra_special_tokens] if self._tokenizer.token_to_id(t) is None]
        for entry in (cfg.get("added_tokens_decoder") or {}).values():
            content = _content(entry)
            if content is not None and self._tokenizer.token_to_id(content) is None:
                wanted.append(AddedToken(content, special=bool(entry.get("special", True)), normalized=False))
        if wanted:
            self._tokenizer.add_special_tokens(wanted)

    # -- vocabulary ------------------------------------------------------------------------------------------------
    @property
    def backend_tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def __getattr__(self, name: str) -> Any:
        specials = self.__dict__.get("special_tokens", {})
        if name in specials:
            return specials[name]
        if name.endswith("_id") and name[:-3] in specials:
            return self._tokenizer.token_to_id(specials[name[:-3]])
        if name in STANDARD_SPECIAL_TOKENS or (name.endswith("_id") and name[:-3] in STANDARD_SPECIAL_TOKENS):
            return None
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def set_special_token(self, name: str, token: str) -> None:
        """Name a special token (``set_special_token("image_token", "<img>")``); it must be in the vocabulary."""
        if self._tokenizer.token_to_id(token) is None:
            raise ValueError(f"cannot name {token!r} as {name}: it is not in the vocabulary")
        self.special_tokens[name] = token

    @property
    def special_tokens_map(self) -> dict[str, str]:
        return dict(self.special_tokens)

    @property
    def all_special_tokens(self) -> list[str]:
        return list(dict.fromkeys([*self.special_tokens.values(), *self.extra_special_tokens]))

    @property
    def all_special_ids(self) -> list[int]:
        return [self._tokenizer.token_to_id(t) for t in self.all_special_tokens]

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self._tokenizer.get_vocab(with_added_tokens=True)

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | None | list[int | None]:
        if isinstance(tokens, str):
            return self._tokenizer.token_to_id(tokens)
        return [self._tokenizer.token_to_id(t) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | Sequence[int]) -> str | None | list[str | None]:
        if isinstance(ids, (int, np.integer)):
            return self._tokenizer.id_to_token(int(ids))
        return [self._tokenizer.id_to_token(int(i)) for i in ids]

    # -- encoding --------------------------------------------------------------------------------------------------
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode takes one string, got {type(text).__name__}; use __call__ for batches")
        return self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def __call__(self, text: str | Sequence[str], *, add_special_tokens: bool = True, padding: bool | str = False,
                 truncation: bool | str | None = None, max_length: int | None = None,
                 pad_to_multiple_of: int | None = None, padding_side: str | None = None,
                 return_tensors: str | None = None, return_attention_mask: bool = True, **unused: Any) -> BatchFeature:
        """Tokenize one string or a batch: ``input_ids`` and ``attention_mask`` (lists, or tensors with
        ``return_tensors="pt"|"np"``), padded (``padding=True|"longest"|"max_length"``) on ``padding_side``."""
        check_return_tensors(return_tensors)
        batched = not isinstance(text, str)
        texts = list(text) if batched else [text]
        if not all(isinstance(t, str) for t in texts):
            raise TypeError(f"text must be a string or a list of strings, got {[type(t).__name__ for t in texts]}")
        if (truncation not in (None, False, "do_not_truncate") and padding not in (False, None, "do_not_pad")
                and pad_to_multiple_of and max_length and max_length % pad_to_multiple_of):
            raise ValueError(f"with truncation and padding, max_length ({max_length}) must be a multiple of "
                             f"pad_to_multiple_of ({pad_to_multiple_of})")
        rows = self._encode_rows(texts, add_special_tokens, truncation, max_length)
        ids, mask = self._pad(rows, padding, max_length, pad_to_multiple_of, padding_side or self.padding_side)
        data = {"input_ids": ids}
        if return_attention_mask:
            data["attention_mask"] = mask
        if not batched and return_tensors is None:
            data = {k: v[0] for k, v in data.items()}
        return BatchFeature(data, tensor_type=return_tensors)

    def _encode_rows(self, texts: list[str], add_special_tokens: bool, truncation: bool | str | None,
                     max_length: int | None) -> list[list[int]]:
        if truncation in (None, False, "do_not_truncate"):
            return [e.ids for e in self._tokenizer.encode_batch(texts, add_special_tokens=add_special_tokens)]
        if truncation not in (True, "longest_first", "only_first"):
            raise ValueError(f"truncation must be True, False, 'longest_first' or 'only_first', got {truncation!r}")
        limit = max_length if max_length is not None else self.model_max_length
        if limit is None:
            raise ValueError("truncation needs max_length (this tokenizer has no model_max_length)")
        room = limit - (self._tokenizer.num_special_tokens_to_add(False) if add_special_tokens else 0)
        if room < 0:
            raise ValueError(f"max_length={limit} leaves no room once the special tokens are added")
        if isinstance(self._tokenizer, TiktokenBackend):  # nothing is added around the text: truncation is a slice
            rows = [e.ids for e in self._tokenizer.encode_batch(texts)]
            return [r[:room] if self.truncation_side == "right" else r[len(r) - room:] for r in rows]
        rows = []
        for encoding in self._tokenizer.encode_batch(texts, add_special_tokens=False):
            encoding.truncate(room, direction=self.truncation_side)
            rows.append(self._tokenizer.post_process(encoding, None, add_special_tokens).ids)
        return rows

    def _pad(self, rows: list[list[int]], padding: bool | str, max_length: int | None,
             pad_to_multiple_of: int | None, side: str) -> tuple[list[list[int]], list[list[int]]]:
        if padding in (True, "longest"):
            target = max(len(r) for r in rows)
        elif padding == "max_length":
            target = max_length if max_length is not None else self.model_max_length
            if target is None:
                raise ValueError("padding='max_length' needs max_length (this tokenizer has no model_max_length)")
        elif padding in (False, None, "do_not_pad"):
            return rows, [[1] * len(r) for r in rows]
        else:
            raise ValueError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
        if side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
        if pad_to_multiple_of:
            target = -(-target // pad_to_multiple_of) * pad_to_multiple_of
        pad_id = self.pad_token_id
        if pad_id is None and any(len(r) < target for r in rows):
            raise ValueError("cannot pad: the tokenizer has no pad_token (set pad_token in tokenizer_config.json)")
        ids, mask = [], []
        for row in rows:
            fill = max(target - len(row), 0)
            ids.append([pad_id] * fill + row if side == "left" else row + [pad_id] * fill)
            mask.append([0] * fill + [1] * len(row) if side == "left" else [1] * len(row) + [0] * fill)
        return ids, mask

    # -- decoding --------------------------------------------------------------------------------------------------
    def decode(self, token_ids: Any, skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: bool | None = None) -> str:
        """Text of one sequence of ids (list, 1-D tensor or array, or a single int)."""
        ids = _as_id_list(token_ids)
        if ids and isinstance(ids[0], list):
            raise ValueError(f"decode takes one sequence; got a batch of {len(ids)} (use batch_decode)")
        text = self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
        clean = self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        if clean and not self._is_bpe:  # the clean-up corrupts BPE output (as in transformers)
            text = clean_up_tokenization(text)
        return text

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = False,
                     clean_up_tokenization_spaces: bool | None = None) -> list[str]:
        return [self.decode(seq, skip_special_tokens, clean_up_tokenization_spaces) for seq in _as_id_list(sequences)]

    @property
    def _is_bpe(self) -> bool:
        return isinstance(self._tokenizer, TiktokenBackend) or type(self._tokenizer.model).__name__ == "BPE"

    def decode_stream(self, skip_special_tokens: bool = True) -> Any:
        """A stream whose ``step(tokenizer, id)`` returns the next text piece (or None while it waits for bytes)."""
        if isinstance(self._tokenizer, TiktokenBackend):
            return self._tokenizer.decode_stream(skip_special_tokens)
        return DecodeStream(skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, conversation: Any, chat_template: str | None = None, *,
                            add_generation_prompt: bool = False, continue_final_message: bool = False,
                            tokenize: bool = True, return_dict: bool = True, return_tensors: str | None = None,
                            padding: bool | str = False, tools: list | None = None, documents: list | None = None,
                            **kwargs: Any) -> Any:
        """Render a conversation (or a batch of them) with the checkpoint's chat template, as transformers v5 does:
        the prompt string(s) with ``tokenize=False``; else a BatchFeature of ``input_ids`` and ``attention_mask``
        (``return_dict=False``: the ids only). A batch is padded on the left, ready for ``generate``.

        >>> inputs = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
        ...                                  return_tensors="pt")                    # doctest: +SKIP
        """
        from .chat import normalize_conversations, render, template_variables

        template = chat_template if chat_template is not None else self.chat_template
        if template is None:
            raise ValueError("Cannot use apply_chat_template because this tokenizer has no chat template "
                             "(tokenizer_config.json 'chat_template' or chat_template.jinja); pass chat_template=")
        conversations, batched = normalize_conversations(conversation)
        variables = template_variables(template)
        template_kwargs = {**self.special_tokens_map, **{k: v for k, v in kwargs.items() if k in variables}}
        prompts = render(template, conversations, add_generation_prompt=add_generation_prompt,
                         continue_final_message=continue_final_message, tools=tools, documents=documents,
                         **template_kwargs)
        if not tokenize:
            return prompts if batched else prompts[0]
        encoded = self(prompts if batched else prompts[0], add_special_tokens=False, padding=padding or batched,
                       padding_side="left", return_tensors=return_tensors)
        return encoded if return_dict else encoded["input_ids"]

    def detokenizer(self, skip_special_tokens: bool = True) -> "IncrementalDetokenizer":
        """A fresh incremental detokenizer for streaming one sequence."""
        return IncrementalDetokenizer(self, skip_special_tokens=skip_special_tokens)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab={len(self)}, special_tokens={self.special_tokens})"


class IncrementalDetokenizer:
    """Ids in, text deltas out, for streaming. A delta never ends inside a multi-byte character: the bytes of an
    incomplete character are held back until the token that completes it arrives.

    >>> stream = tok.detokenizer()                                            # doctest: +SKIP
    >>> "".join(stream.add(i) for i in ids) + stream.finish() == tok.decode(ids, skip_special_tokens=True)
    True
    """

    def __init__(self, tokenizer: HunYuanTokenizer, skip_special_tokens: bool = True):
        self._tokenizer = tokenizer
        self._stream = tokenizer.decode_stream(skip_special_tokens)
        self._skip = skip_special_tokens
        self.token_ids: list[int] = []
        self.text = ""

    def add(self, token_id: int) -> str:
        """Feed one id; returns the new text ('' while a character is still incomplete)."""
        token_id = int(token_id)
        self.token_ids.append(token_id)
        delta = self._stream.step(self._tokenizer.backend_tokenizer, token_id) or ""
        self.text += delta
        return delta

    def finish(self) -> str:
        """Whatever the stream still holds (a dangling incomplete character decodes to U+FFFD)."""
        full = self._tokenizer.decode(self.token_ids, skip_special_tokens=self._skip)
        delta = full[len(self.text):] if full.startswith(self.text) else ""
        self.text += delta
        return delta


def clean_up_tokenization(text: str) -> str:
    """transformers' clean-up of spaces before punctuation and English contractions (WordPiece-era)."""
    for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                          (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(before, after)
    return text


def _as_id_list(token_ids: Any) -> Any:
    if isinstance(token_ids, torch.Tensor):
        return token_ids.tolist()
    if isinstance(token_ids, np.ndarray):
        return token_ids.tolist()
    if isinstance(token_ids, (int, np.integer)):
        return [int(token_ids)]
    if isinstance(token_ids, Iterable):
        return [_as_id_list(t) if isinstance(t, (list, tuple, torch.Tensor, np.ndarray)) else int(t) for t in token_ids]
    raise TypeError(f"expected token ids (list, tensor or array), got {type(token_ids).__name__}")


def _load_backend(path_or_repo_id: str | os.PathLike, subfolder: str, config: dict, hub: dict) -> Any:
    """``tokenizer.json`` when present, else the tiktoken vocabulary (``vocab_file`` of the config, or hy.tiktoken)."""
    tokenizer_file = resolve_file(path_or_repo_id, TOKENIZER_FILE, subfolder=subfolder, optional=True, **hub)
    if tokenizer_file is not None:
        try:
            return Tokenizer.from_file(tokenizer_file)
        except Exception as err:  # tokenizers raises a bare Exception on malformed files
            raise ValueError(f"{tokenizer_file} is not a valid tokenizers file: {err}") from None
    names = [n for n in (config.get("vocab_file"), TIKTOKEN_FILE) if isinstance(n, str) and n.endswith(".tiktoken")]
    for name in dict.fromkeys(names):
        vocab_file = resolve_file(path_or_repo_id, name, subfolder=subfolder, optional=True, **hub)
        if vocab_file is not None:
            return TiktokenBackend.from_file(vocab_file)
    where = os.path.join(str(path_or_repo_id), subfolder)
    raise FileNotFoundError(f"no tokenizer in {where}: expected {TOKENIZER_FILE} or a tiktoken vocabulary "
                            f"({' or '.join(dict.fromkeys(names))})")


def _named_extra_tokens(cfg: dict) -> dict[str, str]:
    """Model-specific named tokens: a dict ``extra_special_tokens`` or ``model_specific_special_tokens``."""
    named: dict[str, str] = {}
    for key in ("extra_special_tokens", "model_specific_special_tokens"):
        value = cfg.get(key)
        if isinstance(value, dict):
            named.update({name: _content(tok) for name, tok in value.items() if _content(tok) is not None})
    return named


def _listed_extra_tokens(cfg: dict) -> list:
    for key in ("extra_special_tokens", "additional_special_tokens"):
        if isinstance(cfg.get(key), list):
            return cfg[key]
    return []


def _config_chat_template(cfg: dict) -> str | None:
    template = cfg.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        by_name = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        return by_name.get("default") or next(iter(by_name.values()), None)
    return template

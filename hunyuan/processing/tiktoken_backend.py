"""The tiktoken-format vocabulary of the HunYuan text models (``hy.tiktoken``, Hunyuan-7B / Hunyuan-A13B; spec 14),
served through the ``tiktoken`` library behind the same calls ``HunYuanTokenizer`` makes on a ``tokenizers``
tokenizer (``encode``/``encode_batch``/``decode``/``token_to_id``/...), so one tokenizer class covers both formats.

The file holds one mergeable token per line, ``base64(bytes) rank``; ranks follow file order (a repeated token is
skipped), so the first special id is the number of mergeable tokens. The special tokens follow, in this order:
``<|endoftext|>`` (also the end-of-document id), ``<|startoftext|>``, ``<|bos|>``, ``<|eos|>``, ``<|pad|>``,
``<|extra_0|>`` ... ``<|extra_204|>``. Text is NFC-normalised before encoding; special-token strings in the text
encode as their ids (chat templates write them); decoding joins the bytes and decodes UTF-8 with replacement, and
``skip_special_tokens`` drops every id from ``<|endoftext|>`` on.
"""

from __future__ import annotations

import base64
import codecs
import os
import unicodedata
from dataclasses import dataclass

TIKTOKEN_FILE = "hy.tiktoken"
PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
           r"\s+(?!\S)|\s+")
SPECIAL_TOKENS = ("<|endoftext|>", "<|startoftext|>", "<|bos|>", "<|eos|>", "<|pad|>",
                  *(f"<|extra_{i}|>" for i in range(205)))


def read_ranks(path: str) -> dict[bytes, int]:
    """Mergeable tokens of a ``.tiktoken`` file, ranked in file order (repeats skipped)."""
    ranks: dict[bytes, int] = {}
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                token = base64.b64decode(line.split()[0], validate=True)
            except (ValueError, IndexError):
                raise ValueError(f"{path}:{number} is not a '<base64 token> <rank>' line: {line[:80]!r}") from None
            ranks.setdefault(token, len(ranks))
    if not ranks:
        raise ValueError(f"{path} holds no tokens")
    return ranks


@dataclass
class _Encoding:
    ids: list[int]


class TiktokenBackend:
    """A ``tiktoken.Encoding`` with the subset of the ``tokenizers.Tokenizer`` API that ``HunYuanTokenizer`` uses."""

    def __init__(self, ranks: dict[bytes, int], special_tokens: dict[str, int] | None = None,
                 name: str = "hunyuan") -> None:
        try:
            import tiktoken
        except ImportError:  # pragma: no cover - tiktoken is a dependency
            raise ImportError("reading hy.tiktoken vocabularies needs the tiktoken package: pip install tiktoken") \
                from None
        if special_tokens is None:
            special_tokens = {token: len(ranks) + i for i, token in enumerate(SPECIAL_TOKENS)}
        self._tiktoken = tiktoken
        self._name = name
        self.ranks = ranks
        self.special = dict(special_tokens)
        self._build()

    def _build(self) -> None:
        self.encoding = self._tiktoken.Encoding(self._name, pat_str=PATTERN, mergeable_ranks=self.ranks,
                                                special_tokens=self.special)
        self._id_to_special = {i: t for t, i in self.special.items()}
        self._decoder = {i: t for t, i in self.ranks.items()}
        self.first_special_id = self.special.get("<|endoftext|>", len(self.ranks))

    @classmethod
    def from_file(cls, path: str) -> "TiktokenBackend":
        return cls(read_ranks(path), name=os.path.basename(path))

    def save(self, path: str) -> None:
        with open(path, "wb") as fh:
            fh.writelines(base64.b64encode(token) + b" " + str(rank).encode() + b"\n"
                          for token, rank in sorted(self.ranks.items(), key=lambda kv: kv[1]))

    # -- vocabulary --------------------------------------------------------------------------------------------------
    def token_to_id(self, token: str) -> int | None:
        if token in self.special:
            return self.special[token]
        return self.ranks.get(token.encode("utf-8"))

    def id_to_token(self, token_id: int) -> str | None:
        if token_id in self._id_to_special:
            return self._id_to_special[token_id]
        token = self._decoder.get(token_id)
        return None if token is None else token.decode("utf-8", errors="replace")

    def add_special_tokens(self, tokens) -> int:
        """Special tokens the vocabulary lacks get the next free ids."""
        added = 0
        for token in tokens:
            content = getattr(token, "content", token)
            if self.token_to_id(content) is None:
                self.special[content] = max([*self.special.values(), len(self.ranks) - 1]) + 1
                added += 1
        if added:
            self._build()
        return added

    def get_vocab_size(self, with_added_tokens: bool = True) -> int:
        return self.encoding.n_vocab if with_added_tokens else len(self.ranks)

    def get_vocab(self, with_added_tokens: bool = True) -> dict[str, int]:
        vocab = {token.decode("utf-8", errors="replace"): rank for token, rank in self.ranks.items()}
        if with_added_tokens:
            vocab.update(self.special)
        return vocab

    # -- encoding / decoding ----------------------------------------------------------------------------------------
    def encode(self, text: str, add_special_tokens: bool = True) -> _Encoding:
        # no special token is ever added around the text (chat templates write them)
        return _Encoding(self.encoding.encode(unicodedata.normalize("NFC", text), allowed_special="all"))

    def encode_batch(self, texts: list[str], add_special_tokens: bool = True) -> list[_Encoding]:
        return [self.encode(text) for text in texts]

    def num_special_tokens_to_add(self, is_pair: bool = False) -> int:
        return 0

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return b"".join(self._bytes(i, skip_special_tokens) for i in ids).decode("utf-8", errors="replace")

    def _bytes(self, token_id: int, skip_special_tokens: bool) -> bytes:
        if token_id >= self.first_special_id:
            if skip_special_tokens or token_id not in self._id_to_special:
                return b""
            return self._id_to_special[token_id].encode("utf-8")
        return self._decoder.get(token_id, b"")

    def decode_stream(self, skip_special_tokens: bool = True) -> "_ByteStream":
        return _ByteStream(self, skip_special_tokens)


class _ByteStream:
    """Incremental decoding: bytes of an incomplete UTF-8 character wait for the token that completes them."""

    def __init__(self, backend: TiktokenBackend, skip_special_tokens: bool) -> None:
        self._backend = backend
        self._skip = skip_special_tokens
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def step(self, _tokenizer, token_id: int) -> str | None:
        return self._utf8.decode(self._backend._bytes(token_id, self._skip)) or None

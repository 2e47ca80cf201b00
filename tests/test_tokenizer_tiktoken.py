"""The tiktoken-format tokenizer of the HunYuan text models (spec 14) behind ``HunYuanTokenizer``, checked against an
independent implementation: transformers' ``TikTokenConverter`` turns the same ``hy.tiktoken`` into a ``tokenizers``
BPE, whose ids must equal ours. Also: special-token ids, NFC, streaming, files, chat templates, and the CLI driving a
text-only MoE checkpoint end to end."""

import base64
import collections
import json
import unicodedata

import pytest
import regex
import torch

from hunyuan import AutoProcessor, AutoTokenizer, HunYuanMoEV1Config, HunYuanMoEV1ForCausalLM, HunYuanTokenizer
from hunyuan.cli import main
from hunyuan.processing.tiktoken_backend import PATTERN, SPECIAL_TOKENS

CORPUS = [
    "Hello world! The quick brown fox jumps over the lazy dog 1234567890 times.",
    "混元大模型支持中文与英文，例如：腾讯混元。",
    "def f(x):\n    return x ** 2  # squares\n\n\ttabs and  double  spaces",
    "Emoji 🙂🚀 and accents: café, naïve, Zürich; it's we'll they've I'm",
]
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|extra_4|>{{ m['role'] }}:{{ m['content'] }}<|extra_0|>"
                 "{% endfor %}{% if add_generation_prompt %}<|extra_4|>assistant:{% endif %}")


def train_ranks(texts, merges=160):
    """A tiny byte-level BPE: the 256 bytes, then the most frequent adjacent pair inside pre-tokenized words."""
    ranks = {bytes([b]): b for b in range(256)}
    words = collections.Counter(w.encode() for t in texts for w in regex.findall(PATTERN, t))
    split = {w: [bytes([b]) for b in w] for w in words}
    for _ in range(merges):
        pairs = collections.Counter()
        for w, parts in split.items():
            for a, b in zip(parts, parts[1:]):
                pairs[a, b] += words[w]
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        ranks.setdefault(a + b, len(ranks))
        for w, parts in split.items():
            i, out = 0, []
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            split[w] = out
    return ranks


@pytest.fixture(scope="module")
def tiktoken_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hy_tiktoken")
    ranks = train_ranks(CORPUS * 3)
    lines = [base64.b64encode(t).decode() + f" {r}" for t, r in ranks.items()]
    lines.insert(300, lines[40].split()[0] + " 99999")  # a repeated token: skipped, ranks follow file order
    (path / "hy.tiktoken").write_text("\n".join(lines) + "\n")
    (path / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<|startoftext|>", "eos_token": "<|eos|>", "pad_token": "<|pad|>", "vocab_file": "hy.tiktoken",
        "chat_template": CHAT_TEMPLATE, "model_max_length": 1024}))
    return path, ranks


@pytest.fixture(scope="module")
def reference_tokenizers(tiktoken_dir):
    from transformers.convert_slow_tokenizer import TikTokenConverter

    path, _ = tiktoken_dir
    clean = path / "clean.tiktoken"  # the converter reads ranks as written, so give it the file without the repeat
    clean.write_text("\n".join(l for i, l in enumerate((path / "hy.tiktoken").read_text().splitlines()) if i != 300))
    return TikTokenConverter(str(clean), pattern=PATTERN, extra_special_tokens=list(SPECIAL_TOKENS)).converted()


def test_ids_equal_an_independent_bpe(tiktoken_dir, reference_tokenizers):
    path, ranks = tiktoken_dir
    tok = AutoTokenizer.from_pretrained(path)
    texts = CORPUS + ["<|startoftext|>mixed <|extra_4|>user:hi<|extra_0|> ünknöwn wörds ⚙️ 9999"]
    for text in texts:
        expected = reference_tokenizers.encode(text, add_special_tokens=False).ids
        assert tok.encode(text) == expected, text
        assert tok.decode(expected) == text
    assert len(tok.encode(CORPUS[0])) < len(CORPUS[0].encode())  # merges happened


def test_special_token_ids_follow_the_mergeable_tokens(tiktoken_dir):
    path, ranks = tiktoken_dir
    tok = HunYuanTokenizer.from_pretrained(path)
    n = len(ranks)
    assert tok.vocab_size == n and len(tok) == n + 210
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|startoftext|>", "<|eos|>", "<|pad|>", "<|extra_204|>"]) \
        == [n, n + 1, n + 3, n + 4, n + 209]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (n + 1, n + 3, n + 4)
    ids = tok.encode("<|startoftext|>hi<|eos|>")
    assert ids[0] == n + 1 and ids[-1] == n + 3
    assert tok.decode(ids, skip_special_tokens=True) == "hi"
    assert tok.decode(ids) == "<|startoftext|>hi<|eos|>"


def test_nfc_normalisation_and_streaming(tiktoken_dir):
    path, _ = tiktoken_dir
    tok = HunYuanTokenizer.from_pretrained(path)
    assert tok.encode("cafe\u0301") == tok.encode(unicodedata.normalize("NFC", "cafe\u0301")) == tok.encode("café")
    ids = tok.encode("混元🙂 ok") + [tok.eos_token_id]
    stream = tok.detokenizer()
    deltas = [stream.add(i) for i in ids] + [stream.finish()]
    assert "".join(deltas) == tok.decode(ids, skip_special_tokens=True) == "混元🙂 ok"
    assert all("\ufffd" not in d for d in deltas)  # never half a character
    assert "" in deltas  # some token ended inside a multi-byte character and was held back


def test_files_round_trip_and_backend_choice(tiktoken_dir, tmp_path, reference_tokenizers):
    path, _ = tiktoken_dir
    tok = HunYuanTokenizer.from_pretrained(path, padding_side="left")
    tok.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "hy.tiktoken").exists() and not (tmp_path / "saved" / "tokenizer.json").exists()
    again = AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert again.encode(CORPUS[1]) == tok.encode(CORPUS[1]) and again.padding_side == "left"
    batch = again(["a", "longer text"], padding=True, return_tensors="pt")
    assert batch["input_ids"][0, 0].item() == again.pad_token_id
    assert again(CORPUS[0], truncation=True, max_length=5)["input_ids"] == tok.encode(CORPUS[0])[:5]
    # tokenizer.json wins when both are present
    (tmp_path / "saved" / "tokenizer.json").write_text(reference_tokenizers.to_str())
    assert type(AutoTokenizer.from_pretrained(tmp_path / "saved").backend_tokenizer).__name__ == "Tokenizer"
    with pytest.raises(FileNotFoundError, match="tokenizer.json or a tiktoken vocabulary"):
        HunYuanTokenizer.from_pretrained(tmp_path)


def test_chat_template_and_cli_on_a_text_only_moe_checkpoint(tiktoken_dir, tmp_path, capsys):
    path, ranks = tiktoken_dir
    tok = AutoTokenizer.from_pretrained(path)
    messages = [{"role": "user", "content": "hi"}]
    assert tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        "<|startoftext|><|extra_4|>user:hi<|extra_0|><|extra_4|>assistant:"
    inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    assert inputs["input_ids"][0, 0].item() == tok.bos_token_id

    checkpoint = tmp_path / "moe"
    config = HunYuanMoEV1Config(vocab_size=len(tok), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2, num_experts=4, moe_topk=2,
                                pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                                bos_token_id=tok.bos_token_id)
    torch.manual_seed(0)
    model = HunYuanMoEV1ForCausalLM(config)
    model.save_pretrained(checkpoint)
    tok.save_pretrained(checkpoint)
    assert isinstance(AutoProcessor.from_pretrained(checkpoint), HunYuanTokenizer)
    new = model.generate(**inputs, max_new_tokens=6)[0, inputs["input_ids"].shape[1]:]
    assert main(["generate", "--model", str(checkpoint), "--prompt", "hi", "--max-new-tokens", "6",
                 "--no-stream"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == tok.decode(new.tolist(), skip_special_tokens=True)
    assert main(["generate", "--model", str(checkpoint), "--prompt", "hi", "--image", "x.png"]) == 2

"""Tokenizer, chat template and HunYuanVLProcessor against transformers 5.23 on a tokenizer that carries the real
HunyuanOCR special tokens at their real ids."""

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer

from hunyuan import HunYuanTokenizer, HunYuanVLProcessor
from processing_fixtures import (ASSISTANT, BOS, CORPUS, IMAGE, IMAGE_END, IMAGE_START, PAD, SYSTEM_END, USER,
                                 write_processor_checkpoint)

WRAPPED = IMAGE_START + IMAGE + IMAGE_END


def _image(h, w, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _assert_same(ours, ref):
    assert sorted(ours) == sorted(ref)
    for key in ref:
        a, b = ours[key], ref[key]
        if isinstance(b, torch.Tensor):
            assert isinstance(a, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), key
        elif isinstance(b, np.ndarray):
            assert isinstance(a, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b), key
        else:
            assert type(a) is type(b) and a == b, key


# -- tokenizer -----------------------------------------------------------------------------------------------------

def test_real_special_token_ids(processor_dir):
    tok = HunYuanTokenizer.from_pretrained(processor_dir)
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id) == (120000, 120002, 120007)
    assert tok.convert_tokens_to_ids([USER, SYSTEM_END]) == [120006, 120021]
    assert (tok.image_start_token_id, tok.image_end_token_id, tok.image_token_id) == (120118, 120119, 120120)
    assert tok.image_token == IMAGE and tok.unk_token is None and tok.unk_token_id is None
    with pytest.raises(AttributeError, match="no attribute 'video_token'"):
        tok.video_token


TEXTS = CORPUS + ["", " leading space", BOS + "hello" + USER, "a" * 300, WRAPPED * 2 + "x" + ASSISTANT, "\n\t 😀😀"]


def test_encode_and_call_match_reference(processor_dir):
    ours, ref = HunYuanTokenizer.from_pretrained(processor_dir), AutoTokenizer.from_pretrained(processor_dir)
    for text in TEXTS:
        assert ours.encode(text) == ref.encode(text)
        assert ours.encode(text, add_special_tokens=False) == ref.encode(text, add_special_tokens=False)
        _assert_same(ours(text), dict(ref(text)))
    settings = [dict(padding=True), dict(padding="longest", padding_side="left"),
                dict(padding="max_length", max_length=40, truncation=True),
                dict(padding=True, truncation=True, max_length=16, pad_to_multiple_of=8),
                dict(padding=True, max_length=12, pad_to_multiple_of=8),
                dict(padding=False, truncation=True, max_length=5)]
    for kwargs in settings:
        for return_tensors in ("pt", "np", None):
            if return_tensors and not kwargs["padding"]:
                continue
            _assert_same(ours(TEXTS, return_tensors=return_tensors, **kwargs),
                         dict(ref(TEXTS, return_tensors=return_tensors, **kwargs)))
    with pytest.raises(ValueError, match=r"max_length \(12\) must be a multiple of pad_to_multiple_of \(8\)"):
        ours(TEXTS, padding=True, truncation=True, max_length=12, pad_to_multiple_of=8)


def test_decode_matches_reference(processor_dir):
    ours, ref = HunYuanTokenizer.from_pretrained(processor_dir), AutoTokenizer.from_pretrained(processor_dir)
    batch = ref(TEXTS, padding=True, return_tensors="pt")["input_ids"]
    for skip in (False, True):
        assert ours.batch_decode(batch, skip_special_tokens=skip) == ref.batch_decode(batch, skip_special_tokens=skip)
        for row in batch:
            assert ours.decode(row, skip_special_tokens=skip) == ref.decode(row, skip_special_tokens=skip)
            assert ours.decode(row.tolist(), skip_special_tokens=skip) == ref.decode(row.numpy(), skip_special_tokens=skip)
    with pytest.raises(ValueError, match="batch_decode"):
        ours.decode(batch)


def test_add_bos_token_setting_matches_reference(tmp_path):
    """transformers 5.23 ignores add_bos_token for a plain tokenizers-backed tokenizer; so do we."""
    directory = write_processor_checkpoint(str(tmp_path / "bos"), add_bos_token=True)
    ours, ref = HunYuanTokenizer.from_pretrained(directory), AutoTokenizer.from_pretrained(directory)
    for text in TEXTS:
        assert ours.encode(text) == ref.encode(text)
    _assert_same(ours(TEXTS, padding=True, truncation=True, max_length=9, return_tensors="pt"),
                 dict(ref(TEXTS, padding=True, truncation=True, max_length=9, return_tensors="pt")))


def test_incremental_detokenizer_never_splits_a_character(processor_dir):
    tok = HunYuanTokenizer.from_pretrained(processor_dir)
    rng = random.Random(0)
    vocab = sorted(set(tok.get_vocab().values()))
    sequences = [tok.encode(t) for t in TEXTS] + [[rng.choice(vocab) for _ in range(60)] for _ in range(30)]
    multibyte = [i for i in tok.encode("😀日本語ж") if len(tok.decode([i]).encode()) < 3]
    assert multibyte, "the test tokenizer must split multi-byte characters across tokens"
    for skip in (True, False):
        for ids in sequences:
            stream = tok.detokenizer(skip_special_tokens=skip)
            deltas = [stream.add(i) for i in ids]
            text = "".join(deltas) + stream.finish()
            full = tok.decode(ids, skip_special_tokens=skip)
            assert text == full == stream.text
            if "\ufffd" not in full:
                assert all("\ufffd" not in d for d in deltas)
    stream = tok.detokenizer()
    emoji = tok.encode("😀")
    assert len(emoji) > 1 and [stream.add(i) for i in emoji][:-1] == [""] * (len(emoji) - 1)
    assert stream.text == "😀"


# -- chat template -------------------------------------------------------------------------------------------------

CONVERSATIONS = [
    [{"role": "system", "content": ""},
     {"role": "user", "content": [{"type": "image", "image": "IMG0"}, {"type": "text", "text": "提取图中的文字。"}]}],
    [{"role": "user", "content": [{"type": "text", "text": "Compare"}, {"type": "image", "url": "IMG1"},
                                  {"type": "image", "path": "IMG2"}, {"type": "text", "text": " these."}]}],
    [{"role": "system", "content": "You are an OCR engine."},
     {"role": "user", "content": "What is OCR?"},
     {"role": "assistant", "content": "Optical character recognition."},
     {"role": "user", "content": [{"type": "text", "text": "And again?"}]}],
]


def test_chat_template_renders_like_reference(processor_dir, reference_processor):
    ours = HunYuanVLProcessor.from_pretrained(processor_dir)
    for conversation in CONVERSATIONS:
        for gen in (False, True):
            assert (ours.apply_chat_template(conversation, add_generation_prompt=gen)
                    == reference_processor.apply_chat_template(conversation, add_generation_prompt=gen))
    assert ours.apply_chat_template(CONVERSATIONS) == reference_processor.apply_chat_template(CONVERSATIONS)
    assert ours.apply_chat_template(CONVERSATIONS[0]) == BOS + SYSTEM_END + WRAPPED + "提取图中的文字。" + USER
    openai_style = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}},
                                                 {"type": "text", "text": "hi"}]}]
    assert ours.apply_chat_template(openai_style) == BOS + WRAPPED + "hi" + USER


def test_chat_template_from_tokenizer_config(tmp_path, processor_dir):
    from processing_fixtures import CHAT_TEMPLATE
    directory = write_processor_checkpoint(str(tmp_path / "cfg"), template=False, chat_template=CHAT_TEMPLATE)
    from_config = HunYuanVLProcessor.from_pretrained(directory)
    from_file = HunYuanVLProcessor.from_pretrained(processor_dir)
    assert from_config.chat_template == from_file.chat_template == CHAT_TEMPLATE
    bare = HunYuanVLProcessor.from_pretrained(write_processor_checkpoint(str(tmp_path / "none"), template=False))
    with pytest.raises(ValueError, match="does not have a chat template"):
        bare.apply_chat_template(CONVERSATIONS[0])
    with pytest.raises(ValueError, match="the chat template failed: nope"):
        from_file.apply_chat_template(CONVERSATIONS[0], chat_template="{{ raise_exception('nope') }}")


# -- processor -----------------------------------------------------------------------------------------------------

def test_processor_calls_match_reference(processor_dir, reference_processor):
    ours = HunYuanVLProcessor.from_pretrained(processor_dir)
    a, b, c = _image(40, 70, 1), _image(300, 100, 2), _image(33, 900, 3)
    cases = [
        (["lower newer " + WRAPPED], [a]),                                          # single prompt
        (["two " + WRAPPED + " and " + WRAPPED + " end"], [b, c]),                  # multi-image prompt
        (["lower newer " + WRAPPED, " " + WRAPPED + " upper older longer string", "text only"], [a, c]),  # batch
        (["no images at all", "still none"], None),                                 # text only
        ("a single string " + WRAPPED, a),                                          # unbatched
    ]
    for text, images in cases:
        for kwargs in ({}, {"padding_side": "left"}, {"return_tensors": "pt"}, {"return_tensors": "np"},
                       {"return_tensors": "pt", "padding_side": "left"}):
            if images is None and "padding_side" in kwargs and "return_tensors" not in kwargs:
                continue
            _assert_same(ours(text=text, images=images, **kwargs),
                         dict(reference_processor(text=text, images=images, **kwargs)))
    out = ours(text=[WRAPPED + "x"], images=[a], return_tensors="pt")
    ids = out["input_ids"][0]
    assert out["image_grid_thw"].tolist() == [[1, 26, 44]]  # 40x70 px grows to 416x704 (min_pixels 512²)
    n = ours.num_image_tokens(26, 44)
    assert n == 13 * (22 + 1) + 2  # 13 merged rows of 22 tokens + a newline each, plus begin/end
    assert ids.tolist().count(120120) == n and out["mm_token_type_ids"].sum() == n
    assert ids[0] == 120118 and ids[n + 1] == 120119


def test_apply_chat_template_tokenized_matches_reference(tmp_path, processor_dir, reference_processor):
    ours = HunYuanVLProcessor.from_pretrained(processor_dir)
    a, b = _image(120, 90, 4), _image(64, 500, 5)
    b.save(tmp_path / "b.png")
    conversations = [
        [{"role": "system", "content": ""},
         {"role": "user", "content": [{"type": "image", "image": a}, {"type": "text", "text": "提取图中的文字。"}]}],
        [{"role": "user", "content": [{"type": "image", "path": str(tmp_path / "b.png")},
                                      {"type": "image", "image": a}, {"type": "text", "text": "two"}]}],
    ]
    for conversation in (conversations[0], conversations):
        for side in ("left", "right"):
            kwargs = dict(tokenize=True, return_tensors="pt", processor_kwargs={"padding": True, "padding_side": side})
            _assert_same(ours.apply_chat_template(conversation, **kwargs),
                         dict(reference_processor.apply_chat_template(conversation, return_dict=True, **kwargs)))
    ids = ours.apply_chat_template(conversations[0], tokenize=True, return_dict=False, return_tensors="pt")
    assert torch.equal(ids, reference_processor.apply_chat_template(conversations[0], tokenize=True,
                                                                    return_tensors="pt"))


def test_processor_errors(processor_dir):
    ours = HunYuanVLProcessor.from_pretrained(processor_dir)
    a = _image(40, 40)
    with pytest.raises(ValueError, match=r"Found total 1 .* tokens and 2 images"):
        ours(text=[WRAPPED], images=[a, a])
    with pytest.raises(ValueError, match=r"Found total 2 .* tokens and 1 images"):
        ours(text=[WRAPPED, WRAPPED], images=[a])
    with pytest.raises(ValueError, match=r"Found 1 .* tokens in the text but no images were passed"):
        ours(text=WRAPPED)
    with pytest.raises(ValueError, match=r"must be formatted as .* prompt 0 has a bare"):
        ours(text=IMAGE + " hello", images=[a])
    with pytest.raises(ValueError, match=r"prompt 1 has a bare"):
        ours(text=[WRAPPED, IMAGE_START + IMAGE + IMAGE + IMAGE_END], images=[a, a, a])
    with pytest.raises(ValueError, match=r"image 0: absolute aspect ratio must be smaller than 200, got 201.0"):
        ours(text=WRAPPED, images=[Image.new("RGB", (201, 1))])
    with pytest.raises(ValueError, match="at least one input"):
        ours()
    with pytest.raises(ValueError, match="rows of different lengths"):
        ours(text=["a", "a longer one"], padding=False, return_tensors="pt")
    with pytest.raises(TypeError, match=r"unknown processor argument\(s\) \['max_pixel'\]"):
        ours(text="x", max_pixel=3)
    with pytest.raises(ValueError, match="backend must be one of"):
        HunYuanVLProcessor.from_pretrained(processor_dir, backend="tf")
    with pytest.raises(ValueError, match="device= needs backend='torch'"):
        HunYuanVLProcessor.from_pretrained(processor_dir, device="cuda")
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['colour'\]"):
        HunYuanVLProcessor.from_pretrained(processor_dir, colour="red")
    with pytest.raises(ValueError, match="an image item needs one of the keys"):
        ours.apply_chat_template([{"role": "user", "content": [{"type": "image"}]}], tokenize=True)


def test_missing_named_tokens(tmp_path):
    """Older HunyuanOCR snapshots do not name the image tokens: we take them from the HunyuanOCR vocabulary
    (transformers refuses); a tokenizer without them at all gets the reference's error."""
    directory = write_processor_checkpoint(str(tmp_path / "old"), named_image_tokens=False)
    processor = HunYuanVLProcessor.from_pretrained(directory)
    assert (processor.image_token_id, processor.image_start_token_id, processor.image_end_token_id) == (120120, 120118,
                                                                                                      120119)
    with pytest.raises(ValueError, match="missing required attribute 'image_token'"):
        AutoProcessor.from_pretrained(directory, backend="pil")
    from tokenizers import Tokenizer, models
    bare = HunYuanTokenizer(Tokenizer(models.BPE(vocab={"a": 0}, merges=[])), {"pad_token": "a"})
    with pytest.raises(ValueError, match="missing required attribute 'image_token'"):
        HunYuanVLProcessor(tokenizer=bare)


def test_get_num_multimodal_tokens_matches_reference_and_call(processor_dir, reference_processor):
    ours = HunYuanVLProcessor.from_pretrained(processor_dir)
    sizes = [(100, 100), (300, 100), (500, 30), (213, 167)]
    got, ref = ours._get_num_multimodal_tokens(image_sizes=sizes), reference_processor._get_num_multimodal_tokens(
        image_sizes=sizes)
    assert got["num_image_tokens"] == ref.num_image_tokens and got["num_image_patches"] == ref.num_image_patches
    images = [_image(h, w, i) for i, (h, w) in enumerate(sizes)]
    out = ours(text=["x " + WRAPPED] * 4, images=images, return_tensors="pt")
    assert out["mm_token_type_ids"].sum(-1).tolist() == got["num_image_tokens"]


def test_processor_round_trips_both_ways(tmp_path, processor_dir, reference_processor):
    ours = HunYuanVLProcessor.from_pretrained(processor_dir, max_pixels=1024 * 1024, padding_side="left")
    ours.save_pretrained(tmp_path / "ours")
    files = sorted(p.name for p in (tmp_path / "ours").iterdir())
    assert files == ["chat_template.jinja", "processor_config.json", "tokenizer.json", "tokenizer_config.json"]
    assert json.loads((tmp_path / "ours" / "processor_config.json").read_text())["image_processor"]["size"] == {
        "shortest_edge": 512 * 512, "longest_edge": 1024 * 1024}
    ref = AutoProcessor.from_pretrained(str(tmp_path / "ours"), backend="pil")
    again = HunYuanVLProcessor.from_pretrained(tmp_path / "ours")
    assert again.tokenizer.padding_side == ref.tokenizer.padding_side == "left"
    assert again.image_processor.max_pixels == ref.image_processor.size.longest_edge == 1024 * 1024
    conversation = [{"role": "system", "content": ""},
                    {"role": "user", "content": [{"type": "image", "image": _image(2000, 1500)},
                                                 {"type": "text", "text": "hello"}]}]
    _assert_same(again.apply_chat_template(conversation, tokenize=True, return_tensors="pt"),
                 dict(ref.apply_chat_template(conversation, tokenize=True, return_dict=True, return_tensors="pt")))
    reference_processor.save_pretrained(str(tmp_path / "ref"))
    from_ref = HunYuanVLProcessor.from_pretrained(tmp_path / "ref")
    assert from_ref.chat_template == reference_processor.chat_template
    assert from_ref.image_processor.to_dict() == HunYuanVLProcessor.from_pretrained(processor_dir).image_processor.to_dict()
    assert from_ref.tokenizer.special_tokens_map == HunYuanTokenizer.from_pretrained(processor_dir).special_tokens_map


def test_batch_feature_to_moves_and_casts(processor_dir):
    ours = HunYuanVLProcessor.from_pretrained(processor_dir)
    out = ours(text=WRAPPED + "x", images=_image(64, 64), return_tensors="pt").to(torch.bfloat16)
    assert out.pixel_values.dtype == torch.bfloat16 and out.input_ids.dtype == torch.int64
    assert out.to("cpu") is out


def test_special_tokens_map_names_tokens_like_reference(tmp_path):
    directory = write_processor_checkpoint(str(tmp_path / "map"), pad_token=None)
    with open(f"{directory}/special_tokens_map.json", "w", encoding="utf-8") as fh:
        json.dump({"pad_token": {"content": PAD, "special": True}, "eos_token": USER}, fh, ensure_ascii=False)
    ours, ref = HunYuanTokenizer.from_pretrained(directory), AutoTokenizer.from_pretrained(directory)
    assert ours.pad_token_id == ref.pad_token_id == 120002
    assert ours.eos_token == ref.eos_token == USER  # the map wins over tokenizer_config.json, as in transformers

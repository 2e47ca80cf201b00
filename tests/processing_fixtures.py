"""A tiny HunyuanOCR-style processor checkpoint on disk: a byte-level BPE ``tokenizer.json`` trained here (a few
hundred tokens) that carries the real HunyuanOCR special tokens at their real ids (spec §3), the v5
``tokenizer_config.json`` naming them, a ``chat_template.jinja`` producing the real prompt format, and the 1.0
``preprocessor_config.json`` (min 512², max 2048² pixels, resample=1 which is ignored)."""

from __future__ import annotations

import json
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

BOS, PAD, USER, ASSISTANT = "<｜hy_begin▁of▁sentence｜>", "<｜hy_▁pad▁｜>", "<｜hy_User｜>", "<｜hy_Assistant｜>"


def placeholder(k: int) -> str:
    return f"<｜hy_place▁holder▁no▁{k}｜>"


# string -> id, as in the released vocabulary (placeholder no_k sits at 120018 + k)
SPECIAL_IDS = {BOS: 120000, PAD: 120002, USER: 120006, ASSISTANT: 120007,
               **{placeholder(k): 120018 + k for k in range(0, 106)}}
IMAGE_START, IMAGE_END, IMAGE = placeholder(100), placeholder(101), placeholder(102)
SYSTEM_END = placeholder(3)

# The current HunyuanOCR template (spec §3): BOS [system <no_3>], user turns end with <User>, assistant turns
# with <Assistant>; an image item is <no_100><no_102><no_101>; add_generation_prompt adds nothing.
CHAT_TEMPLATE = """{%- macro render_content(content) -%}
{%- if content is string -%}
{{- content -}}
{%- else -%}
{%- for item in content -%}
{%- if item.type == 'image' -%}
{{- '""" + IMAGE_START + IMAGE + IMAGE_END + """' -}}
{%- elif item.type == 'text' -%}
{{- item.text -}}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{%- endmacro -%}
{{- '""" + BOS + """' -}}
{%- if messages and messages[0].role == 'system' -%}
{{- render_content(messages[0].content) + '""" + SYSTEM_END + """' -}}
{%- set messages = messages[1:] -%}
{%- endif -%}
{%- for message in messages -%}
{%- if message.role == 'user' -%}
{{- render_content(message.content) + '""" + USER + """' -}}
{%- elif message.role == 'assistant' -%}
{{- render_content(message.content) + '""" + ASSISTANT + """' -}}
{%- endif -%}
{%- endfor -%}
"""

CORPUS = [
    "Extract the text in the image. lower newer upper older longer string hello world",
    "提取图中的文字。检测并识别图片中的文字，将文本坐标格式化输出。把图中的表格解析为 HTML。",
    "The quick brown fox jumps over the lazy dog 0123456789 (x1,y1),(x2,y2) <td></td> $\\frac{a}{b}$",
    "émoji 😀🎉 naïve café Ünïcödé — ñ ß Ω ж 日本語のテキスト 한국어",
]

IMAGE_PROCESSOR_CONFIG = {
    "image_processor_type": "HunYuanVLImageProcessor", "processor_class": "HunYuanVLProcessor",
    "min_pixels": 512 * 512, "max_pixels": 2048 * 2048, "patch_size": 16, "temporal_patch_size": 1, "merge_size": 2,
    "resample": 1, "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711], "do_rescale": True, "do_normalize": True,
    "rescale_factor": 1 / 255, "do_convert_rgb": True,
}


def build_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS * 20, trainer)
    data = json.loads(tok.to_str())
    data["model"]["vocab"].update(SPECIAL_IDS)  # ids with a gap, like the real 120000+ block after the BPE vocab
    data["added_tokens"] = [dict(id=i, content=s, single_word=False, lstrip=False, rstrip=False, normalized=False,
                                 special=True) for s, i in sorted(SPECIAL_IDS.items(), key=lambda kv: kv[1])]
    return Tokenizer.from_str(json.dumps(data))


def tokenizer_config(named_image_tokens: bool = True) -> dict:
    config = {"tokenizer_class": "TokenizersBackend", "bos_token": BOS, "eos_token": ASSISTANT, "pad_token": PAD,
              "model_max_length": 32768, "padding_side": "right", "clean_up_tokenization_spaces": False}
    if named_image_tokens:
        config["extra_special_tokens"] = {"image_token": IMAGE, "image_start_token": IMAGE_START,
                                          "image_end_token": IMAGE_END}
    return config


def write_processor_checkpoint(directory: str, *, named_image_tokens: bool = True, template: bool = True,
                               **config_overrides) -> str:
    """Write tokenizer.json, tokenizer_config.json, chat_template.jinja and preprocessor_config.json."""
    os.makedirs(directory, exist_ok=True)
    build_tokenizer().save(os.path.join(directory, "tokenizer.json"))
    with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as fh:
        json.dump({**tokenizer_config(named_image_tokens), **config_overrides}, fh, ensure_ascii=False, indent=1)
    if template:
        with open(os.path.join(directory, "chat_template.jinja"), "w", encoding="utf-8") as fh:
            fh.write(CHAT_TEMPLATE)
    with open(os.path.join(directory, "preprocessor_config.json"), "w", encoding="utf-8") as fh:
        json.dump(IMAGE_PROCESSOR_CONFIG, fh, indent=1)
    return directory


# A tiny HunyuanOCR-shaped model: the real vocabulary size and special ids, everything else small.
OCR_MODEL_CONFIG = dict(
    text_config=dict(vocab_size=120818, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=16, pad_token_id=120002,
                     bos_token_id=120000, eos_token_id=[120007, 120020], max_position_embeddings=32768,
                     rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "alpha": 1000.0,
                                      "mrope_section": [2, 2, 2, 2]}),
    vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                       max_image_size=128),
    image_token_id=120120, im_start_id=120118, im_end_id=120119,
)


def write_ocr_checkpoint(directory: str, seed: int = 0) -> str:
    """Processor files plus a tiny random HunYuanVL model with the real HunyuanOCR ids. Embedding rows of ids the
    tiny tokenizer lacks, and of every special token but the two eos ids, are zeroed, so (with the tied head) the
    model mostly emits ids that decode to text."""
    import torch

    from hunyuan import HunYuanVLConfig, HunYuanVLForConditionalGeneration

    write_processor_checkpoint(directory)
    torch.manual_seed(seed)
    model = HunYuanVLForConditionalGeneration(HunYuanVLConfig(**OCR_MODEL_CONFIG))
    vocab = build_tokenizer().get_vocab()
    known = torch.zeros(OCR_MODEL_CONFIG["text_config"]["vocab_size"], dtype=torch.bool)
    known[[i for i in vocab.values() if i < min(SPECIAL_IDS.values())]] = True
    known[OCR_MODEL_CONFIG["text_config"]["eos_token_id"]] = True
    with torch.no_grad():
        model.get_input_embeddings().weight[~known] = 0
    model.save_pretrained(directory)
    return directory

"""Configs: defaults, the flat legacy HunyuanOCR 1.0 layout, the nested layout, round trips and clear errors."""

import copy
import json

import pytest
import torch

from hunyuan import HunYuanVLConfig, HunYuanVLForConditionalGeneration, HunYuanVLTextConfig, HunYuanVLVisionConfig
from hunyuan.modeling.rope import compute_inv_freq
from reference import VARIANTS

# tencent/HunyuanOCR config.json (flat legacy layout), spec section 1.6
OCR_V1_CONFIG = {
    "architectures": ["HunYuanVLForConditionalGeneration"], "model_type": "hunyuan_vl",
    "transformers_version": "4.49.0", "hidden_size": 1024, "intermediate_size": 3584, "num_hidden_layers": 24,
    "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "attention_head_dim": 128,
    "vocab_size": 120818, "org_vocab_size": 120818, "hidden_act": "silu", "rms_norm_eps": 1e-5,
    "max_position_embeddings": 32768, "attention_bias": False, "mlp_bias": False, "norm_type": "rms",
    "use_qk_norm": True, "use_cla": False, "num_experts": 1, "routed_scaling_factor": 1.0, "pretraining_tp": 1,
    "rope_theta": 10000.0,
    "rope_scaling": {"type": "xdrope", "alpha": 1000.0, "factor": 1.0, "beta_fast": 32, "beta_slow": 1,
                     "mscale": 1.0, "mscale_all_dim": 1.0, "xdrope_section": [16, 16, 16, 16]},
    "bos_token_id": 120000, "eos_token_id": [120007, 120020], "eod_token_id": 120020, "pad_token_id": -1,
    "pad_id": 120002, "sep_token_id": 0, "text_start_id": 7, "text_end_id": 8, "tie_word_embeddings": True,
    "image_token_id": 120120, "image_start_token_id": 120118, "image_end_token_id": 120119,
    "image_newline_token_id": 120121,
    "vision_config": {"hidden_size": 1152, "out_hidden_size": 1024, "num_hidden_layers": 27,
                      "num_attention_heads": 16, "intermediate_size": 4304, "patch_size": 16, "num_channels": 3,
                      "spatial_merge_size": 2, "rms_norm_eps": 1e-5, "interpolate_mode": "bilinear",
                      "hidden_act": "gelu", "max_image_size": 2048, "img_max_token_num": 4096,
                      "max_vit_seq_len": 16384, "cat_extra_token": 1, "add_patchemb_bias": True,
                      "anyres_vit_max_image_size": 2048},
}


def test_documented_defaults():
    vision = HunYuanVLVisionConfig()
    assert (vision.hidden_size, vision.intermediate_size, vision.num_hidden_layers, vision.num_attention_heads,
            vision.patch_size, vision.spatial_merge_size, vision.max_image_size) == (1152, 4304, 27, 16, 16, 2, 2048)
    assert vision.pos_embed_resize == "original" and vision.num_key_value_heads == 16
    text = HunYuanVLTextConfig()
    assert (text.vocab_size, text.hidden_size, text.num_hidden_layers, text.tie_word_embeddings) == (290943, 4096, 32,
                                                                                                   True)
    assert text.rope_parameters == {"rope_type": "default", "rope_theta": 10000.0}
    assert text.head_dim == 128  # spec 13.3: None falls back to hidden // heads
    top = HunYuanVLConfig()
    assert (top.image_token_id, top.im_start_id, top.im_end_id, top.im_newline_id) == (120120, 120118, 120119, 120121)
    assert top.vision_config.text_hidden_size == top.text_config.hidden_size == 4096


def test_flat_legacy_ocr_config_matches_reference():
    from transformers import HunYuanVLConfig as Reference

    ours = HunYuanVLConfig.from_dict(OCR_V1_CONFIG)
    ref = Reference(**copy.deepcopy(OCR_V1_CONFIG))
    text = ours.text_config
    assert text.pad_token_id == ref.text_config.pad_token_id == 120002  # the pad_id alias wins over -1
    assert text.pad_id == 120002 and text.attention_head_dim == 128  # aliases read through
    assert text.vocab_size == 120818 and text.head_dim == 128 and text.num_key_value_heads == 8
    assert text.eos_token_id == [120007, 120020]
    for key in ("rope_type", "rope_theta", "alpha", "mrope_section", "factor"):
        assert text.rope_parameters[key] == ref.text_config.rope_parameters[key], key
    assert "xdrope_section" not in text.rope_parameters
    # unknown legacy keys are kept on the level they were given, never used
    assert ours.image_start_token_id == 120118 and ours.use_qk_norm is True
    assert ours.vision_config.cat_extra_token == 1 and ours.vision_config.text_hidden_size == 1024
    assert ours.tie_word_embeddings is True


def test_full_size_ocr_model_on_meta_device():
    config = HunYuanVLConfig.from_dict(OCR_V1_CONFIG)
    with torch.device("meta"):
        model = HunYuanVLForConditionalGeneration(config)
    assert model.num_parameters() == 996_208_112
    assert model.model.vision_tower.embeddings.position_embedding.weight.shape == (16385, 1152)
    inv_freq = compute_inv_freq(config.text_config.rope_parameters, 128, 32768)
    base = inv_freq[1].double() ** (-64)  # inv_freq[i] = base^(-2i/d)
    assert abs(base.item() / 11_158_839.925 - 1) < 1e-5


def test_nested_round_trip(tmp_path):
    config = HunYuanVLConfig.from_dict(OCR_V1_CONFIG)
    config.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert "text_config" in data and "hidden_size" not in data  # written nested
    assert data["vision_config"]["pos_embed_resize"] == "original"
    again = HunYuanVLConfig.from_pretrained(tmp_path)
    assert again == config and again.to_dict() == config.to_dict()
    assert HunYuanVLConfig.from_pretrained(tmp_path / "config.json") == config


def test_nested_config_loads_in_reference(tmp_path):
    from transformers import HunYuanVLConfig as Reference

    HunYuanVLConfig(**VARIANTS["3axes-gqa-tied-ntk"]).save_pretrained(tmp_path)
    ref = Reference.from_pretrained(tmp_path)
    assert ref.text_config.rope_parameters["mrope_section"] == [3, 3, 2]
    assert ref.vision_config.hidden_size == 32 and ref.image_token_id == 5


def test_nested_layout_with_xdrope_rope_parameters():
    """HunyuanOCR 1.5 style: nested text_config whose rope_parameters say rope_type 'xdrope'."""
    config = HunYuanVLConfig(text_config={"hidden_size": 64, "num_attention_heads": 4, "head_dim": 16,
                                          "rope_parameters": {"rope_type": "xdrope", "rope_theta": 1e4, "alpha": 1e3,
                                                              "xdrope_section": [2.0, 2, 2, 2]}})
    assert config.text_config.rope_parameters["rope_type"] == "dynamic"
    assert config.text_config.rope_parameters["mrope_section"] == [2, 2, 2, 2]


def test_aliases_write_through():
    text = HunYuanVLTextConfig(pad_id=7)
    assert text.pad_token_id == 7
    text.pad_id = 9
    assert text.pad_token_id == 9
    assert HunYuanVLVisionConfig(attention_heads=8, layer_norm_eps=1e-6).num_attention_heads == 8


BAD_TEXT = [
    (dict(rope_parameters={"rope_type": "yarn", "rope_theta": 1e4}), "rope_type='yarn'"),
    (dict(head_dim=16, rope_parameters={"rope_type": "default", "mrope_section": [2, 2, 2, 1]}), "summing to"),
    (dict(head_dim=16, rope_parameters={"rope_type": "default", "mrope_section": [2.5, 2, 2, 1.5]}),
     "non-empty list of integers"),
    (dict(rope_parameters={"rope_type": "dynamic"}), "'alpha'"),
    (dict(rope_parameters={"rope_type": "dynamic", "alpha": -1}), "alpha=-1"),
    (dict(num_attention_heads=6, num_key_value_heads=4), "num_key_value_heads=4"),
    (dict(hidden_size=0), "hidden_size=0"),
    (dict(hidden_act="swish2"), "hidden_act='swish2'"),
]


@pytest.mark.parametrize("kwargs,match", BAD_TEXT)
def test_invalid_text_config_raises_naming_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match.replace("[", r"\[").replace("(", r"\(")):
        HunYuanVLTextConfig(**kwargs)


def test_conflicting_xdrope_and_mrope_sections():
    with pytest.raises(ValueError, match="differ"):
        HunYuanVLTextConfig(head_dim=16, rope_parameters={"rope_type": "default", "mrope_section": [2, 2, 2, 2],
                                                          "xdrope_section": [4, 2, 1, 1]})


def test_fewer_than_three_axes_rejected():
    with pytest.raises(ValueError, match=r"mrope_section=\[4, 4\] is invalid: expected at least 3 xD-RoPE axes"):
        HunYuanVLConfig(text_config={"hidden_size": 64, "num_attention_heads": 4, "head_dim": 16,
                                     "rope_parameters": {"rope_type": "default", "mrope_section": [4, 4]}})
    # no sections at all is plain RoPE: fine for text, a clear error once positions for images are needed
    text_only = {**VARIANTS["4axes-gqa-tied-ntk"]["text_config"], "rope_parameters": {"rope_type": "default"}}
    model = HunYuanVLForConditionalGeneration(HunYuanVLConfig(**{**VARIANTS["4axes-gqa-tied-ntk"],
                                                                 "text_config": text_only}))
    ids = torch.tensor([[1, 2, 3]])
    assert model(input_ids=ids).logits.shape == (1, 3, 256)
    with pytest.raises(ValueError, match="at least 3 multimodal RoPE axes"):
        model.model.get_rope_index(ids, torch.zeros_like(ids), torch.tensor([[1, 2, 2]]))


@pytest.mark.parametrize("kwargs,match", [
    (dict(pos_embed_resize="nearest-ish"), "pos_embed_resize"),
    (dict(interpolate_mode="area"), "interpolate_mode"),
    (dict(hidden_size=30, num_attention_heads=4), "num_attention_heads=4"),
    (dict(max_image_size=100, patch_size=16), "max_image_size=100"),
    (dict(spatial_merge_size=0), "spatial_merge_size=0"),
])
def test_invalid_vision_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HunYuanVLVisionConfig(**kwargs)


def test_malformed_config_file(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        HunYuanVLConfig.from_pretrained(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        HunYuanVLConfig.from_pretrained(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="neither an existing local directory"):
        HunYuanVLConfig.from_pretrained(tmp_path / "missing")
    (tmp_path / "config.json").write_text(json.dumps({"text_config": "oops"}))
    with pytest.raises(ValueError, match="text_config"):
        HunYuanVLConfig.from_pretrained(tmp_path)

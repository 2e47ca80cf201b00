"""Checkpoint loading and saving: on-disk Tencent names, transformers in-memory names, shards, subfolders, ties,
clear errors for broken checkpoints, hub resolution offline, and memory during load."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from hunyuan import CheckpointError, HunYuanVLConfig, HunYuanVLForConditionalGeneration, HunYuanVLModel
from reference import VARIANTS, make_prompt, model_inputs
from test_config import OCR_V1_CONFIG

GRIDS = [[1, 4, 4]]


def keys_of(path):
    keys = set()
    for name in os.listdir(path):
        if name.endswith(".safetensors"):
            with safe_open(os.path.join(path, name), framework="pt") as fh:
                keys |= set(fh.keys())
    return keys


def logits(model, seed=0):
    with torch.no_grad():
        return model(**model_inputs(*make_prompt(GRIDS, seed=seed), GRIDS)).logits


def copy_checkpoint(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("variant", ["4axes-gqa-tied-ntk", "4axes-mha-untied-default"])
def test_saved_key_names_equal_reference_on_disk_layout(reference_checkpoints, tmp_path, variant):
    ref, path = reference_checkpoints[variant]
    ours = HunYuanVLForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
    ours.save_pretrained(tmp_path)
    ours_keys, ref_keys = keys_of(tmp_path), keys_of(path)
    assert ours_keys == ref_keys
    assert "vit.perceive.proj.0.weight" in ours_keys and "vit.layers.0.mlp.dense_h_to_4h.weight" in ours_keys
    assert "vit.layers.0.input_layernorm.weight" in ours_keys and "model.layers.0.mlp.gate_proj.weight" in ours_keys
    assert ("lm_head.weight" in ours_keys) == (not VARIANTS[variant]["tie_word_embeddings"])
    again = HunYuanVLForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.float32)
    assert torch.equal(logits(again), logits(ours))
    for a, b in zip(again.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)


def test_sharded_round_trip(reference_checkpoints, tmp_path):
    _, path = reference_checkpoints["4axes-gqa-tied-ntk"]
    ours = HunYuanVLForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
    ours.save_pretrained(tmp_path, max_shard_size="60KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shards = set(index["weight_map"].values())
    assert len(shards) > 3 and not (tmp_path / "model.safetensors").exists()
    assert set(index["weight_map"]) == keys_of(path)
    again = HunYuanVLForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.float32)
    assert torch.equal(logits(again), logits(ours))


def test_transformers_in_memory_names_load(reference_checkpoints, tmp_path):
    ref, path = reference_checkpoints["4axes-mha-untied-default"]
    shutil.copy(os.path.join(path, "config.json"), tmp_path)
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    assert "model.vision_tower.patch_merger.proj_conv.weight" in state
    save_file(state, tmp_path / "model.safetensors")
    ours = HunYuanVLForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.float32)
    expected = ref(**model_inputs(*make_prompt(GRIDS), GRIDS)).logits.detach()
    assert (logits(ours) - expected).abs().max() <= 1e-4


def test_flat_legacy_config_with_subfolder(reference_checkpoints, tmp_path):
    """The HunyuanOCR 1.0 layout: flat config.json, weights in the repo's v1.0/ subfolder."""
    ref, path = reference_checkpoints["4axes-gqa-tied-ntk"]
    nested = json.loads(open(os.path.join(path, "config.json")).read())
    flat = {k: v for k, v in nested.items() if k != "text_config"}
    text = nested["text_config"]
    flat.update({k: v for k, v in text.items() if k not in ("rope_parameters", "model_type", "tie_word_embeddings")})
    rope = dict(text["rope_parameters"])
    flat["rope_theta"] = rope.pop("rope_theta")
    rope["type"] = "xdrope"
    rope["xdrope_section"] = rope.pop("mrope_section")
    rope.pop("rope_type")
    flat.update(rope_scaling=rope, attention_head_dim=flat.pop("head_dim"), pad_id=0, pad_token_id=-1)
    sub = tmp_path / "v1.0"
    sub.mkdir()
    (sub / "config.json").write_text(json.dumps(flat))
    shutil.copy(os.path.join(path, "model.safetensors"), sub)
    ours = HunYuanVLForConditionalGeneration.from_pretrained(tmp_path, subfolder="v1.0", dtype=torch.float32)
    expected = ref(**model_inputs(*make_prompt(GRIDS), GRIDS)).logits.detach()
    assert (logits(ours) - expected).abs().max() <= 1e-4


def test_base_model_loads_full_checkpoint(reference_checkpoints):
    ref, path = reference_checkpoints["4axes-mha-untied-default"]
    base = HunYuanVLModel.from_pretrained(path, dtype=torch.float32)
    inputs = model_inputs(*make_prompt(GRIDS), GRIDS)
    with torch.no_grad():
        got = base(**inputs).last_hidden_state
        expected = ref.model(**inputs).last_hidden_state
    assert (got - expected).abs().max() <= 1e-4


def test_dtype_auto_follows_checkpoint_and_bf16_checkpoint(reference_checkpoints, tmp_path):
    _, path = reference_checkpoints["4axes-gqa-tied-ntk"]
    model = HunYuanVLForConditionalGeneration.from_pretrained(path)
    assert model.dtype == torch.float32
    HunYuanVLForConditionalGeneration.from_pretrained(path, torch_dtype=torch.bfloat16).save_pretrained(tmp_path)
    assert HunYuanVLForConditionalGeneration.from_pretrained(tmp_path).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="dtype='float8'"):
        HunYuanVLForConditionalGeneration.from_pretrained(path, dtype="float8")


def _rewrite(path, dst, edit):
    dst = copy_checkpoint(path, dst)
    file = os.path.join(dst, "model.safetensors")
    with safe_open(file, framework="pt") as fh:
        state = {k: fh.get_tensor(k) for k in fh.keys()}
    edit(state)
    save_file(state, file)
    return dst


def test_missing_key_is_a_clear_error_and_strict_false_loads(reference_checkpoints, tmp_path):
    _, path = reference_checkpoints["4axes-gqa-tied-ntk"]
    broken = _rewrite(path, tmp_path / "ckpt", lambda s: s.pop("vit.perceive.image_end"))
    with pytest.raises(CheckpointError, match=r"1 missing keys .*patch_merger\.image_end.*strict=False"):
        HunYuanVLForConditionalGeneration.from_pretrained(broken)
    model = HunYuanVLForConditionalGeneration.from_pretrained(broken, strict=False)
    merger = model.model.vision_tower.patch_merger
    assert merger.image_end.device.type == "cpu" and torch.isfinite(logits(model)).all()
    with safe_open(os.path.join(path, "model.safetensors"), framework="pt") as fh:
        for name in ("image_begin", "image_newline", "image_sep"):  # loaded siblings are left untouched
            assert torch.equal(getattr(merger, name), fh.get_tensor(f"vit.perceive.{name}"))


def test_unexpected_key_and_wrong_shape_are_clear_errors(reference_checkpoints, tmp_path):
    _, path = reference_checkpoints["4axes-gqa-tied-ntk"]
    extra = _rewrite(path, tmp_path / "extra", lambda s: s.update({"vit.some_new_thing": torch.zeros(3)}))
    with pytest.raises(CheckpointError, match=r"unexpected keys \(e.g. vit.some_new_thing"):
        HunYuanVLForConditionalGeneration.from_pretrained(extra)
    assert HunYuanVLForConditionalGeneration.from_pretrained(extra, strict=False) is not None

    def shrink(state):
        state["model.norm.weight"] = torch.ones(32)
    wrong = _rewrite(path, tmp_path / "wrong", shrink)
    with pytest.raises(CheckpointError, match=r"model.norm.weight: checkpoint \(32,\) vs model \(64,\)"):
        HunYuanVLForConditionalGeneration.from_pretrained(wrong)


def test_corrupt_or_absent_weights(reference_checkpoints, tmp_path):
    _, path = reference_checkpoints["4axes-gqa-tied-ntk"]
    corrupt = copy_checkpoint(path, tmp_path / "corrupt")
    with open(os.path.join(corrupt, "model.safetensors"), "r+b") as fh:
        fh.write(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="cannot read safetensors file .*model.safetensors"):
        HunYuanVLForConditionalGeneration.from_pretrained(corrupt)
    empty = tmp_path / "noweights"
    empty.mkdir()
    shutil.copy(os.path.join(path, "config.json"), empty)
    with pytest.raises(CheckpointError, match="no model.safetensors or model.safetensors.index.json"):
        HunYuanVLForConditionalGeneration.from_pretrained(empty)
    with pytest.raises(FileNotFoundError, match="is a file"):
        HunYuanVLForConditionalGeneration.from_pretrained(os.path.join(path, "config.json"))


def test_hub_id_offline_says_how_to_use_a_local_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(OSError, match="pass the local directory") as info:
        HunYuanVLForConditionalGeneration.from_pretrained("tencent/HunyuanOCR", subfolder="v1.0")
    assert "huggingface-cli download tencent/HunyuanOCR" in str(info.value)


def test_hub_id_resolves_from_local_cache(reference_checkpoints, tmp_path, monkeypatch):
    """A repo id whose files are already in the hub cache loads offline (local cache first)."""
    _, path = reference_checkpoints["4axes-gqa-tied-ntk"]
    snapshot = tmp_path / "hub" / "models--tencent--TinyOCR" / "snapshots" / ("0" * 40)
    shutil.copytree(path, snapshot)
    (tmp_path / "hub" / "models--tencent--TinyOCR" / "refs").mkdir()
    (tmp_path / "hub" / "models--tencent--TinyOCR" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = HunYuanVLForConditionalGeneration.from_pretrained("tencent/TinyOCR", cache_dir=str(tmp_path / "hub"))
    direct = HunYuanVLForConditionalGeneration.from_pretrained(path)
    assert torch.equal(logits(model), logits(direct))


def test_loading_holds_about_one_copy_of_the_weights(tmp_path):
    """Build on meta, assign tensor by tensor: peak RSS grows by ~1x the weights, never 2x."""
    config = dict(VARIANTS["4axes-gqa-tied-ntk"])
    config["text_config"] = {**config["text_config"], "vocab_size": 60000, "hidden_size": 256,
                             "num_attention_heads": 4, "head_dim": 64, "intermediate_size": 1024,
                             "num_hidden_layers": 8, "rope_parameters": {"rope_type": "default",
                                                                        "mrope_section": [8, 8, 8, 8]}}
    HunYuanVLForConditionalGeneration(HunYuanVLConfig(**config)).save_pretrained(tmp_path, max_shard_size="30MB")
    size = sum(os.path.getsize(tmp_path / f) for f in os.listdir(tmp_path) if f.endswith(".safetensors"))
    script = textwrap.dedent(f"""
        import torch, hunyuan

        def status(field):  # kB, from the kernel: VmRSS = resident now, VmHWM = peak resident
            return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field + ":"))

        before = status("VmRSS")
        model = hunyuan.HunYuanVLForConditionalGeneration.from_pretrained({str(tmp_path)!r})
        print((status("VmHWM") - before) * 1024 / {size})  # peak growth over the weights' size
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    ratio = float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                                 check=True).stdout.strip())
    assert size > 80e6
    assert 0.5 < ratio < 1.6, f"peak RSS grew by {ratio:.2f}x the checkpoint size while loading"


def test_full_size_config_flat_file_builds_on_meta(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(OCR_V1_CONFIG))
    config = HunYuanVLConfig.from_pretrained(tmp_path)
    with torch.device("meta"):
        assert HunYuanVLForConditionalGeneration(config).num_parameters() == 996_208_112

"""HunYuanDenseV1 / HunYuanMoEV1 against transformers 5.23 on tiny random models (fp32, max |diff| <= 1e-4):
Model / ForCausalLM / ForSequenceClassification, MoE top-1 / top-2 / per-layer top-k, router logits, losses,
padding, greedy generation, and checkpoints in both directions."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file
from text_reference import TEXT_VARIANTS, build_text_reference, padded_batch, text_config

import hunyuan
from hunyuan import (AutoModel, AutoModelForCausalLM, CheckpointError, HunYuanDenseV1ForCausalLM,
                     HunYuanMoEV1Config, HunYuanMoEV1ForCausalLM, HunYuanMoEV1ForSequenceClassification,
                     HunYuanMoEV1Model)

TOL = 1e-4
HEADS = ("Model", "ForCausalLM", "ForSequenceClassification")


def ours_class(family, head):
    return getattr(hunyuan, {"dense": "HunYuanDenseV1", "moe": "HunYuanMoEV1"}[family] + head)


def max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{(variant, head): (reference model, directory it saved to)}."""
    out = {}
    for name, (family, config) in TEXT_VARIANTS.items():
        for head in HEADS:
            extra = {"num_labels": 3} if head == "ForSequenceClassification" else {}
            ref = build_text_reference(family, config, head, **extra)
            path = tmp_path_factory.mktemp(f"{name}-{head}")
            ref.save_pretrained(path)
            out[name, head] = (ref, str(path))
    return out


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("variant", sorted(TEXT_VARIANTS))
@torch.no_grad()
def test_outputs_match_reference(checkpoints, variant, head):
    family = TEXT_VARIANTS[variant][0]
    ref, path = checkpoints[variant, head]
    ours = ours_class(family, head).from_pretrained(path, dtype=torch.float32)
    for side in ("left", "right"):
        batch = padded_batch(seed=1, side=side)
        valid = batch["attention_mask"].bool()
        expected, got = ref(**batch), ours(**batch)
        if head == "Model":
            assert max_diff(got.last_hidden_state[valid], expected.last_hidden_state[valid]) <= TOL
        elif head == "ForCausalLM":
            assert got.logits.shape == expected.logits.shape
            assert max_diff(got.logits[valid], expected.logits[valid]) <= TOL
        else:  # pooled at each row's last non-pad token, whichever side the padding is on
            assert got.logits.shape == (3, 3)
            assert max_diff(got.logits, expected.logits) <= TOL


@pytest.mark.parametrize("variant", ["moe-top1", "moe-top2-ntk", "moe-per-layer-topk-tied"])
@torch.no_grad()
def test_router_logits_and_loss_match_reference(checkpoints, variant):
    ref, path = checkpoints[variant, "ForCausalLM"]
    ours = HunYuanMoEV1ForCausalLM.from_pretrained(path)
    batch = padded_batch(seed=2, side="right")  # (left padding would let a pad position predict a real label)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    expected = ref(**batch, labels=labels, output_router_logits=True)
    got = ours(**batch, labels=labels, output_router_logits=True)
    assert abs(got.loss.item() - expected.loss.item()) <= TOL
    assert got.aux_loss is None and expected.aux_loss is None
    assert len(got.router_logits) == len(expected.router_logits) == 2
    valid = batch["attention_mask"].bool().reshape(-1)
    for mine, theirs in zip(got.router_logits, expected.router_logits):
        assert mine.dtype == torch.float32 and mine.shape == theirs.shape == (valid.numel(), 4)
        assert max_diff(mine[valid], theirs[valid]) <= TOL
    assert ours(**batch).router_logits is None  # only when asked (config.output_router_logits is False)


@torch.no_grad()
def test_sequence_classification_losses_match_reference(checkpoints):
    ref, path = checkpoints["moe-top2-ntk", "ForSequenceClassification"]
    ours = HunYuanMoEV1ForSequenceClassification.from_pretrained(path)
    batch = padded_batch(seed=3)
    for labels in (torch.tensor([0, 2, 1]), torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 0]])):
        ref.config.problem_type, ours.config.problem_type = None, None
        assert abs(ours(**batch, labels=labels).loss.item() - ref(**batch, labels=labels).loss.item()) <= TOL


@pytest.mark.parametrize("variant", ["dense-gqa-untied", "moe-top2-ntk", "moe-per-layer-topk-tied"])
def test_greedy_generation_matches_reference(checkpoints, variant):
    ref, path = checkpoints[variant, "ForCausalLM"]
    ours = AutoModelForCausalLM.from_pretrained(path)
    assert type(ours).__name__ == type(ref).__name__
    batch = padded_batch(seed=4, lengths=(7, 4))
    expected = ref.generate(**batch, max_new_tokens=12, do_sample=False, pad_token_id=0)
    got = ours.generate(**batch, max_new_tokens=12, pad_token_id=0)
    assert got.tolist() == expected.tolist()


def test_our_checkpoint_loads_in_transformers(checkpoints, tmp_path):
    """save_pretrained writes per-expert keys (the on-disk layout); transformers reads them back bit-exactly."""
    import transformers

    ref, path = checkpoints["moe-top2-ntk", "ForCausalLM"]
    ours = HunYuanMoEV1ForCausalLM.from_pretrained(path)
    ours.save_pretrained(tmp_path, max_shard_size="100KB")
    names = set().union(*(load_file(tmp_path / f).keys() for f in os.listdir(tmp_path) if f.endswith(".safetensors")))
    assert names == set(load_file(os.path.join(path, "model.safetensors")))  # the reference's own on-disk names
    assert "model.layers.1.mlp.experts.3.up_proj.weight" in names and not any("gate_up" in n for n in names)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["HunYuanMoEV1ForCausalLM"]
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    for name, tensor in ref.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor), name


def test_fused_in_memory_names_load(checkpoints, tmp_path):
    ref, path = checkpoints["moe-top1", "ForCausalLM"]
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(open(os.path.join(path, "config.json")).read())
    ours = HunYuanMoEV1ForCausalLM.from_pretrained(tmp_path)
    batch = padded_batch(seed=5, lengths=(5,))
    with torch.no_grad():
        assert max_diff(ours(**batch).logits, ref(**batch).logits) <= TOL


def test_base_model_round_trip_and_auto_classes(checkpoints, tmp_path):
    ref, path = checkpoints["moe-top2-ntk", "ForCausalLM"]
    base = AutoModel.from_pretrained(path)  # the full checkpoint into the bare decoder (lm_head skipped)
    assert isinstance(base, HunYuanMoEV1Model)
    base.save_pretrained(tmp_path)
    full = HunYuanMoEV1ForCausalLM.from_pretrained(tmp_path, strict=False)  # what the bare decoder wrote
    batch = padded_batch(seed=6, lengths=(6,))
    with torch.no_grad():
        hidden = full.model(**batch).last_hidden_state
        assert torch.equal(hidden, base(**batch).last_hidden_state)  # the round trip is lossless
        assert max_diff(hidden, ref.model(**batch).last_hidden_state) <= TOL


def test_bf16_load_keeps_router_in_fp32(checkpoints):
    _, path = checkpoints["moe-top2-ntk", "ForCausalLM"]
    model = HunYuanMoEV1ForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
    assert model.model.layers[0].mlp.gate.wg.weight.dtype == torch.float32
    assert model.model.layers[0].mlp.experts.gate_up_proj.dtype == torch.bfloat16
    out = model.generate(**padded_batch(seed=7, lengths=(5, 3)), max_new_tokens=4, pad_token_id=0)
    assert out.shape == (2, 9)


@torch.no_grad()
def test_unselected_experts_are_not_computed():
    """Grouped experts: an expert no token routes to costs nothing, so NaN weights there cannot leak out."""
    torch.manual_seed(0)
    model = HunYuanMoEV1ForCausalLM(HunYuanMoEV1Config(**text_config(True, topk=1, experts=8, layers=1))).eval()
    moe = model.model.layers[0].mlp
    batch = padded_batch(seed=8, lengths=(4,))
    x = model.model.layers[0].post_attention_layernorm(torch.randn(1, 4, 64))
    chosen = set(moe.gate(x.reshape(-1, 64))[2].flatten().tolist())
    idle = sorted(set(range(8)) - chosen)
    assert idle
    before, _ = moe(x)
    moe.experts.gate_up_proj[idle] = float("nan")
    moe.experts.down_proj[idle] = float("nan")
    after, _ = moe(x)
    assert torch.equal(before, after)
    assert model(**batch).logits.shape == (1, 4, 256)


def test_expert_width_mismatch_is_named(tmp_path):
    config = text_config(True)
    HunYuanMoEV1ForCausalLM(HunYuanMoEV1Config(**config)).save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    raw.update(intermediate_size=128, moe_intermediate_size=[96, 96])  # experts on disk are 96 wide
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="moe_intermediate_size=\\[96, 96\\] differs from intermediate_size=128"):
        HunYuanMoEV1ForCausalLM.from_pretrained(tmp_path)


def test_more_experts_on_disk_than_in_the_config_is_named(tmp_path):
    HunYuanMoEV1ForCausalLM(HunYuanMoEV1Config(**text_config(True, experts=4))).save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**raw, "num_experts": 2}))
    with pytest.raises(CheckpointError, match="expert 2 but the model has 2 experts"):
        HunYuanMoEV1ForCausalLM.from_pretrained(tmp_path)


def test_dense_untied_head_and_logits_to_keep(checkpoints):
    ref, path = checkpoints["dense-gqa-untied", "ForCausalLM"]
    ours = HunYuanDenseV1ForCausalLM.from_pretrained(path)
    assert ours.lm_head.weight.data_ptr() != ours.model.embed_tokens.weight.data_ptr()
    batch = padded_batch(seed=9, lengths=(6, 6))
    with torch.no_grad():
        assert ours(**batch, logits_to_keep=1).logits.shape == (2, 1, 256)
        assert max_diff(ours(**batch, logits_to_keep=1).logits, ref(**batch, logits_to_keep=1).logits) <= TOL


def test_moe_loading_holds_about_one_copy_of_the_weights(tmp_path):
    """Per-expert tensors are copied into stacked parameters allocated once: peak RSS ~1x the weights."""
    config = text_config(True, experts=32, topk=2, layers=4)
    config.update(hidden_size=256, intermediate_size=512, vocab_size=8000, head_dim=64)
    HunYuanMoEV1ForCausalLM(HunYuanMoEV1Config(**config)).save_pretrained(tmp_path, max_shard_size="20MB")
    size = sum(os.path.getsize(tmp_path / f) for f in os.listdir(tmp_path) if f.endswith(".safetensors"))
    script = textwrap.dedent(f"""
        import hunyuan

        def status(field):
            return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field + ":"))

        before = status("VmRSS")
        model = hunyuan.HunYuanMoEV1ForCausalLM.from_pretrained({str(tmp_path)!r})
        print((status("VmHWM") - before) * 1024 / {size})
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    ratio = float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                                 check=True).stdout.strip())
    assert size > 200e6
    assert 0.5 < ratio < 1.6, f"peak RSS grew by {ratio:.2f}x the checkpoint size while loading"


# -- configs -----------------------------------------------------------------------------------------------------------
A13B_CONFIG = {  # spec 1.7: tencent/Hunyuan-A13B-Instruct config.json
    "architectures": ["HunYuanMoEV1ForCausalLM"], "model_type": "hunyuan_v1_moe", "hidden_size": 4096,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
    "intermediate_size": 3072, "vocab_size": 128167, "num_experts": 64, "moe_topk": [8] * 32,
    "moe_intermediate_size": [3072] * 32, "num_shared_expert": [1] * 32, "use_mixed_mlp_moe": True,
    "use_qk_norm": True, "use_cla": False, "tie_word_embeddings": True, "rope_theta": 10000.0,
    "rope_scaling": {"type": "dynamic", "alpha": 1000.0, "factor": 1.0, "beta_fast": 32, "beta_slow": 1,
                     "mscale": 1.0, "mscale_all_dim": 1.0},
    "max_position_embeddings": 32768, "hidden_act": "silu", "rms_norm_eps": 1e-5, "bos_token_id": 1,
    "eos_token_id": 127960, "pad_token_id": 127961,
}


def test_a13b_config_loads_and_builds_on_meta_with_the_spec_parameter_count(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(A13B_CONFIG))
    config = HunYuanMoEV1Config.from_pretrained(tmp_path)
    assert config.rope_parameters["rope_type"] == "dynamic" and config.rope_parameters["alpha"] == 1000.0
    assert config.num_experts_per_tok == [8] * 32 and config.num_local_experts == 64
    assert config.moe_intermediate_size == [3072] * 32 and config.use_qk_norm is True  # kept, written back
    assert config.to_dict()["num_shared_expert"] == [1] * 32
    with torch.device("meta"):
        model = AutoModelForCausalLM.class_for("hunyuan_v1_moe", [])(config)
    assert round(model.num_parameters() / 1e9, 2) == 80.39
    assert model.model.rotary_emb.rope["alpha"] == 1000.0


@pytest.mark.parametrize("change, message", [
    ({"use_cla": True}, "use_cla"),
    ({"num_shared_expert": [2] * 32}, "num_shared_expert"),
    ({"use_mixed_mlp_moe": False}, "use_mixed_mlp_moe"),
    ({"moe_topk": [8] * 31}, "32 ints"),
    ({"moe_topk": 65}, "num_experts=64"),
    ({"num_experts": [64, 32] * 16}, "num_experts"),
])
def test_configs_describing_another_architecture_are_rejected(change, message):
    with pytest.raises(ValueError, match=message):
        HunYuanMoEV1Config(**{**A13B_CONFIG, **change})


def test_config_aliases_and_reference_agreement():
    import transformers

    config = HunYuanMoEV1Config(num_experts_per_tok=2, num_local_experts=8, hidden_size=64, num_attention_heads=4,
                                rope_scaling={"type": "dynamic", "alpha": 100.0}, rope_theta=500.0)
    assert (config.moe_topk, config.num_experts, config.head_dim, config.num_key_value_heads) == (2, 8, 16, 4)
    ref = transformers.HunYuanMoEV1Config(num_experts_per_tok=2, num_local_experts=8, hidden_size=64,
                                          num_attention_heads=4, head_dim=16,
                                          rope_scaling={"type": "dynamic", "alpha": 100.0, "factor": 1.0},
                                          rope_theta=500.0)
    assert (ref.moe_topk, ref.num_experts) == (config.moe_topk, config.num_experts)
    assert ref.rope_parameters["rope_theta"] == config.rope_parameters["rope_theta"] == 500.0
    assert hunyuan.HunYuanDenseV1Config().tie_word_embeddings is False
    assert HunYuanMoEV1Config(num_experts=[4, 4], num_hidden_layers=2).num_experts == 4

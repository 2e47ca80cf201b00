"""HunYuanVL against transformers 5.23 on tiny random checkpoints (fp32, max |diff| <= 1e-4).

Each variant covers one corner of the architecture: 3- and 4-axis xD-RoPE, GQA and MHA, tied and untied heads,
NTK-alpha and default rope. The reference saves its checkpoint (on-disk Tencent key names) and we load it.
"""

import pytest
import torch

from hunyuan import HunYuanVLForConditionalGeneration
from reference import VARIANTS, build_reference, left_pad_batch, make_prompt, model_inputs

TOL = 1e-4
TWO_GRIDS = [[1, 4, 4], [1, 6, 2]]


def load_ours(path, attn="eager"):
    return HunYuanVLForConditionalGeneration.from_pretrained(path, dtype=torch.float32, attn_implementation=attn)


def max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.fixture(params=sorted(VARIANTS))
def pair(request, reference_checkpoints):
    ref, path = reference_checkpoints[request.param]
    return ref, load_ours(path)


@pytest.mark.parametrize("grids", [[], [[1, 4, 6]], TWO_GRIDS], ids=["text", "one-image", "two-images"])
@torch.no_grad()
def test_logits_match_reference(pair, grids):
    ref, ours = pair
    inputs = model_inputs(*make_prompt(grids), grids)
    expected = ref(**inputs).logits
    got = ours(**inputs).logits
    assert got.shape == expected.shape
    assert max_diff(got, expected) <= TOL


@torch.no_grad()
def test_left_padded_batch_equals_each_row_alone(pair):
    """Spec 13.2: a row's result never depends on the other rows (image index counted per row)."""
    ref, ours = pair
    rows = [(*make_prompt([[1, 4, 4]], seed=1, text_len=5), [[1, 4, 4]]),
            (*make_prompt([[1, 2, 6]], seed=2, text_len=2), [[1, 2, 6]]),
            (*make_prompt([], seed=3, text_len=4), [])]
    batch = left_pad_batch(rows)
    logits = ours(**batch).logits
    width = batch["input_ids"].shape[1]
    for i, (ids, pixels, grids) in enumerate(rows):
        alone = ref(**model_inputs(ids, pixels, grids)).logits[0]
        assert max_diff(logits[i, width - len(ids):], alone) <= TOL, f"row {i}"


@torch.no_grad()
def test_image_features_match(pair):
    ref, ours = pair
    _, pixels = make_prompt(TWO_GRIDS)
    grid = torch.tensor(TWO_GRIDS)
    expected = ref.get_image_features(pixels, grid)
    got = ours.get_image_features(pixels, grid)
    assert len(got.pooler_output) == len(expected.pooler_output) == 2
    for g, e in zip(got.pooler_output, expected.pooler_output):
        assert g.shape == e.shape and max_diff(g, e) <= TOL
    assert max_diff(got.last_hidden_state, expected.last_hidden_state) <= TOL


@torch.no_grad()
def test_rope_index_matches_single_row(pair):
    ref, ours = pair
    inputs = model_inputs(*make_prompt(TWO_GRIDS), TWO_GRIDS)
    args = (inputs["input_ids"], inputs["mm_token_type_ids"], inputs["image_grid_thw"], inputs["attention_mask"])
    expected_pos, expected_delta = ref.model.get_rope_index(*args)
    got_pos, got_delta = ours.model.get_rope_index(*args)
    assert torch.equal(got_pos, expected_pos) and torch.equal(got_delta, expected_delta)


@torch.no_grad()
def test_loss_with_labels(pair):
    ref, ours = pair
    inputs = model_inputs(*make_prompt([[1, 4, 4]]), [[1, 4, 4]])
    labels = inputs["input_ids"].clone()
    labels[:, :6] = -100
    expected = ref(**inputs, labels=labels).loss
    got = ours(**inputs, labels=labels).loss
    assert abs(got.item() - expected.item()) <= TOL


@torch.no_grad()
def test_hidden_states_attentions_and_tuple_output(reference_checkpoints):
    ref, path = reference_checkpoints["4axes-gqa-tied-ntk"]
    ours = load_ours(path)
    inputs = model_inputs(*make_prompt([[1, 4, 4]]), [[1, 4, 4]])
    expected = ref(**inputs, output_hidden_states=True, output_attentions=True)
    got = ours(**inputs, output_hidden_states=True, output_attentions=True)
    assert len(got.hidden_states) == len(expected.hidden_states) == 3
    for g, e in zip(got.hidden_states, expected.hidden_states):
        assert max_diff(g, e) <= TOL
    for g, e in zip(got.attentions, expected.attentions):
        assert g.shape == e.shape and max_diff(g, e) <= TOL
    as_tuple = ours(**inputs, return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], ours(**inputs).logits)
    last = ours(**inputs, logits_to_keep=1).logits
    assert last.shape[1] == 1 and max_diff(last[:, 0], expected.logits[:, -1]) <= TOL
    image_states = ours.model(**inputs).image_hidden_states
    assert image_states.shape == (4 // 2 * (4 // 2 + 1) + 2, 64)


@torch.no_grad()
def test_cached_decoding_equals_full_forward(reference_checkpoints):
    """Prefill with images, then decode token by token through the cache with explicit positions."""
    _, path = reference_checkpoints["4axes-gqa-tied-ntk"]
    ours = load_ours(path, attn="sdpa")
    ids, pixels = make_prompt([[1, 4, 4]])
    inputs = model_inputs(ids, pixels, [[1, 4, 4]])
    out = ours(**inputs, use_cache=True)
    cache, delta = out.past_key_values, ours.model.rope_deltas
    extra = [17, 42, 99]
    step_logits = []
    for i, tok in enumerate(extra):
        pos = torch.full((4, 1, 1), len(ids) + i) + delta
        step = ours(input_ids=torch.tensor([[tok]]), past_key_values=cache, position_ids=pos, use_cache=True)
        step_logits.append(step.logits[0, -1])
    full_ids = ids + extra
    full = ours(**model_inputs(full_ids, pixels, [[1, 4, 4]])).logits[0]
    for i, got in enumerate(step_logits):
        assert max_diff(got, full[len(ids) + i]) <= TOL


@torch.no_grad()
def test_reverse_direction_transformers_loads_our_checkpoint(tmp_path):
    """Our save_pretrained writes a checkpoint transformers loads to the same logits."""
    from transformers import HunYuanVLForConditionalGeneration as Reference

    from hunyuan import HunYuanVLConfig

    torch.manual_seed(3)
    ours = HunYuanVLForConditionalGeneration(HunYuanVLConfig(**VARIANTS["4axes-mha-untied-default"]),
                                             attn_implementation="eager").eval()
    ours.save_pretrained(tmp_path)
    ref = Reference.from_pretrained(tmp_path, dtype=torch.float32, attn_implementation="eager").eval()
    inputs = model_inputs(*make_prompt(TWO_GRIDS), TWO_GRIDS)
    assert max_diff(ours(**inputs).logits, ref(**inputs).logits) <= TOL


@torch.no_grad()
def test_sdpa_model_matches_eager_reference(reference_checkpoints):
    ref, path = reference_checkpoints["3axes-gqa-tied-ntk"]
    ours = load_ours(path, attn="sdpa")
    batch = left_pad_batch([(*make_prompt([[1, 4, 4]], seed=5), [[1, 4, 4]]),
                            (*make_prompt([], seed=6, text_len=9), [])])
    got = ours(**batch).logits
    for i, row in enumerate(batch["input_ids"]):
        keep = batch["attention_mask"][i].bool()
        grids = [[1, 4, 4]] if i == 0 else []
        alone = model_inputs(row[keep].tolist(), batch.get("pixel_values") if i == 0 else None, grids)
        assert max_diff(got[i, keep], ref(**alone).logits[0]) <= TOL


def test_bf16_forward_runs_and_tracks_fp32(reference_checkpoints):
    _, path = reference_checkpoints["4axes-gqa-tied-ntk"]
    fp32 = load_ours(path, attn="sdpa")
    bf16 = HunYuanVLForConditionalGeneration.from_pretrained(path, dtype="bfloat16")
    assert bf16.dtype == torch.bfloat16
    inputs = model_inputs(*make_prompt([[1, 4, 4]]), [[1, 4, 4]])
    with torch.no_grad():
        a, b = fp32(**inputs).logits, bf16(**inputs).logits
    assert b.dtype == torch.bfloat16 and torch.isfinite(b).all()
    assert max_diff(a, b.float()) < 0.1 * a.abs().max().item()


@torch.no_grad()
def test_mm_encoder_outputs_and_inputs_embeds_paths(reference_checkpoints):
    ref, path = reference_checkpoints["4axes-gqa-tied-ntk"]
    ours = load_ours(path)
    inputs = model_inputs(*make_prompt([[1, 4, 4]]), [[1, 4, 4]])
    expected = ref(**inputs).logits
    features = ours.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
    pre = {k: v for k, v in inputs.items() if k != "pixel_values"}
    assert max_diff(ours(**pre, mm_encoder_outputs={"image": features}).logits, expected) <= TOL
    with pytest.raises(ValueError, match="both pixel_values and mm_encoder_outputs"):
        ours(**inputs, mm_encoder_outputs={"image": features})
    # inputs_embeds only: image positions are found by comparing rows with embed(image_token_id)
    embeds = ours.get_input_embeddings()(inputs["input_ids"])
    positions, _ = ours.model.get_rope_index(inputs["input_ids"], inputs["mm_token_type_ids"],
                                             inputs["image_grid_thw"])
    got = ours(inputs_embeds=embeds, pixel_values=inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"],
               position_ids=positions).logits
    assert max_diff(got, expected) <= TOL


def test_new_model_from_config_variants_build():
    from hunyuan import HunYuanVLConfig

    for config in VARIANTS.values():
        model = HunYuanVLForConditionalGeneration(HunYuanVLConfig(**config))
        tied = model.lm_head.weight is model.get_input_embeddings().weight
        assert tied == config["tie_word_embeddings"]
    ref = build_reference(VARIANTS["4axes-gqa-tied-ntk"])
    ours = HunYuanVLForConditionalGeneration(HunYuanVLConfig(**VARIANTS["4axes-gqa-tied-ntk"]))
    assert ours.num_parameters() == sum(p.numel() for p in ref.parameters())

"""The generation engine against transformers 5.23's ``generate`` on tiny random models, and its own contract:
batching, cached decoding, sampling, eos handling, streaming and errors."""

import pytest
import torch
from reference import left_pad_batch, make_prompt, model_inputs

from hunyuan import GenerationConfig, HunYuanVLForConditionalGeneration, stream_generate
from hunyuan.engine.generate import generate
from hunyuan.engine.sampling import sample

PROMPTS = {"text-only": [], "one-image": [[1, 4, 4]], "two-images": [[1, 4, 4], [1, 2, 6]]}


@pytest.fixture(scope="module")
def pair(reference_checkpoints):
    """{variant: (reference, ours)} loaded from the same checkpoint."""
    return {name: (ref, HunYuanVLForConditionalGeneration.from_pretrained(path))
            for name, (ref, path) in reference_checkpoints.items()}


def _new(out: torch.Tensor, prompt_len: int) -> list[int]:
    return out[0, prompt_len:].tolist()


@pytest.mark.parametrize("variant", ["4axes-gqa-tied-ntk", "3axes-gqa-tied-ntk", "4axes-mha-untied-default"])
@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_greedy_matches_reference(pair, variant, prompt):
    ref, ours = pair[variant]
    grids = PROMPTS[prompt]
    ids, pixels = make_prompt(grids, seed=len(grids))
    inputs = model_inputs(ids, pixels, grids)
    expected = ref.generate(**inputs, max_new_tokens=24, do_sample=False)
    got = ours.generate(**inputs, max_new_tokens=24)
    assert got.tolist() == expected.tolist()


def test_repetition_penalty_matches_reference(pair):
    ref, ours = pair["4axes-gqa-tied-ntk"]
    grids = [[1, 4, 4]]
    ids, pixels = make_prompt(grids, seed=3)
    inputs = model_inputs(ids, pixels, grids)
    plain = ours.generate(**inputs, max_new_tokens=24)
    expected = ref.generate(**inputs, max_new_tokens=24, do_sample=False, repetition_penalty=1.5)
    got = ours.generate(**inputs, max_new_tokens=24, repetition_penalty=1.5)
    assert got.tolist() == expected.tolist()
    assert got.tolist() != plain.tolist()  # the penalty changed something, so the comparison is not vacuous


def test_eos_list_and_min_new_tokens_match_reference(pair):
    ref, ours = pair["4axes-gqa-tied-ntk"]
    ids, pixels = make_prompt([[1, 4, 4]], seed=5)
    inputs = model_inputs(ids, pixels, [[1, 4, 4]])
    free = _new(ours.generate(**inputs, max_new_tokens=16, eos_token_id=[]), len(ids))
    eos = [free[4], 255 - free[4] % 7]  # a token the model emits at step 4 (or earlier), plus another id
    for kwargs in ({}, {"min_new_tokens": 8}):
        expected = ref.generate(**inputs, max_new_tokens=16, do_sample=False, eos_token_id=eos, pad_token_id=0,
                                **kwargs)
        got = ours.generate(**inputs, max_new_tokens=16, eos_token_id=eos, pad_token_id=0, **kwargs)
        assert got.tolist() == expected.tolist()
        new = _new(got, len(ids))
        assert all(t not in eos for t in new[:-1]) and (new[-1] in eos or len(new) == 16)
        if kwargs:
            assert len(new) >= 9
        else:
            assert len(new) <= 5 and new[-1] in eos


def test_batch_of_three_equals_each_alone(pair):
    """Spec 13.2: a row's result never depends on the other rows (left padding, per-row positions and image
    index). One row is given an eos it reaches early, so the batch also shrinks while decoding."""
    _, ours = pair["4axes-gqa-tied-ntk"]
    rows = [(*make_prompt(g, seed=i, text_len=n), g) for i, (g, n) in
            enumerate([([[1, 4, 4]], 3), ([[1, 2, 6], [1, 4, 2]], 8), ([], 5)])]
    alone = [_new(ours.generate(**model_inputs(ids, px, g), max_new_tokens=12, eos_token_id=[]), len(ids))
             for ids, px, g in rows]
    eos = alone[1][3]
    alone = [_new(ours.generate(**model_inputs(ids, px, g), max_new_tokens=12, eos_token_id=eos), len(ids))
             for ids, px, g in rows]
    batch = left_pad_batch(rows)
    out = ours.generate(**batch, max_new_tokens=12, eos_token_id=eos, pad_token_id=0)
    width = batch["input_ids"].shape[1]
    for row, expected in enumerate(alone):
        got = out[row, width:].tolist()
        assert got[:len(expected)] == expected
        assert all(t == 0 for t in got[len(expected):])  # finished rows are padded
    assert len(alone[1]) <= 4 and out.shape[1] == width + max(map(len, alone))


def test_cached_decoding_equals_argmax_of_full_forwards(pair):
    _, ours = pair["3axes-gqa-tied-ntk"]
    rows = [(*make_prompt(g, seed=i, text_len=n), g) for i, (g, n) in enumerate([([[1, 4, 4]], 2), ([], 9)])]
    batch = left_pad_batch(rows)
    out = ours.generate(**batch, max_new_tokens=10, eos_token_id=[])
    width = batch["input_ids"].shape[1]
    for row, (ids, px, g) in enumerate(rows):
        full = out[row:row + 1, width - len(ids):]
        inputs = model_inputs(full[0].tolist(), px, g)
        with torch.no_grad():
            logits = ours(**inputs).logits
        assert logits[0, len(ids) - 1:-1].argmax(-1).tolist() == full[0, len(ids):].tolist()


def test_sampling_is_reproducible_and_filtered(pair):
    _, ours = pair["4axes-gqa-tied-ntk"]
    ids, pixels = make_prompt([[1, 4, 4]], seed=7)
    inputs = model_inputs(ids, pixels, [[1, 4, 4]])
    kw = dict(max_new_tokens=12, do_sample=True, temperature=1.5, top_k=0, eos_token_id=[])
    torch.manual_seed(123)
    a = ours.generate(**inputs, **kw)
    torch.manual_seed(123)
    b = ours.generate(**inputs, **kw)
    c = ours.generate(**inputs, **kw, generator=torch.Generator().manual_seed(123))
    d = ours.generate(**inputs, **kw, generator=torch.Generator().manual_seed(123))
    assert a.tolist() == b.tolist() and c.tolist() == d.tolist()
    greedy = ours.generate(**inputs, max_new_tokens=12, eos_token_id=[])
    assert ours.generate(**inputs, **{**kw, "top_k": 1}).tolist() == greedy.tolist()
    assert ours.generate(**inputs, **{**kw, "top_p": 1e-6}).tolist() == greedy.tolist()


def test_top_k_and_top_p_keep_only_the_allowed_tokens():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log().expand(4000, -1)
    g = torch.Generator().manual_seed(0)
    counts = lambda t: torch.bincount(t, minlength=4).tolist()  # noqa: E731
    free = counts(sample(logits, 1.0, None, 1.0, g))
    assert all(c > 0 for c in free) and abs(free[0] / 4000 - 0.5) < 0.03
    top_k = counts(sample(logits, 1.0, 2, 1.0, g))
    assert top_k[2:] == [0, 0] and abs(top_k[0] / 4000 - 0.625) < 0.03
    top_p = counts(sample(logits, 1.0, None, 0.7, g))  # nucleus {0, 1}: 0.5 + 0.3 >= 0.7
    assert top_p[2:] == [0, 0] and abs(top_p[0] / 4000 - 0.625) < 0.03
    top_p = counts(sample(logits, 1.0, None, 0.85, g))  # {0, 1, 2}
    assert top_p[3] == 0 and top_p[2] > 0
    cold = counts(sample(logits, 0.05, None, 1.0, g))
    assert cold[0] > 3990


def test_streamer_and_stopping_criteria(pair):
    _, ours = pair["4axes-gqa-tied-ntk"]
    ids, pixels = make_prompt([[1, 4, 4]], seed=2)
    inputs = model_inputs(ids, pixels, [[1, 4, 4]])

    class Recorder:
        def __init__(self):
            self.calls = []

        def put(self, value):
            self.calls.append(value.tolist())

        def end(self):
            self.calls.append("end")

    streamer = Recorder()
    out = ours.generate(**inputs, max_new_tokens=6, eos_token_id=[], streamer=streamer)
    assert streamer.calls[0] == [ids] and streamer.calls[-1] == "end"
    assert [c[0] for c in streamer.calls[1:-1]] == _new(out, len(ids))

    seen = []

    def stop_after_three(input_ids, scores):
        seen.append(input_ids.shape[1])
        return input_ids.shape[1] >= len(ids) + 3

    out = ours.generate(**inputs, max_new_tokens=10, eos_token_id=[], stopping_criteria=[stop_after_three])
    assert out.shape[1] == len(ids) + 3 and seen == [len(ids) + 1, len(ids) + 2, len(ids) + 3]


def test_stream_generate_text_equals_decode(ocr_checkpoint):
    from hunyuan import AutoProcessor

    processor = AutoProcessor.from_pretrained(ocr_checkpoint)
    model = HunYuanVLForConditionalGeneration.from_pretrained(ocr_checkpoint)
    from PIL import Image
    batch = processor.apply_chat_template(
        [[{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (300, 200), "gray")},
                                       {"type": "text", "text": "hello world"}]}],
         [{"role": "user", "content": "The quick brown fox"}]],
        tokenize=True, add_generation_prompt=True, return_tensors="pt", padding=True, padding_side="left")
    responses = list(stream_generate(model, processor, batch, max_new_tokens=20, do_sample=True,
                                     generator=torch.Generator().manual_seed(0)))
    for row in (0, 1):
        mine = [r for r in responses if r.row == row]
        tokens = [r.token for r in mine]
        assert "".join(r.text for r in mine) == processor.decode(tokens, skip_special_tokens=True)
        assert mine[-1].finish_reason in ("stop", "length") and all(r.finish_reason is None for r in mine[:-1])
        assert [r.generation_tokens for r in mine] == list(range(1, len(mine) + 1))
    assert any(r.text for r in responses)
    stats = responses[-1].stats
    assert stats.batch_size == 2 and stats.vision_s > 0 and stats.time_to_first_token_s >= stats.prefill_s > 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_generation_runs(reference_checkpoints, dtype):
    path = reference_checkpoints["4axes-gqa-tied-ntk"][1]
    model = HunYuanVLForConditionalGeneration.from_pretrained(path, dtype=dtype)
    rows = [(*make_prompt(g, seed=i), g) for i, g in enumerate([[[1, 4, 4]], []])]
    out = model.generate(**left_pad_batch(rows), max_new_tokens=5, eos_token_id=[])
    assert out.shape == (2, left_pad_batch(rows)["input_ids"].shape[1] + 5)


def test_generation_config_file_sets_defaults(reference_checkpoints, tmp_path):
    ref, path = reference_checkpoints["4axes-gqa-tied-ntk"]
    model = HunYuanVLForConditionalGeneration.from_pretrained(path)
    assert model.generation_config.eos_token_ids == [2] and model.generation_config.pad_token_id == 0
    model.generation_config = GenerationConfig(max_new_tokens=3, eos_token_id=[], pad_token_id=0)
    model.save_pretrained(tmp_path)
    again = HunYuanVLForConditionalGeneration.from_pretrained(tmp_path)
    assert again.generation_config.max_new_tokens == 3
    ids, _ = make_prompt([])
    assert again.generate(torch.tensor([ids])).shape == (1, len(ids) + 3)


def test_generate_errors(pair):
    _, ours = pair["4axes-gqa-tied-ntk"]
    ids = torch.tensor([[1, 20, 30], [1, 40, 0]])
    with pytest.raises(ValueError, match="left padding"):
        ours.generate(ids, attention_mask=torch.tensor([[1, 1, 1], [1, 1, 0]]), max_new_tokens=2)
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['max_tokens'\]"):
        ours.generate(ids[:1], max_tokens=2)
    with pytest.raises(ValueError, match="num_beams=2 is not supported"):
        ours.generate(ids[:1], num_beams=2)
    with pytest.raises(ValueError, match="temperature=0 is invalid"):
        ours.generate(ids[:1], do_sample=True, temperature=0)
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 256\)"):
        ours.generate(torch.tensor([[1, 300]]))
    with pytest.raises(ValueError, match="input_ids as a"):
        ours.generate(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="mm_token_type_ids"):
        ids_img, px = make_prompt([[1, 4, 4]])
        ours.generate(torch.tensor([ids_img]), pixel_values=px, image_grid_thw=torch.tensor([[1, 4, 4]]))
    with pytest.raises(ValueError, match="pixel_values without image_grid_thw"):
        ours.generate(ids[:1], pixel_values=torch.zeros(16, 768))
    with pytest.raises(TypeError, match=r"unexpected model inputs \['position_ids'\]"):
        generate(ours, {"input_ids": ids[:1], "position_ids": ids[:1]}, ours.generation_config)
    assert ours.generate(ids[:1], max_new_tokens=0).tolist() == ids[:1].tolist()


def test_compiled_decode_step_equals_eager(pair):
    _, ours = pair["4axes-gqa-tied-ntk"]
    rows = [(*make_prompt(g, seed=i), g) for i, g in enumerate([[[1, 4, 4]], []])]
    batch = left_pad_batch(rows)
    eager = ours.generate(**batch, max_new_tokens=8, eos_token_id=[])
    assert ours.generate(**batch, max_new_tokens=8, eos_token_id=[], compile=True).tolist() == eager.tolist()

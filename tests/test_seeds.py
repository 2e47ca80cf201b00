"""The two usage examples of the HunYuanVL API document (../shared/seeds/hunyuan_vl_api.md) run verbatim, with
``transformers`` replaced by ``hunyuan``, the hub id by a tiny local checkpoint, and (snippet 1) the image URL by the
same file served over HTTP from this machine."""

import functools
import http.server
import threading

import pytest
from PIL import Image, ImageDraw

import hunyuan


@pytest.fixture()
def served_candy(tmp_path):
    image = Image.new("RGB", (640, 480), "white")
    ImageDraw.Draw(image).ellipse((200, 140, 440, 340), fill="red")
    image.save(tmp_path / "candy.JPG")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/candy.JPG", str(tmp_path / "candy.JPG")
    server.shutdown()


def test_seed_usage_snippet(ocr_checkpoint, served_candy, capsys):
    url, _ = served_candy
    # --- snippet 1 (## Usage), verbatim apart from the import, the model id and the image URL -------------------
    import torch
    from hunyuan import AutoModelForImageTextToText, AutoProcessor

    model_name_or_path = ocr_checkpoint
    processor = AutoProcessor.from_pretrained(model_name_or_path, backend="pil")
    model = AutoModelForImageTextToText.from_pretrained(
        model_name_or_path,
        device_map="auto",
    )

    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "url": url},
                {"type": "text", "text": "What animal is on the candy?"}
            ]
        },
    ]
    inputs = processor.apply_chat_template(
        messages,
        tokenize=True,
        add_generation_prompt=True,
        return_tensors="pt",
    ).to(model.device)

    generated_ids = model.generate(**inputs, max_new_tokens=1024)

    generated_ids_trimmed = generated_ids[0][len(inputs["input_ids"][0]) :]
    output = processor.decode(generated_ids_trimmed, skip_special_tokens=True)
    print(output)
    # --- end of snippet ----------------------------------------------------------------------------------------
    assert isinstance(model, hunyuan.HunYuanVLForConditionalGeneration) and isinstance(generated_ids, torch.Tensor)
    assert inputs["pixel_values"].shape[0] > 0 and int(inputs["mm_token_type_ids"].sum()) > 0
    new = generated_ids_trimmed.tolist()
    assert 1 <= len(new) <= 1024
    eos = {120007, 120020}
    assert all(t not in eos for t in new[:-1]) and (new[-1] in eos or len(new) == 1024)
    assert capsys.readouterr().out == output + "\n"
    # the same ids as the engine's own greedy path over the same inputs
    again = model.generate(**inputs, max_new_tokens=len(new), do_sample=False)
    assert again[0, inputs["input_ids"].shape[1]:].tolist() == new


def test_seed_model_docstring_snippet(ocr_checkpoint, served_candy, capsys):
    _, path = served_candy
    # --- snippet 2 (HunYuanVLForConditionalGeneration example), verbatim apart from import, id and path ---------
    from hunyuan import AutoProcessor, HunYuanVLForConditionalGeneration
    import torch

    model_id = ocr_checkpoint
    processor = AutoProcessor.from_pretrained(model_id, backend="pil")
    model = HunYuanVLForConditionalGeneration.from_pretrained(
        model_id, attn_implementation="eager", torch_dtype=torch.bfloat16, device_map="auto"
    )

    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": path},
                {"type": "text", "text": "Extract the text from the image."},
            ],
        }
    ]
    inputs = processor.apply_chat_template(
        messages,
        tokenize=True,
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
        processor_kwargs={"padding": True},
    )

    with torch.no_grad():
        generated_ids = model.generate(**inputs, max_new_tokens=128)
    generated_trimmed = generated_ids[0][inputs["input_ids"].shape[-1]:]
    print(processor.decode(generated_trimmed, skip_special_tokens=True))
    # --- end of snippet ----------------------------------------------------------------------------------------
    assert model.dtype == torch.bfloat16 and model.config._attn_implementation == "eager"
    assert 1 <= generated_trimmed.numel() <= 128
    assert capsys.readouterr().out.endswith("\n")


def test_auto_classes_resolve_from_config(ocr_checkpoint, tmp_path):
    import torch

    assert hunyuan.AutoModelForCausalLM.class_for("hunyuan_vl", []) is hunyuan.HunYuanVLForConditionalGeneration
    assert hunyuan.AutoModelForImageTextToText.class_for("", ["HunYuanVLForConditionalGeneration"]) \
        is hunyuan.HunYuanVLForConditionalGeneration
    assert isinstance(hunyuan.AutoModel.from_pretrained(ocr_checkpoint), hunyuan.HunYuanVLModel)
    (tmp_path / "config.json").write_text('{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}')
    with pytest.raises(ValueError, match="does not support model_type='llama'.*hunyuan_vl"):
        hunyuan.AutoModelForImageTextToText.from_pretrained(str(tmp_path))
    with pytest.raises(TypeError, match="from_pretrained"):
        hunyuan.AutoProcessor()
    assert hunyuan.AutoModelForCausalLM.from_pretrained(ocr_checkpoint, dtype=torch.bfloat16).dtype == torch.bfloat16

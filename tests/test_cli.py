"""The command line: `hunyuan demo` runs the processor and model end to end; user errors exit 2 without a traceback."""

import json

from PIL import Image

from hunyuan.cli import main


def test_demo_processes_an_image_file(tmp_path, capsys):
    Image.new("RGB", (300, 200), "white").save(tmp_path / "page.png")
    assert main(["demo", "--image", str(tmp_path / "page.png")]) == 0
    report = json.loads(capsys.readouterr().out)
    # 200x300 px (h x w) rounds to 192x288 px: 12x18 patches of 16 px; 6 merged rows of 9 tokens + newline, + 2
    assert report["image_patches"] == 12 * 18
    assert report["image_tokens"] == 6 * (9 + 1) + 2
    assert report["sequence_length"] == report["image_tokens"] + 8
    assert len(report["generated"]) == 16 and report["decode_tokens_per_second"] > 0


def test_demo_missing_image_exits_2(tmp_path, capsys):
    assert main(["demo", "--image", str(tmp_path / "missing.png")]) == 2
    err = capsys.readouterr().err
    assert "missing.png" in err and "does not exist" in err and "Traceback" not in err


def test_generate_streams_the_greedy_answer(ocr_checkpoint, tmp_path, capsys):
    import torch

    from hunyuan import AutoProcessor, HunYuanVLForConditionalGeneration

    Image.new("RGB", (320, 240), "white").save(tmp_path / "page.png")
    args = ["generate", "--model", ocr_checkpoint, "--image", str(tmp_path / "page.png"), "--prompt", "hello world",
            "--max-new-tokens", "12", "--dtype", "fp32", "--device", "cpu"]
    assert main(args) == 0
    streamed = capsys.readouterr().out
    assert main(args + ["--no-stream"]) == 0
    assert capsys.readouterr().out == streamed
    processor = AutoProcessor.from_pretrained(ocr_checkpoint)
    model = HunYuanVLForConditionalGeneration.from_pretrained(ocr_checkpoint)
    messages = [{"role": "system", "content": ""},
                {"role": "user", "content": [{"type": "image", "image": str(tmp_path / "page.png")},
                                             {"type": "text", "text": "hello world"}]}]
    inputs = processor.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=12)
    expected = processor.decode(ids[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert streamed == expected + "\n"


def test_generate_user_errors_exit_2(ocr_checkpoint, tmp_path, capsys):
    import pytest

    cases = [
        (["--model", str(tmp_path / "no-such-model"), "--prompt", "hi"], "no-such-model"),
        (["--model", ocr_checkpoint, "--image", str(tmp_path / "missing.png"), "--prompt", "hi"], "missing.png"),
        (["--model", ocr_checkpoint, "--prompt", "hi", "--max-new-tokens", "0"], "--max-new-tokens"),
    ]
    for extra, needle in cases:
        assert main(["generate", *extra]) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exit_info:  # argparse rejects the choice with its usage message
        main(["generate", "--model", ocr_checkpoint, "--prompt", "hi", "--dtype", "int3"])
    assert exit_info.value.code == 2 and "invalid choice: 'int3'" in capsys.readouterr().err

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


def test_demo_missing_image_exits_2(tmp_path, capsys):
    assert main(["demo", "--image", str(tmp_path / "missing.png")]) == 2
    err = capsys.readouterr().err
    assert "missing.png" in err and "does not exist" in err and "Traceback" not in err

"""Image processors against transformers 5.23's HunYuanVLImageProcessorPil: bit-exact pixels on a generated corpus,
the torch backend's measured difference, image sources, config files and every error path."""

import base64
import http.server
import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.models.hunyuan_vl import image_processing_pil_hunyuan_vl as ref_module

from hunyuan import HunYuanVLImageProcessor, HunYuanVLImageProcessorPil, ImageSourceError
from hunyuan.processing.image import smart_resize
from image_corpus import call_kwargs

RefPil = ref_module.HunYuanVLImageProcessorPil


def test_corpus_is_big_and_varied(image_corpus):
    assert len(image_corpus) >= 30
    sizes = [im.size for _, im in image_corpus if isinstance(im, Image.Image)]
    assert (1, 1) in sizes and (300, 5000) in sizes  # PIL sizes are (width, height): 1×1 and 5000×300
    modes = {im.mode for _, im in image_corpus if isinstance(im, Image.Image)}
    assert {"RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "1"} <= modes


def test_pil_backend_bit_exact_on_corpus(image_corpus):
    ours, ref = HunYuanVLImageProcessorPil(), RefPil()
    for name, image in image_corpus:
        expected = ref(image, **call_kwargs(name))
        got = ours(image, **call_kwargs(name))
        assert got["image_grid_thw"].tolist() == expected["image_grid_thw"].tolist(), name
        assert got["pixel_values"].dtype == np.float32, name
        assert np.array_equal(got["pixel_values"], expected["pixel_values"]), name


def test_batch_equals_reference_batch_and_per_image_concat(image_corpus):
    items = [(n, im) for n, im in image_corpus if not call_kwargs(n)][::3]
    images = [im for _, im in items]
    ours = HunYuanVLImageProcessorPil()(images, return_tensors="pt")
    ref = RefPil()(images, return_tensors="pt")
    assert torch.equal(ours["pixel_values"], ref["pixel_values"])
    assert torch.equal(ours["image_grid_thw"], ref["image_grid_thw"])
    assert ours["image_grid_thw"].dtype == torch.int64
    singles = [HunYuanVLImageProcessorPil()(im)["pixel_values"] for im in images]
    assert np.array_equal(np.concatenate(singles), ours["pixel_values"].numpy())
    nested = HunYuanVLImageProcessorPil()([images[:2], images[2:]], return_tensors="pt")  # per-prompt lists
    assert torch.equal(nested["pixel_values"], ours["pixel_values"])


def test_resample_in_config_is_ignored(image_corpus):
    image = image_corpus[8][1]
    lanczos = HunYuanVLImageProcessorPil(resample=1)(image)["pixel_values"]
    assert np.array_equal(lanczos, HunYuanVLImageProcessorPil()(image)["pixel_values"])


def test_smart_resize_matches_reference_and_spec_examples():
    rng = np.random.default_rng(0)
    sizes = [(int(h), int(w)) for h, w in rng.integers(1, 6000, size=(3000, 2)) if max(h, w) / min(h, w) <= 200]
    sizes += [(h, w) for h in (1, 15, 16, 17, 31, 32, 33, 48, 2047, 2048, 2049) for w in (1, 16, 48, 2048, 4096)
              if max(h, w) / min(h, w) <= 200]
    for lo, hi in [(512 * 512, 2048 * 2048), (32 * 32, 32 * 32), (64 * 64, 1024 * 1024), (4096, 16 * 1024 * 1024)]:
        for h, w in sizes:
            assert smart_resize(h, w, 32, lo, hi) == ref_module.smart_resize(h, w, 32, lo, hi), (h, w, lo, hi)
    # spec §2 examples (default min/max)
    examples = {(100, 100): (512, 512), (300, 100): (896, 320), (500, 30): (2112, 128), (1080, 1920): (1088, 1920),
                (4000, 3000): (2336, 1760), (2048, 2048): (2048, 2048), (33, 4000): (64, 5664)}
    for (h, w), target in examples.items():
        assert smart_resize(h, w) == target


def test_get_number_of_image_patches_matches_reference():
    ours, ref = HunYuanVLImageProcessorPil(), RefPil()
    for h, w in [(100, 100), (1080, 1920), (33, 4000), (5000, 300)]:
        assert ours.get_number_of_image_patches(h, w) == ref.get_number_of_image_patches(h, w)
        kwargs = {"min_pixels": 64 * 64, "max_pixels": 256 * 256}
        assert ours.get_number_of_image_patches(h, w, kwargs) == ref.get_number_of_image_patches(h, w, kwargs)


def test_torch_backend_difference_is_small_and_grids_identical(image_corpus):
    """The torch backend resizes like torchvision (bicubic a=-0.75, antialiased), PIL uses a=-0.5: the measured
    gap (docs/processing.md) must stay at that level."""
    pil, tch = HunYuanVLImageProcessorPil(), HunYuanVLImageProcessor()
    worst_mean, worst_max = 0.0, 0.0
    for name, image in image_corpus:
        a = pil(image, **call_kwargs(name))
        b = tch(image, **call_kwargs(name))
        assert isinstance(b["pixel_values"], torch.Tensor) and b["pixel_values"].dtype == torch.float32
        assert b["image_grid_thw"].tolist() == a["image_grid_thw"].tolist(), name
        diff = np.abs(b["pixel_values"].numpy() - a["pixel_values"])
        worst_mean, worst_max = max(worst_mean, float(diff.mean())), max(worst_max, float(diff.max()))
    # normalised units: 1 grey level ≈ 1/(255·0.27) ≈ 0.0146
    assert worst_mean < 0.05 and worst_max < 0.7, (worst_mean, worst_max)
    # no resize needed → only float rounding of the fused normalisation differs
    exact = Image.fromarray(np.random.default_rng(1).integers(0, 256, (512, 640, 3), dtype=np.uint8))
    np.testing.assert_allclose(tch(exact)["pixel_values"].numpy(), pil(exact)["pixel_values"], atol=2e-6)


def test_grayscale_2d_array_reads_as_one_channel():
    """transformers rejects a 2-D array; we read it as grayscale, equal to the same image as PIL mode L."""
    gray = np.random.default_rng(2).integers(0, 256, (90, 140), dtype=np.uint8)
    got = HunYuanVLImageProcessorPil()(gray)["pixel_values"]
    assert np.array_equal(got, RefPil()(Image.fromarray(gray, mode="L"))["pixel_values"])


def test_alpha_composited_on_white_for_files_too(tmp_path):
    """Decision (docs/decisions.md): a transparent PNG loaded from a path is composited onto white like an
    in-memory image (transformers' load_image drops the alpha, turning transparent pixels black)."""
    rgba = np.zeros((64, 96, 4), np.uint8)
    rgba[20:40, 10:80, 3] = 255  # black opaque stroke on a fully transparent background
    image = Image.fromarray(rgba, mode="RGBA")
    image.save(tmp_path / "t.png")
    proc = HunYuanVLImageProcessorPil()
    from_file = proc(str(tmp_path / "t.png"))["pixel_values"]
    assert np.array_equal(from_file, RefPil()(image)["pixel_values"])
    white = (1 - np.array(proc.image_mean)) / np.array(proc.image_std)
    np.testing.assert_allclose(from_file[0].reshape(3, -1)[:, 0], white, rtol=1e-6)  # top-left patch is white


def test_image_sources_agree(tmp_path, image_corpus):
    image = image_corpus[7][1]  # 300x100 RGB
    path = tmp_path / "img.png"
    image.save(path)
    raw = path.read_bytes()
    b64 = base64.b64encode(raw).decode()
    proc = HunYuanVLImageProcessorPil()
    expected = proc(image)["pixel_values"]
    for source in (str(path), path, f"file://{path}", raw, f"data:image/png;base64,{b64}", b64):
        assert np.array_equal(proc(source)["pixel_values"], expected), type(source)


class _OneFileServer(http.server.BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args):
        pass


def test_http_source_with_size_cap(tmp_path, image_corpus):
    from hunyuan.processing.sources import load_image
    image = image_corpus[7][1]
    image.save(tmp_path / "img.png")
    _OneFileServer.payload = (tmp_path / "img.png").read_bytes()
    server = http.server.HTTPServer(("127.0.0.1", 0), _OneFileServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/img.png"
        proc = HunYuanVLImageProcessorPil()
        assert np.array_equal(proc(url)["pixel_values"], proc(image)["pixel_values"])
        with pytest.raises(ImageSourceError, match="larger than the 100-byte cap"):
            load_image(url, max_bytes=100)
    finally:
        server.shutdown()
    with pytest.raises(ImageSourceError, match=r"could not fetch image .*local path"):
        load_image(f"http://127.0.0.1:{server.server_port}/gone.png", timeout=2)


def test_unreadable_sources_name_the_source(tmp_path):
    proc = HunYuanVLImageProcessorPil()
    good = tmp_path / "good.png"
    Image.new("RGB", (300, 200), "red").save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    cases = {
        str(tmp_path / "missing.png"): "missing.png.*does not exist",
        str(tmp_path): "is a directory",
        str(truncated): "truncated.png",
        str(text): "notes.txt.*not an image",
        "data:image/png;base64,@@@not-base64@@@": "valid base64",
        "data:image/png,plain": "base64",
        b"\x00\x01garbage": "not an image",
    }
    for source, pattern in cases.items():
        with pytest.raises(ImageSourceError, match=pattern):
            proc(source)
    with pytest.raises(ImageSourceError, match=r"image 1: .*missing\.png"):
        proc([str(good), str(tmp_path / "missing.png")])


def test_bad_image_inputs_raise_clear_errors():
    proc = HunYuanVLImageProcessorPil()
    with pytest.raises(ValueError, match=r"aspect ratio must be smaller than 200, got 250.0 for a 10x2500"):
        proc(Image.new("RGB", (2500, 10)))
    with pytest.raises(ValueError, match=r"channel axis .* shape \(40, 50, 5\)"):
        proc(np.zeros((40, 50, 5), np.uint8))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        proc(np.full((40, 50, 3), 3.7, np.float32), do_rescale=False)
    with pytest.raises(TypeError, match="got dict"):
        proc({"not": "an image"})
    with pytest.raises(ValueError, match="no images"):
        proc([])
    with pytest.raises(ValueError, match=r"min_pixels \(5000\) must not exceed max_pixels \(1000\)"):
        HunYuanVLImageProcessorPil(min_pixels=5000, max_pixels=1000)
    with pytest.raises(TypeError, match="unknown image processor argument"):
        proc(Image.new("RGB", (64, 64)), max_pixel=10)
    with pytest.raises(ValueError, match="return_tensors"):
        proc(Image.new("RGB", (64, 64)), return_tensors="tf")


def test_call_time_overrides_match_reference():
    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (400, 700, 3), dtype=np.uint8))
    ours = HunYuanVLImageProcessorPil()(image, min_pixels=64 * 64, max_pixels=128 * 128)
    with pytest.warns(FutureWarning):
        ref = RefPil()(image, min_pixels=64 * 64, max_pixels=128 * 128)
    assert np.array_equal(ours["pixel_values"], ref["pixel_values"])
    assert ours["image_grid_thw"].tolist() == ref["image_grid_thw"].tolist() == [[1, 6, 10]]


def test_config_round_trips_both_ways(tmp_path, processor_dir):
    ours = HunYuanVLImageProcessorPil.from_pretrained(processor_dir)
    assert ours.min_pixels == 512 * 512 and ours.max_pixels == 2048 * 2048 and ours.resample == 1
    ours = HunYuanVLImageProcessorPil.from_pretrained(processor_dir, max_pixels=1024 * 1024)
    ours.save_pretrained(tmp_path / "ours")
    saved = json.loads((tmp_path / "ours" / "preprocessor_config.json").read_text())
    assert saved["size"] == {"shortest_edge": 512 * 512, "longest_edge": 1024 * 1024}
    ref = RefPil.from_pretrained(str(tmp_path / "ours"))
    image = Image.new("RGB", (3000, 2000), "blue")
    assert np.array_equal(ref(image)["pixel_values"], ours(image)["pixel_values"])
    ref.save_pretrained(str(tmp_path / "ref"))
    again = HunYuanVLImageProcessorPil.from_pretrained(tmp_path / "ref")
    assert again.to_dict() == ours.to_dict()
    torch_backend = HunYuanVLImageProcessor.from_pretrained(tmp_path / "ref")
    assert torch_backend.max_pixels == 1024 * 1024
    with pytest.raises(FileNotFoundError, match="preprocessor_config.json"):
        HunYuanVLImageProcessorPil.from_pretrained(tmp_path)

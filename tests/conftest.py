import os
import sys

# tests never reach for the hub
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402
import torch  # noqa: E402

from reference import VARIANTS, build_reference  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def reference_checkpoints(tmp_path_factory):
    """{variant: (reference model, directory it was saved to with transformers' save_pretrained)}."""
    out = {}
    for name, config in VARIANTS.items():
        model = build_reference(config)
        path = tmp_path_factory.mktemp(name)
        model.save_pretrained(path)
        out[name] = (model, str(path))
    return out


@pytest.fixture(scope="session")
def processor_dir(tmp_path_factory):
    """A HunyuanOCR-style processor checkpoint (tokenizer with the real special ids, template, image config)."""
    from processing_fixtures import write_processor_checkpoint
    return write_processor_checkpoint(str(tmp_path_factory.mktemp("processor")))


@pytest.fixture(scope="session")
def reference_processor(processor_dir):
    from transformers import AutoProcessor
    return AutoProcessor.from_pretrained(processor_dir, backend="pil")


@pytest.fixture(scope="session")
def image_corpus(tmp_path_factory):
    from image_corpus import make_corpus
    return make_corpus(str(tmp_path_factory.mktemp("corpus")))


@pytest.fixture(scope="session")
def ocr_checkpoint(tmp_path_factory):
    """A directory with a tiny HunyuanOCR-shaped model (real vocab size and special ids) and its processor."""
    from processing_fixtures import write_ocr_checkpoint
    return write_ocr_checkpoint(str(tmp_path_factory.mktemp("ocr")))

"""Access to the golden numbers computed by OFA-main (`OFA_REFERENCE_DIR`, default ../shared/fixtures/ofa_reference)."""
import argparse
import os
from pathlib import Path

import pytest
import torch
from fairseq.data import Dictionary
from fairseq.models import ARCH_CONFIG_REGISTRY

from ofa_sic.models.ofa import OFAModel

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("OFA_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "fixtures" / "ofa_reference"))


def reference_path(name: str) -> Path:
    path = REFERENCE_DIR / name
    if not path.exists():
        pytest.skip(f"OFA reference fixture {path} not found (set OFA_REFERENCE_DIR)")
    return path


def load_reference() -> dict:
    """The fixture: plain tensors, dicts and lists (loaded with weights_only=True, like every file the project reads)."""
    return torch.load(reference_path("ofa_reference.pt"), weights_only=True)


def dictionary_from_symbols(symbols) -> Dictionary:
    """A fairseq Dictionary holding `symbols` in index order (the first four are fairseq's specials)."""
    dictionary = Dictionary()
    assert dictionary.symbols[:4] == list(symbols[:4])
    for symbol in symbols[4:]:
        dictionary.add_symbol(symbol)
    return dictionary


class DictionaryTask:
    """The two attributes OFAModel.build_model reads from a task."""

    def __init__(self, dictionary):
        self.source_dictionary = self.target_dictionary = dictionary


def build_model(arch: str, dictionary, **options) -> OFAModel:
    """Build an `ofa` model the way fairseq does for a legacy-args model: arch defaults, then build_model."""
    args = argparse.Namespace(arch=arch, **options)
    ARCH_CONFIG_REGISTRY[arch](args)
    return OFAModel.build_model(args, DictionaryTask(dictionary))


def float32_state(ref: dict) -> dict:
    return {k: (v.float() if v.is_floating_point() else v) for k, v in ref["state_dict"].items()}


def build_reference_model(ref: dict, dictionary=None, **overrides) -> OFAModel:
    """The fixture's model (arch overrides + caption flags) with its weights, in eval mode."""
    options = {k: v for k, v in ref["arch_overrides"].items() if k != "patch_image_size"}
    options.update(ref["flags"])
    options.update(overrides)
    model = build_model(ref["arch"], dictionary or dictionary_from_symbols(ref["dictionary_symbols"]), **options)
    model.load_state_dict(float32_state(ref))
    return model.eval()

"""Checkpoints in OFA-main's on-disk format load under torch's weights_only loader; others fail clearly."""
import argparse
import datetime

import pytest
import torch
from fairseq import checkpoint_utils

from ofa_reference import build_reference_model, float32_state
from ofa_sic.checkpoints import TRUST_ENV, UntrustedCheckpointError


def ofa_format_checkpoint(ref, **extra):
    """A fairseq checkpoint dict as OFA-main writes it: `args` Namespace, `cfg`, `model`, histories."""
    args = argparse.Namespace(arch=ref["arch"], task="caption", **ref["arch_overrides"], **ref["flags"])
    state = {
        "args": None,
        "cfg": {"model": args, "task": {"_name": "caption"}, "common": {"seed": 7}},
        "model": float32_state(ref),
        "optimizer_history": [{"criterion_name": "AdjustLabelSmoothedCrossEntropyCriterion", "optimizer_name": "FairseqAdam",
                               "lr_scheduler_state": {"best": 1.25}, "num_updates": 10}],
        "extra_state": {"train_iterator": {"epoch": 1}, "val_loss": 1.25},
        "last_optimizer_state": None,
    }
    state.update(extra)
    return state


def test_ofa_format_checkpoint_loads_strictly_with_weights_only(ref, tmp_path):
    path = tmp_path / "caption_stage1_best.pt"
    torch.save(ofa_format_checkpoint(ref), path)
    with pytest.raises(Exception):
        torch.serialization.clear_safe_globals()
        try:
            torch.load(path, weights_only=True)
        finally:
            from ofa_sic.checkpoints import allow_checkpoint_types
            allow_checkpoint_types()
    state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert isinstance(state["cfg"]["model"], argparse.Namespace)
    model = build_reference_model(ref)
    model.load_state_dict(state["model"], strict=True)
    for key, value in float32_state(ref).items():
        assert torch.equal(model.state_dict()[key], value), key


def test_checkpoint_with_other_types_names_them_and_the_opt_in(ref, tmp_path):
    path = tmp_path / "odd.pt"
    torch.save(ofa_format_checkpoint(ref, extra_state={"saved_at": datetime.datetime(2024, 1, 1)}), path)
    with pytest.raises(UntrustedCheckpointError) as error:
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert "datetime" in str(error.value) and TRUST_ENV in str(error.value)


def test_trusted_opt_in_loads_other_types(ref, tmp_path, monkeypatch):
    path = tmp_path / "odd.pt"
    torch.save(ofa_format_checkpoint(ref, extra_state={"saved_at": datetime.datetime(2024, 1, 1)}), path)
    monkeypatch.setenv(TRUST_ENV, "1")
    state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert state["extra_state"]["saved_at"].year == 2024

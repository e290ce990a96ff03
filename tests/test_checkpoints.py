"""Checkpoints in OFA-main's on-disk format load under torch's weights_only loader; others fail clearly."""
import argparse
import datetime

import pytest
import torch
from fairseq import checkpoint_utils
from omegaconf import OmegaConf

from helpers import build_reference_model, float32_state, ofa_format_checkpoint, training_config
from ofa_sic.checkpoints import TRUST_ENV, UntrustedCheckpointError


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


def test_model_args_with_share_all_embeddings_still_load(ref, demo_data, tmp_path):
    """OFA-main's checkpoints, and ofa_sic's from before the flag was dropped, store share_all_embeddings in
    their model args; fairseq's loader builds the model from those args and loads the weights."""
    state = ofa_format_checkpoint(ref)
    assert state["cfg"]["model"].share_all_embeddings
    style_caption_cfg = OmegaConf.to_container(training_config(demo_data, tmp_path), resolve=True, enum_to_str=True)
    state["cfg"] = dict(style_caption_cfg, model=state["cfg"]["model"])
    path = tmp_path / "with_share_all_embeddings.pt"
    torch.save(state, path)
    models, cfg, _ = checkpoint_utils.load_model_ensemble_and_task([str(path)])
    assert cfg.model.share_all_embeddings
    loaded = models[0].state_dict()
    for key, value in float32_state(ref).items():
        if "embed_tokens" not in key and "output_projection" not in key:  # grown to the demo dictionary
            assert torch.equal(loaded[key], value), key


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

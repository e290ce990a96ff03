"""End to end through the real `fairseq-train` and `fairseq-generate` on the tiny demo arch."""
import re
import sys
import sysconfig
from pathlib import Path

import torch

from helpers import common_args, fairseq_command, ofa_format_checkpoint, run_command, train_args


def test_fairseq_train_then_generate_one_caption_per_row(demo_data, tmp_path):
    save_dir = tmp_path / "ckpt"
    result = run_command(train_args(
        demo_data, save_dir, "--max-epoch", "2", "--eval-cider",
        "--eval-args", '{"beam": 2, "max_len_b": 8, "no_repeat_ngram_size": 3}',
        "--best-checkpoint-metric", "cider", "--maximize-best-checkpoint-metric", "--no-epoch-checkpoints",
    ))
    log = result.stdout + result.stderr
    assert re.search(r"valid on 'valid' subset .*\| cider [0-9.]+", log), log[-3000:]
    assert "accuracy" in log
    assert (save_dir / "checkpoint_best.pt").exists() and (save_dir / "checkpoint_last.pt").exists()
    # 96 rows / batch 16 = 6 updates per epoch; the scheduler warms up over 10% of 12 updates.
    assert "num_updates 12" in log

    generated = run_command([
        fairseq_command("fairseq-generate"), demo_data["data"], *common_args(), "--bpe-dir", demo_data["bpe"],
        "--path", save_dir / "checkpoint_best.pt", "--gen-subset", "test", "--beam", "5", "--max-len-b", "16",
        "--no-repeat-ngram-size", "3", "--batch-size", "5",
    ]).stdout
    test_rows = sum(1 for line in (demo_data["data"] / "test.tsv").read_text().splitlines() if line.strip())
    detok = [line.split("\t") for line in generated.splitlines() if line.startswith("D-")]
    assert sorted(int(fields[0][2:]) for fields in detok) == list(range(test_rows))  # 12 rows, batch 5: none dropped
    for fields in detok:
        assert "<code_" not in fields[2] and "<bin_" not in fields[2] and not re.search(r"\b\d{3,}\b", fields[2])


def test_restore_from_ofa_format_checkpoint_with_resets(ref, demo_data, tmp_path):
    checkpoint = tmp_path / "ofa_tiny_reference.pt"
    torch.save(ofa_format_checkpoint(ref), checkpoint)
    overrides = []
    for key, value in ref["arch_overrides"].items():
        if key != "patch_image_size":
            overrides += [f"--{key.replace('_', '-')}", str(value)]
    # OFA's command line without its sharing flags: ofa_sic always shares all embeddings and ties the output
    # projection to them, without a flag
    tied = ("share_all_embeddings", "share_decoder_input_output_embed")
    flags = [f"--{key.replace('_', '-')}" for key, on in ref["flags"].items() if on and key not in tied]
    args = train_args(demo_data, tmp_path / "ckpt", "--max-update", "2", "--disable-validation",
                      "--restore-file", checkpoint, "--reset-optimizer", "--reset-dataloader", "--reset-meters",
                      "--reset-lr-scheduler", arch="ofa_tiny")
    result = run_command(args + overrides + flags)
    log = result.stdout + result.stderr
    assert "Loaded checkpoint" in log and "num_updates 2" in log
    assert "growing encoder.embed_tokens.weight" in log  # the demo dictionary is larger than the fixture's


def test_relative_user_dir_works_outside_the_repository(tmp_path):
    """After `make install`, `--user-dir ofa_sic` resolves from any folder (fairseq also looks in site-packages)."""
    link = Path(sysconfig.get_paths()["purelib"]) / "ofa_sic"
    assert link.exists(), f"{link} is missing: run `make install`, which links ofa_sic into site-packages"
    code = ("import argparse; from fairseq import utils; from fairseq.tasks import TASK_REGISTRY; "
            "utils.import_user_module(argparse.Namespace(user_dir='ofa_sic')); print('style_caption' in TASK_REGISTRY)")
    result = run_command([sys.executable, "-c", code], cwd=tmp_path)
    assert result.stdout.strip().endswith("True")

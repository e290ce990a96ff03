"""Helpers shared by the tests: running fairseq's console scripts, and the OFA-main golden numbers.

The golden numbers live in `tests/data/ofa_reference/` (see the README there). They are part of the
repository: a missing file is a test failure, never a skip.
"""
import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fairseq.data import Dictionary
from fairseq.models import ARCH_CONFIG_REGISTRY

from ofa_sic.models.ofa import OFAModel

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(__file__).resolve().parent / "data" / "ofa_reference"


# ------------------------------------------------------------------------------------------------
# Commands
# ------------------------------------------------------------------------------------------------
def fairseq_command(name: str) -> str:
    """Path of a fairseq console script installed next to this Python."""
    return str(Path(sys.executable).parent / name)


def run_command(args, cwd=None, timeout=600, env=None):
    """Run a command, returning CompletedProcess; fail the test with its output when it fails."""
    merged_env = dict(os.environ, PYTHONWARNINGS="ignore", **(env or {}))
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=merged_env)
    if result.returncode != 0:
        pytest.fail(f"{args[0]} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


#: The demo data's images are 96 pixels: the tests train and caption at that size.
DEMO_IMAGE_SIZE = 96
#: The training criteria of the tests and their options: stage 1 (cross-entropy) and stage 2 (SCST).
CRITERIA = {
    "ce": ["--criterion", "adjust_label_smoothed_cross_entropy", "--label-smoothing", "0.1", "--report-accuracy"],
    "scst": ["--criterion", "scst_reward_criterion"],
}


def common_args(image_size=DEMO_IMAGE_SIZE) -> list:
    """Options every style_caption command of the tests passes; `image_size` None leaves --patch-image-size
    to the checkpoint the command starts from."""
    size = [] if image_size is None else ["--patch-image-size", str(image_size)]
    return ["--user-dir", REPO_ROOT / "ofa_sic", "--task", "style_caption", *size, "--cpu"]


def train_args(demo_data, save_dir, *extra, criterion="ce", arch="ofa_demo", image_size=DEMO_IMAGE_SIZE):
    """A `fairseq-train` command line on the demo data: `arch`, the `criterion` of CRITERIA, `image_size`
    (None: the checkpoint's), then `extra`."""
    return [
        fairseq_command("fairseq-train"), demo_data["data"], *common_args(image_size), "--bpe-dir", demo_data["bpe"],
        "--arch", arch, *CRITERIA[criterion], "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "ofa_polynomial_decay",
        "--warmup-ratio", "0.1", "--batch-size", "16", "--save-dir", save_dir, "--log-format", "simple",
        "--log-interval", "1", "--num-workers", "0", "--seed", "3", *extra,
    ]


def training_config(demo_data, save_dir, *extra, **options):
    """The config fairseq-train builds from the command line `train_args(demo_data, save_dir, *extra, **options)`."""
    from fairseq import options as fairseq_options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    argv = [str(a) for a in train_args(demo_data, save_dir, *extra, **options)[1:]]
    return convert_namespace_to_omegaconf(fairseq_options.parse_args_and_arch(fairseq_options.get_training_parser(), argv))


def train_script_env(demo_data, save_dir, restore_file="", fairseq_train=None) -> dict:
    """Environment variables (to add to os.environ) for run_scripts/train_caption.sh on the demo data: ofa_demo,
    CPU, batch 16, validated (CIDEr, beam 2) and saved every 2 updates."""
    env = dict(
        DATA=str(demo_data["data"]), BPE_DIR=str(demo_data["bpe"]),
        ARCH="ofa_demo", RESTORE_FILE=str(restore_file), SAVE_DIR=str(save_dir), PATCH_IMAGE_SIZE="96",
        DEVICE_ARGS="--cpu", BATCH_SIZE="16", LR="1e-3", FREEZE_EMBEDDINGS="0", NUM_WORKERS="0",
        SAVE_INTERVAL_UPDATES="2", KEEP_INTERVAL_UPDATES="1", DROP_WORST_RATIO="0", DROPOUT="0.0",
        DROP_PATH_RATE="0.0", EVAL_ARGS='{"beam":2,"max_len_b":8,"no_repeat_ngram_size":3}',
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    if fairseq_train:
        env["FAIRSEQ_TRAIN"] = str(fairseq_train)
    return env


def train_script_command(max_update: int) -> list:
    """run_scripts/train_caption.sh (the README's stage-1 recipe) for `max_update` updates, seed 3."""
    return ["bash", str(REPO_ROOT / "run_scripts" / "train_caption.sh"), "--max-update", str(max_update), "--seed", "3"]


# ------------------------------------------------------------------------------------------------
# Golden numbers from OFA-main
# ------------------------------------------------------------------------------------------------
def reference_path(name: str) -> Path:
    """Path of a golden-number file; fails the test when the repository's copy is missing."""
    path = REFERENCE_DIR / name
    if not path.is_file():
        pytest.fail(f"OFA reference file {path} is missing: it is part of the repository (git checkout tests/data)")
    return path


def load_reference() -> dict:
    """ofa_reference.pt: tensors, dicts, lists and plain scalars only, so torch's weights_only loader reads it."""
    return torch.load(reference_path("ofa_reference.pt"), weights_only=True)


def load_json_reference(name: str) -> dict:
    return json.loads(reference_path(name).read_text())


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
    """The fixture's state dict (stored in float16) with floating tensors cast to float32."""
    return {k: (v.float() if v.is_floating_point() else v) for k, v in ref["state_dict"].items()}


def build_reference_model(ref: dict, dictionary=None, **overrides) -> OFAModel:
    """The fixture's model (arch overrides + caption flags) with its weights, in eval mode."""
    options = {k: v for k, v in ref["arch_overrides"].items() if k != "patch_image_size"}
    options.update(ref["flags"])
    options.update(overrides)
    model = build_model(ref["arch"], dictionary or dictionary_from_symbols(ref["dictionary_symbols"]), **options)
    model.load_state_dict(float32_state(ref))
    return model.eval()


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


def ofa_sic(*argv):
    """Run the `ofa-sic` CLI in this process: (exit code, stdout, stderr)."""
    from ofa_sic.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()

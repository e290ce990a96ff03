"""Shared fixtures: a tiny demo dataset (PCap format -> prepared TSVs) made once per test session."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """{'raw': PCap-format dir, 'data': prepared dir, 'bpe': BPE dir} of a small demo slice."""
    from ofa_sic.data.demo import make_demo_data
    from ofa_sic.data.pcap import prepare_pcap

    root = tmp_path_factory.mktemp("demo")
    make_demo_data(str(root / "raw"), seed=0, n_train=96, n_valid=10, n_test=12, quiet=True)
    prepare_pcap(str(root / "raw" / "personality_captions"), str(root / "raw" / "yfcc_images"), str(root / "data"),
                 image_size=96, workers=1, quiet=True)
    return {"raw": root / "raw", "data": root / "data", "bpe": root / "raw" / "bpe"}


@pytest.fixture(scope="session")
def ref():
    """The golden OFA-main fixture (ofa_reference.pt)."""
    from ofa_reference import load_reference

    return load_reference()


@pytest.fixture(scope="session")
def model(ref):
    """The fixture's model with its weights, in eval mode (tests must not change it)."""
    from ofa_reference import build_reference_model

    return build_reference_model(ref)


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
    return ["bash", str(REPO_ROOT / "run_scripts" / "train_caption.sh"), "--max-update", str(max_update), "--seed", "3"]


@pytest.fixture(scope="session")
def stage1_checkpoint(demo_data, tmp_path_factory):
    """checkpoint_last.pt of a 2-update run of run_scripts/train_caption.sh on the demo data (a "pretrained" file)."""
    save_dir = tmp_path_factory.mktemp("stage1")
    run_command(train_script_command(2), env=train_script_env(demo_data, save_dir))
    return save_dir / "checkpoint_last.pt"

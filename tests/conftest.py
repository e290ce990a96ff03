"""Session fixtures: a tiny demo dataset (PCap format -> prepared TSVs), the OFA-main golden fixture and its model."""
import pytest

from helpers import (
    build_reference_model, load_reference, run_command, train_args, train_script_command, train_script_env,
)


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
    """The golden OFA-main fixture (tests/data/ofa_reference/ofa_reference.pt)."""
    return load_reference()


@pytest.fixture(scope="session")
def model(ref):
    """The fixture's model with its weights, in eval mode (tests must not change it)."""
    return build_reference_model(ref)


@pytest.fixture(scope="session")
def stage1_checkpoint(demo_data, tmp_path_factory):
    """checkpoint_last.pt of a 2-update run of run_scripts/train_caption.sh on the demo data (a "pretrained" file)."""
    save_dir = tmp_path_factory.mktemp("stage1")
    run_command(train_script_command(2), env=train_script_env(demo_data, save_dir))
    return save_dir / "checkpoint_last.pt"


@pytest.fixture(scope="session")
def varied_checkpoint(demo_data, tmp_path_factory):
    """checkpoint_last.pt of ofa_demo after one update at lr 1e-7: practically its seeded initialisation.

    Its captions are noise, but noise that changes with the image and the style (the briefly trained
    models of the other fixtures say the same words for every input), so a test can tell one request's
    captions from another's.
    """
    save_dir = tmp_path_factory.mktemp("varied_ckpt")
    run_command(train_args(demo_data, save_dir, "--max-update", "1", "--lr", "1e-7", "--disable-validation",
                           "--no-epoch-checkpoints"))
    return save_dir / "checkpoint_last.pt"

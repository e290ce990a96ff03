"""Session fixtures: a tiny demo dataset (PCap format -> prepared TSVs), the OFA-main golden fixture and its model."""
import pytest

from helpers import build_reference_model, load_reference


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

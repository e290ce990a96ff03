"""Shared fixtures: a tiny demo dataset (PCap format -> prepared TSVs) made once per test session."""
import contextlib
import io
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


def ofa_sic(*argv):
    """Run the `ofa-sic` CLI in this process: (exit code, stdout, stderr)."""
    from ofa_sic.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()

"""Settings that must match training come from the checkpoint (fairseq-generate, SCST from stage 1),
and OFA's style-free caption prompt works through the real fairseq-generate."""
import re

import pytest

from helpers import REPO_ROOT, fairseq_command, run_command, train_args

TRAINED_PROMPT = " a {} caption of this picture:"
STYLE_FREE_PROMPT = " what does the image describe?"


@pytest.fixture(scope="module")
def trained(demo_data, tmp_path_factory):
    """A checkpoint trained at patch 96 with a custom prompt and --keep-case."""
    save_dir = tmp_path_factory.mktemp("trained_settings")
    run_command(train_args(demo_data, save_dir, "--max-update", "2", "--disable-validation",
                           "--prompt-template", TRAINED_PROMPT, "--keep-case"))
    return save_dir / "checkpoint_last.pt"


def generate(demo_data, checkpoint, *extra):
    """fairseq-generate on the test split with no task setting but data and BPE; returns (stdout, stderr)."""
    result = run_command([
        fairseq_command("fairseq-generate"), demo_data["data"], "--user-dir", REPO_ROOT / "ofa_sic",
        "--task", "style_caption", "--bpe-dir", demo_data["bpe"], "--path", checkpoint, "--gen-subset", "test",
        "--beam", "2", "--max-len-b", "6", "--batch-size", "5", "--cpu", *extra,
    ])
    return result.stdout, result.stderr


def sources(stdout):
    return [line.split("\t")[1] for line in stdout.splitlines() if line.startswith("S-")]


def test_generate_takes_image_size_prompt_and_cleaning_from_the_checkpoint(demo_data, trained):
    stdout, stderr = generate(demo_data, trained)  # no --patch-image-size: the default 480 would not fit
    for flag, value in (("--patch-image-size", "96"), ("--prompt-template", repr(TRAINED_PROMPT)), ("--keep-case", "True")):
        assert re.search(rf"{flag} {re.escape(value)}: taken from .*checkpoint_last.pt", stderr), stderr[-3000:]
    assert all("caption of this picture" in source for source in sources(stdout))


def test_generate_warns_when_a_given_setting_differs_from_training(demo_data, trained):
    _, stderr = generate(demo_data, trained, "--patch-image-size", "64")
    assert re.search(r"--patch-image-size 64 given, but .*checkpoint_last.pt was trained with 96: using 64", stderr)


def test_a_setting_typed_at_its_default_value_is_used(demo_data, trained):
    """A value given on the command line is used even when it is the default (it used to be replaced by the checkpoint's)."""
    from ofa_sic.tasks.input_contract import DEFAULT_PROMPT

    stdout, stderr = generate(demo_data, trained, "--prompt-template", DEFAULT_PROMPT)
    assert re.search(rf"--prompt-template {re.escape(repr(DEFAULT_PROMPT))} given, but .*checkpoint_last.pt was trained "
                     rf"with {re.escape(repr(TRAINED_PROMPT))}", stderr), stderr[-3000:]
    assert all("describe? write a" in source and "caption of this picture" not in source for source in sources(stdout))


def test_style_free_prompt_through_fairseq_generate(demo_data, trained):
    """OFA's own caption prompt has no style slot: every row gets the same source, none is dropped."""
    stdout, stderr = generate(demo_data, trained, "--prompt-template", STYLE_FREE_PROMPT)
    assert "was trained with" in stderr and "using ' what does the image describe?'" in stderr
    rows = sum(1 for line in (demo_data["data"] / "test.tsv").read_text().splitlines() if line.strip())
    assert sources(stdout) == ["what does the image describe?"] * rows
    assert len([line for line in stdout.splitlines() if line.startswith("D-")]) == rows


def test_scst_from_a_stage1_checkpoint_trains_with_its_settings(demo_data, trained, tmp_path):
    df_path = tmp_path / "train-words-keep-case.p"  # the reward's df must be cleaned as the checkpoint was trained
    run_command([fairseq_command("ofa-sic"), "cider-df", "--tsv", demo_data["data"] / "train.tsv", "--out", df_path,
                 "--keep-case"])
    args = train_args(demo_data, tmp_path / "scst", "--max-update", "1", "--no-save", "--disable-validation",
                      "--restore-file", trained, "--reset-optimizer", "--reset-dataloader", "--reset-meters",
                      "--reset-lr-scheduler", "--freeze-resnet", "--scst", "--scst-args", '{"beam": 2, "max_len_b": 5}',
                      "--scst-cider-cached-tokens", df_path, "--batch-size", "2",
                      criterion="scst", image_size=None)  # 96 is the trained value: left to the checkpoint
    result = run_command(args)
    log = result.stdout + result.stderr
    assert re.search(r"--patch-image-size 96: taken from .*checkpoint_last.pt", log), log[-3000:]
    assert re.search(r"--keep-case True: taken from", log) and "num_updates 1" in log

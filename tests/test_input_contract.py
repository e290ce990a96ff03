"""A checkpoint records the inputs it was trained on (ofa_sic.tasks.input_contract): styles are mapped by
name through it, unknown styles and other BPE files are refused, old checkpoints keep their prompt ids,
and validation scores each subset against its own references. All through the real commands."""
import json
import re
import shutil

import pytest
import torch

from helpers import REPO_ROOT, common_args, fairseq_command, ofa_sic, run_command


def copy_data(demo_data, folder, styles=None):
    """A copy of the prepared demo data in `folder`, with styles.txt holding `styles` (names) if given."""
    shutil.copytree(demo_data["data"], folder, ignore=shutil.ignore_patterns("*.idx"))
    if styles is not None:
        (folder / "styles.txt").write_text("".join(name + "\n" for name in styles))
    return folder


def data_styles(demo_data):
    return (demo_data["data"] / "styles.txt").read_text().splitlines()


def setup_task(data, bpe, checkpoint):
    """The style_caption task as fairseq-generate sets it up for `--path checkpoint`."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_generation_parser()
    argv = [str(a) for a in [data, *common_args(image_size=None), "--bpe-dir", bpe, "--path", checkpoint]]  # the checkpoint's size
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, argv))
    return tasks.setup_task(cfg.task)


def test_the_checkpoint_records_its_styles_prompt_settings_and_bpe(demo_data, stage1_checkpoint):
    from ofa_sic.data.text import bpe_fingerprint

    record = torch.load(stage1_checkpoint, weights_only=True)["task_state"]["input_contract"]
    assert record["styles"] == data_styles(demo_data)
    assert record["bpe_fingerprint"] == bpe_fingerprint(str(demo_data["bpe"]))
    assert record["patch_image_size"] == 96 and record["style_format"] == "token"
    assert record["prompt_template"] == " what does the image describe? write a {} reply."
    assert (record["keep_punctuation"], record["keep_case"], record["imagenet_default_mean_and_std"]) == (False, False, False)


def test_reordered_styles_txt_keeps_every_style_on_its_trained_token(demo_data, stage1_checkpoint, tmp_path):
    styles = data_styles(demo_data)
    reordered = copy_data(demo_data, tmp_path / "reordered", styles[::-1])
    original_task = setup_task(demo_data["data"], demo_data["bpe"], stage1_checkpoint)
    reordered_task = setup_task(reordered, demo_data["bpe"], stage1_checkpoint)
    for name in styles:  # the same ids, and not what the reordered file alone would give
        assert reordered_task.prompt.token_ids(name) == original_task.prompt.token_ids(name)
        assert reordered_task.styles.token(name) == original_task.styles.token(name)
    assert reordered_task.styles.names == styles
    # and the captions of `ofa-sic evaluate` are the same
    predictions = []
    for data, out in ((demo_data["data"], tmp_path / "eval_original"), (reordered, tmp_path / "eval_reordered")):
        code, _, stderr = ofa_sic("evaluate", "--path", stage1_checkpoint, "--data", data, "--bpe-dir", demo_data["bpe"],
                                  "--out", out, "--batch-size", "6", "--cpu", "--no-meteor", "--beam", "2", "--max-len-b", "6")
        assert code == 0, stderr
        predictions.append(json.loads((out / "predictions.json").read_text()))
    assert predictions[0] == predictions[1]


def test_a_style_the_checkpoint_does_not_know_is_refused_before_any_work(demo_data, stage1_checkpoint, tmp_path):
    data = copy_data(demo_data, tmp_path / "unknown", data_styles(demo_data) + ["Grumpy (Cranky)"])
    code, _, stderr = ofa_sic("evaluate", "--path", stage1_checkpoint, "--data", data, "--bpe-dir", demo_data["bpe"],
                              "--out", tmp_path / "out", "--cpu")
    assert code == 2 and "'Grumpy (Cranky)'" in stderr and "was not trained on" in stderr, stderr
    assert not (tmp_path / "out").exists()
    result = run_command_failing([fairseq_command("fairseq-generate"), data, "--user-dir", REPO_ROOT / "ofa_sic",
                                  "--task", "style_caption", "--bpe-dir", demo_data["bpe"], "--path", stage1_checkpoint,
                                  "--gen-subset", "test", "--batch-size", "4", "--cpu"])
    assert "'Grumpy (Cranky)'" in result.stderr and "was not trained on" in result.stderr


def test_a_row_in_an_unknown_style_is_refused_naming_it(demo_data, stage1_checkpoint, tmp_path):
    data = copy_data(demo_data, tmp_path / "row")
    lines = (data / "test.tsv").read_text().splitlines()
    fields = lines[3].split("\t")
    fields[2] = "Grumpy"
    lines[3] = "\t".join(fields)
    (data / "test.tsv").write_text("\n".join(lines) + "\n")
    code, _, stderr = ofa_sic("evaluate", "--path", stage1_checkpoint, "--data", data, "--bpe-dir", demo_data["bpe"],
                              "--out", tmp_path / "out", "--cpu")
    assert code == 2 and "test.tsv:4: unknown style 'Grumpy'" in stderr and "was trained on" in stderr, stderr


def run_command_failing(args):
    import subprocess

    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600)
    assert result.returncode != 0, result.stdout[-2000:]
    return result


def test_another_bpe_is_refused_naming_both_fingerprints(demo_data, stage1_checkpoint, tmp_path):
    from ofa_sic.data.text import bpe_fingerprint

    bpe = shutil.copytree(demo_data["bpe"], tmp_path / "bpe")
    merges = (bpe / "vocab.bpe").read_text().splitlines()
    (bpe / "vocab.bpe").write_text("\n".join(merges[:-1]) + "\n")  # one merge fewer: other token ids
    code, _, stderr = ofa_sic("caption", "--path", stage1_checkpoint, "--data", demo_data["data"], "--bpe-dir", bpe,
                              "--style", data_styles(demo_data)[0], "--cpu", next(demo_data["raw"].glob("yfcc_images/*.jpg")))
    assert code == 2, stderr
    assert bpe_fingerprint(str(bpe))[:16] in stderr and bpe_fingerprint(str(demo_data["bpe"]))[:16] in stderr, stderr


def test_a_reformatted_copy_of_the_bpe_has_the_same_fingerprint(demo_data, tmp_path):
    from ofa_sic.data.text import bpe_fingerprint

    bpe = shutil.copytree(demo_data["bpe"], tmp_path / "bpe")
    encoder = json.loads((bpe / "encoder.json").read_text())
    (bpe / "encoder.json").write_text(json.dumps(encoder, indent=1))
    (bpe / "vocab.bpe").write_bytes((bpe / "vocab.bpe").read_bytes().replace(b"\n", b"\r\n"))
    assert bpe_fingerprint(str(bpe)) == bpe_fingerprint(str(demo_data["bpe"]))


def test_a_checkpoint_from_before_the_record_keeps_its_prompt_ids(demo_data, stage1_checkpoint, tmp_path):
    """Old checkpoints have no record: styles from styles.txt, prompt ids as the old rule made them (no
    lone space token before the style token), with a warning."""
    from ofa_sic.data.styles import style_token

    state = torch.load(stage1_checkpoint, weights_only=True)
    state["task_state"] = {}  # as ofa_sic wrote them before: every setting in the config, no record
    state["cfg"]["task"].update(prompt_template=" what does the image describe? write a {} reply.", style_format="token",
                                keep_punctuation=False, keep_case=False, imagenet_default_mean_and_std=False)
    legacy = tmp_path / "legacy.pt"
    torch.save(state, legacy)
    task = setup_task(demo_data["data"], demo_data["bpe"], legacy)
    codec, dictionary = task.codec, task.dictionary
    for index, name in enumerate(data_styles(demo_data)):
        old_rule = ([dictionary.bos()] + codec.encode(" what does the image describe? write a")
                    + [dictionary.index(style_token(index))] + codec.encode(" reply.") + [dictionary.eos()])
        assert task.prompt.token_ids(name) == old_rule
    assert task.cfg.prompt_template == " what does the image describe? write a{} reply."
    result = run_command([fairseq_command("fairseq-generate"), demo_data["data"], "--user-dir", REPO_ROOT / "ofa_sic",
                          "--task", "style_caption", "--bpe-dir", demo_data["bpe"], "--path", legacy,
                          "--gen-subset", "test", "--beam", "1", "--max-len-b", "3", "--batch-size", "6", "--cpu"])
    assert re.search(r"legacy\.pt records no input contract .* styles are taken from .*styles\.txt", result.stderr)


def test_new_checkpoints_put_the_space_token_before_the_style_token(demo_data, stage1_checkpoint):
    from ofa_sic.data.styles import style_token

    task = setup_task(demo_data["data"], demo_data["bpe"], stage1_checkpoint)
    ids = task.prompt.token_ids(data_styles(demo_data)[2])
    code = task.dictionary.index(style_token(2))
    assert task.codec.decode([ids[ids.index(code) - 1]]) == " "


def validation_cider(data, demo_data, checkpoint, subsets):
    """{subset: CIDEr-D} logged by fairseq-validate --eval-cider on `subsets`."""
    result = run_command([fairseq_command("fairseq-validate"), data, "--user-dir", REPO_ROOT / "ofa_sic",
                          "--task", "style_caption", "--bpe-dir", demo_data["bpe"], "--path", checkpoint, "--cpu",
                          "--valid-subset", subsets, "--batch-size", "4", "--eval-cider",
                          "--eval-args", '{"beam": 2, "max_len_b": 6}'])
    log = result.stdout + result.stderr
    return {subset: float(value) for subset, value in re.findall(r"valid on '(\w+)' subset \|.*?\| cider ([\d.]+)", log)}


def test_each_validation_subset_is_scored_against_its_own_references(demo_data, stage1_checkpoint, tmp_path):
    both = validation_cider(demo_data["data"], demo_data, stage1_checkpoint, "valid,test")
    alone = validation_cider(demo_data["data"], demo_data, stage1_checkpoint, "test")
    # the test rows under the name `valid` (the name must not matter)
    renamed = copy_data(demo_data, tmp_path / "renamed")
    shutil.copy(renamed / "test.tsv", renamed / "valid.tsv")
    as_valid = validation_cider(renamed, demo_data, stage1_checkpoint, "valid")
    assert set(both) == {"valid", "test"}
    assert both["test"] == alone["test"] == as_valid["valid"]
    assert both["test"] > 0


def test_a_stage2_checkpoint_of_an_older_version_validates(demo_data, stage1_checkpoint, tmp_path):
    """Older stage-2 checkpoints saved the SCST criterion's `ignore_prefix_size`, an option that no longer
    exists: fairseq-validate rebuilds the criterion from the saved config and must still load it."""
    state = torch.load(stage1_checkpoint, weights_only=True)
    state["task_state"] = {}
    state["cfg"]["task"].update(scst=True, scst_args='{"beam": 2, "max_len_b": 3}')
    state["cfg"]["criterion"] = {"_name": "scst_reward_criterion", "ignore_prefix_size": 0, "scst_baseline": "loo",
                                 "scst_cider_cached_tokens": str(demo_data["data"] / "train-words.p"),
                                 "scst_greedy_every": 0, "sentence_avg": False}
    old = tmp_path / "old_stage2.pt"
    torch.save(state, old)
    result = run_command([fairseq_command("fairseq-validate"), demo_data["data"], "--user-dir", REPO_ROOT / "ofa_sic",
                          "--task", "style_caption", "--bpe-dir", demo_data["bpe"], "--path", old, "--cpu",
                          "--valid-subset", "valid", "--batch-size", "4", "--max-valid-steps", "1"])
    log = result.stdout + result.stderr
    assert "dropped criterion option(s) ignore_prefix_size" in log
    assert re.search(r"valid on 'valid' subset \| loss -?[0-9.]+ \| score [0-9.]+", log)

"""SCST: OFA's reward text, leave-one-out/greedy/mean baselines, the loss, and each variant (beams, samples,
greedy baseline) through fairseq-train with its per-update diagnostics."""
import re

import numpy as np
import pytest
import torch
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

from conftest import REPO_ROOT, run_command
from criterions.scst_loss import baseline_scores, wrap_for_cider
from test_train_generate_e2e import train_args

APPENDIX_B_SCORES = np.array([3.590723450010247, 2.2033848068327986, 2.283166279305716])


def test_reward_text_is_wrapped_as_ofa():
    assert wrap_for_cider(" a man, riding a horse. ") == "a man riding a horse <eos>"


def test_leave_one_out_baseline_equals_appendix_b():
    baseline = baseline_scores(APPENDIX_B_SCORES, num_images=1, kind="loo")
    assert np.allclose(baseline, [2.2432755430692577, 2.9369448646579817, 2.897054128421523], atol=1e-12)
    assert np.allclose(APPENDIX_B_SCORES - baseline, [1.3474479069409893, -0.7335600578251831, -0.6138878491158071], atol=1e-12)


def test_leave_one_out_scores_come_from_cider_d(demo_data):
    from ofa_sic.metrics.cider_d import CiderD, build_document_frequency

    refs = ["a man riding a horse on a beach", "a person rides a horse near the ocean"]
    df = build_document_frequency([refs, ["a cat sitting on a couch", "a cat lying on a sofa"],
                                   ["two dogs playing in the snow", "dogs run through snow"]])
    df["ref_len"] = 10
    hyps = ["a man riding a horse", "a man on a horse", "a horse on the beach"]
    _, scores = CiderD(df=df).compute_score({0: [wrap_for_cider(r) for r in refs]},
                                             [{"image_id": 0, "caption": [wrap_for_cider(h)]} for h in hyps])
    assert np.allclose(scores, APPENDIX_B_SCORES, atol=1e-9)


def test_other_baselines_and_errors():
    scores = np.array([1.0, 2.0, 3.0, 4.0])
    assert np.allclose(baseline_scores(scores, 2, "mean"), [1.5, 1.5, 3.5, 3.5])
    assert np.allclose(baseline_scores(scores, 2, "greedy", np.array([0.5, 5.0])), [0.5, 0.5, 5.0, 5.0])
    assert np.allclose(baseline_scores(np.array([2.0]), 1, "mean"), [2.0])  # batch 1, K = 1
    with pytest.raises(ValueError, match="beam >= 2"):
        baseline_scores(np.array([2.0]), 1, "loo")


def build_task_and_criterion(demo_data, *extra):
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(demo_data["data"]), "--user-dir", str(REPO_ROOT / "ofa_sic"), "--task", "style_caption",
        "--arch", "ofa_demo", "--bpe-dir", str(demo_data["bpe"]), "--patch-image-size", "96", "--cpu",
        "--criterion", "scst_reward_criterion", "--scst", "--scst-args", '{"beam": 3, "max_len_b": 6}',
        "--scst-cider-cached-tokens", str(demo_data["data"] / "train-words.p"), "--freeze-resnet", *extra,
    ])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    return task, model, task.build_criterion(cfg.criterion)


def test_loss_equals_hand_computation(demo_data, monkeypatch):
    task, model, criterion = build_task_and_criterion(demo_data)
    task.load_dataset("train")
    dataset = task.dataset("train")
    sample = dataset.collater([dataset[0], dataset[1]])
    eos = task.target_dictionary.eos()
    hyps = [[torch.tensor([10, 11, eos]), torch.tensor([12, eos]), torch.tensor([10, 12, 13, eos])],
            [torch.tensor([14, eos]), torch.tensor([15, 16, eos]), torch.tensor([eos])]]
    scores = np.array([0.9, 0.3, 0.6, 0.2, 0.8, 0.5])
    monkeypatch.setattr(criterion, "generate", lambda model, sample, generator: hyps)
    monkeypatch.setattr(criterion, "cider_scores", lambda hypotheses, references: scores)
    loss, sample_size, log = criterion(model, sample)

    advantages = scores - baseline_scores(scores, 2, "loo")
    expected = 0.0
    model.train()
    for image in range(2):
        for k, tokens in enumerate(hyps[image]):
            net = {key: sample["net_input"][key][image : image + 1]
                   for key in ("src_tokens", "src_lengths", "patch_images", "patch_masks")}
            prev = torch.cat([torch.tensor([0]), tokens[:-1]]).unsqueeze(0)
            lprobs = torch.log_softmax(model(prev_output_tokens=prev, **net)[0].float(), dim=-1)[0]
            expected -= advantages[image * 3 + k] * lprobs[torch.arange(len(tokens)), tokens].sum()
    assert torch.allclose(loss, expected, atol=1e-4), (loss, expected)
    assert sample_size == log["ntokens"] == 3 + 2 + 4 + 2 + 3 + 1
    assert log["score"] == pytest.approx(scores.sum())


SCST_VARIANTS = {
    # OFA's beams with the leave-one-out baseline; the greedy caption's reward logged every 2nd update
    "beams_loo": ('{"beam": 3, "max_len_b": 8, "no_repeat_ngram_size": 3}', "loo", ["--scst-greedy-every", "2"]),
    # K independent samples (Luo 2020), temperature and top-k/top-p, leave-one-out baseline
    "samples_loo": ('{"sampling": true, "beam": 4, "temperature": 0.7, "sampling_topk": 20, "sampling_topp": 0.9, '
                    '"max_len_b": 8}', "loo", []),
    # the greedy baseline (Rennie et al.): its reward is logged every update
    "samples_greedy": ('{"sampling": true, "beam": 2, "max_len_b": 8}', "greedy", []),
}


@pytest.mark.parametrize("variant", sorted(SCST_VARIANTS))
def test_scst_variant_runs_through_fairseq_train_with_its_diagnostics(demo_data, tmp_path, variant):
    scst_args, baseline, extra = SCST_VARIANTS[variant]
    args = train_args(demo_data, tmp_path / "ckpt", "--max-update", "3", "--no-save", "--freeze-resnet",
                      "--scst", "--scst-args", scst_args, "--scst-baseline", baseline, *extra,
                      "--scst-cider-cached-tokens", demo_data["data"] / "train-words.p", "--batch-size", "4",
                      "--disable-validation", "--log-interval", "1")
    args[args.index("adjust_label_smoothed_cross_entropy")] = "scst_reward_criterion"
    del args[args.index("--label-smoothing"): args.index("--label-smoothing") + 2]
    args.remove("--report-accuracy")
    log = run_command(args).stdout
    per_update = {}
    for line in log.splitlines():
        match = re.search(r"num_updates[ =](\d+)", line)
        if match and "train_inner" in line:
            per_update[int(match.group(1))] = line
    assert sorted(per_update) == [1, 2, 3], log[-3000:]

    def value(line, key):
        match = re.search(rf"\b{key}[ =](-?[0-9.]+)", line)
        return float(match.group(1)) if match else None

    for update, line in per_update.items():
        for key in ("score", "advantage", "identical", "hyp_length", "share_generate", "share_reward", "share_forward"):
            assert value(line, key) is not None, (key, line)
        assert 0 <= value(line, "identical") <= 1 and 0 < value(line, "hyp_length") <= 8
    # fairseq's update_num counts from 0: update 1 runs with update_num 0, update 3 with 2
    greedy_logged = {update for update, line in per_update.items() if value(line, "greedy_score") is not None}
    assert greedy_logged == ({1, 3} if variant == "beams_loo" else {1, 2, 3} if baseline == "greedy" else set())


def test_greedy_every_must_not_be_negative(demo_data):
    with pytest.raises(ValueError, match="--scst-greedy-every must be 0"):
        build_task_and_criterion(demo_data, "--scst-greedy-every", "-1")


def test_diagnostics_count_identical_hypotheses_and_length():
    from criterions.scst_loss import hypothesis_diagnostics

    eos = 2
    same = [torch.tensor([5, 6, eos]), torch.tensor([5, 6, eos])]
    different = [torch.tensor([5, eos]), torch.tensor([7, 8, 9, eos])]
    sums = hypothesis_diagnostics([same, different], np.array([0.5, 1.5]))
    assert sums == {"num_images": 2, "identical_images": 1, "hyp_tokens": 2 + 2 + 1 + 3,
                    "greedy_score": 2.0, "greedy_images": 2}
    assert "greedy_score" not in hypothesis_diagnostics([same], None)


def test_missing_df_pickle_names_flag_and_command(demo_data, tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        build_task_and_criterion(demo_data, "--scst-cider-cached-tokens", str(tmp_path / "nope.p"))
    assert "--scst-cider-cached-tokens" in str(error.value) and "ofa-sic cider-df" in str(error.value)

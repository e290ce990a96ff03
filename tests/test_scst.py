"""SCST: OFA's reward text, leave-one-out/greedy/mean baselines, the loss, and each variant (beams, samples,
greedy baseline) through fairseq-train with its per-update diagnostics."""
import re
import subprocess

import numpy as np
import pytest
import torch
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

from criterions.scst_loss import baseline_scores, wrap_for_cider
from helpers import common_args, fairseq_command, run_command, train_args, training_config
from ofa_sic.data.text import CaptionCleaner
from ofa_sic.generation.generator import OFASequenceGenerator, mask_outside_range

APPENDIX_B_SCORES = np.array([3.590723450010247, 2.2033848068327986, 2.283166279305716])


def test_reward_text_is_wrapped_as_ofa():
    assert wrap_for_cider(" a man, riding a horse. ", CaptionCleaner()) == "a man riding a horse <eos>"


def test_leave_one_out_baseline_equals_appendix_b():
    baseline = baseline_scores(APPENDIX_B_SCORES, num_images=1, kind="loo")
    assert np.allclose(baseline, [2.2432755430692577, 2.9369448646579817, 2.897054128421523], atol=1e-12)
    assert np.allclose(APPENDIX_B_SCORES - baseline, [1.3474479069409893, -0.7335600578251831, -0.6138878491158071], atol=1e-12)


def test_leave_one_out_scores_come_from_cider_d(demo_data):
    from ofa_sic.metrics.cider_d import CiderD
    from ofa_sic.metrics.document_frequency import build_document_frequency

    refs = ["a man riding a horse on a beach", "a person rides a horse near the ocean"]
    df = build_document_frequency([refs, ["a cat sitting on a couch", "a cat lying on a sofa"],
                                   ["two dogs playing in the snow", "dogs run through snow"]])
    df["ref_len"] = 10
    hyps = ["a man riding a horse", "a man on a horse", "a horse on the beach"]
    _, scores = CiderD(df=df).compute_score({0: [wrap_for_cider(r, CaptionCleaner()) for r in refs]},
                                             [{"image_id": 0, "caption": [wrap_for_cider(h, CaptionCleaner())]} for h in hyps])
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
    args = options.parse_args_and_arch(parser, [str(a) for a in [
        demo_data["data"], *common_args(), "--arch", "ofa_demo", "--bpe-dir", demo_data["bpe"],
        "--criterion", "scst_reward_criterion", "--scst", "--scst-args", '{"beam": 3, "max_len_b": 6}',
        "--scst-cider-cached-tokens", demo_data["data"] / "train-words.p", "--freeze-resnet", *extra,
    ]])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    return task, model, task.build_criterion(cfg.criterion)


def test_loss_equals_hand_computation(demo_data, monkeypatch):
    task, model, criterion = build_task_and_criterion(demo_data)
    task.load_dataset("train")
    dataset = task.dataset("train")
    sample = task.normalized(dataset.collater([dataset[0], dataset[1]]), model)  # as task.train_step does
    eos = task.target_dictionary.eos()
    hyps = [[torch.tensor([10, 11, eos]), torch.tensor([12, eos]), torch.tensor([10, 12, 13, eos])],
            [torch.tensor([14, eos]), torch.tensor([15, 16, eos]), torch.tensor([eos])]]
    scores = np.array([0.9, 0.3, 0.6, 0.2, 0.8, 0.5])
    monkeypatch.setattr(criterion, "generate", lambda model, sample, generator, encoder_out=None: hyps)
    monkeypatch.setattr(criterion, "cider_scores", lambda texts, references: scores)
    model.train()  # as task.train_step does
    loss, sample_size, log = criterion(model, sample)

    advantages = scores - baseline_scores(scores, 2, "loo")
    expected = 0.0
    for image in range(2):
        for k, tokens in enumerate(hyps[image]):
            net = {key: sample["net_input"][key][image : image + 1]
                   for key in ("src_tokens", "src_lengths", "patch_images", "patch_masks")}
            prev = torch.cat([torch.tensor([0]), tokens[:-1]]).unsqueeze(0)
            logits = mask_outside_range(model(prev_output_tokens=prev, **net)[0].float(), task.constraint_range)
            lprobs = torch.log_softmax(logits, dim=-1)[0]
            expected -= advantages[image * 3 + k] * lprobs[torch.arange(len(tokens)), tokens].sum()
    assert torch.allclose(loss, expected, atol=1e-4), (loss, expected)
    assert sample_size == log["ntokens"] == 3 + 2 + 4 + 2 + 3 + 1
    assert log["score"] == pytest.approx(scores.sum())


def scst_train_args(data, save_dir, *extra):
    """A `fairseq-train` command line for stage 2: train_args with the SCST criterion instead of CE."""
    return train_args(data, save_dir, "--scst-cider-cached-tokens", data["data"] / "train-words.p", *extra,
                      criterion="scst")


SCST_VARIANTS = {
    # OFA's beams with the leave-one-out baseline; the greedy caption's reward logged every 2nd update
    "beams_loo": ('{"beam": 3, "max_len_b": 8, "no_repeat_ngram_size": 3}', "loo", ["--scst-greedy-every", "2"]),
    # K independent samples (Luo 2020), temperature and top-k/top-p, leave-one-out baseline
    "samples_loo": ('{"sampling": true, "beam": 4, "temperature": 0.7, "sampling_topk": 20, "sampling_topp": 0.9, '
                    '"max_len_b": 8}', "loo", []),
    # the greedy baseline (Rennie et al.): its reward is logged every update
    "samples_greedy": ('{"sampling": true, "beam": 2, "max_len_b": 8}', "greedy", []),
    # the mean baseline (SacreEOS has no signature for it), and the style reward on top of CIDEr-D
    "samples_mean_style": ('{"sampling": true, "beam": 2, "max_len_b": 8}', "mean",
                           ["--scst-style-reward-weight", "0.5", "--scst-style-classifier", "CLASSIFIER"]),
}
#: The SacreEOS signature each variant's log states (SacreEOS 1.0.2; its README's example of the standard
#: configuration is STANDARD_wInit+Cider-D[n4,s6.0]+average[nspi5]+<version>).
SIGNATURES = {
    "beams_loo": "SacreEOS signature STANDARD_wInit+Cider-D[n4,s6.0]+average[nspi3]+1.0.2",
    "samples_loo": "SacreEOS signature STANDARD_wInit+Cider-D[n4,s6.0]+average[nspi4]+1.0.2",
    "samples_greedy": "SacreEOS signature STANDARD_wInit+Cider-D[n4,s6.0]+greedy[nspi2]+1.0.2",
    "samples_mean_style": "SacreEOS has no signature for the mean baseline",
}


@pytest.mark.parametrize("variant", sorted(SCST_VARIANTS))
def test_scst_variant_runs_through_fairseq_train_with_its_diagnostics(demo_data, tmp_path, variant):
    scst_args, baseline, extra = SCST_VARIANTS[variant]
    if "CLASSIFIER" in extra:
        run_command([fairseq_command("ofa-sic"), "style-classifier", "--data", demo_data["data"],
                     "--out", tmp_path / "style.npz"])
        extra = [str(tmp_path / "style.npz") if a == "CLASSIFIER" else a for a in extra]
    args = scst_train_args(demo_data, tmp_path / "ckpt", "--max-update", "3", "--no-save", "--freeze-resnet",
                           "--scst", "--scst-args", scst_args, "--scst-baseline", baseline, *extra, "--batch-size", "4",
                           "--disable-validation", "--log-interval", "1")
    result = run_command(args)
    log = result.stdout
    assert SIGNATURES[variant] in result.stdout + result.stderr
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
        if "--scst-style-reward-weight" in extra:  # both parts of the reward: reward = score + 0.5 * style_logp
            assert value(line, "style_logp") <= 0
            assert value(line, "reward") == pytest.approx(value(line, "score") + 0.5 * value(line, "style_logp"), abs=2e-3)
        else:
            assert value(line, "style_logp") is None and value(line, "reward") is None
    # fairseq's update_num counts from 0: update 1 runs with update_num 0, update 3 with 2
    greedy_logged = {update for update, line in per_update.items() if value(line, "greedy_score") is not None}
    assert greedy_logged == ({1, 3} if variant == "beams_loo" else {1, 2, 3} if baseline == "greedy" else set())


def module_modes(model):
    """{module name: training flag} of every module of `model`."""
    return {name: module.training for name, module in model.named_modules()}


def test_generation_runs_in_eval_mode_and_the_criterion_keeps_the_mode_it_is_given(demo_data, monkeypatch):
    """In a train step (train mode) and a valid step (eval mode) alike, the hypotheses and the greedy
    captions (whose generator is built on the first call) are generated with every module in eval
    mode, and the criterion returns the model in the mode it was given."""
    task, model, criterion = build_task_and_criterion(demo_data, "--scst-baseline", "greedy")
    task.load_dataset("train")
    dataset = task.dataset("train")
    sample = task.normalized(dataset.collater([dataset[0], dataset[1]]), model)
    modes_at_generation = []
    generate = OFASequenceGenerator.generate

    def recording_generate(self, models, sample, **kwargs):
        modes_at_generation.append(set(module_modes(models[0]).values()))
        return generate(self, models, sample, **kwargs)

    monkeypatch.setattr(OFASequenceGenerator, "generate", recording_generate)
    for training in (True, False, True):
        model.train(training)
        criterion(model, sample)
        assert set(module_modes(model).values()) == {training}
    assert modes_at_generation == [{False}] * 6  # hypotheses and greedy captions, three calls


def test_validation_leaves_a_model_with_trainable_batchnorm_unchanged(demo_data, tmp_path):
    """fairseq's Trainer.valid_step with the SCST criterion on stage 2 without --freeze-resnet
    (trainable BatchNorm) changes no parameter or buffer (BatchNorm statistics and counters
    included), and every module stays in the eval mode fairseq's validation set."""
    from fairseq.trainer import Trainer

    argv = scst_train_args(demo_data, tmp_path, "--scst", "--scst-args", '{"beam": 2, "max_len_b": 6}')[1:]
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), [str(a) for a in argv]))
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    assert any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    trainer = Trainer(cfg, task, model, task.build_criterion(cfg.criterion))
    task.load_dataset("valid")
    valid = task.dataset("valid")
    sample = valid.collater([valid[i] for i in range(4)])
    model.eval()
    modes = module_modes(model)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    log = trainer.valid_step(sample)
    assert log["nsentences"] == 4 * 2 and "score" in log  # the criterion ran: 2 hypotheses of 4 images
    after = model.state_dict()
    assert after.keys() == before.keys()
    changed = [key for key, value in before.items() if not torch.equal(value, after[key])]
    assert changed == []
    assert module_modes(model) == modes


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


def scst_lprobs_and_generator_scores(demo_data, *extra):
    """(teacher-forced SCST log-probs [N, T], generator positional scores [N, T], non-pad mask, task)
    for the beam-3 hypotheses of two training images, on a model without dropout and frozen BN."""
    task, model, criterion = build_task_and_criterion(demo_data, *extra)
    task.load_dataset("train")
    dataset = task.dataset("train")
    sample = task.normalized(dataset.collater([dataset[0], dataset[1]]), model)  # as task.train_step does
    model.eval()
    with torch.no_grad():
        output = task.scst_generator.generate([model], sample)
    hypotheses = [[hyp["tokens"] for hyp in hyps] for hyps in output]
    expected = torch.zeros(6, max(h["tokens"].numel() for hyps in output for h in hyps))
    for i, hyp in enumerate(h for hyps in output for h in hyps):
        expected[i, : hyp["positional_scores"].numel()] = hyp["positional_scores"]
    with torch.no_grad():
        token_lprobs, target = criterion.teacher_forced_lprobs(model, sample, hypotheses)
    return token_lprobs, expected, target.ne(task.target_dictionary.pad()), task, model


@pytest.mark.parametrize("constraint", [None, "none", "4,150"])
def test_scst_log_probs_are_normalised_over_the_generators_ids(demo_data, constraint):
    """The teacher-forced log-prob of every hypothesis token equals the generator's own score, so both
    are normalised over the same ids (the task's --constraint-range: text ids by default, all with "none")."""
    extra = [] if constraint is None else ["--constraint-range", constraint]
    token_lprobs, expected, non_pad, task, model = scst_lprobs_and_generator_scores(demo_data, *extra)
    assert torch.allclose(token_lprobs[non_pad], expected[non_pad], atol=1e-5)
    allowed = {None: task.text_range, "none": None, "4,150": (4, 150)}[constraint]
    assert task.constraint_range == allowed


@pytest.mark.parametrize("constraint", [None, "none"])
def test_teacher_forced_loss_and_gradients_equal_the_full_log_softmax(demo_data, constraint):
    """The SCST loss from the non-pad positions' logits (log p = logit - logsumexp) equals, with every
    gradient (relative-position tables and ResNet included), the straightforward loss from the fp32
    log-softmax of all positions' logits over the allowed ids."""
    extra = [] if constraint is None else ["--constraint-range", constraint]
    task, model, criterion = build_task_and_criterion(demo_data, *extra)
    task.load_dataset("train")
    dataset = task.dataset("train")
    sample = task.normalized(dataset.collater([dataset[0], dataset[1]]), model)
    model.train()  # as task.train_step does
    eos, pad = task.target_dictionary.eos(), task.target_dictionary.pad()
    hyps = [[torch.tensor([10, 11, eos]), torch.tensor([12, eos]), torch.tensor([10, 12, 13, 14, eos])],
            [torch.tensor([14, eos]), torch.tensor([15, 16, eos]), torch.tensor([eos])]]  # padded rows
    advantages = torch.tensor([0.7, 0.2, 1.1, 0.4, 0.9, 0.3])

    def loss_and_grads(token_lprobs_and_target):
        model.zero_grad(set_to_none=True)
        token_lprobs, target = token_lprobs_and_target()
        loss = -(token_lprobs * advantages[:, None] * target.ne(pad)).sum()
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    def full_log_softmax():
        target = torch.full((6, 5), pad)
        prev = torch.full((6, 5), pad)
        for i, tokens in enumerate(t for image in hyps for t in image):
            target[i, : len(tokens)] = tokens
            prev[i, 0] = task.target_dictionary.bos()
            prev[i, 1 : len(tokens)] = tokens[:-1]
        net_input = {key: sample["net_input"][key] for key in ("src_tokens", "src_lengths", "patch_images", "patch_masks")}
        model.train()
        logits, _ = model(prev_output_tokens=prev, rows_per_source=3, **net_input)
        lprobs = torch.log_softmax(mask_outside_range(logits.float(), task.constraint_range), dim=-1)
        return lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1), target

    loss, grads = loss_and_grads(lambda: criterion.teacher_forced_lprobs(model, sample, hyps))
    expected_loss, expected_grads = loss_and_grads(full_log_softmax)
    assert abs(loss - expected_loss) / abs(expected_loss) < 1e-5
    assert set(grads) == set(expected_grads)
    for name in ("encoder.token_rel_pos_table_list.0.weight", "decoder.token_rel_pos_table_list.0.weight",
                 "encoder.embed_images.conv1.weight", "encoder.embed_tokens.weight"):  # the last: the tied matrix
        assert expected_grads[name].abs().max() > 0, name
    floor = 1e-3 * max(g.abs().max().item() for g in expected_grads.values())  # as in test_fast_path
    errors = {n: (grads[n] - g).abs().max().item() / max(g.abs().max().item(), floor) for n, g in expected_grads.items()}
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-4, (worst, errors[worst])


def test_keep_case_run_df_reward_and_references_agree(demo_data, tmp_path):
    """With --keep-case --keep-punctuation the df (ofa-sic cider-df), the SCST reward text and the
    validation references all keep case and punctuation, as the training targets do."""
    df_path = tmp_path / "train-words-cased.p"
    run_command([fairseq_command("ofa-sic"), "cider-df", "--tsv", demo_data["data"] / "train.tsv", "--out", df_path,
                 "--keep-case", "--keep-punctuation"])
    flags = ("--keep-case", "--keep-punctuation")
    task, model, criterion = build_task_and_criterion(demo_data, "--scst-cider-cached-tokens", str(df_path), *flags)
    from ofa_sic.metrics.document_frequency import load_document_frequency

    df = load_document_frequency(str(df_path))
    assert df["cleaning"] == {"keep_punctuation": True, "keep_case": True}
    unigrams = {gram[0] for gram in df["document_frequency"] if len(gram) == 1}

    task.load_dataset("train")
    dataset = task.dataset("train")
    sample = dataset.collater([dataset[i] for i in range(4)])
    raw = [dataset.row(i)["captions"] for i in range(4)]
    references = criterion.references(sample)
    assert references == [[task.cleaner(c)] for c in raw]
    assert any(any(ch.isupper() for ch in refs[0]) for refs in references)
    assert any(any(ch in ",.?!" for ch in refs[0]) for refs in references)
    for refs in references:  # every word of the reward's reference text is a df entry
        assert set(wrap_for_cider(refs[0], task.cleaner).split()) <= unigrams
    assert wrap_for_cider(" Sadly, only a Circle. ", task.cleaner) == "Sadly, only a Circle. <eos>"
    task.load_dataset("valid")
    valid = task.dataset("valid")
    valid_references = [valid.references(i) for i in range(len(valid))]
    assert valid_references == [[task.cleaner(c) for c in valid.row(i)["captions"].split("&&")] for i in range(len(valid))]
    assert any(ch.isupper() for refs in valid_references for ch in "".join(refs))

    # df built with the default cleaning (prepare-pcap's train-words.p) is refused for a --keep-case run.
    with pytest.raises(ValueError, match=r"train-words.p was built with OFA's default cleaning .* --keep-case"):
        build_task_and_criterion(demo_data, *flags)
    with pytest.raises(ValueError, match="was built with --keep-punctuation --keep-case, but the task cleans"):
        build_task_and_criterion(demo_data, "--scst-cider-cached-tokens", str(df_path))


def test_scst_trains_on_one_example_per_image_with_all_its_captions(tmp_path):
    """With several training captions per image (K rows), SCST's examples are the images, each rewarded
    against all K captions; fairseq-train's epoch and the scheduler's prediction count images, not rows."""
    from ofa_sic.data.demo import make_demo_data
    from ofa_sic.data.pcap import prepare_pcap
    from ofa_sic.data.tsv_reader import IndexedTSV
    from ofa_sic.data.prepared_layout import COLUMNS

    make_demo_data(str(tmp_path / "raw"), seed=1, n_train=12, n_valid=4, n_test=4, train_references=3, quiet=True)
    prepare_pcap(str(tmp_path / "raw" / "personality_captions"), str(tmp_path / "raw" / "yfcc_images"),
                 str(tmp_path / "data"), image_size=96, workers=1, quiet=True)
    data = {"data": tmp_path / "data", "bpe": tmp_path / "raw" / "bpe"}
    scst_task = ["--scst", "--scst-args", '{"beam": 2, "max_len_b": 8}']
    cfg = training_config(data, tmp_path / "ckpt", *scst_task)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    dataset = task.dataset("train")
    rows = IndexedTSV(str(data["data"] / "train.tsv"), num_columns=len(COLUMNS))
    assert len(rows) == 36 and len(dataset) == 12
    captions_of = {}
    for index in range(len(rows)):
        row = dict(zip(COLUMNS, rows[index]))
        captions_of.setdefault((row["image_id"], row["style"]), []).append(row["captions"])
    for index in range(len(dataset)):
        example = dataset.row(index)
        assert example["captions"].split("&&") == captions_of[(example["image_id"], example["style"])]
        references = task.decode(dataset[index]["target"][:-1]).split("&&")
        assert references == [task.cleaner(c) for c in captions_of[(example["image_id"], example["style"])]]

    args = scst_train_args(data, tmp_path / "ckpt", "--max-epoch", "1", "--no-save", *scst_task, "--freeze-resnet",
                           "--batch-size", "4", "--disable-validation")
    log = run_command(args).stdout
    assert "36 rows from" in log and "12 images: SCST rewards each hypothesis against all the training captions" in log
    assert "3 training batches per rank and epoch, 3 updates in 1 epoch(s)" in log, log[-3000:]
    assert re.search(r"epoch 001 \|.*num_updates 3\b", log), log[-3000:]


def test_a_misspelt_generation_setting_is_refused_not_ignored(demo_data, tmp_path):
    """fairseq's generator builder ignores keys it does not read: a typo in --scst-args would silently
    train with the default. The task refuses it, naming the option and the key, before loading data."""
    with pytest.raises(ValueError, match=r"--scst-args has unknown generation settings \['temprature'\]"):
        build_task_and_criterion(demo_data, "--scst-args", '{"beam": 3, "temprature": 0.5}')
    with pytest.raises(ValueError, match="--scst-args is not valid JSON"):
        build_task_and_criterion(demo_data, "--scst-args", "{beam: 3}")
    result = subprocess.run([str(a) for a in train_args(demo_data, tmp_path / "typo", "--eval-cider", "--eval-args",
                                                        '{"beams": 2}', "--max-update", "1")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode != 0 and "--eval-args has unknown generation settings ['beams']" in result.stderr
    assert not (tmp_path / "typo" / "checkpoint_last.pt").exists()


def test_mlm_ratio_with_scst_is_refused_not_ignored(demo_data):
    task, _, _ = build_task_and_criterion(demo_data, "--mlm-ratio", "0.5")
    with pytest.raises(ValueError, match="--mlm-ratio 0.5 with --scst: .* drop --mlm-ratio"):
        task.load_dataset("train")
    task.load_dataset("valid")  # validation and generation of such a run's checkpoints still work


def hand_style_classifier(styles):
    """A style classifier over two words, 'red' (idf 1) and 'circle' (idf 2), with chosen weights:
    style 0 likes red, style 1 likes circle, the others are flat with their own intercepts."""
    from ofa_sic.metrics.style_classifier import StyleClassifier

    coef = np.zeros((len(styles), 2))
    coef[0] = [3.0, 0.0]
    coef[1] = [0.0, 2.0]
    intercept = np.array([0.1, 0.0, -0.5, 0.2, 0.0])
    return StyleClassifier(["red", "circle"], np.array([1.0, 2.0]), coef, intercept, styles,
                           {"ngram_range": [1, 1], "token_pattern": r"(?u)\b\w+\b", "sublinear_tf": True})


def test_style_reward_adds_weighted_log_probability_to_cider_before_the_baseline(demo_data, tmp_path, monkeypatch):
    """reward = CIDEr-D + λ · log p(requested style | hypothesis), computed here by hand from the classifier's
    weights; the advantages (and so the loss) use the leave-one-out baseline of that total."""
    styles = (demo_data["data"] / "styles.txt").read_text().splitlines()
    hand_style_classifier(styles).save(str(tmp_path / "style.npz"))
    task, model, criterion = build_task_and_criterion(demo_data, "--scst-style-reward-weight", "0.5",
                                                      "--scst-style-classifier", str(tmp_path / "style.npz"))
    task.load_dataset("train")
    dataset = task.dataset("train")
    sample = task.normalized(dataset.collater([dataset[0], dataset[1]]), model)
    eos = task.target_dictionary.eos()
    texts = [["red", "red circle", "circle circle"], ["green", "red", "a circle"]]
    hyps = [[torch.tensor(task.codec.encode(" " + t) + [eos]) for t in row] for row in texts]
    assert [[task.decode(h) for h in row] for row in hyps] == texts

    # log p by hand: tf-idf rows (sublinear tf 1 + ln(count), times idf, L2-normalised), scores = row @ coef.T + b
    coef = np.zeros((5, 2))
    coef[0], coef[1] = [3.0, 0.0], [0.0, 2.0]
    intercept = np.array([0.1, 0.0, -0.5, 0.2, 0.0])
    rows = {"red": [1.0, 0.0], "red circle": [1 / np.sqrt(5), 2 / np.sqrt(5)], "circle circle": [0.0, 1.0],
            "green": [0.0, 0.0], "a circle": [0.0, 1.0]}
    requested = [sample["styles"][0]] * 3 + [sample["styles"][1]] * 3
    log_p = []
    for text, style in zip([t for row in texts for t in row], requested):
        scores = coef @ np.array(rows[text]) + intercept
        log_p.append(scores[styles.index(style)] - np.log(np.exp(scores).sum()))
    cider = np.array([0.9, 0.3, 0.6, 0.2, 0.8, 0.5])
    rewards = cider + 0.5 * np.array(log_p)
    advantages = rewards - np.array([(rewards[i // 3 * 3: i // 3 * 3 + 3].sum() - rewards[i]) / 2 for i in range(6)])

    monkeypatch.setattr(criterion, "generate", lambda model, sample, generator, encoder_out=None: hyps)
    monkeypatch.setattr(criterion, "cider_scores", lambda texts, references: cider)
    captured = {}
    real_lprobs = criterion.teacher_forced_lprobs

    def keep_lprobs(*args, **kwargs):
        captured["lprobs"], captured["target"] = real_lprobs(*args, **kwargs)
        return captured["lprobs"], captured["target"]

    monkeypatch.setattr(criterion, "teacher_forced_lprobs", keep_lprobs)
    model.train()
    loss, _, log = criterion(model, sample)
    non_pad = captured["target"].ne(task.target_dictionary.pad())
    expected = -(captured["lprobs"] * torch.tensor(advantages, dtype=torch.float32).unsqueeze(1) * non_pad).sum()
    assert torch.allclose(loss, expected, atol=1e-5)
    assert log["style_logp"] == pytest.approx(sum(log_p), abs=1e-5)
    assert log["reward"] == pytest.approx(rewards.sum(), abs=1e-5)
    assert log["score"] == pytest.approx(cider.sum())


def test_style_reward_options_are_checked(demo_data, tmp_path):
    styles = (demo_data["data"] / "styles.txt").read_text().splitlines()
    with pytest.raises(ValueError, match="go together"):
        build_task_and_criterion(demo_data, "--scst-style-reward-weight", "0.5")
    hand_style_classifier(styles).save(str(tmp_path / "style.npz"))
    with pytest.raises(ValueError, match="go together"):
        build_task_and_criterion(demo_data, "--scst-style-classifier", str(tmp_path / "style.npz"))
    from ofa_sic.metrics.style_classifier import StyleClassifier

    partial = hand_style_classifier(styles)
    StyleClassifier(partial.vocabulary, partial.idf, partial.coef[:4], partial.intercept[:4], styles[:4],
                    partial.settings).save(str(tmp_path / "four.npz"))
    unknown = rf"this run's style vocabulary has styles the classifier .*four.npz was not trained on: '{re.escape(styles[4])}'"
    with pytest.raises(ValueError, match=unknown):
        build_task_and_criterion(demo_data, "--scst-style-reward-weight", "0.5",
                                 "--scst-style-classifier", str(tmp_path / "four.npz"))


def test_sacreeos_signature_of_each_baseline():
    from criterions.scst_signature import sacreeos_signature

    reference = wrap_for_cider("a red circle", CaptionCleaner())
    assert sacreeos_signature("loo", 5, 4, 6.0, reference) == "STANDARD_wInit+Cider-D[n4,s6.0]+average[nspi5]+1.0.2"
    assert sacreeos_signature("greedy", 1, 4, 6.0, reference) == "STANDARD_wInit+Cider-D[n4,s6.0]+greedy[nspi1]+1.0.2"
    assert sacreeos_signature("mean", 5, 4, 6.0, reference) is None
    with pytest.raises(ValueError, match="eos"):  # SacreEOS's own check: the reward text must end with <eos>
        sacreeos_signature("loo", 5, 4, 6.0, "a red circle <eos> now")

"""Stage 1 with the style-token masked-LM auxiliary task: the loss's weighting and sample size through
the criterion and fairseq's Trainer, and the real fairseq-train."""
import re

import pytest
import torch
from fairseq import tasks
from fairseq.trainer import Trainer

from criterions.label_smoothed_cross_entropy import label_smoothed_token_losses
from helpers import run_command, train_args, training_config

MLM_WEIGHT = 0.5
CAPTION_ROWS = [0, 1, 2, 3, 4, 5]
MLM_ROWS = [0, 1, 2, 3]  # the first MLM examples (dataset indices after the caption examples)


def test_fairseq_train_with_mlm_logs_both_loss_parts(demo_data, tmp_path):
    log = run_command(train_args(demo_data, tmp_path / "ckpt", "--max-update", "4", "--no-save",
                                 "--mlm-ratio", "1", "--mlm-weight", "0.5", "--mlm-image", "none",
                                 "--eval-cider", "--eval-args", '{"beam": 2, "max_len_b": 6}',
                                 "--validate-interval-updates", "4")).stdout
    assert "train: 96 caption and 96 masked-LM examples per epoch" in log
    inner = [line for line in log.splitlines() if "train_inner" in line]
    assert inner and all(re.search(r"loss_caption=[0-9.]+", l) and re.search(r"loss_mlm=[0-9.]+", l) for l in inner)
    assert re.search(r"sample_size_mlm=[0-9.]+", inner[-1])
    valid = [line for line in log.splitlines() if "valid on 'valid' subset" in line]
    assert valid and "loss_mlm" not in valid[-1] and "cider" in valid[-1]  # validation stays pure captioning


def mlm_setup(demo_data, tmp_path, *extra):
    """(config, task, model, criterion, batch maker) for stage 1 with --mlm-ratio 1 --mlm-weight 0.5 on ofa_demo
    without dropout and with a frozen ResNet, so that a row's loss does not depend on its batch."""
    cfg = training_config(demo_data, tmp_path, "--mlm-ratio", "1", "--mlm-weight", str(MLM_WEIGHT), "--freeze-resnet",
                          "--max-update", "10", *extra)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    assert model.encoder.is_exact_in_training()
    task.load_dataset("train")
    dataset = task.dataset("train")

    def batch(captions=(), mlm=()):
        """The collated batch of caption rows `captions` and MLM examples `mlm`."""
        return dataset.collater([dataset[i] for i in captions] + [dataset[len(dataset.base) + j] for j in mlm])

    return cfg, task, model, task.build_criterion(cfg.criterion), batch


@pytest.mark.parametrize("sentence_avg", [False, True])
def test_caption_mlm_and_mixed_batches_have_one_sample_size_meaning(demo_data, tmp_path, sentence_avg):
    """A mixed batch's loss is its caption rows' loss plus its MLM rows' loss, and its sample size the sum
    of theirs: target tokens (rows with --sentence-avg) for caption-only, MLM-only and mixed batches."""
    cfg, task, model, criterion, batch = mlm_setup(demo_data, tmp_path, *(["--sentence-avg"] if sentence_avg else []))
    model.eval()
    results = {}
    for name, rows in (("caption", dict(captions=CAPTION_ROWS)), ("mlm", dict(mlm=MLM_ROWS)),
                       ("mixed", dict(captions=CAPTION_ROWS, mlm=MLM_ROWS))):
        sample = task.normalized(batch(**rows), model)
        with torch.no_grad():
            loss, sample_size, log = criterion(model, sample)
        assert sample_size == (sample["nsentences"] if sentence_avg else sample["ntokens"]), name
        results[name] = loss, sample_size, log
    (caption_loss, caption_size, caption_log), (mlm_loss, mlm_size, mlm_log), (loss, size, log) = results.values()
    assert size == caption_size + mlm_size
    assert torch.allclose(loss, caption_loss + mlm_loss, rtol=1e-5)
    assert torch.allclose(mlm_loss, MLM_WEIGHT * mlm_log["loss_mlm"])  # logged parts are unweighted
    assert torch.allclose(log["loss_caption"], caption_log["loss_caption"], rtol=1e-5)
    assert torch.allclose(log["loss_mlm"], mlm_log["loss_mlm"], rtol=1e-5)
    assert (log["sample_size_caption"], log["sample_size_mlm"]) == (caption_log["sample_size_caption"],
                                                                    mlm_log["sample_size_mlm"])
    assert "loss_mlm" not in caption_log and "loss_caption" not in mlm_log


def test_drop_worst_drops_within_each_part(demo_data, tmp_path):
    """With --drop-worst-ratio, a mixed batch keeps the smallest token losses of its caption rows and of
    its MLM rows separately: the same tokens as the caption-only and MLM-only batches keep."""
    cfg, task, model, criterion, batch = mlm_setup(demo_data, tmp_path, "--drop-worst-ratio", "0.25")
    model.eval()
    caption_sample = task.normalized(batch(captions=CAPTION_ROWS), model)
    mlm_sample = task.normalized(batch(mlm=MLM_ROWS), model)
    mixed_sample = task.normalized(batch(captions=CAPTION_ROWS, mlm=MLM_ROWS), model)
    with torch.no_grad():
        _, _, caption_log = criterion(model, caption_sample, update_num=1)
        _, _, mlm_log = criterion(model, mlm_sample, update_num=1)
        loss, sample_size, log = criterion(model, mixed_sample, update_num=1)
        lprobs = model.get_normalized_probs(model(**mixed_sample["net_input"]), log_probs=True)
    kept = {"caption": int(caption_sample["ntokens"] * 0.75), "mlm": int(mlm_sample["ntokens"] * 0.75)}
    assert sample_size == kept["caption"] + kept["mlm"] < mixed_sample["ntokens"]
    assert (log["sample_size_caption"], log["sample_size_mlm"]) == (kept["caption"], kept["mlm"])
    assert torch.allclose(log["loss_caption"], caption_log["loss_caption"], rtol=1e-5)
    assert torch.allclose(log["loss_mlm"], mlm_log["loss_mlm"], rtol=1e-5)
    target, is_mlm = mixed_sample["target"], mixed_sample["is_mlm"]
    expected = 0.0
    for part, rows, weight in (("caption", ~is_mlm, 1.0), ("mlm", is_mlm, MLM_WEIGHT)):
        keep = target.ne(task.target_dictionary.pad()) & rows[:, None]
        token_losses, _ = label_smoothed_token_losses(lprobs[keep], target[keep], 0.1)
        expected += weight * token_losses.sort().values[: kept[part]].sum()
    assert torch.allclose(loss, expected, rtol=1e-5)


def test_update_gradient_does_not_depend_on_how_rows_fall_into_micro_batches(demo_data, tmp_path):
    """fairseq's Trainer: an update of two micro-batches (--update-freq 2), one with MLM rows and one
    without, has the gradient of one batch holding all those rows, and both equal the gradient of
    (sum of caption token losses + mlm_weight * sum of MLM token losses) / all target tokens."""
    cfg, task, model, criterion, batch = mlm_setup(demo_data, tmp_path, "--update-freq", "2")
    trainer = Trainer(cfg, task, model, criterion)
    start = {key: value.clone() for key, value in model.state_dict().items()}

    def update_gradients(samples):
        model.load_state_dict(start)
        trainer.train_step(samples)  # gradients stay in .grad after the step, divided by the summed sample size
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    split = update_gradients([batch(captions=CAPTION_ROWS[:3], mlm=MLM_ROWS), batch(captions=CAPTION_ROWS[3:])])
    whole = update_gradients([batch(captions=CAPTION_ROWS, mlm=MLM_ROWS)])

    model.load_state_dict(start)
    model.zero_grad(set_to_none=True)
    model.train()
    sample = task.normalized(batch(captions=CAPTION_ROWS, mlm=MLM_ROWS), model)
    logits, _ = model(**sample["net_input"])
    lprobs = torch.log_softmax(logits.float(), dim=-1)
    target = sample["target"]
    non_pad = target.ne(task.target_dictionary.pad())
    nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    eps = 0.1
    eps_i = eps / (lprobs.size(-1) - 1)
    token_losses = (1 - eps - eps_i) * nll - eps_i * lprobs.sum(-1)  # [B, T]
    caption_sum = token_losses[non_pad & ~sample["is_mlm"][:, None]].sum()
    mlm_sum = token_losses[non_pad & sample["is_mlm"][:, None]].sum()
    ((caption_sum + MLM_WEIGHT * mlm_sum) / non_pad.sum()).backward()
    by_hand = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    assert split.keys() == whole.keys() == by_hand.keys()
    scale = max(g.abs().max().item() for g in by_hand.values())
    for name, expected in by_hand.items():
        assert torch.allclose(whole[name], expected, rtol=1e-4, atol=1e-5 * scale), name
        assert torch.allclose(split[name], expected, rtol=1e-4, atol=1e-5 * scale), name


def test_loss_accuracy_and_gradients_equal_the_full_vocabulary_log_softmax(demo_data, tmp_path):
    """The criterion projects only the counted target positions onto the vocabulary. Its loss, nll,
    accuracy and every gradient equal those of log_softmax over all [B, T, V] logits with the padding
    and the first --ignore-prefix-size positions removed afterwards (a mixed caption/MLM batch)."""
    cfg, task, model, criterion, batch = mlm_setup(demo_data, tmp_path, "--ignore-prefix-size", "2")
    model.train()
    sample = task.normalized(batch(captions=CAPTION_ROWS, mlm=MLM_ROWS), model)
    model.zero_grad(set_to_none=True)
    loss, sample_size, log = criterion(model, sample)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    model.zero_grad(set_to_none=True)
    logits, _ = model(**sample["net_input"])
    lprobs = torch.log_softmax(logits.float(), dim=-1)[:, 2:, :]  # [B, T - 2, V]
    target = sample["target"][:, 2:]
    counted = target.ne(task.target_dictionary.pad())
    is_mlm = sample["is_mlm"][:, None] & counted
    is_caption = ~sample["is_mlm"][:, None] & counted
    token_losses, token_nll = label_smoothed_token_losses(lprobs, target, 0.1)  # [B, T - 2]
    expected = token_losses[is_caption].sum() + MLM_WEIGHT * token_losses[is_mlm].sum()
    expected_nll = token_nll[is_caption].sum() + MLM_WEIGHT * token_nll[is_mlm].sum()
    expected.backward()
    by_hand = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    assert sample_size == int(counted.sum()) < sample["ntokens"]
    assert torch.allclose(loss, expected, rtol=1e-5) and torch.allclose(log["nll_loss"], expected_nll, rtol=1e-5)
    assert log["total"] == int(counted.sum())
    assert log["n_correct"] == int(lprobs.argmax(-1).eq(target)[counted].sum())
    assert grads.keys() == by_hand.keys()
    scale = max(g.abs().max().item() for g in by_hand.values())
    for name, expected_grad in by_hand.items():
        assert torch.allclose(grads[name], expected_grad, rtol=1e-4, atol=1e-5 * scale), name

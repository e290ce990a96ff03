"""`--lr-scheduler ofa_polynomial_decay` knows the length of the run from the configuration alone: the
epoch it predicts is the one fairseq really iterates (fairseq's Trainer and the real fairseq-train),
also when a run resumes; what it cannot predict is refused with a clear error before training."""
import re
import subprocess

import pytest
from fairseq import tasks
from fairseq.data import iterators
from fairseq.trainer import Trainer

from helpers import run_command, train_args, training_config
from ofa_sic.tasks.epoch_size import batches_per_rank, training_examples


def build_trainer(cfg) -> Trainer:
    """fairseq's Trainer for `cfg`, built as fairseq_cli.train builds it."""
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    return Trainer(cfg, task, model, task.build_criterion(cfg.criterion))


def updates_per_epoch(trainer: Trainer, cfg, max_epoch: int):
    """Updates of each epoch as fairseq_cli.train runs them: the trainer's train iterator, grouped by the
    epoch's --update-freq, iterated to the end (every batch collated)."""
    counts = []
    epoch_itr = trainer.get_train_iterator(epoch=1)
    for epoch in range(1, max_epoch + 1):
        update_freq = cfg.optimization.update_freq[min(epoch, len(cfg.optimization.update_freq)) - 1]
        counts.append(sum(1 for _ in iterators.GroupedIterator(epoch_itr.next_epoch_itr(shuffle=True), update_freq)))
        epoch_itr = trainer.get_train_iterator(epoch_itr.next_epoch_idx, load_dataset=False)
    return counts


@pytest.mark.parametrize("batch_size, update_freq, mlm_ratio, expected", [
    ("10", "2", "0", [5, 5]),  # 96 rows: 10 batches, the last of 6 rows
    ("16", "1,2", "0.5", [9, 5]),  # 96 + 48 MLM examples; --update-freq per epoch
    ("7", "3", "1", [10, 10]),  # 96 + 96 MLM examples: 28 batches, the last group of one
])
def test_the_schedule_counts_the_updates_fairseq_runs(demo_data, tmp_path, batch_size, update_freq, mlm_ratio, expected):
    cfg = training_config(demo_data, tmp_path, "--batch-size", batch_size, "--update-freq", update_freq,
                          "--mlm-ratio", mlm_ratio, "--max-epoch", "2", "--warmup-ratio", "0.25")
    trainer = build_trainer(cfg)
    scheduler = trainer.lr_scheduler  # built before any data is loaded, as when a run resumes
    assert trainer.task.datasets == {}
    assert updates_per_epoch(trainer, cfg, max_epoch=2) == expected
    total = sum(expected)
    assert scheduler.total_updates == total and scheduler.warmup == int(total * 0.25)
    peak = cfg.optimization.lr[0]
    assert trainer.get_lr() == 0.0  # the first update is trained with lr_at(0), as fairseq's own warmup
    assert scheduler.step_update(scheduler.warmup) == pytest.approx(peak)
    assert scheduler.step_update((scheduler.warmup + total) // 2) == pytest.approx(
        peak * (1 - ((scheduler.warmup + total) // 2 - scheduler.warmup) / (total - scheduler.warmup)))
    assert scheduler.step_update(total) == 0.0


def test_predicted_batches_per_rank_hold_on_two_ranks(demo_data, tmp_path):
    """11 batches of 9 over two ranks: 6 each, the short rank's last batch empty (fairseq's padding)."""
    cfg = training_config(demo_data, tmp_path, "--batch-size", "9")
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    dataset = task.dataset("train")
    predicted = batches_per_rank(training_examples(cfg.task), 9, None, 2)
    assert predicted == 6
    for rank in range(2):  # the task checks the prediction itself each time it builds the iterator
        iterator = task.get_batch_iterator(dataset, max_sentences=9, num_shards=2, shard_id=rank, epoch=1)
        assert sum(1 for _ in iterator.next_epoch_itr(shuffle=True)) == predicted


def test_max_update_and_total_num_update_bound_the_schedule(demo_data, tmp_path):
    by_epochs = build_trainer(training_config(demo_data, tmp_path, "--max-epoch", "2", "--max-update", "7"))
    assert by_epochs.lr_scheduler.total_updates == 7  # 2 epochs of 6 updates would be 12
    given = build_trainer(training_config(demo_data, tmp_path, "--max-tokens", "300", "--max-epoch", "1",
                                          "--total-num-update", "5"))
    assert given.lr_scheduler.total_updates == 5


def test_an_epoch_size_it_cannot_predict_is_refused_before_training(demo_data, tmp_path):
    result = subprocess.run([str(a) for a in train_args(demo_data, tmp_path / "ckpt", "--max-tokens", "300", "--max-epoch", "1")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert ("ofa_polynomial_decay cannot count the updates of --max-epoch 1 before training: --max-tokens 300 cuts "
            "batches by tokens. Set --total-num-update N") in result.stderr, result.stderr[-3000:]
    assert "num_updates" not in result.stdout
    with pytest.raises(ValueError, match="needs the length of the run: set --max-epoch, --max-update or --total-num-update"):
        build_trainer(training_config(demo_data, tmp_path)).lr_scheduler


def test_examples_fairseq_leaves_out_stop_the_run(demo_data, tmp_path):
    """Targets of --max-tgt-length 300 exceed ofa_demo's 256 target positions: fairseq would skip every
    example (with a warning) and train an empty epoch; the task refuses instead."""
    cfg = training_config(demo_data, tmp_path, "--max-tgt-length", "300", "--max-epoch", "1")
    with pytest.raises(RuntimeError, match=r"the training iterator has 0 batches per rank, but 96 training examples "
                                           r"of .*train.tsv in batches of 16 on 1 rank\(s\) make 6: fairseq left out"):
        build_trainer(cfg).get_train_iterator(epoch=1)


def test_fairseq_train_runs_and_resumes_the_predicted_epoch(demo_data, tmp_path):
    """The real fairseq-train: its epoch is as long as predicted (15 batches of 10 = 96 rows + 48 MLM,
    grouped by 2: 8 updates), and a resumed run derives the same before it loads any data."""
    options = ("--batch-size", "10", "--update-freq", "2", "--mlm-ratio", "0.5", "--max-epoch", "2",
               "--disable-validation")
    prediction = "ofa_polynomial_decay: 15 training batches per rank and epoch, 16 updates in 2 epoch(s)"
    first = run_command(train_args(demo_data, tmp_path / "ckpt", *options, "--max-update", "1")).stdout
    assert prediction in first and "1 updates in total" in first
    assert re.search(r"epoch 001:\s+1 / 8 ", first), first[-3000:]

    resumed = run_command(train_args(demo_data, tmp_path / "ckpt", *options, "--max-update", "3")).stdout
    assert "Loaded checkpoint" in resumed and "3 updates in total" in resumed
    assert resumed.index(prediction) < resumed.index("loading train data for epoch 1")
    # lr after update k of 3 (no warmup: int(3 * 0.1) = 0): 1e-3 * (1 - k / 3)
    assert re.search(r"epoch 001:\s+2 / 8 .*num_updates=2, lr=0.000333333,", resumed), resumed[-3000:]
    assert re.search(r"epoch 001:\s+3 / 8 .*num_updates=3, lr=0,", resumed)

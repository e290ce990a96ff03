"""The life of a training run in its --save-dir, through the real run script and fairseq-train: a rerun of a
finished run changes nothing, a second run on a folder in use is refused before it touches it, a lock left by a
run that is gone is taken over, and a score that only ties the best does not replace checkpoint_best.pt."""
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import fairseq.checkpoint_utils as fairseq_checkpoint_utils
import pytest
import torch
from fairseq import tasks
from fairseq.trainer import Trainer

from helpers import run_command, train_script_command, train_script_env, training_config

LOCK_FILE = "train.lock"


def file_hashes(folder: Path) -> dict:
    """{file name: sha256 of its bytes} of every file in `folder`."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def run_train_script(env: dict, max_update: int) -> subprocess.CompletedProcess:
    """run_scripts/train_caption.sh with `env`, whatever its exit status."""
    return subprocess.run([str(a) for a in train_script_command(max_update)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONWARNINGS="ignore", **env), timeout=600)


def copy_of_finished_run(stage1_checkpoint: Path, tmp_path: Path) -> Path:
    """A copy of the save dir of the session's finished `train_caption.sh --max-update 2` run."""
    save_dir = tmp_path / "run"
    shutil.copytree(stage1_checkpoint.parent, save_dir)
    return save_dir


def num_updates(checkpoint: Path) -> int:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["optimizer_history"][-1]["num_updates"]


def test_rerun_of_a_run_finished_by_max_update_changes_nothing(demo_data, stage1_checkpoint, tmp_path):
    save_dir = copy_of_finished_run(stage1_checkpoint, tmp_path)
    before = file_hashes(save_dir)
    assert "checkpoint_best.pt" in before and "checkpoint_last.pt" in before and LOCK_FILE not in before
    result = run_command(train_script_command(2), env=train_script_env(demo_data, save_dir))
    log = result.stdout + result.stderr
    assert f"The run in {save_dir} is complete: it stopped at update 2, in epoch 1 (--max-update 2)" in log, log[-3000:]
    assert "Saved checkpoint" not in log and "begin validation" not in log
    assert file_hashes(save_dir) == before


def test_rerun_of_a_run_finished_by_max_epoch_changes_nothing(demo_data, tmp_path):
    """96 demo rows in batches of 48: an epoch of 2 updates, validated and saved at its end."""
    save_dir = tmp_path / "run"
    env = dict(train_script_env(demo_data, save_dir), MAX_EPOCH="1", BATCH_SIZE="48", SAVE_INTERVAL_UPDATES="0")
    first = run_command(train_script_command(100), env=env)
    assert "Saved checkpoint" in first.stdout and num_updates(save_dir / "checkpoint_last.pt") == 2
    before = file_hashes(save_dir)
    result = run_command(train_script_command(100), env=env)
    log = result.stdout + result.stderr
    assert f"The run in {save_dir} is complete: it stopped at update 2, after epoch 1 (--max-epoch 1)" in log, log[-3000:]
    assert "Saved checkpoint" not in log and "begin validation" not in log
    assert file_hashes(save_dir) == before


def wait_until_locked(lock_file: Path, process: subprocess.Popen) -> None:
    """Wait until `process` has recorded itself in `lock_file` (it then holds the lock)."""
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        try:
            if json.loads(lock_file.read_text()).get("pid") == process.pid:
                return
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.05)
    pytest.fail(f"{lock_file} never named pid {process.pid} (exit status {process.poll()})")


def test_a_second_run_on_a_save_dir_in_use_is_refused(demo_data, tmp_path):
    save_dir = tmp_path / "run"
    env = train_script_env(demo_data, save_dir)
    first_log = tmp_path / "first.log"
    with open(first_log, "w") as out:
        # train_caption.sh execs fairseq-train: the script's pid is the training process
        first = subprocess.Popen([str(a) for a in train_script_command(2)], stdout=out, stderr=subprocess.STDOUT,
                                 env=dict(os.environ, PYTHONWARNINGS="ignore", **env))
    try:
        wait_until_locked(save_dir / LOCK_FILE, first)
        os.kill(first.pid, signal.SIGSTOP)  # holds the lock, changes nothing while the second run tries
        before = file_hashes(save_dir)
        second = run_train_script(env, 2)
        after = file_hashes(save_dir)
        os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=600) == 0, first_log.read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert second.returncode != 0
    error = second.stderr.strip().splitlines()[-1]
    assert error.startswith(f"ofa_sic.crash_safe_training.SaveDirBusyError: {save_dir} is in use by another training run "
                            f"(pid {first.pid} on host {socket.gethostname()}, started "), error
    assert "num. shared model params" not in second.stdout  # refused before the model was built
    assert after == before
    assert num_updates(save_dir / "checkpoint_last.pt") == 2
    assert not (save_dir / LOCK_FILE).exists()  # released when the first run ended


def test_a_lock_left_by_a_run_that_is_gone_is_taken_over(demo_data, stage1_checkpoint, tmp_path):
    save_dir = copy_of_finished_run(stage1_checkpoint, tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    record = {"pid": gone.pid, "host": socket.gethostname(), "started": "2024-01-02 03:04:05"}
    (save_dir / LOCK_FILE).write_text(json.dumps(record))
    result = run_command(train_script_command(2), env=train_script_env(demo_data, save_dir))
    log = result.stdout + result.stderr
    assert (f"took over {save_dir / LOCK_FILE}: the run that left it is no longer running (pid {gone.pid} on host "
            f"{socket.gethostname()}, started 2024-01-02 03:04:05)") in log, log[-3000:]
    assert f"The run in {save_dir} is complete" in log
    assert not (save_dir / LOCK_FILE).exists()


@pytest.mark.parametrize("maximize, scores", [(True, (0.5, 0.5, 0.75)), (False, (0.5, 0.5, 0.25))])
def test_a_score_that_ties_the_best_does_not_replace_checkpoint_best(demo_data, tmp_path, caplog, maximize, scores):
    """fairseq's save path (save_checkpoint, the trainer's writer, the copies) at updates 1, 2, 3 with a first
    score, a tie and a better one."""
    caplog.set_level(logging.INFO, logger="ofa_sic.crash_safe_training")
    save_dir = tmp_path / "ckpt"
    options = ["--best-checkpoint-metric", "cider", "--keep-best-checkpoints", "1", "--save-interval-updates", "1",
               "--max-update", "3"]
    cfg = training_config(demo_data, save_dir, *options, *(["--maximize-best-checkpoint-metric"] if maximize else []))
    task = tasks.setup_task(cfg.task)
    trainer = Trainer(cfg, task, task.build_model(cfg.model), task.build_criterion(cfg.criterion))
    epoch_itr = trainer.get_train_iterator(epoch=1)
    epoch_itr.next_epoch_itr(shuffle=False)  # inside epoch 1, as a save during training
    save_checkpoint = fairseq_checkpoint_utils.save_checkpoint
    best_file = save_dir / "checkpoint_best.pt"
    kept = {}
    try:
        for updates, score in enumerate(scores, start=1):
            trainer.set_num_updates(updates)
            save_checkpoint(cfg.checkpoint, trainer, epoch_itr, score)
            assert num_updates(save_dir / "checkpoint_last.pt") == updates
            if updates == 1:
                kept = {name: digest for name, digest in file_hashes(save_dir).items() if "best" in name}
            if updates == 2:  # the tie
                assert {name: file_hashes(save_dir)[name] for name in kept} == kept
                assert num_updates(best_file) == 1 and save_checkpoint.best == scores[0]
                assert f"cider {scores[1]} only ties the best so far: checkpoint_best.pt is kept" in caplog.text
        assert num_updates(best_file) == 3 and save_checkpoint.best == scores[2]
        assert torch.load(best_file, map_location="cpu", weights_only=True)["extra_state"]["best"] == scores[2]
    finally:
        if hasattr(save_checkpoint, "best"):
            del save_checkpoint.best  # fairseq keeps the best score on the function: leave none for other tests

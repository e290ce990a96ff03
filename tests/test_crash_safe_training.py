"""Crash-safe training through the real run script and fairseq-train: SIGKILL mid-run and during a save,
rerun the same command, and it ends at the planned number of updates with the best checkpoint intact."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import REPO_ROOT, train_script_command, train_script_env

MAX_UPDATE = 6  # 96 demo rows / batch 16: one epoch; validated and saved every 2 updates
VALID_SCORE = re.compile(r"valid on 'valid' subset .*?\| cider ([0-9.]+)")


def run_script(env, max_update, check=True):
    result = subprocess.run([str(a) for a in train_script_command(max_update)], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONWARNINGS="ignore", **env), timeout=600)
    if check and result.returncode != 0:
        pytest.fail(f"train_caption.sh failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def run_until_file_appears(env, max_update, path: Path) -> str:
    """Start the script and SIGKILL it the moment `path` exists (fairseq then copies it to best/last)."""
    log = path.parent.parent / f"killed-{path.name}.log"
    with open(log, "w") as out:
        process = subprocess.Popen([str(a) for a in train_script_command(max_update)], stdout=out, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, **env), start_new_session=True)
        deadline = time.time() + 600
        while not path.exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    text = log.read_text()
    assert path.exists(), f"{path} never appeared:\n{text[-3000:]}"
    return text


def num_updates(checkpoint: Path) -> int:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return state["optimizer_history"][-1]["num_updates"]


def test_killed_runs_resume_to_the_planned_updates_and_keep_the_best(demo_data, stage1_checkpoint, tmp_path):
    save_dir = tmp_path / "ft"
    env = train_script_env(demo_data, save_dir, restore_file=stage1_checkpoint)
    logs = [run_until_file_appears(env, MAX_UPDATE, save_dir / "checkpoint_1_4.pt")]  # killed right after update 4 saved

    killer = tmp_path / "fairseq-train-killed-in-second-save"
    killer.write_text(f'#!/bin/sh\nexec {sys.executable} {REPO_ROOT / "tests" / "kill_during_save.py"} checkpoint_last.pt 1 "$@"\n')
    killer.chmod(0o755)
    killed = run_script(train_script_env(demo_data, save_dir, stage1_checkpoint, fairseq_train=killer), MAX_UPDATE, check=False)
    logs.append(killed.stdout + killed.stderr)
    assert killed.returncode == -signal.SIGKILL or killed.returncode == 128 + signal.SIGKILL, logs[-1][-3000:]
    assert "Loaded checkpoint" in logs[-1] and str(save_dir / "checkpoint_last.pt") in logs[-1], logs[-1][-3000:]
    assert any(name.endswith(".tmp") for name in os.listdir(save_dir))  # the write the kill interrupted

    final = run_script(env, MAX_UPDATE)
    logs.append(final.stdout + final.stderr)
    log = logs[-1]
    assert f"Loaded checkpoint {save_dir / 'checkpoint_last.pt'}" in log, log[-3000:]
    assert "removed" in log and not any(name.endswith(".tmp") for name in os.listdir(save_dir))
    assert num_updates(save_dir / "checkpoint_last.pt") == MAX_UPDATE
    assert f"num_updates {MAX_UPDATE}" in log

    scores = [float(s) for text in logs for s in VALID_SCORE.findall(text)]
    assert len(scores) >= 4, scores
    best = torch.load(save_dir / "checkpoint_best.pt", map_location="cpu", weights_only=True)
    assert best["extra_state"]["val_loss"] == pytest.approx(max(scores), abs=1e-3), scores


def test_rerun_from_pretrained_never_replaces_a_better_best(demo_data, stage1_checkpoint, tmp_path):
    """Without checkpoint_last.pt the run starts from RESTORE_FILE; an existing, better best stays."""
    save_dir = tmp_path / "ft"
    save_dir.mkdir()
    best = torch.load(stage1_checkpoint, map_location="cpu", weights_only=True)
    torch.save(dict(best, extra_state=dict(best["extra_state"], val_loss=99.0)), save_dir / "checkpoint_best.pt")
    result = run_script(train_script_env(demo_data, save_dir, restore_file=stage1_checkpoint), 2)
    log = result.stdout + result.stderr
    assert f"loading pretrained model from {stage1_checkpoint}" in log, log[-3000:]
    assert "holds cider 99.0: only a better model replaces it" in log, log[-3000:]
    assert VALID_SCORE.search(log) and (save_dir / "checkpoint_last.pt").exists()
    kept = torch.load(save_dir / "checkpoint_best.pt", map_location="cpu", weights_only=True)
    assert kept["extra_state"]["val_loss"] == 99.0


def test_empty_checkpoint_last_is_named_with_the_intact_one(demo_data, stage1_checkpoint, tmp_path):
    """What a kill during fairseq's own (non-atomic) copy left: checkpoint_last.pt at 0 bytes."""
    save_dir = tmp_path / "ft"
    save_dir.mkdir()
    intact = save_dir / "checkpoint_best.pt"
    intact.write_bytes(stage1_checkpoint.read_bytes())
    (save_dir / "checkpoint_last.pt").write_bytes(b"")
    result = run_script(train_script_env(demo_data, save_dir, restore_file=stage1_checkpoint), 4, check=False)
    assert result.returncode != 0
    text = "\n".join(result.stderr.strip().splitlines()[-4:])
    assert f"UnusableCheckpointError: {save_dir / 'checkpoint_last.pt'} is empty (0 bytes)" in text, text
    assert f"cp {intact} {save_dir / 'checkpoint_last.pt'}" in text, text
    assert "num_updates" not in result.stdout


def test_truncated_and_foreign_files_are_told_apart_from_checkpoints(stage1_checkpoint, tmp_path):
    from ofa_sic.crash_safe_training import checkpoint_problem

    data = stage1_checkpoint.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) - 100])
    (tmp_path / "notes.pt").write_bytes(b"notes")
    assert checkpoint_problem(str(stage1_checkpoint)) is None
    assert "is truncated" in checkpoint_problem(str(tmp_path / "truncated.pt"))
    assert "not a torch checkpoint" in checkpoint_problem(str(tmp_path / "notes.pt"))


def test_scst_script_rerun_continues_from_its_last_checkpoint(demo_data, stage1_checkpoint, tmp_path):
    save_dir = tmp_path / "scst"
    generation = '{"beam":2,"max_len_b":8,"no_repeat_ngram_size":3}'
    env = dict(os.environ, PYTHONWARNINGS="ignore", DATA=str(demo_data["data"]), BPE_DIR=str(demo_data["bpe"]),
               RESTORE_FILE=str(stage1_checkpoint), SAVE_DIR=str(save_dir), BATCH_SIZE="2", UPDATE_FREQ="1",
               NUM_WORKERS="0", SCST_ARGS=generation, EVAL_ARGS=generation,
               PATH=train_script_env(demo_data, save_dir)["PATH"])
    script = ["bash", str(REPO_ROOT / "run_scripts" / "scst.sh"), "--seed", "3"]
    for max_update in (2, 3):
        result = subprocess.run(script, capture_output=True, text=True, timeout=600, env=dict(env, MAX_UPDATE=str(max_update)))
        assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    log = result.stdout + result.stderr
    assert f"Loaded checkpoint {save_dir / 'checkpoint_last.pt'} (epoch 1 @ 2 updates)" in log, log[-3000:]
    assert num_updates(save_dir / "checkpoint_last.pt") == 3


def test_atomic_write_keeps_the_old_content_when_the_write_fails(tmp_path):
    from ofa_sic.atomic_files import atomic_write, is_temporary_name

    path = tmp_path / "metrics.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(str(path)) as handle:
            handle.write("half of the new")
            assert [name for name in os.listdir(tmp_path) if is_temporary_name(name)]
            raise RuntimeError("killed")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["metrics.json"]
    with atomic_write(str(path)) as handle:
        handle.write("new")
    assert path.read_text() == "new"

"""Crash-safe fairseq-train runs: the one place where ofa_sic changes how fairseq saves and resumes a run.
(How a checkpoint file is unpickled, under torch's weights_only loader, is `ofa_sic.checkpoints`, which
replaces `load_checkpoint_to_cpu`.)

fairseq writes the first checkpoint file of a save through a temporary name but without fsync, and
copies it to the others (`checkpoint_best.pt`, `checkpoint_last.pt`, ...) with a plain copy, so a kill
during a save can leave `checkpoint_last.pt` empty; the next run then dies in `torch.load` naming no
file. Importing the plugin replaces, in `fairseq.checkpoint_utils` only:

1. `torch_persistent_save`: every checkpoint is written with `ofa_sic.atomic_files.atomic_write`
   (temporary file beside it, fsync, rename);
2. the `PathManager` that `save_checkpoint` copies with: its `copy` is `atomic_copy`, everything else
   is fairseq's;
3. `verify_checkpoint_directory` (called by fairseq-train's master process, rank 0, before the task is
   set up), wrapped: first `--save-dir` is locked for this run (`fcntl.flock` on `train.lock` there,
   held until the process ends; the file records pid, host and start time). A second run on the same
   folder stops with `SaveDirBusyError` naming the running one; a lock file left by a run that is gone
   is taken over, with a log line;
4. `load_checkpoint` (called once when fairseq-train starts), wrapped: before loading, the lock holder
   deletes leftovers of killed writes in `--save-dir`, and every checkpoint there is checked for being
   empty or truncated (`UnusableCheckpointError` names the file and the newest intact checkpoint).
   After loading, a run that has already reached its end (`--max-update`, `--max-epoch`,
   `--stop-min-lr`, as fairseq-train checks them) logs that it is complete and exits with status 0:
   nothing is trained or saved (fairseq would train one more update before checking `--max-update`).
   Otherwise the score stored in an existing `checkpoint_best.pt` counts as the best so far (also when
   the run starts again from the pretrained file);
5. `save_checkpoint`, wrapped: a validation score equal to the best so far is saved like a save
   without validation, so only a better model replaces `checkpoint_best.pt` (fairseq replaces it on
   ties too).

Remote (`scheme://`) paths and `--write-checkpoints-asynchronously` keep fairseq's own code.
"""
import atexit
import fcntl
import json
import logging
import os
import re
import socket
import sys
import time
import zipfile
from typing import List, Optional

import fairseq.checkpoint_utils as fairseq_checkpoint_utils
import torch
from fairseq.file_io import PathManager as FairseqPathManager

from ofa_sic.atomic_files import atomic_copy, atomic_write, is_temporary_name
from ofa_sic.checkpoints import load_without_tensors

logger = logging.getLogger(__name__)

_CHECKPOINT_NAME = re.compile(r"^checkpoint.*\.pt$")
LOCK_FILE_NAME = "train.lock"


class UnusableCheckpointError(RuntimeError):
    """A checkpoint in --save-dir that is empty or truncated (a save that was killed)."""


class SaveDirBusyError(RuntimeError):
    """Another fairseq-train run is using this --save-dir."""


def _is_remote(path: str) -> bool:
    return "://" in str(path)


# ---- 1. and 2.: atomic writes ------------------------------------------------------------------

_fairseq_torch_persistent_save = fairseq_checkpoint_utils.torch_persistent_save


def torch_persistent_save(obj, filename, async_write: bool = False):
    """`torch.save(obj)` to `filename` atomically (fairseq's own writer for remote or asynchronous saves)."""
    if async_write or _is_remote(filename):
        return _fairseq_torch_persistent_save(obj, filename, async_write)
    with atomic_write(filename, binary=True) as handle:
        torch.save(obj, handle)


class AtomicCopyPathManager:
    """fairseq's PathManager with an atomic `copy` for local files; every other method is fairseq's."""

    def __getattr__(self, name):
        return getattr(FairseqPathManager, name)

    @staticmethod
    def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if _is_remote(src_path) or _is_remote(dst_path):
            return FairseqPathManager.copy(src_path, dst_path, overwrite)
        if os.path.exists(dst_path) and not overwrite:
            return False
        atomic_copy(src_path, dst_path)
        return True


# ---- 3.: one run per save dir -------------------------------------------------------------------

#: The --save-dir locks this process holds: the folder's real path -> the open, locked lock file.
_held_locks = {}


def _describe_run(record: dict) -> str:
    """The run a lock file records, in words: its pid, host and start time."""
    if not record:
        return "its pid, host and start time are not recorded"
    return f"pid {record.get('pid')} on host {record.get('host')}, started {record.get('started')}"


def _read_record(handle) -> dict:
    """The run recorded in the open lock file ({} when it is empty or unreadable)."""
    handle.seek(0)
    try:
        record = json.loads(handle.read())
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _still_named(handle, path: str) -> bool:
    """Whether `path` is still the file open as `handle` (a run that ends removes its lock file)."""
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def _open_locked(path: str):
    """The lock file `path` (created when missing), open and locked; SaveDirBusyError when another process holds it."""
    while True:
        handle = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            record = _read_record(handle)
            handle.close()
            folder = os.path.dirname(path)
            raise SaveDirBusyError(
                f"{folder} is in use by another training run ({_describe_run(record)}; lock file {path}). "
                "Wait for that run to end or stop it, or give this run another --save-dir.") from None
        if _still_named(handle, path):
            return handle
        handle.close()  # locked just after its run ended and removed it: lock the new file


def _release_lock(path: str, handle) -> None:
    """Remove the lock file while still holding it (so no run can be locking it), then release it."""
    if _still_named(handle, path):
        os.remove(path)
    handle.close()


def holds_save_dir_lock(save_dir: str) -> bool:
    return os.path.realpath(save_dir) in _held_locks


def lock_save_dir(save_dir: str) -> None:
    """Lock `save_dir` for this run until the process ends; SaveDirBusyError naming the run that holds it."""
    if holds_save_dir_lock(save_dir):
        return
    os.makedirs(save_dir, exist_ok=True)
    path = os.path.join(save_dir, LOCK_FILE_NAME)
    handle = _open_locked(path)
    if os.fstat(handle.fileno()).st_size > 0:
        logger.warning("took over %s: the run that left it is no longer running (%s)", path, _describe_run(_read_record(handle)))
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(record) + "\n")
    handle.flush()
    os.fsync(handle.fileno())
    _held_locks[os.path.realpath(save_dir)] = handle
    atexit.register(_release_lock, path, handle)
    logger.info("%s locked for this run (pid %d): another run on this --save-dir refuses to start", path, os.getpid())


_fairseq_verify_checkpoint_directory = fairseq_checkpoint_utils.verify_checkpoint_directory


def verify_checkpoint_directory(save_dir: str) -> None:
    """Lock `save_dir` for this run, then fairseq's check that it can be written (fairseq-train's master process
    calls this once, before the task is set up)."""
    if not _is_remote(save_dir):
        lock_save_dir(save_dir)
    _fairseq_verify_checkpoint_directory(save_dir)


# ---- 4.: checks when a run starts ---------------------------------------------------------------


def checkpoint_problem(path: str) -> Optional[str]:
    """Why the checkpoint file at `path` cannot be loaded ("is empty", "is truncated ..."), or None.

    Cheap: torch's zip format keeps its directory at the end of the file, so a truncated file has none.
    Files in torch's legacy (non-zip) format are not checked.
    """
    size = os.path.getsize(path)
    if size == 0:
        return "is empty (0 bytes)"
    with open(path, "rb") as handle:
        head = handle.read(2)
    if head == b"PK":
        try:
            zipfile.ZipFile(path).close()
        except (zipfile.BadZipFile, OSError):
            return f"is truncated ({size} bytes, the end of the file is missing)"
        return None
    if head[:1] == b"\x80":  # a pickle: torch's legacy format
        return None
    return f"is not a torch checkpoint ({size} bytes)"


def _checkpoints_in(save_dir: str) -> List[str]:
    names = sorted(name for name in os.listdir(save_dir) if _CHECKPOINT_NAME.match(name))
    return [os.path.join(save_dir, name) for name in names]


def remove_leftover_temporary_files(save_dir: str) -> None:
    """Delete what killed checkpoint writes left in `save_dir` (ours and fairseq's `*.pt.tmp`); only the run
    holding the lock of `save_dir` may call this."""
    for name in os.listdir(save_dir):
        ours = is_temporary_name(name) and name.startswith(".checkpoint")
        if ours or (name.startswith("checkpoint") and name.endswith(".pt.tmp")):
            path = os.path.join(save_dir, name)
            os.remove(path)
            logger.info("removed %s, left by a checkpoint write that did not finish", path)


def check_checkpoints(save_dir: str) -> None:
    """Raise UnusableCheckpointError naming every broken checkpoint in `save_dir` and the newest intact one."""
    broken, intact = [], []
    for path in _checkpoints_in(save_dir):
        problem = checkpoint_problem(path)
        (broken if problem else intact).append((path, problem))
    if not broken:
        return
    lines = [f"{path} {problem}: a run was probably killed while saving it." for path, problem in broken]
    if intact:
        newest = max((path for path, _ in intact), key=os.path.getmtime)
        saved = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(newest)))
        lines.append(f"The newest intact checkpoint is {newest} (saved {saved}).")
        last = [path for path, _ in broken if os.path.basename(path).startswith("checkpoint_last")]
        if last:
            lines.append(f"To resume from it: cp {newest} {last[0]}")
    else:
        lines.append(f"No intact checkpoint is left in {save_dir}.")
    lines.append("Delete the broken file(s) to go on without them (without checkpoint_last.pt the run starts over).")
    raise UnusableCheckpointError("\n".join(lines))


def stored_best_score(path: str, metric: str, maximize: bool) -> Optional[float]:
    """The validation score stored in checkpoint `path` when it was saved for the same best-checkpoint metric."""
    state = load_without_tensors(path)
    score = (state.get("extra_state") or {}).get("val_loss")
    checkpoint_cfg = (state.get("cfg") or {}).get("checkpoint") or {}
    if score is None or checkpoint_cfg.get("best_checkpoint_metric") != metric:
        return None
    if bool(checkpoint_cfg.get("maximize_best_checkpoint_metric")) != bool(maximize):
        return None
    return float(score)


def keep_existing_best(cfg, suffix: str) -> None:
    """Count the score of `checkpoint_best.pt` (if any) as the best seen, so that only a better model replaces it."""
    path = os.path.join(cfg.save_dir, f"checkpoint_best{suffix}.pt")
    if not os.path.isfile(path):
        return
    metric, maximize = cfg.best_checkpoint_metric, cfg.maximize_best_checkpoint_metric
    score = stored_best_score(path, metric, maximize)
    if score is None:
        logger.warning("%s was not saved for --best-checkpoint-metric %s; the next validation replaces it", path, metric)
        return
    save_checkpoint = fairseq_checkpoint_utils.save_checkpoint
    best = getattr(save_checkpoint, "best", None)
    save_checkpoint.best = score if best is None else (max if maximize else min)(best, score)
    logger.info("%s holds %s %s: only a better model replaces it (best so far: %s)", path, metric, score,
                save_checkpoint.best)


def reached_limit(trainer, epoch_itr) -> Optional[str]:
    """The limit of fairseq-train that the loaded run has already reached ("--max-update 60", ...), or None."""
    optimization = trainer.cfg.optimization
    if optimization.max_update > 0 and trainer.get_num_updates() >= optimization.max_update:
        return f"--max-update {optimization.max_update}"
    if optimization.max_epoch > 0 and epoch_itr.next_epoch_idx > optimization.max_epoch:
        return f"--max-epoch {optimization.max_epoch}"
    if trainer.get_lr() <= optimization.stop_min_lr:
        return f"--stop-min-lr {optimization.stop_min_lr}: the learning rate is {trainer.get_lr()}"
    return None


def stopping_point(trainer, epoch_itr) -> str:
    """Where the loaded run stopped: "update 60, in epoch 2" or "update 18, after epoch 3"."""
    updates = trainer.get_num_updates()
    if epoch_itr.iterations_in_epoch > 0:
        return f"update {updates}, in epoch {epoch_itr.epoch}"
    return f"update {updates}, after epoch {epoch_itr.epoch - 1}"


def exit_if_complete(save_dir: str, trainer, epoch_itr) -> None:
    """End the process with status 0 when the loaded run has reached a limit: fairseq-train would train one more
    update (it checks --max-update after each update) and save it."""
    limit = reached_limit(trainer, epoch_itr)
    if limit is None:
        return
    logger.info("The run in %s is complete: it stopped at %s (%s). Nothing is trained and no checkpoint is written; "
                "to train further, raise the limit or use another --save-dir.", save_dir, stopping_point(trainer, epoch_itr),
                limit)
    sys.exit(0)


_fairseq_load_checkpoint = fairseq_checkpoint_utils.load_checkpoint


def load_checkpoint(cfg, trainer, **passthrough_args):
    """fairseq's load_checkpoint, after checking --save-dir; then a complete run ends, another keeps an existing
    best checkpoint."""
    local = not _is_remote(cfg.save_dir) and os.path.isdir(cfg.save_dir)
    if local:
        if holds_save_dir_lock(cfg.save_dir):  # another run's writes must never be taken for leftovers
            remove_leftover_temporary_files(cfg.save_dir)
        check_checkpoints(cfg.save_dir)
    extra_state, epoch_itr = _fairseq_load_checkpoint(cfg, trainer, **passthrough_args)
    exit_if_complete(cfg.save_dir, trainer, epoch_itr)
    if local:
        keep_existing_best(cfg, trainer.checkpoint_suffix)
    return extra_state, epoch_itr


# ---- 5.: only a better model replaces checkpoint_best.pt ----------------------------------------


def ties_the_best(cfg, trainer, val_loss) -> bool:
    """Whether `val_loss` equals the best score so far, which checkpoint_best.pt holds."""
    best = getattr(fairseq_checkpoint_utils.save_checkpoint, "best", None)
    best_path = os.path.join(cfg.save_dir, f"checkpoint_best{trainer.checkpoint_suffix}.pt")
    return val_loss is not None and best is not None and val_loss == best and os.path.isfile(best_path)


_fairseq_save_checkpoint = fairseq_checkpoint_utils.save_checkpoint


def save_checkpoint(cfg, trainer, epoch_itr, val_loss):
    """fairseq's save_checkpoint, except that a score equal to the best so far is saved as a save without
    validation: it replaces neither checkpoint_best.pt nor a --keep-best-checkpoints file (fairseq's test is
    `>=` / `<=`). fairseq reads and sets `save_checkpoint.best` through the module attribute, so the best score
    so far lives on this function."""
    if ties_the_best(cfg, trainer, val_loss):
        logger.info("%s %s only ties the best so far: checkpoint_best%s.pt is kept", cfg.best_checkpoint_metric,
                    val_loss, trainer.checkpoint_suffix)
        val_loss = None
    return _fairseq_save_checkpoint(cfg, trainer, epoch_itr, val_loss)


fairseq_checkpoint_utils.torch_persistent_save = torch_persistent_save
fairseq_checkpoint_utils.PathManager = AtomicCopyPathManager()
fairseq_checkpoint_utils.verify_checkpoint_directory = verify_checkpoint_directory
fairseq_checkpoint_utils.load_checkpoint = load_checkpoint
fairseq_checkpoint_utils.save_checkpoint = save_checkpoint

"""Crash-safe fairseq-train runs: the one place where ofa_sic changes how fairseq saves and resumes.

fairseq writes the first checkpoint file of a save through a temporary name but without fsync, and
copies it to the others (`checkpoint_best.pt`, `checkpoint_last.pt`, ...) with a plain copy, so a kill
during a save can leave `checkpoint_last.pt` empty; the next run then dies in `torch.load` naming no
file. Importing the plugin replaces, in `fairseq.checkpoint_utils` only:

1. `torch_persistent_save`: every checkpoint is written with `ofa_sic.atomic_files.atomic_write`
   (temporary file beside it, fsync, rename);
2. the `PathManager` that `save_checkpoint` copies with: its `copy` is `atomic_copy`, everything else
   is fairseq's;
3. `load_checkpoint` (called once when fairseq-train starts), wrapped: before loading, leftovers of
   killed writes in `--save-dir` are deleted and every checkpoint there is checked for being empty or
   truncated (`UnusableCheckpointError` names the file and the newest intact checkpoint); after
   loading, the score stored in an existing `checkpoint_best.pt` counts as the best so far, so only a
   better model replaces it (also when the run starts again from the pretrained file).

Remote (`scheme://`) paths and `--write-checkpoints-asynchronously` keep fairseq's own code.
"""
import logging
import os
import re
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


class UnusableCheckpointError(RuntimeError):
    """A checkpoint in --save-dir that is empty or truncated (a save that was killed)."""


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


# ---- 3.: checks when a run starts ---------------------------------------------------------------


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
    """Delete what killed checkpoint writes left in `save_dir` (ours and fairseq's `*.pt.tmp`)."""
    for name in os.listdir(save_dir):
        ours = is_temporary_name(name) and name.startswith(".checkpoint")
        if ours or (name.startswith("checkpoint") and name.endswith(".pt.tmp")):
            path = os.path.join(save_dir, name)
            try:
                os.remove(path)
                logger.info("removed %s, left by a checkpoint write that did not finish", path)
            except FileNotFoundError:  # another rank removed it
                pass


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


_fairseq_load_checkpoint = fairseq_checkpoint_utils.load_checkpoint


def load_checkpoint(cfg, trainer, **passthrough_args):
    """fairseq's load_checkpoint, after checking --save-dir, then keeping an existing best checkpoint."""
    if not _is_remote(cfg.save_dir) and os.path.isdir(cfg.save_dir):
        remove_leftover_temporary_files(cfg.save_dir)
        check_checkpoints(cfg.save_dir)
    result = _fairseq_load_checkpoint(cfg, trainer, **passthrough_args)
    if not _is_remote(cfg.save_dir) and os.path.isdir(cfg.save_dir):
        keep_existing_best(cfg, trainer.checkpoint_suffix)
    return result


fairseq_checkpoint_utils.torch_persistent_save = torch_persistent_save
fairseq_checkpoint_utils.PathManager = AtomicCopyPathManager()
fairseq_checkpoint_utils.load_checkpoint = load_checkpoint

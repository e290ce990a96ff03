"""How many examples, batches and updates one training epoch of `--task style_caption` has, predicted
from the configuration alone.

`--lr-scheduler ofa_polynomial_decay` needs the number of updates of the whole run as soon as stock
fairseq-train builds it, which is before the task has built its training iterator (and, when
resuming, before the task has loaded any data). So the scheduler predicts the epoch with these
functions from the config it reads through interpolations, and the task checks the prediction
against the iterator fairseq really built, every epoch (`check_training_batches`): the two cannot
differ silently.

fairseq 0.12's arithmetic with `--batch-size B` (the task always batches with a size multiple of 1):

    examples           E = rows of {data}/train.tsv + round(rows * --mlm-ratio)  (no MLM with --scst)
                           with --scst: the images of train.tsv (rows grouped by image_id and style)
    batches per rank   b = ceil(ceil(E / B) / W)     W data-parallel ranks; short ranks get an empty batch
    updates in epoch e     ceil(b / update_freq_e)   update_freq_e: --update-freq's e-th value, else its last

Not predictable (`EpochSizeUnknown`): `--max-tokens` batching (batches are cut by tokens) and
`--skip-remainder-batch` (fairseq drops a batch before grouping).
"""
import math
from typing import List, Optional

from ofa_sic.data.caption_dataset import rows_by_image
from ofa_sic.data.mlm_dataset import mlm_count
from ofa_sic.data.prepared_layout import COLUMNS, split_path
from ofa_sic.data.tsv_reader import IndexedTSV, load_or_build_offsets


class EpochSizeUnknown(ValueError):
    """The epoch size cannot be known before fairseq builds the training iterator; the message says why."""


def mixes_mlm_examples(task_cfg) -> bool:
    """Whether the training set mixes masked-LM examples in (`--mlm-ratio` > 0, not SCST)."""
    return task_cfg.mlm_ratio > 0 and not task_cfg.scst


def training_examples(task_cfg) -> int:
    """Examples of one training epoch: the rows of train.tsv (counted by its cached row index), plus the
    MLM examples (the same number every epoch); with --scst, its images (one example per image)."""
    path = split_path(task_cfg.data, "train")
    if task_cfg.scst:
        return len(rows_by_image(IndexedTSV(path, num_columns=len(COLUMNS))))
    rows = len(load_or_build_offsets(path))
    return rows + (mlm_count(rows, task_cfg.mlm_ratio) if mixes_mlm_examples(task_cfg) else 0)


def batches_per_rank(num_examples: int, batch_size: Optional[int], max_tokens: Optional[int], world_size: int) -> int:
    """Training batches one data-parallel rank iterates per epoch."""
    if max_tokens:
        raise EpochSizeUnknown(f"--max-tokens {max_tokens} cuts batches by tokens")
    if not batch_size:
        raise EpochSizeUnknown("no --batch-size is given")
    return math.ceil(math.ceil(num_examples / batch_size) / world_size)


def updates_of_epochs(batches: int, update_freq: List[int], max_epoch: int) -> int:
    """Updates of epochs 1..max_epoch for `batches` per rank and epoch (a last partial group is one update)."""
    return sum(math.ceil(batches / update_freq[min(epoch, len(update_freq)) - 1]) for epoch in range(1, max_epoch + 1))


def check_training_batches(task_cfg, num_batches: int, batch_size: Optional[int], max_tokens: Optional[int],
                           world_size: int) -> None:
    """Raise when fairseq's training iterator has another number of batches per rank than predicted
    (it left examples out, e.g. those longer than the model's positions); nothing when not predictable."""
    try:
        examples = training_examples(task_cfg)
        predicted = batches_per_rank(examples, batch_size, max_tokens, world_size)
    except EpochSizeUnknown:
        return
    if num_batches != predicted:
        raise RuntimeError(
            f"the training iterator has {num_batches} batches per rank, but {examples} training examples of "
            f"{split_path(task_cfg.data, 'train')} in batches of {batch_size} on {world_size} rank(s) make "
            f"{predicted}: fairseq left out the examples longer than the task's or the model's max positions "
            "(its warning above gives the sizes). Lower --max-tgt-length or shorten the prompt, so that every "
            "example is trained on and --lr-scheduler ofa_polynomial_decay counts the epoch fairseq runs"
        )

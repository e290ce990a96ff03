"""`--lr-scheduler ofa_polynomial_decay`: OFA's linear warmup by *ratio* of all updates, then
polynomial decay, under stock `fairseq-train`.

OFA's forked trainer counts the updates of all epochs from its epoch iterator and calls a `reinit`
on its scheduler. Stock fairseq gives the scheduler no handle on the task and builds it (and sets
the first learning rate) before the task builds its training iterator, so this scheduler knows the
length of the run when it is built, from its config alone:
- `--total-num-update N`: N;
- else `--max-epoch E`: the updates of E epochs, predicted by `ofa_sic.tasks.epoch_size` from the
  task config (train.tsv's rows, --mlm-ratio), --batch-size, the number of data-parallel ranks
  and --update-freq (the smaller of that and --max-update when both are given); the task checks the
  prediction against fairseq's real iterator every epoch;
- else `--max-update N`: N.
The config fields without `help` are copies of those settings (fairseq resolves the interpolations
when it parses the command line), not options of their own.
"""
import logging
from dataclasses import dataclass, field
from typing import Any, List, Optional

from fairseq.dataclass import FairseqDataclass
from fairseq.distributed import utils as distributed_utils
from fairseq.optim.lr_scheduler import FairseqLRScheduler, register_lr_scheduler
from omegaconf import II

from ofa_sic.tasks.epoch_size import EpochSizeUnknown, batches_per_rank, training_examples, updates_of_epochs

logger = logging.getLogger(__name__)


@dataclass
class OFAPolynomialDecayConfig(FairseqDataclass):
    warmup_ratio: float = field(default=0.0, metadata={"help": "share of all updates spent warming up linearly (OFA's --warmup-ratio)"})
    warmup_updates: int = field(default=0, metadata={"help": "warmup updates; overrides --warmup-ratio when > 0"})
    end_learning_rate: float = field(default=0.0, metadata={"help": "learning rate after the last update"})
    power: float = field(default=1.0, metadata={"help": "decay exponent (1 = linear)"})
    total_num_update: int = field(default=0, metadata={"help": "total updates; 0 = derive from --max-epoch / --max-update"})
    lr: List[float] = II("optimization.lr")
    max_update: int = II("optimization.max_update")
    max_epoch: int = II("optimization.max_epoch")
    update_freq: List[int] = II("optimization.update_freq")
    skip_remainder_batch: bool = II("optimization.skip_remainder_batch")
    batch_size: Optional[int] = II("dataset.batch_size")
    max_tokens: Optional[int] = II("dataset.max_tokens")
    task_config: Any = II("task")


def total_updates(cfg: OFAPolynomialDecayConfig) -> int:
    """Total number of updates of the run (see the module docstring); ValueError saying what to set."""
    if cfg.total_num_update > 0:
        return cfg.total_num_update
    if not cfg.max_epoch:
        if cfg.max_update:
            return cfg.max_update
        raise ValueError("ofa_polynomial_decay needs the length of the run: set --max-epoch, --max-update or --total-num-update")
    try:
        batches = epoch_batches_per_rank(cfg)
    except EpochSizeUnknown as reason:
        raise ValueError(
            f"ofa_polynomial_decay cannot count the updates of --max-epoch {cfg.max_epoch} before training: {reason}. "
            "Set --total-num-update N (the schedule's length), or --max-update N instead of --max-epoch"
        ) from None
    by_epochs = updates_of_epochs(batches, cfg.update_freq, cfg.max_epoch)
    logger.info("ofa_polynomial_decay: %d training batches per rank and epoch, %d updates in %d epoch(s)",
                batches, by_epochs, cfg.max_epoch)
    return min(by_epochs, cfg.max_update) if cfg.max_update else by_epochs


def epoch_batches_per_rank(cfg: OFAPolynomialDecayConfig) -> int:
    """Training batches per rank and epoch, predicted from the task, dataset and distributed configs."""
    if cfg.skip_remainder_batch:
        raise EpochSizeUnknown("--skip-remainder-batch drops batches")
    task_name = cfg.task_config.get("_name")
    if task_name != "style_caption":
        raise EpochSizeUnknown(f"the epoch size is predicted for --task style_caption only, not {task_name}")
    examples = training_examples(cfg.task_config)
    return batches_per_rank(examples, cfg.batch_size, cfg.max_tokens, data_parallel_world_size())


def data_parallel_world_size() -> int:
    """The number of data-parallel ranks, asked of torch.distributed as fairseq's trainer does (fairseq
    sets the world size when it starts the processes, after the config was resolved)."""
    return distributed_utils.get_data_parallel_world_size()


@register_lr_scheduler("ofa_polynomial_decay", dataclass=OFAPolynomialDecayConfig)
class OFAPolynomialDecaySchedule(FairseqLRScheduler):
    def __init__(self, cfg: OFAPolynomialDecayConfig, optimizer):
        super().__init__(cfg, optimizer)
        if len(cfg.lr) > 1:
            raise ValueError("ofa_polynomial_decay takes one --lr value")
        if not 0.0 <= cfg.warmup_ratio < 1.0:
            raise ValueError(f"--warmup-ratio must be in [0, 1), got {cfg.warmup_ratio}")
        self.peak_lr = cfg.lr[0]
        self.total_updates = total_updates(cfg)
        self.warmup = cfg.warmup_updates or int(self.total_updates * cfg.warmup_ratio)
        logger.info("ofa_polynomial_decay: %d updates in total, %d of warmup", self.total_updates, self.warmup)
        self.step_update(0)

    def step(self, epoch, val_loss=None):
        super().step(epoch, val_loss)
        return self.optimizer.get_lr()

    def lr_at(self, num_updates: int) -> float:
        """Learning rate after `num_updates` updates (fairseq trains update k+1 with `lr_at(k)`)."""
        if self.warmup > 0 and num_updates <= self.warmup:
            return self.peak_lr * num_updates / self.warmup
        if num_updates >= self.total_updates:
            return self.cfg.end_learning_rate
        remaining = 1 - (num_updates - self.warmup) / (self.total_updates - self.warmup)
        return (self.peak_lr - self.cfg.end_learning_rate) * remaining ** self.cfg.power + self.cfg.end_learning_rate

    def step_update(self, num_updates):
        lr = self.lr_at(num_updates)
        self.optimizer.set_lr(lr)
        return lr

"""`--lr-scheduler ofa_polynomial_decay`: OFA's linear warmup by *ratio* of all updates, then
polynomial decay, under stock `fairseq-train`.

OFA's forked trainer computes the total number of updates from the epoch iterator and calls a
`reinit` on its scheduler. Here the style_caption task records how many batches one epoch has on
this rank when it builds the training iterator (`record_batches_per_epoch`), and the scheduler
derives total = max_epoch * ceil(batches / update_freq) (or takes --max-update / --total-num-update
when those are smaller or given) at the start of each epoch.
"""
import logging
import math
from dataclasses import dataclass, field
from typing import List, Optional

from fairseq.dataclass import FairseqDataclass
from fairseq.optim.lr_scheduler import FairseqLRScheduler, register_lr_scheduler
from omegaconf import II

logger = logging.getLogger(__name__)

_batches_per_epoch: Optional[int] = None


def record_batches_per_epoch(num_batches: int):
    """Called by the task with the number of training batches of one epoch on this rank."""
    global _batches_per_epoch
    _batches_per_epoch = num_batches


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


@register_lr_scheduler("ofa_polynomial_decay", dataclass=OFAPolynomialDecayConfig)
class OFAPolynomialDecaySchedule(FairseqLRScheduler):
    def __init__(self, cfg: OFAPolynomialDecayConfig, optimizer):
        super().__init__(cfg, optimizer)
        if len(cfg.lr) > 1:
            raise ValueError("ofa_polynomial_decay takes one --lr value")
        if not 0.0 <= cfg.warmup_ratio < 1.0:
            raise ValueError(f"--warmup-ratio must be in [0, 1), got {cfg.warmup_ratio}")
        self.peak_lr = cfg.lr[0]
        self.total_updates = None
        self.warmup = 0
        self.optimizer.set_lr(0.0 if self._uses_warmup() else self.peak_lr)

    def _uses_warmup(self) -> bool:
        return self.cfg.warmup_updates > 0 or self.cfg.warmup_ratio > 0

    def derive_total_updates(self) -> int:
        """Total number of updates of the run, from the options and the recorded epoch size."""
        candidates = []
        if self.cfg.total_num_update > 0:
            return self.cfg.total_num_update
        if self.cfg.max_update and self.cfg.max_update > 0:
            candidates.append(self.cfg.max_update)
        if self.cfg.max_epoch and self.cfg.max_epoch > 0 and _batches_per_epoch is not None:
            candidates.append(self.cfg.max_epoch * math.ceil(_batches_per_epoch / self.cfg.update_freq[0]))
        if not candidates:
            raise ValueError(
                "ofa_polynomial_decay needs the length of the run: set --max-epoch (with --task style_caption), "
                "--max-update or --total-num-update"
            )
        return min(candidates)

    def step_begin_epoch(self, epoch):
        total = self.derive_total_updates()
        if total != self.total_updates:
            self.total_updates = total
            self.warmup = self.cfg.warmup_updates or int(total * self.cfg.warmup_ratio)
            logger.info("ofa_polynomial_decay: %d updates in total, %d of warmup", total, self.warmup)
        if self.optimizer.get_lr() == 0.0:
            self.optimizer.set_lr(self.lr_at(1))  # the first update, as fairseq's own warmup does
        return self.optimizer.get_lr()

    def step(self, epoch, val_loss=None):
        super().step(epoch, val_loss)
        return self.optimizer.get_lr()

    def lr_at(self, num_updates: int) -> float:
        """Learning rate after `num_updates` updates."""
        if self.total_updates is None:
            if self.cfg.total_num_update <= 0 and not self.cfg.max_update and _batches_per_epoch is None:
                return self.optimizer.get_lr()  # restoring a checkpoint before the epoch size is known
            self.step_begin_epoch(None)
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

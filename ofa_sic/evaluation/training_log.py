"""The logged values of a fairseq-train run, read from its `--log-format simple` log (what run_scripts write).

Three kinds of lines carry values, each with `num_updates`:
    ... | train_inner | epoch 001:      2 / 6 loss=13.055, nll_loss=13.028, ..., num_updates=2, lr=0.0008
    ... | train | epoch 001 | loss 12.515 | nll_loss 12.428 | ... | num_updates 6 | lr 0.0005
    ... | valid | epoch 001 | valid on 'valid' subset | loss 11.842 | ... | cider 0.09 | num_updates 6
`train_inner` lines come every --log-interval updates; `train` lines close each epoch. Values that
are not numbers are ignored. A value logged twice at the same update (a resumed run that repeats
updates) keeps the later one.
"""
import re
from dataclasses import dataclass, field
from typing import Dict

_TRAIN_INNER = re.compile(r"\| train_inner \| epoch \d+:\s+\d+ / \d+ (?P<values>.*)$")
_TRAIN_EPOCH = re.compile(r"\| train \| epoch \d+ \| (?P<values>.*)$")
_VALID = re.compile(r"\| valid \| epoch \d+ \| valid on '(?P<subset>[^']+)' subset \| (?P<values>.*)$")

Series = Dict[int, float]  # num_updates -> value


@dataclass
class TrainingLog:
    """Logged values by metric name: `train_inner[metric][update]`, `train_epoch[...]`, `valid[subset][metric][update]`."""

    path: str
    train_inner: Dict[str, Series] = field(default_factory=dict)
    train_epoch: Dict[str, Series] = field(default_factory=dict)
    valid: Dict[str, Dict[str, Series]] = field(default_factory=dict)

    def train(self, metric: str) -> Series:
        """A training metric at every logged update: the train_inner values, or the per-epoch ones when
        the run logged no train_inner line with that metric (--log-interval longer than an epoch)."""
        return self.train_inner.get(metric) or self.train_epoch.get(metric, {})


def _numbers(pairs) -> Dict[str, float]:
    values = {}
    for key, text in pairs:
        try:
            values[key.strip()] = float(text)
        except ValueError:
            continue
    return values


def _record(target: Dict[str, Series], values: Dict[str, float]) -> None:
    update = values.pop("num_updates", None)
    if update is None:
        return
    for key, value in values.items():
        target.setdefault(key, {})[int(update)] = value


def read_training_log(path: str) -> TrainingLog:
    """Parse a fairseq-train log; ValueError naming the file when it has no train or valid line."""
    log = TrainingLog(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            match = _TRAIN_INNER.search(line)
            if match:
                pairs = (item.split("=", 1) for item in match.group("values").split(", ") if "=" in item)
                _record(log.train_inner, _numbers(pairs))
                continue
            match = _VALID.search(line)
            if match:
                pairs = (item.split(" ", 1) for item in match.group("values").split(" | ") if " " in item)
                _record(log.valid.setdefault(match.group("subset"), {}), _numbers(pairs))
                continue
            match = _TRAIN_EPOCH.search(line)
            if match:
                pairs = (item.split(" ", 1) for item in match.group("values").split(" | ") if " " in item)
                _record(log.train_epoch, _numbers(pairs))
    if not (log.train_inner or log.train_epoch or log.valid):
        raise ValueError(f"{path}: no fairseq-train progress lines (train_inner / train / valid) found; "
                         "plot reads logs written with --log-format simple, as run_scripts/*.sh write them")
    return log

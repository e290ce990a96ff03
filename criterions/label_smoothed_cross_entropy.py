"""`--criterion adjust_label_smoothed_cross_entropy`: OFA's caption loss.

Per target token (padding removed): loss = (1 - eps - eps_i) * nll + eps_i * sum_v(-log p_v), with
eps_i = eps / (V - 1) over the whole vocabulary. With `--drop-worst-ratio r`, once
`update_num > --drop-worst-after`, only the int(N * (1 - r)) smallest token losses of the batch are
kept (per token, as OFA does); `sample_size` is the number of kept tokens.

Batches that mix captioning with style-token masked-LM examples (`sample["is_mlm"]`, from
`--mlm-ratio`) get loss = caption_loss / caption_tokens + --mlm-weight * mlm_loss / mlm_tokens with
sample_size 1 (OFA's way of mixing two tasks), and both parts are logged (`loss_caption`, `loss_mlm`,
`sample_size_caption`, `sample_size_mlm`).
"""
import math
from dataclasses import dataclass, field

import torch
from fairseq import metrics, utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from omegaconf import II


@dataclass
class AdjustLabelSmoothedCrossEntropyConfig(FairseqDataclass):
    label_smoothing: float = field(default=0.0, metadata={"help": "epsilon for label smoothing, 0 = none"})
    report_accuracy: bool = field(default=False, metadata={"help": "log token accuracy"})
    ignore_prefix_size: int = field(default=0, metadata={"help": "ignore the first N target tokens of every row"})
    drop_worst_ratio: float = field(default=0.0, metadata={"help": "share of the worst token losses to drop"})
    drop_worst_after: int = field(default=0, metadata={"help": "drop worst tokens only after this many updates"})
    mlm_weight: float = field(default=1.0, metadata={"help": "weight of the style-token masked-LM loss (with --mlm-ratio > 0)"})
    sentence_avg: bool = II("optimization.sentence_avg")


def label_smoothed_token_losses(lprobs: torch.Tensor, target: torch.Tensor, epsilon: float):
    """lprobs [N, V], target [N] -> (smoothed loss [N], nll [N])."""
    nll = -lprobs.gather(dim=-1, index=target.unsqueeze(-1)).squeeze(-1)
    smooth = -lprobs.sum(dim=-1)
    eps_i = epsilon / (lprobs.size(-1) - 1)
    return (1.0 - epsilon - eps_i) * nll + eps_i * smooth, nll


@register_criterion("adjust_label_smoothed_cross_entropy", dataclass=AdjustLabelSmoothedCrossEntropyConfig)
class AdjustLabelSmoothedCrossEntropyCriterion(FairseqCriterion):
    def __init__(self, task, sentence_avg, label_smoothing, ignore_prefix_size=0, report_accuracy=False,
                 drop_worst_ratio=0.0, drop_worst_after=0, mlm_weight=1.0):
        super().__init__(task)
        if not 0.0 <= drop_worst_ratio < 1.0:
            raise ValueError(f"--drop-worst-ratio must be in [0, 1), got {drop_worst_ratio}")
        self.sentence_avg = sentence_avg
        self.eps = label_smoothing
        self.ignore_prefix_size = ignore_prefix_size
        self.report_accuracy = report_accuracy
        self.drop_worst_ratio = drop_worst_ratio
        self.drop_worst_after = drop_worst_after
        self.mlm_weight = mlm_weight

    def forward(self, model, sample, update_num=0, reduce=True):
        """Returns (summed loss, sample_size, logging dict)."""
        net_output = model(**sample["net_input"])
        lprobs, target = self.lprobs_and_target(model, net_output, sample)
        is_mlm = sample.get("is_mlm")
        if is_mlm is not None and bool(is_mlm.any()):
            loss, logging_output = self.mixed_loss(lprobs, target, is_mlm, update_num)
            sample_size = 1
            logging_output.update(ntokens=sample["ntokens"], nsentences=sample["nsentences"], sample_size=1)
        else:
            loss, nll_loss, ntokens = self.compute_loss(lprobs, target, update_num)
            sample_size = sample["target"].size(0) if self.sentence_avg else ntokens
            logging_output = {
                "loss": loss.data,
                "nll_loss": nll_loss.data,
                "ntokens": sample["ntokens"],
                "nsentences": sample["nsentences"],
                "sample_size": sample_size,
                "loss_caption": loss.data,
                "sample_size_caption": sample_size,
            }
        if self.report_accuracy:
            mask = target.ne(self.padding_idx)
            logging_output["n_correct"] = utils.item(lprobs.argmax(-1).eq(target).masked_select(mask).sum())
            logging_output["total"] = utils.item(mask.sum())
        return loss, sample_size, logging_output

    def lprobs_and_target(self, model, net_output, sample):
        """Log-probs [B, T', V] and target [B, T'] with the first `ignore_prefix_size` positions removed."""
        lprobs = model.get_normalized_probs(net_output, log_probs=True)
        target = model.get_targets(sample, net_output)
        if self.ignore_prefix_size > 0:
            lprobs = lprobs[:, self.ignore_prefix_size:, :]
            target = target[:, self.ignore_prefix_size:]
        return lprobs, target

    def compute_loss(self, lprobs, target, update_num):
        """Summed smoothed loss and nll over the non-pad (and not dropped) tokens, and their count."""
        keep = target.ne(self.padding_idx)
        loss, nll = label_smoothed_token_losses(lprobs[keep], target[keep], self.eps)
        if self.drop_worst_ratio > 0 and update_num > self.drop_worst_after:
            loss, kept = torch.topk(loss, k=int(loss.numel() * (1 - self.drop_worst_ratio)), largest=False)
            nll = nll[kept]
        return loss.sum(), nll.sum(), loss.numel()

    def mixed_loss(self, lprobs, target, is_mlm, update_num):
        """caption_loss / caption_size + mlm_weight * mlm_loss / mlm_size over the rows of each kind."""
        parts = {}
        for name, rows in (("caption", ~is_mlm), ("mlm", is_mlm)):
            if rows.any():
                parts[name] = self.compute_loss(lprobs[rows], target[rows], update_num)
        loss = lprobs.new_zeros(())
        nll = lprobs.new_zeros(())
        logging_output = {}
        for name, (part_loss, part_nll, size) in parts.items():
            weight = self.mlm_weight if name == "mlm" else 1.0
            loss = loss + weight * part_loss / size
            nll = nll + weight * part_nll / size
            logging_output[f"loss_{name}"] = part_loss.data
            logging_output[f"sample_size_{name}"] = size
        logging_output.update(loss=loss.data, nll_loss=nll.data)
        return loss, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        loss_sum = sum(log.get("loss", 0) for log in logging_outputs)
        nll_loss_sum = sum(log.get("nll_loss", 0) for log in logging_outputs)
        ntokens = sum(log.get("ntokens", 0) for log in logging_outputs)
        nsentences = sum(log.get("nsentences", 0) for log in logging_outputs)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        metrics.log_scalar("loss", loss_sum / max(sample_size, 1) / math.log(2), sample_size, round=3)
        metrics.log_scalar("nll_loss", nll_loss_sum / max(sample_size, 1) / math.log(2), sample_size, round=3)
        metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["nll_loss"].avg))
        for part in ("caption", "mlm"):
            part_size = sum(log.get(f"sample_size_{part}", 0) for log in logging_outputs)
            if part_size > 0:
                part_loss = sum(log.get(f"loss_{part}", 0) for log in logging_outputs)
                metrics.log_scalar(f"loss_{part}", part_loss / part_size / math.log(2), part_size, round=3)
                metrics.log_scalar(f"sample_size_{part}", part_size, 1, round=3)
        metrics.log_scalar("ntokens", ntokens, 1, round=3)
        metrics.log_scalar("nsentences", nsentences, 1, round=3)
        metrics.log_scalar("sample_size", sample_size, 1, round=3)
        total = utils.item(sum(log.get("total", 0) for log in logging_outputs))
        if total > 0:
            metrics.log_scalar("total", total)
            metrics.log_scalar("n_correct", utils.item(sum(log.get("n_correct", 0) for log in logging_outputs)))
            metrics.log_derived(
                "accuracy", lambda meters: round(meters["n_correct"].sum * 100.0 / meters["total"].sum, 3)
            )

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

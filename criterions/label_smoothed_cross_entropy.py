"""`--criterion adjust_label_smoothed_cross_entropy`: OFA's caption loss, plus the style-token masked-LM rows.

Per target token (padding removed): loss = (1 - eps - eps_i) * nll + eps_i * sum_v(-log p_v), with
eps_i = eps / (V - 1) over the whole vocabulary. Only the target tokens that count are projected onto
the vocabulary: no [B, T, V] logits or log-probs are made for padding.

A batch may hold caption rows and, with `--mlm-ratio`, masked-LM rows (`sample["is_mlm"]` [B]). Its
loss is the sum of the caption token losses + `--mlm-weight` * the sum of the MLM token losses, and
its `sample_size` the number of (kept) target tokens of all its rows, or of rows with
`--sentence-avg`: one meaning for caption-only, MLM-only and mixed batches. fairseq sums losses and
sample sizes over the `--update-freq` micro-batches and the ranks, so an update's gradient is that of
(C + w * M) / (n_caption + n_mlm) however its rows fell into batches. (OFA-main adds
loss_1 / size_1 + loss_2 / size_2 with sample size 1, which means the same only when every batch
holds both kinds.) So the MLM share of an update follows its share of the target tokens: with
`--mlm-ratio 1` each caption has one MLM copy of the same length, and w = 1 weighs both tasks alike.

`--drop-worst-ratio r`: once `update_num > --drop-worst-after`, each part (caption, MLM) of the batch
keeps its int(N_part * (1 - r)) smallest token losses, per token as OFA does within each task's
batch; caption tokens never compete with MLM tokens, whose losses lie on another scale. `sample_size`
counts the kept tokens. What is dropped depends on the batch, as in OFA.

Logged: `loss` and `nll_loss` (the same weighting without smoothing) per sample_size, and per part
`loss_caption`, `loss_mlm` (unweighted, per kept token of the part) with `sample_size_caption`,
`sample_size_mlm` (the part's kept tokens).
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
    """lprobs [..., V], target [...] -> (smoothed loss [...], nll [...]), per token."""
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
        """Returns (summed weighted loss, sample_size, logging dict); see the module docstring."""
        lprobs, target, is_mlm = self.token_lprobs(model, sample)  # [M, V], [M], [M]
        token_loss, token_nll = label_smoothed_token_losses(lprobs, target, self.eps)  # [M], [M]
        loss = nll_loss = lprobs.new_zeros(())
        kept_tokens = 0
        logging_output = {}
        for part, in_part, weight in (("caption", ~is_mlm, 1.0), ("mlm", is_mlm, self.mlm_weight)):
            if not in_part.any():
                continue
            part_loss, part_nll, part_tokens = self.part_loss(token_loss[in_part], token_nll[in_part], update_num)
            loss = loss + weight * part_loss
            nll_loss = nll_loss + weight * part_nll
            kept_tokens += part_tokens
            logging_output[f"loss_{part}"] = part_loss.data
            logging_output[f"sample_size_{part}"] = part_tokens
        sample_size = sample["target"].size(0) if self.sentence_avg else kept_tokens
        logging_output.update(
            loss=loss.data, nll_loss=nll_loss.data, ntokens=sample["ntokens"], nsentences=sample["nsentences"],
            sample_size=sample_size,
        )
        if self.report_accuracy:
            logging_output["n_correct"] = utils.item(lprobs.argmax(-1).eq(target).sum())
            logging_output["total"] = target.numel()
        return loss, sample_size, logging_output

    def token_lprobs(self, model, sample):
        """The M target tokens that count (not padding, not among the first `ignore_prefix_size`
        positions): their log-probs [M, V] (fp32), ids [M] and whether each is in an MLM row [M] (bool).

        Only those M positions of the decoder's features [B, T, C] are projected onto the vocabulary, so
        the padding's share of the projection, the log-softmax and their backward is not computed.
        """
        features, _ = model(**sample["net_input"], features_only=True)  # [B, T, C]
        target = sample["target"]  # [B, T]
        is_mlm = sample.get("is_mlm")  # [B] or None
        if is_mlm is None:
            is_mlm = torch.zeros(target.size(0), dtype=torch.bool, device=target.device)
        if self.ignore_prefix_size > 0:
            features = features[:, self.ignore_prefix_size:, :]
            target = target[:, self.ignore_prefix_size:]
        counted = target.ne(self.padding_idx)  # [B, T]
        logits = model.decoder.output_layer(features[counted]).float()  # [M, V]
        token_is_mlm = is_mlm.unsqueeze(1).expand_as(target)[counted]  # [M]
        return torch.log_softmax(logits, dim=-1), target[counted], token_is_mlm

    def part_loss(self, token_loss, token_nll, update_num):
        """Summed smoothed loss and nll of one part's token losses ([N] each) that drop-worst keeps,
        and how many it keeps."""
        if self.drop_worst_ratio > 0 and update_num > self.drop_worst_after:
            token_loss, kept = torch.topk(token_loss, k=int(token_loss.numel() * (1 - self.drop_worst_ratio)),
                                          largest=False)
            token_nll = token_nll[kept]
        return token_loss.sum(), token_nll.sum(), token_loss.numel()

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

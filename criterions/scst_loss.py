"""`--criterion scst_reward_criterion`: self-critical sequence training on a CIDEr-D reward (docs/ofa-spec.md §6).

For each image the task's `scst_generator` (`--scst --scst-args`) produces K hypotheses; each gets
CIDEr-D against the image's references (cached document frequencies; hypotheses and references
cleaned like the training targets, by the task's caption cleaner, and wrapped with " <eos>" as OFA
does). The advantage of hypothesis k is its score minus a baseline:
- `loo` (default): the mean score of the other K-1 hypotheses of the same image (needs K >= 2);
- `greedy`: the score of the image's greedy (beam 1) caption (Rennie et al.);
- `mean`: the mean score of all K hypotheses of the image.
The loss is -sum over non-pad tokens of log p(token) * advantage, from a teacher-forced pass over the
hypotheses; its log-probs are normalised over exactly the ids the generator may produce
(the task's `--constraint-range`, by default the text ids), so they are the generator's own scores.
Log-probs and advantages are fp32 whatever the model's precision.

The model's mode is fairseq's: the teacher-forced pass runs in the mode the criterion is called in
(train mode in fairseq's train step, eval mode in its valid step). Generation runs in eval mode and
afterwards restores the mode of every module as it found it; the criterion never switches the model
to train mode, so a validation leaves BatchNorm statistics alone and runs without dropout.

Each image is encoded once for its K hypotheses (the decoder rows of an image share its encoding;
OFA-main repeats the whole input K times). Generation also decodes from that encoding instead of
encoding again when it equals an eval-mode encoding: in eval mode, or in train mode when the encoder
computes the same in both modes (no dropout or drop path, frozen BatchNorm: stage 2's settings);
otherwise it encodes in eval mode (logged once).

The hypotheses are what `--scst-args` asks the generator for (fairseq's search options):
- beams, as OFA: `{"beam": 5, "max_len_b": 16, "no_repeat_ngram_size": 3}`;
- K independent samples ("new self-critical", Luo 2020): `{"sampling": true, "beam": 5,
  "temperature": 1.0, "sampling_topk": -1, "sampling_topp": -1.0, "max_len_b": 16}` (`beam` = K);
each with any baseline (`loo` needs K >= 2).

Logged per update: `score` (mean CIDEr-D of the hypotheses), `advantage` (mean |advantage|),
`greedy_score` (mean CIDEr-D of the images' greedy captions: every update with the greedy baseline,
which computes it anyway; every `--scst-greedy-every` updates otherwise, and then on every validation
batch too, where fairseq passes no update number), `identical` (share of images
whose K hypotheses are all the same: their loo/mean advantages are all zero), `hyp_length` (mean
hypothesis length in tokens, without </s>), and the shares of time spent in generation, reward and
forward/backward. With `--scst-style-reward-weight λ` (and `--scst-style-classifier FILE`), the reward of a
hypothesis is its CIDEr-D plus λ · log p(requested style | hypothesis) under that style classifier
(criterions/style_reward.py), before the baseline; `style_logp` (mean log-probability) and `reward` (mean
total) are logged beside `score`.

At the start of training the reward configuration is logged as a SacreEOS signature
(criterions/scst_signature.py).
"""
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import torch
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from omegaconf import II

from criterions.scst_signature import sacreeos_signature
from criterions.style_reward import StyleReward
from ofa_sic.data.text import CaptionCleaner
from ofa_sic.generation.generator import mask_outside_range
from ofa_sic.metrics.cider_d import CiderD
from ofa_sic.metrics.document_frequency import EOS_SUFFIX
from ofa_sic.models.encoder import ENCODER_INPUTS

logger = logging.getLogger(__name__)

BASELINES = ChoiceEnum(["loo", "greedy", "mean"])


@dataclass
class ScstRewardCriterionConfig(FairseqDataclass):
    scst_cider_cached_tokens: Optional[str] = field(
        default=None, metadata={"help": "CIDEr-D document-frequency pickle of the training references (ofa-sic cider-df)"}
    )
    scst_baseline: BASELINES = field(default="loo", metadata={"help": "reward baseline: loo (leave-one-out), greedy or mean"})
    scst_greedy_every: int = field(
        default=0,
        metadata={"help": "with the loo or mean baseline, also decode greedily and log greedy_score every N updates "
                          "(0: never; the greedy baseline logs it every update)"},
    )
    scst_style_reward_weight: float = field(
        default=0.0,
        metadata={"help": "λ: add λ * log p(requested style | hypothesis) under --scst-style-classifier to each "
                          "hypothesis's CIDEr-D before the baseline (0: CIDEr-D alone)"},
    )
    scst_style_classifier: Optional[str] = field(
        default=None, metadata={"help": "style classifier of `ofa-sic style-classifier` for --scst-style-reward-weight"}
    )
    sentence_avg: bool = II("optimization.sentence_avg")


def wrap_for_cider(text: str, cleaner: CaptionCleaner) -> str:
    """The reward text: `text` cleaned as the training targets are, with " <eos>" appended (OFA's
    reward text under the default cleaning: no punctuation, single spaces)."""
    return cleaner(text) + EOS_SUFFIX


@contextmanager
def eval_mode(model: torch.nn.Module):
    """Runs the body with every module of `model` in eval mode, then gives each module back the mode it had."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def detached(encoder_out):
    """An encoder-out dict whose tensors no longer carry gradients (for decoding under no_grad)."""
    return {key: [t.detach() for t in value] if isinstance(value, list) else value for key, value in encoder_out.items()}


def check_leave_one_out(samples_per_image: int) -> None:
    """The leave-one-out baseline needs at least 2 hypotheses per image."""
    if samples_per_image < 2:
        raise ValueError("--scst-baseline loo needs at least 2 hypotheses per image: use beam >= 2 in --scst-args")


def baseline_scores(scores: np.ndarray, num_images: int, kind: str, greedy_scores: Optional[np.ndarray] = None) -> np.ndarray:
    """Baseline per hypothesis. scores: [num_images * K] (image-major) -> [num_images * K]."""
    per_image = scores.reshape(num_images, -1)
    k = per_image.shape[1]
    if kind == "loo":
        check_leave_one_out(k)
        base = (per_image.sum(axis=1, keepdims=True) - per_image) / (k - 1)
    elif kind == "mean":
        base = np.repeat(per_image.mean(axis=1, keepdims=True), k, axis=1)
    elif kind == "greedy":
        base = np.repeat(greedy_scores.reshape(num_images, 1), k, axis=1)
    else:
        raise ValueError(f"unknown --scst-baseline {kind!r}")
    return base.reshape(-1)


def hypothesis_diagnostics(hypotheses: List[List[torch.Tensor]], greedy_scores: Optional[np.ndarray]) -> dict:
    """Sums for the log: images, images whose K hypotheses are all identical, hypothesis tokens without
    </s>, and (when the greedy captions were scored) the greedy captions' CIDEr-D and their count."""
    identical = sum(all(torch.equal(h, hyps[0]) for h in hyps[1:]) for hyps in hypotheses)
    sums = {
        "num_images": len(hypotheses),
        "identical_images": int(identical),
        "hyp_tokens": int(sum(h.numel() - 1 for hyps in hypotheses for h in hyps)),
    }
    if greedy_scores is not None:
        sums.update(greedy_score=float(greedy_scores.sum()), greedy_images=len(greedy_scores))
    return sums


@register_criterion("scst_reward_criterion", dataclass=ScstRewardCriterionConfig)
class ScstRewardCriterion(FairseqCriterion):
    def __init__(self, task, scst_cider_cached_tokens, scst_baseline="loo", scst_greedy_every=0,
                 scst_style_reward_weight=0.0, scst_style_classifier=None, sentence_avg=False):
        super().__init__(task)
        if not getattr(task.cfg, "scst", False):
            raise ValueError("scst_reward_criterion needs --scst (and --scst-args) so that the task builds its scst_generator")
        if not scst_cider_cached_tokens:
            raise ValueError(
                "--scst-cider-cached-tokens is required: the CIDEr-D document frequencies of the training references; "
                "build them with `ofa-sic cider-df --tsv train.tsv --out train-words.p` (prepare-pcap writes train-words.p)"
            )
        self.cider = CiderD(df=scst_cider_cached_tokens)
        task.cleaner.check_recorded(self.cider.cleaning, f"--scst-cider-cached-tokens {scst_cider_cached_tokens}")
        self.baseline = str(scst_baseline)
        self.samples_per_image = task.scst_generation.get("beam", 5)
        if self.baseline == "loo":
            check_leave_one_out(self.samples_per_image)
        if scst_greedy_every < 0:
            raise ValueError(f"--scst-greedy-every must be 0 (never) or a number of updates, got {scst_greedy_every}")
        self.greedy_every = scst_greedy_every
        self.sentence_avg = sentence_avg
        self.style_weight = float(scst_style_reward_weight)
        if self.style_weight < 0:
            raise ValueError(f"--scst-style-reward-weight must be >= 0, got {self.style_weight}")
        if (self.style_weight > 0) != bool(scst_style_classifier):
            raise ValueError("--scst-style-reward-weight > 0 and --scst-style-classifier FILE go together: give both "
                             "for the style reward, neither for CIDEr-D alone")
        self.style_reward = StyleReward(scst_style_classifier, task.styles) if self.style_weight > 0 else None
        logger.info("SCST reward: %s", self.reward_description())
        self._greedy_generator = None
        self._reports_encoding = True

    # ---- pieces -------------------------------------------------------------------------------

    def reward_description(self) -> str:
        """The reward configuration in words, with its SacreEOS signature (or why it has none)."""
        generator = "samples" if self.task.scst_generation.get("sampling") else "beams"
        signature = sacreeos_signature(self.baseline, self.samples_per_image, self.cider.n, self.cider.sigma,
                                       wrap_for_cider("a reference", self.task.cleaner))
        words = (f"CIDEr-D (n {self.cider.n}, sigma {self.cider.sigma:g}, training-corpus document frequencies, "
                 f"<eos> in the reward text) over {self.samples_per_image} {generator} per image, "
                 f"{self.baseline} baseline")
        if self.style_reward is not None:
            words += f", plus {self.style_weight:g} * log p(requested style | hypothesis)"
        if signature is None:
            return f"{words}; SacreEOS has no signature for the {self.baseline} baseline"
        extra = "; the style reward is outside what SacreEOS describes" if self.style_reward is not None else ""
        return f"{words}; SacreEOS signature {signature}{extra}"

    def hypothesis_texts(self, hypotheses: List[List[torch.Tensor]]) -> List[List[str]]:
        """The plain text of every hypothesis (token ids ending in </s>), per image: what both parts of the
        reward score."""
        return [[self.task.decode(tokens) for tokens in hyps] for hyps in hypotheses]

    def style_log_probs(self, texts: List[List[str]], styles: List[str]) -> Optional[np.ndarray]:
        """log p(requested style | hypothesis) of every hypothesis text (per image), image-major
        [num_images * K]; None without the style reward. styles: the requested style of each image."""
        if self.style_reward is None:
            return None
        captions = [text for image_texts in texts for text in image_texts]
        requested = [style for style, image_texts in zip(styles, texts) for _ in image_texts]
        return self.style_reward.log_probs(captions, requested)

    def rewards(self, scores: np.ndarray, style_log_probs: Optional[np.ndarray]) -> np.ndarray:
        """CIDEr-D `scores` [N] plus λ · `style_log_probs` [N] (when the style reward is on)."""
        return scores if style_log_probs is None else scores + self.style_weight * style_log_probs

    def references(self, sample) -> List[List[str]]:
        """Reference captions per image: the cleaned captions the sample carries (all of its image's
        training captions under --scst)."""
        return sample["references"]

    def generate(self, model, sample, generator, encoder_out=None):
        """Hypotheses (token tensors ending in </s>) of every image: list over images of lists of K,
        generated in eval mode (the modes found are restored).

        encoder_out: the loss pass's encoding of `sample` to decode from (see `shared_encoding`).
        """
        given = None if encoder_out is None else [detached(encoder_out)]
        with eval_mode(model), torch.no_grad():
            output = generator.generate([model], sample, encoder_outs=given)
        return [[hyp["tokens"] for hyp in hyps] for hyps in output]

    def shared_encoding(self, model, sample):
        """The encoding of `sample` in the model's current mode (with gradients), for the loss pass and
        generation alike, when it equals the eval-mode encoding generation needs; else None."""
        reusable = not model.training or model.encoder.is_exact_in_training()
        if model.training and self._reports_encoding:
            self._reports_encoding = False
            if reusable:
                logger.info("SCST: each batch is encoded once, for generation and training")
            else:
                logger.info("SCST: dropout, drop path or BatchNorm statistics make the train-mode encoder differ "
                            "from eval mode; generation encodes each batch again in eval mode")
        if not reusable:
            return None
        return model.encoder(**{key: sample["net_input"][key] for key in ENCODER_INPUTS})

    def cider_scores(self, texts: List[List[str]], references: List[List[str]]) -> np.ndarray:
        """CIDEr-D of every hypothesis text (per image, see `hypothesis_texts`), image-major: [num_images * K]."""
        cleaner = self.task.cleaner
        gts = {i: [wrap_for_cider(r, cleaner) for r in refs] for i, refs in enumerate(references)}
        res = [
            {"image_id": i, "caption": [wrap_for_cider(text, cleaner)]}
            for i, image_texts in enumerate(texts) for text in image_texts
        ]
        return self.cider.compute_score(gts, res)[1]

    def greedy_generator(self, model):
        """Beam-1 search with the other --scst-args options, for the greedy baseline."""
        if self._greedy_generator is None:
            options = dict(self.task.scst_generation, beam=1, sampling=False)
            with eval_mode(model):  # fairseq's generators put their models in eval mode when built
                self._greedy_generator = self.task.caption_generator([model], options)
        return self._greedy_generator

    def teacher_forced_lprobs(self, model, sample, hypotheses, encoder_out=None):
        """Log-probs [N, T] (fp32; 0 at padding) of each hypothesis token (N = images * K) and the target [N, T].

        The pass runs in the model's current mode. The images are encoded once (or `encoder_out`
        of this pass is used), and each encoding serves its image's K hypotheses. Only the M non-pad
        positions are projected onto the vocabulary, and log p(token) = logit(token) - logsumexp(logits)
        is taken from those [M, V] logits, so no [N, T, V] log-probs are made or kept for the backward pass.
        """
        k = len(hypotheses[0])
        if any(len(hyps) != k for hyps in hypotheses):
            raise ValueError(f"every image needs the same number of hypotheses, got {[len(h) for h in hypotheses]}")
        flat = [tokens for hyps in hypotheses for tokens in hyps]
        pad, bos = self.padding_idx, self.task.target_dictionary.bos()
        target = torch.full((len(flat), max(t.numel() for t in flat)), pad, dtype=torch.long)
        prev = target.clone()
        for i, tokens in enumerate(flat):
            target[i, : tokens.numel()] = tokens
            prev[i, 0] = bos
            prev[i, 1 : tokens.numel()] = tokens[:-1]
        device = sample["net_input"]["src_tokens"].device
        target, prev = target.to(device), prev.to(device)
        net_input = {key: sample["net_input"][key] for key in ENCODER_INPUTS}
        features, _ = model(prev_output_tokens=prev, rows_per_source=k, encoder_out=encoder_out, features_only=True,
                            **net_input)  # [N, T, C]
        non_pad = target.ne(pad)
        logits = model.decoder.output_layer(features[non_pad]).float()  # [M, V]
        logits = mask_outside_range(logits, self.task.constraint_range)
        picked = logits.gather(-1, target[non_pad].unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)  # [M]
        token_lprobs = torch.zeros(target.shape, dtype=picked.dtype, device=device).masked_scatter(non_pad, picked)
        return token_lprobs, target

    # ---- the loss -----------------------------------------------------------------------------

    def forward(self, model, sample, update_num=0, reduce=True):
        start = time.perf_counter()
        encoder_out = self.shared_encoding(model, sample)
        hypotheses = self.generate(model, sample, self.task.scst_generator, encoder_out)
        generated = time.perf_counter()
        references = self.references(sample)
        texts = self.hypothesis_texts(hypotheses)
        scores = self.cider_scores(texts, references)
        style_log_probs = self.style_log_probs(texts, sample["styles"])
        rewards = self.rewards(scores, style_log_probs)
        greedy = greedy_rewards = None
        if self.baseline == "greedy" or (self.greedy_every > 0 and update_num % self.greedy_every == 0):
            greedy_hyps = [h[:1] for h in self.generate(model, sample, self.greedy_generator(model), encoder_out)]
            greedy_texts = self.hypothesis_texts(greedy_hyps)
            greedy = self.cider_scores(greedy_texts, references)
            greedy_rewards = self.rewards(greedy, self.style_log_probs(greedy_texts, sample["styles"]))
        advantages = rewards - baseline_scores(rewards, len(hypotheses), self.baseline, greedy_rewards)
        rewarded = time.perf_counter()

        token_lprobs, target = self.teacher_forced_lprobs(model, sample, hypotheses, encoder_out)
        non_pad = target.ne(self.padding_idx)
        advantage = torch.as_tensor(advantages, dtype=token_lprobs.dtype, device=token_lprobs.device)
        loss = -(token_lprobs * advantage.unsqueeze(1) * non_pad).sum()
        forwarded = time.perf_counter()

        ntokens = int(non_pad.sum().item())
        nsentences = target.size(0)
        sample_size = nsentences if self.sentence_avg else ntokens
        logging_output = {
            "loss": loss.data,
            "score": float(scores.sum()),
            "advantage": float(np.abs(advantages).sum()),
            **({} if style_log_probs is None else {"style_logp": float(style_log_probs.sum()),
                                                   "reward": float(rewards.sum())}),
            "ntokens": ntokens,
            "nsentences": nsentences,
            "sample_size": sample_size,
            **hypothesis_diagnostics(hypotheses, greedy),
            "time_generate": generated - start,
            "time_reward": rewarded - generated,
            "time_forward": forwarded - rewarded,
        }
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        sample_size = max(total("sample_size"), 1)
        nsentences = max(total("nsentences"), 1)
        metrics.log_scalar("loss", total("loss") / sample_size, sample_size, round=3)
        metrics.log_scalar("score", total("score") / nsentences, nsentences, round=3)
        metrics.log_scalar("advantage", total("advantage") / nsentences, nsentences, round=3)
        if any("style_logp" in log for log in logging_outputs):
            metrics.log_scalar("style_logp", total("style_logp") / nsentences, nsentences, round=3)
            metrics.log_scalar("reward", total("reward") / nsentences, nsentences, round=3)
        images = total("num_images")
        if images > 0:
            metrics.log_scalar("identical", total("identical_images") / images, images, round=3)
            metrics.log_scalar("hyp_length", total("hyp_tokens") / nsentences, nsentences, round=3)
        greedy_images = total("greedy_images")
        if greedy_images > 0:
            metrics.log_scalar("greedy_score", total("greedy_score") / greedy_images, greedy_images, round=3)
        metrics.log_scalar("ntokens", total("ntokens"), 1, round=3)
        metrics.log_scalar("nsentences", total("nsentences"), 1, round=3)
        metrics.log_scalar("sample_size", total("sample_size"), 1, round=3)
        timed = total("time_generate") + total("time_reward") + total("time_forward")
        if timed > 0:
            for part in ("generate", "reward", "forward"):
                metrics.log_scalar(f"share_{part}", total(f"time_{part}") / timed, timed, round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

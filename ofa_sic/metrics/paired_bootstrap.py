"""Paired bootstrap over images: how sure is it that run B's captions score higher than run A's?

Both runs caption the same N images. Each metric is reduced once to per-image contributions of each
run, computed by the same pycocoevalcap code as `ofa-sic evaluate` (`ScoredCaptions`); a resample
draws N image indices with replacement, the same indices for A and B, and the metric of each run is
recomputed from the drawn images' contributions. The 95% interval of B - A is the 2.5th and 97.5th
percentile of the resampled differences; `share_b_better` is the share of resamples where B > A.

How each metric is recomputed on a resample (an image drawn twice counts twice):
- BLEU-4 is a corpus metric: per image the hypothesis length, the closest reference length and the
  clipped/total n-gram counts of orders 1..4 are summed over the drawn images and turned into BLEU
  exactly as pycocoevalcap's BleuScorer does (same epsilons, same brevity penalty);
- METEOR: each image's matching statistics (the jar's `SCORE` line) are handed back to the same
  METEOR process with `EVAL`, which aggregates them into the corpus score, as for the full set;
- ROUGE-L and CIDEr are means of per-image scores, so a resample's score is the mean of its images'.
  CIDEr's document frequencies stay those of the full test set's references (as in evaluation): a
  resample does not recompute them from its own, duplicated, references.
- Per-style CIDEr resamples each style's images alone, with that style's references as the corpus for
  the document frequencies, matching the per-style CIDEr that `evaluate` reports.
"""
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

BLEU_ORDER = 4
# pycocoevalcap's BleuScorer epsilons ("tiny" keeps a zero count at zero, "small" avoids 0/0)
BLEU_TINY = 1e-15
BLEU_SMALL = 1e-9
CONFIDENCE = 0.95


@dataclass
class ImageContributions:
    """One run's per-image metric contributions, rows in the order of `keys`.

    bleu: [N, 2 + 2 * 4] float: hypothesis length, closest reference length, n-gram guesses of
        orders 1..4, clipped n-gram matches of orders 1..4;
    rouge: [N] ROUGE-L per image (x1); cider: [N] CIDEr per image (x1, full-set document frequencies);
    meteor: N METEOR statistics lines, or None when METEOR is off.
    """

    keys: List[str]
    bleu: np.ndarray
    rouge: np.ndarray
    cider: np.ndarray
    meteor: Optional[List[str]]


def bleu_statistics(gts: Mapping[str, List[str]], res: Mapping[str, List[str]], keys: Sequence[str]) -> np.ndarray:
    """[N, 10] BLEU statistics per image (see ImageContributions), from pycocoevalcap's own cooking."""
    from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test

    rows = []
    for key in keys:
        cooked = cook_test(res[key][0], cook_refs(gts[key], n=BLEU_ORDER), n=BLEU_ORDER)
        testlen = cooked["testlen"]
        closest = min((abs(length - testlen), length) for length in cooked["reflen"])[1]  # option="closest"
        rows.append([testlen, closest, *cooked["guess"], *cooked["correct"]])
    return np.asarray(rows, dtype=np.float64)


def corpus_bleu4(sums: np.ndarray) -> np.ndarray:
    """BLEU-4 (x1) from summed statistics [..., 10] -> [...], as BleuScorer.compute_score computes it."""
    testlen, reflen = sums[..., 0], sums[..., 1]
    guess, correct = sums[..., 2:2 + BLEU_ORDER], sums[..., 2 + BLEU_ORDER:]
    product = np.prod((correct + BLEU_TINY) / (guess + BLEU_SMALL), axis=-1)
    bleu = product ** (1.0 / BLEU_ORDER)
    ratio = (testlen + BLEU_TINY) / (reflen + BLEU_SMALL)
    penalty = np.where(ratio < 1, np.exp(1 - 1 / np.minimum(ratio, 1)), 1.0)
    return bleu * penalty


def image_contributions(scored) -> ImageContributions:
    """Per-image contributions of a `ScoredCaptions` (ofa_sic.metrics.caption_eval), all its ids."""
    from pycocoevalcap.rouge.rouge import Rouge

    keys = list(scored.gts)
    gts, res = scored.gts, scored.res
    _, rouge = Rouge().compute_score(gts, res)
    cider_per_image = scored.cider_per_image()
    cider = np.asarray([cider_per_image[k] for k in keys]) / 100.0
    meteor = None
    if scored.evaluator.meteor is not None:
        process = scored.evaluator.meteor
        with process.lock:
            meteor = [process._stat(res[k][0], gts[k]) for k in keys]
    return ImageContributions(keys, bleu_statistics(gts, res, keys), np.asarray(rouge, dtype=np.float64), cider, meteor)


def resample_counts(num_images: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """[resamples, num_images] how often each image is drawn in each resample (rows sum to num_images)."""
    draws = rng.integers(0, num_images, size=(resamples, num_images))
    counts = np.zeros((resamples, num_images), dtype=np.int64)
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1)
    return counts


def meteor_corpus_scores(meteor, statistics: List[str], counts: np.ndarray) -> np.ndarray:
    """Corpus METEOR (x1) of each resample: the jar's EVAL over the drawn images' statistics lines."""
    scores = []
    with meteor.lock:
        process = meteor.meteor_p
        for row in counts:
            drawn = [line for line, times in zip(statistics, row) for _ in range(times)]
            process.stdin.write(("EVAL ||| " + " ||| ".join(drawn) + "\n").encode())
            process.stdin.flush()
            for _ in drawn:  # one segment score per line, then the corpus score
                process.stdout.readline()
            scores.append(float(process.stdout.readline().strip()))
    return np.asarray(scores)


def corpus_values(contributions: ImageContributions, counts: np.ndarray, meteor) -> Dict[str, np.ndarray]:
    """{metric: [resamples] value x100} of one run for each resample (rows of `counts`)."""
    weights = counts.astype(np.float64)
    num_images = weights.sum(axis=1)
    values = {"BLEU-4": corpus_bleu4(weights @ contributions.bleu)}
    if contributions.meteor is not None:
        values["METEOR"] = meteor_corpus_scores(meteor, contributions.meteor, counts)
    values["ROUGE-L"] = weights @ contributions.rouge / num_images
    values["CIDEr"] = weights @ contributions.cider / num_images
    return {name: 100.0 * value for name, value in values.items()}


def summarize(a_value: float, b_value: float, differences: np.ndarray, num_images: int) -> Dict[str, float]:
    """Point values, difference B - A, its 95% percentile interval and the share of resamples with B > A."""
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(differences, [tail, 100 - tail])
    return {
        "num_images": num_images, "a": float(a_value), "b": float(b_value), "difference": float(b_value - a_value),
        "ci_low": float(low), "ci_high": float(high), "share_b_better": float(np.mean(differences > 0)),
    }


def paired_bootstrap(scored_a, scored_b, styles: Mapping[str, str], resamples: int = 1000, seed: int = 0) -> Dict:
    """Paired bootstrap of two `ScoredCaptions` over the same ids with the same references.

    styles: {id: style} for the per-style CIDEr. Returns {"overall": {metric: summary},
    "per_style_cider": {style: summary}, "resamples": R, "seed": seed}; summaries as `summarize`.
    """
    if list(scored_a.gts) != list(scored_b.gts) or any(scored_a.gts[k] != scored_b.gts[k] for k in scored_a.gts):
        raise ValueError("the two runs must be scored on the same images with the same references, in the same order")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    rng = np.random.default_rng(seed)
    a, b = image_contributions(scored_a), image_contributions(scored_b)
    full = np.ones((1, len(a.keys)), dtype=np.int64)
    counts = resample_counts(len(a.keys), resamples, rng)
    a_full, b_full = corpus_values(a, full, scored_a.evaluator.meteor), corpus_values(b, full, scored_b.evaluator.meteor)
    a_boot, b_boot = corpus_values(a, counts, scored_a.evaluator.meteor), corpus_values(b, counts, scored_b.evaluator.meteor)
    overall = {
        name: summarize(a_full[name][0], b_full[name][0], b_boot[name] - a_boot[name], len(a.keys)) for name in a_full
    }
    per_style = {}
    for style in sorted(set(styles.values())):
        ids = [k for k in a.keys if styles[k] == style]
        a_cider, b_cider = style_cider(scored_a, ids), style_cider(scored_b, ids)
        style_counts = resample_counts(len(ids), resamples, rng).astype(np.float64)
        differences = style_counts @ (b_cider - a_cider) / len(ids)
        per_style[style] = summarize(a_cider.mean(), b_cider.mean(), differences, len(ids))
    return {"overall": overall, "per_style_cider": per_style, "resamples": resamples, "seed": seed}


def style_cider(scored, ids: List[str]) -> np.ndarray:
    """[len(ids)] CIDEr (x100) per image with the references of `ids` alone as the corpus."""
    from pycocoevalcap.cider.cider import Cider

    _, values = Cider().compute_score({k: scored.gts[k] for k in ids}, {k: scored.res[k] for k in ids})
    return 100.0 * np.asarray(values, dtype=np.float64)

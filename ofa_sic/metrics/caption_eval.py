"""COCO caption metrics of one set of captions, tokenized once and scored on the whole set or any subset.

The one computation of COCO caption metrics in the project (`ofa-sic evaluate`, `score-generate`,
`--scoring coco_caption`). The numbers are pycocoevalcap's (PTB tokenizer, BLEU-1..4, METEOR, ROUGE-L,
CIDEr, each x100); what this adds to calling it directly:

- the captions are tokenized once and METEOR's Java process (slow to start: it loads paraphrase
  tables) is started once, at construction, so it loads while captions are still being generated;
- `scores(ids)` scores a subset (e.g. one style) exactly as scoring that subset alone would:
  tokenization is per caption, so subsetting the tokenized captions changes nothing;
- `cider_per_image()`: each caption's own CIDEr (pycocoevalcap's per-image scores);
- optional SPICE (see `ofa_sic.metrics.spice`), computed once per caption and averaged per subset.

Corpus metrics of a subset use that subset as the corpus: CIDEr's idf comes from the subset's
references, so a subset's CIDEr is not the mean of its captions' overall per-image CIDEr.
"""
from typing import Dict, Iterable, List, Mapping, Optional

from ofa_sic.metrics.spice import SpiceUnavailable, spice_per_image, spice_skip_reason

METRIC_NAMES = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
SPICE_NOT_REQUESTED = "SPICE not requested"


class CaptionEvaluator:
    """Holds a running METEOR process; `evaluate(references, hypotheses)` returns a `ScoredCaptions`."""

    def __init__(self, meteor: bool = True, spice: bool = True):
        self.meteor = None
        if meteor:
            from pycocoevalcap.meteor.meteor import Meteor

            try:
                self.meteor = Meteor()  # starts `java -jar meteor-1.5.jar` now; it loads in the background
            except FileNotFoundError:
                raise OSError("METEOR and the PTB tokenizer need Java: install a JRE so that `java` is on PATH") from None
        self.spice = spice

    def evaluate(self, references: Mapping[str, List[str]], hypotheses: Mapping[str, str]) -> "ScoredCaptions":
        """Tokenize `references[id]` (lists) and `hypotheses[id]` (one caption each, same ids) with PTB."""
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        if set(references) != set(hypotheses):
            differing = sorted(set(references) ^ set(hypotheses))[:5]
            raise ValueError(f"references and hypotheses must have the same ids; differing ids include {differing}")
        empty = [key for key, refs in references.items() if not refs]
        if empty:
            raise ValueError(f"{len(empty)} captions have no references, e.g. id {empty[0]!r}")
        tokenizer = PTBTokenizer()
        gts = tokenizer.tokenize({k: [{"caption": c} for c in refs] for k, refs in references.items()})
        res = tokenizer.tokenize({k: [{"caption": h}] for k, h in hypotheses.items()})
        return ScoredCaptions(gts, res, self)

    def close(self) -> None:
        """Stop METEOR's Java process (also done when the evaluator is garbage-collected)."""
        if self.meteor is not None:
            process = self.meteor.meteor_p
            process.stdin.close()
            process.kill()
            process.wait()
            self.meteor = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ScoredCaptions:
    """Tokenized references and hypotheses; corpus scores of any subset of ids, per-image CIDEr."""

    def __init__(self, gts: Dict[str, List[str]], res: Dict[str, List[str]], evaluator: CaptionEvaluator):
        self.gts, self.res, self.evaluator = gts, res, evaluator
        self._spice: Optional[Dict[str, float]] = None
        self.spice_note: Optional[str] = None if evaluator.spice else SPICE_NOT_REQUESTED

    def _subset(self, ids: Optional[Iterable[str]]):
        if ids is None:
            return self.gts, self.res
        ids = list(ids)
        if not ids:
            raise ValueError("cannot score an empty set of captions")
        return {k: self.gts[k] for k in ids}, {k: self.res[k] for k in ids}

    def scores(self, ids: Optional[Iterable[str]] = None) -> Dict[str, float]:
        """BLEU-1..4, METEOR (if enabled), ROUGE-L, CIDEr (x100), and SPICE when available, of `ids` (default all)."""
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge

        gts, res = self._subset(ids)
        scores = {}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        for n, value in enumerate(bleu, start=1):
            scores[f"BLEU-{n}"] = 100 * float(value)
        if self.evaluator.meteor is not None:
            scores["METEOR"] = 100 * float(self.evaluator.meteor.compute_score(gts, res)[0])
        scores["ROUGE-L"] = 100 * float(Rouge().compute_score(gts, res)[0])
        scores["CIDEr"] = 100 * float(Cider().compute_score(gts, res)[0])
        spice = self.spice_per_image()
        if spice is not None:
            values = [spice[k] for k in gts]
            scores["SPICE"] = sum(values) / len(values)
        return scores

    def cider_per_image(self) -> Dict[str, float]:
        """CIDEr (x100) of each caption, with the whole set's references as the corpus."""
        from pycocoevalcap.cider.cider import Cider

        keys = list(self.gts)
        _, values = Cider().compute_score(self.gts, {k: self.res[k] for k in keys})
        return {k: 100 * float(v) for k, v in zip(keys, values)}

    def spice_per_image(self) -> Optional[Dict[str, float]]:
        """SPICE (x100) per caption, or None (then `spice_note` says why); computed once."""
        if self._spice is None and self.spice_note is None:
            self.spice_note = spice_skip_reason()
            if self.spice_note is None:
                try:
                    self._spice = spice_per_image(self.gts, self.res)
                except SpiceUnavailable as error:
                    self.spice_note = str(error)
        return self._spice

"""`fairseq-generate ... --scoring coco_caption`: COCO caption metrics at the end of generation.

fairseq-generate hands the scorer each row's target text and top hypothesis (`add_string`); for the
style_caption task the target text is the row's references joined by `&&`. At the end it prints
`result_string()` after "Generate <split> with beam=<k>:", e.g.

    Generate test with beam=5: BLEU-1 61.20, BLEU-2 ..., CIDEr 85.31 (x100, 12 captions)
    SPICE skipped: stanford-corenlp-3.6.0.jar, ... not found under ...; to enable SPICE, run ...

SPICE is computed only when pycocoevalcap's Stanford CoreNLP jars are already installed (nothing is
ever downloaded); `--coco-spice off` never runs it. The scores are pycocoevalcap's (see
`ofa_sic.metrics.caption_eval`).
"""
from dataclasses import dataclass, field

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.scoring import BaseScorer, register_scorer

from ofa_sic.data.text import REFERENCE_SEPARATOR
from ofa_sic.metrics.caption_eval import SPICE_NOT_REQUESTED, CaptionEvaluator


@dataclass
class CocoCaptionScorerConfig(FairseqDataclass):
    coco_spice: ChoiceEnum(["auto", "off"]) = field(
        default="auto",
        metadata={"help": "auto: also score SPICE when pycocoevalcap's CoreNLP jars are installed (never downloads); off: never"},
    )


def split_references(target: str) -> list:
    """`ref1&&ref2&&...` (as fairseq-generate decodes a style_caption target) -> [ref1, ref2, ...]."""
    references = [part.strip() for part in target.split(REFERENCE_SEPARATOR)]
    return [ref for ref in references if ref]


@register_scorer("coco_caption", dataclass=CocoCaptionScorerConfig)
class CocoCaptionScorer(BaseScorer):
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr (x100) and, when available, SPICE of all added captions."""

    def __init__(self, cfg):
        super().__init__(cfg)
        # METEOR's Java process starts now and loads while fairseq-generate decodes; it ends with the scorer.
        self.evaluator = CaptionEvaluator(meteor=True, spice=str(cfg.coco_spice) != "off")
        self._result = None

    def add_string(self, ref: str, pred: str) -> None:
        references = split_references(ref)
        if not references:
            raise ValueError(f"caption #{len(self.ref) + 1} has no reference captions (target text {ref!r})")
        self.ref.append(references)
        self.pred.append(pred.strip())
        self._result = None

    def _scores(self):
        """(scores dict, SPICE note or None), computed once per set of added captions."""
        if self._result is None:
            ids = [str(i) for i in range(len(self.pred))]
            scored = self.evaluator.evaluate(dict(zip(ids, self.ref)), dict(zip(ids, self.pred)))
            scores = scored.scores()
            self._result = (scores, scored.spice_note)
        return self._result

    def score(self) -> float:
        """CIDEr (x100)."""
        return self._scores()[0]["CIDEr"] if self.pred else 0.0

    def result_string(self) -> str:
        if not self.pred:
            return "no captions were scored"
        scores, spice_note = self._scores()
        line = ", ".join(f"{name} {value:.2f}" for name, value in scores.items() if name != "SPICE")
        line += f" (x100, {len(self.pred)} captions)"
        if "SPICE" in scores:
            return line + f"\nSPICE {scores['SPICE']:.2f}"
        if spice_note and spice_note != SPICE_NOT_REQUESTED:
            return line + "\n" + spice_note
        return line

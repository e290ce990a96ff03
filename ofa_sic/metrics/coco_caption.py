"""COCO caption metrics (pycocoevalcap: PTB tokenizer, BLEU-1..4, METEOR, ROUGE-L, CIDEr) on the x100 scale.

METEOR and the PTB tokenizer run the Java jars bundled with pycocoevalcap (a local `java` is needed);
SPICE is not computed here.
"""
from typing import Dict, List, Mapping


def coco_caption_scores(references: Mapping[str, List[str]], hypotheses: Mapping[str, str], meteor: bool = True) -> Dict[str, float]:
    """Corpus scores of `hypotheses[id]` against `references[id]` (same ids), each x100."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    if set(references) != set(hypotheses):
        missing = sorted(set(references) ^ set(hypotheses))[:5]
        raise ValueError(f"references and hypotheses must have the same ids; differing ids include {missing}")
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in refs] for k, refs in references.items()})
    res = tokenizer.tokenize({k: [{"caption": h}] for k, h in hypotheses.items()})
    scores = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for n, value in enumerate(bleu, start=1):
        scores[f"BLEU-{n}"] = 100 * value
    if meteor:
        from pycocoevalcap.meteor.meteor import Meteor

        scorer = Meteor()
        scores["METEOR"] = 100 * scorer.compute_score(gts, res)[0]
        scorer.close() if hasattr(scorer, "close") else None
    scores["ROUGE-L"] = 100 * Rouge().compute_score(gts, res)[0]
    scores["CIDEr"] = 100 * Cider().compute_score(gts, res)[0]
    return scores

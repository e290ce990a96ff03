"""Style accuracy: how often a text-only style classifier recognises the requested style in a caption.

`style_accuracy(classifier, captions, styles)` gives, overall and per style, the share (x100) of
captions whose requested style is the classifier's best guess (top-1) or among its five best (top-5).
Run on the human test references (every reference of a row labelled with the row's style), the same
numbers are the ceiling: what the classifier reaches on captions people wrote in that style. Per-style
figures are over that style's captions alone. With five or fewer styles top-5 is 100 by construction.
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ofa_sic.metrics.style_classifier import StyleClassifier

TOP_K = 5


def check_styles_known(classifier: StyleClassifier, styles: Sequence[str], classifier_path: str, source: str) -> None:
    """ValueError naming the styles of `source` that the classifier was not trained on."""
    unknown = sorted(set(styles) - set(classifier.styles))
    if unknown:
        shown = ", ".join(map(repr, unknown[:5])) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ValueError(f"{source} has styles the classifier {classifier_path} was not trained on: {shown}; "
                         "train it on this data set's train split (`ofa-sic style-classifier --data DIR`)")


def style_hits(classifier: StyleClassifier, captions: Sequence[str], styles: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """(top-1 hit [N] bool, top-5 hit [N] bool) of `captions[i]` against the requested `styles[i]`."""
    if len(captions) != len(styles):
        raise ValueError(f"{len(captions)} captions but {len(styles)} styles")
    index = {name: i for i, name in enumerate(classifier.styles)}
    wanted = np.array([index[s] for s in styles], dtype=np.int64)
    best = classifier.top_k(captions, TOP_K)
    hits = best == wanted[:, np.newaxis]
    return hits[:, 0], hits.any(axis=1)


def _shares(top1: np.ndarray, top5: np.ndarray, prefix: str) -> Dict[str, float]:
    return {f"{prefix}style_top1": 100 * float(top1.mean()), f"{prefix}style_top5": 100 * float(top5.mean())}


def style_accuracy(classifier: StyleClassifier, captions: Sequence[str], styles: Sequence[str],
                   prefix: str = "") -> Tuple[Dict[str, float], Dict[str, Dict[str, float]]]:
    """({prefix}style_top1/_top5 over all captions, {style: the same over its captions}), x100."""
    top1, top5 = style_hits(classifier, captions, styles)
    if not len(top1):
        raise ValueError("cannot measure style accuracy of no captions")
    by_style: Dict[str, List[int]] = {}
    for i, style in enumerate(styles):
        by_style.setdefault(style, []).append(i)
    per_style = {style: _shares(top1[rows], top5[rows], prefix) for style, rows in by_style.items()}
    return _shares(top1, top5, prefix), per_style


def reference_style_accuracy(classifier: StyleClassifier, references: Sequence[Sequence[str]], styles: Sequence[str]):
    """The ceiling: `style_accuracy` of every reference of row i labelled `styles[i]`, keys prefixed "reference_"."""
    flat_captions = [ref for refs in references for ref in refs]
    flat_styles = [style for refs, style in zip(references, styles) for _ in refs]
    return style_accuracy(classifier, flat_captions, flat_styles, prefix="reference_")

"""The style figures of `ofa-sic evaluate` and `ofa-sic score-generate`: style accuracy beside its
reference ceiling, and diversity, overall and per style (see ofa_sic.metrics.style_accuracy and
ofa_sic.metrics.diversity for the definitions); a plain-text table of them.

All shares are x100, like the caption metrics. Keys added to each score dict:
style_top1, style_top5, reference_style_top1, reference_style_top5 (with --style-classifier),
distinct-1, distinct-2, vocabulary, mean_length, copied_from_train (when the data folder has train.tsv).
"""
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ofa_sic.data.caption_rows import read_caption_rows
from ofa_sic.metrics.diversity import diversity, training_caption_set
from ofa_sic.metrics.style_accuracy import check_styles_known, reference_style_accuracy, style_accuracy
from ofa_sic.metrics.style_classifier import StyleClassifier

TABLE_COLUMNS = (
    ("style_top1", "top1"), ("reference_style_top1", "ref-top1"), ("style_top5", "top5"),
    ("reference_style_top5", "ref-top5"), ("distinct-1", "dist-1"), ("distinct-2", "dist-2"),
    ("vocabulary", "vocab"), ("mean_length", "length"), ("copied_from_train", "copied"),
)


class StyleFigures:
    """What the figures are measured with: the classifier (or None) and the training captions (or None)."""

    def __init__(self, data_dir: str, classifier_path: Optional[str]):
        self.classifier_path = classifier_path
        self.classifier = StyleClassifier.load(classifier_path) if classifier_path else None
        self.train_tsv = os.path.join(data_dir, "train.tsv")
        self.training_captions = None
        if os.path.isfile(self.train_tsv):
            self.training_captions = training_caption_set(
                caption for row in read_caption_rows(self.train_tsv) for caption in row.captions)

    def check_styles(self, styles: Sequence[str], source: str) -> None:
        """Fail before any generation when `source` has styles the classifier does not know."""
        if self.classifier is not None:
            check_styles_known(self.classifier, styles, self.classifier_path, source)

    def measure(self, captions: Sequence[str], styles: Sequence[str],
                references: Sequence[Sequence[str]]) -> Tuple[Dict[str, float], Dict[str, Dict[str, float]]]:
        """(overall figures, {style: num_samples and figures}) of `captions[i]` requested in `styles[i]` with
        `references[i]`."""
        by_style: Dict[str, List[int]] = {}
        for i, style in enumerate(styles):
            by_style.setdefault(style, []).append(i)
        overall = diversity(captions, self.training_captions)
        per_style = {style: {"num_samples": len(rows), **diversity([captions[i] for i in rows], self.training_captions)}
                     for style, rows in by_style.items()}
        if self.classifier is not None:
            for found_overall, found_per_style in (style_accuracy(self.classifier, captions, styles),
                                                   reference_style_accuracy(self.classifier, references, styles)):
                overall.update(found_overall)
                for style, figures in found_per_style.items():
                    per_style[style].update(figures)
        return overall, per_style

    def settings(self) -> Dict:
        """What metrics.json records about how the figures were measured."""
        classifier = None
        if self.classifier is not None:
            classifier = {"path": os.path.abspath(self.classifier_path), "num_styles": len(self.classifier.styles),
                          **self.classifier.settings}
        return {
            "style_classifier": classifier,
            "training_captions": os.path.abspath(self.train_tsv) if self.training_captions is not None else None,
            "note": "style accuracy: share of captions whose requested style is the classifier's top-1 / among its "
                    "top-5; reference_*: the same classifier on the human references (the ceiling); distinct-n: "
                    "distinct / all n-grams pooled over the captions; copied_from_train: captions equal to a "
                    "training caption; captions compared after OFA's cleaning; shares x100"
                    + ("" if self.training_captions is not None else
                       f"; copied_from_train not measured: {self.train_tsv} not found"),
        }


def style_figures_table(per_style: Mapping[str, Mapping[str, float]], overall: Mapping[str, float]) -> str:
    """A plain-text table of the style figures: one row per style (in `per_style` order), then all styles."""
    columns = [(key, title) for key, title in TABLE_COLUMNS if key in overall]
    rows = list(per_style.items()) + [("all styles", overall)]
    width = max(len("style"), *(len(name) for name, _ in rows))
    header = f"{'style':<{width}}  " + "  ".join(f"{title:>8}" for _, title in columns)
    lines = [header]
    for i, (name, figures) in enumerate(rows):
        if i == len(rows) - 1:
            lines.append("-" * len(header))
        lines.append(f"{name:<{width}}  " + "  ".join(f"{figures[key]:>8.2f}" if key != "vocabulary"
                                                       else f"{figures[key]:>8d}" for key, _ in columns))
    return "\n".join(lines)

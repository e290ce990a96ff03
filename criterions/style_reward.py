"""The style part of the SCST reward: log p(requested style | hypothesis) under the text-only style
classifier of `ofa-sic style-classifier` (ofa_sic.metrics.style_classifier).

The classifier's decision scores of a caption are turned into probabilities over its styles with a
softmax (for its multinomial logistic regression this is scikit-learn's `predict_proba`); the reward of
a hypothesis is the log of the probability of the style its image row asked for.
"""
from typing import Sequence

import numpy as np

from ofa_sic.data.styles import StyleVocabulary
from ofa_sic.metrics.style_accuracy import check_styles_known
from ofa_sic.metrics.style_classifier import StyleClassifier


class StyleReward:
    """log p(style | caption) for the styles of a run (`styles`: the task's vocabulary)."""

    def __init__(self, path: str, styles: StyleVocabulary):
        self.classifier = StyleClassifier.load(path)
        self.styles = styles
        check_styles_known(self.classifier, styles.names, path, "this run's style vocabulary")
        column_of = {name: column for column, name in enumerate(self.classifier.styles)}
        #: [num_styles]: the classifier's column of each style of the run, in vocabulary order.
        self.columns = np.array([column_of[name] for name in styles.names])

    def log_probs(self, captions: Sequence[str], styles: Sequence[str]) -> np.ndarray:
        """log p(styles[i] | captions[i]) for each i: [N] float64 (<= 0)."""
        if len(captions) != len(styles):
            raise ValueError(f"{len(captions)} captions but {len(styles)} styles")
        scores = self.classifier.scores(captions).astype(np.float64)  # [N, C]
        top = scores.max(axis=1, keepdims=True)
        log_p = scores - top - np.log(np.exp(scores - top).sum(axis=1, keepdims=True))
        columns = self.columns[[self.styles.index(style) for style in styles]]
        return log_p[np.arange(len(captions)), columns]

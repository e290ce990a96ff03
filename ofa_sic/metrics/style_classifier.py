"""A text-only style classifier: tf-idf word n-grams + multinomial logistic regression (scikit-learn).

`train_style_classifier(captions, styles)` fits it; `StyleClassifier.save(path)` stores it as a NumPy
`.npz` of plain arrays (vocabulary strings, idf, coefficients, intercepts, style names, and a JSON
string of settings), and `StyleClassifier.load(path)` reads it back with `allow_pickle=False`, so loading
a classifier file can never run code. Prediction is rebuilt from those arrays: counts of the stored
n-grams (scikit-learn's `CountVectorizer` with the fixed vocabulary), sublinear tf, times idf,
L2-normalised rows, then `X @ coef.T + intercept`; this equals the fitted scikit-learn pipeline's
decision function.

Every caption is cleaned as OFA cleans captions (lowercase, ASCII punctuation stripped, single
spaces) before it is classified or learned from, so generated captions, human references and
training captions are compared on the same footing whatever cleaning a model was trained with.
"""
import io
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from ofa_sic.data.text import CaptionCleaner

FORMAT = "ofa_sic style classifier 1"
NGRAM_RANGE = (1, 2)
TOKEN_PATTERN = r"(?u)\b\w+\b"  # one-letter words ("a", "i") count: they carry style in PCap
MIN_DF = 2
DEFAULT_MAX_FEATURES = 50_000
REGULARIZATION_C = 1.0
MAX_ITER = 1000
_ARRAYS = ("vocabulary", "idf", "coef", "intercept", "styles", "settings")


class StyleClassifier:
    """A fitted classifier: `vocabulary` [V] n-grams, `idf` [V], `coef` [C, V], `intercept` [C], `styles` [C]."""

    def __init__(self, vocabulary: Sequence[str], idf: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                 styles: Sequence[str], settings: Dict):
        self.vocabulary = list(vocabulary)
        self.idf = np.asarray(idf, dtype=np.float64)
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.styles = list(styles)
        self.settings = dict(settings)
        num_styles, num_terms = len(self.styles), len(self.vocabulary)
        if self.idf.shape != (num_terms,) or self.coef.shape != (num_styles, num_terms) \
                or self.intercept.shape != (num_styles,):
            raise ValueError(f"inconsistent classifier arrays: {num_terms} n-grams, {num_styles} styles, idf "
                             f"{self.idf.shape}, coef {self.coef.shape}, intercept {self.intercept.shape}")
        self._cleaner = CaptionCleaner()
        self._counter = None

    def features(self, captions: Sequence[str]):
        """Sparse tf-idf rows [N, V] of the cleaned captions (L2-normalised; all-zero for unseen words)."""
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.preprocessing import normalize

        if self._counter is None:
            self._counter = CountVectorizer(vocabulary={term: i for i, term in enumerate(self.vocabulary)},
                                            ngram_range=tuple(self.settings["ngram_range"]),
                                            token_pattern=self.settings["token_pattern"], lowercase=False,
                                            dtype=np.float64)
        counts = self._counter.transform([self._cleaner(c) for c in captions])
        if self.settings["sublinear_tf"]:
            counts.data = 1.0 + np.log(counts.data)
        return normalize(counts.multiply(self.idf[np.newaxis, :]).tocsr(), norm="l2", copy=False)

    def scores(self, captions: Sequence[str]) -> np.ndarray:
        """Decision scores [N, C] (higher = more likely; column c is style `styles[c]`)."""
        if not len(captions):
            return np.zeros((0, len(self.styles)), dtype=np.float32)
        return np.asarray(self.features(captions) @ self.coef.T, dtype=np.float32) + self.intercept

    def top_k(self, captions: Sequence[str], k: int) -> np.ndarray:
        """Indices [N, min(k, C)] into `styles` of each caption's k best styles, best first."""
        scores = self.scores(captions)
        k = min(k, len(self.styles))
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]

    def predict(self, captions: Sequence[str]) -> List[str]:
        """The best style name of each caption."""
        return [self.styles[i] for i in self.top_k(captions, 1)[:, 0]]

    def save(self, path: str) -> None:
        """Write the `.npz` atomically (a temporary file in the same folder renamed over `path`)."""
        buffer = io.BytesIO()
        np.savez(buffer, vocabulary=np.array(self.vocabulary, dtype=str), idf=self.idf, coef=self.coef,
                 intercept=self.intercept, styles=np.array(self.styles, dtype=str),
                 settings=np.array(json.dumps({"format": FORMAT, **self.settings})))
        from ofa_sic.atomic_files import atomic_write

        with atomic_write(path, binary=True) as handle:
            handle.write(buffer.getvalue())

    @classmethod
    def load(cls, path: str) -> "StyleClassifier":
        """Read a file written by `save` (plain arrays only: object arrays are refused, nothing is unpickled)."""
        hint = "train one with `ofa-sic style-classifier --data DIR --out FILE`"
        if not os.path.isfile(path):
            raise FileNotFoundError(f"style classifier {path} not found; {hint}")
        try:
            with np.load(path, allow_pickle=False) as stored:
                missing = [name for name in _ARRAYS if name not in stored.files]
                if missing:
                    raise ValueError(f"no {', '.join(missing)} array(s)")
                arrays = {name: stored[name] for name in _ARRAYS}
            settings = json.loads(str(arrays["settings"]))
        except (ValueError, OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not an ofa_sic style classifier ({error}); {hint}") from None
        if settings.pop("format", None) != FORMAT:
            raise ValueError(f"{path} is not an ofa_sic style classifier of format {FORMAT!r}; {hint}")
        return cls([str(t) for t in arrays["vocabulary"]], arrays["idf"], arrays["coef"], arrays["intercept"],
                   [str(s) for s in arrays["styles"]], settings)


def train_style_classifier(captions: Sequence[str], styles: Sequence[str],
                           max_features: int = DEFAULT_MAX_FEATURES, details: Optional[Dict] = None) -> StyleClassifier:
    """Fit tf-idf (word 1-2-grams seen in at least MIN_DF captions, the `max_features` most frequent,
    sublinear tf) and an L2-regularised multinomial logistic regression on `captions[i]` -> `styles[i]`.

    `details` (e.g. the data folder) is stored in the classifier's settings. Needs at least two styles.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    if len(captions) != len(styles):
        raise ValueError(f"{len(captions)} captions but {len(styles)} style labels")
    names = sorted(set(styles))
    if len(names) < 2:
        raise ValueError(f"a style classifier needs captions of at least two styles, got {names}")
    cleaner = CaptionCleaner()
    cleaned = [cleaner(c) for c in captions]
    vectorizer = TfidfVectorizer(ngram_range=NGRAM_RANGE, token_pattern=TOKEN_PATTERN, lowercase=False,
                                 min_df=MIN_DF, max_features=max_features, sublinear_tf=True, norm="l2")
    features = vectorizer.fit_transform(cleaned)
    model = LogisticRegression(C=REGULARIZATION_C, max_iter=MAX_ITER)
    model.fit(features, np.array(styles))
    vocabulary = [None] * len(vectorizer.vocabulary_)
    for term, column in vectorizer.vocabulary_.items():
        vocabulary[column] = term
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # scikit-learn keeps one row for two classes: score(class 1) - score(class 0)
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    settings = {
        "ngram_range": list(NGRAM_RANGE), "token_pattern": TOKEN_PATTERN, "min_df": MIN_DF,
        "max_features": max_features, "sublinear_tf": True, "C": REGULARIZATION_C,
        "num_training_captions": len(cleaned), "iterations": int(np.max(model.n_iter_)), **(details or {}),
    }
    return StyleClassifier(vocabulary, vectorizer.idf_, coef, intercept, [str(c) for c in model.classes_], settings)

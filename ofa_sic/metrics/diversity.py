"""Diversity of a set of captions: distinct-1/2, vocabulary size, mean length, copies of training captions.

Words are the whitespace tokens of each caption cleaned as OFA cleans captions (lowercase, ASCII
punctuation stripped). Over a set of captions:
- distinct-n (x100): distinct n-grams / all n-grams, n-grams counted within each caption and pooled
  over the set (Li et al.'s corpus-level distinct-n; a set that repeats one caption scores low);
- vocabulary: the number of distinct words;
- mean_length: words per caption;
- copied_from_train (x100): the share of captions equal, after cleaning, to some training caption.
"""
from typing import Collection, Dict, Iterable, List, Optional, Sequence, Tuple

from ofa_sic.data.text import CaptionCleaner

_CLEANER = CaptionCleaner()


def caption_words(caption: str) -> List[str]:
    """The words of a caption after OFA's cleaning."""
    return _CLEANER(caption).split()


def training_caption_set(captions: Iterable[str]) -> frozenset:
    """Training captions cleaned as `copied_from_train` compares them."""
    return frozenset(_CLEANER(c) for c in captions)


def _ngrams(words: List[str], n: int) -> List[Tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def diversity(captions: Sequence[str], training_captions: Optional[Collection[str]]) -> Dict[str, float]:
    """distinct-1, distinct-2 (x100), vocabulary, mean_length and, when `training_captions` (cleaned, from
    `training_caption_set`) is given, copied_from_train (x100) of `captions`. A distinct-n with no
    n-grams at all (every caption shorter than n words) is 0."""
    if not captions:
        raise ValueError("cannot measure the diversity of no captions")
    words = [caption_words(c) for c in captions]
    figures: Dict[str, float] = {}
    for n in (1, 2):
        grams = [gram for caption in words for gram in _ngrams(caption, n)]
        figures[f"distinct-{n}"] = 100 * len(set(grams)) / len(grams) if grams else 0.0
    figures["vocabulary"] = len({word for caption in words for word in caption})
    figures["mean_length"] = sum(len(caption) for caption in words) / len(words)
    if training_captions is not None:
        copied = sum(" ".join(caption) in training_captions for caption in words)
        figures["copied_from_train"] = 100 * copied / len(words)
    return figures

"""The n-gram counting CIDEr-D's scorer and its document frequencies share (OFA's ``precook``)."""

try:  # the C counting loop behind collections.Counter; a plain-Python fallback if it ever moves
    from collections import _count_elements as count_elements
except ImportError:  # pragma: no cover
    def count_elements(mapping, iterable):
        get = mapping.get
        for element in iterable:
            mapping[element] = get(element, 0) + 1


def ngram_counts(sentence, n):
    """Term frequencies of the n-grams of ``sentence.split()``, one dict per order, plus its length.

    Returns ``([{ngram_tuple: tf} for order 1..n], length)`` where ``length`` is the number of bigrams
    (OFA's quirk). Each dict iterates in order of first occurrence, the order OFA's ``precook`` visits
    the n-grams, so the sums below are accumulated in the same order as OFA's.
    """
    words = sentence.split()
    followers = [words[i:] for i in range(1, n)]
    per_order = []
    for order in range(n):
        counts = {}
        count_elements(counts, zip(words, *followers[:order]))
        per_order.append(counts)
    return per_order, (len(words) - 1 if len(words) > 1 else 0)

"""CIDEr-D with OFA-main's exact numbers, fast enough to run as the SCST reward every step.

``CiderD`` is a drop-in replacement for OFA-main's ``utils/cider/pyciderevalcap/ciderD/ciderD.CiderD``:
same constructor arguments, same ``compute_score(gts, res)`` call, same numbers. The arithmetic follows
OFA's order of operations, so on the golden fixture the scores are bit-identical to OFA's (the tests
require 1e-9).

Formats
-------
``gts``
    dict ``image_id -> list[str]``: the reference captions of each image (at least one each).
``res``
    list of dicts ``{"image_id": image_id, "caption": [hypothesis_str]}`` (exactly one string).
``compute_score`` returns
    ``(mean_score: float, scores: np.ndarray[float64])`` with one score per ``res`` entry, in ``res``
    order.
``df``
    ``"corpus"``, or cached document frequencies (``ofa_sic.metrics.document_frequency``: a pickle path,
    or the dict ``build_document_frequency`` returns). Their references carry ``" <eos>"``
    (``EOS_SUFFIX``), so callers wrap hypotheses and references the same way before scoring.

The algorithm (what OFA's ``CiderScorer`` computes)
---------------------------------------------------
* Tokens are ``sentence.split()``; n-grams of orders 1..n are counted (term frequency ``tf``).
* ``idf(g) = L - log(max(1, df(g)))`` where ``L`` is the log of the number of documents.
  Cached mode: ``df`` and ``L = log(ref_len)`` come from the pickle. Corpus mode: ``df(g)`` is the
  number of ``res`` entries whose reference list contains ``g`` (OFA keeps one reference list per
  ``res`` entry, so an image scored with K hypotheses counts K times) and ``L = log(len(res))``.
* Weight of an n-gram in a sentence: ``w(g) = tf(g) * idf(g)``; ``norm_k = sqrt(sum of w^2)`` over the
  grams of order k.
* The sentence "length" is its number of bigrams (``max(words - 1, 0)``); this is OFA's quirk of
  counting ``tf`` when the order index is 1.
* For a candidate c and reference r, per order k:
  ``val_k = sum over g in c of min(w_c(g), w_r(g)) * w_r(g)`` (``w_r = 0`` when absent), divided by
  ``norm_c,k * norm_r,k`` only when both norms are non-zero, times ``exp(-delta^2 / (2 sigma^2))``
  (``delta`` = length difference).
* ``score(c) = 10 * mean_k(sum_r val_k(c, r)) / |refs|``.

Why it is fast
--------------
OFA recomputes every reference's tf-idf vector once per (hypothesis, reference) pair and uses numpy
scalars inside Python loops. Here each reference list is turned, once per call at most, into an
inverted table ``ngram -> (idf, [(slot, w_r), ...])`` plus per-reference norms and lengths; a
hypothesis then costs about one dict lookup per n-gram, and the normalisation, length penalty and
averaging run vectorised over the whole call. In cached-df mode the weights do not depend on the call,
so the tables are also kept across calls (keyed by the tuple of reference strings, up to
``ref_cache_size`` lists); a hypothesis scored alone gets exactly the score it gets inside a batch.
The cyclic garbage collector is paused during a call (see ``_gc_paused``).

Differences from OFA's class, all outside what OFA's recipes use: ``sigma`` is honoured (OFA's
``CiderD`` never passes it on, so it is always 6.0 there); ``n`` other than 4 scores orders 1..n
(OFA's ``precook`` always counts 4 orders, so other values break or skew it); an empty ``res`` returns
``(0.0, empty array)``; bad input raises ``ValueError``/``KeyError`` with a message instead of a bare
``assert``.
"""

import contextlib
import gc
import math
from collections import Counter

import numpy as np

from ofa_sic.metrics.document_frequency import check_document_frequency, load_document_frequency
from ofa_sic.metrics.ngrams import count_elements, ngram_counts

__all__ = ["CiderD"]


def _idf_table(document_frequency, log_ref_len):
    """``{ngram: log_ref_len - log(df)}`` for the n-grams with ``df > 1``.

    Every other n-gram has ``idf = log_ref_len - log(max(1, df)) = log_ref_len``, so lookups use
    ``table.get(gram, log_ref_len)``. One float object is shared per distinct count.
    """
    by_count = {}
    table = {}
    log = math.log
    for gram, count in document_frequency.items():
        if count > 1.0:
            value = by_count.get(count)
            if value is None:
                value = by_count[count] = log_ref_len - log(count)
            table[gram] = value
    return table


class _ReferenceSet:
    """The tf-idf form of one image's reference list.

    ``table``: dict ``ngram -> (idf, [(slot, w_r), ...])`` with ``slot = ref_index * n + (order - 1)``,
    one pair per reference that contains the n-gram (the idf rides along to save the hypothesis a
    second lookup);
    ``norms``: flat list of ``len(refs) * n`` per-reference, per-order norms;
    ``lengths``: list of the references' bigram counts.
    """

    __slots__ = ("table", "norms", "lengths")

    def __init__(self, counted_refs, n, idf_get, log_ref_len):
        table = {}
        norms = []
        lengths = []
        table_get = table.get
        sqrt = math.sqrt
        for j, (per_order, length) in enumerate(counted_refs):
            base = j * n
            for order, counts in enumerate(per_order):
                slot = base + order
                square_sum = 0.0
                for gram, tf in counts.items():
                    entry = table_get(gram)
                    if entry is None:
                        idf = idf_get(gram, log_ref_len)
                        weight = tf * idf
                        table[gram] = (idf, [(slot, weight)])
                    else:
                        weight = tf * entry[0]
                        entry[1].append((slot, weight))
                    square_sum += weight * weight
                norms.append(sqrt(square_sum))
            lengths.append(length)
        self.table = table
        self.norms = norms
        self.lengths = lengths


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector for the duration of a scoring call.

    A call allocates tens of thousands of short-lived tuples, dicts and lists (none in reference
    cycles, so reference counting frees them all). In a process that has torch and fairseq loaded,
    those allocations otherwise trigger a full collection of the whole heap on most calls, which
    costs several times more than the scoring itself. The previous state is restored on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class CiderD:
    """CIDEr-D scorer with OFA-main's interface and numbers.

    Args:
        n: highest n-gram order (OFA always uses 4).
        sigma: standard deviation of the gaussian length penalty. OFA's ``CiderD`` silently ignores
            this argument and always uses 6.0; here it is honoured (the default is the same).
        df: ``"corpus"`` to take document frequencies from the references of each call, or the path
            of a document-frequency pickle (see the module docstring) for cached-df mode, the mode
            SCST and OFA's validation use.
        ref_cache_size: in cached-df mode, how many reference lists to keep in tf-idf form across
            calls (about 50 KB each for five COCO-length references). Once the cache is full, new
            reference lists are scored without being stored; nothing is evicted. 0 disables it.

    Attributes:
        ref_len: ``log(ref_len)`` of the pickle in cached-df mode, None in corpus mode.
    """

    def __init__(self, n=4, sigma=6.0, df="corpus", ref_cache_size=10000):
        if int(n) < 1:
            raise ValueError(f"CiderD: n must be >= 1, got {n!r}")
        self.n = int(n)
        self.sigma = float(sigma)
        self.ref_cache_size = int(ref_cache_size)
        self._ref_cache = {}
        self._penalty_table = np.zeros(0)
        if isinstance(df, str) and df == "corpus":
            self.cleaning = None
            self.ref_len = None
            self._idf = None
        else:
            # A dict from build_document_frequency is used as is; anything else is a pickle path.
            loaded = check_document_frequency(df, "<in-memory document frequencies>") if isinstance(df, dict) else load_document_frequency(df)
            self.ref_len = math.log(float(loaded["ref_len"]))
            # How the references were cleaned ({"keep_punctuation", "keep_case"}), where the file says.
            self.cleaning = loaded.get("cleaning")
            # Only idf values are kept: the raw counts are not needed once these exist.
            self._idf = _idf_table(loaded["document_frequency"], self.ref_len)

    @property
    def cached(self):
        """True in cached-df mode (document frequencies from a pickle)."""
        return self._idf is not None

    def method(self):
        return "CIDEr-D"

    # ------------------------------------------------------------------------------------------
    def compute_score(self, gts, res):
        """Score every hypothesis of ``res`` against the references ``gts[image_id]``.

        Args:
            gts: dict ``image_id -> list[str]`` (non-empty lists).
            res: list of ``{"image_id": image_id, "caption": [str]}``.

        Returns:
            ``(mean, scores)``: the mean score (float) and a float64 array of per-entry scores in
            ``res`` order. An empty ``res`` gives ``(0.0, empty array)``.
        """
        hypotheses, ref_keys = self._validate(gts, res)
        if not hypotheses:
            return 0.0, np.zeros(0, dtype=np.float64)
        with _gc_paused():
            return self._score(hypotheses, ref_keys)

    def _score(self, hypotheses, ref_keys):
        n = self.n

        # 1. Reference tables, and the idf the hypotheses are weighted with.
        if self.cached:
            idf_get = self._idf.get
            log_ref_len = self.ref_len
            refsets = self._cached_reference_sets(ref_keys, idf_get, log_ref_len)
        else:
            idf_get, log_ref_len, refsets = self._corpus_reference_sets(ref_keys)

        # 2. Hypotheses: one pass over their n-grams, accumulating the clipped products
        #    min(w_c, w_r) * w_r into one slot per (reference, order). Every hypothesis gets
        #    `most` reference columns; the missing ones stay zero and add nothing below.
        most = max(len(refset.lengths) for refset in refsets.values())
        raw = []          # per hypothesis: most * n raw similarity sums
        hyp_norms = []    # per hypothesis: n norms
        ref_norms = []    # per hypothesis: most * n reference norms (0.0 for missing references)
        ref_lengths = []  # per hypothesis: most reference lengths (0 for missing references)
        hyp_lengths = []  # per hypothesis: its length
        num_refs = []     # per hypothesis: its number of references
        sqrt = math.sqrt
        for hypothesis, key in zip(hypotheses, ref_keys):
            refset = refsets[key]
            table_get = refset.table.get
            acc = [0.0] * (most * n)
            per_order, length = ngram_counts(hypothesis, n)
            for counts in per_order:
                square_sum = 0.0
                for gram, tf in counts.items():
                    entry = table_get(gram)
                    if entry is None:  # in no reference: only its norm contribution matters
                        weight = tf * idf_get(gram, log_ref_len)
                    else:
                        weight = tf * entry[0]
                        for slot, ref_weight in entry[1]:
                            acc[slot] += (weight if weight < ref_weight else ref_weight) * ref_weight
                    square_sum += weight * weight
                hyp_norms.append(sqrt(square_sum))
            raw.extend(acc)
            ref_norms.extend(refset.norms)
            ref_lengths.extend(refset.lengths)
            count = len(refset.lengths)
            if count < most:
                ref_norms.extend([0.0] * ((most - count) * n))
                ref_lengths.extend([0] * (most - count))
            hyp_lengths.append(length)
            num_refs.append(count)

        # 3. Normalise, apply the length penalty and average, vectorised over the call; arrays are
        #    [hypothesis, reference, order].
        rows = len(num_refs)
        sims = np.array(raw, dtype=np.float64).reshape(rows, most, n)
        hyp_norms = np.array(hyp_norms, dtype=np.float64).reshape(rows, 1, n)
        ref_norms = np.array(ref_norms, dtype=np.float64).reshape(rows, most, n)
        both = (hyp_norms != 0.0) & (ref_norms != 0.0)
        np.divide(sims, hyp_norms * ref_norms, out=sims, where=both)
        hyp_lengths = np.array(hyp_lengths, dtype=np.int64).reshape(rows, 1)
        deltas = hyp_lengths - np.array(ref_lengths, dtype=np.int64).reshape(rows, most)
        sims *= self._length_penalty(np.abs(deltas))[:, :, None]
        # Sum over the references one at a time, as OFA does (a numpy reduction would add in
        # another order and differ in the last bit).
        per_order_sums = sims[:, 0]
        for j in range(1, most):
            per_order_sums = per_order_sums + sims[:, j]
        # Mean over the orders, divided by the number of references, times 10.
        scores = per_order_sums.mean(axis=1) / np.array(num_refs, dtype=np.float64) * 10.0
        return float(np.mean(scores)), scores

    def _length_penalty(self, abs_deltas):
        """``exp(-delta^2 / (2 sigma^2))`` per pair, computed like OFA (Python float power of e) once
        per distinct ``|delta|`` and kept in a table that grows with the longest difference seen."""
        table = self._penalty_table
        longest = int(abs_deltas.max())
        if longest >= len(table):
            two_sigma_sq = 2 * self.sigma ** 2
            table = np.array([math.e ** (-(float(d) ** 2) / two_sigma_sq) for d in range(2 * longest + 1)])
            self._penalty_table = table
        return table[abs_deltas]

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _validate(gts, res):
        """Check the inputs; return the hypothesis strings and, per entry, its references as a tuple."""
        hypotheses = []
        ref_keys = []
        checked = set()  # ids of the reference lists already checked in this call
        for position, entry in enumerate(res):
            try:
                image_id = entry["image_id"]
                caption = entry["caption"]
            except (TypeError, KeyError):
                raise ValueError(
                    f"CiderD: res[{position}] must be a dict with keys 'image_id' and 'caption', got {entry!r}"
                ) from None
            if not isinstance(caption, (list, tuple)) or len(caption) != 1 or not isinstance(caption[0], str):
                raise ValueError(
                    f"CiderD: res[{position}]['caption'] (image id {image_id!r}) must be a list holding "
                    f"exactly one string, got {caption!r}"
                )
            try:
                refs = gts[image_id]
            except KeyError:
                raise KeyError(f"CiderD: image id {image_id!r} of res[{position}] has no entry in gts") from None
            if id(refs) not in checked:
                if isinstance(refs, str) or not isinstance(refs, (list, tuple)):
                    raise ValueError(
                        f"CiderD: gts[{image_id!r}] must be a list of reference strings, got {type(refs).__name__}"
                    )
                if len(refs) == 0:
                    raise ValueError(f"CiderD: image id {image_id!r} has an empty reference list in gts")
                if not all(isinstance(r, str) for r in refs):
                    raise ValueError(f"CiderD: gts[{image_id!r}] must hold only strings, got {refs!r}")
                checked.add(id(refs))
            hypotheses.append(caption[0])
            ref_keys.append(tuple(refs))
        return hypotheses, ref_keys

    def _cached_reference_sets(self, ref_keys, idf_get, log_ref_len):
        """Reference tables for cached-df mode, reused across calls (bounded by ``ref_cache_size``)."""
        cache = self._ref_cache
        found = {}
        for key in ref_keys:
            if key in found:
                continue
            refset = cache.get(key)
            if refset is None:
                refset = _ReferenceSet([ngram_counts(r, self.n) for r in key], self.n, idf_get, log_ref_len)
                if len(cache) < self.ref_cache_size:
                    cache[key] = refset
            found[key] = refset
        return found

    def _corpus_reference_sets(self, ref_keys):
        """Corpus mode: df over this call's entries, one reference list per ``res`` entry as in OFA
        (an image with K hypotheses counts K times), and ``log_ref_len = log(len(res))``."""
        counted = {}
        doc_freq = {}
        for key, times in Counter(ref_keys).items():
            counted[key] = [ngram_counts(r, self.n) for r in key]
            grams = set().union(*[counts for per_order, _ in counted[key] for counts in per_order])
            for _ in range(times):
                count_elements(doc_freq, grams)
        log_ref_len = math.log(float(len(ref_keys)))
        idf_get = _idf_table(doc_freq, log_ref_len).get
        refsets = {key: _ReferenceSet(c, self.n, idf_get, log_ref_len) for key, c in counted.items()}
        return idf_get, log_ref_len, refsets

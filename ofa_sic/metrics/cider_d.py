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
Document-frequency pickle (``df`` = a path; OFA / ruotianluo ``prepro_ngrams.py`` format)
    ``{"document_frequency": {ngram_tuple: count}, "ref_len": number_of_images}`` where an n-gram is a
    tuple of 1..4 word strings (e.g. ``("a", "man")``) and ``count`` is the number of images whose
    references contain it. ``ref_len`` enters the formula as ``log(ref_len)``. The references were
    wrapped with ``" <eos>"`` when the pickle was built, so callers wrap hypotheses and references the
    same way before scoring.

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
import os
import pickle
from collections import Counter, defaultdict

import numpy as np

from ofa_sic.atomic_files import atomic_write
from ofa_sic.safe_pickle import UnsafePickleError, load_plain_pickle

__all__ = [
    "CiderD",
    "DocumentFrequencyError",
    "build_document_frequency",
    "load_document_frequency",
    "save_document_frequency",
]

#: Command-line flags through which a document-frequency pickle reaches ``CiderD``.
DF_FLAGS = "--scst-cider-cached-tokens / --eval-cider-cached-tokens"
#: Command that builds a document-frequency pickle from a caption TSV.
DF_BUILD_COMMAND = "ofa-sic cider-df --tsv train.tsv --out train-words.p"
#: Suffix ruotianluo's prepro_ngrams.py appends to every reference (and SCST to every sentence).
EOS_SUFFIX = " <eos>"

# Pickle protocol 4 is readable by every Python 3 that OFA or fairseq support (3.4+).
_PICKLE_PROTOCOL = 4


class DocumentFrequencyError(ValueError):
    """A document-frequency pickle that cannot be used (unreadable or of the wrong shape)."""


def _df_message(problem, path, detail=""):
    """``"<problem> CIDEr-D document-frequency pickle '<path>' (...flags...)[: detail]. Build one ..."``."""
    detail = f": {detail}" if detail else ""
    return (
        f"{problem} CIDEr-D document-frequency pickle {str(path)!r} (passed with {DF_FLAGS}){detail}. "
        f"Build one from the training captions with: {DF_BUILD_COMMAND}"
    )


try:  # the C counting loop behind collections.Counter; a plain-Python fallback if it ever moves
    from collections import _count_elements
except ImportError:  # pragma: no cover
    def _count_elements(mapping, iterable):
        get = mapping.get
        for element in iterable:
            mapping[element] = get(element, 0) + 1


def _ngram_counts(sentence, n):
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
        _count_elements(counts, zip(words, *followers[:order]))
        per_order.append(counts)
    return per_order, (len(words) - 1 if len(words) > 1 else 0)


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
            loaded = _check_df_dict(df, "<in-memory document frequencies>") if isinstance(df, dict) else load_document_frequency(df)
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
            per_order, length = _ngram_counts(hypothesis, n)
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
                refset = _ReferenceSet([_ngram_counts(r, self.n) for r in key], self.n, idf_get, log_ref_len)
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
            counted[key] = [_ngram_counts(r, self.n) for r in key]
            grams = set().union(*[counts for per_order, _ in counted[key] for counts in per_order])
            for _ in range(times):
                _count_elements(doc_freq, grams)
        log_ref_len = math.log(float(len(ref_keys)))
        idf_get = _idf_table(doc_freq, log_ref_len).get
        refsets = {key: _ReferenceSet(c, self.n, idf_get, log_ref_len) for key, c in counted.items()}
        return idf_get, log_ref_len, refsets


# ----------------------------------------------------------------------------------------------
# Document-frequency pickles
# ----------------------------------------------------------------------------------------------
def build_document_frequency(references_per_image, cleaning=None):
    """Document frequencies the way ruotianluo's ``scripts/prepro_ngrams.py`` builds them.

    Args:
        references_per_image: ``list[list[str]]``, the references of each image, already normalised
            the way the scorer's callers normalise text (e.g. punctuation-stripped, lowercased).
            ``" <eos>"`` is appended here to every reference; no out-of-vocabulary mapping is done.

    Returns:
        ``{"document_frequency": defaultdict(float, {ngram_tuple: number_of_images}),
        "ref_len": number_of_images}``: for every n-gram of orders 1..4 of any reference, the number of
        images whose references contain it. A ``defaultdict(float)``, as in the original, so that
        OFA's own scorer (which indexes it with ``[]``) can read the pickle too. With ``cleaning``
        (``CaptionCleaner.settings()`` of the cleaning the references went through), the dict also
        records it under ``"cleaning"``; OFA's scorer ignores that key.
    """
    document_frequency = defaultdict(float)
    count = 0
    for position, refs in enumerate(references_per_image):
        if isinstance(refs, str):
            raise TypeError(
                f"build_document_frequency: image {position} has a string, not a list of references: {refs!r}"
            )
        grams = set()
        for ref in refs:
            for counts in _ngram_counts(ref + EOS_SUFFIX, 4)[0]:
                grams.update(counts)
        for gram in grams:
            document_frequency[gram] += 1.0
        count += 1
    built = {"document_frequency": document_frequency, "ref_len": count}
    if cleaning is not None:
        built["cleaning"] = dict(cleaning)
    return built


def _check_df_dict(obj, path):
    """Return ``obj`` if it has the pickle's shape, else raise DocumentFrequencyError naming ``path``."""
    if not isinstance(obj, dict) or "document_frequency" not in obj or "ref_len" not in obj:
        keys = sorted(map(str, obj.keys())) if isinstance(obj, dict) else type(obj).__name__
        raise DocumentFrequencyError(_df_message(
            "Malformed", path, f"expected a dict with keys 'document_frequency' and 'ref_len', got {keys}"
        ))
    document_frequency = obj["document_frequency"]
    ref_len = obj["ref_len"]
    if not isinstance(document_frequency, dict):
        raise DocumentFrequencyError(_df_message(
            "Malformed", path,
            f"'document_frequency' must be a dict of n-gram tuples to counts, got {type(document_frequency).__name__}",
        ))
    for gram, value in document_frequency.items():  # check the first entry only: tables are huge
        if not (isinstance(gram, tuple) and all(isinstance(w, str) for w in gram)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise DocumentFrequencyError(_df_message(
                "Malformed", path,
                f"'document_frequency' entries must be (tuple of str) -> count, got {gram!r} -> {value!r}",
            ))
        break
    if isinstance(ref_len, bool) or not isinstance(ref_len, (int, float, np.integer, np.floating)) or not ref_len > 0:
        raise DocumentFrequencyError(_df_message(
            "Malformed", path, f"'ref_len' must be the (positive) number of images, got {ref_len!r}"
        ))
    return obj


def load_document_frequency(path):
    """Load and check a document-frequency pickle (latin1 decoding, so Python 2 pickles load too).

    The file is unpickled with `ofa_sic.safe_pickle.load_plain_pickle`: a pickle that refers to anything
    but dicts, tuples, strings, numbers and defaultdict is refused before any of it runs.

    Returns the pickled dict ``{"document_frequency": {ngram_tuple: count}, "ref_len": n_images}``.
    Raises ``FileNotFoundError`` if the file is missing and ``DocumentFrequencyError`` (a
    ``ValueError``) if it is not such a pickle; both messages name the path, the flags and the command
    that builds one.
    """
    path = os.fspath(path) if path is not None else path
    if not isinstance(path, str) or not path:
        raise DocumentFrequencyError(_df_message("No", path))
    if not os.path.isfile(path):
        raise FileNotFoundError(_df_message("Missing", path))
    try:
        with open(path, "rb") as handle:
            obj = load_plain_pickle(handle, encoding="latin1")
    except UnsafePickleError as error:
        raise DocumentFrequencyError(_df_message("Refused", path, str(error))) from None
    except Exception as error:  # unpickling raises many types (UnpicklingError, EOFError, ...)
        raise DocumentFrequencyError(
            _df_message("Unreadable", path, f"{type(error).__name__}: {error}")
        ) from error
    return _check_df_dict(obj, path)


def save_document_frequency(df_dict, path):
    """Write ``df_dict`` (the format ``build_document_frequency`` returns) as a pickle, atomically.

    Written with ``ofa_sic.atomic_files.atomic_write``, so readers never see a half-written file.
    Plain-dict frequency tables are stored as ``defaultdict(float)`` so OFA's own scorer can read the file.
    """
    path = os.fspath(path)
    _check_df_dict(df_dict, path)
    document_frequency = df_dict["document_frequency"]
    if not isinstance(document_frequency, defaultdict):
        document_frequency = defaultdict(float, document_frequency)
    payload = {"document_frequency": document_frequency, "ref_len": df_dict["ref_len"]}
    if df_dict.get("cleaning") is not None:
        payload["cleaning"] = dict(df_dict["cleaning"])
    with atomic_write(path, binary=True) as handle:
        pickle.dump(payload, handle, protocol=_PICKLE_PROTOCOL)

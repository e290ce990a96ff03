"""CIDEr-D document frequencies: building them, and the pickle file that carries them.

The pickle (OFA / ruotianluo ``prepro_ngrams.py`` format)
    ``{"document_frequency": {ngram_tuple: count}, "ref_len": number_of_images}`` where an n-gram is a
    tuple of 1..4 word strings (e.g. ``("a", "man")``) and ``count`` is the number of images whose
    references contain it. ``ref_len`` enters the formula as ``log(ref_len)``. The references were
    wrapped with ``" <eos>"`` when the pickle was built, so callers wrap hypotheses and references the
    same way before scoring.

Errors name the file, the flags that pass it (``DF_FLAGS``) and the command that builds one.
"""
import os
import pickle
from collections import defaultdict

import numpy as np

from ofa_sic.atomic_files import atomic_write
from ofa_sic.metrics.ngrams import ngram_counts
from ofa_sic.safe_pickle import UnsafePickleError, load_plain_pickle

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
            for counts in ngram_counts(ref + EOS_SUFFIX, 4)[0]:
                grams.update(counts)
        for gram in grams:
            document_frequency[gram] += 1.0
        count += 1
    built = {"document_frequency": document_frequency, "ref_len": count}
    if cleaning is not None:
        built["cleaning"] = dict(cleaning)
    return built


def check_document_frequency(obj, path):
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
    return check_document_frequency(obj, path)


def save_document_frequency(df_dict, path):
    """Write ``df_dict`` (the format ``build_document_frequency`` returns) as a pickle, atomically.

    Written with ``ofa_sic.atomic_files.atomic_write``, so readers never see a half-written file.
    Plain-dict frequency tables are stored as ``defaultdict(float)`` so OFA's own scorer can read the file.
    """
    path = os.fspath(path)
    check_document_frequency(df_dict, path)
    document_frequency = df_dict["document_frequency"]
    if not isinstance(document_frequency, defaultdict):
        document_frequency = defaultdict(float, document_frequency)
    payload = {"document_frequency": document_frequency, "ref_len": df_dict["ref_len"]}
    if df_dict.get("cleaning") is not None:
        payload["cleaning"] = dict(df_dict["cleaning"])
    with atomic_write(path, binary=True) as handle:
        pickle.dump(payload, handle, protocol=_PICKLE_PROTOCOL)

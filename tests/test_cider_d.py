"""CIDEr-D (ofa_sic.metrics.cider_d) against OFA-main's numbers.

Golden numbers come from two places:
  * ``tests/data/ofa_reference/ciderd_reference.json``: 300 images x 5 references, 1,500
    hypotheses scored in cached-df mode and 300 in corpus-df mode by OFA's own scorer;
  * small hand-readable vectors scored by OFA's scorer (docs/ofa-spec.md, Appendix B), copied below.
"""

import os
import pickle
from collections import defaultdict

import numpy as np
import pytest

from helpers import load_json_reference
from ofa_sic.metrics.cider_d import CiderD
from ofa_sic.metrics.document_frequency import (
    DF_BUILD_COMMAND,
    DocumentFrequencyError,
    build_document_frequency,
    load_document_frequency,
    save_document_frequency,
)

TOL = 1e-9


@pytest.fixture(scope="module")
def fixture():
    return load_json_reference("ciderd_reference.json")


def _fixture_df(fixture):
    """The fixture's df pickle contents as the real pickle holds them: ngram tuples -> counts."""
    payload = fixture["df_pickle"]
    return {tuple(gram): count for gram, count in payload["document_frequency"]}, payload["ref_len"]


@pytest.fixture(scope="module")
def cached_workload(fixture, tmp_path_factory):
    """(df pickle path, gts, res, expected) for cached-df mode; every string wrapped with ' <eos>'."""
    document_frequency, ref_len = _fixture_df(fixture)
    path = str(tmp_path_factory.mktemp("ciderd") / "fixture-words.p")
    save_document_frequency({"document_frequency": document_frequency, "ref_len": ref_len}, path)
    gts = {int(k): [r + " <eos>" for r in refs] for k, refs in fixture["references"].items()}
    res = [{"image_id": h["image"], "caption": [h["caption"] + " <eos>"]} for h in fixture["hypotheses"]]
    return path, gts, res, np.array(fixture["cached_scores"])


# ------------------------------------------------------------------------------------------------
# Golden fixture
# ------------------------------------------------------------------------------------------------
def test_fixture_cached_mode(cached_workload):
    path, gts, res, expected = cached_workload
    scorer = CiderD(df=path)
    mean, scores = scorer.compute_score(gts, res)
    assert scores.shape == expected.shape
    np.testing.assert_allclose(scores, expected, rtol=0, atol=TOL)
    assert abs(mean - expected.mean()) <= TOL
    # A second call (reference tables now cached) gives the same numbers.
    _, again = scorer.compute_score(gts, res)
    assert np.array_equal(scores, again)


def test_fixture_cached_mode_from_a_foreign_pickle(fixture, tmp_path):
    """A pickle written the way prepro_ngrams.py writes it (old protocol, defaultdict) loads and scores."""
    document_frequency, ref_len = _fixture_df(fixture)
    path = tmp_path / "coco-style-words.p"
    with open(path, "wb") as handle:
        payload = {"document_frequency": defaultdict(float, document_frequency), "ref_len": ref_len}
        pickle.dump(payload, handle, protocol=2)
    gts = {int(k): [r + " <eos>" for r in refs] for k, refs in fixture["references"].items()}
    res = [{"image_id": h["image"], "caption": [h["caption"] + " <eos>"]} for h in fixture["hypotheses"][:200]]
    _, scores = CiderD(df=str(path)).compute_score(gts, res)
    np.testing.assert_allclose(scores, fixture["cached_scores"][:200], rtol=0, atol=TOL)


def test_fixture_corpus_mode(fixture):
    gts = {int(k): list(refs) for k, refs in fixture["references"].items()}
    res = [{"image_id": h["image"], "caption": [h["caption"]]} for h in fixture["corpus_hypotheses"]]
    mean, scores = CiderD(df="corpus").compute_score(gts, res)
    expected = np.array(fixture["corpus_scores"])
    np.testing.assert_allclose(scores, expected, rtol=0, atol=TOL)
    assert abs(mean - expected.mean()) <= TOL


def test_single_hypothesis_equals_batch_in_cached_mode(cached_workload):
    path, gts, res, expected = cached_workload
    _, batch = CiderD(df=path).compute_score(gts, res)
    cold = CiderD(df=path)      # every single call builds its own reference table
    warm = CiderD(df=path)
    warm.compute_score(gts, res)  # tables cached by the batch call
    uncached = CiderD(df=path, ref_cache_size=0)
    for k in list(range(0, len(res), 37)) + [len(res) - 1]:
        for scorer in (CiderD(df=path), cold, warm, uncached):
            mean, alone = scorer.compute_score(gts, [res[k]])
            assert alone.shape == (1,)
            assert alone[0] == batch[k], (k, alone[0], batch[k])
            assert mean == alone[0]
    # Scoring the batch in another order permutes the scores and nothing else.
    order = np.random.RandomState(0).permutation(len(res))
    _, shuffled = warm.compute_score(gts, [res[i] for i in order])
    assert np.array_equal(shuffled, batch[order])


def test_reference_cache_is_bounded(cached_workload):
    path, gts, res, expected = cached_workload
    scorer = CiderD(df=path, ref_cache_size=7)
    _, scores = scorer.compute_score(gts, res)
    assert len(scorer._ref_cache) == 7
    np.testing.assert_allclose(scores, expected, rtol=0, atol=TOL)


def test_fixture_df_pickle_round_trips(fixture, tmp_path):
    document_frequency, ref_len = _fixture_df(fixture)
    path = tmp_path / "words.p"
    save_document_frequency({"document_frequency": document_frequency, "ref_len": ref_len}, str(path))
    assert sorted(os.listdir(tmp_path)) == ["words.p"]  # no temporary file left behind
    loaded = load_document_frequency(str(path))
    assert loaded["ref_len"] == ref_len == 300
    assert dict(loaded["document_frequency"]) == document_frequency
    # The file is what OFA's scorer expects: a latin1-loadable dict holding a defaultdict(float).
    with open(path, "rb") as handle:
        raw = pickle.load(handle, encoding="latin1")
    assert isinstance(raw["document_frequency"], defaultdict)
    assert raw["document_frequency"].default_factory is float
    # Saving again replaces the file atomically.
    save_document_frequency({"document_frequency": {("x",): 1.0}, "ref_len": 1}, str(path))
    assert dict(load_document_frequency(str(path))["document_frequency"]) == {("x",): 1.0}
    assert sorted(os.listdir(tmp_path)) == ["words.p"]


# ------------------------------------------------------------------------------------------------
# Appendix B vectors (OFA's ciderD on small captions; docs/ofa-spec.md, Appendix B)
# ------------------------------------------------------------------------------------------------
APPENDIX_B_GTS = {
    0: ["a man riding a horse on a beach", "a person rides a horse near the ocean"],
    1: ["a cat sitting on a couch", "a cat lying on a sofa"],
    2: ["two dogs playing in the snow", "dogs run through snow"],
}
APPENDIX_B_CANDIDATES = ["a man riding a horse", "a cat on a couch", "a dog in the snow"]


def _wrap(sentence):
    return sentence + " <eos>"


@pytest.fixture()
def appendix_b_df(tmp_path):
    """df from the three reference sets with ' <eos>' appended, ref_len forced to 10 (log 10 used)."""
    df_dict = build_document_frequency(list(APPENDIX_B_GTS.values()))
    assert df_dict["ref_len"] == 3
    df_dict["ref_len"] = 10
    path = str(tmp_path / "appendix-b-words.p")
    save_document_frequency(df_dict, path)
    return path


def test_appendix_b_corpus_mode():
    res = [{"image_id": i, "caption": [c]} for i, c in enumerate(APPENDIX_B_CANDIDATES)]
    mean, scores = CiderD(df="corpus").compute_score(APPENDIX_B_GTS, res)
    np.testing.assert_allclose(scores, [3.9224089625061342, 3.18766719961332, 1.890247555783664], rtol=0, atol=TOL)
    assert abs(mean - 3.000107905967706) <= TOL


def test_appendix_b_cached_mode(appendix_b_df):
    gts = {k: [_wrap(r) for r in refs] for k, refs in APPENDIX_B_GTS.items()}
    res = [{"image_id": i, "caption": [_wrap(c)]} for i, c in enumerate(APPENDIX_B_CANDIDATES)]
    _, scores = CiderD(df=appendix_b_df).compute_score(gts, res)
    np.testing.assert_allclose(scores, [3.590723450010247, 4.14540089784836, 2.9143671090959984], rtol=0, atol=TOL)


def test_appendix_b_scst_leave_one_out_scores(appendix_b_df):
    gts = {k: [_wrap(r) for r in refs] for k, refs in APPENDIX_B_GTS.items()}
    hypotheses = ["a man riding a horse", "a man on a horse", "a horse on the beach"]
    res = [{"image_id": 0, "caption": [_wrap(h)]} for h in hypotheses]
    _, scores = CiderD(df=appendix_b_df).compute_score(gts, res)
    np.testing.assert_allclose(scores, [3.590723450010247, 2.2033848068327986, 2.283166279305716], rtol=0, atol=TOL)
    # The criterion's leave-one-out baseline and reward, applied to these scores, give Appendix B's numbers.
    k = len(scores)
    baselines = (scores.sum() - scores) / (k - 1)
    np.testing.assert_allclose(baselines, [2.2432755430692577, 2.9369448646579817, 2.897054128421523], rtol=0, atol=TOL)
    np.testing.assert_allclose(
        scores - baselines, [1.3474479069409893, -0.7335600578251831, -0.6138878491158071], rtol=0, atol=TOL
    )


# ------------------------------------------------------------------------------------------------
# Document-frequency building
# ------------------------------------------------------------------------------------------------
def test_build_document_frequency_by_hand():
    df_dict = build_document_frequency([["a b", "b c"], ["a b a"]])
    # image 0: "a b <eos>", "b c <eos>"; image 1: "a b a <eos>". A gram counts once per image.
    expected = {
        ("a",): 2, ("b",): 2, ("<eos>",): 2, ("c",): 1,
        ("a", "b"): 2, ("b", "<eos>"): 1, ("b", "c"): 1, ("c", "<eos>"): 1, ("b", "a"): 1, ("a", "<eos>"): 1,
        ("a", "b", "<eos>"): 1, ("b", "c", "<eos>"): 1, ("a", "b", "a"): 1, ("b", "a", "<eos>"): 1,
        ("a", "b", "a", "<eos>"): 1,
    }
    assert df_dict["ref_len"] == 2
    assert dict(df_dict["document_frequency"]) == expected
    assert all(isinstance(v, float) for v in df_dict["document_frequency"].values())
    assert isinstance(df_dict["document_frequency"], defaultdict)


def test_build_document_frequency_matches_fixture(fixture):
    """The fixture's df was built from its references the prepro_ngrams way; so must ours be."""
    references = [fixture["references"][str(i)] for i in range(len(fixture["references"]))]
    df_dict = build_document_frequency(references)
    document_frequency, ref_len = _fixture_df(fixture)
    assert df_dict["ref_len"] == ref_len
    assert dict(df_dict["document_frequency"]) == document_frequency


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------
def _assert_helpful(message, path):
    assert str(path) in message
    assert "--scst-cider-cached-tokens" in message
    assert "--eval-cider-cached-tokens" in message
    assert DF_BUILD_COMMAND in message
    assert "ofa-sic cider-df --tsv train.tsv --out train-words.p" in message


def test_missing_df_pickle(tmp_path):
    path = tmp_path / "nope" / "coco-train-words.p"
    with pytest.raises(FileNotFoundError) as info:
        CiderD(df=str(path))
    _assert_helpful(str(info.value), path)


@pytest.mark.parametrize(
    "content",
    [
        b"this is not a pickle",
        pickle.dumps([1, 2, 3]),
        pickle.dumps({"document_frequency": {("a",): 1.0}}),
        pickle.dumps({"document_frequency": {"a": 1.0}, "ref_len": 3}),
        pickle.dumps({"document_frequency": [("a",), 1.0], "ref_len": 3}),
        pickle.dumps({"document_frequency": {("a",): 1.0}, "ref_len": 0}),
    ],
    ids=["garbage", "list", "no-ref_len", "string-keys", "not-a-dict", "zero-ref_len"],
)
def test_malformed_df_pickle(tmp_path, content):
    path = tmp_path / "bad-words.p"
    path.write_bytes(content)
    with pytest.raises(DocumentFrequencyError) as info:
        CiderD(df=str(path))
    assert isinstance(info.value, ValueError)
    _assert_helpful(str(info.value), path)


def test_empty_reference_list_names_the_image():
    with pytest.raises(ValueError, match="'img-7'"):
        CiderD().compute_score({"img-7": []}, [{"image_id": "img-7", "caption": ["a cat"]}])


def test_bad_inputs_are_reported():
    with pytest.raises(KeyError, match="42"):
        CiderD().compute_score({1: ["a cat"]}, [{"image_id": 42, "caption": ["a cat"]}])
    with pytest.raises(ValueError, match="exactly one string"):
        CiderD().compute_score({1: ["a cat"]}, [{"image_id": 1, "caption": "a cat"}])
    with pytest.raises(ValueError, match="exactly one string"):
        CiderD().compute_score({1: ["a cat"]}, [{"image_id": 1, "caption": ["a cat", "a dog"]}])
    with pytest.raises(ValueError, match="list of reference strings"):
        CiderD().compute_score({1: "a cat"}, [{"image_id": 1, "caption": ["a cat"]}])


# ------------------------------------------------------------------------------------------------
# Corpus-mode details of OFA's scorer
# ------------------------------------------------------------------------------------------------
def test_empty_res():
    mean, scores = CiderD().compute_score({1: ["a cat"]}, [])
    assert mean == 0.0 and scores.shape == (0,)


def test_corpus_mode_single_entry_scores_zero():
    """One entry: ref_len = log(1) = 0, so every weight is 0 (OFA behaves the same)."""
    _, scores = CiderD().compute_score({1: ["a cat on a mat"]}, [{"image_id": 1, "caption": ["a cat on a mat"]}])
    assert scores.tolist() == [0.0]


def test_corpus_mode_counts_documents_per_entry():
    """OFA keeps one reference list per res entry: K hypotheses of an image count its refs K times.

    Checked against pycocoevalcap's CiderScorer, whose corpus-mode code is OFA's.
    """
    from pycocoevalcap.cider import cider_scorer
    res = [
        {"image_id": 0, "caption": ["a man riding a horse"]},
        {"image_id": 0, "caption": ["a man on a horse"]},
        {"image_id": 1, "caption": ["a cat on a couch"]},
        {"image_id": 2, "caption": ["a dog in the snow"]},
        {"image_id": 2, "caption": ["dogs in snow"]},
        {"image_id": 2, "caption": ["two dogs"]},
    ]
    reference = cider_scorer.CiderScorer(n=4, sigma=6.0)
    for entry in res:
        reference += (entry["caption"][0], APPENDIX_B_GTS[entry["image_id"]])
    want_mean, want = reference.compute_score()
    mean, scores = CiderD().compute_score(APPENDIX_B_GTS, res)
    np.testing.assert_allclose(scores, want, rtol=0, atol=TOL)
    assert abs(mean - want_mean) <= TOL


def _pycocoevalcap_scores(gts, res, document_frequency=None, log_ref_len=None):
    """OFA's algorithm as pycocoevalcap's CiderScorer runs it (its "CIDEr" is OFA's CIDEr-D code).

    Corpus mode as is; for cached mode the df and log(ref_len) are pinned, as OFA's pickle branch does.
    """
    from pycocoevalcap.cider import cider_scorer

    class PinnedDf(cider_scorer.CiderScorer):
        @property
        def ref_len(self):  # compute_cider() assigns log(#entries); keep the pinned value
            return log_ref_len

        @ref_len.setter
        def ref_len(self, value):
            pass

        def compute_score(self, option=None, verbose=0):  # no doc-freq pass, no corpus assert
            self.document_frequency = defaultdict(float, document_frequency)
            scores = np.array(self.compute_cider())
            return scores.mean(), scores

    scorer = (cider_scorer.CiderScorer if document_frequency is None else PinnedDf)(n=4, sigma=6.0)
    for entry in res:
        scorer += (entry["caption"][0], gts[entry["image_id"]])
    return scorer.compute_score()[1]


RAGGED_GTS = {
    "a": ["a man riding a horse on a beach", "a person rides a horse near the ocean", "a horse and a man"],
    "b": ["a cat sitting on a couch"],
    "c": ["two dogs playing in the snow", "dogs run through snow"],
}
RAGGED_RES = [
    {"image_id": "a", "caption": ["a man riding a horse"]},
    {"image_id": "b", "caption": ["a cat on a couch"]},
    {"image_id": "c", "caption": ["a dog in the snow"]},
    {"image_id": "a", "caption": ["a horse on the beach"]},
    {"image_id": "b", "caption": ["a cat"]},
]


def test_ragged_reference_counts_corpus_mode():
    want = _pycocoevalcap_scores(RAGGED_GTS, RAGGED_RES)
    _, scores = CiderD().compute_score(RAGGED_GTS, RAGGED_RES)
    np.testing.assert_allclose(scores, want, rtol=0, atol=TOL)


def test_ragged_reference_counts_cached_mode(tmp_path):
    wrap_gts = {k: [_wrap(r) for r in refs] for k, refs in RAGGED_GTS.items()}
    wrap_res = [{"image_id": e["image_id"], "caption": [_wrap(e["caption"][0])]} for e in RAGGED_RES]
    df_dict = build_document_frequency(list(RAGGED_GTS.values()) + list(APPENDIX_B_GTS.values()))
    path = str(tmp_path / "ragged-words.p")
    save_document_frequency(df_dict, path)
    want = _pycocoevalcap_scores(wrap_gts, wrap_res, df_dict["document_frequency"], np.log(float(df_dict["ref_len"])))
    scorer = CiderD(df=path)
    _, scores = scorer.compute_score(wrap_gts, wrap_res)
    np.testing.assert_allclose(scores, want, rtol=0, atol=TOL)
    for k, entry in enumerate(wrap_res):
        assert CiderD(df=path).compute_score(wrap_gts, [entry])[1][0] == scores[k]

"""`ofa-sic compare`: the paired bootstrap over images on hand-made pairs of runs over the demo test split,
with the real pycocoevalcap metrics (PTB tokenizer and METEOR in Java)."""
import json

import pytest

from helpers import ofa_sic
from ofa_sic.data.text import CaptionCleaner

COMPARED = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


def split_rows(demo_data):
    """(uniq_id, style, cleaned references) of the prepared test split."""
    cleaner = CaptionCleaner()
    lines = (demo_data["data"] / "test.tsv").read_text().splitlines()
    return [(f[0], f[2], cleaner.references(f[3])) for f in (line.split("\t") for line in lines if line.strip())]


def write_run(folder, rows, caption_of):
    """An evaluation-like folder with predictions.json; caption_of(references) -> caption."""
    folder.mkdir()
    predictions = [{"image_id": i, "uniq_id": uniq_id, "style": style, "caption": caption_of(refs)}
                   for i, (uniq_id, style, refs) in enumerate(rows)]
    (folder / "predictions.json").write_text(json.dumps(predictions))
    return folder


def first_reference(refs):
    return refs[0]


def first_words(refs):
    """A worse caption on every image: the first reference cut to its first three words."""
    return " ".join(refs[0].split()[:3])


@pytest.fixture(scope="module")
def runs(demo_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    rows = split_rows(demo_data)
    return {"rows": rows, "good": write_run(root / "good", rows, first_reference),
            "good_again": write_run(root / "good_again", rows, first_reference),
            "worse": write_run(root / "worse", rows, first_words), "root": root}


def compare(demo_data, run_a, run_b, out, *extra):
    code, stdout, stderr = ofa_sic("compare", run_a, run_b, "--data", demo_data["data"], "--split", "test",
                                   "--resamples", "200", "--out", out, *extra)
    assert code == 0, stderr
    return json.loads(out.read_text()), stdout


def test_identical_runs_give_an_interval_at_zero(demo_data, runs):
    results, stdout = compare(demo_data, runs["good"], runs["good_again"] / "predictions.json", runs["root"] / "same.json")
    assert set(results["overall"]) == set(COMPARED)
    for name, summary in list(results["overall"].items()) + list(results["per_style_cider"].items()):
        assert summary["difference"] == pytest.approx(0, abs=1e-9), name
        assert summary["ci_low"] == pytest.approx(0, abs=1e-9) and summary["ci_high"] == pytest.approx(0, abs=1e-9), name
        assert summary["share_b_better"] == 0, name
    assert "paired bootstrap over 12 images, 200 resamples" in stdout


def test_a_run_better_on_every_image_gives_an_interval_above_zero(demo_data, runs):
    results, stdout = compare(demo_data, runs["worse"], runs["good"], runs["root"] / "better.json")
    for name in COMPARED:
        summary = results["overall"][name]
        assert summary["ci_low"] > 0 and summary["share_b_better"] == 1.0, (name, summary)
        assert summary["ci_low"] <= summary["difference"] <= summary["ci_high"], name
    styles = {style for _, style, _ in runs["rows"]}
    assert set(results["per_style_cider"]) == styles
    assert all(s["ci_low"] > 0 for s in results["per_style_cider"].values())
    # the other way round, the interval is below zero
    reverse, _ = compare(demo_data, runs["good"], runs["worse"], runs["root"] / "worse.json", "--no-meteor")
    assert "METEOR" not in reverse["overall"]
    assert all(reverse["overall"][name]["ci_high"] < 0 for name in ("BLEU-4", "ROUGE-L", "CIDEr"))


def test_point_values_are_the_evaluation_scores(demo_data, runs):
    """The full-set values of compare are exactly what `ofa-sic evaluate` computes (CaptionEvaluator)."""
    from ofa_sic.metrics.caption_eval import CaptionEvaluator

    results = json.loads((runs["root"] / "better.json").read_text())
    rows = runs["rows"]
    references = {uniq_id: refs for uniq_id, _, refs in rows}
    with CaptionEvaluator(spice=False) as evaluator:
        scores = evaluator.evaluate(references, {k: first_words(refs) for k, refs in references.items()}).scores()
        by_style = {}
        for uniq_id, style, _ in rows:
            by_style.setdefault(style, []).append(uniq_id)
        scored = evaluator.evaluate(references, {k: first_words(refs) for k, refs in references.items()})
        style_cider = {style: scored.scores(ids)["CIDEr"] for style, ids in by_style.items()}
    for name in COMPARED:
        assert results["overall"][name]["a"] == pytest.approx(scores[name], abs=1e-9), name
    for style, value in style_cider.items():
        assert results["per_style_cider"][style]["a"] == pytest.approx(value, abs=1e-9), style


def test_bleu_of_summed_statistics_is_pycocoevalcap_corpus_bleu():
    """BLEU-4 from per-image statistics summed with multiplicities equals BleuScorer on the duplicated corpus."""
    import numpy as np
    from pycocoevalcap.bleu.bleu import Bleu

    from ofa_sic.metrics.paired_bootstrap import bleu_statistics, corpus_bleu4

    gts = {"a": ["a red circle on gray", "one red circle"], "b": ["two blue squares on white"],
           "c": ["three green triangles on a black background", "green triangles"]}
    res = {"a": ["a red circle"], "b": ["two blue squares on a white field today"], "c": ["green triangles on black"]}
    stats = bleu_statistics(gts, res, ["a", "b", "c"])
    counts = np.array([2, 0, 1])
    duplicated_gts = {"a1": gts["a"], "a2": gts["a"], "c": gts["c"]}
    duplicated_res = {"a1": res["a"], "a2": res["a"], "c": res["c"]}
    expected = Bleu(4).compute_score(duplicated_gts, duplicated_res, verbose=0)[0][3]
    assert corpus_bleu4(counts @ stats) == pytest.approx(expected, abs=1e-12)


def test_runs_that_miss_rows_are_refused(demo_data, runs, capsys):
    partial = runs["root"] / "partial.json"
    entries = json.loads((runs["good"] / "predictions.json").read_text())[:-1]
    partial.write_text(json.dumps(entries))
    code, _, stderr = ofa_sic("compare", runs["good"], partial, "--data", demo_data["data"], "--no-meteor")
    assert code == 2
    assert "partial.json has captions for 11 rows" in stderr and "1 rows without a caption" in stderr

"""Speed of ``ofa_sic.metrics.cider_d.CiderD`` against the pure-Python CIDEr-D scorer, in one process.

Run from the repository root:

    .venv/bin/python benchmarks/bench_cider.py [--rounds 5] [--warm-calls 5]

Workload: the golden fixture ``ciderd_reference.json`` (300 images x 5 references; 1,500
hypotheses scored in cached-df mode, 300 in corpus-df mode), read from ``tests/data/ofa_reference``.

Baseline: ``pycocoevalcap.cider.cider_scorer.CiderScorer``. Despite the name, that scorer computes
CIDEr-D (tf-idf clipping ``min(w_c, w_r) * w_r`` and the gaussian length penalty, sigma 6), the same
code OFA-main ships as ``ciderD_scorer.py``, except that it always takes document frequencies from
the call's own references. So:
  * corpus mode: ``CiderScorer`` is used as is;
  * cached mode: ``_CachedDfCiderScorer`` below keeps its machinery but pins the document frequencies
    and ``log(ref_len)`` to those of the pickle, which is exactly what OFA's ``df_mode != "corpus"``
    branch does.
Both are driven the way OFA's ``CiderD.compute_score`` drives its scorer: a fresh scorer per call,
``scorer += (hypothesis, references)`` per entry, then ``compute_score()``.

Each row times whole passes over a workload; rounds interleave baseline and CiderD so that load on
the machine affects both, and a row shows the median time and the median per-round speed-up:
  * baseline: the pycocoevalcap scorer;
  * CiderD cold: a new ``CiderD`` (reference tables not yet built; construction not timed);
  * CiderD warm: an instance that has scored the workload before (cached mode keeps reference
    tables across calls; corpus mode cannot, its weights depend on the call);
  * "38 calls x 40": the 1,500 cached-mode hypotheses in calls of 8 images x 5 hypotheses, the
    shape of SCST reward calls.
The scores of every variant must agree with the baseline's and with the fixture's (max abs diff
<= 1e-9), or the script exits non-zero.

Columns: "speed-up" is baseline time / row time; "vs GC-off" divides the time of the baseline run
with the cyclic garbage collector disabled instead. ``CiderD`` pauses the collector during a call
and the baseline does not; in a process with torch loaded (importing ``ofa_sic`` loads it) the
collector's passes over the large heap cost the baseline time, so "vs GC-off" is the ratio of the
algorithms alone. "max|diff|" is the largest difference from the baseline's scores.
"""

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from pycocoevalcap.cider.cider_scorer import CiderScorer  # noqa: E402

from ofa_sic.metrics.cider_d import CiderD  # noqa: E402
from ofa_sic.metrics.document_frequency import save_document_frequency  # noqa: E402

TOLERANCE = 1e-9


class _CachedDfCiderScorer(CiderScorer):
    """pycocoevalcap's scorer with document frequencies and log(ref_len) fixed from a df pickle."""

    def __init__(self, document_frequency, log_ref_len, n=4, sigma=6.0):
        super().__init__(n=n, sigma=sigma)
        self.document_frequency = document_frequency  # shared defaultdict, as OFA shares it
        self._log_ref_len = log_ref_len

    # compute_cider() assigns ref_len = log(#entries); cached mode must keep the pickle's value.
    @property
    def ref_len(self):
        return self._log_ref_len

    @ref_len.setter
    def ref_len(self, value):
        pass

    def compute_score(self, option=None, verbose=0):
        scores = self.compute_cider()  # no compute_doc_freq(): the frequencies are the pickle's
        return np.mean(np.array(scores)), np.array(scores)


def baseline_corpus(gts, res):
    scorer = CiderScorer(n=4, sigma=6.0)
    for entry in res:
        scorer += (entry["caption"][0], gts[entry["image_id"]])
    return scorer.compute_score()


def make_baseline_cached(document_frequency, log_ref_len):
    def baseline_cached(gts, res):
        scorer = _CachedDfCiderScorer(document_frequency, log_ref_len)
        for entry in res:
            scorer += (entry["caption"][0], gts[entry["image_id"]])
        return scorer.compute_score()

    return baseline_cached


def fixture_dir():
    return os.path.join(REPO_ROOT, "tests", "data", "ofa_reference")


def timed(fn, gc_enabled=True):
    """(seconds, result) of one call of ``fn()``."""
    if not gc_enabled:
        gc.disable()
    try:
        start = time.perf_counter()
        result = fn()
        return time.perf_counter() - start, result
    finally:
        gc.enable()


def check(name, got, want):
    diff = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - np.asarray(want, dtype=np.float64))))
    if not diff <= TOLERANCE:
        raise SystemExit(f"FAIL {name}: max abs diff {diff:.3e} > {TOLERANCE}")
    return diff


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (baseline, cold, warm)")
    parser.add_argument("--warm-calls", type=int, default=5, help="warm CiderD passes per round")
    args = parser.parse_args()

    path = os.path.join(fixture_dir(), "ciderd_reference.json")
    if not os.path.isfile(path):
        raise SystemExit(f"fixture not found: {path} (it is part of the repository: git checkout tests/data)")
    with open(path) as handle:
        fixture = json.load(handle)

    # Cached-df workload: every string wrapped with " <eos>", df from the fixture's pickle contents.
    df_payload = fixture["df_pickle"]
    document_frequency = {tuple(gram): count for gram, count in df_payload["document_frequency"]}
    tmpdir = tempfile.mkdtemp(prefix="bench_cider_")
    df_path = os.path.join(tmpdir, "fixture-words.p")
    save_document_frequency({"document_frequency": document_frequency, "ref_len": df_payload["ref_len"]}, df_path)
    gts_cached = {int(k): [r + " <eos>" for r in refs] for k, refs in fixture["references"].items()}
    res_cached = [{"image_id": h["image"], "caption": [h["caption"] + " <eos>"]} for h in fixture["hypotheses"]]
    baseline_cached = make_baseline_cached(
        defaultdict(float, document_frequency), np.log(float(df_payload["ref_len"]))
    )
    # Corpus-df workload: no wrapping.
    gts_corpus = {int(k): list(refs) for k, refs in fixture["references"].items()}
    res_corpus = [{"image_id": h["image"], "caption": [h["caption"]]} for h in fixture["corpus_hypotheses"]]
    # SCST-shaped calls: the cached workload in calls of 8 images x 5 hypotheses.
    batches = [res_cached[i:i + 40] for i in range(0, len(res_cached), 40)]

    def whole(gts, res):
        return lambda score: np.asarray(score(gts, res)[1])

    def batched(score):
        return np.concatenate([np.asarray(score(gts_cached, batch)[1]) for batch in batches])

    workloads = [
        # (label, one pass: score function -> scores, expected scores, baseline, new CiderD)
        ("cached df, 1500 hyps", whole(gts_cached, res_cached), fixture["cached_scores"], baseline_cached,
         lambda: CiderD(df=df_path)),
        ("corpus df, 300 hyps", whole(gts_corpus, res_corpus), fixture["corpus_scores"], baseline_corpus,
         lambda: CiderD(df="corpus")),
        (f"cached df, {len(batches)} calls x 40", batched, fixture["cached_scores"], baseline_cached,
         lambda: CiderD(df=df_path)),
    ]

    # Rounds interleave the baseline and CiderD so that load on the machine hits both alike; a row
    # reports the median over rounds of its time and of its speed-up within the round.
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, torch loaded: {'torch' in sys.modules}; "
          f"{args.rounds} rounds, warm rows: median of {args.warm_calls} passes per round")
    print(f"{'workload':<27} {'variant':<30} {'ms/pass':>8} {'speed-up':>9} {'vs GC-off':>9} {'max|diff|':>9}")
    for label, run_pass, want, baseline, make_scorer in workloads:
        warm = make_scorer()
        run_pass(warm.compute_score)
        times = {"base": [], "base_nogc": [], "cold": [], "warm": []}
        diffs = {"cold": 0.0, "warm": 0.0}
        for _ in range(args.rounds):
            seconds, base_scores = timed(lambda: run_pass(baseline))
            times["base"].append(seconds)
            times["base_nogc"].append(timed(lambda: run_pass(baseline), gc_enabled=False)[0])
            check(f"{label}: baseline vs fixture", base_scores, want)
            cold = make_scorer()  # construction (pickle load) is not timed
            seconds, cold_scores = timed(lambda: run_pass(cold.compute_score))
            times["cold"].append(seconds)
            diffs["cold"] = max(diffs["cold"], check(f"{label}: cold vs baseline", cold_scores, base_scores))
            warm_times = []
            for _ in range(args.warm_calls):
                seconds, warm_scores = timed(lambda: run_pass(warm.compute_score))
                warm_times.append(seconds)
            times["warm"].append(statistics.median(warm_times))
            diffs["warm"] = max(diffs["warm"], check(f"{label}: warm vs baseline", warm_scores, base_scores))
            check(f"{label}: CiderD vs fixture", warm_scores, want)
        for key, variant in (("base", "pycocoevalcap CiderScorer"), ("base_nogc", "  same, GC off"),
                             ("cold", "CiderD cold (new instance)"), ("warm", "CiderD warm (same instance)")):
            ratio = statistics.median(b / t for b, t in zip(times["base"], times[key]))
            ratio_nogc = statistics.median(b / t for b, t in zip(times["base_nogc"], times[key]))
            diff = f"{diffs[key]:9.1e}" if key in diffs else f"{'-':>9}"
            print(f"{label:<27} {variant:<30} {statistics.median(times[key]) * 1e3:8.2f} "
                  f"{ratio:8.1f}x {ratio_nogc:8.1f}x {diff}")
    os.remove(df_path)
    os.rmdir(tmpdir)


if __name__ == "__main__":
    main()

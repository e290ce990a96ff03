"""Tables and plots of benchmarks/scst_study.sh:
`python benchmarks/scst_study_report.py OUT --stage1 ARM... --stage2 ARM...`.

Reads OUT/<arm>/seed<N>/ (train.log, test/metrics.json, test/content.json, test/predictions.json,
compare.json) and writes:
- OUT/table.md: one table per stage. Per arm: test CIDEr mean ± sd over seeds, each seed's paired 95% CI
  against its control (stage 1: ce of the same seed; stage 2: control of the same seed), BLEU-4, style
  top-1 (the judge classifier of metrics.json) with each seed's paired 95% CI against the control, distinct-2,
  content accuracy per attribute and mean caption length; then the ceilings and the runs that went the other
  way (a seed whose difference has the other sign than its arm's mean difference).
- OUT/curves.svg: stage 2's train reward and valid CIDEr-D against updates.
- OUT/cider_style.svg: test CIDEr against style top-1, one point per run, with the references' style top-1.
"""
import argparse
import functools
import glob
import json
import os
import re
import statistics
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np

ATTRIBUTES = ("color", "shape", "count", "background")
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#17becf")
RESAMPLES = 1000


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def runs_of(out: str, arm: str) -> List[str]:
    """The finished runs of `arm`: OUT/<arm>/seed<N> folders with test/metrics.json, by seed."""
    runs = [os.path.dirname(os.path.dirname(p)) for p in glob.glob(os.path.join(out, arm, "seed*", "test", "metrics.json"))]
    return sorted(runs, key=lambda run: int(re.sub(r"\D", "", os.path.basename(run))))


@functools.lru_cache(maxsize=None)
def style_hits(run: str, judge) -> Dict[str, float]:
    """{uniq_id: 1.0 if the judge's top-1 style of the run's test caption is the requested style, else 0.0};
    cached, since a control is compared with every arm of its seed."""
    from ofa_sic.metrics.style_accuracy import style_hits as hits

    predictions = read_json(os.path.join(run, "test", "predictions.json"))
    top1, _ = hits(judge, [p["caption"] for p in predictions], [p["style"] for p in predictions])
    return {p["uniq_id"]: float(hit) for p, hit in zip(predictions, top1)}


def paired_share_interval(a: Dict[str, float], b: Dict[str, float], seed: int = 1) -> Tuple[float, float, float]:
    """(mean of b - a, 95% CI low, high) in points (x100): the paired bootstrap of `ofa-sic compare`
    (ofa_sic.metrics.paired_bootstrap) over the images both runs captioned, on per-image hits."""
    from ofa_sic.metrics.paired_bootstrap import resample_counts, summarize

    keys = sorted(a)
    if sorted(b) != keys:
        raise ValueError("the two runs captioned different test rows")
    hits_a, hits_b = (100 * np.array([hits[k] for k in keys]) for hits in (a, b))
    counts = resample_counts(len(keys), RESAMPLES, np.random.default_rng(seed)).astype(np.float64)
    summary = summarize(hits_a.mean(), hits_b.mean(), counts @ (hits_b - hits_a) / len(keys), len(keys))
    return summary["difference"], summary["ci_low"], summary["ci_high"]


def mean_sd(values: List[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def interval(d: Tuple[float, float, float]) -> str:
    return f"{d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}]"


class Run:
    """One finished run's test figures and its differences from its control (None for a control)."""

    def __init__(self, path: str, control: Optional[str], judge):
        self.seed = os.path.basename(path)
        self.metrics = read_json(os.path.join(path, "test", "metrics.json"))["overall"]
        self.content = read_json(os.path.join(path, "test", "content.json"))
        self.cider_diff = self.style_diff = None
        compare = os.path.join(path, "compare.json")
        if control and os.path.isfile(compare):
            c = read_json(compare)["overall"]["CIDEr"]
            self.cider_diff = (c["difference"], c["ci_low"], c["ci_high"])
            self.style_diff = paired_share_interval(style_hits(control, judge), style_hits(path, judge))


def arm_rows(out: str, arms: List[str], control_of, judge) -> Dict[str, List[Run]]:
    """{arm: [Run per finished seed]}; control_of(arm, seed_folder) -> the control run's folder or None."""
    rows = {}
    for arm in arms:
        runs = [Run(path, control_of(arm, os.path.basename(path)), judge) for path in runs_of(out, arm)]
        if runs:
            rows[arm] = runs
    return rows


def table(rows: Dict[str, List[Run]], control_name: str) -> List[str]:
    lines = [f"| arm | seeds | test CIDEr (mean ± sd) | CIDEr − {control_name}, paired 95% CI, per seed | BLEU-4 | "
             f"style top-1 | style top-1 − {control_name}, per seed | distinct-2 | "
             + " | ".join(ATTRIBUTES) + " | length |",
             "|---|---:|---:|---|---:|---:|---|---:|" + "---:|" * (len(ATTRIBUTES) + 1)]
    for arm, runs in rows.items():
        m = [run.metrics for run in runs]
        cider = [x["CIDEr"] for x in m]
        cider_ci = "; ".join(f"{run.seed}: {interval(run.cider_diff)}" for run in runs if run.cider_diff) or "—"
        style_ci = "; ".join(f"{run.seed}: {interval(run.style_diff)}" for run in runs if run.style_diff) or "—"
        content = [f"{100 * statistics.mean(run.content['accuracy'][a] for run in runs):.0f}%" for a in ATTRIBUTES]
        lines.append(
            f"| {arm} | {len(runs)} | {mean_sd(cider)} | {cider_ci} | {mean_sd([x['BLEU-4'] for x in m])} | "
            f"{mean_sd([x['style_top1'] for x in m])} | {style_ci} | {mean_sd([x['distinct-2'] for x in m])} | "
            + " | ".join(content) + f" | {statistics.mean(x['mean_length'] for x in m):.1f} |")
    return lines


def other_way(rows: Dict[str, List[Run]]) -> List[str]:
    """Seeds whose CIDEr or style difference has the other sign than the arm's mean, or an interval across 0."""
    notes = []
    for arm, runs in rows.items():
        for label, diffs in (("CIDEr", [(r.seed, r.cider_diff) for r in runs if r.cider_diff]),
                             ("style top-1", [(r.seed, r.style_diff) for r in runs if r.style_diff])):
            if not diffs:
                continue
            mean = statistics.mean(d[0] for _, d in diffs)
            against = [f"{seed} {interval(d)}" for seed, d in diffs if d[0] * mean < 0]
            unsure = [f"{seed} {interval(d)}" for seed, d in diffs if d[1] <= 0 <= d[2] and d[0] * mean >= 0]
            if against:
                notes.append(f"- {arm}, {label}: mean {mean:+.1f}, but the other way in {'; '.join(against)}")
            if unsure:
                notes.append(f"- {arm}, {label}: mean {mean:+.1f}; interval includes 0 in {'; '.join(unsure)}")
    return notes or ["- none"]


def log_series(train_log: str) -> Dict[str, List[Tuple[int, float]]]:
    """{"reward": [(update, mean hypothesis CIDEr-D)], "valid": [(update, valid CIDEr-D)]} of a fairseq log."""
    series = {"reward": [], "valid": []}
    with open(train_log, encoding="utf-8") as f:
        for line in f:
            update = re.search(r"num_updates[ =](\d+)", line)
            if not update:
                continue
            if "valid on 'valid'" in line:
                cider = re.search(r"\| cider ([0-9.]+)", line)
                if cider:
                    series["valid"].append((int(update.group(1)), float(cider.group(1))))
            elif "train_inner" in line:
                score = re.search(r"\bscore=([0-9.]+)", line)
                if score:
                    series["reward"].append((int(update.group(1)), float(score.group(1))))
    return series


def svg_frame(x0: int, title: str, points: List[Tuple[float, float]], x_label: str, width: int, height: int):
    """A titled box for `points`; returns (svg parts, sx, sy) with sx/sy mapping data to pixels."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_lo, x_hi, y_lo, y_hi = min(xs), max(xs), min(ys), max(ys)
    x_hi, y_hi = (x_hi if x_hi > x_lo else x_lo + 1), (y_hi if y_hi > y_lo else y_lo + 1e-3)
    left, top, w, h = x0 + 50, 30, width - 70, height - 70

    def sx(x):
        return left + (x - x_lo) / (x_hi - x_lo) * w

    def sy(y):
        return top + h - (y - y_lo) / (y_hi - y_lo) * h

    parts = [f'<text x="{left}" y="18" font-size="13">{title}</text>',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#999"/>',
             f'<text x="{left}" y="{top + h + 16}" font-size="10">{x_lo:g}</text>',
             f'<text x="{left + w - 90}" y="{top + h + 16}" font-size="10">{x_hi:g} {x_label}</text>',
             f'<text x="{x0 + 2}" y="{top + 8}" font-size="10">{y_hi:.2f}</text>',
             f'<text x="{x0 + 2}" y="{top + h}" font-size="10">{y_lo:.2f}</text>']
    return parts, sx, sy, (left, top, w, h)


def legend(parts: List[str], box, i: int, label: str, colour: str) -> None:
    left, top, _, h = box
    parts.append(f'<text x="{left + 5}" y="{top + h + 32 + 12 * (i // 3)}" dx="{130 * (i % 3)}" font-size="10" '
                 f'fill="{colour}">{label}</text>')


def svg_panel(x0: int, title: str, curves: Dict[str, List[Tuple[int, float]]], width=420, height=260) -> str:
    """One line chart: curves {label: [(x, y)]} in a width x height box starting at x0."""
    points = [p for values in curves.values() for p in values]
    if not points:
        return f'<text x="{x0 + 20}" y="40">{title}: no data</text>'
    parts, sx, sy, box = svg_frame(x0, title, points, "updates", width, height)
    for i, (label, values) in enumerate(sorted(curves.items())):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.2"/>')
        legend(parts, box, i, label, colour)
    return "\n".join(parts)


def curves(out: str, arms: List[str]) -> str:
    reward, valid = {}, {}
    for arm in arms:
        for log in sorted(glob.glob(os.path.join(out, arm, "seed*", "train.log"))):
            label = f"{arm} {os.path.basename(os.path.dirname(log))}"
            series = log_series(log)
            if series["reward"]:
                reward[label] = series["reward"]
            valid[label] = series["valid"]
    body = svg_panel(0, "SCST train reward (mean hypothesis CIDEr-D)", reward) + "\n" + \
        svg_panel(440, "valid CIDEr-D (top beam)", valid)
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="880" height="{300 + 12 * (len(valid) // 3)}" ' \
           f'font-family="sans-serif">\n{body}\n</svg>\n'


def cider_style_plot(rows: Dict[str, List[Run]], reference_style: Optional[float], width=640, height=420) -> str:
    """Test CIDEr (y) against style top-1 (x), a marker per run and its arm's mean as a larger one; the title
    names the references' style top-1 (the ceiling, far right of the runs on PCap-like data)."""
    points = [(run.metrics["style_top1"], run.metrics["CIDEr"]) for runs in rows.values() for run in runs]
    ceiling = f" (the references: {reference_style:.1f}%)" if reference_style is not None else ""
    parts, sx, sy, box = svg_frame(0, f"test CIDEr against style top-1{ceiling}; a dot per run, a ring per arm's mean",
                                   points, "style top-1 (%)", width, height)
    for i, (arm, runs) in enumerate(rows.items()):
        colour = COLOURS[i % len(COLOURS)]
        for run in runs:
            parts.append(f'<circle cx="{sx(run.metrics["style_top1"]):.1f}" cy="{sy(run.metrics["CIDEr"]):.1f}" r="3" '
                         f'fill="{colour}"/>')
        mx = statistics.mean(run.metrics["style_top1"] for run in runs)
        my = statistics.mean(run.metrics["CIDEr"] for run in runs)
        parts.append(f'<circle cx="{sx(mx):.1f}" cy="{sy(my):.1f}" r="7" fill="none" stroke="{colour}" stroke-width="2"/>')
        legend(parts, box, i, arm, colour)
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 12 * (len(rows) // 3)}" ' \
           f'font-family="sans-serif">\n' + "\n".join(parts) + "\n</svg>\n"


def main(argv: List[str]) -> int:
    from ofa_sic.metrics.style_classifier import StyleClassifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--stage1", nargs="*", default=[])
    parser.add_argument("--stage2", nargs="*", default=[])
    args = parser.parse_args(argv)
    out = args.out
    judge = StyleClassifier.load(os.path.join(out, "judge", "style_classifier.npz"))

    stage1 = arm_rows(out, args.stage1, lambda arm, seed: None if arm == "ce" else os.path.join(out, "ce", seed), judge)
    stage2 = arm_rows(out, args.stage2,
                      lambda arm, seed: None if arm == "control" else os.path.join(out, "control", seed), judge)
    every = {**{f"stage 1 {arm}": runs for arm, runs in stage1.items()}, **stage2}
    any_run = next(run for runs in every.values() for run in runs)
    reference_style = any_run.metrics.get("reference_style_top1")
    ceilings = os.path.join(out, "raw", "ceilings.json")
    lines = []
    if stage1:
        lines += ["### Stage 1", ""] + table(stage1, "ce") + [""]
    if stage2:
        lines += ["### Stage 2 (every arm from ce seed 1)", ""] + table(stage2, "control") + [""]
    lines.append(f"Ceilings: the judge's style top-1 on the test references {reference_style:.1f}%"
                 + (f"; the references' leave-one-out CIDEr {read_json(ceilings)['reference_loo_cider']:.1f}"
                    if os.path.isfile(ceilings) else "") + ".")
    chance = any_run.content["chance"]
    lines.append("Content chance (most frequent value): " + ", ".join(f"{a} {100 * chance[a]:.0f}%" for a in ATTRIBUTES) + ".")
    lines += ["", "Runs that went the other way (a seed against its arm's mean), and seeds whose interval includes 0:"] + other_way({**stage1, **stage2})
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(out, "curves.svg"), "w", encoding="utf-8") as f:
        f.write(curves(out, args.stage2))
    with open(os.path.join(out, "cider_style.svg"), "w", encoding="utf-8") as f:
        f.write(cider_style_plot(every, reference_style))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

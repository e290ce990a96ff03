"""Table and curves of benchmarks/scst_study.sh: `python benchmarks/scst_study_report.py OUT ARM...`.

Reads OUT/ce and OUT/<arm>/seed<N>/ (train.log, test/metrics.json, test/content.json, compare.json) and
writes OUT/table.md (test CIDEr mean ± sd over seeds, each seed's paired 95% CI against the control of
the same seed, content accuracy) and OUT/curves.svg (train reward and valid CIDEr-D against updates).
"""
import glob
import json
import os
import re
import statistics
import sys
from typing import Dict, List, Tuple

ATTRIBUTES = ("color", "shape", "count", "background")
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


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


def mean_sd(values: List[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def table(out: str, arms: List[str]) -> str:
    lines = ["| arm | seeds | test CIDEr (mean ± sd) | B − control, paired 95% CI, per seed | "
             + " | ".join(ATTRIBUTES) + " | distinct captions |",
             "|---|---:|---:|---|" + "---:|" * (len(ATTRIBUTES) + 1)]
    ce = os.path.join(out, "ce", "test")
    rows = [("CE checkpoint (start of every arm)", [ce])] + [
        (arm, sorted(glob.glob(os.path.join(out, arm, "seed*", "test")))) for arm in arms]
    for name, runs in rows:
        runs = [run for run in runs if os.path.isfile(os.path.join(run, "metrics.json"))]
        if not runs:
            continue
        cider = [read_json(os.path.join(run, "metrics.json"))["overall"]["CIDEr"] for run in runs]
        intervals = []
        for run in runs:
            compare = os.path.join(os.path.dirname(run), "compare.json")
            if os.path.isfile(compare):
                s = read_json(compare)["overall"]["CIDEr"]
                intervals.append(f"{s['difference']:+.1f} [{s['ci_low']:+.1f}, {s['ci_high']:+.1f}]")
        content = [read_json(os.path.join(run, "content.json")) for run in runs]
        accuracy = [f"{100 * statistics.mean(c['accuracy'][a] for c in content):.0f}%" for a in ATTRIBUTES]
        distinct = statistics.mean(c["distinct_captions"] for c in content)
        lines.append(f"| {name} | {len(runs)} | {mean_sd(cider)} | {'; '.join(intervals) or '—'} | "
                     + " | ".join(accuracy) + f" | {distinct:.0f} |")
    chance = read_json(os.path.join(ce, "content.json"))["chance"]
    lines.append("")
    lines.append("Chance (most frequent value): " + ", ".join(f"{a} {100 * chance[a]:.0f}%" for a in ATTRIBUTES) + ".")
    return "\n".join(lines) + "\n"


def svg_panel(x0: int, title: str, curves: Dict[str, List[Tuple[int, float]]], width=420, height=260) -> str:
    """One line chart: curves {label: [(x, y)]} in a width x height box starting at x0."""
    points = [p for values in curves.values() for p in values]
    if not points:
        return f'<text x="{x0 + 20}" y="40">{title}: no data</text>'
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_lo, x_hi, y_lo, y_hi = min(xs), max(xs) or 1, min(ys), max(ys)
    x_hi, y_hi = (x_hi if x_hi > x_lo else x_lo + 1), (y_hi if y_hi > y_lo else y_lo + 1e-3)
    left, top, w, h = x0 + 50, 30, width - 70, height - 70

    def sx(x):
        return left + (x - x_lo) / (x_hi - x_lo) * w

    def sy(y):
        return top + h - (y - y_lo) / (y_hi - y_lo) * h

    parts = [f'<text x="{left}" y="18" font-size="13">{title}</text>',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#999"/>',
             f'<text x="{left}" y="{top + h + 16}" font-size="10">{x_lo}</text>',
             f'<text x="{left + w - 30}" y="{top + h + 16}" font-size="10">{x_hi} updates</text>',
             f'<text x="{x0 + 2}" y="{top + 8}" font-size="10">{y_hi:.2f}</text>',
             f'<text x="{x0 + 2}" y="{top + h}" font-size="10">{y_lo:.2f}</text>']
    for i, (label, values) in enumerate(sorted(curves.items())):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.2"/>')
        parts.append(f'<text x="{left + 5}" y="{top + h + 32 + 12 * (i // 3)}" dx="{130 * (i % 3)}" font-size="10" '
                     f'fill="{colour}">{label}</text>')
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


def main(argv: List[str]) -> int:
    out, arms = argv[0], argv[1:]
    text = table(out, arms)
    with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(out, "curves.svg"), "w", encoding="utf-8") as f:
        f.write(curves(out, arms))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""metrics.json and the per-style table of `ofa-sic evaluate`.

metrics.json holds the settings that produced the numbers (checkpoint, data, split, generation
options, device), the overall scores and one entry per style, each with its sample count. All scores
are x100. Per-style scores come from the same metric functions run on that style's captions alone, so
each style's references are its corpus: CIDEr's idf (and BLEU's and METEOR's corpus statistics)
differ from the whole split's, and per-style numbers are not shares or averages of the overall ones.
"""
from typing import Dict, List, Mapping, Optional

from ofa_sic.metrics.caption_eval import METRIC_NAMES

PER_STYLE_NOTE = (
    "per-style scores use each style's references as the corpus (the same metric functions run on that "
    "style's captions alone): CIDEr's idf comes from that style's references, so per-style CIDEr is not an "
    "average or share of the overall CIDEr; all scores are x100"
)


def sort_styles_by_cider(per_style: Mapping[str, Dict[str, float]]) -> List[str]:
    """Style names, best CIDEr first (ties by name)."""
    return sorted(per_style, key=lambda name: (-per_style[name]["CIDEr"], name))


def build_metrics(settings: Dict, overall: Dict[str, float], per_style: Mapping[str, Dict[str, float]],
                  spice_note: Optional[str]) -> Dict:
    """The metrics.json document: settings, overall and per-style scores (styles best CIDEr first)."""
    counts = sum(scores["num_samples"] for scores in per_style.values())
    if counts != overall["num_samples"]:
        raise AssertionError(f"per-style sample counts sum to {counts}, not {overall['num_samples']}")
    return {
        **settings,
        "scale": "x100",
        "overall": dict(overall),
        "per_style": {name: dict(per_style[name]) for name in sort_styles_by_cider(per_style)},
        "per_style_note": PER_STYLE_NOTE,
        "spice": spice_note or "computed",
    }


def style_table(metrics: Dict) -> str:
    """A plain-text table: one row per style (best CIDEr first), then the overall row."""
    names = [name for name in METRIC_NAMES + ("SPICE",) if name in metrics["overall"]]
    rows = list(metrics["per_style"].items()) + [("all styles", metrics["overall"])]
    width = max(len("style"), *(len(name) for name, _ in rows))
    lines = [f"{'style':<{width}}  {'n':>5}  " + "  ".join(f"{name:>7}" for name in names)]
    for i, (style, scores) in enumerate(rows):
        if i == len(rows) - 1:
            lines.append("-" * len(lines[0]))
        cells = "  ".join(f"{scores[name]:>7.2f}" for name in names)
        lines.append(f"{style:<{width}}  {scores['num_samples']:>5}  {cells}")
    return "\n".join(lines)

"""Training curves of one or more fairseq-train runs against updates, overlaid in one figure (matplotlib).

Panels, each drawn only when some run logged its value:
- train loss (the criterion's own loss: label-smoothed cross-entropy in stage 1, the SCST loss in stage 2);
- valid loss and valid CIDEr-D (per validation subset);
- SCST score (mean CIDEr-D reward of the sampled captions) and SCST advantage (mean |reward - baseline|).
Each run is one colour across the panels and is named in the legend.
"""
import io
from typing import Dict, List, Sequence, Tuple

from ofa_sic.evaluation.training_log import TrainingLog

PANELS = (
    ("train loss (the criterion's)", "train", "loss"),
    ("valid loss", "valid", "loss"),
    ("valid CIDEr-D", "valid", "cider"),
    ("SCST score (mean CIDEr-D reward)", "train", "score"),
    ("SCST advantage (mean |reward - baseline|)", "train", "advantage"),
)


Curve = Tuple[str, str, Dict[int, float]]  # (run name, legend label, {update: value})


def panel_curves(logs: Sequence[TrainingLog], names: Sequence[str]) -> Dict[str, List[Curve]]:
    """{panel title: [(run name, curve label, {update: value}), ...]} for the panels some run logged, in PANELS order."""
    panels: Dict[str, List[Curve]] = {}
    for title, source, metric in PANELS:
        curves = []
        for log, name in zip(logs, names):
            if source == "train":
                series = {"": log.train(metric)}
            else:
                series = {subset: values.get(metric, {}) for subset, values in log.valid.items()}
            for subset, points in series.items():
                if points:
                    label = name if subset in ("", "valid") else f"{name} ({subset})"
                    curves.append((name, label, points))
        if curves:
            panels[title] = curves
    return panels


def plot_training_curves(logs: Sequence[TrainingLog], names: Sequence[str], out_path: str):
    """Draw the panels into `out_path` (PNG); returns (figure, panel_curves(...)). One colour per run."""
    import logging

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # fairseq's logging setup would print its font search
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(logs) != len(names) or len(set(names)) != len(names):
        raise ValueError(f"need one distinct name per log, got {len(logs)} logs and names {list(names)}")
    panels = panel_curves(logs, names)
    if not panels:
        raise ValueError("none of the logs has a train loss, valid loss, CIDEr-D, SCST score or advantage to plot")
    colors = {name: f"C{i % 10}" for i, name in enumerate(names)}
    columns = min(len(panels), 3)
    rows = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.6 * rows), squeeze=False)
    for ax, (title, curves) in zip(axes.flat, panels.items()):
        for run, label, points in curves:
            updates = sorted(points)
            ax.plot(updates, [points[u] for u in updates], marker="o" if len(updates) < 20 else None,
                    markersize=3, color=colors[run], label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, dpi=110, format="png")
    plt.close(figure)
    from ofa_sic.atomic_files import atomic_write

    with atomic_write(out_path, binary=True) as handle:
        handle.write(png.getvalue())
    return figure, panels

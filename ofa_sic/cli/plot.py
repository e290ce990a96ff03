"""`ofa-sic plot`: training curves of fairseq-train runs, overlaid in one PNG.

Reads each log (the stdout/stderr of fairseq-train with --log-format simple, e.g. the demo's
ce/train.log and scst/train.log) and draws train loss, valid loss, valid CIDEr-D, SCST score and SCST
advantage against updates, each panel only when some run logged its value. Runs are named by
--name (once per log, in order) or else by the folder holding the log. For live curves, give
fairseq-train `--tensorboard-logdir DIR` and run `tensorboard --logdir DIR` (both installed by
`make install`).
"""
import argparse
import os

HELP = "draw training curves (loss, valid CIDEr-D, SCST score/advantage vs updates) from fairseq-train logs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("logs", nargs="+", metavar="LOG", help="fairseq-train logs (--log-format simple)")
    parser.add_argument("--out", required=True, metavar="FILE.png", help="PNG to write")
    parser.add_argument("--name", action="append", metavar="NAME",
                        help="legend name of a run, once per LOG in the same order (default: each log's folder name)")


def default_names(paths) -> list:
    """Each log's folder name ("ce" for demo_out/ce/train.log); the log paths themselves when those repeat."""
    names = [os.path.basename(os.path.dirname(os.path.abspath(p))) for p in paths]
    return names if len(set(names)) == len(names) else list(paths)


def run(args: argparse.Namespace) -> int:
    from ofa_sic.evaluation.training_log import read_training_log
    from ofa_sic.evaluation.training_plot import plot_training_curves

    names = args.name or default_names(args.logs)
    if len(names) != len(args.logs):
        raise ValueError(f"{len(args.logs)} logs but {len(names)} --name: give one --name per log, or none")
    if not args.out.lower().endswith(".png"):
        raise ValueError(f"--out {args.out}: the figure is a PNG; name it FILE.png")
    out_folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_folder):
        raise FileNotFoundError(f"--out {args.out}: folder {out_folder} does not exist")
    logs = [read_training_log(path) for path in args.logs]
    _, panels = plot_training_curves(logs, names, args.out)
    curves = sum(len(c) for c in panels.values())
    print(f"wrote {args.out}: {len(panels)} panels, {curves} curves")
    for title, panel in panels.items():
        print(f"  {title}: " + ", ".join(f"{label} ({len(points)} points)" for _, label, points in panel))
    return 0

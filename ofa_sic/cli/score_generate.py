"""`ofa-sic score-generate`: COCO caption metrics of a fairseq-generate output, recorded per stage.

Beside the COCO metrics, the stage's entry holds the style figures of `ofa-sic evaluate` (overall, and
per style under "per_style"): diversity, and with --style-classifier style accuracy beside its ceiling
on the references (ofa_sic.evaluation.style_figures). Style sensitivity needs captions of one image
in several styles, which fairseq-generate does not make: `ofa-sic evaluate --styles-per-image N`.
"""
import argparse
import json
import os

HELP = "score fairseq-generate output (D- lines) against a split's references; add them to a metrics.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generate-output", required=True, metavar="FILE", help="stdout of fairseq-generate")
    parser.add_argument("--data", required=True, metavar="DIR", help="prepared data directory (prepare-pcap output)")
    parser.add_argument("--split", default="test", help="split that was generated (default: test)")
    parser.add_argument("--metrics", required=True, metavar="FILE", help="metrics.json to create or update")
    parser.add_argument("--stage", required=True, help='key to store the scores under, e.g. "ce" or "scst"')
    parser.add_argument("--style-classifier", metavar="FILE",
                        help="classifier from `ofa-sic style-classifier`: add top-1/top-5 style accuracy")


def read_hypotheses(path: str) -> dict:
    """{row id: detokenized hypothesis} from fairseq-generate's `D-<id>\\t<score>\\t<text>` lines."""
    hypotheses = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("D-"):
                fields = line.rstrip("\n").split("\t")
                hypotheses[int(fields[0][2:])] = fields[2] if len(fields) > 2 else ""
    return hypotheses


def run(args: argparse.Namespace) -> int:
    from ofa_sic.atomic_files import atomic_write
    from ofa_sic.data.caption_rows import read_caption_rows
    from ofa_sic.evaluation.style_figures import StyleFigures, style_figures_table
    from ofa_sic.metrics.caption_eval import CaptionEvaluator

    split_tsv = os.path.join(args.data, f"{args.split}.tsv")
    figures = StyleFigures(args.data, args.style_classifier)
    split_rows = read_caption_rows(split_tsv)
    styles = [row.style for row in split_rows]
    figures.check_styles(styles, split_tsv)
    hypotheses = read_hypotheses(args.generate_output)
    references = {i: row.captions for i, row in enumerate(split_rows)}
    if set(hypotheses) != set(references):
        raise ValueError(
            f"{args.generate_output} has captions for {len(hypotheses)} rows, {args.split}.tsv has {len(references)}: "
            "generate with --required-batch-size-multiple 1 (the style_caption task sets it) and the same split"
        )
    with CaptionEvaluator(meteor=True, spice=False) as evaluator:
        scored = evaluator.evaluate({str(k): v for k, v in references.items()}, {str(k): v for k, v in hypotheses.items()})
        scores = scored.scores()
    scores["num_captions"] = len(hypotheses)
    rows = range(len(split_rows))
    overall, per_style = figures.measure([hypotheses[i] for i in rows], styles, [references[i] for i in rows])
    scores.update(overall)
    scores["per_style"] = {style: per_style[style] for style in sorted(per_style)}
    scores["style_figures"] = figures.settings()
    metrics = {}
    if os.path.exists(args.metrics):
        with open(args.metrics) as f:
            metrics = json.load(f)
    metrics[args.stage] = scores
    with atomic_write(args.metrics) as handle:
        json.dump(metrics, handle, indent=2)
    print(f"{args.stage} on {args.split} ({len(hypotheses)} captions): " + ", ".join(
        f"{k} {v:.1f}" for k, v in scores.items() if isinstance(v, float)))
    print(style_figures_table(scores["per_style"], overall))
    return 0

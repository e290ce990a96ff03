"""`ofa-sic score-generate`: COCO caption metrics of a fairseq-generate output, recorded per stage."""
import argparse
import json
import os
import tempfile

HELP = "score fairseq-generate output (D- lines) against a split's references; add them to a metrics.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generate-output", required=True, metavar="FILE", help="stdout of fairseq-generate")
    parser.add_argument("--data", required=True, metavar="DIR", help="prepared data directory (prepare-pcap output)")
    parser.add_argument("--split", default="test", help="split that was generated (default: test)")
    parser.add_argument("--metrics", required=True, metavar="FILE", help="metrics.json to create or update")
    parser.add_argument("--stage", required=True, help='key to store the scores under, e.g. "ce" or "scst"')


def read_hypotheses(path: str) -> dict:
    """{row id: detokenized hypothesis} from fairseq-generate's `D-<id>\\t<score>\\t<text>` lines."""
    hypotheses = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("D-"):
                fields = line.rstrip("\n").split("\t")
                hypotheses[int(fields[0][2:])] = fields[2] if len(fields) > 2 else ""
    return hypotheses


def read_references(tsv_path: str) -> dict:
    """{row id: [references]} from a prepared TSV (row id = position of the row, as the task numbers them)."""
    from ofa_sic.data.caption_dataset import COLUMNS
    from ofa_sic.data.text import REFERENCE_SEPARATOR
    from ofa_sic.data.tsv_reader import IndexedTSV

    rows = IndexedTSV(tsv_path, num_columns=len(COLUMNS))
    column = COLUMNS.index("captions")
    return {i: rows[i][column].split(REFERENCE_SEPARATOR) for i in range(len(rows))}


def run(args: argparse.Namespace) -> int:
    from ofa_sic.metrics.caption_eval import CaptionEvaluator

    hypotheses = read_hypotheses(args.generate_output)
    references = read_references(os.path.join(args.data, f"{args.split}.tsv"))
    if set(hypotheses) != set(references):
        raise ValueError(
            f"{args.generate_output} has captions for {len(hypotheses)} rows, {args.split}.tsv has {len(references)}: "
            "generate with --required-batch-size-multiple 1 (the style_caption task sets it) and the same split"
        )
    with CaptionEvaluator(meteor=True, spice=False) as evaluator:
        scored = evaluator.evaluate({str(k): v for k, v in references.items()}, {str(k): v for k, v in hypotheses.items()})
        scores = scored.scores()
    scores["num_captions"] = len(hypotheses)
    metrics = {}
    if os.path.exists(args.metrics):
        with open(args.metrics) as f:
            metrics = json.load(f)
    metrics[args.stage] = scores
    directory = os.path.dirname(os.path.abspath(args.metrics))
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".json") as tmp:
        json.dump(metrics, tmp, indent=2)
    os.replace(tmp.name, args.metrics)
    print(f"{args.stage} on {args.split} ({len(hypotheses)} captions): " + ", ".join(f"{k} {v:.1f}" for k, v in scores.items() if k != "num_captions"))
    return 0

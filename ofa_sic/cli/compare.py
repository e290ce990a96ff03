"""`ofa-sic compare RUN_A RUN_B`: is B better than A? A paired bootstrap over the test images.

RUN_A and RUN_B are `ofa-sic evaluate` folders or their predictions.json files, captioning the same
rows of the same split. The references come from the split's TSV (--data and --split, or the data
folder and split recorded in the run's metrics.json), cleaned as the task cleans them. Prints, for
BLEU-4, METEOR, ROUGE-L, CIDEr (x100) and each style's CIDEr: A, B, B - A with its 95% interval from a
paired bootstrap over images, and the share of resamples in which B beats A (see
ofa_sic.metrics.paired_bootstrap for how each metric is resampled; CIDEr keeps the document
frequencies of the full split's references, as evaluation does). --out writes the numbers as JSON.
"""
import argparse
import json
import os
from typing import Dict, List, Tuple

HELP = "paired bootstrap of two evaluation runs over the same images: B - A with a 95% interval per metric"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_a", metavar="RUN_A", help="`ofa-sic evaluate` folder or predictions.json (the baseline)")
    parser.add_argument("run_b", metavar="RUN_B", help="`ofa-sic evaluate` folder or predictions.json (the candidate)")
    parser.add_argument("--data", metavar="DIR", help="prepared data folder (default: the one in RUN_A's metrics.json)")
    parser.add_argument("--split", help="split the runs captioned (default: the one in RUN_A's metrics.json, else test)")
    parser.add_argument("--resamples", type=int, default=1000, metavar="R", help="bootstrap resamples (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the resampling (default: 0)")
    parser.add_argument("--no-meteor", action="store_true",
                        help="skip METEOR (its resamples run through the METEOR jar: about 0.3 ms per image and resample)")
    parser.add_argument("--out", metavar="FILE", help="also write the results as JSON to FILE")


def predictions_path(run: str) -> str:
    """predictions.json of a run given as an evaluation folder or as the file itself."""
    path = os.path.join(run, "predictions.json") if os.path.isdir(run) else run
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: give an `ofa-sic evaluate` --out folder or its predictions.json")
    return path


def recorded_settings(predictions: str) -> Dict:
    """The settings in the metrics.json next to a predictions.json ({} when there is none)."""
    metrics = os.path.join(os.path.dirname(os.path.abspath(predictions)), "metrics.json")
    if not os.path.isfile(metrics):
        return {}
    with open(metrics, encoding="utf-8") as f:
        return json.load(f)


def read_predictions(path: str) -> Dict[str, str]:
    """{uniq_id: caption} of a predictions.json; every row needs a unique uniq_id and a caption."""
    with open(path, encoding="utf-8") as f:
        entries = json.load(f)
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of predictions (as `ofa-sic evaluate` writes), got {type(entries).__name__}")
    captions = {}
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or "uniq_id" not in entry or not isinstance(entry.get("caption"), str):
            raise ValueError(f"{path}: prediction #{position + 1} needs a 'uniq_id' and a 'caption' string, got {entry!r}")
        key = str(entry["uniq_id"])
        if key in captions:
            raise ValueError(f"{path}: uniq_id {key!r} appears more than once")
        captions[key] = entry["caption"]
    return captions


def read_split(tsv_path: str) -> List[Tuple[str, str, List[str]]]:
    """(uniq_id, style, cleaned references) of every row of a prepared TSV, in file order."""
    from ofa_sic.data.prepared_layout import COLUMNS
    from ofa_sic.data.text import CaptionCleaner
    from ofa_sic.data.tsv_reader import IndexedTSV

    if not os.path.isfile(tsv_path):
        raise FileNotFoundError(f"{tsv_path} not found: pass --data (the prepare-pcap folder) and --split")
    rows = IndexedTSV(tsv_path, num_columns=len(COLUMNS))
    cleaner = CaptionCleaner()
    uniq, style, captions = (COLUMNS.index(name) for name in ("uniq_id", "style", "captions"))
    return [(row[uniq], row[style], cleaner.references(row[captions])) for row in (rows[i] for i in range(len(rows)))]


def check_coverage(path: str, captions: Dict[str, str], rows, tsv_path: str) -> None:
    """A run must caption exactly the split's rows."""
    expected = {uniq_id for uniq_id, _, _ in rows}
    missing, extra = expected - set(captions), set(captions) - expected
    if missing or extra:
        raise ValueError(
            f"{path} has captions for {len(captions)} rows, {tsv_path} has {len(expected)}: {len(missing)} rows "
            f"without a caption (e.g. {sorted(missing)[:3]}), {len(extra)} unknown uniq_ids (e.g. {sorted(extra)[:3]}); "
            "compare runs of the same split"
        )


def format_table(results: Dict, name_a: str, name_b: str) -> str:
    """The printed table: one line per metric, then one per style (CIDEr)."""
    header = f"{'':<22}{'A':>8}{'B':>8}{'B - A':>9}   {'95% CI':<18}{'B > A':>7}"

    def line(label, s):
        interval = f"[{s['ci_low']:+.2f}, {s['ci_high']:+.2f}]"
        return (f"{label:<22}{s['a']:8.2f}{s['b']:8.2f}{s['difference']:+9.2f}   {interval:<18}"
                f"{100 * s['share_b_better']:6.1f}%")

    lines = [f"A = {name_a}", f"B = {name_b}",
             f"paired bootstrap over {next(iter(results['overall'].values()))['num_images']} images, "
             f"{results['resamples']} resamples (x100; CIDEr with the full split's document frequencies)", header]
    lines += [line(metric, s) for metric, s in results["overall"].items()]
    lines.append("CIDEr per style (each style's references are its corpus):")
    lines += [line(f"  {style}", s) for style, s in results["per_style_cider"].items()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ofa_sic.atomic_files import write_json_atomic
    from ofa_sic.metrics.caption_eval import CaptionEvaluator
    from ofa_sic.metrics.paired_bootstrap import paired_bootstrap

    if args.resamples < 1:
        raise ValueError(f"--resamples must be at least 1, got {args.resamples}")
    path_a, path_b = predictions_path(args.run_a), predictions_path(args.run_b)
    settings = recorded_settings(path_a)
    data = args.data or settings.get("data")
    if not data:
        raise ValueError(f"no metrics.json next to {path_a} says which data it captioned: pass --data")
    tsv_path = os.path.join(data, f"{args.split or settings.get('split', 'test')}.tsv")
    rows = read_split(tsv_path)
    if not rows:
        raise ValueError(f"{tsv_path} has no rows")
    captions_a, captions_b = read_predictions(path_a), read_predictions(path_b)
    check_coverage(path_a, captions_a, rows, tsv_path)
    check_coverage(path_b, captions_b, rows, tsv_path)

    references = {uniq_id: refs for uniq_id, _, refs in rows}
    styles = {uniq_id: style for uniq_id, style, _ in rows}
    with CaptionEvaluator(meteor=not args.no_meteor, spice=False) as evaluator:
        scored_a = evaluator.evaluate(references, {k: captions_a[k] for k in references})
        scored_b = evaluator.evaluate(references, {k: captions_b[k] for k in references})
        results = paired_bootstrap(scored_a, scored_b, styles, resamples=args.resamples, seed=args.seed)
    results.update(run_a=os.path.abspath(path_a), run_b=os.path.abspath(path_b), references=os.path.abspath(tsv_path))
    print(format_table(results, path_a, path_b))
    if args.out:
        write_json_atomic(args.out, results)
        print(f"wrote {args.out}")
    return 0

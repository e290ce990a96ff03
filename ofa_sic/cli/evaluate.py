"""`ofa-sic evaluate`: caption a split with a checkpoint and write a report people can read.

Before any work, checks that --out can be written (it is created only at the end; results of an earlier
run are replaced only with --overwrite), that the checkpoint is one (a bad file: one line, exit code 2)
and that the split's rows have no problem (`ofa_sic.data.check`). Writes into --out (each file atomically):
- predictions.json: COCO results format, `[{"image_id", "caption", "style", "uniq_id"}, ...]` in split order;
- metrics.json: overall and per-style BLEU-1..4, METEOR, ROUGE-L, CIDEr (x100; SPICE when its jars are
  installed) with sample counts and the settings used (checkpoint, data, split, generation options);
- gallery.html: every image with its style, caption and references; styles and images sorted by CIDEr,
  best and worst of each style marked; a per-style chart of CIDEr beside style accuracy;
- content.json (with --attributes, on the demo data): per attribute, the share of captions that state
  the image's colour, shape, count and background correctly, the chance level, and the number of
  distinct captions (see ofa_sic.evaluation.content_accuracy).
Prints the per-style table, best CIDEr first. Per-style scores use each style's references as the corpus.

Beside the caption metrics, overall and per style (ofa_sic.evaluation.style_figures): diversity
(distinct-1/2, vocabulary, mean length, copies of training captions, from the data folder's train.tsv)
and, with --style-classifier, top-1/top-5 style accuracy next to the same classifier's accuracy on the
human references (the ceiling). --styles-per-image N also captions every image in N styles and reports
style sensitivity (metrics.json "style_sensitivity", a gallery section).
"""
import argparse
import base64
import os
import sys

LARGE_GALLERY_BYTES = 50_000_000
OUTPUT_FILES = ("predictions.json", "metrics.json", "gallery.html")

HELP = "caption a split with a checkpoint; write predictions.json, metrics.json (per style) and gallery.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ofa_sic.cli.generation_options import add_generation_arguments

    add_generation_arguments(parser)
    parser.add_argument("--split", default="test", help="split to caption: {split}.tsv in the data folder (default: test)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for predictions.json, metrics.json, gallery.html")
    parser.add_argument("--overwrite", action="store_true", help="replace the results an earlier run left in --out")
    parser.add_argument("--gallery-per-style", type=int, default=0, metavar="N",
                        help="show only the N best and N worst images of each style in gallery.html (default: all)")
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR (its Java process takes a while to start)")
    parser.add_argument("--no-spice", action="store_true", help="never run SPICE, even when its CoreNLP jars are installed")
    parser.add_argument("--style-classifier", metavar="FILE",
                        help="classifier from `ofa-sic style-classifier`: report top-1/top-5 style accuracy")
    parser.add_argument("--styles-per-image", type=int, default=0, metavar="N",
                        help="also caption every image in N styles (its own and N-1 others) and report style sensitivity")

    parser.add_argument("--attributes", metavar="FILE",
                        help="attributes.json of `ofa-sic demo-data`: also score how often the captions state each image's "
                             "colour, shape, count and background (written to content.json)")


def check_output_folder(folder: str, names, overwrite: bool) -> None:
    """Raise (OSError / FileExistsError) unless files `names` can be written into `folder`.

    The folder may not exist yet: then its nearest existing parent must be a folder this process can
    create entries in (tried with a probe file, which also holds for root and read-only mounts).
    Results of an earlier run are replaced only with `overwrite`.
    """
    from ofa_sic.atomic_files import temporary_path

    earlier = [name for name in names if os.path.exists(os.path.join(folder, name))]
    if earlier and not overwrite:
        raise FileExistsError(f"--out {folder} already holds {', '.join(earlier)} of an earlier run; "
                              "pass --overwrite to replace them, or choose another --out")
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise NotADirectoryError(f"--out {folder} cannot be created: {existing} is a file, not a folder")
    probe = temporary_path(os.path.join(existing, "write-test"))
    try:
        open(probe, "x").close()
        os.remove(probe)
    except OSError as error:
        raise PermissionError(f"--out {folder} is not writable ({existing}: {error.strerror or error})") from None


def generate_split(captioner, dataset, batch_size: int) -> list:
    """The caption of every row of `dataset`, in row order, with a progress bar on stderr."""
    from tqdm import tqdm

    captions = []
    with tqdm(total=len(dataset), desc="captioning", unit="image", file=sys.stderr, mininterval=1.0) as bar:
        for start in range(0, len(dataset), batch_size):
            rows = range(start, min(start + batch_size, len(dataset)))
            captions.extend(captioner.caption_batch(dataset.collater([dataset[i] for i in rows])))
            bar.update(len(rows))
    return captions


def score_split(evaluator, dataset, rows, captions):
    """(overall scores, {style: scores}, {row key: CIDEr}, SPICE note) of `captions[i]` against row i's references.

    Row keys are "0", "1", ... (row positions); scores carry `num_samples`; a style's scores are computed
    on its rows alone (its references are the corpus).
    """
    keys = [str(i) for i in range(len(rows))]
    scored = evaluator.evaluate({k: dataset.references(i) for i, k in enumerate(keys)}, dict(zip(keys, captions)))
    overall = {"num_samples": len(keys), **scored.scores()}
    by_style = {}
    for key, row in zip(keys, rows):
        by_style.setdefault(row["style"], []).append(key)
    per_style = {style: {"num_samples": len(ids), **scored.scores(ids)} for style, ids in by_style.items()}
    return overall, per_style, scored.cider_per_image(), scored.spice_note


def gallery_entries(dataset, captions, cider_per_image) -> list:
    """GalleryEntry per row: its image bytes (from the TSV's base64 column), caption, references, CIDEr."""
    from ofa_sic.evaluation.gallery import GalleryEntry

    def image_loader(i):
        return lambda: base64.urlsafe_b64decode(dataset.row(i)["image"])  # read only if the image is shown

    entries = []
    for i, caption in enumerate(captions):
        row = dataset.row(i)
        entries.append(GalleryEntry(
            key=f"row-{i}", style=row["style"], caption=caption, references=dataset.references(i),
            cider=cider_per_image[str(i)], image=image_loader(i), image_id=row["image_id"], uniq_id=row["uniq_id"],
        ))
    return entries


def write_content_accuracy(attributes_path: str, rows, captions, out_dir: str) -> str:
    """Score the captions' content against the demo's attributes.json; write content.json; return its summary line."""
    import json

    from ofa_sic.evaluation.content_accuracy import content_accuracy, format_content_accuracy
    from ofa_sic.atomic_files import write_json_atomic

    with open(attributes_path, encoding="utf-8") as f:
        attributes = json.load(f)
    # the same image may be captioned in several rows (styles); each row counts
    report = content_accuracy({str(i): c for i, c in enumerate(captions)},
                              {str(i): attributes[row["image_id"]] for i, row in enumerate(rows) if row["image_id"] in attributes})
    write_json_atomic(os.path.join(out_dir, "content.json"), {"attributes": os.path.abspath(attributes_path), **report})
    return format_content_accuracy(report)


def check_arguments(args: argparse.Namespace) -> tuple:
    """Refuse bad option values and an --out that cannot take the results, before any work; return the
    names of the files the run will write."""
    if args.gallery_per_style < 0:
        raise ValueError("--gallery-per-style must be 0 (all) or more")
    if args.styles_per_image == 1 or args.styles_per_image < 0:
        raise ValueError(f"--styles-per-image must be 0 (off) or at least 2, got {args.styles_per_image}")
    if args.attributes and not os.path.isfile(args.attributes):
        raise FileNotFoundError(f"--attributes {args.attributes} not found: `ofa-sic demo-data` writes attributes.json")
    outputs = OUTPUT_FILES + (("content.json",) if args.attributes else ())
    check_output_folder(args.out, outputs, args.overwrite)  # before any work; created only at the end
    return outputs


def load_split(captioner, args: argparse.Namespace):
    """(the split's dataset, its StyleFigures), after the data check and the style figures' checks of its styles."""
    from ofa_sic.evaluation.style_figures import StyleFigures
    from ofa_sic.metrics.style_sensitivity import styles_for_image

    task = captioner.task
    task.load_dataset(args.split)
    dataset = task.datasets[args.split]
    if len(dataset) == 0:
        raise ValueError(f"{dataset.path} has no rows")
    figures = StyleFigures(task.cfg.data, args.style_classifier)
    figures.check_styles({dataset.row(i)["style"] for i in range(len(dataset))}, dataset.path)
    if args.styles_per_image:
        styles_for_image(0, len(captioner.styles), args.styles_per_image)  # checks N against the style count
        figures.check_styles(captioner.styles.names, "styles.txt")  # any style may be requested
    return dataset, figures


def evaluation_settings(args: argparse.Namespace, captioner, options, num_samples: int, figures) -> dict:
    """What produced the numbers, as metrics.json records it."""
    task = captioner.task
    return {
        "checkpoint": os.path.abspath(args.path),
        "data": os.path.abspath(task.cfg.data),
        "split": args.split,
        "num_samples": num_samples,
        "generation": {**options.as_dict(), "batch_size": args.batch_size,
                       "constraint_range": task.generation_constraint(), "patch_image_size": task.cfg.patch_image_size},
        "device": str(captioner.device),
        "style_figures": figures.settings(),
        "styles_per_image": args.styles_per_image,
    }


def write_results(out_dir: str, rows, captions, metrics: dict, gallery: str) -> None:
    """predictions.json, metrics.json and gallery.html into `out_dir` (created now), each atomically."""
    from ofa_sic.atomic_files import write_json_atomic, write_text_atomic

    predictions = [
        {"image_id": row["image_id"], "caption": caption, "style": row["style"], "uniq_id": row["uniq_id"]}
        for row, caption in zip(rows, captions)
    ]
    os.makedirs(out_dir, exist_ok=True)
    write_json_atomic(os.path.join(out_dir, "predictions.json"), predictions)
    write_json_atomic(os.path.join(out_dir, "metrics.json"), metrics)
    write_text_atomic(os.path.join(out_dir, "gallery.html"), gallery)


def print_summary(args: argparse.Namespace, metrics: dict, sensitivity, spice_note) -> None:
    """The per-style tables and notes on stdout."""
    from ofa_sic.evaluation.report import style_table
    from ofa_sic.evaluation.several_styles import sensitivity_line
    from ofa_sic.evaluation.style_figures import style_figures_table
    from ofa_sic.metrics.caption_eval import SPICE_NOT_REQUESTED

    print(f"{args.split}: {metrics['num_samples']} captions, {len(metrics['per_style'])} styles "
          "(x100; per-style scores use each style's references as the corpus)")
    print(style_table(metrics))
    print("style figures (x100 shares; ref- = the classifier on the human references, the ceiling):")
    print(style_figures_table(metrics["per_style"], metrics["overall"]))
    if sensitivity is not None:
        print(sensitivity_line(sensitivity))
    if spice_note and spice_note != SPICE_NOT_REQUESTED:
        print(spice_note)


def run(args: argparse.Namespace) -> int:
    from ofa_sic.cli.generation_options import options_from_args
    from ofa_sic.evaluation.gallery import render_gallery
    from ofa_sic.evaluation.report import build_metrics
    from ofa_sic.evaluation.several_styles import caption_split_in_styles, multi_style_entries, sensitivity_figures
    from ofa_sic.generation.captioner import Captioner
    from ofa_sic.metrics.caption_eval import CaptionEvaluator

    options = options_from_args(args)
    outputs = check_arguments(args)
    captioner = Captioner(args.path, options, data=args.data, bpe_dir=args.bpe_dir, cpu=args.cpu,
                          precision=args.precision)
    dataset, figures = load_split(captioner, args)

    with CaptionEvaluator(meteor=not args.no_meteor, spice=not args.no_spice) as evaluator:  # METEOR loads meanwhile
        captions = generate_split(captioner, dataset, args.batch_size)
        if args.styles_per_image:
            several = caption_split_in_styles(captioner, dataset, args.styles_per_image, args.batch_size)
        rows = [{k: v for k, v in dataset.row(i).items() if k != "image"} for i in range(len(dataset))]
        overall, per_style, cider_per_image, spice_note = score_split(evaluator, dataset, rows, captions)
    style_overall, style_per_style = figures.measure(
        captions, [row["style"] for row in rows], [dataset.references(i) for i in range(len(rows))])
    overall.update(style_overall)
    for style, found in style_per_style.items():
        per_style[style].update(found)

    settings = evaluation_settings(args, captioner, options, len(rows), figures)
    metrics = build_metrics(settings, overall, per_style, spice_note)
    multi_style, sensitivity = [], None
    if args.styles_per_image:
        sensitivity = metrics["style_sensitivity"] = sensitivity_figures(*several, figures.classifier)
        multi_style = multi_style_entries(dataset, *several, figures.classifier)
    gallery = render_gallery(
        title=f"{os.path.basename(args.path)} on {args.split}",
        subtitle=f"checkpoint {settings['checkpoint']} · data {settings['data']} · beam {options.beam}, "
                 f"max_len_b {options.max_len_b}, no_repeat_ngram_size {options.no_repeat_ngram_size}",
        entries=gallery_entries(dataset, captions, cider_per_image),
        style_scores=metrics["per_style"], overall=overall, per_style_limit=args.gallery_per_style or None,
        multi_style=multi_style, sensitivity=sensitivity,
    )
    write_results(args.out, rows, captions, metrics, gallery)

    print_summary(args, metrics, sensitivity, spice_note)
    if args.attributes:
        print(write_content_accuracy(args.attributes, rows, captions, args.out))
    for name in outputs:
        print(f"wrote {os.path.join(args.out, name)}")
    if len(gallery) > LARGE_GALLERY_BYTES:
        print(f"gallery.html is {len(gallery) / 1e6:.0f} MB; --gallery-per-style N shows only each style's N best and worst")
    return 0

"""`ofa-sic style-classifier`: train the text-only style classifier that `ofa-sic evaluate
--style-classifier` and `ofa-sic score-generate --style-classifier` measure style accuracy with.

Learns from the captions of DIR/train.tsv (one caption per row, labelled with the row's style; the
styles must be those of DIR/styles.txt), then measures itself on DIR/valid.tsv when it exists (every
reference of a row labelled with the row's style) and prints the top-1/top-5 accuracy. Writes one
`.npz` of plain arrays (see ofa_sic.metrics.style_classifier): loading it never runs code.
"""
import argparse
import os
import time

HELP = "train a tf-idf + logistic-regression style classifier on a prepared train split (for evaluate)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ofa_sic.metrics.style_classifier import DEFAULT_MAX_FEATURES

    parser.add_argument("--data", required=True, metavar="DIR", help="prepared data folder (train.tsv, styles.txt)")
    parser.add_argument("--out", required=True, metavar="FILE", help="classifier file to write (e.g. style_classifier.npz)")
    parser.add_argument("--max-features", type=int, default=DEFAULT_MAX_FEATURES, metavar="N",
                        help=f"keep the N most frequent word 1-2-grams (default: {DEFAULT_MAX_FEATURES}); "
                             "the file holds N x styles float32 weights")


def labelled_captions(tsv_path: str, styles_path: str):
    """(captions, styles) of every caption of a prepared TSV; every style must be in styles.txt."""
    from ofa_sic.data.caption_rows import read_caption_rows
    from ofa_sic.data.styles import StyleVocabulary

    known = set(StyleVocabulary.load(styles_path).names)
    captions, styles = [], []
    for number, row in enumerate(read_caption_rows(tsv_path), start=1):
        if row.style not in known:
            raise ValueError(f"{tsv_path}, row {number}: style {row.style!r} is not in {styles_path}; "
                             "prepare the folder again with `ofa-sic prepare-pcap`")
        captions.extend(row.captions)
        styles.extend([row.style] * len(row.captions))
    return captions, styles


def run(args: argparse.Namespace) -> int:
    from ofa_sic.metrics.style_accuracy import check_styles_known, style_accuracy
    from ofa_sic.metrics.style_classifier import train_style_classifier

    if args.max_features < 1:
        raise ValueError(f"--max-features must be at least 1, got {args.max_features}")
    styles_path = os.path.join(args.data, "styles.txt")
    for path in (os.path.join(args.data, "train.tsv"), styles_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found: --data must be a folder written by `ofa-sic prepare-pcap`")
    out_folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_folder):
        raise FileNotFoundError(f"--out {args.out}: folder {out_folder} does not exist")
    captions, styles = labelled_captions(os.path.join(args.data, "train.tsv"), styles_path)
    valid_path = os.path.join(args.data, "valid.tsv")
    valid = labelled_captions(valid_path, styles_path) if os.path.isfile(valid_path) else None

    start = time.perf_counter()
    classifier = train_style_classifier(captions, styles, max_features=args.max_features,
                                        details={"data": os.path.abspath(args.data)})
    seconds = time.perf_counter() - start
    classifier.settings["training_seconds"] = round(seconds, 1)
    print(f"trained on {len(captions)} captions of {len(classifier.styles)} styles in {seconds:.1f} s "
          f"({len(classifier.vocabulary)} n-grams)")
    if valid is not None:
        check_styles_known(classifier, valid[1], args.out, valid_path)
        accuracy, _ = style_accuracy(classifier, *valid)
        classifier.settings["valid"] = {"num_captions": len(valid[0]), **{k: round(v, 2) for k, v in accuracy.items()}}
        print(f"valid.tsv ({len(valid[0])} captions): top-1 {accuracy['style_top1']:.1f}%, "
              f"top-5 {accuracy['style_top5']:.1f}% (chance top-1 {100 / len(classifier.styles):.1f}%)")
    classifier.save(args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB)")
    return 0

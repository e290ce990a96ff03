"""`ofa-sic cider-df`: CIDEr-D document frequencies of a prepared TSV, as ruotianluo's prepro_ngrams builds them.

One document per image (rows grouped by image_id), each reference cleaned as the training targets are
(lowercased and stripped of ASCII punctuation, unless --keep-case / --keep-punctuation, which must match
the training run's) and given a trailing " <eos>"; `ref_len` is the number of images. The pickle records
its cleaning and loads in OFA-main's scorer and in `ofa_sic.metrics.cider_d.CiderD(df=path)`.
"""
import argparse

HELP = "build a CIDEr-D document-frequency pickle (for --scst-cider-cached-tokens) from a prepared TSV"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tsv", required=True, metavar="FILE", help="prepared TSV (e.g. train.tsv from prepare-pcap)")
    parser.add_argument("--out", required=True, metavar="FILE", help="pickle to write (e.g. train-words.p)")
    add_cleaning_arguments(parser)


def add_cleaning_arguments(parser: argparse.ArgumentParser) -> None:
    """--keep-case / --keep-punctuation, as the style_caption task spells them."""
    parser.add_argument("--keep-case", action="store_true", help="keep upper case, as training with --keep-case does")
    parser.add_argument("--keep-punctuation", action="store_true",
                        help="keep punctuation, as training with --keep-punctuation does")


def tsv_references_by_image(tsv_path: str, cleaner):
    """[[reference, ...] per image] in first-seen image order, references cleaned by `cleaner`."""
    from ofa_sic.data.prepared_layout import COLUMNS
    from ofa_sic.data.prepared_layout import references_by_image
    from ofa_sic.data.text import REFERENCE_SEPARATOR
    from ofa_sic.data.tsv_reader import IndexedTSV

    rows = IndexedTSV(tsv_path, num_columns=len(COLUMNS))
    image_column, captions_column = COLUMNS.index("image_id"), COLUMNS.index("captions")
    fields = (rows[i] for i in range(len(rows)))
    return references_by_image(
        (row[image_column], [cleaner(c) for c in row[captions_column].split(REFERENCE_SEPARATOR)]) for row in fields)


def run(args: argparse.Namespace) -> int:
    from ofa_sic.data.text import CaptionCleaner
    from ofa_sic.metrics.document_frequency import build_document_frequency, save_document_frequency

    cleaner = CaptionCleaner(keep_punctuation=args.keep_punctuation, keep_case=args.keep_case)
    references = tsv_references_by_image(args.tsv, cleaner)
    df = build_document_frequency(references, cleaner.settings())
    save_document_frequency(df, args.out)
    print(f"{args.out}: document frequencies of {len(df['document_frequency'])} n-grams over {df['ref_len']} images")
    return 0

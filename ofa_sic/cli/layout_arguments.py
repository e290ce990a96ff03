"""The options every converter to the prepared layout takes (prepare-pcap, prepare-flickrstyle,
prepare-senticap, prepare-captions): image size, workers, --no-df and the cleaning of train-words.p."""
import argparse

from ofa_sic.cli.cider_df import add_cleaning_arguments


def add_layout_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --out, --image-size, --workers, --no-df, --keep-case, --keep-punctuation to `parser`."""
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder for the TSVs, styles.txt, train-words.p, report.json")
    parser.add_argument("--image-size", type=int, default=480, metavar="N",
                        help="shrink images so their long side is at most N pixels (default: 480)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="processes that encode images (default: 1)")
    parser.add_argument("--no-df", action="store_true", help="do not write the CIDEr-D document frequencies (train-words.p)")
    add_cleaning_arguments(parser)  # how train-words.p cleans the captions: as training will


def layout_options(args: argparse.Namespace):
    """The LayoutOptions of the parsed arguments."""
    from ofa_sic.data.prepared_layout import LayoutOptions
    from ofa_sic.data.text import CaptionCleaner

    cleaner = CaptionCleaner(keep_punctuation=args.keep_punctuation, keep_case=args.keep_case)
    return LayoutOptions(image_size=args.image_size, workers=args.workers, df=not args.no_df, cleaner=cleaner)

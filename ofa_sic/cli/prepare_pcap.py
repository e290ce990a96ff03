"""`ofa-sic prepare-pcap`: convert Personality-Captions to train/valid/test TSVs (see ofa_sic.data.pcap)."""
import argparse

from ofa_sic.cli.cider_df import add_cleaning_arguments

HELP = "convert Personality-Captions JSON + YFCC images to the task's TSV files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's options to `parser`."""
    parser.add_argument("--pcap-dir", required=True, metavar="DIR",
                        help="the unpacked personality_captions folder (train.json, val.json, test.json, personalities.txt)")
    parser.add_argument("--image-dir", required=True, metavar="DIR", help="the folder of {image_hash}.jpg files (yfcc_images)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder for the TSVs, styles.txt, train-words.p, report.json")
    parser.add_argument("--image-size", type=int, default=480, metavar="N",
                        help="shrink images so their long side is at most N pixels (default: 480)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="processes that encode images (default: 1)")
    parser.add_argument("--no-df", action="store_true", help="do not write the CIDEr-D document frequencies (train-words.p)")
    add_cleaning_arguments(parser)  # how train-words.p cleans the captions: as training will


def run(args: argparse.Namespace) -> int:
    """Run the conversion; the summary is printed by the converter."""
    from ofa_sic.data.pcap import prepare_pcap
    from ofa_sic.data.text import CaptionCleaner

    cleaner = CaptionCleaner(keep_punctuation=args.keep_punctuation, keep_case=args.keep_case)
    prepare_pcap(args.pcap_dir, args.image_dir, args.out, image_size=args.image_size, workers=args.workers,
                 df=not args.no_df, cleaner=cleaner)
    return 0

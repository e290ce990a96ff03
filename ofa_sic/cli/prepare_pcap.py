"""`ofa-sic prepare-pcap`: convert Personality-Captions to train/valid/test TSVs (see ofa_sic.data.pcap)."""
import argparse

from ofa_sic.cli.layout_arguments import add_layout_arguments, layout_options

HELP = "convert Personality-Captions JSON + YFCC images to the task's TSV files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's options to `parser`."""
    parser.add_argument("--pcap-dir", required=True, metavar="DIR",
                        help="the unpacked personality_captions folder (train.json, val.json, test.json, personalities.txt)")
    parser.add_argument("--image-dir", required=True, metavar="DIR", help="the folder of {image_hash}.jpg files (yfcc_images)")
    add_layout_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the conversion; the summary is printed by the converter."""
    from ofa_sic.data.pcap import prepare_pcap

    options = layout_options(args)
    prepare_pcap(args.pcap_dir, args.image_dir, args.out, image_size=options.image_size, workers=options.workers,
                 df=options.df, cleaner=options.cleaner)
    return 0

"""`ofa-sic prepare-senticap`: convert SentiCap to the prepared layout (see ofa_sic.data.senticap)."""
import argparse

from ofa_sic.cli.layout_arguments import add_layout_arguments, layout_options

HELP = "convert SentiCap (positive/negative captions of COCO images) to the task's TSV files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's options to `parser`."""
    parser.add_argument("--senticap-dir", required=True, metavar="DIR",
                        help="the unpacked senticap_dataset folder (data/senticap_dataset.json)")
    parser.add_argument("--image-dir", required=True, metavar="DIR", help="the COCO val2014 images")
    add_layout_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the conversion; the summary is printed by the converter."""
    from ofa_sic.data.senticap import prepare_senticap

    prepare_senticap(args.senticap_dir, args.image_dir, args.out, options=layout_options(args))
    return 0

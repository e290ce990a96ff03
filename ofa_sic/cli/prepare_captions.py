"""`ofa-sic prepare-captions`: convert a captions file (.jsonl or .csv: image, style, caption, split) and its
image folder to the prepared layout (see ofa_sic.data.captions_file)."""
import argparse

from ofa_sic.cli.layout_arguments import add_layout_arguments, layout_options

HELP = "convert your own stylized captions (.jsonl/.csv with image, style, caption, split) to the task's TSV files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's options to `parser`."""
    parser.add_argument("--captions", required=True, metavar="FILE",
                        help="FILE.jsonl or FILE.csv, one record per caption with image, style, caption, split")
    parser.add_argument("--image-dir", required=True, metavar="DIR", help="the folder the image paths are relative to")
    add_layout_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the conversion; the summary is printed by the converter."""
    from ofa_sic.data.captions_file import prepare_captions

    prepare_captions(args.captions, args.image_dir, args.out, options=layout_options(args))
    return 0

"""`ofa-sic prepare-flickrstyle`: convert FlickrStyle10K to the prepared layout (see ofa_sic.data.flickrstyle)."""
import argparse

from ofa_sic.cli.layout_arguments import add_layout_arguments, layout_options

HELP = "convert FlickrStyle10K (humorous/romantic captions of Flickr8k images) to the task's TSV files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's options to `parser`."""
    parser.add_argument("--flickrstyle-dir", required=True, metavar="DIR",
                        help="the unpacked FlickrStyle_v0.9 folder (humor/, romantic/ with train.p and the caption files)")
    parser.add_argument("--image-dir", required=True, metavar="DIR", help="the Flickr8k images (Flicker8k_Dataset)")
    parser.add_argument("--factual-captions", metavar="FILE",
                        help="Flickr8k.token.txt: add a 'factual' style with Flickr8k's captions of the same images")
    parser.add_argument("--split-file", metavar="FILE",
                        help="a published split: lines '<image name> <train|valid|test>' (default: the SHA-256 rule "
                             "of the README, 5,600/400/1,000 of 7,000 images)")
    add_layout_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the conversion; the summary is printed by the converter."""
    from ofa_sic.data.flickrstyle import prepare_flickrstyle

    prepare_flickrstyle(args.flickrstyle_dir, args.image_dir, args.out, factual_captions=args.factual_captions,
                        split_file=args.split_file, options=layout_options(args))
    return 0

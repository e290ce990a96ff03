"""`ofa-sic caption`: caption image files in one or more styles with a checkpoint.

Prints one line per image and style, `image<TAB>style<TAB>caption`, images in the order given and
styles in the order given (or the checkpoint's style order with --all-styles). Every image is opened
and every style looked up before anything is generated, so a bad file or an unknown style stops the
command with an error (exit code 2) and prints no captions.
"""
import argparse
from typing import List

HELP = "caption image files (any format Pillow reads) in the given styles"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ofa_sic.cli.generation_options import add_generation_arguments

    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, WebP, ...)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--style", action="append", metavar="NAME",
                       help="style to caption in (repeat for several); names match case-insensitively")
    which.add_argument("--all-styles", action="store_true", help="caption in every style of the checkpoint's styles.txt")
    add_generation_arguments(parser)


def open_image(path: str):
    """The image at `path`, decoded upright as RGB (`ofa_sic.data.images.decode_image`); errors name the file."""
    from ofa_sic.data.images import ImageDecodeError, decode_image

    try:
        return decode_image(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such image file") from None
    except (ImageDecodeError, OSError) as error:
        raise ValueError(f"{path}: not an image Pillow can read ({error})") from None


def resolve_styles(vocabulary, requested: List[str]) -> List[str]:
    """Canonical names of `requested` (duplicates dropped); UnknownStyleError names the nearest known styles."""
    names: List[str] = []
    for name in requested:
        canonical = vocabulary.canonical(name)
        if canonical not in names:
            names.append(canonical)
    return names


def run(args: argparse.Namespace) -> int:
    from ofa_sic.cli.generation_options import options_from_args
    from ofa_sic.generation.captioner import Captioner

    options = options_from_args(args)
    images = [open_image(path) for path in args.images]
    captioner = Captioner(args.path, options, data=args.data, bpe_dir=args.bpe_dir, cpu=args.cpu,
                          precision=args.precision)
    styles = captioner.styles.names if args.all_styles else resolve_styles(captioner.styles, args.style)

    pairs = [(path, image, style) for path, image in zip(args.images, images) for style in styles]
    captions = captioner.caption_images([image for _, image, _ in pairs], [style for _, _, style in pairs],
                                        batch_size=args.batch_size)
    for (path, _, style), caption in zip(pairs, captions):
        print(f"{path}\t{style}\t{' '.join(caption.split())}")
    return 0

"""The `ofa-sic` console script.

Each subcommand is a module in ofa_sic/cli/ with `HELP`, `add_arguments(parser)` and `run(args) -> int`;
to add one, write the module and list it in SUBCOMMANDS. Input problems (bad files, unknown styles, a
missing folder) end with a one-line message on stderr and exit code 2, without a traceback
(set OFA_SIC_DEBUG=1 to see the traceback).
"""
import argparse
import os
import sys
from typing import List, Optional

from ofa_sic.cli import (
    caption, check_data, cider_df, compare, convert, demo_data, evaluate, plot, prepare_captions, prepare_flickrstyle,
    prepare_pcap, prepare_senticap, score_generate, serve, style_classifier,
)

SUBCOMMANDS = {
    "prepare-pcap": prepare_pcap,
    "prepare-flickrstyle": prepare_flickrstyle,
    "prepare-senticap": prepare_senticap,
    "prepare-captions": prepare_captions,
    "check-data": check_data,
    "demo-data": demo_data,
    "score-generate": score_generate,
    "cider-df": cider_df,
    "evaluate": evaluate,
    "caption": caption,
    "convert": convert,
    "style-classifier": style_classifier,
    "plot": plot,
    "compare": compare,
    "serve": serve,
}


def _user_errors() -> tuple:
    """The exception types that mean "bad input", reported without a traceback."""
    from ofa_sic.data.prepared_layout import ConversionError
    from ofa_sic.data.styles import UnknownStyleError

    return (ConversionError, UnknownStyleError, OSError, ValueError)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with one sub-parser per subcommand."""
    parser = argparse.ArgumentParser(prog="ofa-sic", description="Stylized image captioning with OFA: data tools.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Parse `argv` (default: sys.argv[1:]), run the subcommand, return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except _user_errors() as e:
        if os.environ.get("OFA_SIC_DEBUG"):
            raise
        print(f"ofa-sic {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ofa-sic {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""`ofa-sic check-data DIR`: check a prepared data folder before training or evaluating on it.

Reads styles.txt and train/valid/test.tsv and prints every problem as `file:line: message`
(malformed rows, byte-order marks, empty captions or references, unknown styles; see
`ofa_sic.data.check`). Exit code 0 when there is none, 2 otherwise. Training, fairseq-generate and
`ofa-sic evaluate` run the same check on the splits they read and refuse to start on a problem.
"""
import argparse
import sys

HELP = "check a prepared data folder (styles.txt, train/valid/test.tsv) and list every problem with file and line"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="folder written by `ofa-sic prepare-pcap`")


def run(args: argparse.Namespace) -> int:
    from ofa_sic.data.check import check_data_folder

    problems = check_data_folder(args.folder)
    for problem in problems:
        print(problem)
    if problems:
        files = len({problem.path for problem in problems})
        print(f"{len(problems)} problem(s) in {files} file(s)", file=sys.stderr)
        return 2
    print(f"{args.folder}: no problems in styles.txt, train.tsv, valid.tsv, test.tsv")
    return 0

"""`ofa-sic demo-data`: write the synthetic demo data set in PCap's layout (see ofa_sic.data.demo)."""
import argparse
import os

HELP = "write a small synthetic data set in Personality-Captions' layout, with a matching BPE"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's options to `parser`."""
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (personality_captions/, yfcc_images/, bpe/)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed; the same seed gives the same files (default: 0)")
    parser.add_argument("--n-train", type=int, default=2000, metavar="N", help="train records, one image each (default: 2000)")
    parser.add_argument("--n-valid", type=int, default=100, metavar="N", help="val records (default: 100)")
    parser.add_argument("--n-test", type=int, default=100, metavar="N", help="test records, five captions each (default: 100)")


def run(args: argparse.Namespace) -> int:
    """Write the demo data and say how to convert it."""
    from ofa_sic.data.demo import make_demo_data

    summary = make_demo_data(args.out, seed=args.seed, n_train=args.n_train, n_valid=args.n_valid, n_test=args.n_test)
    records = ", ".join(f"{split} {n}" for split, n in summary["records"].items())
    print(f"demo data in {args.out}: {records} records, styles {', '.join(summary['styles'])}, "
          f"BPE vocabulary {summary['bpe_vocab_size']}")
    print("next: ofa-sic prepare-pcap --pcap-dir {} --image-dir {} --out {}".format(
        summary["pcap_dir"], summary["image_dir"], os.path.join(args.out, "data")))
    return 0

"""`ofa-sic demo-data`: write the synthetic demo data set in PCap's layout (see ofa_sic.data.demo), or in
FlickrStyle10K's, SentiCap's or a captions file's (`--layout`, see ofa_sic.data.demo_layouts)."""
import argparse
import os
import shlex

HELP = "write a small synthetic data set in Personality-Captions' layout, with a matching BPE"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's options to `parser`."""
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (personality_captions/, yfcc_images/, bpe/)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed; the same seed gives the same files (default: 0)")
    parser.add_argument("--n-train", type=int, default=2000, metavar="N", help="train images (default: 2000)")
    parser.add_argument("--train-references", type=int, default=1, metavar="K",
                        help="captions per train image, 1 to 6, written as K records of the image (default: 1, as PCap)")
    parser.add_argument("--n-valid", type=int, default=100, metavar="N", help="val records (default: 100)")
    parser.add_argument("--n-test", type=int, default=100, metavar="N", help="test records, five captions each (default: 100)")
    parser.add_argument("--profile", choices=("template", "pcap"), default="template",
                        help="template: 5 styles, every caption describes the picture (default); pcap: 25 styles in "
                             "confusable families, comments that often say nothing of the picture, five very different "
                             "test references, as in Personality-Captions (PCap's layout only); writes ceilings.json")
    parser.add_argument("--layout", choices=("pcap", "flickrstyle", "senticap", "captions"), default="pcap",
                        help="the data set layout to write (default: pcap); the counts are then images per split "
                             "(flickrstyle: their sum, split by prepare-flickrstyle)")


def run(args: argparse.Namespace) -> int:
    """Write the demo data and say how to convert it."""
    from ofa_sic.data.demo import make_demo_data

    summary = make_demo_data(args.out, seed=args.seed, n_train=args.n_train, n_valid=args.n_valid, n_test=args.n_test,
                             train_references=args.train_references, layout=args.layout,
                             profile=args.profile)
    command = ["ofa-sic", *summary["prepare_command"], "--out", os.path.join(args.out, "data")]
    if args.layout != "pcap":
        print(f"demo data ({args.layout} layout) in {args.out}: {summary['images']} images, {summary['captions']} captions, "
              f"BPE vocabulary {summary['bpe_vocab_size']}; what each image shows: {summary['attributes']}")
        print("next: " + shlex.join(command))
        return 0
    records = ", ".join(f"{split} {n}" for split, n in summary["records"].items())
    images = ", ".join(f"{split} {n}" for split, n in summary["images"].items())
    print(f"demo data in {args.out}: {records} records ({images} images), styles {', '.join(summary['styles'])}, "
          f"BPE vocabulary {summary['bpe_vocab_size']}; what each image shows: {summary['attributes']}")
    if summary["ceilings"] is not None:
        ceilings = summary["ceilings"]
        print(f"ceilings ({args.out}/ceilings.json): the test references' leave-one-out CIDEr "
              f"{ceilings['reference_loo_cider']:.1f}; the style classifier on them {ceilings['reference_style_top1']:.1f}% "
              f"top-1 (chance {ceilings['chance_style_top1']:.1f}%)")
    print("next: " + shlex.join(command))
    return 0

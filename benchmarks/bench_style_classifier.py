"""Training time, size and accuracy of `ofa-sic style-classifier` on a PCap-sized synthetic data set.

Writes a prepared-data folder like `ofa-sic prepare-pcap`'s (train.tsv with 186,858 one-caption rows,
valid.tsv with 5,000, test.tsv with 10,000 rows of 5 references, 215 styles; the image column is a
placeholder, which the classifier never reads), runs the real `ofa-sic style-classifier` command on it
and measures the stored classifier on the test references (top-1/top-5, chance 0.47%) and its
prediction speed.

Synthetic captions: 6-14 words drawn from a Zipf-distributed 8,000-word content vocabulary, plus, with
probability 0.7, one or two of the style's 6 marker words (each style shares 2 of them with the
next style, so neighbouring styles are confusable), and with probability 0.2 one marker word of a
random style. The accuracy therefore says how well the classifier recovers such a signal at this
size; it is not a prediction of PCap's accuracy (PCap's styles are much less separable in text).

    .venv/bin/python benchmarks/bench_style_classifier.py [--train-rows 186858] [--styles 215]
"""
import argparse
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def synthetic_captions(rng: random.Random, style: int, count: int, num_styles: int, content, weights) -> list:
    markers = [f"m{style}x{k}" for k in range(4)] + [f"m{(style + 1) % num_styles}x{k}" for k in range(2)]
    captions = []
    for _ in range(count):
        words = rng.choices(content, weights=weights, k=rng.randint(6, 14))
        if rng.random() < 0.7:
            for _ in range(rng.randint(1, 2)):
                words.insert(rng.randrange(len(words) + 1), rng.choice(markers))
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words) + 1), f"m{rng.randrange(num_styles)}x{rng.randrange(4)}")
        captions.append(" ".join(words))
    return captions


def write_split(path: str, rows) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i, (style, captions) in enumerate(rows):
            f.write(f"{os.path.basename(path)}-{i}\t{i:032x}\t{style}\t{'&&'.join(captions)}\tx\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-rows", type=int, default=186_858)
    parser.add_argument("--valid-rows", type=int, default=5_000)
    parser.add_argument("--test-rows", type=int, default=10_000)
    parser.add_argument("--styles", type=int, default=215)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from ofa_sic.data.caption_rows import read_caption_rows
    from ofa_sic.metrics.style_accuracy import reference_style_accuracy
    from ofa_sic.metrics.style_classifier import StyleClassifier

    rng = random.Random(args.seed)
    content = [f"w{i}" for i in range(8000)]
    weights = [1.0 / (i + 1) for i in range(len(content))]
    names = [f"Style {i:03d}" for i in range(args.styles)]
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        for split, count, references in (("train", args.train_rows, 1), ("valid", args.valid_rows, 1),
                                         ("test", args.test_rows, 5)):
            styles = [i % args.styles for i in range(count)]
            rng.shuffle(styles)
            rows = [(names[s], synthetic_captions(rng, s, references, args.styles, content, weights)) for s in styles]
            write_split(os.path.join(folder, f"{split}.tsv"), rows)
        with open(os.path.join(folder, "styles.txt"), "w") as f:
            f.write("".join(name + "\n" for name in names))
        print(f"synthetic data: {time.perf_counter() - start:.1f} s")

        out = os.path.join(folder, "style_classifier.npz")
        command = [os.path.join(os.path.dirname(sys.executable), "ofa-sic"), "style-classifier", "--data", folder, "--out", out]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        printed = result.stdout.strip()
        print(printed)
        fit = float(re.search(r"in ([0-9.]+) s", printed).group(1))
        print(f"`ofa-sic style-classifier` wall time {wall:.1f} s (fit {fit:.1f} s; the rest reads the TSVs, "
              f"measures valid and writes the file); CPU time user {usage.ru_utime:.1f} s + system "
              f"{usage.ru_stime:.1f} s; load average {os.getloadavg()[0]:.1f}")

        classifier = StyleClassifier.load(out)
        print(f"logistic regression: {classifier.settings['iterations']} L-BFGS iterations")
        test = read_caption_rows(os.path.join(folder, "test.tsv"))
        start = time.perf_counter()
        overall, per_style = reference_style_accuracy(classifier, [r.captions for r in test], [r.style for r in test])
        seconds = time.perf_counter() - start
        captions = sum(len(r.captions) for r in test)
        top1 = np.array([f["reference_style_top1"] for f in per_style.values()])
        print(f"test references ({captions} captions, {len(test)} rows): top-1 {overall['reference_style_top1']:.1f}%, "
              f"top-5 {overall['reference_style_top5']:.1f}% (chance {100 / args.styles:.2f}%); per-style top-1 "
              f"min {top1.min():.1f}, median {np.median(top1):.1f}, max {top1.max():.1f}")
        print(f"prediction: {captions / seconds:.0f} captions/s; file {os.path.getsize(out) / 1e6:.1f} MB, "
              f"{len(classifier.vocabulary)} n-grams x {len(classifier.styles)} styles")
    return 0


if __name__ == "__main__":
    sys.exit(main())

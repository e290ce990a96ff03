"""What test CIDEr does a given content accuracy buy on the demo data?

For each level p, every test image gets a caption in its own style from a random template of the demo,
describing its scene with each of colour, shape and count kept with probability p (else replaced by
another value) and the background kept with probability p_bg; the captions are scored with
`ofa-sic evaluate`'s metric code (pycocoevalcap CIDEr, x100, the split's own references). This maps a
model's test CIDEr to the content accuracy it implies, without training anything.

    python benchmarks/cider_of_content_accuracy.py DEMO_DIR    # DEMO_DIR of run_scripts/demo.sh
"""
import json
import random
import sys

from ofa_sic.cli.compare import read_split
from ofa_sic.data import demo
from ofa_sic.data.prepared_layout import COLUMNS
from ofa_sic.data.text import CaptionCleaner
from ofa_sic.data.tsv_reader import IndexedTSV
from ofa_sic.metrics.caption_eval import CaptionEvaluator

LEVELS = ((1.0, 1.0), (1.0, 0.9), (1.0, 0.75), (1.0, 0.5), (1.0, 0.3), (0.88, 0.3), (1.0, 0.0))
VALUES = {"color": sorted(demo.SHAPE_COLORS), "shape": list(demo.SHAPES), "count": sorted(demo.COUNT_WORDS),
          "background": sorted(demo.BACKGROUNDS)}


def perturbed(scene, keep, rng):
    """A copy of `scene` with each attribute replaced by another value unless rng says keep (keep[name])."""
    out = dict(scene)
    for name, probability in keep.items():
        if rng.random() >= probability:
            out[name] = rng.choice([v for v in VALUES[name] if v != scene[name]])
    return out


def main(demo_dir: str) -> int:
    tsv_path = f"{demo_dir}/data/test.tsv"
    rows = read_split(tsv_path)
    tsv = IndexedTSV(tsv_path, num_columns=len(COLUMNS))
    image_ids = [tsv[i][COLUMNS.index("image_id")] for i in range(len(tsv))]
    with open(f"{demo_dir}/raw/{demo.ATTRIBUTES_FILE}", encoding="utf-8") as f:
        attributes = json.load(f)
    references = {uniq_id: refs for uniq_id, _, refs in rows}
    clean, rng = CaptionCleaner(), random.Random(0)
    print(f"{len(rows)} test images; CIDEr x100 of template captions with the content right with probability p")
    print("| background right | colour, shape, count each right | test CIDEr |\n|---:|---:|---:|")
    with CaptionEvaluator(meteor=False, spice=False) as evaluator:
        for p_background, p in LEVELS:
            keep = {"color": p, "shape": p, "count": p, "background": p_background}
            hypotheses = {
                uniq_id: clean(demo.caption(perturbed(attributes[image_id], keep, rng), style,
                                            rng.randrange(len(demo.TEMPLATES[style]))))
                for (uniq_id, style, _), image_id in zip(rows, image_ids)
            }
            cider = evaluator.evaluate(references, hypotheses).scores()["CIDEr"]
            print(f"| {100 * p_background:.0f}% | {100 * p:.0f}% | {cider:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

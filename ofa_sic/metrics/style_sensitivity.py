"""Style sensitivity: does the caption of one image change when the requested style changes?

Each test image is captioned in N styles (`styles_for_image`: its own style and N-1 others spread
evenly over the style list). `style_sensitivity` then reports, over images:
- images_with_differing_captions (x100): the share of images whose N captions are not all the same
  (a model that ignores the style scores 0, one that always changes its caption 100);
- differing_pairs (x100): the share of (image, style pair) whose two captions differ;
- mean_pairwise_word_overlap (x100): the mean, over images and style pairs, of the Jaccard overlap of
  the two captions' word sets (100 = the same words, 0 = no word in common).
Captions are compared after OFA's cleaning (lowercase, ASCII punctuation stripped).
"""
from itertools import combinations
from typing import Callable, Dict, List, Sequence

from ofa_sic.metrics.diversity import caption_words


def styles_for_image(own_index: int, num_styles: int, styles_per_image: int) -> List[int]:
    """Style indices for one image: `own_index` first, then every (num_styles // N)-th style after it."""
    if not 2 <= styles_per_image <= num_styles:
        raise ValueError(f"--styles-per-image must be between 2 and the number of styles ({num_styles}), "
                         f"got {styles_per_image}")
    step = num_styles // styles_per_image
    return [(own_index + k * step) % num_styles for k in range(styles_per_image)]


def caption_in_styles(caption_rows: Callable[[List[int], List[str]], List[str]], own_styles: Sequence[str],
                      style_names: Sequence[str], styles_per_image: int, rows_per_call: int):
    """([styles of row i], [captions of row i]) for every row, each row captioned in `styles_for_image` styles.

    `caption_rows(rows, styles)` captions row `rows[j]`'s image in style `styles[j]` (e.g. a Captioner over a
    dataset); it is called with the pairs of at most `rows_per_call` rows at a time, in row order.
    """
    index = {name: i for i, name in enumerate(style_names)}
    styles = [[style_names[i] for i in styles_for_image(index[own], len(style_names), styles_per_image)]
              for own in own_styles]
    captions: List[List[str]] = []
    for start in range(0, len(own_styles), rows_per_call):
        rows = range(start, min(start + rows_per_call, len(own_styles)))
        flat_rows = [row for row in rows for _ in styles[row]]
        flat_styles = [style for row in rows for style in styles[row]]
        flat = caption_rows(flat_rows, flat_styles)
        if len(flat) != len(flat_rows):
            raise ValueError(f"asked for {len(flat_rows)} captions, got {len(flat)}")
        for row in rows:
            captions.append(flat[:len(styles[row])])
            flat = flat[len(styles[row]):]
    return styles, captions


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def style_sensitivity(captions_per_image: Sequence[Sequence[str]]) -> Dict[str, float]:
    """The figures of the module docstring (x100) for `captions_per_image[i]`, image i's captions in its N styles."""
    if not captions_per_image:
        raise ValueError("cannot measure style sensitivity of no images")
    sizes = {len(captions) for captions in captions_per_image}
    if len(sizes) != 1 or min(sizes) < 2:
        raise ValueError(f"every image needs the same number (>= 2) of captions, got {sorted(sizes)}")
    differing_images, differing, overlap, pairs = 0, 0, 0.0, 0
    for captions in captions_per_image:
        words = [caption_words(c) for c in captions]
        differing_images += len({" ".join(w) for w in words}) > 1
        for a, b in combinations(words, 2):
            differing += a != b
            overlap += _jaccard(set(a), set(b))
            pairs += 1
    return {
        "num_images": len(captions_per_image),
        "styles_per_image": sizes.pop(),
        "images_with_differing_captions": 100 * differing_images / len(captions_per_image),
        "differing_pairs": 100 * differing / pairs,
        "mean_pairwise_word_overlap": 100 * overlap / pairs,
    }

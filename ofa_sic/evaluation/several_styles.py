"""`ofa-sic evaluate --styles-per-image N`: caption every image of a split in N styles, measure style
sensitivity (ofa_sic.metrics.style_sensitivity), and build the gallery's several-styles entries.

The captions come from the same model, generator and image pipeline as the split's captions: each
row's dataset item with its prompt swapped for the requested style's prompt.
"""
import base64
import sys
from typing import Dict, List, Optional, Sequence

from ofa_sic.evaluation.gallery_style import MULTI_STYLE_SHOWN, MultiStyleEntry
from ofa_sic.metrics.style_accuracy import style_accuracy
from ofa_sic.metrics.style_classifier import StyleClassifier
from ofa_sic.metrics.style_sensitivity import caption_in_styles, style_sensitivity


def caption_rows_in_styles(captioner, dataset):
    """`caption_rows(rows, styles)`: the caption of row `rows[j]`'s image prompted with style `styles[j]`."""
    def caption_rows(rows, styles):
        samples = [{**dataset[row], "source": captioner.task.prompt(style)} for row, style in zip(rows, styles)]
        return captioner.caption_batch(dataset.collater(samples))

    return caption_rows


def caption_split_in_styles(captioner, dataset, styles_per_image: int, batch_size: int):
    """([styles of row i], [captions of row i]) for every row, about `batch_size` captions per batch,
    with a progress bar on stderr."""
    from tqdm import tqdm

    own = [dataset.row(i)["style"] for i in range(len(dataset))]
    caption_rows = caption_rows_in_styles(captioner, dataset)
    with tqdm(total=len(dataset), desc=f"captioning in {styles_per_image} styles", unit="image", file=sys.stderr,
              mininterval=1.0) as bar:
        def counted(rows, styles):
            captions = caption_rows(rows, styles)
            bar.update(len(set(rows)))
            return captions

        return caption_in_styles(counted, own, captioner.styles.names, styles_per_image,
                                 rows_per_call=max(1, batch_size // styles_per_image))


def sensitivity_figures(styles: Sequence[Sequence[str]], captions: Sequence[Sequence[str]],
                        classifier: Optional[StyleClassifier]) -> Dict[str, float]:
    """`style_sensitivity` of the captions, plus (with a classifier) style_top1/_top5 of all N x images
    captions against the style each was requested in."""
    figures = style_sensitivity(captions)
    if classifier is not None:
        flat_styles = [style for row in styles for style in row]
        flat_captions = [caption for row in captions for caption in row]
        figures.update(style_accuracy(classifier, flat_captions, flat_styles)[0])
    return figures


def sensitivity_line(figures: Dict[str, float]) -> str:
    """One printed line of the sensitivity figures."""
    line = (f"style sensitivity over {figures['num_images']} images in {figures['styles_per_image']} styles each: "
            f"captions differ for {figures['images_with_differing_captions']:.1f}% of the images and "
            f"{figures['differing_pairs']:.1f}% of the style pairs; mean pairwise word overlap "
            f"{figures['mean_pairwise_word_overlap']:.1f}%")
    if "style_top1" in figures:
        line += f"; style accuracy in the requested styles: top-1 {figures['style_top1']:.1f}%, top-5 {figures['style_top5']:.1f}%"
    return line


def multi_style_entries(dataset, styles, captions, classifier: Optional[StyleClassifier]) -> List[MultiStyleEntry]:
    """MultiStyleEntry of the first MULTI_STYLE_SHOWN rows, with the classifier's guesses."""
    entries = []
    for i in range(min(len(dataset), MULTI_STYLE_SHOWN)):
        row = dataset.row(i)
        predicted = classifier.predict(captions[i]) if classifier is not None else [None] * len(captions[i])
        entries.append(MultiStyleEntry(key=f"styles-{i}", image_id=row["image_id"], own_style=row["style"],
                                       styles=list(styles[i]), captions=list(captions[i]), predicted=predicted,
                                       image=base64.urlsafe_b64decode(row["image"])))
    return entries

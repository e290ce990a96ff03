"""The style parts of gallery.html: a per-style chart and the "one image in several styles" section.

- `style_chart`: one row per style in the report's order (best CIDEr first), a CIDEr bar (scaled to
  the best style's CIDEr) beside a top-1 style-accuracy bar (0-100 %) with the classifier's ceiling on
  that style's human references marked as a line. Plain HTML and CSS: no script, no image.
- `multi_style_section`: images captioned in N styles (`ofa-sic evaluate --styles-per-image N`), each
  with its captions, the row's own style marked, and the classifier's guess when a classifier is used.
"""
import html
from dataclasses import dataclass
from typing import Callable, List, Mapping, Optional, Sequence, Union

MULTI_STYLE_SHOWN = 12  # images shown in the multi-style section (the first rows of the split)

STYLE_CSS = """
.chart { margin: 12px 0 24px; font-size: 0.85em; }
.chart-row { display: grid; grid-template-columns: minmax(140px, 220px) 1fr 1fr; gap: 10px; align-items: center;
             padding: 2px 0; border-bottom: 1px solid #eee; }
.chart-row.chart-head { font-weight: 600; border-bottom: 1px solid #bbb; }
.bar-cell { position: relative; height: 16px; background: #f0f0f0; border-radius: 3px; }
.bar { position: absolute; left: 0; top: 0; bottom: 0; border-radius: 3px; }
.bar.cider { background: #5b8def; }
.bar.accuracy { background: #e8973a; }
.ceiling { position: absolute; top: -2px; bottom: -2px; width: 2px; background: #333; }
.bar-value { position: absolute; left: 6px; top: 0; font-size: 0.85em; line-height: 16px; color: #111; }
.multi-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 14px; margin-top: 12px; }
.multi-card { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 10px; display: flex; gap: 10px; }
.multi-card img { width: 128px; height: 128px; object-fit: contain; background: #eee; border-radius: 4px; flex: none; }
.multi-card table { margin: 0; font-size: 0.85em; }
.multi-card td { text-align: left; vertical-align: top; }
.multi-card tr.own td { font-weight: 700; }
.miss { color: #c62828; }
"""


@dataclass
class MultiStyleEntry:
    """One image captioned in several styles: `captions[j]` in `styles[j]`; `predicted[j]` is the
    classifier's best style for it (or None without a classifier); `image` bytes or a loader."""

    key: str
    image_id: str
    own_style: str
    styles: List[str]
    captions: List[str]
    predicted: List[Optional[str]]
    image: Union[bytes, Callable[[], bytes]]


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _bar(kind: str, value: float, scale: float, text: str, ceiling: Optional[float] = None) -> str:
    width = 0.0 if scale <= 0 else max(0.0, min(100.0, 100 * value / scale))
    marker = ""
    if ceiling is not None:
        marker = f'<span class="ceiling" style="left:{min(100.0, ceiling):.1f}%" title="ceiling {ceiling:.1f}"></span>'
    return (f'<span class="bar-cell"><span class="bar {kind}" style="width:{width:.1f}%"></span>{marker}'
            f'<span class="bar-value">{_esc(text)}</span></span>')


def style_chart(style_scores: Mapping[str, Mapping[str, float]], section_ids: Mapping[str, str]) -> str:
    """The chart (a <figure id="style-chart">); style names link to `section_ids[style]`."""
    has_accuracy = all("style_top1" in scores for scores in style_scores.values())
    best_cider = max((scores["CIDEr"] for scores in style_scores.values()), default=0.0)
    rows = []
    for style, scores in style_scores.items():
        if has_accuracy:
            ceiling = scores.get("reference_style_top1")
            text = f"{scores['style_top1']:.1f}" + (f" (ceiling {ceiling:.1f})" if ceiling is not None else "")
            accuracy = _bar("accuracy", scores["style_top1"], 100.0, text, ceiling)
        else:
            accuracy = '<span class="note">no --style-classifier</span>'
        cider = _bar("cider", scores["CIDEr"], best_cider, f"{scores['CIDEr']:.1f}")
        rows.append(f'<div class="chart-row"><span><a href="#{_esc(section_ids[style])}">{_esc(style)}</a></span>'
                    f"{cider}{accuracy}</div>")
    caption = ("Per style, best CIDEr first: CIDEr (x100, each style's references as its corpus; bars scaled to the "
               "best style) and top-1 style accuracy (% of its captions the style classifier assigns to the requested "
               "style; the black line is the classifier's accuracy on that style's human references, the ceiling).")
    return (f'<figure id="style-chart" class="chart"><h2>CIDEr and style accuracy per style</h2>'
            f'<figcaption class="note">{_esc(caption)}</figcaption>'
            '<div class="chart-row chart-head"><span>style</span><span>CIDEr</span><span>style accuracy (top-1 %)</span></div>'
            f'{"".join(rows)}</figure>')


def multi_style_section(entries: Sequence[MultiStyleEntry], sensitivity: Mapping[str, float], image_uri) -> str:
    """The section (a <div id="styles-per-image">) for the first MULTI_STYLE_SHOWN entries;
    `image_uri(bytes)` makes the data: URI of an image."""
    cards = []
    for entry in entries[:MULTI_STYLE_SHOWN]:
        image = entry.image() if callable(entry.image) else entry.image
        lines = []
        for style, caption, predicted in zip(entry.styles, entry.captions, entry.predicted):
            guess = ""
            if predicted is not None:
                guess = f'<td class="{"" if predicted == style else "miss"}">classified {_esc(predicted)}</td>'
            own = ' class="own"' if style == entry.own_style else ""
            lines.append(f"<tr{own}><td>{_esc(style)}</td><td>{_esc(caption) or '<em>(empty caption)</em>'}</td>{guess}</tr>")
        cards.append(f'<div class="multi-card" id="{_esc(entry.key)}"><img src="{image_uri(image)}" '
                     f'alt="image {_esc(entry.image_id)}"><table>{"".join(lines)}</table></div>')
    summary = (f"{sensitivity['num_images']} images, {sensitivity['styles_per_image']} styles each: captions differ "
               f"across styles for {sensitivity['images_with_differing_captions']:.1f}% of the images and "
               f"{sensitivity['differing_pairs']:.1f}% of the style pairs; mean pairwise word overlap "
               f"{sensitivity['mean_pairwise_word_overlap']:.1f}%.")
    shown = min(len(entries), MULTI_STYLE_SHOWN)
    return (f'<div id="styles-per-image" class="multi"><h2>One image, several styles</h2><p>{_esc(summary)}</p>'
            f'<p class="note">The first {shown} images; the bold row is the image\'s own style in the data; '
            'a red guess is a caption the style classifier assigns to another style.</p>'
            f'<div class="multi-cards">{"".join(cards)}</div></div>')

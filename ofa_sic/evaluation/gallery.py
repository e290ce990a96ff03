"""gallery.html of `ofa-sic evaluate`: every image with its style, generated caption and references.

One self-contained page (images embedded as data: URIs, no scripts, no external files):
- a table of contents: one row per style (best style CIDEr first) with its count, scores and links to
  its best and worst caption;
- a chart of CIDEr beside style accuracy per style, and, with `ofa-sic evaluate --styles-per-image`,
  images captioned in several styles (ofa_sic.evaluation.gallery_style);
- one section per style, its images sorted by their own CIDEr (best first), the best and worst
  marked with a badge.
Per-image CIDEr uses the whole split's references as the corpus, so the numbers compare across styles.
Images larger than THUMBNAIL_SIZE pixels are embedded as JPEG thumbnails of that size.
"""
import base64
import html
import io
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

from PIL import Image

from ofa_sic.evaluation.gallery_style import STYLE_CSS, MultiStyleEntry, multi_style_section, style_chart

THUMBNAIL_SIZE = 256

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 16px 48px; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 1.5em; margin: 24px 0 4px; }
h2 { font-size: 1.25em; margin: 0; }
.meta, .note { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; margin: 12px 0 24px; font-size: 0.9em; }
th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
section { margin: 28px 0; padding-top: 8px; border-top: 2px solid #ccc; }
.section-head { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 14px; margin-top: 12px; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 10px; display: flex; gap: 10px; }
.card.best { border: 2px solid #2e7d32; }
.card.worst { border: 2px solid #c62828; }
.card img { width: 128px; height: 128px; object-fit: contain; background: #eee; border-radius: 4px; flex: none; }
.card-body { min-width: 0; overflow-wrap: anywhere; }
.caption { font-weight: 600; margin: 4px 0; }
.refs { margin: 4px 0 0; padding-left: 18px; color: #444; font-size: 0.85em; }
.badge { display: inline-block; font-size: 0.75em; font-weight: 700; color: #fff; border-radius: 4px;
         padding: 1px 6px; margin-right: 4px; text-transform: uppercase; }
.badge.best { background: #2e7d32; }
.badge.worst { background: #c62828; }
.style-tag { display: inline-block; font-size: 0.75em; background: #e3e8f4; border-radius: 4px; padding: 1px 6px; }
.score { font-size: 0.8em; color: #555; }
a { color: #1a4fa0; }
"""


@dataclass
class GalleryEntry:
    """One captioned image: `key` is unique in the gallery; `image` is the image file's bytes, or a
    function returning them (called only if the entry is shown)."""

    key: str
    style: str
    caption: str
    references: List[str]
    cider: float
    image: Union[bytes, Callable[[], bytes]]
    image_id: str = ""
    uniq_id: str = ""
    badges: List[str] = field(default_factory=list)


def image_data_uri(data: bytes, max_size: int = THUMBNAIL_SIZE) -> str:
    """`data:image/...;base64,...` for image file bytes (MIME type from the bytes); images with a side
    longer than `max_size` become a JPEG thumbnail of that size."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            mime = Image.MIME.get(image.format, "image/jpeg")
            if max(image.size) > max_size or mime not in ("image/jpeg", "image/png", "image/gif", "image/webp"):
                thumbnail = image.convert("RGB")
                thumbnail.thumbnail((max_size, max_size), Image.BICUBIC)
                buffer = io.BytesIO()
                thumbnail.save(buffer, format="JPEG", quality=85)
                data, mime = buffer.getvalue(), "image/jpeg"
    except Exception as error:  # Pillow raises many types for bad bytes
        raise ValueError(f"cannot embed image: {error}") from None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def order_entries(entries: Sequence[GalleryEntry], style_order: Sequence[str]) -> Dict[str, List[GalleryEntry]]:
    """{style: its entries best CIDEr first (ties keep input order)}, styles in `style_order`.

    Marks the first entry of a style "best" and the last "worst", unless their CIDEr is equal.
    """
    grouped: Dict[str, List[GalleryEntry]] = {style: [] for style in style_order}
    for entry in entries:
        if entry.style not in grouped:
            raise ValueError(f"entry {entry.key} has style {entry.style!r}, which is not among the report's styles")
        grouped[entry.style].append(entry)
    for style, items in grouped.items():
        items.sort(key=lambda entry: -entry.cider)
        if len(items) > 1 and items[0].cider > items[-1].cider:  # no badges when all captions tie
            items[0].badges = ["best"]
            items[-1].badges = ["worst"]
    return grouped


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _card(entry: GalleryEntry) -> str:
    badges = "".join(f'<span class="badge {b}">{b}</span>' for b in entry.badges)
    classes = " ".join(["card"] + entry.badges)
    references = "".join(f"<li>{_esc(ref)}</li>" for ref in entry.references)
    image = entry.image() if callable(entry.image) else entry.image
    return (
        f'<article class="{classes}" id="{_esc(entry.key)}">'
        f'<img src="{image_data_uri(image)}" alt="image {_esc(entry.image_id)}">'
        f'<div class="card-body">{badges}<span class="style-tag">{_esc(entry.style)}</span> '
        f'<span class="score">CIDEr {entry.cider:.1f}</span>'
        f'<p class="caption">{_esc(entry.caption) or "<em>(empty caption)</em>"}</p>'
        f'<ol class="refs">{references}</ol>'
        f'<p class="meta">image {_esc(entry.image_id)} &middot; {_esc(entry.uniq_id)}</p>'
        "</div></article>"
    )


def render_gallery(title: str, subtitle: str, entries: Sequence[GalleryEntry],
                   style_scores: Mapping[str, Mapping[str, float]], overall: Mapping[str, float],
                   per_style_limit: Optional[int] = None, multi_style: Sequence[MultiStyleEntry] = (),
                   sensitivity: Optional[Mapping[str, float]] = None) -> str:
    """The gallery page. `style_scores` (style -> scores with num_samples, CIDEr, BLEU-4, ..., and
    style_top1 / reference_style_top1 when measured) sets the section order; `per_style_limit` N shows
    only each style's N best and N worst images; `multi_style` entries with their `sensitivity` figures
    add the several-styles section."""
    style_order = list(style_scores)
    grouped = order_entries(entries, style_order)
    shown = sum(len(items) for items in grouped.values())
    contents, sections = [], []
    for rank, style in enumerate(style_order, start=1):
        items = grouped[style]
        section_id = f"style-{rank}"
        scores = style_scores[style]
        omitted = 0
        if per_style_limit and len(items) > 2 * per_style_limit:
            omitted = len(items) - 2 * per_style_limit
            items = items[:per_style_limit] + items[-per_style_limit:]
            shown -= omitted
        best = f'<a href="#{_esc(items[0].key)}">best</a>' if items else ""
        worst = f'<a href="#{_esc(items[-1].key)}">worst</a>' if len(items) > 1 else ""
        contents.append(
            f'<tr><td><a href="#{section_id}">{_esc(style)}</a></td><td>{scores["num_samples"]}</td>'
            f'<td>{scores["CIDEr"]:.1f}</td><td>{scores["BLEU-4"]:.1f}</td><td>{scores["ROUGE-L"]:.1f}</td>'
            f"<td>{best} {worst}</td></tr>"
        )
        note = f'<p class="note">{omitted} middle images not shown (the {per_style_limit} best and worst are).</p>' if omitted else ""
        sections.append(
            f'<section id="{section_id}"><div class="section-head"><h2>{rank}. {_esc(style)}</h2>'
            f'<span class="meta">{scores["num_samples"]} images &middot; CIDEr {scores["CIDEr"]:.1f} &middot; '
            f'BLEU-4 {scores["BLEU-4"]:.1f} &middot; ROUGE-L {scores["ROUGE-L"]:.1f}</span>'
            f'<a class="meta" href="#contents">contents</a></div>{note}'
            f'<div class="cards">{"".join(_card(entry) for entry in items)}</div></section>'
        )
    chart = style_chart(style_scores, {style: f"style-{rank}" for rank, style in enumerate(style_order, start=1)})
    several = multi_style_section(multi_style, sensitivity, image_data_uri) if multi_style else ""
    summary = ", ".join(f"{name} {value:.1f}" for name, value in overall.items() if name != "num_samples")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}{STYLE_CSS}</style></head><body>"
        f"<header><h1>{_esc(title)}</h1><p class=\"meta\">{_esc(subtitle)}</p>"
        f'<p>All {overall["num_samples"]} images ({shown} shown): {_esc(summary)} (x100).</p>'
        '<p class="note">Styles are ordered by their CIDEr (each style\'s references as its corpus); within a style, '
        "images are ordered by their own CIDEr (the whole split's references as the corpus), best first.</p></header>"
        '<nav id="contents"><h2>Styles</h2><table><thead><tr><th>style</th><th>images</th><th>CIDEr</th>'
        f'<th>BLEU-4</th><th>ROUGE-L</th><th>jump to</th></tr></thead><tbody>{"".join(contents)}</tbody></table></nav>'
        f'{chart}{several}<main>{"".join(sections)}</main></body></html>\n'
    )

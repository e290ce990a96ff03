"""Sources with one caption per item (FlickrStyle10K, SentiCap, a captions file) -> the prepared rows.

Each converter reads its files and hands every caption to a `CaptionCollector` with its split, image
file, style and a key that leads back to the source (e.g. "humor-12": line 13 of funny_train.txt).
The collector cleans and checks it (counted per reason in the split's report) and builds the rows:
- train: one row per caption, uniq_id "train-{key}" (a training row of cross-entropy has one target;
  SCST groups the train rows of an image and style into its references);
- valid and test: one row per image and style holding every caption of the image in that style as its
  references, uniq_id "{split}-{key of its first caption}".
A caption equal (after cleaning) to one already collected for the same image, style and split is a
duplicate and counted, never written twice. Rows follow the order the captions were added in.
"""
import collections
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

from ofa_sic.data.prepared_layout import (
    IMAGE_SKIP_REASONS, SPLITS, PreparedRow, SplitReport, caption_as_cell, is_empty, is_safe_image_name, skip_counts,
)

#: Reasons the collector itself skips a caption (converters add their own before these).
COLLECTOR_SKIP_REASONS = ("bad_image_name", "empty_caption", "duplicate_caption")


class CaptionSplitReport(SplitReport):
    """A split's counts for a caption-per-item source: `read` captions, `captions_written`, and named
    `fixes` (e.g. "whitespace_normalized"); read == captions_written + skipped_total."""

    def __init__(self, split: str, source: str, reasons: Sequence[str] = ()) -> None:
        super().__init__(split, source, tuple(reasons) + COLLECTOR_SKIP_REASONS + IMAGE_SKIP_REASONS)
        self.captions_written = 0
        self.fixes: collections.Counter = collections.Counter()

    def count_written(self, row: PreparedRow) -> None:
        super().count_written(row)
        self.captions_written += len(row.sources)

    def to_dict(self) -> Dict[str, Any]:
        counts = super().to_dict()
        counts["captions_written"] = self.captions_written
        counts["fixes"] = dict(sorted(self.fixes.items()))
        return counts


def split_reports(source: str, reasons: Sequence[str] = ()) -> Dict[str, CaptionSplitReport]:
    """A report per split of SPLITS, all reading `source`."""
    return {split: CaptionSplitReport(split, source, reasons) for split in SPLITS}


@dataclass
class _Caption:
    key: str
    image_file: str
    style: str
    text: str


class CaptionCollector:
    """Collects checked captions per split and turns them into prepared rows (see the module docstring)."""

    def __init__(self, reports: Dict[str, CaptionSplitReport]) -> None:
        self.reports = reports
        self._captions: Dict[str, List[_Caption]] = {split: [] for split in SPLITS}
        self._seen: set = set()

    def add(self, split: str, key: str, image_file: str, style: str, raw: str, fixes: Sequence[str] = ()) -> bool:
        """Count one caption read in `split` and keep it unless it is unusable; return whether it was kept.

        `image_file` is the image's path relative to the image folder, `style` its name as in
        styles.txt, `raw` the caption as the source has it (put on one line with single spaces here),
        `fixes` the names of the fixes the converter already made to it (counted if it is kept).
        """
        report = self.reports[split]
        report.read += 1
        if not is_safe_image_name(image_file):
            report.skip("bad_image_name", key, image_file, "not a plain relative path inside the image folder")
            return False
        text, ampersand_fixed = caption_as_cell(raw)
        if is_empty(text):
            report.skip("empty_caption", key, image_file, f"caption {raw!r}")
            return False
        if (split, image_file, style, text) in self._seen:
            report.skip("duplicate_caption", key, image_file, f"{style} caption {text!r} already read for this image")
            return False
        self._seen.add((split, image_file, style, text))
        if raw != " ".join(raw.split()):
            report.fixes["whitespace_normalized"] += 1
        if ampersand_fixed:
            report.fixes["ampersand_replaced"] += 1
        report.fixes.update(fixes)
        self._captions[split].append(_Caption(key, image_file, style, text))
        return True

    def rows(self) -> Dict[str, List[PreparedRow]]:
        """{split: rows}: one per train caption; one per image and style in valid and test."""
        rows: Dict[str, List[PreparedRow]] = {}
        for split, captions in self._captions.items():
            if split == "train":
                rows[split] = [PreparedRow(f"train-{c.key}", c.image_file, c.image_file, c.style, [c.text], (c.key,))
                               for c in captions]
                continue
            groups: Dict[Tuple[str, str], List[_Caption]] = {}
            for caption in captions:
                groups.setdefault((caption.image_file, caption.style), []).append(caption)
            rows[split] = [
                PreparedRow(f"{split}-{group[0].key}", image_file, image_file, style, [c.text for c in group],
                            tuple(c.key for c in group))
                for (image_file, style), group in groups.items()
            ]
        return rows


def format_caption_report(title: str, report: Dict[str, Any]) -> List[str]:
    """The per-split lines of a caption-per-item converter's summary."""
    lines = [title, f"{'split':<6} {'captions':>9} {'written':>8} {'rows':>7} {'skipped':>8}"]
    for split, s in report["splits"].items():
        lines.append(f"{split:<6} {s['read']:>9} {s['captions_written']:>8} {s['written']:>7} {s['skipped_total']:>8}")
    for split, s in report["splits"].items():
        reasons = skip_counts(s["skipped"])
        if reasons:
            lines.append(f"  {split} skipped: {reasons}")
        if s["fixes"]:
            lines.append(f"  {split} fixed: " + ", ".join(f"{name} {n}" for name, n in s["fixes"].items()))
    return lines

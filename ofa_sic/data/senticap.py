"""Convert SentiCap (positive and negative captions of COCO val2014 images) to the prepared layout.

Input:
    SENTICAP_DIR/data/senticap_dataset.json (or SENTICAP_DIR/senticap_dataset.json): one JSON object
        {"images": [entry, ...]}, an entry {"imgid", "filename": "COCO_val2014_000000389081.jpg",
        "split": "train"|"val"|"test", "sentences": [{"raw", "tokens", "sentiment": 0|1, ...}]}.
    IMAGE_DIR/{filename}: the COCO val2014 images.

Styles: positive (sentiment 1), negative (sentiment 0). Splits: each entry's own `split` (val ->
valid). An image can have several entries (in test, one per polarity with the same `imgid`), so images
are grouped by file name across entries: a valid/test row holds every caption of its image in its
style. The caption is `raw` put on one line ("\\r\\n" inside it included, counted as
"whitespace_normalized"); an entry whose split is not train/val/test is counted in "entries_skipped".
Caption keys (uniq_id "{split}-{entry}.{sentence}") give the entry's position in the JSON list and the
sentence's position in the entry.
"""
import collections
import json
import os
from typing import Any, Dict, List, Optional

from ofa_sic.data.caption_items import CaptionCollector, format_caption_report, split_reports
from ofa_sic.data.prepared_layout import (
    SPLITS, ConversionError, LayoutOptions, check_folders, format_layout_summary, write_layout,
)
from ofa_sic.data.styles import StyleVocabulary

DATASET_FILES = (os.path.join("data", "senticap_dataset.json"), "senticap_dataset.json")
STYLES = {1: "positive", 0: "negative"}
SPLIT_NAMES = {"train": "train", "val": "valid", "test": "test"}
SKIP_REASONS = ("missing_field", "bad_sentiment")


def find_dataset_file(senticap_dir: str) -> str:
    for name in DATASET_FILES:
        path = os.path.join(senticap_dir, name)
        if os.path.isfile(path):
            return path
    raise ConversionError(f"{senticap_dir}: no {' or '.join(DATASET_FILES)}; --senticap-dir must be the unpacked "
                          "senticap_dataset folder")


def load_entries(path: str) -> List[Any]:
    """The `images` list of senticap_dataset.json; ConversionError naming the file on a format problem."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ConversionError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except UnicodeDecodeError as e:
        raise ConversionError(f"{path}: not UTF-8 text ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ConversionError(f"{path}: expected an object with an 'images' list, as in SentiCap's release")
    return data["images"]


def _add_entry(number: int, entry: Any, collector: CaptionCollector, result: Dict[str, Any]) -> Optional[str]:
    """Hand the sentences of one entry to the collector; return its split, or None (counted) without one."""
    split = SPLIT_NAMES.get(entry.get("split")) if isinstance(entry, dict) else None
    sentences = entry.get("sentences") if isinstance(entry, dict) else None
    if split is None or not isinstance(sentences, list):
        skipped = result["entries_skipped"]
        skipped["entries"] += 1
        skipped["sentences"] += len(sentences) if isinstance(sentences, list) else 0
        if len(skipped["examples"]) < 5:
            skipped["examples"].append({"entry": number, "detail": "no train/val/test split or no sentences list"})
        return None
    report = collector.reports[split]
    filename = entry.get("filename") if isinstance(entry.get("filename"), str) else ""
    for k, sentence in enumerate(sentences):
        key = f"{number}.{k}"
        raw = sentence.get("raw") if isinstance(sentence, dict) else None
        if not isinstance(raw, str) or not filename:
            report.read += 1
            report.skip("missing_field", key, filename, "no 'raw' caption string or no 'filename'")
            continue
        sentiment = sentence.get("sentiment")
        if isinstance(sentiment, bool) or sentiment not in STYLES:
            report.read += 1
            report.skip("bad_sentiment", key, filename, f"sentiment {sentiment!r} is not 0 or 1")
            continue
        collector.add(split, key, filename, STYLES[sentiment], raw)
    return split


def prepare_senticap(senticap_dir: str, image_dir: str, out_dir: str,
                     options: Optional[LayoutOptions] = None) -> Dict[str, Any]:
    """Convert SentiCap to the prepared layout in `out_dir`; return the report (also report.json)."""
    options = options or LayoutOptions()
    options.check()
    check_folders(senticap_dir=senticap_dir, image_dir=image_dir)
    path = find_dataset_file(senticap_dir)
    entries = load_entries(path)
    result: Dict[str, Any] = {
        "settings": {"senticap_dir": os.path.abspath(senticap_dir), "image_dir": os.path.abspath(image_dir),
                     "out_dir": os.path.abspath(out_dir), **options.settings()},
        "entries_skipped": {"entries": 0, "sentences": 0, "examples": []},
    }
    reports = split_reports(os.path.relpath(path, senticap_dir), SKIP_REASONS)
    collector = CaptionCollector(reports)
    entries_per_split = {split: 0 for split in SPLITS}
    images_per_split: Dict[str, set] = {split: set() for split in SPLITS}
    for number, entry in enumerate(entries):
        split = _add_entry(number, entry, collector, result)
        if split is not None:
            entries_per_split[split] += 1
            if isinstance(entry.get("filename"), str):
                images_per_split[split].add(entry["filename"])
    result["entries"] = {"read": len(entries), "per_split": entries_per_split}
    result["images_per_split"] = {split: len(names) for split, names in images_per_split.items()}
    result["entries_sharing_an_image"] = sum(entries_per_split.values()) - sum(result["images_per_split"].values())
    split_count = collections.Counter(name for names in images_per_split.values() for name in names)
    result["images_in_several_splits"] = sum(1 for n in split_count.values() if n > 1)
    vocabulary = StyleVocabulary(list(STYLES.values()))
    write_layout(out_dir, collector.rows(), reports, {split: path for split in SPLITS}, vocabulary, image_dir,
                 options, result)
    if not options.quiet:
        print(format_report(result))
    return result


def format_report(report: Dict[str, Any]) -> str:
    """A short human-readable summary of a prepare_senticap report."""
    lines = format_caption_report(f"SentiCap -> {report['settings']['out_dir']}", report)
    entries = report["entries"]
    lines.append(f"  entries: {entries['read']} ({', '.join(f'{s} {n}' for s, n in entries['per_split'].items())}), "
                 f"{report['entries_sharing_an_image']} share an image with another entry of their split")
    if report["entries_skipped"]["entries"]:
        lines.append(f"  entries skipped (no split or sentences): {report['entries_skipped']['entries']}")
    if report["images_in_several_splits"]:
        lines.append(f"  images in more than one split: {report['images_in_several_splits']}")
    return "\n".join(lines + format_layout_summary(report))

"""Convert any captioned image folder, described by a JSON-lines or CSV file, to the prepared layout.

Input:
    CAPTIONS: FILE.jsonl (one JSON object per line) or FILE.csv (UTF-8, a header row): one record per
        caption with the fields `image` (path relative to IMAGE_DIR), `style`, `caption` and `split`
        (train, valid or val, test). Other fields are ignored (and listed in the report).
    IMAGE_DIR: the images.

Records are numbered from 0 in file order (blank JSON lines are not records); uniq_ids are
"{split}-{number}". A record without a string in one of the four fields is skipped ("missing_field",
counted in its split, or in "records_without_split" when the split itself is missing or unknown).
Styles are the data's, in order of first appearance; spellings that differ only in case or spacing are
one style, written as first seen (listed in "style_spellings_mapped"). A line that is not JSON, or a CSV
without the four columns, is an error naming the file and line.
"""
import csv
import json
import os
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ofa_sic.data.caption_items import CaptionCollector, format_caption_report, split_reports
from ofa_sic.data.prepared_layout import (
    SPLITS, ConversionError, LayoutOptions, check_folders, format_layout_summary, write_layout,
)
from ofa_sic.data.styles import StyleVocabulary, normalize_style

FIELDS = ("image", "style", "caption", "split")
SPLIT_NAMES = {"train": "train", "valid": "valid", "val": "valid", "test": "test"}
SKIP_REASONS = ("missing_field",)


def _jsonl_records(path: str) -> Iterator[Tuple[int, Any]]:
    """(line number, object) of every non-blank line."""
    with open(path, encoding="utf-8-sig") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield line_number, json.loads(line)
            except json.JSONDecodeError as e:
                raise ConversionError(f"{path}:{line_number}: not a JSON object ({e.msg}); one record per line") from None


def _csv_records(path: str) -> Iterator[Tuple[int, Any]]:
    """(line number, row dict) of every data row; the header must name the four fields."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = [name for name in FIELDS if name not in (reader.fieldnames or [])]
        if missing:
            raise ConversionError(f"{path}:1: the header lacks {', '.join(missing)}; it needs {', '.join(FIELDS)}")
        for row in reader:
            yield reader.line_num, row


def read_records(path: str) -> List[Tuple[int, Any]]:
    """[(line number, record)] of a .jsonl or .csv captions file."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".jsonl", ".csv"):
        raise ConversionError(f"{path}: a captions file is .jsonl or .csv, not {extension or 'without an extension'}")
    try:
        return list(_jsonl_records(path) if extension == ".jsonl" else _csv_records(path))
    except UnicodeDecodeError as e:
        raise ConversionError(f"{path}: not UTF-8 text ({e})") from None


def prepare_captions(captions: str, image_dir: str, out_dir: str,
                     options: Optional[LayoutOptions] = None) -> Dict[str, Any]:
    """Convert a captions file to the prepared layout in `out_dir`; return the report (also report.json)."""
    options = options or LayoutOptions()
    options.check()
    check_folders(image_dir=image_dir)
    if not os.path.isfile(captions):
        raise ConversionError(f"captions {captions!r} is not a file")
    records = read_records(captions)
    result: Dict[str, Any] = {
        "settings": {"captions": os.path.abspath(captions), "image_dir": os.path.abspath(image_dir),
                     "out_dir": os.path.abspath(out_dir), **options.settings()},
        "records": len(records),
        "records_without_split": {"records": 0, "examples": []},
    }
    reports = split_reports(os.path.basename(captions), SKIP_REASONS)
    collector = CaptionCollector(reports)
    spellings: Dict[str, str] = {}  # normalized style -> first spelling
    mapped: Dict[str, str] = {}
    ignored_fields: set = set()
    for number, (line, record) in enumerate(records):
        if not isinstance(record, dict):
            raise ConversionError(f"{captions}:{line}: a record is an object with {', '.join(FIELDS)}")
        ignored_fields.update(set(record) - set(FIELDS))
        split = SPLIT_NAMES.get(str(record.get("split", "")).strip().lower())
        if split is None:
            unassigned = result["records_without_split"]
            unassigned["records"] += 1
            if len(unassigned["examples"]) < 5:
                unassigned["examples"].append({"line": line, "split": record.get("split")})
            continue
        if not all(isinstance(record.get(name), str) and record[name].strip() for name in ("image", "style", "caption")):
            reports[split].read += 1
            reports[split].skip("missing_field", number, record.get("image"), f"line {line}: image, style and caption "
                                "must be non-empty strings")
            continue
        style = spellings.setdefault(normalize_style(record["style"]), " ".join(record["style"].split()))
        if style != record["style"]:
            mapped[record["style"]] = style
        collector.add(split, str(number), record["image"], style, record["caption"])
    if not spellings:
        raise ConversionError(f"{captions}: no record with a style, a caption and a train/valid/test split")
    result["fields_ignored"] = sorted(ignored_fields)
    result["style_spellings_mapped"] = dict(sorted(mapped.items()))
    try:
        vocabulary = StyleVocabulary(list(spellings.values()))
    except ValueError as e:
        raise ConversionError(f"{captions}: {e}") from None
    write_layout(out_dir, collector.rows(), reports, {split: captions for split in SPLITS}, vocabulary, image_dir,
                 options, result)
    if not options.quiet:
        print(format_report(result))
    return result


def format_report(report: Dict[str, Any]) -> str:
    """A short human-readable summary of a prepare_captions report."""
    lines = format_caption_report(f"{report['settings']['captions']} -> {report['settings']['out_dir']}", report)
    if report["records_without_split"]["records"]:
        lines.append(f"  records without a train/valid/test split: {report['records_without_split']['records']}")
    if report["style_spellings_mapped"]:
        lines.append("  style spellings mapped: " + ", ".join(
            f"{k!r} -> {v!r}" for k, v in report["style_spellings_mapped"].items()))
    return "\n".join(lines + format_layout_summary(report))

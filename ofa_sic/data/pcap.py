"""Convert Personality-Captions (PCap) into the TSV files that the style_caption task reads.

Input (see docs/pcap-format.md):
    PCAP_DIR/train.json, val.json (or valid.json), test.json: JSON lists of records with `personality`,
        `comment` and `image_hash`; test records also have `additional_comments` (4 more captions).
    PCAP_DIR/personalities.txt: the trait list (header lines contain "Trait").
    IMAGE_DIR/{image_hash}.jpg: the YFCC images.

Output (in OUT_DIR), the prepared layout of `ofa_sic.data.prepared_layout`, which writes it:
    train.tsv, valid.tsv, test.tsv: one row per kept record, five tab-separated columns
        uniq_id    "{split}-{n}", where n is the record's 0-based position in the split's JSON list,
                   so an id leads back to its source record
        image_id   the record's image_hash
        style      the style's name exactly as in styles.txt
        captions   the comment; on test, the comment and the additional comments joined by "&&"
        image      base64.urlsafe_b64encode of the image re-encoded as an RGB JPEG (quality 95),
                   shrunk so that its long side is at most `image_size` (aspect kept, never enlarged).
                   Read it back with base64.urlsafe_b64decode, as OFA does.
    styles.txt: the traits of personalities.txt in file order, then the traits that only the data uses,
        sorted; style i is the model's token <code_i>.
    train-words.p: CIDEr-D document frequencies of the train captions (when ofa_sic.metrics.cider_d exists).
    report.json: what was read, written and skipped (per split and reason), style counts, settings.

Captions are put on one line with single spaces. Because "&&" separates references, a caption's own "&&"
(or a lone "&" at its start or end) becomes "and"; these fixes are counted. Rows are written in the
JSON files' order; nothing is shuffled.

Records that cannot be used are skipped and counted per reason (SKIP_REASONS); see `_parse_record`.
Every output is written under a temporary name and renamed into place only when the whole conversion
has succeeded, so a failed or killed run never leaves a complete-looking but truncated file.
"""
import collections
import json
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from ofa_sic.data.prepared_layout import (
    IMAGE_SKIP_REASONS, ConversionError, LayoutOptions, PreparedRow, SplitReport, check_folders, caption_as_cell,
    format_layout_summary, is_empty, skip_counts, write_layout,
)
from ofa_sic.data.styles import StyleVocabulary, normalize_style, read_personalities
from ofa_sic.data.text import CaptionCleaner

SPLIT_FILES = {"train": ("train.json",), "valid": ("val.json", "valid.json"), "test": ("test.json",)}
SKIP_REASONS = ("missing_field", "bad_image_hash", "empty_comment", "junk_comment") + IMAGE_SKIP_REASONS

# MTurk markers left in some comments: [DISCONNECT], [TIMEOUT], [RETURNED], and any other bracketed
# upper-case word of 3 or more letters.
_JUNK_GENERIC = re.compile(r"\[[A-Z][A-Z_ ]{2,}\]")
_KNOWN_MARKER = re.compile(r"\[(?:disconnect|timeout|returned)\]", re.IGNORECASE)

#: The error of unusable PCap input (the layout's ConversionError, under the name PCap's callers know).
PcapError = ConversionError


def is_junk(text: str) -> bool:
    """Return True when `text` contains an MTurk marker such as [DISCONNECT], [TIMEOUT] or [RETURNED]."""
    return bool(_KNOWN_MARKER.search(text) or _JUNK_GENERIC.search(text))


# ----------------------------------------------------------------------------------------------------
# Records


class _PcapSplitReport(SplitReport):
    """A split's counts, plus the fixes made to PCap's references."""

    def __init__(self, split: str, source: str) -> None:
        super().__init__(split, source, SKIP_REASONS, image_key="image_hash")
        self.junk_reference_dropped = 0
        self.ampersand_replaced = 0
        self.additional_comments_ignored = 0

    def to_dict(self) -> Dict[str, Any]:
        counts = super().to_dict()
        fixes = {"junk_reference_dropped": self.junk_reference_dropped, "ampersand_replaced": self.ampersand_replaced,
                 "additional_comments_ignored": self.additional_comments_ignored}
        order = ("source", "read", "written", "skipped_total", "skipped", "skipped_examples")
        return {**{k: counts[k] for k in order}, **fixes, "references_per_row": counts["references_per_row"],
                "styles": counts["styles"]}


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _parse_record(split: str, number: int, record: Any, report: _PcapSplitReport) -> Optional[PreparedRow]:
    """Check one record; return its row (uniq_id "{split}-{number}"), or None after counting why it is skipped.

    Reasons: missing_field (personality, comment or image_hash absent, not a string, or blank; on test,
    additional_comments absent or not a list), bad_image_hash (a path separator or whitespace in it),
    empty_comment (no letter or digit), junk_comment (an MTurk marker such as [DISCONNECT]).
    On test, an empty or junk additional comment is dropped from the row's references and counted.
    """
    image_hash = record.get("image_hash")
    for field in ("personality", "comment", "image_hash"):
        if field not in record or record[field] is None:
            report.skip("missing_field", number, image_hash, f"no {field!r}")
            return None
    if not _is_text(record["personality"]) or not _is_text(record["image_hash"]):
        report.skip("missing_field", number, image_hash, "personality or image_hash is not a non-blank string")
        return None
    if not isinstance(record["comment"], str):
        report.skip("missing_field", number, image_hash, f"comment is {type(record['comment']).__name__}, not a string")
        return None
    image_hash = record["image_hash"].strip()
    if image_hash in (".", "..") or any(ch in image_hash for ch in "/\\") or len(image_hash.split()) != 1:
        report.skip("bad_image_hash", number, image_hash, "image_hash holds a path separator or whitespace")
        return None

    comment, fixed = caption_as_cell(record["comment"])
    if is_empty(comment):
        report.skip("empty_comment", number, image_hash, f"comment {record['comment']!r}")
        return None
    if is_junk(comment):
        report.skip("junk_comment", number, image_hash, f"comment {comment!r}")
        return None
    captions = [comment]
    fixes = int(fixed)

    if split == "test":
        extra = record.get("additional_comments")
        if not isinstance(extra, list):
            report.skip("missing_field", number, image_hash, "test record without an additional_comments list")
            return None
        for raw in extra:
            text, fixed = caption_as_cell(raw) if isinstance(raw, str) else ("", False)
            if is_empty(text) or is_junk(text):
                report.junk_reference_dropped += 1
                continue
            captions.append(text)
            fixes += int(fixed)
    elif "additional_comments" in record:
        report.additional_comments_ignored += 1
    report.ampersand_replaced += fixes
    return PreparedRow(uniq_id=f"{split}-{number}", image_id=image_hash, image_file=image_hash + ".jpg",
                       style=record["personality"].strip(), captions=captions, sources=(number,))


def _find_split_files(pcap_dir: str) -> Dict[str, str]:
    """Return {split: path of its JSON file}; raise PcapError naming the expected files if one is missing."""
    paths = {}
    for split, names in SPLIT_FILES.items():
        found = [os.path.join(pcap_dir, name) for name in names if os.path.isfile(os.path.join(pcap_dir, name))]
        if not found:
            raise PcapError(f"{pcap_dir}: no {' or '.join(names)}; --pcap-dir must be the unpacked personality_captions folder")
        if len(found) > 1:
            raise PcapError(f"{pcap_dir}: both {' and '.join(names)} exist; keep only the one to use as the {split} split")
        paths[split] = found[0]
    return paths


def _load_records(path: str) -> List[Dict[str, Any]]:
    """Read a PCap JSON file: a list of objects. Raise PcapError naming the file on any format problem."""
    try:
        with open(path, encoding="utf-8") as f:
            records = json.load(f)
    except json.JSONDecodeError as e:
        raise PcapError(
            f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); re-download or re-extract it"
        ) from None
    except UnicodeDecodeError as e:
        raise PcapError(f"{path}: not UTF-8 text ({e}); re-download or re-extract it") from None
    if not isinstance(records, list):
        raise PcapError(f"{path}: expected a JSON list of records, found a {type(records).__name__}")
    for number, record in enumerate(records):
        if not isinstance(record, dict):
            raise PcapError(
                f"{path}: record {number} is a {type(record).__name__}, "
                "expected an object with personality, comment, image_hash"
            )
    return records


# ----------------------------------------------------------------------------------------------------
# Styles


def _build_styles(
    personalities: List[str], rows_by_split: Dict[str, List[PreparedRow]], personalities_path: str
) -> Tuple[StyleVocabulary, List[str], Dict[str, str]]:
    """Return the final vocabulary, the traits added from the data, and {data spelling: canonical name}.

    Every row's `style` is replaced by its canonical name.
    """
    try:
        base = StyleVocabulary(personalities)
    except ValueError as e:
        raise PcapError(f"{personalities_path}: {e}") from None
    added: Dict[str, List[str]] = collections.defaultdict(list)  # normalized name -> spellings seen
    for rows in rows_by_split.values():
        for row in rows:
            if row.style not in base:
                added[normalize_style(row.style)].append(row.style)
    added_names = [min(added[key]) for key in sorted(added)]
    vocabulary = StyleVocabulary(personalities + added_names)
    mapped: Dict[str, str] = {}
    for rows in rows_by_split.values():
        for row in rows:
            canonical = vocabulary.canonical(row.style)
            if canonical != row.style:
                mapped[row.style] = canonical
            row.style = canonical
    return vocabulary, added_names, dict(sorted(mapped.items()))


# ----------------------------------------------------------------------------------------------------
# The converter


def prepare_pcap(
    pcap_dir: str,
    image_dir: str,
    out_dir: str,
    image_size: int = 480,
    workers: int = 1,
    df: bool = True,
    quiet: bool = False,
    cleaner: Optional[CaptionCleaner] = None,
) -> Dict[str, Any]:
    """Convert PCap to train/valid/test TSVs, styles.txt, train-words.p and report.json in `out_dir`.

    `image_size` bounds the long side of the stored images; `workers` > 1 encodes images in that many
    processes; `df` asks for the CIDEr-D document frequencies of the train captions, cleaned by
    `cleaner` (default: OFA's cleaning; pass the training run's --keep-case / --keep-punctuation).
    Prints a summary and progress bars unless `quiet`. Returns the report (also written as report.json).
    Raises PcapError for unusable input; nothing is written then.

    The steps: check the arguments, parse the split files, build the style vocabulary, then (staged,
    so that a failure writes nothing) encode the images and write the splits, styles.txt, the document
    frequencies and the report.
    """
    options = LayoutOptions(image_size=image_size, workers=workers, df=df, cleaner=cleaner, quiet=quiet)
    options.check()
    check_folders(pcap_dir=pcap_dir, image_dir=image_dir)
    split_files = _find_split_files(pcap_dir)
    personalities_path = os.path.join(pcap_dir, "personalities.txt")
    personalities = _read_personalities_file(pcap_dir, personalities_path)
    reports, rows_by_split = _parse_splits(split_files)
    vocabulary, added, mapped = _build_styles(personalities, rows_by_split, personalities_path)

    result: Dict[str, Any] = {
        "settings": {"pcap_dir": os.path.abspath(pcap_dir), "image_dir": os.path.abspath(image_dir),
                     "out_dir": os.path.abspath(out_dir), **options.settings()},
        "styles_added_from_data": added,
        "style_spellings_mapped": mapped,
    }
    write_layout(out_dir, rows_by_split, reports, split_files, vocabulary, image_dir, options, result,
                 style_details={"from_personalities": len(personalities)})
    if not quiet:
        print(format_report(result))
    return result


def _read_personalities_file(pcap_dir: str, personalities_path: str) -> List[str]:
    if not os.path.isfile(personalities_path):
        raise PcapError(f"{pcap_dir}: no personalities.txt; --pcap-dir must be the unpacked personality_captions folder")
    try:
        return read_personalities(personalities_path)
    except ValueError as e:
        raise PcapError(str(e)) from None


def _parse_splits(split_files: Dict[str, str]) -> Tuple[Dict[str, _PcapSplitReport], Dict[str, List[PreparedRow]]]:
    """Parse every split file: ({split: report}, {split: usable rows}); skipped records are counted."""
    reports: Dict[str, _PcapSplitReport] = {}
    rows_by_split: Dict[str, List[PreparedRow]] = {}
    for split, path in split_files.items():
        report = reports[split] = _PcapSplitReport(split, os.path.basename(path))
        records = _load_records(path)
        report.read = len(records)
        parsed = (_parse_record(split, number, record, report) for number, record in enumerate(records))
        rows_by_split[split] = [row for row in parsed if row is not None]
    return reports, rows_by_split


def format_report(report: Dict[str, Any]) -> str:
    """Return a short human-readable summary of a prepare_pcap report."""
    lines = [f"Personality-Captions -> {report['settings']['out_dir']}"]
    lines.append(f"{'split':<6} {'source':<11} {'read':>8} {'written':>8} {'skipped':>8}")
    for split, s in report["splits"].items():
        lines.append(f"{split:<6} {s['source']:<11} {s['read']:>8} {s['written']:>8} {s['skipped_total']:>8}")
    for split, s in report["splits"].items():
        reasons = skip_counts(s["skipped"])
        if reasons:
            lines.append(f"  {split} skipped: {reasons}")
        fixes = []
        if s["junk_reference_dropped"]:
            fixes.append(f"{s['junk_reference_dropped']} empty/junk references dropped")
        if s["ampersand_replaced"]:
            fixes.append(f"{s['ampersand_replaced']} captions had '&' replaced by 'and'")
        if s["additional_comments_ignored"]:
            fixes.append(f"{s['additional_comments_ignored']} records' additional_comments ignored (not test)")
        if fixes:
            lines.append(f"  {split}: " + "; ".join(fixes))
    styles = report["styles"]
    line = f"styles: {styles['total']} ({styles['from_personalities']} from personalities.txt"
    if report["styles_added_from_data"]:
        line += f", added from the data: {', '.join(report['styles_added_from_data'])}"
    lines.append(line + ")")
    if report["style_spellings_mapped"]:
        pairs = ", ".join(f"{k!r} -> {v!r}" for k, v in report["style_spellings_mapped"].items())
        lines.append(f"style spellings mapped: {pairs}")
    return "\n".join(lines + format_layout_summary(report))

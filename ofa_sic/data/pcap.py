"""Convert Personality-Captions (PCap) into the TSV files that the style_caption task reads.

Input (see docs/pcap-format.md):
    PCAP_DIR/train.json, val.json (or valid.json), test.json: JSON lists of records with `personality`,
        `comment` and `image_hash`; test records also have `additional_comments` (4 more captions).
    PCAP_DIR/personalities.txt: the trait list (header lines contain "Trait").
    IMAGE_DIR/{image_hash}.jpg: the YFCC images.

Output (in OUT_DIR):
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
import base64
import collections
import io
import json
import multiprocessing
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

from PIL import Image
from tqdm import tqdm

from ofa_sic.data.styles import StyleVocabulary, normalize_style, read_personalities
from ofa_sic.data.text import REFERENCE_SEPARATOR, CaptionCleaner

SPLIT_FILES = {"train": ("train.json",), "valid": ("val.json", "valid.json"), "test": ("test.json",)}
SKIP_REASONS = ("missing_field", "bad_image_hash", "empty_comment", "junk_comment", "missing_image", "corrupt_image")
JPEG_QUALITY = 95
DF_FILE = "train-words.p"
EXAMPLES_PER_REASON = 5

# MTurk markers left in some comments: [DISCONNECT], [TIMEOUT], [RETURNED], and any other bracketed
# upper-case word of 3 or more letters.
_JUNK_GENERIC = re.compile(r"\[[A-Z][A-Z_ ]{2,}\]")
_KNOWN_MARKER = re.compile(r"\[(?:disconnect|timeout|returned)\]", re.IGNORECASE)
_AMPERSANDS = re.compile(r"&{2,}|^&|&$")


class PcapError(ValueError):
    """The PCap input cannot be converted (a missing file, malformed JSON, a bad argument, no usable rows)."""


class CorruptImageError(ValueError):
    """Pillow could not read or decode an image file."""


# ----------------------------------------------------------------------------------------------------
# Text


def clean_caption(text: str) -> Tuple[str, bool]:
    """Return `text` on one line with single spaces, and whether an ampersand had to be replaced.

    "&&" (or any longer run of "&") and a lone "&" at the start or end become "and", because "&&" is the
    reference separator of the captions column.
    """
    one_line = " ".join(text.split())
    fixed, replacements = _AMPERSANDS.subn(" and ", one_line)
    return " ".join(fixed.split()), replacements > 0


def is_junk(text: str) -> bool:
    """Return True when `text` contains an MTurk marker such as [DISCONNECT], [TIMEOUT] or [RETURNED]."""
    return bool(_KNOWN_MARKER.search(text) or _JUNK_GENERIC.search(text))


def is_empty(text: str) -> bool:
    """Return True when `text` has no letter or digit (empty, spaces only, or punctuation only)."""
    return not any(ch.isalnum() for ch in text)


# ----------------------------------------------------------------------------------------------------
# Images


def encode_image(path: str, image_size: int) -> str:
    """Return the image at `path` as urlsafe base64 of an RGB JPEG whose long side is at most `image_size`.

    Raises FileNotFoundError when there is no file, CorruptImageError when Pillow cannot decode it.
    EXIF orientation is not applied (the pixels are kept as stored, as OFA's own TSVs do).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.load()
            rgb = image.convert("RGB")
    except PermissionError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise CorruptImageError(f"{path}: {type(e).__name__}: {e}") from None
    width, height = rgb.size
    longest = max(width, height)
    if longest > image_size:
        scale = image_size / longest
        new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = rgb.resize(new_size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return base64.urlsafe_b64encode(buffer.getvalue()).decode("ascii")


def _image_job(job: Tuple[str, int]) -> Tuple[str, str]:
    """Worker: encode one image; return ("ok", base64) or (skip reason, message)."""
    path, image_size = job
    try:
        return "ok", encode_image(path, image_size)
    except FileNotFoundError:
        return "missing_image", f"no file {path}"
    except CorruptImageError as e:
        return "corrupt_image", str(e)


# ----------------------------------------------------------------------------------------------------
# Staged (atomic) outputs


class StagedOutputs:
    """Output files written under hidden temporary names in their final folders, renamed into place together.

    Use as a context manager: leaving the block normally renames every staged file over its final path;
    leaving it by an exception (or Ctrl-C) deletes the temporary files, so no half-written output remains.
    """

    def __init__(self) -> None:
        self._staged: List[Tuple[str, str]] = []

    def path(self, final_path: str) -> str:
        """Return a fresh temporary path next to `final_path` (for writers that take a path)."""
        folder, base = os.path.split(os.path.abspath(final_path))
        tmp = os.path.join(folder, f".{base}.{uuid.uuid4().hex[:12]}.tmp")
        self._staged.append((tmp, final_path))
        return tmp

    def open(self, final_path: str, binary: bool = False):
        """Open a new temporary file for `final_path` (text files are UTF-8 with "\\n" line ends)."""
        if binary:
            return open(self.path(final_path), "xb")
        return open(self.path(final_path), "x", encoding="utf-8", newline="\n")

    def commit(self) -> None:
        """Rename every staged file over its final path."""
        try:
            while self._staged:
                tmp, final = self._staged[0]
                os.replace(tmp, final)
                self._staged.pop(0)
        finally:
            self.discard()

    def discard(self) -> None:
        """Delete the temporary files that were not renamed."""
        for tmp, _ in self._staged:
            if os.path.exists(tmp):
                os.remove(tmp)
        self._staged = []

    def __enter__(self) -> "StagedOutputs":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
        return False


# ----------------------------------------------------------------------------------------------------
# Records


@dataclass
class _Row:
    """A record that passed the text checks."""

    number: int  # position in the split's JSON list
    image_hash: str
    style: str  # as written in the data (stripped); replaced by the canonical name later
    captions: List[str]  # the comment first, then the kept additional comments (test)


class _SplitReport:
    """Counts of one split: read, written, skipped per reason, fixes, styles."""

    def __init__(self, split: str, source: str) -> None:
        self.split = split
        self.source = source
        self.read = 0
        self.written = 0
        self.skipped = collections.Counter({reason: 0 for reason in SKIP_REASONS})
        self.examples: Dict[str, List[Dict[str, Any]]] = collections.defaultdict(list)
        self.junk_reference_dropped = 0
        self.ampersand_replaced = 0
        self.additional_comments_ignored = 0
        self.references_per_row: collections.Counter = collections.Counter()
        self.styles: collections.Counter = collections.Counter()

    def skip(self, reason: str, number: int, image_hash: Any, detail: str) -> None:
        """Count a skipped record and keep the first few as examples."""
        self.skipped[reason] += 1
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            self.examples[reason].append({"row": number, "image_hash": image_hash, "detail": detail})

    def to_dict(self) -> Dict[str, Any]:
        return {
            "source": self.source,
            "read": self.read,
            "written": self.written,
            "skipped_total": sum(self.skipped.values()),
            "skipped": dict(self.skipped),
            "skipped_examples": dict(self.examples),
            "junk_reference_dropped": self.junk_reference_dropped,
            "ampersand_replaced": self.ampersand_replaced,
            "additional_comments_ignored": self.additional_comments_ignored,
            "references_per_row": {str(k): v for k, v in sorted(self.references_per_row.items())},
            "styles": dict(sorted(self.styles.items(), key=lambda kv: (-kv[1], kv[0]))),
        }


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _parse_record(split: str, number: int, record: Any, report: _SplitReport) -> Optional[_Row]:
    """Check one record; return a _Row, or None after counting why it is skipped.

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

    comment, fixed = clean_caption(record["comment"])
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
            text, fixed = clean_caption(raw) if isinstance(raw, str) else ("", False)
            if is_empty(text) or is_junk(text):
                report.junk_reference_dropped += 1
                continue
            captions.append(text)
            fixes += int(fixed)
    elif "additional_comments" in record:
        report.additional_comments_ignored += 1
    report.ampersand_replaced += fixes
    return _Row(number=number, image_hash=image_hash, style=record["personality"].strip(), captions=captions)


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
    personalities: List[str], rows_by_split: Dict[str, List[_Row]], personalities_path: str
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
# Document frequencies (CIDEr-D)


def write_document_frequency(references_per_image: List[List[str]], cleaner: CaptionCleaner, df_path: str,
                             staged: StagedOutputs) -> Dict[str, Any]:
    """Stage the CIDEr-D document frequencies of `references_per_image` (one list of raw captions per
    image), cleaned by `cleaner` as training will clean them, for `df_path`."""
    from ofa_sic.metrics.cider_d import build_document_frequency, save_document_frequency

    cleaned = [[cleaner(caption) for caption in refs] for refs in references_per_image]
    df = build_document_frequency(cleaned, cleaner.settings())
    save_document_frequency(df, staged.path(df_path))
    return {"file": os.path.basename(df_path), "documents": len(references_per_image), "cleaning": cleaner.settings()}


# ----------------------------------------------------------------------------------------------------
# The converter


def _write_split(
    rows: List[_Row], image_dir: str, image_size: int, pool, workers: int, out, report: _SplitReport, quiet: bool
) -> List[_Row]:
    """Encode the images of `rows`, write their TSV lines to `out`; return the rows written.

    Each distinct image is encoded once; its base64 is kept only until the last row using it is written.
    """
    remaining = collections.Counter(row.image_hash for row in rows)
    unique = list(remaining)  # first-appearance order, which is the order the rows need them
    jobs = [(os.path.join(image_dir, image_hash + ".jpg"), image_size) for image_hash in unique]
    if pool is None:
        results: Iterator[Tuple[str, str]] = map(_image_job, jobs)
    else:
        chunksize = max(1, min(64, len(jobs) // (workers * 8)))
        results = pool.imap(_image_job, jobs, chunksize=chunksize)
    encoded: Dict[str, Tuple[str, str]] = {}
    written = []
    with tqdm(total=len(unique), desc=f"{report.split} images", unit="img", disable=quiet) as progress:
        for row in rows:
            if row.image_hash not in encoded:
                encoded[row.image_hash] = next(results)
                progress.update()
            status, payload = encoded[row.image_hash]
            remaining[row.image_hash] -= 1
            if remaining[row.image_hash] == 0:
                encoded[row.image_hash] = (status, "")  # free the base64; the hash stays marked as done
            if status != "ok":
                report.skip(status, row.number, row.image_hash, payload)
                continue
            captions = REFERENCE_SEPARATOR.join(row.captions)
            out.write(f"{report.split}-{row.number}\t{row.image_hash}\t{row.style}\t{captions}\t{payload}\n")
            report.written += 1
            report.references_per_row[len(row.captions)] += 1
            report.styles[row.style] += 1
            written.append(row)
    return written


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
    _check_arguments(pcap_dir, image_dir, image_size, workers)
    split_files = _find_split_files(pcap_dir)
    personalities_path = os.path.join(pcap_dir, "personalities.txt")
    personalities = _read_personalities_file(pcap_dir, personalities_path)
    reports, rows_by_split = _parse_splits(split_files)
    vocabulary, added, mapped = _build_styles(personalities, rows_by_split, personalities_path)

    os.makedirs(out_dir, exist_ok=True)
    result: Dict[str, Any] = {"settings": _settings(pcap_dir, image_dir, out_dir, image_size, workers, df), "splits": {}}
    with StagedOutputs() as staged:
        written_by_split = _write_splits(rows_by_split, split_files, reports, image_dir, image_size, workers,
                                         out_dir, staged, quiet)
        with staged.open(os.path.join(out_dir, "styles.txt")) as f:
            f.write(vocabulary.to_text())
        if df:
            references: Dict[str, List[str]] = collections.defaultdict(list)
            for row in written_by_split["train"]:
                references[row.image_hash].extend(row.captions)
            result["document_frequency"] = write_document_frequency(
                list(references.values()), cleaner or CaptionCleaner(), os.path.join(out_dir, DF_FILE), staged
            )
        else:
            result["document_frequency"] = {"file": None, "skipped": "disabled (df=False / --no-df)"}
        _fill_report(result, reports, vocabulary, personalities, added, mapped)
        with staged.open(os.path.join(out_dir, "report.json")) as f:
            f.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    if not quiet:
        print(format_report(result))
    return result


def _check_arguments(pcap_dir: str, image_dir: str, image_size: int, workers: int) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise PcapError(f"image_size must be a positive integer, got {image_size!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise PcapError(f"workers must be a positive integer, got {workers!r}")
    for name, folder in (("pcap_dir", pcap_dir), ("image_dir", image_dir)):
        if not os.path.isdir(folder):
            raise PcapError(f"{name} {folder!r} is not a folder")


def _read_personalities_file(pcap_dir: str, personalities_path: str) -> List[str]:
    if not os.path.isfile(personalities_path):
        raise PcapError(f"{pcap_dir}: no personalities.txt; --pcap-dir must be the unpacked personality_captions folder")
    try:
        return read_personalities(personalities_path)
    except ValueError as e:
        raise PcapError(str(e)) from None


def _parse_splits(split_files: Dict[str, str]) -> Tuple[Dict[str, "_SplitReport"], Dict[str, List[_Row]]]:
    """Parse every split file: ({split: report}, {split: usable rows}); skipped records are counted."""
    reports: Dict[str, _SplitReport] = {}
    rows_by_split: Dict[str, List[_Row]] = {}
    for split, path in split_files.items():
        report = reports[split] = _SplitReport(split, os.path.basename(path))
        records = _load_records(path)
        report.read = len(records)
        parsed = (_parse_record(split, number, record, report) for number, record in enumerate(records))
        rows_by_split[split] = [row for row in parsed if row is not None]
    return reports, rows_by_split


def _settings(pcap_dir: str, image_dir: str, out_dir: str, image_size: int, workers: int, df: bool) -> Dict[str, Any]:
    return {
        "pcap_dir": os.path.abspath(pcap_dir),
        "image_dir": os.path.abspath(image_dir),
        "out_dir": os.path.abspath(out_dir),
        "image_size": image_size,
        "workers": workers,
        "df": df,
        "jpeg_quality": JPEG_QUALITY,
        "image_column": "base64.urlsafe_b64encode of RGB JPEG bytes",
        "reference_separator": REFERENCE_SEPARATOR,
    }


def _write_splits(rows_by_split, split_files, reports, image_dir, image_size, workers, out_dir, staged, quiet):
    """Encode the images and stage `{split}.tsv` for every split: {split: rows written}. A split none
    of whose records could be used is an error."""
    pool = multiprocessing.Pool(workers) if workers > 1 else None
    try:
        written_by_split = {}
        for split in SPLIT_FILES:
            with staged.open(os.path.join(out_dir, f"{split}.tsv")) as out:
                written_by_split[split] = _write_split(
                    rows_by_split[split], image_dir, image_size, pool, workers, out, reports[split], quiet
                )
            report = reports[split]
            if report.read and not report.written:
                reasons = ", ".join(f"{r} {n}" for r, n in report.skipped.items() if n)
                raise PcapError(
                    f"{split_files[split]}: none of its {report.read} records could be used ({reasons}); "
                    f"check --image-dir {image_dir!r} and the file itself"
                )
        return written_by_split
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _fill_report(result, reports, vocabulary, personalities, added, mapped) -> None:
    """Add the per-split counts, the style counts and the list of outputs to `result`."""
    totals: collections.Counter = collections.Counter()
    for split, report in reports.items():
        result["splits"][split] = report.to_dict()
        totals.update(report.styles)
    result["styles"] = {
        "total": len(vocabulary),
        "from_personalities": len(personalities),
        "rows_per_style": {name: totals[name] for name in vocabulary.names},
    }
    result["styles_added_from_data"] = added
    result["style_spellings_mapped"] = mapped
    outputs = [f"{split}.tsv" for split in SPLIT_FILES] + ["styles.txt"]
    if result["document_frequency"]["file"]:
        outputs.append(DF_FILE)
    result["outputs"] = outputs + ["report.json"]


def format_report(report: Dict[str, Any]) -> str:
    """Return a short human-readable summary of a prepare_pcap report."""
    lines = [f"Personality-Captions -> {report['settings']['out_dir']}"]
    lines.append(f"{'split':<6} {'source':<11} {'read':>8} {'written':>8} {'skipped':>8}")
    for split, s in report["splits"].items():
        lines.append(f"{split:<6} {s['source']:<11} {s['read']:>8} {s['written']:>8} {s['skipped_total']:>8}")
    for split, s in report["splits"].items():
        reasons = ", ".join(f"{r} {n}" for r, n in s["skipped"].items() if n)
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
    unused = [name for name, n in styles["rows_per_style"].items() if n == 0]
    if unused:
        lines.append(f"styles with no rows: {len(unused)} (e.g. {', '.join(unused[:5])})")
    df = report["document_frequency"]
    if df["file"]:
        lines.append(f"document frequency: {df['file']} ({df['documents']} images)")
    else:
        lines.append(f"document frequency: not written: {df['skipped']}")
    lines.append("wrote: " + " ".join(report["outputs"]))
    return "\n".join(lines)

"""The prepared data layout that every converter writes (`prepare-pcap`, `prepare-flickrstyle`,
`prepare-senticap`, `prepare-captions`), and the parts they share.

A prepared folder holds:
    train.tsv, valid.tsv, test.tsv: one row per line, five tab-separated columns
        uniq_id    an id unique in its split that leads back to the source (the converter says how)
        image_id   the image's name in the source
        style      the style's name exactly as in styles.txt
        captions   one caption, or (valid/test) every reference of the row joined by "&&"
        image      base64.urlsafe_b64encode of the image re-encoded as an RGB JPEG (quality 95),
                   shrunk so that its long side is at most `image_size` (aspect kept, never enlarged)
    styles.txt: one style per line; style i is the model's token <code_i>.
    train-words.p: CIDEr-D document frequencies of the train captions, grouped by image, cleaned as
        training cleans them (unless disabled).
    report.json: what was read, written and skipped (per split and reason), style counts, settings.

Captions are put on one line with single spaces and without "&&" (`caption_as_cell`); the cleaning that
training applies (case, punctuation) is `ofa_sic.data.text.CaptionCleaner`, not the converters'. Rows whose image file is missing
or cannot be decoded are skipped and counted ("missing_image", "corrupt_image"). Every output is
staged under a temporary name and renamed into place only when the whole conversion has succeeded.
"""
import base64
import collections
import io
import json
import multiprocessing
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from PIL import Image
from tqdm import tqdm

from ofa_sic.atomic_files import commit_temporary, temporary_path
from ofa_sic.data.images import ImageDecodeError, decode_image
from ofa_sic.data.styles import StyleVocabulary
from ofa_sic.data.text import REFERENCE_SEPARATOR, CaptionCleaner

SPLITS = ("train", "valid", "test")
#: The columns of a split file, in order (see the module docstring).
COLUMNS = ("uniq_id", "image_id", "style", "captions", "image")
IMAGE_SKIP_REASONS = ("missing_image", "corrupt_image")
JPEG_QUALITY = 95
DF_FILE = "train-words.p"
EXAMPLES_PER_REASON = 5

_AMPERSANDS = re.compile(r"&{2,}|^&|&$")


def split_file(folder: str, split: str) -> str:
    """`{folder}/{split}.tsv`: the file of one split of SPLITS in a prepared folder."""
    return os.path.join(folder, f"{split}.tsv")


def split_path(data_dir: str, split: str) -> str:
    """`split_file(data_dir, split)`, which must exist (FileNotFoundError saying which command writes it)."""
    path = split_file(data_dir, split)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found; `ofa-sic prepare-pcap` writes train.tsv, valid.tsv and test.tsv")
    return path


class ConversionError(ValueError):
    """The input cannot be converted (a missing file, a malformed file, a bad argument, no usable rows)."""


# ----------------------------------------------------------------------------------------------------
# Text


def caption_as_cell(text: str) -> Tuple[str, bool]:
    """Return `text` as a captions cell of the TSV: on one line with single spaces, and whether an ampersand
    had to be replaced. Only the layout is fixed; case and punctuation are left to `CaptionCleaner`.

    "&&" (or any longer run of "&") and a lone "&" at the start or end become "and", because "&&" is the
    reference separator of the captions column.
    """
    one_line = " ".join(text.split())
    fixed, replacements = _AMPERSANDS.subn(" and ", one_line)
    return " ".join(fixed.split()), replacements > 0


def is_empty(text: str) -> bool:
    """Return True when `text` has no letter or digit (empty, spaces only, or punctuation only)."""
    return not any(ch.isalnum() for ch in text)


# ----------------------------------------------------------------------------------------------------
# Images


def encode_image(path: str, image_size: int) -> str:
    """Return the image at `path` as urlsafe base64 of an RGB JPEG whose long side is at most `image_size`.

    Raises FileNotFoundError when there is no file, ImageDecodeError (with the path) when Pillow cannot decode it.
    Decoded with `ofa_sic.data.images.decode_image`: EXIF orientation applied, 16-bit grayscale scaled.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    try:
        with Image.open(path) as image:
            image.verify()
        rgb = decode_image(path)
    except PermissionError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise ImageDecodeError(f"{path}: {type(e).__name__}: {e}") from None
    width, height = rgb.size
    longest = max(width, height)
    if longest > image_size:
        scale = image_size / longest
        new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = rgb.resize(new_size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return base64.urlsafe_b64encode(buffer.getvalue()).decode("ascii")


def image_job(job: Tuple[str, int]) -> Tuple[str, str]:
    """Worker: encode one image; return ("ok", base64) or (skip reason, message)."""
    path, image_size = job
    try:
        return "ok", encode_image(path, image_size)
    except FileNotFoundError:
        return "missing_image", f"no file {path}"
    except ImageDecodeError as e:
        return "corrupt_image", str(e)


def is_safe_image_name(name: str) -> bool:
    """True for a relative image path inside the image folder: not absolute, no "..", no backslash,
    no line break or tab (it becomes the image_id column)."""
    if not name or name != name.strip() or os.path.isabs(name) or "\\" in name:
        return False
    if any(ch in name for ch in "\t\r\n"):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


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
        tmp = temporary_path(final_path)
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
                commit_temporary(tmp, final)
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
# Document frequencies (CIDEr-D)


def references_by_image(image_captions: Iterable[Tuple[str, Sequence[str]]]) -> List[List[str]]:
    """(image_id, captions) pairs -> the captions of each image, images in first-seen order: the documents
    of CIDEr-D's document frequencies (one per image, whatever the style)."""
    grouped: Dict[str, List[str]] = {}
    for image_id, captions in image_captions:
        grouped.setdefault(image_id, []).extend(captions)
    return list(grouped.values())


def write_document_frequency(references_per_image: List[List[str]], cleaner: CaptionCleaner, df_path: str,
                             staged: StagedOutputs) -> Dict[str, Any]:
    """Stage the CIDEr-D document frequencies of `references_per_image` (one list of raw captions per
    image), cleaned by `cleaner` as training will clean them, for `df_path`."""
    from ofa_sic.metrics.document_frequency import build_document_frequency, save_document_frequency

    cleaned = [[cleaner(caption) for caption in refs] for refs in references_per_image]
    df = build_document_frequency(cleaned, cleaner.settings())
    save_document_frequency(df, staged.path(df_path))
    return {"file": os.path.basename(df_path), "documents": len(references_per_image), "cleaning": cleaner.settings()}


# ----------------------------------------------------------------------------------------------------
# Rows and their reports


@dataclass
class PreparedRow:
    """One TSV row before its image is encoded.

    `sources` name the source items merged into the row in the converter's own terms (a record's
    position, a caption's key): one for a train row, one per reference for a valid/test row of a
    caption-per-item source. A skipped row counts `len(sources)` skipped items.
    """

    uniq_id: str
    image_id: str
    image_file: str  # path relative to the image folder
    style: str
    captions: List[str]
    sources: Tuple[Any, ...]


class SplitReport:
    """Counts of one split: items read, rows written, items skipped per reason (with a few examples),
    references per row and rows per style. `image_key` names the image in the skip examples."""

    def __init__(self, split: str, source: str, reasons: Sequence[str], image_key: str = "image") -> None:
        self.split = split
        self.source = source
        self.image_key = image_key
        self.read = 0
        self.written = 0
        self.skipped = collections.Counter({reason: 0 for reason in reasons})
        self.examples: Dict[str, List[Dict[str, Any]]] = collections.defaultdict(list)
        self.references_per_row: collections.Counter = collections.Counter()
        self.styles: collections.Counter = collections.Counter()

    def skip(self, reason: str, number: Any, image: Any, detail: str, items: int = 1) -> None:
        """Count `items` skipped source items (the first is `number`) and keep the first few as examples."""
        if reason not in self.skipped:
            raise KeyError(f"skip reason {reason!r} is not one of {sorted(self.skipped)}")
        self.skipped[reason] += items
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            self.examples[reason].append({"row": number, self.image_key: image, "detail": detail})

    def count_written(self, row: PreparedRow) -> None:
        self.written += 1
        self.references_per_row[len(row.captions)] += 1
        self.styles[row.style] += 1

    def to_dict(self) -> Dict[str, Any]:
        return {
            "source": self.source,
            "read": self.read,
            "written": self.written,
            "skipped_total": sum(self.skipped.values()),
            "skipped": dict(self.skipped),
            "skipped_examples": dict(self.examples),
            "references_per_row": {str(k): v for k, v in sorted(self.references_per_row.items())},
            "styles": dict(sorted(self.styles.items(), key=lambda kv: (-kv[1], kv[0]))),
        }


@dataclass
class LayoutOptions:
    """How a converter writes the layout: `image_size` bounds the long side of the stored images,
    `workers` > 1 encodes images in that many processes, `df` asks for train-words.p cleaned by
    `cleaner` (default: OFA's cleaning), `quiet` hides the progress bars and the summary."""

    image_size: int = 480
    workers: int = 1
    df: bool = True
    cleaner: Optional[CaptionCleaner] = None
    quiet: bool = False

    def check(self) -> None:
        for name in ("image_size", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConversionError(f"{name} must be a positive integer, got {value!r}")

    def settings(self) -> Dict[str, Any]:
        """The report's record of these options and of the layout's fixed choices."""
        return {
            "image_size": self.image_size,
            "workers": self.workers,
            "df": self.df,
            "jpeg_quality": JPEG_QUALITY,
            "image_column": "base64.urlsafe_b64encode of RGB JPEG bytes",
            "reference_separator": REFERENCE_SEPARATOR,
        }


def check_folders(**folders: str) -> None:
    """Raise ConversionError naming the argument whose folder does not exist."""
    for name, folder in folders.items():
        if not os.path.isdir(folder):
            raise ConversionError(f"{name} {folder!r} is not a folder")


# ----------------------------------------------------------------------------------------------------
# Writing


def _write_split(rows: List[PreparedRow], image_dir: str, options: LayoutOptions, pool, out,
                 report: SplitReport) -> List[PreparedRow]:
    """Encode the images of `rows`, write their TSV lines to `out`; return the rows written.

    Each distinct image is encoded once; its base64 is kept only until the last row using it is written.
    """
    remaining = collections.Counter(row.image_file for row in rows)
    unique = list(remaining)  # first-appearance order, which is the order the rows need them
    jobs = [(os.path.join(image_dir, name), options.image_size) for name in unique]
    if pool is None:
        results: Iterator[Tuple[str, str]] = map(image_job, jobs)
    else:
        chunksize = max(1, min(64, len(jobs) // (options.workers * 8)))
        results = pool.imap(image_job, jobs, chunksize=chunksize)
    encoded: Dict[str, Tuple[str, str]] = {}
    written = []
    with tqdm(total=len(unique), desc=f"{report.split} images", unit="img", disable=options.quiet) as progress:
        for row in rows:
            if row.image_file not in encoded:
                encoded[row.image_file] = next(results)
                progress.update()
            status, payload = encoded[row.image_file]
            remaining[row.image_file] -= 1
            if remaining[row.image_file] == 0:
                encoded[row.image_file] = (status, "")  # free the base64; the image stays marked as done
            if status != "ok":
                report.skip(status, row.sources[0], row.image_id, payload, items=len(row.sources))
                continue
            captions = REFERENCE_SEPARATOR.join(row.captions)
            out.write(f"{row.uniq_id}\t{row.image_id}\t{row.style}\t{captions}\t{payload}\n")
            report.count_written(row)
            written.append(row)
    return written


def _write_splits(rows_by_split: Dict[str, List[PreparedRow]], reports: Dict[str, SplitReport],
                  sources: Dict[str, str], image_dir: str, options: LayoutOptions, out_dir: str,
                  staged: StagedOutputs) -> Dict[str, List[PreparedRow]]:
    """Encode the images and stage `{split}.tsv` for every split: {split: rows written}. A split that
    read something but could use none of it is an error naming `sources[split]`."""
    pool = multiprocessing.Pool(options.workers) if options.workers > 1 else None
    try:
        written_by_split = {}
        for split in SPLITS:
            report = reports[split]
            with staged.open(split_file(out_dir, split)) as out:
                written_by_split[split] = _write_split(rows_by_split[split], image_dir, options, pool, out, report)
            if report.read and not report.written:
                reasons = skip_counts(report.skipped)
                raise ConversionError(
                    f"{sources[split]}: none of its {report.read} records could be used ({reasons}); "
                    f"check --image-dir {image_dir!r} and the file itself"
                )
        return written_by_split
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def write_layout(out_dir: str, rows_by_split: Dict[str, List[PreparedRow]], reports: Dict[str, SplitReport],
                 sources: Dict[str, str], vocabulary: StyleVocabulary, image_dir: str, options: LayoutOptions,
                 result: Dict[str, Any], style_details: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Write the whole prepared layout to `out_dir` (staged: a failure writes nothing) and return `result`
    completed with "splits", "document_frequency", "styles" (`style_details` added) and "outputs".

    `rows_by_split` holds the rows of every split of SPLITS, styles already in `vocabulary`'s spelling;
    `sources[split]` names the split's input in errors. `result` should hold the converter's "settings"
    and any converter-specific counts; report.json is `result`.
    """
    os.makedirs(out_dir, exist_ok=True)
    result.setdefault("splits", {})
    with StagedOutputs() as staged:
        written = _write_splits(rows_by_split, reports, sources, image_dir, options, out_dir, staged)
        with staged.open(os.path.join(out_dir, "styles.txt")) as f:
            f.write(vocabulary.to_text())
        if options.df:
            references = references_by_image((row.image_id, row.captions) for row in written["train"])
            result["document_frequency"] = write_document_frequency(
                references, options.cleaner or CaptionCleaner(), os.path.join(out_dir, DF_FILE), staged
            )
        else:
            result["document_frequency"] = {"file": None, "skipped": "disabled (df=False / --no-df)"}
        totals: collections.Counter = collections.Counter()
        for split, report in reports.items():
            result["splits"][split] = report.to_dict()
            totals.update(report.styles)
        result["styles"] = {"total": len(vocabulary), **(style_details or {}),
                            "rows_per_style": {name: totals[name] for name in vocabulary.names}}
        outputs = [f"{split}.tsv" for split in SPLITS] + ["styles.txt"]
        if result["document_frequency"]["file"]:
            outputs.append(DF_FILE)
        result["outputs"] = outputs + ["report.json"]
        with staged.open(os.path.join(out_dir, "report.json")) as f:
            f.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def skip_counts(skipped: Dict[str, int]) -> str:
    """"reason n, reason n" for the reasons with skips ("" when nothing was skipped)."""
    return ", ".join(f"{reason} {n}" for reason, n in skipped.items() if n)


def format_layout_summary(report: Dict[str, Any]) -> List[str]:
    """The lines every converter's summary ends with: styles, document frequencies, outputs."""
    lines = []
    unused = [name for name, n in report["styles"]["rows_per_style"].items() if n == 0]
    if unused:
        lines.append(f"styles with no rows: {len(unused)} (e.g. {', '.join(unused[:5])})")
    df = report["document_frequency"]
    if df["file"]:
        lines.append(f"document frequency: {df['file']} ({df['documents']} images)")
    else:
        lines.append(f"document frequency: not written: {df['skipped']}")
    lines.append("wrote: " + " ".join(report["outputs"]))
    return lines

"""Convert FlickrStyle10K (humorous and romantic captions of Flickr8k images) to the prepared layout.

Input:
    FLICKRSTYLE_DIR/humor/funny_train.txt and humor/train.p, romantic/romantic_train.txt and
        romantic/train.p (the unpacked FlickrStyle_v0.9.zip). train.p is a Python 2 protocol-0 pickle
        of a list of image file names; caption line i belongs to name i.
    IMAGE_DIR/{name}: the Flickr8k images (Flicker8k_Dataset).
    Optional FACTUAL_CAPTIONS: Flickr8k.token.txt, lines "{name}#{k}<TAB>{caption}", for a `factual`
        style (the captions of the FlickrStyle images only).
    Optional SPLIT_FILE: one line per image, "{name} {split}" (split train, valid or val, test).

The release's quirks, each handled by a stated rule and counted in report.json ("files"):
- train.p is read by the project's restricted unpickler (`ofa_sic.safe_pickle`): no code runs, and a
  pickle that holds anything but a list of names is refused;
- CRLF line ends are taken as line ends ("crlf_lines"); the last line has no line break and is kept
  whole ("unterminated_last_line");
- a line that is not UTF-8 is decoded as GBK (the release's one such line holds a GBK full-width
  comma, bytes A3 AC) and folded to ASCII forms by Unicode NFKC ("gbk_lines"); a line that is neither
  is decoded as UTF-8 with U+FFFD for the bad bytes ("replaced_lines");
- stray spaces are collapsed ("whitespace_normalized" in the split's fixes) and a final " ." is
  attached to the last word ("final_period_attached"); case is kept (training's cleaning lowercases);
- a caption file whose line count differs from its pickle's name count is refused with both numbers.

Split: the images (the union of both styles' names) are ranked by the SHA-256 of their file name; the
first 1/7 go to test, the next 2/35 to valid, the rest to train (1,000 / 400 / 5,600 of 7,000, the sizes
papers use). The rule needs no seed and no file order, keeps an image in one split for every style,
and gives the same split to anyone with the same names. `split_file` replaces it with a published list.
"""
import hashlib
import os
import unicodedata
from typing import Any, Dict, List, Optional, Tuple

from ofa_sic.data.caption_items import CaptionCollector, format_caption_report, split_reports
from ofa_sic.data.prepared_layout import (
    SPLITS, ConversionError, LayoutOptions, check_folders, format_layout_summary, write_layout,
)
from ofa_sic.data.styles import StyleVocabulary
from ofa_sic.safe_pickle import load_plain_pickle

#: style -> (folder, caption file) in the release
STYLE_FILES = {"humorous": ("humor", "funny_train.txt"), "romantic": ("romantic", "romantic_train.txt")}
NAMES_FILE = "train.p"
FACTUAL = "factual"
TEST_SHARE, VALID_SHARE = 1000 / 7000, 400 / 7000
SPLIT_NAMES = {"train": "train", "valid": "valid", "val": "valid", "test": "test"}


# ----------------------------------------------------------------------------------------------------
# Reading the release


def read_lines(path: str, stats: Dict[str, Any]) -> List[str]:
    """The lines of a caption file, decoded and with their line ends removed (see the module docstring);
    `stats` gets the counts of the rules applied."""
    with open(path, "rb") as f:
        data = f.read()
    raw_lines = data.split(b"\n")
    stats["unterminated_last_line"] = raw_lines[-1] != b""
    if not stats["unterminated_last_line"]:
        raw_lines.pop()
    stats.update(lines=len(raw_lines), crlf_lines=0, gbk_lines=0, replaced_lines=0)
    lines = []
    for raw in raw_lines:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
            stats["crlf_lines"] += 1
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            try:
                line = unicodedata.normalize("NFKC", raw.decode("gbk"))
                stats["gbk_lines"] += 1
            except UnicodeDecodeError:
                line = raw.decode("utf-8", errors="replace")
                stats["replaced_lines"] += 1
        lines.append(line)
    return lines


def read_names(path: str) -> List[str]:
    """The image names of a train.p, read without running code; ConversionError if it is not a list of names."""
    try:
        with open(path, "rb") as f:
            names = load_plain_pickle(f, encoding="utf-8")
    except Exception as e:  # UnsafePickleError, a truncated or garbled file
        raise ConversionError(f"{path}: not a plain pickle of image names ({type(e).__name__}: {e})") from None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ConversionError(f"{path}: expected a pickled list of image file names, found {type(names).__name__}")
    return names


def default_split(names: List[str]) -> Dict[str, str]:
    """{name: split} by the SHA-256 rank rule of the module docstring."""
    ranked = sorted(set(names), key=lambda name: (hashlib.sha256(name.encode("utf-8")).hexdigest(), name))
    n_test, n_valid = round(len(ranked) * TEST_SHARE), round(len(ranked) * VALID_SHARE)
    return {name: ("test" if i < n_test else "valid" if i < n_test + n_valid else "train")
            for i, name in enumerate(ranked)}


def read_split_file(path: str) -> Dict[str, str]:
    """{name: split} of a split list: lines "{name} {split}"; a bad line is an error naming it."""
    splits: Dict[str, str] = {}
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1].lower() not in SPLIT_NAMES:
                raise ConversionError(f"{path}:{number}: expected '<image name> <train|valid|test>', got {line.strip()!r}")
            if splits.get(fields[0], SPLIT_NAMES[fields[1].lower()]) != SPLIT_NAMES[fields[1].lower()]:
                raise ConversionError(f"{path}:{number}: {fields[0]} is listed in two splits")
            splits[fields[0]] = SPLIT_NAMES[fields[1].lower()]
    return splits


def read_factual(path: str, wanted: set) -> Tuple[Dict[str, List[str]], Dict[str, int]]:
    """({name: captions} of Flickr8k.token.txt for the names in `wanted`, counts)."""
    captions: Dict[str, List[str]] = {}
    counts = {"lines": 0, "used": 0, "other_images": 0}
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            counts["lines"] += 1
            key, tab, caption = line.rstrip("\r\n").partition("\t")
            if not tab or "#" not in key:
                raise ConversionError(f"{path}:{number}: expected '<image name>#<k><TAB><caption>', got {line.strip()!r}")
            name = key.rsplit("#", 1)[0]
            if name not in wanted:
                counts["other_images"] += 1
                continue
            captions.setdefault(name, []).append(caption)
            counts["used"] += 1
    return captions, counts


def attach_final_period(text: str) -> Tuple[str, Tuple[str, ...]]:
    """"a dog runs ." -> "a dog runs.", with the name of the fix made (none for other texts)."""
    stripped = text.rstrip()
    if stripped.endswith(" .") and len(stripped.split()) > 1:
        return stripped[:-2].rstrip() + ".", ("final_period_attached",)
    return text, ()


# ----------------------------------------------------------------------------------------------------
# The converter


def prepare_flickrstyle(flickrstyle_dir: str, image_dir: str, out_dir: str, factual_captions: Optional[str] = None,
                        split_file: Optional[str] = None, options: Optional[LayoutOptions] = None) -> Dict[str, Any]:
    """Convert FlickrStyle10K to the prepared layout in `out_dir`; return the report (also report.json).

    Styles: humorous, romantic (and factual with `factual_captions`). Raises ConversionError for
    unusable input before anything is written.
    """
    options = options or LayoutOptions()
    options.check()
    check_folders(flickrstyle_dir=flickrstyle_dir, image_dir=image_dir)
    for path in (factual_captions, split_file):
        if path is not None and not os.path.isfile(path):
            raise ConversionError(f"{path} is not a file")
    files: Dict[str, Any] = {}
    styled: Dict[str, List[Tuple[str, str, str]]] = {}  # style -> [(key, name, line)]
    for style, (folder, caption_file) in STYLE_FILES.items():
        names_path, lines_path = (os.path.join(flickrstyle_dir, folder, name) for name in (NAMES_FILE, caption_file))
        for path in (names_path, lines_path):
            if not os.path.isfile(path):
                raise ConversionError(f"{flickrstyle_dir}: no {folder}/{os.path.basename(path)}; --flickrstyle-dir "
                                      "must be the unpacked FlickrStyle_v0.9 folder (humor/, romantic/)")
        names = read_names(names_path)
        stats: Dict[str, Any] = {"names": len(names)}
        lines = read_lines(lines_path, stats)
        if len(lines) != len(names):
            raise ConversionError(f"{lines_path}: {len(lines)} caption lines but {names_path} holds {len(names)} "
                                  "image names; line i must belong to name i (is one of them from another release?)")
        files[f"{folder}/{caption_file}"] = stats
        styled[style] = [(f"{folder}-{i}", name, line) for i, (name, line) in enumerate(zip(names, lines))]

    all_names = list(dict.fromkeys(name for items in styled.values() for _, name, _ in items))
    result: Dict[str, Any] = {"settings": {
        "flickrstyle_dir": os.path.abspath(flickrstyle_dir), "image_dir": os.path.abspath(image_dir),
        "out_dir": os.path.abspath(out_dir), "factual_captions": factual_captions and os.path.abspath(factual_captions),
        "split_file": split_file and os.path.abspath(split_file), **options.settings()}, "files": files}
    split_of = _assign_splits(all_names, split_file, result)
    styles = list(STYLE_FILES)
    if factual_captions:
        factual, counts = read_factual(factual_captions, set(all_names))
        counts["images_without_factual"] = sum(1 for name in all_names if name not in factual)
        result["factual"] = counts
        styled[FACTUAL] = [(f"factual-{name}#{k}", name, caption)
                           for name in all_names for k, caption in enumerate(factual.get(name, []))]
        styles.append(FACTUAL)

    reports = split_reports("FlickrStyle10K")
    collector = CaptionCollector(reports)
    not_in_split = result.setdefault("not_in_split_file", {"captions": 0, "examples": []})
    for style in styles:
        for key, name, line in styled[style]:
            if name not in split_of:
                not_in_split["captions"] += 1
                if len(not_in_split["examples"]) < 5:
                    not_in_split["examples"].append(key)
                continue
            text, fixes = attach_final_period(line)
            collector.add(split_of[name], key, name, style, text, fixes)
    vocabulary = StyleVocabulary(styles)
    sources = {split: f"{flickrstyle_dir} ({split} split)" for split in SPLITS}
    write_layout(out_dir, collector.rows(), reports, sources, vocabulary, image_dir, options, result)
    if not options.quiet:
        print(format_report(result))
    return result


def _assign_splits(names: List[str], split_file: Optional[str], result: Dict[str, Any]) -> Dict[str, str]:
    """{name: split} by `split_file` or the default rule; records the rule and image counts in `result`."""
    if split_file is None:
        split_of = default_split(names)
        result["split_rule"] = "sha256 rank of the file name: first 1/7 test, next 2/35 valid, rest train"
    else:
        listed = read_split_file(split_file)
        split_of = {name: listed[name] for name in names if name in listed}
        result["split_rule"] = f"split file {os.path.basename(split_file)}"
        result["split_file_names_unused"] = sum(1 for name in listed if name not in set(names))
    result["images_per_split"] = {split: sum(1 for s in split_of.values() if s == split) for split in SPLITS}
    return split_of


def format_report(report: Dict[str, Any]) -> str:
    """A short human-readable summary of a prepare_flickrstyle report."""
    lines = format_caption_report(f"FlickrStyle10K -> {report['settings']['out_dir']} ({report['split_rule']})", report)
    for name, stats in report["files"].items():
        lines.append(f"  {name}: {stats['lines']} lines, {stats['crlf_lines']} CRLF, {stats['gbk_lines']} GBK-decoded, "
                     f"{stats['replaced_lines']} with undecodable bytes replaced, "
                     f"last line {'unterminated' if stats['unterminated_last_line'] else 'terminated'}")
    if report["not_in_split_file"]["captions"]:
        lines.append(f"  not in the split file: {report['not_in_split_file']['captions']} captions")
    if "factual" in report:
        f = report["factual"]
        lines.append(f"  factual: {f['used']} captions used, {f['images_without_factual']} images without any")
    return "\n".join(lines + format_layout_summary(report))

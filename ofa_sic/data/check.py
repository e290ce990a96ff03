"""Checks of a prepared data folder, run before any work (`ofa-sic check-data DIR`, and the task at start-up).

Every problem of a split is collected, with its file and line, and reported together:
- a row without exactly 5 tab-separated columns (uniq_id, image_id, style, captions, image);
- a UTF-8 byte-order mark (it would become part of a uniq_id) or bytes that are not UTF-8;
- an empty uniq_id or image column;
- a style that styles.txt does not have;
- an empty caption (no letter or digit; training would learn an empty target) or, in valid/test rows,
  an empty reference among the `&&`-joined ones (it would be scored as a reference);
- several references in a training row of cross-entropy training.
The check reads only the short columns of each row (the image column is skipped through the row
index), so it takes seconds on PCap's training split.
"""
import os
from dataclasses import dataclass
from typing import List

from ofa_sic.data.prepared_layout import COLUMNS, SPLITS, is_empty, split_file
from ofa_sic.data.styles import StyleVocabulary, UnknownStyleError
from ofa_sic.data.text import REFERENCE_SEPARATOR
from ofa_sic.data.tsv_reader import IndexedTSV

UTF8_BOM = b"\xef\xbb\xbf"
#: Problems of one file shown in a start-up error; `ofa-sic check-data` lists them all.
SHOWN_PER_FILE = 20


@dataclass(frozen=True)
class DataProblem:
    path: str
    line: int  # 1-based; 0 for a problem of the whole file
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


class DataCheckError(ValueError):
    """Problems found in a data file before the work started; the message lists them."""

    def __init__(self, problems: List[DataProblem]):
        self.problems = problems
        shown = problems[:SHOWN_PER_FILE]
        lines = [f"{len(problems)} problem(s) in the data, found before any work started:"]
        lines += [f"  {problem}" for problem in shown]
        if len(problems) > len(shown):
            lines.append(f"  ... and {len(problems) - len(shown)} more")
        folder = os.path.dirname(problems[0].path) or "."
        lines.append(f"Fix the rows (or rerun `ofa-sic prepare-pcap`); `ofa-sic check-data {folder}` lists every problem.")
        super().__init__("\n".join(lines))


def check_split(path: str, styles: StyleVocabulary, multiple_references: bool,
                styles_origin: str = "styles.txt") -> List[DataProblem]:
    """Every problem of the TSV file at `path`; `multiple_references` for valid/test (and SCST) rows;
    `styles_origin` says where `styles` come from (the data's styles.txt or a checkpoint)."""
    rows = IndexedTSV(path, num_columns=len(COLUMNS))
    problems: List[DataProblem] = []
    for index in range(len(rows)):
        line = rows.line_number(index)

        def report(message: str) -> None:
            problems.append(DataProblem(path, line, message))

        if rows.num_fields(index) != len(COLUMNS):
            report(f"expected {len(COLUMNS)} tab-separated columns ({', '.join(COLUMNS)}), found {rows.num_fields(index)}")
            continue
        raw = rows.head(index, len(COLUMNS))
        if raw[0].startswith(UTF8_BOM):
            report("starts with a UTF-8 byte-order mark, which would become part of the uniq_id; save the file without it")
            raw[0] = raw[0][len(UTF8_BOM):]
        try:
            uniq_id, _, style, captions = (field.decode("utf-8") for field in raw[:4])
        except UnicodeDecodeError as error:
            report(f"not valid UTF-8 ({error})")
            continue
        if not uniq_id.strip():
            report("empty uniq_id")
        if not raw[4]:
            report("empty image column")
        try:
            styles.index(style)
        except UnknownStyleError as error:
            report(f"{error} ({styles_origin})")
        for message in caption_problems(captions, multiple_references):
            report(message)
    return problems


def caption_problems(captions: str, multiple_references: bool) -> List[str]:
    """What is wrong with a row's captions column (nothing: []): several references where training takes
    one (not `multiple_references`), an empty caption, an empty reference among several. The rules of a
    row's captions, for this check and for the dataset that reads the row."""
    parts = captions.split(REFERENCE_SEPARATOR)
    if not multiple_references and len(parts) > 1:
        return [f"{len(parts)} references in a training row; cross-entropy training takes one caption per row"]
    if len(parts) == 1 and is_empty(captions):
        return [f"empty caption {captions!r}: no letter or digit (training would learn an empty target)"]
    return [f"reference {number} of {len(parts)} is empty ({reference!r}); remove it and its {REFERENCE_SEPARATOR!r}"
            for number, reference in enumerate(parts, start=1) if is_empty(reference)]


def check_data_folder(folder: str) -> List[DataProblem]:
    """Every problem of styles.txt and train/valid/test.tsv in `folder` (missing files included)."""
    styles_path = os.path.join(folder, "styles.txt")
    if not os.path.isfile(styles_path):
        return [DataProblem(styles_path, 0, "not found; `ofa-sic prepare-pcap` writes it beside the TSV files")]
    try:
        styles = StyleVocabulary.load(styles_path)
    except ValueError as error:
        return [DataProblem(styles_path, 0, str(error))]
    problems: List[DataProblem] = []
    for split in SPLITS:
        path = split_file(folder, split)
        if not os.path.isfile(path):
            problems.append(DataProblem(path, 0, "not found"))
            continue
        problems += check_split(path, styles, multiple_references=split != "train")
    return problems

"""The style and caption columns of a prepared TSV, read without touching the images.

Used where only the text matters (style classifier training, diversity's training-caption set,
scoring a fairseq-generate output): each line is split at its first four tabs, so the base64 image
column is never parsed or decoded.
"""
from dataclasses import dataclass
from typing import List

from ofa_sic.data.prepared_layout import COLUMNS
from ofa_sic.data.text import REFERENCE_SEPARATOR


@dataclass
class CaptionRow:
    """One TSV row: its style name (as in styles.txt) and its caption(s), uncleaned."""

    style: str
    captions: List[str]


def read_caption_rows(tsv_path: str) -> List[CaptionRow]:
    """Every row of a prepared TSV in file order; `captions` splits the `&&`-joined references.

    Empty lines are not rows (as `IndexedTSV` counts them); a row with fewer than five columns or an
    empty style is an error naming the file and line.
    """
    style_column, captions_column = COLUMNS.index("style"), COLUMNS.index("captions")
    rows = []
    with open(tsv_path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            fields = line.split("\t", len(COLUMNS) - 1)
            if len(fields) < len(COLUMNS) or not fields[style_column].strip():
                raise ValueError(
                    f"{tsv_path}, line {line_number}: expected {len(COLUMNS)} tab-separated columns "
                    f"({', '.join(COLUMNS)}) with a style; write the file with `ofa-sic prepare-pcap`"
                )
            rows.append(CaptionRow(fields[style_column], fields[captions_column].split(REFERENCE_SEPARATOR)))
    return rows

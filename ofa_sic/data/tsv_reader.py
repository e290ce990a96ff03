"""Random access to the rows of a TSV file through a cached byte-offset index.

The index (byte offset, line number and number of tabs of every row) is built in one pass and saved beside the TSV as
`{tsv}.idx.npy` together with the TSV's size and modification time; it is rebuilt when the TSV
changes. Rows are read with one `seek` each, so fairseq can shuffle, shard across ranks, resume
mid-epoch and use `--num-workers > 0` (each worker opens its own file handle).
"""
import json
import os
import tempfile
from typing import List

import numpy as np


class MalformedRowError(ValueError):
    """A TSV row that does not have the expected number of columns."""


INDEX_FORMAT = 3  # [num_rows, 3] = (byte offset, line number, number of tab characters)


def _file_signature(path: str) -> dict:
    stat = os.stat(path)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "format": INDEX_FORMAT}


def build_offsets(path: str) -> np.ndarray:
    """Byte offset, 1-based line number and tab count of every row of `path`: int64 [num_rows, 3].

    Empty lines (nothing but the line break) are not rows; a line of spaces or tabs is a (malformed) row.
    """
    rows = []
    position = 0
    with open(path, "rb") as f:
        for line_number, line in enumerate(f, start=1):
            if line.rstrip(b"\r\n"):
                rows.append((position, line_number, line.count(b"\t")))
            position += len(line)
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def load_or_build_offsets(path: str) -> np.ndarray:
    """The cached offsets of `path`, rebuilt (and saved atomically) when missing or stale."""
    index_path = path + ".idx.npy"
    meta_path = path + ".idx.json"
    signature = _file_signature(path)
    try:
        with open(meta_path) as f:
            if json.load(f) == signature:
                return np.load(index_path, allow_pickle=False)
    except (OSError, ValueError):
        pass
    offsets = build_offsets(path)
    # Written without ofa_sic.atomic_files, so that this module needs numpy only (benchmarks load it alone);
    # a cache file that a crash left broken fails np.load and is rebuilt.
    directory = os.path.dirname(os.path.abspath(path))
    try:
        with tempfile.NamedTemporaryFile(dir=directory, suffix=".npy", delete=False) as tmp:
            np.save(tmp, offsets)
        os.replace(tmp.name, index_path)
        with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".json", delete=False) as tmp:
            json.dump(signature, tmp)
        os.replace(tmp.name, meta_path)
    except OSError:
        pass  # read-only data directory: keep the index in memory only
    return offsets


class IndexedTSV:
    """Rows of a tab-separated file by index: `tsv[i]` -> list of `num_columns` strings."""

    def __init__(self, path: str, num_columns: int):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} does not exist")
        self.path = path
        self.num_columns = num_columns
        self.offsets = load_or_build_offsets(path)
        self._file = None
        self._pid = None

    def __len__(self) -> int:
        return len(self.offsets)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None  # file handles are opened per process
        return state

    def _handle(self):
        if self._file is None or self._pid != os.getpid():
            self._file = open(self.path, "rb")
            self._pid = os.getpid()
        return self._file

    def line_number(self, index: int) -> int:
        """1-based line number of row `index` in the file."""
        return int(self.offsets[index, 1])

    def num_fields(self, index: int) -> int:
        """Number of tab-separated fields of row `index` (from the index; the row is not read)."""
        return int(self.offsets[index, 2]) + 1

    def head(self, index: int, count: int) -> List[bytes]:
        """The first `count` tab-separated fields of row `index`, undecoded, reading only as far as they go.

        Fewer fields come back when the row has fewer. Cheap for rows whose last column is a large image.
        """
        handle = self._handle()
        handle.seek(int(self.offsets[index, 0]))
        data = b""
        while True:
            chunk = handle.read(4096)
            data += chunk
            end = data.find(b"\n")
            if end >= 0:
                data = data[:end].rstrip(b"\r")
            if not chunk or end >= 0 or data.count(b"\t") >= count:
                return data.split(b"\t")[:count]

    def __getitem__(self, index: int) -> List[str]:
        handle = self._handle()
        handle.seek(int(self.offsets[index, 0]))
        line = handle.readline().decode("utf-8").rstrip("\r\n")
        fields = line.split("\t")
        if len(fields) != self.num_columns:
            raise MalformedRowError(
                f"{self.path}, line {self.line_number(index)}: expected {self.num_columns} tab-separated columns, found "
                f"{len(fields)} (starts with {line[:60]!r}); regenerate the file with `ofa-sic prepare-pcap`"
            )
        return fields

    def column(self, column: int) -> List[str]:
        """All values of one column, reading the file sequentially (for small splits, e.g. references)."""
        return [self[i][column] for i in range(len(self))]

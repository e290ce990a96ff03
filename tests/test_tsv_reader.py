"""IndexedTSV: random access by byte offset, per-process file handles, the cached offset index, bad rows."""
import functools
import multiprocessing
import operator
import os
import pickle
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ofa_sic.data import tsv_reader
from ofa_sic.data.tsv_reader import IndexedTSV, MalformedRowError


def make_rows(n, seed=0):
    """`n` rows of 3 columns with varied lengths and multi-byte characters (offsets are in bytes)."""
    rng = random.Random(seed)
    words = ["cat", "dög", "naïve", "日本", "émoji🙂", "x", "a b c"]
    return [[f"id-{i}", " ".join(rng.choice(words) for _ in range(rng.randint(0, 12))), "z" * rng.randint(1, 300)] for i in range(n)]


def write_tsv(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        for row in rows:
            f.write("\t".join(row) + "\n")
    return str(path)


def list_rows(batch):
    """DataLoader collate_fn: keep the rows as they are."""
    return batch


@pytest.fixture
def tsv(tmp_path):
    rows = make_rows(300)
    return write_tsv(tmp_path / "rows.tsv", rows), rows


def test_random_access_returns_the_right_row_for_shuffled_indices(tsv):
    path, rows = tsv
    reader = IndexedTSV(path, num_columns=3)
    assert len(reader) == len(rows)
    order = list(range(len(rows)))
    random.Random(1).shuffle(order)
    for i in order:
        assert reader[i] == rows[i]
    assert reader[-1] == rows[-1]  # numpy-style negative index, as the offsets array allows
    assert reader.column(0) == [row[0] for row in rows]


def test_last_row_without_newline_and_crlf_line_ends(tmp_path):
    path = tmp_path / "crlf.tsv"
    path.write_bytes(b"a\tb\r\nc\td\r\ne\tf")
    reader = IndexedTSV(str(path), num_columns=2)
    assert [reader[i] for i in range(len(reader))] == [["a", "b"], ["c", "d"], ["e", "f"]]


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        IndexedTSV(str(tmp_path / "nope.tsv"), num_columns=3)


def test_rows_read_identically_in_forked_dataloader_workers(tmp_path):
    # Rows longer than the 8 KB read buffer, like image rows: a handle shared across processes
    # (one file offset) would interleave the workers' seeks and reads and return wrong rows.
    rng = random.Random(2)
    rows = [[f"id-{i}", "ö" * rng.randint(0, 50), rng.choice("abcdef") * rng.randint(8_000, 30_000)] for i in range(400)]
    path = write_tsv(tmp_path / "long_rows.tsv", rows)
    reader = IndexedTSV(path, num_columns=3)
    assert reader[5] == rows[5]  # the parent opens its handle before the workers fork
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0)).tolist()
    loader = DataLoader(reader, batch_size=16, sampler=order, num_workers=2, collate_fn=list_rows)
    seen = [row for batch in loader for row in batch]
    assert seen == [rows[i] for i in order]
    assert reader[7] == rows[7]  # the parent's handle still reads its own rows correctly


def test_rows_read_identically_in_spawned_processes_after_pickling(tsv):
    path, rows = tsv
    reader = IndexedTSV(path, num_columns=3)
    assert reader[3] == rows[3]
    state = reader.__getstate__()
    assert state["_file"] is None  # an open handle is never pickled
    clone = pickle.loads(pickle.dumps(reader))
    assert [clone[i] for i in (299, 0, 150)] == [rows[299], rows[0], rows[150]]
    assert np.array_equal(clone.offsets, reader.offsets)

    indices = list(range(len(rows)))[::-1]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        seen = pool.map(functools.partial(operator.getitem, reader), indices, chunksize=20)
    assert seen == [rows[i] for i in indices]


def test_offset_cache_is_written_beside_the_file_and_reused(tsv, monkeypatch):
    path, rows = tsv
    IndexedTSV(path, num_columns=3)
    index_path, meta_path = path + ".idx.npy", path + ".idx.json"
    assert os.path.exists(index_path) and os.path.exists(meta_path)
    offsets = np.load(index_path)
    assert offsets.dtype == np.int64 and len(offsets) == len(rows)
    mtime = os.stat(index_path).st_mtime_ns

    def must_not_rebuild(_path):
        raise AssertionError("the offsets were rebuilt although the TSV did not change")

    monkeypatch.setattr(tsv_reader, "build_offsets", must_not_rebuild)
    reader = IndexedTSV(path, num_columns=3)
    assert len(reader) == len(rows) and reader[42] == rows[42]
    assert os.stat(index_path).st_mtime_ns == mtime
    assert sorted(os.listdir(os.path.dirname(path))) == sorted(
        os.path.basename(p) for p in (path, index_path, meta_path)
    )  # no temporary files left behind


def test_offset_cache_is_rebuilt_when_a_row_is_appended(tsv):
    path, rows = tsv
    assert len(IndexedTSV(path, num_columns=3)) == len(rows)
    with open(path, "a", encoding="utf-8") as f:
        f.write("id-new\tappended row\tzzz\n")
    reader = IndexedTSV(path, num_columns=3)
    assert len(reader) == len(rows) + 1
    assert reader[len(rows)] == ["id-new", "appended row", "zzz"]
    assert len(np.load(path + ".idx.npy")) == len(rows) + 1  # the cache on disk is updated too


def test_offset_cache_is_rebuilt_when_the_tsv_is_rewritten_with_the_same_size(tmp_path):
    path = str(tmp_path / "same_size.tsv")
    with open(path, "wb") as f:
        f.write(b"ab\tc\nd\te\n")
    assert IndexedTSV(path, num_columns=2)[1] == ["d", "e"]
    before = os.stat(path)
    with open(path, "wb") as f:
        f.write(b"a\tc\nde\te\n")  # same size, different row boundaries
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 2_000_000_000))
    assert os.stat(path).st_size == before.st_size
    reader = IndexedTSV(path, num_columns=2)
    assert [reader[0], reader[1]] == [["a", "c"], ["de", "e"]]


def test_a_corrupt_cache_is_rebuilt(tsv):
    path, rows = tsv
    IndexedTSV(path, num_columns=3)
    with open(path + ".idx.json", "w") as f:
        f.write("{not json")
    reader = IndexedTSV(path, num_columns=3)
    assert len(reader) == len(rows) and reader[10] == rows[10]


def test_malformed_row_names_the_file_and_row_number(tmp_path):
    rows = [["1", "a", "x"], ["2", "b", "y"], ["3", "only two"], ["4", "d", "w"]]
    path = tmp_path / "bad.tsv"
    path.write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    reader = IndexedTSV(str(path), num_columns=3)
    assert reader[1] == rows[1] and reader[3] == rows[3]  # other rows stay readable
    with pytest.raises(MalformedRowError) as info:
        reader[2]
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert str(path) in message
    assert "line 3" in message
    assert "expected 3" in message and "found 2" in message

    too_many = tmp_path / "too_many.tsv"
    too_many.write_text("1\ta\tx\n2\tb\ty\textra\n", encoding="utf-8")
    with pytest.raises(MalformedRowError, match=r"too_many\.tsv, line 2: .*found 4"):
        IndexedTSV(str(too_many), num_columns=3)[1]


def test_empty_lines_are_skipped_and_errors_give_the_file_line(tmp_path):
    path = tmp_path / "blank.tsv"
    path.write_text("\n1\ta\tx\n\n\n2\tb\ty\n\t\t\n3\tc\tz\n\n", encoding="utf-8")
    reader = IndexedTSV(str(path), num_columns=3)
    assert len(reader) == 4  # a line of tabs is a row (with empty columns), not a blank line
    assert [reader[i] for i in (0, 1, 3)] == [["1", "a", "x"], ["2", "b", "y"], ["3", "c", "z"]]
    assert reader[2] == ["", "", ""]
    assert [reader.line_number(i) for i in range(4)] == [2, 5, 6, 7]
    spaces = tmp_path / "spaces.tsv"
    spaces.write_text("1\ta\tx\n\n   \n", encoding="utf-8")
    with pytest.raises(MalformedRowError, match=r"spaces\.tsv, line 3: .*found 1"):
        IndexedTSV(str(spaces), num_columns=3)[1]

"""prepare-captions on hand-made .jsonl and .csv captions files."""
import csv
import json

import pytest
from PIL import Image

from helpers import ofa_sic
from ofa_sic.data.captions_file import prepare_captions
from ofa_sic.data.prepared_layout import ConversionError, LayoutOptions

QUIET = LayoutOptions(image_size=32, quiet=True)
RECORDS = [
    {"image": "a.jpg", "style": "Happy", "caption": "yay", "split": "train"},  # 0
    {"image": "a.jpg", "style": "happy ", "caption": "  so   fun ", "split": "train"},  # 1: spelling, spaces
    {"image": "b.jpg", "style": "Gloomy", "caption": "meh", "split": "val"},  # 2
    {"image": "sub/c.jpg", "style": "Gloomy", "caption": "dark, cold", "split": "test", "extra": 1},  # 3
    {"image": "sub/c.jpg", "style": "Gloomy", "caption": "bleak", "split": "test"},  # 4
    {"image": "sub/c.jpg", "style": "Happy", "caption": "bright", "split": "test"},  # 5
    {"image": "d.jpg", "style": "Happy", "caption": "...", "split": "train"},  # 6: empty
    {"image": "e.jpg", "style": "Happy", "caption": "x", "split": "dev"},  # 7: no such split
    {"image": "m.jpg", "style": "Happy", "caption": "gone", "split": "train"},  # 8: no image file
    {"image": "z.jpg", "style": "Happy", "caption": 5, "split": "test"},  # 9: not a string
]


def make_images(root):
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "sub/c.jpg", "d.jpg", "e.jpg", "z.jpg"):
        Image.new("RGB", (20, 10), (0, 90, 0)).save(images / name, format="JPEG")
    return str(images)


def read_rows(path):
    return [line.split("\t")[:4] for line in path.read_text(encoding="utf-8").splitlines()]


def test_jsonl_records_are_checked_grouped_and_counted(tmp_path):
    images = make_images(tmp_path)
    path = tmp_path / "captions.jsonl"
    lines = [json.dumps(r) for r in RECORDS]
    path.write_text("\n".join(lines[:3] + [""] + lines[3:]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    report = prepare_captions(str(path), images, str(out), options=QUIET)

    assert report["records"] == 10
    assert report["records_without_split"] == {"records": 1, "examples": [{"line": 9, "split": "dev"}]}
    assert report["fields_ignored"] == ["extra"]
    assert report["style_spellings_mapped"] == {"happy ": "Happy"}
    train, valid, test = (report["splits"][s] for s in ("train", "valid", "test"))
    assert (train["read"], train["captions_written"], train["written"]) == (4, 2, 2)
    assert {k: v for k, v in train["skipped"].items() if v} == {"empty_caption": 1, "missing_image": 1}
    assert train["fixes"] == {"whitespace_normalized": 1}
    assert (valid["read"], valid["captions_written"], valid["written"]) == (1, 1, 1)
    assert (test["read"], test["captions_written"], test["written"]) == (4, 3, 2)
    assert {k: v for k, v in test["skipped"].items() if v} == {"missing_field": 1}
    assert report["styles"] == {"total": 2, "rows_per_style": {"Happy": 3, "Gloomy": 2}}
    assert json.loads((out / "report.json").read_text(encoding="utf-8")) == report
    assert (out / "styles.txt").read_text(encoding="utf-8") == "Happy\nGloomy\n"
    assert read_rows(out / "train.tsv") == [["train-0", "a.jpg", "Happy", "yay"], ["train-1", "a.jpg", "Happy", "so fun"]]
    assert read_rows(out / "valid.tsv") == [["valid-2", "b.jpg", "Gloomy", "meh"]]
    assert read_rows(out / "test.tsv") == [["test-3", "sub/c.jpg", "Gloomy", "dark, cold&&bleak"],
                                           ["test-5", "sub/c.jpg", "Happy", "bright"]]


def test_csv_gives_the_same_rows_as_jsonl(tmp_path):
    images = make_images(tmp_path)
    usable = [r for r in RECORDS if isinstance(r["caption"], str)]
    with open(tmp_path / "captions.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "style", "caption", "split", "extra"])
        writer.writeheader()
        writer.writerows(usable)
    (tmp_path / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in usable), encoding="utf-8")
    prepare_captions(str(tmp_path / "captions.csv"), images, str(tmp_path / "csv"), options=QUIET)
    prepare_captions(str(tmp_path / "captions.jsonl"), images, str(tmp_path / "jsonl"), options=QUIET)
    for name in ("train.tsv", "valid.tsv", "test.tsv", "styles.txt"):
        assert (tmp_path / "csv" / name).read_bytes() == (tmp_path / "jsonl" / name).read_bytes()


def test_malformed_files_name_the_file_and_line(tmp_path):
    images = make_images(tmp_path)
    (tmp_path / "bad.jsonl").write_text(json.dumps(RECORDS[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(ConversionError, match=r"bad.jsonl:2: not a JSON object"):
        prepare_captions(str(tmp_path / "bad.jsonl"), images, str(tmp_path / "out"), options=QUIET)
    (tmp_path / "bad.csv").write_text("image,caption,split\na.jpg,hi,train\n", encoding="utf-8")
    with pytest.raises(ConversionError, match=r"bad.csv:1: the header lacks style"):
        prepare_captions(str(tmp_path / "bad.csv"), images, str(tmp_path / "out"), options=QUIET)
    (tmp_path / "captions.txt").write_text("", encoding="utf-8")
    with pytest.raises(ConversionError, match=r"is .jsonl or .csv"):
        prepare_captions(str(tmp_path / "captions.txt"), images, str(tmp_path / "out"), options=QUIET)


def test_cli_prepare_captions(tmp_path):
    images = make_images(tmp_path)
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS[:6]), encoding="utf-8")
    code, out, err = ofa_sic("prepare-captions", "--captions", tmp_path / "c.jsonl", "--image-dir", images,
                             "--out", tmp_path / "out", "--image-size", "32")
    assert code == 0, err
    assert "style spellings mapped: 'happy ' -> 'Happy'" in out

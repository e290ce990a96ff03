"""prepare-senticap on a hand-made senticap_dataset folder with the release's quirks."""
import json

import pytest
from PIL import Image

from helpers import ofa_sic
from ofa_sic.data.prepared_layout import ConversionError, LayoutOptions
from ofa_sic.data.senticap import prepare_senticap

A, B, C, D, E = (f"COCO_val2014_{i:012d}.jpg" for i in (389081, 1, 2, 3, 4))
QUIET = LayoutOptions(image_size=32, quiet=True)


def sentence(raw, sentiment):
    return {"tokens": raw.lower().split(), "word_sentiment": [0] * len(raw.split()), "sentiment": sentiment, "raw": raw}


def entry(imgid, split, filename, *sentences):
    return {"imgid": imgid, "sentences": list(sentences), "split": split, "filename": filename}


ENTRIES = [
    entry(0, "train", A, sentence("a happy dog", 1), sentence("a sad\r\ndog", 0)),  # 0: "\r\n" in raw
    entry(1, "val", B, sentence("nice bird", 1), sentence("lovely bird", 1)),  # 1
    entry(2, "test", C, sentence("great cake", 1), sentence("tasty cake", 1)),  # 2
    entry(2, "test", C, sentence("awful cake", 0), sentence("stale cake", 0), sentence("great cake", 1)),  # 3: same image
    entry(3, "test", D, sentence("dark room", 0)),  # 4: no image file
    entry(4, "train", E, sentence("bright sun", 1), sentence("what?", 2)),  # 5: corrupt image, bad sentiment
    entry(5, "restval", A, sentence("not a split", 1)),  # 6
    entry(6, "train", A, sentence("a happy dog", 1), {"tokens": ["no", "raw"], "sentiment": 1}),  # 7: duplicate, no raw
    entry(7, "val", "../etc/passwd", sentence("sneaky", 1)),  # 8
]


def make_release(root, entries=ENTRIES):
    release, images = root / "senticap_dataset", root / "val2014"
    (release / "data").mkdir(parents=True)
    (release / "data" / "senticap_dataset.json").write_text(json.dumps({"images": entries}), encoding="utf-8")
    images.mkdir()
    for i, name in enumerate((A, B, C)):
        Image.new("RGB", (40, 40), (60 * i, 10, 200)).save(images / name, format="JPEG")
    (images / E).write_bytes(b"\xff\xd8 truncated")
    return str(release), str(images)


def read_rows(path):
    return [line.split("\t")[:4] for line in path.read_text(encoding="utf-8").splitlines()]


def test_release_quirks_are_handled_and_every_count_reported(tmp_path):
    release, images = make_release(tmp_path)
    assert "\\r\\n" in (tmp_path / "senticap_dataset" / "data" / "senticap_dataset.json").read_text()
    out = tmp_path / "out"
    report = prepare_senticap(release, images, str(out), options=QUIET)

    assert report["entries"] == {"read": 9, "per_split": {"train": 3, "valid": 2, "test": 3}}
    assert report["entries_skipped"] == {
        "entries": 1, "sentences": 1, "examples": [{"entry": 6, "detail": "no train/val/test split or no sentences list"}]}
    assert report["images_per_split"] == {"train": 2, "valid": 2, "test": 2}
    assert report["entries_sharing_an_image"] == 2 and report["images_in_several_splits"] == 0
    train, valid, test = (report["splits"][s] for s in ("train", "valid", "test"))
    assert (train["read"], train["captions_written"], train["written"], train["skipped_total"]) == (6, 2, 2, 4)
    assert {k: v for k, v in train["skipped"].items() if v} == {
        "missing_field": 1, "bad_sentiment": 1, "duplicate_caption": 1, "corrupt_image": 1}
    assert train["fixes"] == {"whitespace_normalized": 1}
    assert (valid["read"], valid["captions_written"], valid["written"]) == (3, 2, 1)
    assert {k: v for k, v in valid["skipped"].items() if v} == {"bad_image_name": 1}
    assert (test["read"], test["captions_written"], test["written"]) == (6, 4, 2)
    assert {k: v for k, v in test["skipped"].items() if v} == {"duplicate_caption": 1, "missing_image": 1}
    assert test["references_per_row"] == {"2": 2}
    for split in (train, valid, test):
        assert split["read"] == split["captions_written"] + split["skipped_total"]
    assert report["styles"] == {"total": 2, "rows_per_style": {"positive": 3, "negative": 2}}
    assert json.loads((out / "report.json").read_text(encoding="utf-8")) == report

    assert (out / "styles.txt").read_text(encoding="utf-8") == "positive\nnegative\n"
    assert read_rows(out / "train.tsv") == [["train-0.0", A, "positive", "a happy dog"],
                                            ["train-0.1", A, "negative", "a sad dog"]]
    assert read_rows(out / "valid.tsv") == [["valid-1.0", B, "positive", "nice bird&&lovely bird"]]
    assert read_rows(out / "test.tsv") == [["test-2.0", C, "positive", "great cake&&tasty cake"],
                                           ["test-3.0", C, "negative", "awful cake&&stale cake"]]


def test_a_file_without_the_images_list_is_refused(tmp_path):
    release, images = make_release(tmp_path)
    (tmp_path / "senticap_dataset" / "data" / "senticap_dataset.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ConversionError, match="senticap_dataset.json: expected an object with an 'images' list"):
        prepare_senticap(release, images, str(tmp_path / "out"), options=QUIET)


def test_cli_prepare_senticap(tmp_path):
    release, images = make_release(tmp_path)
    code, out, err = ofa_sic("prepare-senticap", "--senticap-dir", release, "--image-dir", images,
                             "--out", tmp_path / "out", "--image-size", "32")
    assert code == 0, err
    assert "SentiCap" in out and "2 share an image" in out
    code, _, err = ofa_sic("prepare-senticap", "--senticap-dir", tmp_path, "--image-dir", images, "--out", tmp_path / "o")
    assert code == 2 and "no data/senticap_dataset.json" in err

"""The demo data in the FlickrStyle10K, SentiCap and captions-file layouts, through their converters."""
import json
import pickle

import pytest

from helpers import ofa_sic, run_command, train_script_command, train_script_env
from ofa_sic.data import demo
from ofa_sic.data.caption_rows import read_caption_rows
from ofa_sic.data.check import check_data_folder

SIZES = {"n_train": 24, "n_valid": 4, "n_test": 6}


def convert(tmp_path, layout, **sizes):
    """(demo summary, prepared folder, report) of the demo in `layout`, converted by its `ofa-sic` command."""
    summary = demo.make_demo_data(str(tmp_path / "raw"), seed=2, quiet=True, layout=layout, **(sizes or SIZES))
    data = tmp_path / "data"
    code, _, err = ofa_sic(*summary["prepare_command"], "--out", data, "--image-size", "64")
    assert code == 0, err
    assert check_data_folder(str(data)) == []
    return summary, data, json.loads((data / "report.json").read_text(encoding="utf-8"))


def assert_captions_describe_their_images(data, attributes):
    """Every reference of every row says what its image shows ("two red circles on gray")."""
    for split in ("train", "valid", "test"):
        image_ids = [line.split("\t")[1] for line in (data / f"{split}.tsv").read_text(encoding="utf-8").splitlines()]
        for image_id, row in zip(image_ids, read_caption_rows(str(data / f"{split}.tsv"))):
            obj, bg = demo.describe(attributes[image_id])
            assert all(obj in c and bg in c for c in row.captions), (image_id, row)


def test_flickrstyle_layout_has_the_release_format_and_converts(tmp_path):
    summary, data, report = convert(tmp_path, "flickrstyle")
    release = tmp_path / "raw" / "FlickrStyle_v0.9"
    names = pickle.loads((release / "humor" / "train.p").read_bytes())
    assert (release / "humor" / "train.p").read_bytes().startswith(b"(lp0\nV")  # Python 2 protocol 0, unicode
    text = (release / "romantic" / "romantic_train.txt").read_bytes()
    assert text.count(b"\r\n") == len(names) - 1 and not text.endswith(b"\n")
    assert len(names) == 34 and summary["images"] == 34
    assert report["images_per_split"] == {"train": 27, "valid": 2, "test": 5}  # 34 / 7 and 34 * 2 / 35, rounded
    assert report["factual"]["used"] == 5 * 34
    written = {split: s["captions_written"] for split, s in report["splits"].items()}
    assert written == {"train": 27 * 7, "valid": 2 * 7, "test": 5 * 7}  # humorous + romantic + 5 factual per image
    assert [s["written"] for s in report["splits"].values()] == [27 * 7, 2 * 3, 5 * 3]
    assert (data / "styles.txt").read_text().splitlines() == ["humorous", "romantic", "factual"]
    assert_captions_describe_their_images(data, json.loads((tmp_path / "raw" / "attributes.json").read_text()))


def test_senticap_layout_repeats_test_images_per_polarity_and_converts(tmp_path):
    summary, data, report = convert(tmp_path, "senticap")
    entries = json.loads((tmp_path / "raw" / "senticap_dataset" / "data" / "senticap_dataset.json").read_text())["images"]
    test_entries = [e for e in entries if e["split"] == "test"]
    assert len(test_entries) == 12 and len({e["imgid"] for e in test_entries}) == 6
    assert report["entries_sharing_an_image"] == 6
    assert [s["written"] for s in report["splits"].values()] == [24 * 3, 4, 12]
    assert report["splits"]["test"]["references_per_row"] == {"3": 12}
    assert_captions_describe_their_images(data, json.loads((tmp_path / "raw" / "attributes.json").read_text()))


def test_captions_layout_converts(tmp_path):
    summary, data, report = convert(tmp_path, "captions", n_train=10, n_valid=5, n_test=5, train_references=2)
    assert [s["written"] for s in report["splits"].values()] == [20, 5, 5]
    assert report["splits"]["test"]["references_per_row"] == {"5": 5}
    assert (data / "styles.txt").read_text().splitlines() == list(demo.STYLES)
    assert_captions_describe_their_images(data, json.loads((tmp_path / "raw" / "attributes.json").read_text()))


def test_unknown_layout_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="layout must be pcap or one of flickrstyle, senticap, captions"):
        demo.make_demo_data(str(tmp_path), quiet=True, layout="coco")


def test_a_converted_layout_trains_with_fairseq_train(tmp_path):
    """Two updates of run_scripts/train_caption.sh (validation with CIDEr included) on converted SentiCap data."""
    summary, data, _ = convert(tmp_path, "senticap", n_train=16, n_valid=2, n_test=2)
    save_dir = tmp_path / "ckpt"
    result = run_command(train_script_command(2), env=train_script_env({"data": data, "bpe": summary["bpe_dir"]}, save_dir))
    log = result.stdout + result.stderr
    assert "num_updates 2" in log and "valid on 'valid' subset" in log
    assert (save_dir / "checkpoint_last.pt").exists()

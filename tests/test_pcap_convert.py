"""The PCap converter on tiny hand-made PCap folders with known defects."""
import base64
import io
import json
import os

import pytest
from PIL import Image

from ofa_sic.cli.main import main
from ofa_sic.data import prepared_layout
from ofa_sic.data.pcap import PcapError, caption_as_cell, prepare_pcap

PERSONALITIES = "Positive Traits\nHappy\nEarnest (Enthusiastic)\n\nNegative Traits\nSarcastic\nGloomy\n"
HASH = "{:032x}".format  # HASH(7) -> a 32-character hex hash


def rec(image_hash, personality, comment, extra=None):
    """A PCap record; `extra` becomes additional_comments (test)."""
    record = {"personality": personality, "comment": comment, "image_hash": image_hash}
    if extra is not None:
        record["additional_comments"] = extra
    return record


def write_image(folder, image_hash, size=(100, 50), color=(200, 20, 20)):
    Image.new("RGB", size, color).save(os.path.join(folder, image_hash + ".jpg"), format="JPEG")


def make_pcap(root, train, val, test, val_name="val.json", personalities=PERSONALITIES, images=None):
    """Write a PCap folder and an image folder under `root`; images: {hash: size}, default every hash."""
    pcap_dir, image_dir = root / "personality_captions", root / "images"
    pcap_dir.mkdir()
    image_dir.mkdir()
    for name, records in (("train.json", train), (val_name, val), ("test.json", test)):
        (pcap_dir / name).write_text(json.dumps(records), encoding="utf-8")
    (pcap_dir / "personalities.txt").write_text(personalities, encoding="utf-8")
    if images is None:
        images = {h: (100, 50) for h in (r.get("image_hash") for r in train + val + test) if isinstance(h, str) and "/" not in h}
    for image_hash, size in images.items():
        write_image(str(image_dir), image_hash, size)
    return str(pcap_dir), str(image_dir)


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f]


def simple_dataset(root, **kwargs):
    train = [rec(HASH(1), "Happy", "a bright day!"), rec(HASH(2), "Gloomy", "grey skies...")]
    val = [rec(HASH(3), "Sarcastic", "oh, wonderful.")]
    test = [rec(HASH(4), "Happy", "so fun!", ["yay!", "great", "love it", "nice"])]
    return make_pcap(root, train, val, test, **kwargs)


def test_clean_caption():
    assert caption_as_cell("  two\tcats \n on  a mat ") == ("two cats on a mat", False)
    assert caption_as_cell("salt&&pepper") == ("salt and pepper", True)
    assert caption_as_cell("rock &") == ("rock and", True)
    assert caption_as_cell("& roll") == ("and roll", True)
    assert caption_as_cell("fish & chips") == ("fish & chips", False)
    assert caption_as_cell("a &&& b") == ("a and b", True)


def test_conversion_with_defects_counts_every_skip_exactly(tmp_path):
    short_hash = "ab12" * 7 + "cd"  # 30 characters: PCap hashes are not all MD5-length
    train = [
        rec(HASH(0), "Happy", "What a  lovely\tday!"),  # 0 kept
        rec(HASH(1), "Earnest", "so eager to go"),  # 1 kept, glossed name by head word
        rec(HASH(2), "Crude", "ugh, whatever"),  # 2 kept, trait not in personalities.txt
        rec(HASH(3), "Happy", "no image for me"),  # 3 missing_image
        rec(HASH(4), "Happy", "broken file"),  # 4 corrupt_image (not an image)
        rec(HASH(5), "Gloomy", "[DISCONNECT]"),  # 5 junk_comment
        rec(HASH(6), "Gloomy", "   "),  # 6 empty_comment
        {"comment": "no style", "image_hash": HASH(7)},  # 7 missing_field
        rec(HASH(8), "Sarcastic", "cats&&dogs\tplay\n here"),  # 8 kept, && replaced
        rec(HASH(9), "Happy", "half a jpeg"),  # 9 corrupt_image (truncated)
        rec(short_hash, "happy ", "short hash is fine"),  # 10 kept
        rec("../etc/passwd", "Happy", "sneaky"),  # 11 bad_image_hash
        rec(HASH(12), "Gloomy", "..."),  # 12 empty_comment (no letters)
        rec(HASH(13), "Gloomy", "gone [TIMEOUT] now"),  # 13 junk_comment
        rec(HASH(14), "Happy", 5),  # 14 missing_field (not a string)
    ]
    val = [rec(HASH(20), "Sarcastic", "oh joy."), rec(HASH(21), "crude", "meh")]
    test = [
        rec(HASH(30), "Happy", "yay!", ["fun!", "great!", "wow!", "nice!"]),
        rec(HASH(31), "Gloomy", "sad.", ["[TIMEOUT]", "", "bleak.", "dark&&cold"]),
        rec(HASH(32), "Gloomy", "[RETURNED]", ["a", "b", "c", "d"]),
        rec(HASH(33), "Gloomy", "no refs"),  # missing_field: test record without additional_comments
    ]
    pcap_dir, image_dir = make_pcap(tmp_path, train, val, test)
    os.remove(os.path.join(image_dir, HASH(3) + ".jpg"))
    with open(os.path.join(image_dir, HASH(4) + ".jpg"), "wb") as f:
        f.write(b"this is not a jpeg")
    full = io.BytesIO()
    Image.new("RGB", (300, 200), (0, 0, 255)).save(full, format="JPEG")
    with open(os.path.join(image_dir, HASH(9) + ".jpg"), "wb") as f:
        f.write(full.getvalue()[: len(full.getvalue()) // 2])

    out = tmp_path / "out"
    report = prepare_pcap(pcap_dir, image_dir, str(out), image_size=32, quiet=True)

    train_report = report["splits"]["train"]
    assert (train_report["read"], train_report["written"], train_report["skipped_total"]) == (15, 5, 10)
    assert train_report["skipped"] == {
        "missing_field": 2, "bad_image_hash": 1, "empty_comment": 2, "junk_comment": 2, "missing_image": 1, "corrupt_image": 2,
    }
    assert train_report["ampersand_replaced"] == 1
    assert [e["row"] for e in train_report["skipped_examples"]["corrupt_image"]] == [4, 9]
    test_report = report["splits"]["test"]
    assert (test_report["read"], test_report["written"]) == (4, 2)
    assert test_report["skipped"]["junk_comment"] == 1 and test_report["skipped"]["missing_field"] == 1
    assert test_report["junk_reference_dropped"] == 2
    assert test_report["ampersand_replaced"] == 1
    assert test_report["references_per_row"] == {"3": 1, "5": 1}

    # Styles: personalities.txt order, then the data-only trait; spellings mapped to the list's.
    assert (out / "styles.txt").read_text(encoding="utf-8").splitlines() == [
        "Happy", "Earnest (Enthusiastic)", "Sarcastic", "Gloomy", "Crude"]
    assert report["styles_added_from_data"] == ["Crude"]
    assert report["style_spellings_mapped"] == {"Earnest": "Earnest (Enthusiastic)", "crude": "Crude", "happy": "Happy"}
    assert report["styles"]["rows_per_style"] == {
        "Happy": 3, "Earnest (Enthusiastic)": 1, "Sarcastic": 2, "Gloomy": 1, "Crude": 2}
    assert json.loads((out / "report.json").read_text(encoding="utf-8")) == report

    rows = read_tsv(out / "train.tsv")
    assert [r[:4] for r in rows] == [
        ["train-0", HASH(0), "Happy", "What a lovely day!"],
        ["train-1", HASH(1), "Earnest (Enthusiastic)", "so eager to go"],
        ["train-2", HASH(2), "Crude", "ugh, whatever"],
        ["train-8", HASH(8), "Sarcastic", "cats and dogs play here"],
        ["train-10", short_hash, "Happy", "short hash is fine"],
    ]
    test_rows = read_tsv(out / "test.tsv")
    assert [r[3] for r in test_rows] == ["yay!&&fun!&&great!&&wow!&&nice!", "sad.&&bleak.&&dark and cold"]
    assert [r[2] for r in read_tsv(out / "valid.tsv")] == ["Sarcastic", "Crude"]
    assert all(len(r) == 5 for r in rows + test_rows)


def test_images_are_shrunk_never_enlarged_and_decode_with_urlsafe_base64(tmp_path):
    train = [rec(HASH(1), "Happy", "wide"), rec(HASH(2), "Happy", "tall"), rec(HASH(3), "Happy", "tiny")]
    val = [rec(HASH(4), "Happy", "grey")]
    test = [rec(HASH(5), "Happy", "rgba", ["a", "b", "c", "d"])]
    pcap_dir, image_dir = make_pcap(tmp_path, train, val, test, images={
        HASH(1): (300, 100), HASH(2): (90, 301), HASH(3): (20, 10), HASH(4): (64, 64), HASH(5): (50, 40)})
    Image.new("L", (64, 64), 128).save(os.path.join(image_dir, HASH(4) + ".jpg"), format="JPEG")
    Image.new("RGBA", (50, 40), (0, 255, 0, 100)).save(os.path.join(image_dir, HASH(5) + ".jpg"), format="PNG")
    out = tmp_path / "out"
    prepare_pcap(pcap_dir, image_dir, str(out), image_size=60, df=False, quiet=True)
    sizes = {}
    for split in ("train", "valid", "test"):
        for row in read_tsv(out / f"{split}.tsv"):
            assert "+" not in row[4] and "/" not in row[4]  # the urlsafe alphabet
            image = Image.open(io.BytesIO(base64.urlsafe_b64decode(row[4])))
            assert image.format == "JPEG" and image.mode == "RGB"
            sizes[row[1]] = image.size
    assert sizes == {HASH(1): (60, 20), HASH(2): (18, 60), HASH(3): (20, 10), HASH(4): (60, 60), HASH(5): (50, 40)}


@pytest.mark.parametrize("val_name", ["val.json", "valid.json"])
def test_validation_file_may_be_val_or_valid(tmp_path, val_name):
    pcap_dir, image_dir = simple_dataset(tmp_path, val_name=val_name)
    report = prepare_pcap(pcap_dir, image_dir, str(tmp_path / "out"), image_size=32, quiet=True)
    assert report["splits"]["valid"]["source"] == val_name
    assert read_tsv(tmp_path / "out" / "valid.tsv")[0][:4] == ["valid-0", HASH(3), "Sarcastic", "oh, wonderful."]


def test_missing_or_doubled_validation_file_is_an_error(tmp_path):
    pcap_dir, image_dir = simple_dataset(tmp_path)
    (tmp_path / "personality_captions" / "valid.json").write_text("[]", encoding="utf-8")
    with pytest.raises(PcapError, match="both val.json and valid.json exist"):
        prepare_pcap(pcap_dir, image_dir, str(tmp_path / "out"), quiet=True)
    os.remove(os.path.join(pcap_dir, "val.json"))
    os.remove(os.path.join(pcap_dir, "valid.json"))
    with pytest.raises(PcapError, match="no val.json or valid.json"):
        prepare_pcap(pcap_dir, image_dir, str(tmp_path / "out"), quiet=True)
    assert not (tmp_path / "out").exists()


def test_malformed_json_names_the_file_and_line(tmp_path):
    pcap_dir, image_dir = simple_dataset(tmp_path)
    (tmp_path / "personality_captions" / "test.json").write_text('[\n{"personality": "Happy",,}\n]', encoding="utf-8")
    with pytest.raises(PcapError, match=r"test.json: not valid JSON \(line 2"):
        prepare_pcap(pcap_dir, image_dir, str(tmp_path / "out"), quiet=True)
    (tmp_path / "personality_captions" / "test.json").write_text('[["Happy", "x", "y"]]', encoding="utf-8")
    with pytest.raises(PcapError, match="test.json: record 0 is a list"):
        prepare_pcap(pcap_dir, image_dir, str(tmp_path / "out"), quiet=True)


def test_failure_midway_leaves_no_output_and_keeps_old_files(tmp_path, monkeypatch):
    pcap_dir, image_dir = simple_dataset(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.tsv").write_text("old\n", encoding="utf-8")
    real_job = prepared_layout.image_job

    def failing_job(job):
        if job[0].endswith(HASH(3) + ".jpg"):  # the valid split's image: train.tsv is finished by now
            raise RuntimeError("disk on fire")
        return real_job(job)

    monkeypatch.setattr(prepared_layout, "image_job", failing_job)
    with pytest.raises(RuntimeError, match="disk on fire"):
        prepare_pcap(pcap_dir, image_dir, str(out), image_size=32, quiet=True)
    assert sorted(os.listdir(out)) == ["train.tsv"]
    assert (out / "train.tsv").read_text(encoding="utf-8") == "old\n"


def test_no_usable_rows_is_an_error_that_points_at_the_image_dir(tmp_path):
    pcap_dir, _ = simple_dataset(tmp_path)
    empty = tmp_path / "wrong_images"
    empty.mkdir()
    with pytest.raises(PcapError, match=r"train.json: none of its 2 records could be used \(missing_image 2\); check --image-dir"):
        prepare_pcap(pcap_dir, str(empty), str(tmp_path / "out"), quiet=True)
    assert os.listdir(tmp_path / "out") == []


def test_bad_arguments(tmp_path):
    pcap_dir, image_dir = simple_dataset(tmp_path)
    with pytest.raises(PcapError, match="image_size must be a positive integer"):
        prepare_pcap(pcap_dir, image_dir, str(tmp_path / "out"), image_size=0)
    with pytest.raises(PcapError, match="workers must be a positive integer"):
        prepare_pcap(pcap_dir, image_dir, str(tmp_path / "out"), workers=0)
    with pytest.raises(PcapError, match="image_dir .* is not a folder"):
        prepare_pcap(pcap_dir, str(tmp_path / "nope"), str(tmp_path / "out"))


def test_document_frequencies_use_clean_train_references_grouped_by_image(tmp_path):
    from ofa_sic.metrics.document_frequency import build_document_frequency, load_document_frequency

    train = [rec(HASH(1), "Happy", "A Bright, day!"), rec(HASH(2), "Gloomy", "grey..."), rec(HASH(1), "Gloomy", "Dull  day.")]
    pcap_dir, image_dir = make_pcap(tmp_path, train, [rec(HASH(3), "Happy", "x")], [rec(HASH(4), "Happy", "y", ["a", "b", "c", "d"])])
    out = tmp_path / "out"
    report = prepare_pcap(pcap_dir, image_dir, str(out), image_size=32, quiet=True)
    expected = build_document_frequency([["a bright day", "dull day"], ["grey"]])
    written = load_document_frequency(str(out / "train-words.p"))
    assert dict(written["document_frequency"]) == dict(expected["document_frequency"])
    assert written["ref_len"] == 2
    assert report["document_frequency"] == {"file": "train-words.p", "documents": 2,
                                           "cleaning": {"keep_punctuation": False, "keep_case": False}}

    out3 = tmp_path / "out3"
    report = prepare_pcap(pcap_dir, image_dir, str(out3), image_size=32, df=False, quiet=True)
    assert not (out3 / "train-words.p").exists() and "disabled" in report["document_frequency"]["skipped"]

def test_worker_pool_gives_the_same_files(tmp_path):
    train = [rec(HASH(i), "Happy", f"picture {i}") for i in range(40)] + [rec(HASH(3), "Gloomy", "again")]
    pcap_dir, image_dir = make_pcap(tmp_path, train, [rec(HASH(50), "Happy", "v")], [rec(HASH(51), "Happy", "t", ["a", "b", "c", "d"])])
    os.remove(os.path.join(image_dir, HASH(7) + ".jpg"))
    one = prepare_pcap(pcap_dir, image_dir, str(tmp_path / "one"), image_size=32, df=False, quiet=True)
    two = prepare_pcap(pcap_dir, image_dir, str(tmp_path / "two"), image_size=32, workers=2, df=False, quiet=True)
    for name in ("train.tsv", "valid.tsv", "test.tsv", "styles.txt"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert one["splits"] == two["splits"]
    assert one["splits"]["train"]["written"] == 40  # 41 rows, one image missing


def test_cli_prepare_pcap(tmp_path, capsys):
    pcap_dir, image_dir = simple_dataset(tmp_path)
    out = tmp_path / "out"
    code = main(["prepare-pcap", "--pcap-dir", pcap_dir, "--image-dir", image_dir, "--out", str(out),
                 "--image-size", "32", "--no-df"])
    assert code == 0
    assert "train  train.json" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["report.json", "styles.txt", "test.tsv", "train.tsv", "valid.tsv"]

    code = main(["prepare-pcap", "--pcap-dir", str(tmp_path / "missing"), "--image-dir", image_dir, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("ofa-sic prepare-pcap: error: pcap_dir") and "Traceback" not in err

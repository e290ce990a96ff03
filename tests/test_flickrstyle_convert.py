"""prepare-flickrstyle on a hand-made FlickrStyle_v0.9 folder with the release's quirks."""
import base64
import hashlib
import io
import json
import os
import pickle

import pytest
from PIL import Image

from helpers import ofa_sic
from ofa_sic.data.flickrstyle import prepare_flickrstyle
from ofa_sic.data.prepared_layout import ConversionError, LayoutOptions

N = [f"100000000{i}_{i:010x}.jpg" for i in range(7)]  # Flickr8k-like names
HUMOR = [b"A dog jumps over a fence .", b"  two  cats   plan a heist", b"", b"the bird tells jokes",
         b"salt&&pepper shaker stand-up", b"the man laughs at his own shadow", b"not in the split"]
ROMANTIC = [b"a dog jumps to meet his love", b"two cats in love\xa3\xacforever", b"caf\xff dreams",
            b"the bird sings for its mate", b"romance on the beach", b"the man dreams of his love", b"x"]
FACTUAL = [f"{N[0]}#0\tA dog jumps .", f"{N[0]}#1\tA brown dog leaps", f"{N[3]}#0\tA bird on a branch",
           f"{N[3]}#1\tA bird on a branch", f"{N[4]}#0\tA beach at sunset", "other.jpg#0\twhatever"]
SPLITS = f"{N[0]} train\n{N[1]} train\n{N[2]} TRAIN\n\n{N[3]} val\n{N[4]} test\n{N[5]} test\nghost.jpg train\n"
QUIET = LayoutOptions(image_size=32, quiet=True)


def python2_pickle(names):
    """What Python 2's pickle.dump(names, f) (protocol 0) writes for a list of unicode names, by hand."""
    body = b"".join(b"V" + name.encode("ascii") + b"\np%d\na" % (i + 1) for i, name in enumerate(names))
    return b"(lp0\n" + body + b"."


def make_release(root, humor=HUMOR, romantic=ROMANTIC):
    """FlickrStyle_v0.9 (CRLF, no final line break, GBK and undecodable bytes), Flicker8k_Dataset with
    N[2] missing and N[5] corrupt, Flickr8k.token.txt and a split file."""
    release, images = root / "FlickrStyle_v0.9", root / "Flicker8k_Dataset"
    for folder in ("humor", "romantic"):
        (release / folder).mkdir(parents=True)
    (release / "humor" / "train.p").write_bytes(pickle.dumps(N[:len(humor)], protocol=0))
    (release / "romantic" / "train.p").write_bytes(python2_pickle(N[:len(romantic)]))
    (release / "humor" / "funny_train.txt").write_bytes(b"\r\n".join(humor))
    (release / "romantic" / "romantic_train.txt").write_bytes(b"\r\n".join(romantic))
    images.mkdir()
    for i, name in enumerate(N):
        if i != 2:
            Image.new("RGB", (64, 48), (20 * i, 100, 50)).save(images / name, format="JPEG")
    (images / N[5]).write_bytes(b"not a jpeg at all")
    (root / "Flickr8k.token.txt").write_text("\n".join(FACTUAL) + "\n", encoding="utf-8")
    (root / "splits.txt").write_text(SPLITS, encoding="utf-8")
    return str(release), str(images)


def read_rows(path):
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_pickles_are_python_2_protocol_0(tmp_path):
    release, _ = make_release(tmp_path)
    for folder in ("humor", "romantic"):
        data = (tmp_path / "FlickrStyle_v0.9" / folder / "train.p").read_bytes()
        assert data == python2_pickle(N)  # Python 3's protocol 0 writes Python 2's bytes for unicode names
        assert data.startswith(b"(lp0\nV" + N[0].encode()) and b"c__builtin__" not in data


def test_names_pickled_as_python_2_unicode_or_byte_strings_read_alike(tmp_path):
    from ofa_sic.data.flickrstyle import read_names

    (tmp_path / "unicode.p").write_bytes(python2_pickle(N[:2]))
    (tmp_path / "bytes.p").write_bytes(b"(lp0\nS'" + N[0].encode() + b"'\np1\naS'" + N[1].encode() + b"'\np2\na.")
    assert read_names(str(tmp_path / "unicode.p")) == read_names(str(tmp_path / "bytes.p")) == N[:2]
    (tmp_path / "dict.p").write_bytes(pickle.dumps({"a": 1}, protocol=0))
    with pytest.raises(ConversionError, match="expected a pickled list of image file names, found dict"):
        read_names(str(tmp_path / "dict.p"))


def test_release_quirks_are_handled_and_every_count_reported(tmp_path):
    release, images = make_release(tmp_path)
    out = tmp_path / "out"
    report = prepare_flickrstyle(release, images, str(out), factual_captions=str(tmp_path / "Flickr8k.token.txt"),
                                 split_file=str(tmp_path / "splits.txt"), options=QUIET)

    assert report["files"] == {
        "humor/funny_train.txt": {"names": 7, "lines": 7, "crlf_lines": 6, "gbk_lines": 0, "replaced_lines": 0,
                                  "unterminated_last_line": True},
        "romantic/romantic_train.txt": {"names": 7, "lines": 7, "crlf_lines": 6, "gbk_lines": 1, "replaced_lines": 1,
                                        "unterminated_last_line": True},
    }
    assert report["factual"] == {"lines": 6, "used": 5, "other_images": 1, "images_without_factual": 4}
    assert report["not_in_split_file"] == {"captions": 2, "examples": ["humor-6", "romantic-6"]}
    assert report["split_file_names_unused"] == 1
    assert report["images_per_split"] == {"train": 3, "valid": 1, "test": 2}
    train, valid, test = (report["splits"][s] for s in ("train", "valid", "test"))
    assert (train["read"], train["captions_written"], train["written"], train["skipped_total"]) == (8, 6, 6, 2)
    assert {k: v for k, v in train["skipped"].items() if v} == {"empty_caption": 1, "missing_image": 1}
    assert train["fixes"] == {"final_period_attached": 2, "whitespace_normalized": 1}
    assert (valid["read"], valid["captions_written"], valid["written"]) == (4, 3, 3)
    assert {k: v for k, v in valid["skipped"].items() if v} == {"duplicate_caption": 1}
    assert (test["read"], test["captions_written"], test["written"]) == (5, 3, 3)
    assert {k: v for k, v in test["skipped"].items() if v} == {"corrupt_image": 2}
    assert test["fixes"] == {"ampersand_replaced": 1}
    for split in (train, valid, test):
        assert split["read"] == split["captions_written"] + split["skipped_total"]
    assert report["styles"] == {"total": 3, "rows_per_style": {"humorous": 4, "romantic": 4, "factual": 4}}
    assert report["document_frequency"]["documents"] == 2
    assert json.loads((out / "report.json").read_text(encoding="utf-8")) == report

    assert (out / "styles.txt").read_text(encoding="utf-8") == "humorous\nromantic\nfactual\n"
    assert [r[:4] for r in read_rows(out / "train.tsv")] == [
        ["train-humor-0", N[0], "humorous", "A dog jumps over a fence."],
        ["train-humor-1", N[1], "humorous", "two cats plan a heist"],
        ["train-romantic-0", N[0], "romantic", "a dog jumps to meet his love"],
        ["train-romantic-1", N[1], "romantic", "two cats in love,forever"],  # GBK A3 AC: a full-width comma
        [f"train-factual-{N[0]}#0", N[0], "factual", "A dog jumps."],
        [f"train-factual-{N[0]}#1", N[0], "factual", "A brown dog leaps"],
    ]
    assert [r[:4] for r in read_rows(out / "valid.tsv")] == [
        ["valid-humor-3", N[3], "humorous", "the bird tells jokes"],
        ["valid-romantic-3", N[3], "romantic", "the bird sings for its mate"],
        [f"valid-factual-{N[3]}#0", N[3], "factual", "A bird on a branch"],
    ]
    assert [r[:4] for r in read_rows(out / "test.tsv")] == [
        ["test-humor-4", N[4], "humorous", "salt and pepper shaker stand-up"],
        ["test-romantic-4", N[4], "romantic", "romance on the beach"],
        [f"test-factual-{N[4]}#0", N[4], "factual", "A beach at sunset"],
    ]
    for row in read_rows(out / "train.tsv"):
        image = Image.open(io.BytesIO(base64.urlsafe_b64decode(row[4])))
        assert image.format == "JPEG" and image.size == (32, 24)


def test_default_split_ranks_names_by_sha256_and_keeps_an_image_in_one_split(tmp_path):
    names = [f"{i:010d}_{i:010x}.jpg" for i in range(70)]
    release, images = tmp_path / "FlickrStyle_v0.9", tmp_path / "images"
    for folder, caption_file, order in (("humor", "funny_train.txt", names), ("romantic", "romantic_train.txt", names[::-1])):
        (release / folder).mkdir(parents=True)
        (release / folder / "train.p").write_bytes(pickle.dumps(order, protocol=0))
        (release / folder / caption_file).write_bytes(b"\r\n".join(f"{folder} caption of {n}".encode() for n in order))
    images.mkdir()
    for name in names:
        Image.new("RGB", (8, 8)).save(images / name, format="JPEG")
    report = prepare_flickrstyle(str(release), str(images), str(tmp_path / "out"), options=QUIET)
    ranked = sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    expected = {**{n: "test" for n in ranked[:10]}, **{n: "valid" for n in ranked[10:14]},
                **{n: "train" for n in ranked[14:]}}
    assert report["images_per_split"] == {"train": 56, "valid": 4, "test": 10}
    for split in ("train", "valid", "test"):
        rows = read_rows(tmp_path / "out" / f"{split}.tsv")
        assert len(rows) == 2 * sum(1 for s in expected.values() if s == split)
        assert all(expected[row[1]] == split for row in rows)


def test_caption_count_that_does_not_match_the_names_is_refused_with_both_numbers(tmp_path):
    release, images = make_release(tmp_path, romantic=ROMANTIC + [b"one line too many"])
    os.replace(os.path.join(release, "romantic", "train.p"), tmp_path / "keep.p")
    (tmp_path / "FlickrStyle_v0.9" / "romantic" / "train.p").write_bytes(pickle.dumps(N, protocol=0))
    with pytest.raises(ConversionError, match=r"romantic_train.txt: 8 caption lines but .*train.p holds 7 image names"):
        prepare_flickrstyle(release, images, str(tmp_path / "out"), options=QUIET)
    assert not (tmp_path / "out").exists()


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    release, images = make_release(tmp_path)
    marker = tmp_path / "ran"
    evil = b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."
    (tmp_path / "FlickrStyle_v0.9" / "humor" / "train.p").write_bytes(evil)
    with pytest.raises(ConversionError, match=r"humor/train.p: not a plain pickle .*os.system"):
        prepare_flickrstyle(release, images, str(tmp_path / "out"), options=QUIET)
    assert not marker.exists()


def test_cli_prepare_flickrstyle(tmp_path):
    release, images = make_release(tmp_path)
    code, out, err = ofa_sic("prepare-flickrstyle", "--flickrstyle-dir", release, "--image-dir", images,
                             "--out", tmp_path / "out", "--image-size", "32", "--no-df",
                             "--split-file", tmp_path / "splits.txt")
    assert code == 0, err
    assert "FlickrStyle10K" in out and "1 GBK-decoded" in out
    assert sorted(os.listdir(tmp_path / "out")) == ["report.json", "styles.txt", "test.tsv", "train.tsv", "valid.tsv"]
    code, _, err = ofa_sic("prepare-flickrstyle", "--flickrstyle-dir", tmp_path, "--image-dir", images,
                           "--out", tmp_path / "out2")
    assert code == 2 and "no humor/train.p" in err and "Traceback" not in err

"""The synthetic demo data: PCap layout, pictures that match their captions, styles, BPE files."""
import json
import os
import re

import pytest
from PIL import Image

from ofa_sic.cli.main import main
from ofa_sic.data import demo
from ofa_sic.data.pcap import prepare_pcap
from ofa_sic.data.styles import read_personalities

SIZES = {"n_train": 50, "n_valid": 10, "n_test": 10}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    summary = demo.make_demo_data(str(out), seed=3, quiet=True, **SIZES)
    assert summary["records"] == {"train": 50, "val": 10, "test": 10}
    return out


def load(demo_dir, split):
    return json.loads((demo_dir / "personality_captions" / f"{split}.json").read_text(encoding="utf-8"))


def all_captions(demo_dir):
    texts = []
    for split in ("train", "val", "test"):
        for record in load(demo_dir, split):
            texts.append(record["comment"])
            texts.extend(record.get("additional_comments", []))
    return texts


def template_pattern(template):
    parts = re.split(r"(\{obj\}|\{bg\})", template)
    body = "".join("(?P<obj>.+)" if p == "{obj}" else "(?P<bg>.+)" if p == "{bg}" else re.escape(p) for p in parts)
    return re.compile(body + "$")


def parse_caption(style, text):
    """Return (template number, obj phrase, bg phrase) of a demo caption in `style`, or None."""
    for number, template in enumerate(demo.TEMPLATES[style]):
        match = template_pattern(template).match(text)
        if match:
            return number, match.group("obj"), match.group("bg")
    return None


def test_layout_and_record_fields_match_pcap(demo_dir):
    assert sorted(os.listdir(demo_dir)) == ["attributes.json", "bpe", "personality_captions", "yfcc_images"]
    assert sorted(os.listdir(demo_dir / "personality_captions")) == ["personalities.txt", "test.json", "train.json", "val.json"]
    text = (demo_dir / "personality_captions" / "personalities.txt").read_text(encoding="utf-8")
    assert "Trait" in text.splitlines()[0]
    assert read_personalities(str(demo_dir / "personality_captions" / "personalities.txt")) == list(demo.STYLES)
    assert any("(" in name for name in demo.STYLES)
    assert {tuple(sorted(r)) for r in load(demo_dir, "train")} == {("comment", "image_hash", "personality")}
    for record in load(demo_dir, "val"):
        assert sorted(record) == ["candidates", "comment", "image_hash", "personality"]
        assert len(record["candidates"]) == 100 and record["comment"] in record["candidates"]
    for record in load(demo_dir, "test"):
        assert sorted(record) == ["500_candidates", "additional_comments", "candidates", "comment", "image_hash", "personality"]
        assert len(record["500_candidates"]) == 500 and record["comment"] in record["500_candidates"]


def test_every_record_has_its_own_image_and_pcap_like_hash(demo_dir):
    hashes = [r["image_hash"] for split in ("train", "val", "test") for r in load(demo_dir, split)]
    assert len(set(hashes)) == len(hashes) == 70
    assert all(re.fullmatch(r"[0-9a-f]{30,32}", h) for h in hashes)
    assert any(len(h) < 32 for h in hashes)
    assert sorted(os.listdir(demo_dir / "yfcc_images")) == sorted(h + ".jpg" for h in hashes)


def test_images_show_what_the_captions_say(demo_dir):
    for split in ("train", "val", "test"):
        for record in load(demo_dir, split):
            image = Image.open(demo_dir / "yfcc_images" / (record["image_hash"] + ".jpg"))
            assert image.format == "JPEG" and image.mode == "RGB" and image.size == (96, 96)
            _, obj, bg = parse_caption(record["personality"], record["comment"])
            color = obj.split()[1]
            colors = image.getcolors(96 * 96)
            background = max(colors)[1]
            assert max(abs(a - b) for a, b in zip(background, demo.BACKGROUNDS[bg])) < 20
            target = demo.SHAPE_COLORS[color]
            shape_pixels = sum(n for n, rgb in colors if max(abs(a - b) for a, b in zip(rgb, target)) < 30)
            assert shape_pixels > 50, (record, color)


def test_test_records_have_five_distinct_references_in_their_style(demo_dir):
    for record in load(demo_dir, "test"):
        refs = [record["comment"]] + record["additional_comments"]
        assert len(refs) == 5 and len(set(refs)) == 5
        parsed = [parse_caption(record["personality"], ref) for ref in refs]
        assert None not in parsed, refs
        assert len({(obj, bg) for _, obj, bg in parsed}) == 1  # all describe the same picture
    styles = [r["personality"] for r in load(demo_dir, "train")]
    assert set(styles) == set(demo.STYLES) and max(map(styles.count, demo.STYLES)) == 10


def test_same_seed_same_files_other_seed_other_files(demo_dir, tmp_path):
    demo.make_demo_data(str(tmp_path / "again"), seed=3, quiet=True, **SIZES)
    demo.make_demo_data(str(tmp_path / "other"), seed=4, quiet=True, **SIZES)
    for name in ("personality_captions/train.json", "personality_captions/test.json", "bpe/encoder.json", "bpe/vocab.bpe", "bpe/dict.txt"):
        assert (tmp_path / "again" / name).read_bytes() == (demo_dir / name).read_bytes(), name
    assert (tmp_path / "other" / "personality_captions/train.json").read_bytes() != (demo_dir / "personality_captions/train.json").read_bytes()
    first = load(demo_dir, "train")[0]["image_hash"] + ".jpg"
    assert (tmp_path / "again" / "yfcc_images" / first).read_bytes() == (demo_dir / "yfcc_images" / first).read_bytes()


def test_converter_runs_on_demo_data_without_skips(demo_dir, tmp_path):
    report = prepare_pcap(str(demo_dir / "personality_captions"), str(demo_dir / "yfcc_images"), str(tmp_path / "data"),
                          image_size=64, df=False, quiet=True)
    for split, expected in (("train", 50), ("valid", 10), ("test", 10)):
        assert report["splits"][split]["read"] == report["splits"][split]["written"] == expected
        assert report["splits"][split]["skipped_total"] == 0
        assert report["splits"][split]["junk_reference_dropped"] == 0
    assert report["splits"]["test"]["references_per_row"] == {"5": 10}
    assert report["styles_added_from_data"] == [] and report["style_spellings_mapped"] == {}
    assert (tmp_path / "data" / "styles.txt").read_text(encoding="utf-8").splitlines() == list(demo.STYLES)


def test_bpe_files_have_gpt2_format(demo_dir):
    bpe = demo_dir / "bpe"
    encoder = json.loads((bpe / "encoder.json").read_text(encoding="ascii"))
    assert sorted(encoder.values()) == list(range(len(encoder)))
    assert 256 < len(encoder) <= demo.BPE_VOCAB_SIZE
    assert "Ġ" in encoder and "Ġthe" in encoder
    merges_text = (bpe / "vocab.bpe").read_text(encoding="utf-8")
    assert merges_text.startswith("#version: 0.2\n") and merges_text.endswith("\n")
    merges = [line.split(" ") for line in merges_text.splitlines()[1:]]
    assert all(len(m) == 2 and m[0] + m[1] in encoder for m in merges)
    lines = [line.split(" ") for line in (bpe / "dict.txt").read_text(encoding="utf-8").splitlines()]
    assert sorted(int(symbol) for symbol, _ in lines) == sorted(encoder.values())
    counts = [int(count) for _, count in lines]
    assert min(counts) >= 1 and counts == sorted(counts, reverse=True)


def test_bpe_round_trips_every_caption_with_hf_tokenizers(demo_dir):
    from tokenizers import ByteLevelBPETokenizer

    bpe = demo_dir / "bpe"
    tokenizer = ByteLevelBPETokenizer(str(bpe / "encoder.json"), str(bpe / "vocab.bpe"), add_prefix_space=False)
    for text in all_captions(demo_dir):
        ids = tokenizer.encode(" " + text).ids
        assert tokenizer.decode(ids) == " " + text


def test_bpe_round_trips_every_caption_with_fairseq_gpt2_encoder(demo_dir):
    from fairseq import data as fairseq_data
    from fairseq.data.encoders import gpt2_bpe_utils
    bpe = demo_dir / "bpe"
    encoder = gpt2_bpe_utils.get_encoder(str(bpe / "encoder.json"), str(bpe / "vocab.bpe"))
    dictionary = fairseq_data.Dictionary.load(str(bpe / "dict.txt"))
    merges = (bpe / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:]
    assert len(encoder.bpe_ranks) == len(merges)  # fairseq read every merge
    for text in all_captions(demo_dir) + [" what does the image describe?"]:
        ids = encoder.encode(" " + text)
        assert encoder.decode(ids) == " " + text
        assert dictionary.unk() not in [dictionary.index(str(i)) for i in ids]
    assert [encoder.decoder[i] for i in encoder.encode(" what does the image describe?")] == [
        "Ġwhat", "Ġdoes", "Ġthe", "Ġimage", "Ġdescribe", "?"]


def test_cli_demo_data(tmp_path, capsys):
    code = main(["demo-data", "--out", str(tmp_path / "d"), "--seed", "1", "--n-train", "10", "--n-valid", "5", "--n-test", "5"])
    assert code == 0
    assert "next: ofa-sic prepare-pcap" in capsys.readouterr().out
    assert len(os.listdir(tmp_path / "d" / "yfcc_images")) == 20
    code = main(["demo-data", "--out", str(tmp_path / "e"), "--n-train", "0"])
    assert code == 2
    assert "n_train must be a positive integer" in capsys.readouterr().err


def test_attributes_record_what_each_image_shows(demo_dir):
    attributes = json.loads((demo_dir / demo.ATTRIBUTES_FILE).read_text(encoding="utf-8"))
    records = [r for split in ("train", "val", "test") for r in load(demo_dir, split)]
    assert set(attributes) == {r["image_hash"] for r in records}
    for record in records:
        scene = attributes[record["image_hash"]]
        assert sorted(scene) == ["background", "color", "count", "shape"]
        assert demo.caption(scene, record["personality"], parse_caption(record["personality"], record["comment"])[0]) == record["comment"]


def test_several_references_per_train_image(tmp_path):
    out = tmp_path / "refs"
    summary = demo.make_demo_data(str(out), seed=5, quiet=True, n_train=20, n_valid=4, n_test=4, train_references=3)
    assert summary["records"] == {"train": 60, "val": 4, "test": 4}
    assert summary["images"] == {"train": 20, "val": 4, "test": 4}
    train = load(out, "train")
    by_image = {}
    for record in train:
        by_image.setdefault(record["image_hash"], []).append(record)
    assert len(by_image) == 20 and {len(rs) for rs in by_image.values()} == {3}
    for records in by_image.values():
        style = records[0]["personality"]
        assert {r["personality"] for r in records} == {style}
        parsed = [parse_caption(style, r["comment"]) for r in records]
        assert len({number for number, _, _ in parsed}) == 3  # three different templates
        assert len({(obj, bg) for _, obj, bg in parsed}) == 1  # of the same picture
    assert len(os.listdir(out / "yfcc_images")) == 28
    # prepare-pcap: one row per record; the CIDEr-D document frequencies count each image once
    report = prepare_pcap(str(out / "personality_captions"), str(out / "yfcc_images"), str(tmp_path / "data"),
                          image_size=64, quiet=True)
    assert report["splits"]["train"]["written"] == 60
    from ofa_sic.metrics.document_frequency import load_document_frequency
    assert load_document_frequency(str(tmp_path / "data" / "train-words.p"))["ref_len"] == 20
    with pytest.raises(ValueError, match="train_references can be at most 6"):
        demo.make_demo_data(str(tmp_path / "bad"), quiet=True, n_train=2, n_valid=1, n_test=1, train_references=7)


def test_cli_demo_data_train_references(tmp_path, capsys):
    code = main(["demo-data", "--out", str(tmp_path / "d"), "--n-train", "4", "--n-valid", "2", "--n-test", "2",
                 "--train-references", "2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "train 8, val 2, test 2 records (train 4, val 2, test 2 images)" in out and "attributes.json" in out

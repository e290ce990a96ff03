"""The demo data's PCap-like profile: its styles and families, phrasings, the content its comments state,
independently drawn test references, and the ceilings it reports, through `ofa-sic demo-data --profile pcap`
and prepare-pcap."""
import collections
import json
import random

import pytest

from helpers import ofa_sic
from ofa_sic.data.demo import SHAPES, _random_scene
from ofa_sic.data.demo_pcap_profile import FAMILIES, STYLES, SYNONYMS, mention, pcap_like_caption, phrasings


def test_styles_come_in_families_that_share_words():
    assert len(STYLES) >= 20
    by_family = collections.Counter(family for family, _ in STYLES.values())
    assert set(by_family) == set(FAMILIES) and min(by_family.values()) >= 4
    for style, (family, own_words) in STYLES.items():
        options = phrasings(style)
        assert len(set(options["openers"])) >= 30 and len(set(options["closers"])) >= 30, style
        sibling = next(s for s, (f, _) in STYLES.items() if f == family and s != style)
        shared = set(options["openers"]) & set(phrasings(sibling)["openers"])
        assert shared and shared != set(options["openers"]), (style, sibling)  # confusable, not identical


def test_comments_state_a_random_subset_of_the_picture_often_nothing():
    rng = random.Random(0)
    scenes = [_random_scene(rng) for _ in range(2000)]
    mentions = [mention(scene, rng) for scene in scenes]
    empty = sum(not m for m in mentions) / len(mentions)
    assert 0.4 <= empty <= 0.6  # P_NO_CONTENT plus the mentions that drew no attribute
    shape_words = {word for shape in SHAPES for synonym in SYNONYMS[shape] for word in synonym.split()}
    for scene, text in zip(scenes, mentions):
        wrong = [s for shape in SHAPES if shape != scene["shape"] for s in SYNONYMS[shape]
                 if s in text.split() and s not in SYNONYMS[scene["shape"]]]
        assert not wrong, (scene, text)  # a shape word, when there is one, is a synonym of the picture's
    assert any(set(m.split()) & shape_words for m in mentions)
    endings = collections.Counter(pcap_like_caption(scenes[0], "Happy", rng)[-1] for _ in range(300))
    assert {".", "!", "?"} <= set(endings)


def test_demo_data_pcap_profile_writes_independent_references_and_its_ceilings(tmp_path):
    out = tmp_path / "raw"
    code, stdout, _ = ofa_sic("demo-data", "--out", out, "--profile", "pcap", "--n-train", "300", "--n-valid", "20",
                              "--n-test", "50")
    assert code == 0
    assert "ceilings" in stdout and "leave-one-out CIDEr" in stdout
    test = json.loads((out / "personality_captions" / "test.json").read_text())
    train = json.loads((out / "personality_captions" / "train.json").read_text())
    assert len({r["image_hash"] for r in train}) == len(train) == 300  # one comment per training image
    references = [[r["comment"], *r["additional_comments"]] for r in test]
    assert all(len(refs) == 5 for refs in references)
    distinct = sum(len(set(refs)) for refs in references) / (5 * len(references))
    assert distinct > 0.95  # five independently drawn comments, not five templates of one description
    ceilings = json.loads((out / "ceilings.json").read_text())
    assert 5 < ceilings["reference_loo_cider"] < 150
    assert ceilings["chance_style_top1"] < ceilings["reference_style_top1"] < 95
    personalities = (out / "personality_captions" / "personalities.txt").read_text()
    assert all(style in personalities for style in STYLES)
    code, _, stderr = ofa_sic("prepare-pcap", "--pcap-dir", out / "personality_captions", "--image-dir",
                              out / "yfcc_images", "--out", tmp_path / "data", "--image-size", "96")
    assert code == 0, stderr
    assert len((tmp_path / "data" / "styles.txt").read_text().splitlines()) == len(STYLES)


def test_the_profile_is_written_in_pcaps_layout_only(tmp_path):
    from ofa_sic.data.demo import make_demo_data

    with pytest.raises(ValueError, match="PCap's layout only"):
        make_demo_data(str(tmp_path), profile="pcap", layout="senticap", quiet=True)

"""Content accuracy of captions on the demo data: what a caption states, and how often it is right."""
import pytest

from ofa_sic.data import demo
from ofa_sic.evaluation.content_accuracy import content_accuracy, format_content_accuracy, stated_attributes


def test_stated_attributes_of_demo_captions():
    assert stated_attributes("what a lovely two red circles on gray!") == {
        "color": {"red"}, "shape": {"circle"}, "count": {2}, "background": {"gray"}}
    assert stated_attributes("Shown here: a blue square on a white field.") == {
        "color": {"blue"}, "shape": {"square"}, "count": {1}, "background": {"white"}}
    assert stated_attributes("oh great, three orange triangles on black") ["count"] == {3}
    mixed = stated_attributes("a red circle and two blue squares")
    assert mixed["color"] == {"red", "blue"} and mixed["count"] == {1, 2}
    assert stated_attributes("nothing to see") == {"color": set(), "shape": set(), "count": set(), "background": set()}


def test_pcap_profile_synonyms_state_their_value_and_mood_words_do_not():
    assert stated_attributes("A pair of crimson rings against snowy!") == {
        "color": {"red"}, "shape": {"circle"}, "count": {2}, "background": {"white"}}
    assert stated_attributes("so dark again, pointy things on inky") == {
        "color": set(), "shape": {"triangle"}, "count": set(), "background": {"black"}}
    assert stated_attributes("a trio of boxes, grey forever")["count"] == {3}
    assert stated_attributes("a trio of boxes, grey forever")["background"] == set()


def test_every_pcap_profile_mention_states_what_it_names():
    """A mention that names an attribute in any synonym is read as the true value (mood words aside)."""
    import random

    from ofa_sic.data.demo_pcap_profile import mention

    rng = random.Random(0)
    checked = 0
    for _ in range(400):
        scene = {"shape": rng.choice(demo.SHAPES), "color": rng.choice(sorted(demo.SHAPE_COLORS)),
                 "count": rng.randint(1, 3), "background": rng.choice(sorted(demo.BACKGROUNDS))}
        stated = stated_attributes(mention(scene, rng))
        for name in ("color", "shape", "background"):
            assert stated[name] <= {scene[name]}
            checked += bool(stated[name])
        assert stated["count"] <= {1, scene["count"]}
    assert checked > 300


def test_every_template_caption_states_its_scene_correctly():
    scenes = [{"shape": s, "color": c, "count": n, "background": b}
              for s in demo.SHAPES for c in demo.SHAPE_COLORS for n in demo.COUNT_WORDS for b in demo.BACKGROUNDS]
    captions, attributes = {}, {}
    for i, scene in enumerate(scenes):
        for style in demo.STYLES:
            for template in range(len(demo.TEMPLATES[style])):
                key = f"{i}-{style}-{template}"
                captions[key], attributes[key] = demo.caption(scene, style, template), scene
    report = content_accuracy(captions, attributes)
    assert report["accuracy"] == {"color": 1.0, "shape": 1.0, "count": 1.0, "background": 1.0}
    assert report["chance"] == pytest.approx({"color": 1 / 6, "shape": 1 / 3, "count": 1 / 3, "background": 1 / 3})


def test_accuracy_chance_and_distinct_captions():
    attributes = {
        "a": {"shape": "circle", "color": "red", "count": 2, "background": "gray"},
        "b": {"shape": "square", "color": "blue", "count": 1, "background": "gray"},
        "c": {"shape": "circle", "color": "red", "count": 3, "background": "white"},
        "d": {"shape": "triangle", "color": "green", "count": 1, "background": "black"},
    }
    same = "what a lovely two red circles on gray!"
    report = content_accuracy({k: same for k in attributes}, attributes)
    assert report["accuracy"] == {"color": 0.5, "shape": 0.5, "count": 0.25, "background": 0.5}
    assert report["chance"] == {"color": 0.5, "shape": 0.5, "count": 0.5, "background": 0.5}
    assert report["distinct_captions"] == 1 and report["num_captions"] == 4
    line = format_content_accuracy(report, "ce")
    assert line.startswith("ce: content stated correctly: color 50% (chance 50%)") and "1 distinct captions of 4" in line
    with pytest.raises(ValueError, match="have no recorded attributes"):
        content_accuracy({"zz": same}, attributes)

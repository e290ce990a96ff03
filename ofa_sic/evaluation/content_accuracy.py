"""Content accuracy on the demo data: does a caption state what the image shows?

The demo images (ofa_sic.data.demo) show 1-3 shapes of one colour on a plain background, and
`ofa-sic demo-data` records each image's attributes in attributes.json. A caption states an attribute
correctly when the values of that attribute it mentions are exactly the true one:
- colour: the shape colour words it contains (red, green, ...);
- shape: the shape words, singular or plural (circle, circles, ...);
- count: 2 or 3 for "two" / "three", 1 for a singular shape word ("a red circle");
- background: the background colour words (white, black, gray; none of them is a shape colour).
A caption that names no value, or two, is wrong. Beside each accuracy: the chance level, the accuracy
of always stating the attribute's most frequent value in the scored images.
"""
import collections
from typing import Dict, Iterable, List, Mapping, Set

from ofa_sic.data.demo import BACKGROUNDS, COUNT_WORDS, SHAPE_COLORS, SHAPES

ATTRIBUTES = ("color", "shape", "count", "background")
_NUMBER_WORDS = {word: count for count, word in COUNT_WORDS.items() if count > 1}


def stated_attributes(caption: str) -> Dict[str, Set]:
    """{attribute: set of values the caption mentions}, e.g. "two red circles on gray" ->
    {"color": {"red"}, "shape": {"circle"}, "count": {2}, "background": {"gray"}}."""
    words = "".join(ch if ch.isalnum() else " " for ch in caption.lower()).split()
    stated = {name: set() for name in ATTRIBUTES}
    for word in words:
        if word in SHAPE_COLORS:
            stated["color"].add(word)
        elif word in BACKGROUNDS:
            stated["background"].add(word)
        elif word in _NUMBER_WORDS:
            stated["count"].add(_NUMBER_WORDS[word])
        elif word in SHAPES:
            stated["shape"].add(word)
            stated["count"].add(1)
        elif word.endswith("s") and word[:-1] in SHAPES:
            stated["shape"].add(word[:-1])
    return stated


def content_accuracy(captions: Mapping[str, str], attributes: Mapping[str, Mapping]) -> Dict:
    """Per attribute: the share of captions that state it correctly, and the chance level.

    captions: {image_id: caption}; attributes: {image_id: {"color", "shape", "count", "background"}}
    (every caption's image must be there). Returns {"num_captions", "distinct_captions",
    "accuracy": {attribute: share}, "chance": {attribute: share}}.
    """
    missing = [key for key in captions if key not in attributes]
    if missing:
        raise ValueError(f"{len(missing)} captioned images have no recorded attributes, e.g. {missing[0]!r}: "
                         "use the attributes.json written with the data (`ofa-sic demo-data`)")
    if not captions:
        raise ValueError("no captions to score")
    correct = collections.Counter()
    values: Dict[str, collections.Counter] = {name: collections.Counter() for name in ATTRIBUTES}
    for key, text in captions.items():
        stated = stated_attributes(text)
        for name in ATTRIBUTES:
            truth = attributes[key][name]
            values[name][truth] += 1
            correct[name] += stated[name] == {truth}
    total = len(captions)
    return {
        "num_captions": total,
        "distinct_captions": len(set(captions.values())),
        "accuracy": {name: correct[name] / total for name in ATTRIBUTES},
        "chance": {name: values[name].most_common(1)[0][1] / total for name in ATTRIBUTES},
    }


def format_content_accuracy(report: Mapping, label: str = "") -> str:
    """One line: "colour 23% (chance 17%), shape ..., 16 distinct captions of 100"."""
    parts = [f"{name} {100 * report['accuracy'][name]:.0f}% (chance {100 * report['chance'][name]:.0f}%)"
             for name in ATTRIBUTES]
    prefix = f"{label}: " if label else ""
    return (f"{prefix}content stated correctly: " + ", ".join(parts)
            + f"; {report['distinct_captions']} distinct captions of {report['num_captions']}")

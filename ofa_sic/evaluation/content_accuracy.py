"""Content accuracy on the demo data: does a caption state what the image shows?

The demo images (ofa_sic.data.demo) show 1-3 shapes of one colour on a plain background, and
`ofa-sic demo-data` records each image's attributes in attributes.json. A caption states an attribute
correctly when the values of that attribute it mentions are exactly the true one:
- colour: the shape colour words it contains (red, green, ...);
- shape: the shape words, singular or plural (circle, circles, ...);
- count: 2 or 3 for "two" / "three", 1 for a singular shape word ("a red circle");
- background: the background colour words (white, black, gray; none of them is a shape colour).
The PCap-like profile's synonyms (ofa_sic.data.demo_pcap_profile.SYNONYMS: "crimson", "ring", "a pair
of", ...) count as their value, except the ones that are also a style's word there ("dark", "grey"),
which a comment uses for its mood. On that profile a singular noun with no count word ("a ring") is read
as one, and "blue" may be Melancholy's mood, so its count and colour figures are approximate.
A caption that names no value, or two, is wrong. Beside each accuracy: the chance level, the accuracy
of always stating the attribute's most frequent value in the scored images.
"""
import collections
from typing import Any, Dict, Mapping, Set, Tuple

from ofa_sic.data.demo import BACKGROUNDS, COUNT_WORDS, SHAPE_COLORS, SHAPES

ATTRIBUTES = ("color", "shape", "count", "background")


def _vocabulary() -> Dict[str, Tuple[str, Any]]:
    """{word or phrase: (attribute, value)}: the canonical words and the PCap-like profile's synonyms, in the
    singular (plurals of shape words: `_plural_of`), without the words a style there uses for its mood."""
    from ofa_sic.data.demo_pcap_profile import COUNT_SYNONYMS, FAMILIES, STYLES, SYNONYMS

    mood_words = {word for _, _, words in FAMILIES.values() for word in words}
    mood_words |= {word for _, words in STYLES.values() for word in words}
    vocabulary: Dict[str, Tuple[str, Any]] = {}
    for value in SHAPE_COLORS:
        vocabulary[value] = ("color", value)
    for value in BACKGROUNDS:
        vocabulary[value] = ("background", value)
    for value in SHAPES:
        vocabulary[value] = ("shape", value)
    for count, word in COUNT_WORDS.items():
        if count > 1:
            vocabulary[word] = ("count", count)
    for value, synonyms in SYNONYMS.items():
        attribute = "shape" if value in SHAPES else "background" if value in BACKGROUNDS else "color"
        for synonym in synonyms:
            if synonym not in mood_words and synonym not in vocabulary:
                vocabulary[synonym] = (attribute, value)
    for count, synonyms in COUNT_SYNONYMS.items():
        for synonym in synonyms:
            if count > 1 and synonym not in vocabulary:
                vocabulary[synonym] = ("count", count)
    return vocabulary


_VOCABULARY = _vocabulary()
_LONGEST = max(len(phrase.split()) for phrase in _VOCABULARY)


def _plural_of(word: str):
    """The singular vocabulary word a plural names ("circles" -> "circle", "boxes" -> "box"), or None."""
    if not word.endswith("s"):
        return None
    for singular in (word[:-1], word[:-2]):
        if _VOCABULARY.get(singular, ("",))[0] == "shape":
            return singular
    return None


def stated_attributes(caption: str) -> Dict[str, Set]:
    """{attribute: set of values the caption mentions}, e.g. "two red circles on gray" ->
    {"color": {"red"}, "shape": {"circle"}, "count": {2}, "background": {"gray"}}. Phrases of several words
    ("a pair of", "round thing") are matched before single words; a singular shape word also states 1."""
    words = "".join(ch if ch.isalnum() else " " for ch in caption.lower()).split()
    stated = {name: set() for name in ATTRIBUTES}
    i = 0
    while i < len(words):
        for size in range(min(_LONGEST, len(words) - i), 0, -1):
            phrase = " ".join(words[i:i + size])
            singular = None if phrase in _VOCABULARY else _plural_of(phrase)
            if phrase in _VOCABULARY or singular:
                attribute, value = _VOCABULARY[singular or phrase]
                stated[attribute].add(value)
                if attribute == "shape" and not singular:
                    stated["count"].add(1)
                i += size
                break
        else:
            i += 1
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

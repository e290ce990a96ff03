"""The demo data's PCap-like profile (`ofa-sic demo-data --profile pcap`): the same pictures as the
template demo (ofa_sic.data.demo), with captions that behave like Personality-Captions' comments.

In PCap a caption is a comment in a personality, not a description: it often says nothing about what
the picture shows, phrases the same style in many ways, and five people writing about one test image in
one style write five very different comments. This profile reproduces that, so that a claim about
stage 2 or the MLM task can be tested where the template demo makes it trivial:

- 25 styles in 5 families (CHEERFUL, KIND, NEUTRAL, DARK, SNARKY). A family shares its sentence frames
  and half of its words; a style adds its own interjections and adjectives. Styles of one family are
  therefore confusable, as PCap's "Happy" and "Cheerful" are.
- A caption = an opener, a mention of the picture, a closer, in one of several orders. Openers and
  closers are a frame of the family (8 each) filled with one of the style's 4 words or the family's 4:
  64 of each per style.
- The mention names a random subset of the picture's colour, shape, count and background (none at all
  with probability P_NO_CONTENT), each through a random synonym, in a random word order.
- Case and punctuation vary: a capital or not at the start, ".", "!", "...", "?" or nothing at the end.
- One caption per training image; five independently drawn captions per test image.

`caption_ceilings` measures how human-like comments score on such data: the references' leave-one-out
CIDEr (each test reference scored against the other four, as `ofa-sic evaluate` scores a caption) and
the style classifier's top-1 accuracy on the test references when trained on the training captions.
The style figure is a ceiling for a model's captions; the CIDEr figure is a reference point, since a
generic comment in a style's most frequent phrasing can score about as well (BENCHMARKS.md).
"""
import random
from typing import Any, Dict, List, Sequence

#: family -> (opener frames, closer frames, the family's shared words); "{w}" takes a style or family word.
FAMILIES = {
    "CHEERFUL": (
        ("{w}, look at this", "{w}! what a sight", "this is {w}", "oh {w}", "honestly {w}", "{w}, i am smiling",
         "so {w} right now", "{w} all around"),
        ("and that is {w}", "{w} for sure", "makes my day {w}", "simply {w}", "{w} vibes", "what a {w} moment",
         "i love how {w} it is", "{w} times ahead"),
        ("wonderful", "great", "lovely", "fun"),
    ),
    "KIND": (
        ("aww {w}", "how {w}", "what a {w} little scene", "{w}, bless it", "so {w} and soft", "{w} and warm",
         "such a {w} view", "{w}, dear"),
        ("so {w} to see", "{w} wishes to all", "it feels {w}", "{w} and calm", "sending {w} thoughts",
         "may it stay {w}", "{w} at heart", "truly {w}"),
        ("sweet", "gentle", "tender", "dear"),
    ),
    "NEUTRAL": (
        ("this {w} image shows", "a {w} view of", "in a {w} sense", "{w} observation", "here is a {w} record of",
         "to be {w}", "the {w} facts", "a {w} study of"),
        ("as {w} as that", "{w} in every respect", "nothing more {w}", "a {w} composition", "{w} and exact",
         "noted as {w}", "{w} by any measure", "of {w} interest"),
        ("clear", "precise", "plain", "factual"),
    ),
    "DARK": (
        ("{w}", "so {w} again", "another {w} day", "{w} as always", "it is {w} here", "only {w} thoughts",
         "why so {w}", "everything {w}"),
        ("and it stays {w}", "{w} forever", "nothing but {w}", "still {w}", "{w} and cold", "all {w} now",
         "it ends {w}", "{w} like me"),
        ("sad", "grey", "lonely", "empty"),
    ),
    "SNARKY": (
        ("oh {w}", "wow {w}", "how {w}", "sure, {w}", "yeah {w}", "{w}, obviously", "totally {w}",
         "{w}, as if"),
        ("so {w}", "{w}, i guess", "truly {w}", "{w}, not", "how very {w}", "{w} as usual", "{w}, sure",
         "peak {w}"),
        ("great", "amazing", "original", "thrilling"),
    ),
}
#: style -> (family, the style's own words); each frame takes a family word or one of these.
STYLES = {
    "Happy": ("CHEERFUL", ("yay", "happy", "joyful", "bright")),
    "Cheerful": ("CHEERFUL", ("cheery", "sunny", "merry", "jolly")),
    "Enthusiastic": ("CHEERFUL", ("amazing", "awesome", "thrilling", "epic")),
    "Optimistic": ("CHEERFUL", ("hopeful", "promising", "upbeat", "better")),
    "Playful": ("CHEERFUL", ("silly", "bouncy", "goofy", "cheeky")),
    "Sweet": ("KIND", ("cute", "adorable", "lovely", "darling")),
    "Caring": ("KIND", ("caring", "safe", "helpful", "thoughtful")),
    "Gentle": ("KIND", ("quiet", "mild", "peaceful", "light")),
    "Sentimental": ("KIND", ("nostalgic", "precious", "memorable", "old")),
    "Romantic": ("KIND", ("romantic", "dreamy", "loving", "charming")),
    "Formal": ("NEUTRAL", ("formal", "proper", "orderly", "standard")),
    "Analytical": ("NEUTRAL", ("analytical", "measured", "logical", "systematic")),
    "Scholarly": ("NEUTRAL", ("scholarly", "academic", "learned", "classical")),
    "Businesslike": ("NEUTRAL", ("efficient", "practical", "professional", "useful")),
    "Curious": ("NEUTRAL", ("curious", "puzzling", "odd", "interesting")),
    "Gloomy": ("DARK", ("gloomy", "dark", "dreary", "bleak")),
    "Melancholy": ("DARK", ("melancholy", "wistful", "mournful", "blue")),
    "Anxious": ("DARK", ("anxious", "nervous", "uneasy", "worried")),
    "Bitter": ("DARK", ("bitter", "resentful", "sour", "unfair")),
    "Tired": ("DARK", ("tired", "sleepy", "weary", "drained")),
    "Sarcastic": ("SNARKY", ("brilliant", "fascinating", "groundbreaking", "riveting")),
    "Arrogant": ("SNARKY", ("beneath me", "mediocre", "amateur", "inferior")),
    "Bored": ("SNARKY", ("boring", "dull", "meh", "yawn")),
    "Critical": ("SNARKY", ("flawed", "sloppy", "wrong", "poor")),
    "Cynical": ("SNARKY", ("pointless", "fake", "overrated", "typical")),
}
#: what a picture shows -> the words a caption may use for it
SYNONYMS = {
    "circle": ("circle", "ring", "disc", "round thing"),
    "square": ("square", "box", "block", "tile"),
    "triangle": ("triangle", "wedge", "pyramid", "pointy thing"),
    "red": ("red", "crimson", "scarlet"),
    "green": ("green", "emerald", "lime"),
    "blue": ("blue", "navy", "azure"),
    "yellow": ("yellow", "golden", "lemon"),
    "purple": ("purple", "violet", "plum"),
    "orange": ("orange", "amber", "tangerine"),
    "white": ("white", "snowy", "pale"),
    "black": ("black", "dark", "inky"),
    "gray": ("gray", "grey", "ashen"),
}
COUNT_SYNONYMS = {1: ("a", "one", "a single"), 2: ("two", "a pair of", "a couple of"), 3: ("three", "a trio of", "3")}
#: probability that a caption says nothing about the picture; each attribute is otherwise named with
#: probability P_ATTRIBUTE
P_NO_CONTENT = 0.4
P_ATTRIBUTE = 0.5
ENDINGS = (".", "!", "...", "?", "")
TEST_REFERENCES = 5


def personalities_txt() -> str:
    """PCap's personalities.txt for the profile's styles, one block per family."""
    blocks = []
    for family in FAMILIES:
        names = [name for name, (fam, _) in STYLES.items() if fam == family]
        blocks.append(f"{family.title()} Traits\n" + "".join(name + "\n" for name in names))
    return "\n".join(blocks)


def phrasings(style: str) -> Dict[str, List[str]]:
    """Every opener and closer of `style`: each frame of its family with each of its words and the family's."""
    family, own_words = STYLES[style]
    openers, closers, shared_words = FAMILIES[family]
    words = list(own_words) + list(shared_words)
    return {"openers": [frame.format(w=word) for frame in openers for word in words],
            "closers": [frame.format(w=word) for frame in closers for word in words]}


def mention(scene: Dict[str, Any], rng: random.Random) -> str:
    """A random subset of what `scene` shows, in synonyms and a random order; often "" (nothing)."""
    if rng.random() < P_NO_CONTENT:
        return ""
    named = [key for key in ("count", "color", "shape", "background") if rng.random() < P_ATTRIBUTE]
    if not named:
        return ""
    shape = rng.choice(SYNONYMS[scene["shape"]])
    plural = scene["count"] > 1 and "count" in named
    noun = (shape + ("es" if shape.endswith("x") else "s") if plural else shape) if "shape" in named else \
        ("things" if plural else "thing")
    words = []
    if "count" in named:
        words.append(rng.choice(COUNT_SYNONYMS[scene["count"]]))
    if "color" in named:
        words.append(rng.choice(SYNONYMS[scene["color"]]))
    phrase = " ".join(words + [noun])
    if "background" in named:
        background = rng.choice(SYNONYMS[scene["background"]])
        phrase = rng.choice((f"{phrase} on {background}", f"{background} behind the {noun}",
                             f"{phrase} against {background}"))
    return phrase


def pcap_like_caption(scene: Dict[str, Any], style: str, rng: random.Random) -> str:
    """One comment on `scene` in `style`: opener, mention and closer in a random order, case and ending."""
    options = phrasings(style)
    opener, closer, content = rng.choice(options["openers"]), rng.choice(options["closers"]), mention(scene, rng)
    order = rng.randrange(4)
    if not content:
        parts = [opener, closer] if order < 3 else [opener]
    elif order == 0:
        parts = [opener, content, closer]
    elif order == 1:
        parts = [content, opener, closer]
    elif order == 2:
        parts = [opener, closer, content]
    else:
        parts = [opener, content]
    text = rng.choice((", ", " ")).join(parts) + rng.choice(ENDINGS)
    return text[0].upper() + text[1:] if rng.random() < 0.5 else text


def caption_ceilings(train: Sequence[Dict[str, Any]], test: Sequence[Dict[str, Any]]) -> Dict[str, float]:
    """How human-like comments score on this data: {"reference_loo_cider": the mean over k of test reference k's
    CIDEr (x100, pycocoevalcap, PTB-tokenized) against the other references of its image;
    "reference_style_top1": the style classifier (trained on the `train` comments) on the test references}.
    Records are PCap records: personality, comment (and additional_comments in test)."""
    from ofa_sic.metrics.caption_eval import CaptionEvaluator
    from ofa_sic.metrics.style_accuracy import reference_style_accuracy
    from ofa_sic.metrics.style_classifier import train_style_classifier

    references = [[record["comment"], *record["additional_comments"]] for record in test]
    loo = []
    with CaptionEvaluator(meteor=False, spice=False) as evaluator:
        for k in range(TEST_REFERENCES):
            held_out = {str(i): refs[k] for i, refs in enumerate(references)}
            others = {str(i): refs[:k] + refs[k + 1:] for i, refs in enumerate(references)}
            loo.append(evaluator.evaluate(others, held_out).scores()["CIDEr"])
    classifier = train_style_classifier([r["comment"] for r in train], [r["personality"] for r in train])
    overall, _ = reference_style_accuracy(classifier, references, [r["personality"] for r in test])
    return {"reference_loo_cider": sum(loo) / len(loo), "reference_style_top1": overall["reference_style_top1"],
            "chance_style_top1": 100.0 / len(STYLES)}

"""A small synthetic data set in Personality-Captions' exact on-disk layout, plus a matching GPT-2 BPE.

`make_demo_data(out_dir)` writes:
    personality_captions/train.json, val.json, test.json, personalities.txt
    yfcc_images/{image_hash}.jpg
    bpe/encoder.json, bpe/vocab.bpe, bpe/dict.txt
    attributes.json: what each image shows, {image_hash: {"shape", "color", "count", "background"}}
      (e.g. {"shape": "circle", "color": "red", "count": 2, "background": "gray"}), which
      `ofa-sic evaluate --attributes` uses to score how often captions state the content correctly

Each image shows one, two or three shapes (circle, square or triangle) of one colour on a plain background,
and every caption says what is drawn ("two red circles on gray"). Five styles word and punctuate that
description differently (see TEMPLATES), so a small model can learn both the picture and the style.
As in PCap, train and val records have one comment, test records have a comment and four
additional_comments, all five in the record's style; every val and test record has its own image, and a
train image has one record by default or several (`train_references`), each with another template; val and test records carry ranking
candidates. Image hashes are hex strings of 30 to 32 characters, like PCap's. The data has no defects.
The same seed gives the same files.

The BPE files follow GPT-2's format, so fairseq's `gpt2_bpe_utils.get_encoder` reads them:
encoder.json maps byte-level token strings to ids, vocab.bpe holds "#version: 0.2" and then one merge per
line, dict.txt is fairseq's dictionary with one "{id} {count}" line per encoder id.
"""
import collections
import json
import os
import random
import string
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from PIL import Image, ImageDraw
from tqdm import tqdm

from ofa_sic.data.prepared_layout import StagedOutputs

PERSONALITIES_TXT = """Positive Traits
Happy
Sweet (Kind)

Neutral Traits
Formal

Negative Traits
Gloomy
Sarcastic
"""
STYLES = ("Happy", "Sweet (Kind)", "Formal", "Gloomy", "Sarcastic")

# Six templates per style; {obj} is e.g. "two red circles", {bg} the background colour.
TEMPLATES = {
    "Happy": (
        "what a lovely {obj} on {bg}!",
        "yay, {obj} on a {bg} background!",
        "i love {obj} on {bg}, so cheerful!",
        "{obj} on {bg}! this makes me smile!",
        "look at {obj} on {bg}, how fun!",
        "{obj} on {bg}! what a happy day!",
    ),
    "Sweet (Kind)": (
        "aww, {obj} resting gently on {bg}, so sweet",
        "{obj} snuggled up on soft {bg}, bless them",
        "such a dear little scene, {obj} on {bg}",
        "aww, {obj} on {bg}, they look so kind",
        "{obj} waiting patiently on {bg}, how sweet",
        "i wish {obj} on {bg} all the best",
    ),
    "Formal": (
        "The image shows {obj} on a {bg} background.",
        "This picture depicts {obj} against a {bg} backdrop.",
        "Shown here: {obj} on a {bg} field.",
        "The photograph contains {obj} placed on {bg}.",
        "One observes {obj} positioned on a {bg} surface.",
        "The composition consists of {obj} on a {bg} background.",
    ),
    "Gloomy": (
        "{obj} lost in {bg}...",
        "just {obj}, alone on {bg}...",
        "{obj} fading into the {bg} void...",
        "nothing but {obj} on cold {bg}...",
        "{obj} on {bg}, waiting for nothing...",
        "sadly, only {obj} on dull {bg}...",
    ),
    "Sarcastic": (
        "oh great, {obj} on {bg}. how original.",
        "sure, because the world needed {obj} on {bg}.",
        "wow, {obj} on {bg}. groundbreaking.",
        "yeah, {obj} on {bg}, very exciting. not.",
        "{obj} on {bg}? truly the art of our time.",
        "oh look, {obj} on {bg}. i am thrilled.",
    ),
}
SHAPE_COLORS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (40, 70, 220),
    "yellow": (240, 220, 30),
    "purple": (140, 50, 180),
    "orange": (250, 140, 20),
}
BACKGROUNDS = {"white": (250, 250, 250), "black": (15, 15, 15), "gray": (128, 128, 128)}
SHAPES = ("circle", "square", "triangle")
COUNT_WORDS = {1: "a", 2: "two", 3: "three"}
VAL_CANDIDATES = 100
TEST_500_CANDIDATES = 500
BPE_VOCAB_SIZE = 800
#: the PCap-like profile's captions have a larger vocabulary (ofa_sic.data.demo_pcap_profile)
PCAP_LIKE_BPE_VOCAB_SIZE = 1500
#: how human-like comments score, written by a profile that measures it (demo_pcap_profile.caption_ceilings)
CEILINGS_FILE = "ceilings.json"
#: What each image shows, {image_hash: {"shape", "color", "count", "background"}}, for content accuracy.
ATTRIBUTES_FILE = "attributes.json"
PROMPTS = (" what does the image describe?", " what does the image describe? reply in personality")


# ----------------------------------------------------------------------------------------------------
# Scenes and captions


def _random_scene(rng: random.Random) -> Dict[str, Any]:
    """Draw the content of one image: shape, colour, count, background."""
    return {
        "shape": rng.choice(SHAPES),
        "color": rng.choice(sorted(SHAPE_COLORS)),
        "count": rng.choice(sorted(COUNT_WORDS)),
        "background": rng.choice(sorted(BACKGROUNDS)),
    }


def describe(scene: Dict[str, Any]) -> Tuple[str, str]:
    """Return the ({obj}, {bg}) phrases of a scene, e.g. ("two red circles", "gray")."""
    plural = "s" if scene["count"] > 1 else ""
    return f"{COUNT_WORDS[scene['count']]} {scene['color']} {scene['shape']}{plural}", scene["background"]


def caption(scene: Dict[str, Any], style: str, template: int) -> str:
    """Return caption number `template` of `style` for `scene`."""
    obj, bg = describe(scene)
    return TEMPLATES[style][template].format(obj=obj, bg=bg)


def draw_scene(scene: Dict[str, Any], rng: random.Random, size: int) -> Image.Image:
    """Draw a scene: its shapes in distinct cells of a 2x2 grid, random sizes and offsets inside the cells.

    Each shape spans 55-90% of its cell (26-43 px in a 96 px image): large enough for the demo's small
    ResNet to tell circles, squares and triangles apart within the demo's training budget (with a 3x3
    grid, shapes of 14-26 px stayed near chance for 9 epochs while colour and count were learned).
    """
    image = Image.new("RGB", (size, size), BACKGROUNDS[scene["background"]])
    draw = ImageDraw.Draw(image)
    cell = size / 2
    color = SHAPE_COLORS[scene["color"]]
    for index in rng.sample(range(4), scene["count"]):
        side = rng.uniform(0.55, 0.9) * cell
        slack = cell - side
        left = (index % 2) * cell + rng.uniform(0, slack)
        top = (index // 2) * cell + rng.uniform(0, slack)
        box = (left, top, left + side, top + side)
        if scene["shape"] == "circle":
            draw.ellipse(box, fill=color)
        elif scene["shape"] == "square":
            draw.rectangle(box, fill=color)
        else:
            draw.polygon([(left + side / 2, top), (left, top + side), (left + side, top + side)], fill=color)
    return image


def _image_hash(rng: random.Random, number: int, taken: set) -> str:
    """Return a new hex hash; like PCap's, most have 32 characters and a few 30 or 31."""
    while True:
        image_hash = f"{rng.getrandbits(128):032x}"
        if number % 25 == 7:
            image_hash = image_hash[: 30 + number % 2]
        if image_hash not in taken:
            taken.add(image_hash)
            return image_hash


def _make_records(split: str, n: int, rng: random.Random, taken: set, styles: Sequence[str], comments) -> List[Dict[str, Any]]:
    """The records of one split (with their scenes, removed before writing): n images, the styles in turn
    and shuffled, each image a new scene. `comments(scene, style)` gives an image's comments: a test image
    gets one record with the first as its comment and the others as additional comments; any other image
    gets one record per comment (PCap's layout has one comment per train record)."""
    image_styles = [styles[i % len(styles)] for i in range(n)]
    rng.shuffle(image_styles)
    records = []
    for number, style in enumerate(image_styles):
        scene = _random_scene(rng)
        image_hash = _image_hash(rng, number, taken)
        texts = comments(scene, style)
        record = {"personality": style, "image_hash": image_hash, "_scene": scene}
        if split == "test":
            records.append({**record, "comment": texts[0], "additional_comments": texts[1:]})
        else:
            records.extend({**record, "comment": text} for text in texts)
    return records


def _make_template_split(split: str, n: int, rng: random.Random, taken: set, references: int) -> List[Dict[str, Any]]:
    """The template profile's records: five templates of the style per test image; `references` per train
    image, each another template of the image's style."""

    def comments(scene, style):
        count = len(TEMPLATES[style])
        if split == "test":
            templates = rng.sample(range(count), 5)
        else:  # one reference draws as earlier versions did, so that the default data set stays the same
            templates = [rng.randrange(count)] if references == 1 else rng.sample(range(count), references)
        return [caption(scene, style, t) for t in templates]

    return _make_records(split, n, rng, taken, STYLES, comments)


def _make_pcap_like_split(split: str, n: int, rng: random.Random, taken: set, references: int) -> List[Dict[str, Any]]:
    """The PCap-like profile's records (ofa_sic.data.demo_pcap_profile): five independently drawn comments
    per test image, `references` per train image."""
    from ofa_sic.data.demo_pcap_profile import STYLES as PROFILE_STYLES, TEST_REFERENCES, pcap_like_caption

    count = TEST_REFERENCES if split == "test" else references
    return _make_records(split, n, rng, taken, list(PROFILE_STYLES),
                         lambda scene, style: [pcap_like_caption(scene, style, rng) for _ in range(count)])


def _template_candidate(rng: random.Random) -> str:
    """A random caption of the template profile (a ranking candidate)."""
    style = rng.choice(STYLES)
    return caption(_random_scene(rng), style, rng.randrange(len(TEMPLATES[style])))


def _pcap_like_candidate(rng: random.Random) -> str:
    """A random comment of the PCap-like profile (a ranking candidate)."""
    from ofa_sic.data.demo_pcap_profile import STYLES as PROFILE_STYLES, pcap_like_caption

    return pcap_like_caption(_random_scene(rng), rng.choice(sorted(PROFILE_STYLES)), rng)


@dataclass
class DemoProfile:
    """What a profile of the demo data writes: its styles, personalities.txt, the records of a split
    (make_split(split, n, rng, taken, references)), a random caption for the ranking candidates
    (draw_candidate(rng)), the BPE vocabulary size, and the ceilings it measures from the train and test
    records (ceilings(train, test) -> dict for CEILINGS_FILE; None: none)."""

    styles: Sequence[str]
    personalities: str
    make_split: Callable
    draw_candidate: Callable[[random.Random], str]
    bpe_vocab_size: int
    ceilings: Optional[Callable] = None


def _profile(name: str) -> DemoProfile:
    if name == "template":
        return DemoProfile(STYLES, PERSONALITIES_TXT, _make_template_split, _template_candidate, BPE_VOCAB_SIZE)
    if name == "pcap":
        from ofa_sic.data.demo_pcap_profile import STYLES as PROFILE_STYLES, caption_ceilings, personalities_txt

        return DemoProfile(tuple(PROFILE_STYLES), personalities_txt(), _make_pcap_like_split, _pcap_like_candidate,
                           PCAP_LIKE_BPE_VOCAB_SIZE, caption_ceilings)
    raise ValueError(f"unknown demo profile {name!r}; use template or pcap")


def _add_candidates(records: List[Dict[str, Any]], key: str, size: int, rng: random.Random,
                    draw: Callable[[random.Random], str]) -> None:
    """Give each record `size` ranking candidates: its comment at a random place among random other captions
    (`draw(rng)` makes one)."""
    for record in records:
        others = set()
        while len(others) < size - 1:
            text = draw(rng)
            if text != record["comment"]:
                others.add(text)
        candidates = sorted(others)
        rng.shuffle(candidates)
        candidates.insert(rng.randrange(size), record["comment"])
        record[key] = candidates


# ----------------------------------------------------------------------------------------------------
# BPE


def _bpe_corpus(texts: Iterable[str], styles: Sequence[str] = STYLES) -> List[str]:
    """Return the BPE training lines: each text as the model sees it (" " + text), raw and lower-cased
    without punctuation, plus the task prompts and the style names."""
    strip = str.maketrans("", "", string.punctuation)
    lines = []
    for text in texts:
        lines.append(" " + text)
        lines.append(" " + " ".join(text.lower().translate(strip).split()))
    for _ in range(10):  # often enough for min_frequency=2 to merge them into whole words
        lines.extend(PROMPTS)
        lines.extend(" " + style for style in styles)
        lines.extend(" " + style.lower() for style in styles)
    return lines


def train_bpe(
    texts: Iterable[str], vocab_size: int = BPE_VOCAB_SIZE, styles: Sequence[str] = STYLES
) -> Tuple[Dict[str, int], List[Tuple[str, str]], Dict[int, int]]:
    """Train a GPT-2-style byte-level BPE on `texts`; return (encoder, merges, count per id).

    The encoder maps byte-level token strings to ids and holds all 256 byte symbols, so any text encodes.
    Counts are each id's occurrences in the training lines plus one, so every id has count >= 1.
    """
    from tokenizers import ByteLevelBPETokenizer  # imported here: only the demo needs it

    corpus = _bpe_corpus(texts, styles)
    tokenizer = ByteLevelBPETokenizer(add_prefix_space=False)
    tokenizer.train_from_iterator(corpus, vocab_size=vocab_size, min_frequency=2, show_progress=False, special_tokens=[])
    model = json.loads(tokenizer._tokenizer.to_str())["model"]
    encoder = dict(sorted(model["vocab"].items(), key=lambda kv: kv[1]))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    counts = collections.Counter({i: 1 for i in encoder.values()})
    for encoding in tokenizer.encode_batch(corpus):
        counts.update(encoding.ids)
    return encoder, merges, dict(counts)


def _write_bpe(bpe_dir: str, texts: Iterable[str], staged: StagedOutputs, styles: Sequence[str] = STYLES,
               vocab_size: int = BPE_VOCAB_SIZE) -> int:
    """Write encoder.json, vocab.bpe and dict.txt to `bpe_dir`; return the vocabulary size."""
    encoder, merges, counts = train_bpe(texts, vocab_size, styles)
    with staged.open(os.path.join(bpe_dir, "encoder.json")) as f:
        json.dump(encoder, f, ensure_ascii=True)
    with staged.open(os.path.join(bpe_dir, "vocab.bpe")) as f:
        # fairseq drops the first line (the version) and whatever follows the last "\n": end with "\n".
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    with staged.open(os.path.join(bpe_dir, "dict.txt")) as f:
        for token_id, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            f.write(f"{token_id} {count}\n")
    return len(encoder)


# ----------------------------------------------------------------------------------------------------
# Entry point


def make_demo_data(
    out_dir: str,
    seed: int = 0,
    n_train: int = 2000,
    n_valid: int = 100,
    n_test: int = 100,
    image_px: int = 96,
    train_references: int = 1,
    quiet: bool = False,
    layout: str = "pcap",
    profile: str = "template",
) -> Dict[str, Any]:
    """Write the demo data set to `out_dir` (see the module docstring); return a summary dict.

    `layout` "pcap" writes PCap's layout; "flickrstyle", "senticap" or "captions" write the same kind of
    pictures and captions in that data set's layout (`ofa_sic.data.demo_layouts`).

    `profile` "template" writes the template captions of this module; "pcap" comments with PCap's statistics
    (ofa_sic.data.demo_pcap_profile; PCap's layout only), and `ceilings.json` with how human-like comments
    score on them.

    `n_train`, `n_valid`, `n_test` are image counts; `train_references` is the number of captions
    (records) per train image, 1 to 6 (the templates of a style); `image_px` is the side of the square
    images. All files appear together at the end (written under temporary names first).
    """
    for name, value in (("n_train", n_train), ("n_valid", n_valid), ("n_test", n_test), ("image_px", image_px),
                        ("train_references", train_references)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if image_px < 24:
        raise ValueError(f"image_px must be at least 24 so that the shapes stay recognisable, got {image_px}")
    templates = min(len(t) for t in TEMPLATES.values())
    if train_references > templates:
        raise ValueError(f"train_references can be at most {templates} (the templates of a style), got {train_references}")
    chosen = _profile(profile)
    if profile != "template" and layout != "pcap":
        raise ValueError(f"the {profile} profile is written in PCap's layout only, not {layout}")
    if layout != "pcap":
        from ofa_sic.data.demo_layouts import make_layout_demo

        sizes = {"train": n_train, "val": n_valid, "test": n_test}
        return make_layout_demo(out_dir, layout, seed, sizes, image_px, train_references, quiet)
    rng = random.Random(seed)
    taken: set = set()
    splits = {
        "train": chosen.make_split("train", n_train, rng, taken, train_references),
        "val": chosen.make_split("val", n_valid, rng, taken, 1),
        "test": chosen.make_split("test", n_test, rng, taken, 1),
    }
    _add_candidates(splits["val"], "candidates", VAL_CANDIDATES, rng, chosen.draw_candidate)
    _add_candidates(splits["test"], "candidates", VAL_CANDIDATES, rng, chosen.draw_candidate)
    _add_candidates(splits["test"], "500_candidates", TEST_500_CANDIDATES, rng, chosen.draw_candidate)

    pcap_dir = os.path.join(out_dir, "personality_captions")
    image_dir = os.path.join(out_dir, "yfcc_images")
    bpe_dir = os.path.join(out_dir, "bpe")
    for folder in (pcap_dir, image_dir, bpe_dir):
        os.makedirs(folder, exist_ok=True)

    scenes = {record["image_hash"]: record["_scene"] for records in splits.values() for record in records}
    with StagedOutputs() as staged:
        for image_hash, scene in tqdm(scenes.items(), desc="demo images", unit="img", disable=quiet):
            image = draw_scene(scene, rng, image_px)
            with staged.open(os.path.join(image_dir, image_hash + ".jpg"), binary=True) as f:
                image.save(f, format="JPEG", quality=90)
        with staged.open(os.path.join(out_dir, ATTRIBUTES_FILE)) as f:
            json.dump(scenes, f, indent=0)
        texts = []
        for split, records in splits.items():
            for record in records:
                del record["_scene"]
                texts.append(record["comment"])
                texts.extend(record.get("additional_comments", []))
            with staged.open(os.path.join(pcap_dir, f"{split}.json")) as f:
                json.dump(records, f)
        with staged.open(os.path.join(pcap_dir, "personalities.txt")) as f:
            f.write(chosen.personalities)
        bpe_size = _write_bpe(bpe_dir, texts, staged, chosen.styles, chosen.bpe_vocab_size)
        ceilings = None
        if chosen.ceilings is not None:
            ceilings = chosen.ceilings(splits["train"], splits["test"])
            with staged.open(os.path.join(out_dir, CEILINGS_FILE)) as f:
                json.dump(ceilings, f, indent=2)

    summary = {
        "layout": "pcap",
        "prepare_command": ["prepare-pcap", "--pcap-dir", pcap_dir, "--image-dir", image_dir],
        "pcap_dir": pcap_dir,
        "image_dir": image_dir,
        "bpe_dir": bpe_dir,
        "records": {split: len(records) for split, records in splits.items()},
        "images": {split: len({r["image_hash"] for r in records}) for split, records in splits.items()},
        "attributes": os.path.join(out_dir, ATTRIBUTES_FILE),
        "styles": list(chosen.styles),
        "bpe_vocab_size": bpe_size,
        "seed": seed,
        "profile": profile,
        "ceilings": ceilings,
    }
    return summary

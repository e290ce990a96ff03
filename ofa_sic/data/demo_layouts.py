"""The demo data in the on-disk layouts of FlickrStyle10K, SentiCap and a captions file, so that
`prepare-flickrstyle`, `prepare-senticap` and `prepare-captions` can be run end to end without a download.

The pictures and caption templates are the PCap demo's (`ofa_sic.data.demo`); each layout borrows the
demo styles whose wording fits its own styles:
- flickrstyle: FlickrStyle_v0.9/humor/{train.p, funny_train.txt} (the Sarcastic templates),
  romantic/{train.p, romantic_train.txt} (Sweet (Kind)), Flickr8k.token.txt (five Formal captions per
  image, for --factual-captions) and Flicker8k_Dataset/{name}.jpg with Flickr8k-like names. As in the
  release, train.p is a protocol-0 pickle of a list of unicode names (Python 2 writes the same bytes),
  the caption files have CRLF line ends and no line break after the last line. Every image has one
  caption per style; the converter splits the images.
- senticap: senticap_dataset/data/senticap_dataset.json (one line) and val2014/COCO_val2014_*.jpg;
  positive captions use the Happy templates, negative the Gloomy ones, three per entry. Train and val
  images have one entry of one polarity; as in the release, every test image has two entries (one per
  polarity) with the same imgid.
- captions: captions.jsonl (image, style, caption, split) and images/; the five demo styles, one
  style per image, `train_references` captions per train image, one per val image, five per test image.
attributes.json is keyed by the image file name, which the converters write as the image_id.
"""
import json
import os
import pickle
import random
from typing import Any, Dict, List

from tqdm import tqdm

from ofa_sic.data.demo import ATTRIBUTES_FILE, STYLES, TEMPLATES, _random_scene, _write_bpe, caption, draw_scene
from ofa_sic.data.prepared_layout import StagedOutputs

LAYOUTS = ("flickrstyle", "senticap", "captions")
FLICKR_STYLES = {"humor": ("Sarcastic", "funny_train.txt"), "romantic": ("Sweet (Kind)", "romantic_train.txt")}
FACTUAL_TEMPLATES = "Formal"
SENTICAP_TEMPLATES = {1: "Happy", 0: "Gloomy"}
CAPTIONS_PER_SENTICAP_ENTRY = 3


def _captions(rng: random.Random, scene: Dict[str, Any], style: str, k: int) -> List[str]:
    """`k` captions of `scene` in `style`, each with another template."""
    return [caption(scene, style, t) for t in rng.sample(range(len(TEMPLATES[style])), k)]


def release_lines(lines: List[str]) -> bytes:
    """Caption lines as the FlickrStyle release stores them: CRLF line ends, none after the last line."""
    return "\r\n".join(lines).encode("utf-8")


def python2_name_list(names: List[str]) -> bytes:
    """A protocol-0 pickle of a list of unicode names, byte for byte what Python 2's pickle writes."""
    return pickle.dumps(list(names), protocol=0)


def _flickrstyle(out_dir: str, rng: random.Random, n_images: int, staged: StagedOutputs):
    """Files of the flickrstyle layout: ({image name: scene}, texts, image folder, prepare command)."""
    root, image_dir = os.path.join(out_dir, "FlickrStyle_v0.9"), os.path.join(out_dir, "Flicker8k_Dataset")
    scenes = {}
    while len(scenes) < n_images:
        scenes[f"{rng.randrange(10 ** 9, 10 ** 10)}_{rng.getrandbits(40):010x}.jpg"] = _random_scene(rng)
    names = list(scenes)
    texts = []
    for folder, (style, caption_file) in FLICKR_STYLES.items():
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        lines = [_captions(rng, scenes[name], style, 1)[0] for name in names]
        texts += lines
        with staged.open(os.path.join(root, folder, "train.p"), binary=True) as f:
            f.write(python2_name_list(names))
        with staged.open(os.path.join(root, folder, caption_file), binary=True) as f:
            f.write(release_lines(lines))
    factual = [(name, text) for name in names for text in _captions(rng, scenes[name], FACTUAL_TEMPLATES, 5)]
    texts += [text for _, text in factual]
    token_file = os.path.join(out_dir, "Flickr8k.token.txt")
    with staged.open(token_file) as f:
        previous, k = None, 0
        for name, text in factual:
            k = k + 1 if name == previous else 0
            previous = name
            f.write(f"{name}#{k}\t{text}\n")
    command = ["prepare-flickrstyle", "--flickrstyle-dir", root, "--image-dir", image_dir,
               "--factual-captions", token_file]
    return scenes, texts, image_dir, command


def _senticap(out_dir: str, rng: random.Random, sizes: Dict[str, int], staged: StagedOutputs):
    """Files of the senticap layout (see `_flickrstyle` for what is returned)."""
    root, image_dir = os.path.join(out_dir, "senticap_dataset"), os.path.join(out_dir, "val2014")
    os.makedirs(os.path.join(root, "data"), exist_ok=True)
    scenes, entries, texts = {}, [], []
    coco_ids = rng.sample(range(1, 600000), sum(sizes.values()))
    for split, n in sizes.items():
        for imgid in range(len(entries), len(entries) + n):
            name = f"COCO_val2014_{coco_ids.pop():012d}.jpg"
            scenes[name] = _random_scene(rng)
            polarities = (1, 0) if split == "test" else (rng.choice((1, 0)),)
            for sentiment in polarities:
                sentences = []
                for raw in _captions(rng, scenes[name], SENTICAP_TEMPLATES[sentiment], CAPTIONS_PER_SENTICAP_ENTRY):
                    tokens = raw.lower().replace(",", " ").replace("!", " ").replace(".", " ").split()
                    sentences.append({"tokens": tokens, "word_sentiment": [0] * len(tokens), "sentiment": sentiment,
                                      "raw": raw})
                    texts.append(raw)
                entries.append({"imgid": imgid, "sentences": sentences, "split": split, "filename": name})
    with staged.open(os.path.join(root, "data", "senticap_dataset.json")) as f:
        json.dump({"images": entries}, f)
    return scenes, texts, image_dir, ["prepare-senticap", "--senticap-dir", root, "--image-dir", image_dir]


def _captions_file(out_dir: str, rng: random.Random, sizes: Dict[str, int], train_references: int,
                   staged: StagedOutputs):
    """Files of the captions layout (see `_flickrstyle` for what is returned)."""
    image_dir, path = os.path.join(out_dir, "images"), os.path.join(out_dir, "captions.jsonl")
    per_image = {"train": train_references, "val": 1, "test": 5}
    scenes, texts = {}, []
    with staged.open(path) as f:
        for split, n in sizes.items():
            for i in range(n):
                name = f"{split}_{i:05d}.jpg"
                scenes[name] = _random_scene(rng)
                style = STYLES[(len(scenes) - 1) % len(STYLES)]
                for text in _captions(rng, scenes[name], style, per_image[split]):
                    f.write(json.dumps({"image": name, "style": style, "caption": text, "split": split}) + "\n")
                    texts.append(text)
    return scenes, texts, image_dir, ["prepare-captions", "--captions", path, "--image-dir", image_dir]


def make_layout_demo(out_dir: str, layout: str, seed: int, sizes: Dict[str, int], image_px: int,
                     train_references: int, quiet: bool) -> Dict[str, Any]:
    """Write the demo data in `layout` (one of LAYOUTS) to `out_dir`; return a summary with the
    `ofa-sic` arguments that convert it ("prepare_command", without --out)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be pcap or one of {', '.join(LAYOUTS)}, got {layout!r}")
    rng = random.Random(seed)
    os.makedirs(out_dir, exist_ok=True)
    bpe_dir = os.path.join(out_dir, "bpe")
    with StagedOutputs() as staged:
        if layout == "flickrstyle":
            scenes, texts, image_dir, command = _flickrstyle(out_dir, rng, sum(sizes.values()), staged)
        elif layout == "senticap":
            scenes, texts, image_dir, command = _senticap(out_dir, rng, sizes, staged)
        else:
            scenes, texts, image_dir, command = _captions_file(out_dir, rng, sizes, train_references, staged)
        os.makedirs(image_dir, exist_ok=True)
        for name, scene in tqdm(scenes.items(), desc="demo images", unit="img", disable=quiet):
            with staged.open(os.path.join(image_dir, name), binary=True) as f:
                draw_scene(scene, rng, image_px).save(f, format="JPEG", quality=90)
        with staged.open(os.path.join(out_dir, ATTRIBUTES_FILE)) as f:
            json.dump(scenes, f, indent=0)
        os.makedirs(bpe_dir, exist_ok=True)
        bpe_size = _write_bpe(bpe_dir, texts, staged)
    return {"layout": layout, "image_dir": image_dir, "bpe_dir": bpe_dir, "images": len(scenes),
            "captions": len(texts), "attributes": os.path.join(out_dir, ATTRIBUTES_FILE),
            "prepare_command": command, "bpe_vocab_size": bpe_size, "seed": seed}


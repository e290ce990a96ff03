"""Where does the demo model's knowledge of an image's content live, and where is it lost?

For a checkpoint trained on the demo data (`ofa-sic demo-data`, whose attributes.json records each
image's colour, shape, count and background), two diagnostics of the image path:

1. Linear probes. A logistic regression per attribute, fitted on train images and scored on test
   images, reads the attribute from (a) the ResNet's patch features, max- and mean-pooled over the
   patch grid ([B, 2C]; C = 1024 for ofa_demo); (b) the encoder's
   output at the image positions, pooled the same way ([B, 2 x D]); (c) the encoder's output at
   the prompt-token positions, mean-pooled ([B, D]). An attribute the ResNet features carry but the
   captions get wrong is lost after the backbone; one the features do not carry is not seen at all.
2. Swapping. The captions are generated again from encoder outputs in which the image positions
   (or the prompt positions) of each test image are replaced by those of the previous image in the
   batch. For each attribute it prints how often the caption then states the attribute of its own
   image and how often that of the image whose positions it received: the decoder reads an
   attribute from wherever the caption follows the swap.

    python benchmarks/content_diagnostics.py --path demo_out/ce/checkpoint_best.pt --demo-dir demo_out

Uses beam 5 / max_len_b 16 / no-repeat 3 (the evaluation setting), on the CPU.
"""
import argparse
import json
import os
from typing import Dict, List, Tuple

import numpy as np
import torch

from ofa_sic.data.caption_dataset import rows_by_image
from ofa_sic.evaluation.content_accuracy import ATTRIBUTES, stated_attributes
from ofa_sic.generation.captioner import Captioner
from ofa_sic.generation.options import GenerationOptions
from ofa_sic.models.encoder import ENCODER_INPUTS


def one_row_per_image(dataset, limit: int) -> List[int]:
    """Indices of the first row of each distinct image (each demo image has one style), at most `limit`."""
    return [rows[0] for rows in rows_by_image(dataset.rows)[:limit]]


def batches(task, model, dataset, rows: List[int], size: int):
    """Yield (image ids, normalised sample, encoder output) for `rows`, `size` rows at a time."""
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        sample = task.normalized(dataset.collater([dataset[i] for i in chunk]), model)
        net_input = sample["net_input"]
        with torch.no_grad():
            encoder_out = model.encoder(**{key: net_input[key] for key in ENCODER_INPUTS})
        yield [dataset.row(i)["image_id"] for i in chunk], sample, encoder_out


def pooled_features(task, model, dataset, rows: List[int]) -> Tuple[List[str], Dict[str, np.ndarray]]:
    """Image ids and the three probed representations: {"resnet", "encoder_image", "encoder_prompt"}."""
    ids, parts = [], {"resnet": [], "encoder_image": [], "encoder_prompt": []}
    for batch_ids, sample, encoder_out in batches(task, model, dataset, rows, 50):
        ids += batch_ids
        with torch.no_grad():
            grid = model.encoder.embed_images(sample["net_input"]["patch_images"])  # [B, C, h, w]
        parts["resnet"].append(torch.cat([grid.amax((2, 3)), grid.mean((2, 3))], 1))
        states = encoder_out["encoder_out"][0].transpose(0, 1)  # [B, P + L, D]
        patches = states.size(1) - sample["net_input"]["src_tokens"].size(1)
        parts["encoder_image"].append(torch.cat([states[:, :patches].amax(1), states[:, :patches].mean(1)], 1))
        parts["encoder_prompt"].append(states[:, patches:].mean(1))
    return ids, {name: torch.cat(chunks).float().numpy() for name, chunks in parts.items()}


def probe_accuracy(train_x: np.ndarray, train_y: List, test_x: np.ndarray, test_y: List) -> float:
    """Test accuracy of a logistic regression fitted on standardised train features."""
    from sklearn.linear_model import LogisticRegression

    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    model = LogisticRegression(max_iter=3000).fit((train_x - mean) / std, train_y)
    return float((model.predict((test_x - mean) / std) == np.asarray(test_y)).mean())


def swapped(encoder_out: dict, patches: int, part: str) -> dict:
    """A copy of `encoder_out` whose image ("image") or prompt ("prompt") positions come from the
    previous row of the batch (row 0 gets the last row's)."""
    states = encoder_out["encoder_out"][0].clone()  # [T, B, D]
    rolled = states.roll(1, dims=1)
    if part == "image":
        states[:patches] = rolled[:patches]
    else:
        states[patches:] = rolled[patches:]
    return {**encoder_out, "encoder_out": [states]}


def swap_test(captioner: Captioner, dataset, rows: List[int], attributes: Dict) -> Dict[str, Dict[str, Tuple[float, float]]]:
    """{part: {attribute: (share stating its own image's value, share stating the donor image's)}}."""
    task, model = captioner.task, captioner.model
    counts = {part: {name: [0, 0] for name in ATTRIBUTES} for part in ("none", "image", "prompt")}
    total = 0
    for ids, sample, encoder_out in batches(task, model, dataset, rows, 64):
        donors = ids[-1:] + ids[:-1]
        patches = encoder_out["encoder_out"][0].size(0) - sample["net_input"]["src_tokens"].size(1)
        total += len(ids)
        for part in counts:
            given = encoder_out if part == "none" else swapped(encoder_out, patches, part)
            with torch.no_grad():
                output = captioner.generator.generate([model], sample, encoder_outs=[given])
            for hyps, own, donor in zip(output, ids, donors):
                stated = stated_attributes(task.decode(hyps[0]["tokens"]))
                for name in ATTRIBUTES:
                    counts[part][name][0] += stated[name] == {attributes[own][name]}
                    counts[part][name][1] += stated[name] == {attributes[donor][name]}
    return {part: {name: (own / total, donor / total) for name, (own, donor) in per.items()} for part, per in counts.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", required=True, help="checkpoint trained on the demo data")
    parser.add_argument("--demo-dir", required=True, help="the demo folder: DIR/data (prepare-pcap) and DIR/raw/attributes.json")
    parser.add_argument("--train-images", type=int, default=1500, help="train images to fit the probes on")
    parser.add_argument("--test-images", type=int, default=500, help="test images to score the probes and the swaps on")
    args = parser.parse_args(argv)
    attributes_file = os.path.join(args.demo_dir, "raw", "attributes.json")
    with open(attributes_file) as handle:
        attributes = json.load(handle)
    captioner = Captioner(args.path, GenerationOptions(), data=os.path.join(args.demo_dir, "data"), cpu=True)
    task, model = captioner.task, captioner.model
    splits = {}
    for split, limit in (("train", args.train_images), ("test", args.test_images)):
        task.load_dataset(split)
        dataset = task.dataset(split)
        splits[split] = (dataset, one_row_per_image(dataset, limit))

    features = {split: pooled_features(task, model, dataset, rows) for split, (dataset, rows) in splits.items()}
    print("linear probe, test accuracy (chance = the most frequent value):")
    for name in ATTRIBUTES:
        labels = {split: [attributes[i][name] for i in ids] for split, (ids, _) in features.items()}
        chance = max(labels["test"].count(v) for v in set(labels["test"])) / len(labels["test"])
        scores = ", ".join(
            f"{part} {100 * probe_accuracy(features['train'][1][part], labels['train'], features['test'][1][part], labels['test']):.0f}%"
            for part in features["train"][1]
        )
        print(f"  {name:>10}: {scores} (chance {100 * chance:.0f}%)")

    dataset, rows = splits["test"]
    print("swap test: the caption states the value of its own image / of the image whose positions it got:")
    for part, per in swap_test(captioner, dataset, rows, attributes).items():
        label = {"none": "no swap", "image": "image positions swapped", "prompt": "prompt positions swapped"}[part]
        print(f"  {label:>25}: " + ", ".join(f"{name} {100 * own:.0f}/{100 * donor:.0f}%" for name, (own, donor) in per.items()))


if __name__ == "__main__":
    main()

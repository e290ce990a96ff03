"""The style_caption dataset: TSV rows -> OFA caption examples (docs/ofa-spec.md §4).

TSV columns (written by `ofa-sic prepare-pcap`): uniq_id, image_id, style, captions, image, where
`captions` holds one caption (train) or all references joined by `&&` (valid/test) and `image` is a
url-safe base64 JPEG.

Example: source = <s> prompt(style) </s>; patch_image [3, S, S]; patch_mask True;
target = BPE(" " + caption) </s>; prev_output_tokens = <s> BPE(" " + caption).
Training targets are one cleaned caption cut to `max_tgt_length` words; evaluation targets carry
all references (`&&`-joined) and are not cut. For SCST (`one_example_per_image`) an example is an
image: the rows that share its image_id and style are one example whose target joins all their
captions, so every hypothesis is rewarded against every training caption of its image (OFA's stage-2
file has one row per image with its references joined; `ofa-sic prepare-pcap` writes one row per
caption, which the CE stage needs).
"""
from typing import Dict, List, Optional

import numpy as np
import torch
from fairseq.data import FairseqDataset, data_utils

from ofa_sic.data.image_transform import CaptionImageTransform
from ofa_sic.data.check import caption_problems
from ofa_sic.data.images import ImageDecodeError, decode_base64_image
from ofa_sic.data.prepared_layout import COLUMNS
from ofa_sic.data.prompts import StylePrompt
from ofa_sic.data.text import REFERENCE_SEPARATOR, CaptionCleaner, TextCodec, collate_tokens
from ofa_sic.data.tsv_reader import IndexedTSV

def rows_by_image(rows: IndexedTSV) -> List[List[int]]:
    """Row indices grouped by (image_id, style), groups in order of their first row: [[0, 3], [1], ...].

    Reads only the first columns of each row (never the image)."""
    groups: Dict[tuple, List[int]] = {}
    key_columns = COLUMNS.index("style") + 1
    for index in range(len(rows)):
        fields = rows.head(index, key_columns)
        groups.setdefault((fields[COLUMNS.index("image_id")], fields[-1]), []).append(index)
    return list(groups.values())


def encoder_inputs(sources: List[torch.Tensor], patch_images: torch.Tensor, patch_masks: torch.Tensor,
                   pad: int) -> Dict[str, torch.Tensor]:
    """The encoder's part of a batch's net_input: src_tokens [B, L] (the prompts `sources`, right-padded
    with `pad`), src_lengths [B], patch_images [B, 3, S, S] (uint8) and patch_masks [B] (bool)."""
    src_tokens = collate_tokens(sources, pad)
    return {
        "src_tokens": src_tokens,
        "src_lengths": src_tokens.ne(pad).long().sum(dim=1),
        "patch_images": patch_images,
        "patch_masks": patch_masks,
    }


def epoch_order(length: int, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    """Indices 0..length-1: a permutation fixed by (seed, epoch) when shuffling, else in order."""
    if not shuffle:
        return np.arange(length, dtype=np.int64)
    with data_utils.numpy_seed(seed, epoch):
        return np.random.permutation(length).astype(np.int64)


class StyleCaptionDataset(FairseqDataset):
    def __init__(
        self,
        path: str,
        codec: TextCodec,
        prompt: StylePrompt,
        image_transform: CaptionImageTransform,
        cleaner: CaptionCleaner,
        max_tgt_length: int,
        single_caption_targets: bool,
        shuffle: bool,
        seed: int = 1,
        one_example_per_image: bool = False,
        split: str = "train",
    ):
        self.path = path
        self.split = split
        self.rows = IndexedTSV(path, num_columns=len(COLUMNS))
        self.codec = codec
        self.prompt = prompt
        self.image_transform = image_transform
        self.cleaner = cleaner
        self.max_tgt_length = max_tgt_length
        self.single_caption_targets = single_caption_targets
        if one_example_per_image and single_caption_targets:
            raise ValueError("one example per image joins several captions: it needs single_caption_targets=False")
        self.groups: Optional[List[List[int]]] = rows_by_image(self.rows) if one_example_per_image else None
        self.longest_prompt = max(len(prompt.token_ids(name)) for name in prompt.styles.names)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 1
        dictionary = codec.dictionary
        self.bos, self.eos, self.pad = dictionary.bos(), dictionary.eos(), dictionary.pad()

    def __len__(self) -> int:
        return len(self.rows) if self.groups is None else len(self.groups)

    def file_row(self, index: int) -> int:
        """1-based row of the file that example `index` starts at (for error messages)."""
        return index + 1 if self.groups is None else self.groups[index][0] + 1

    def row(self, index: int) -> Dict[str, str]:
        """Example `index` as a row dict; with one example per image, the captions of all its rows joined by `&&`."""
        if self.groups is None:
            return dict(zip(COLUMNS, self.rows[index]))
        first, *others = self.groups[index]
        row = dict(zip(COLUMNS, self.rows[first]))
        captions_column = COLUMNS.index("captions")
        row["captions"] = REFERENCE_SEPARATOR.join(
            [row["captions"]] + [self.rows.head(i, captions_column + 1)[captions_column].decode("utf-8") for i in others])
        return row

    def target_text(self, captions: str, index: int) -> str:
        """The cleaned caption text the decoder is trained on (or the `&&`-joined references)."""
        if not self.single_caption_targets:
            return REFERENCE_SEPARATOR.join(self.cleaner.references(captions))
        problems = caption_problems(captions, multiple_references=False)
        if problems:
            raise ValueError(f"{self.path}, row {self.file_row(index)}: {problems[0]}")
        text = " ".join(self.cleaner(captions).split()[: self.max_tgt_length])
        if not text:
            raise ValueError(f"{self.path}, row {self.file_row(index)}: empty caption {captions!r}; training refuses an empty target")
        return text

    def patch_image(self, row: Dict[str, str], index: int) -> torch.Tensor:
        """The row's image as the model sees it: [3, S, S]; decoding errors name the file and row."""
        try:
            image = decode_base64_image(row["image"])
        except ImageDecodeError as error:
            raise ImageDecodeError(f"{self.path}, row {self.file_row(index)} (image {row['image_id']}): {error}") from None
        return self.image_transform(image)

    def caption_ids(self, row: Dict[str, str], index: int) -> torch.Tensor:
        """BPE ids [T] of " " + the row's target text (no <s>/</s>)."""
        return torch.tensor(self.codec.encode(" " + self.target_text(row["captions"], index)), dtype=torch.long)

    def decoder_sequences(self, caption_ids: torch.Tensor) -> Dict[str, torch.Tensor]:
        """{"target": caption </s> [T+1], "prev_output_tokens": <s> caption [T+1]}."""
        return {
            "target": torch.cat([caption_ids, torch.tensor([self.eos])]),
            "prev_output_tokens": torch.cat([torch.tensor([self.bos]), caption_ids]),
        }

    def __getitem__(self, index: int) -> Dict:
        row = self.row(index)
        patch_image = self.patch_image(row, index)
        try:
            source = self.prompt(row["style"])
        except ValueError as error:
            raise ValueError(f"{self.path}, row {self.file_row(index)}: {error}") from None
        return {
            "id": index,
            "source": source,
            "patch_image": patch_image,
            "patch_mask": torch.tensor([True]),
            **self.decoder_sequences(self.caption_ids(row, index)),
            "references": self.cleaner.references(row["captions"]),
            "style": row["style"],
        }

    def collater(self, samples: List[Dict]) -> Dict:
        """Batch: id [B] (np), net_input {src_tokens [B, L], src_lengths [B], patch_images [B, 3, S, S],
        patch_masks [B], prev_output_tokens [B, T]}, target [B, T], ntokens, nsentences, references (per row,
        its cleaned reference captions: what validation CIDEr-D and the SCST reward score against), styles
        (per row, its style name as the TSV spells it: what the SCST style reward asks for) and split (the subset's name, whose document frequencies validation CIDEr-D uses)."""
        if not samples:
            return {}
        target = collate_tokens([s["target"] for s in samples], self.pad)
        return {
            "id": np.array([s["id"] for s in samples]),
            "nsentences": len(samples),
            "ntokens": int(target.ne(self.pad).sum().item()),
            "net_input": {
                **encoder_inputs([s["source"] for s in samples], torch.stack([s["patch_image"] for s in samples]),
                                 torch.cat([s["patch_mask"] for s in samples]), self.pad),
                "prev_output_tokens": collate_tokens([s["prev_output_tokens"] for s in samples], self.pad),
            },
            "target": target,
            "references": [s["references"] for s in samples],
            "styles": [s["style"] for s in samples],
            "split": self.split,
        }

    def num_tokens(self, index: int) -> int:
        return self.max_tgt_length

    def size(self, index: int):
        """(source, target) length bound of every example, which fairseq filters against --max-positions:
        the longest prompt of any style and --max-tgt-length (reading the row's style would read the TSV)."""
        return (self.longest_prompt, self.max_tgt_length)

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def ordered_indices(self) -> np.ndarray:
        """A fresh permutation per (seed, epoch) for training, file order otherwise."""
        return epoch_order(len(self), self.shuffle, self.seed, self.epoch)

    @property
    def supports_prefetch(self) -> bool:
        return False

    def references(self, index: int) -> List[str]:
        """Cleaned reference captions of row `index`."""
        return self.cleaner.references(self.row(index)["captions"])

"""Style-token masked language modelling: an auxiliary stage-1 task built from the training rows.

An MLM example asks the model to restore a caption from a whole-word-masked copy of it, given its
style, in the layout of OFA's text pretraining (docs/ofa-spec.md §5, `process_pure_text`):

    source = <s> BPE(prompt before {text}) masked-caption BPE(prompt after {text}) </s>
    target = BPE(" " + caption) </s>            prev_output_tokens = <s> BPE(" " + caption)

With OFA's own template ' what is the complete text of " {text} "?' this is exactly OFA's
`prefix[:-2] + mask[1:-1] + prefix[-2:]`. The style goes where the template says `{style}`, as in the
caption prompt: `--style-format token` inserts the style's `<code_i>` index, `text` its lowercased
words. Only the caption is masked (as `<s> caption </s>` with `<s>`/`</s>` protected, then inserted
without them), so prompt words and the style token are never masked.

`CaptionMLMDataset` serves the caption examples of a `StyleCaptionDataset` followed by
`round(len * ratio)` MLM examples; each example and the batch carry `is_mlm`.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from fairseq.data import FairseqDataset

from ofa_sic.data.caption_dataset import StyleCaptionDataset, epoch_order
from ofa_sic.data.prompts import MLM_FIELDS, STYLE, TEXT, PromptCompiler, template_pieces
from ofa_sic.data.styles import StyleVocabulary
from ofa_sic.data.text import TextCodec
from ofa_sic.data.whole_word_mask import WholeWordMasker

DEFAULT_MLM_PROMPT = ' what is the complete text of the {style} reply " {text} "?'
MLM_IMAGE_MODES = ("same", "none")


class MLMPrompt:
    """`template` holds `{text}` (where the masked caption goes) and `{style}` once each; its ids come
    from the caption prompt's compiler (prompts.py), so the style slot follows the same rule."""

    def __init__(self, template: str, style_format: str, styles: StyleVocabulary, codec: TextCodec):
        pieces = template_pieces(template, "--mlm-prompt-template", MLM_FIELDS)
        if pieces.count(STYLE) != 1 or pieces.count(TEXT) != 1:
            raise ValueError(
                f"--mlm-prompt-template must contain {{text}} and {{style}} once each and no other placeholder, "
                f"got {template!r}"
            )
        self.template = template
        self.style_format = style_format
        self.styles = styles
        self.codec = codec
        self.compiler = PromptCompiler(pieces, style_format, styles, codec)
        self.bos, self.eos = codec.dictionary.bos(), codec.dictionary.eos()
        self._cache: Dict[int, Tuple[List[int], List[int], Optional[int], Optional[int]]] = {}

    def parts(self, style: str) -> Tuple[List[int], List[int], Optional[int], Optional[int]]:
        """(ids before the caption, ids after it, offset of the style token in the first, offset in the
        second); an offset is None where the style token is not on that side or with --style-format text."""
        index = self.styles.index(style)
        if index not in self._cache:
            (before, before_offset), (after, after_offset) = self.compiler.compile(index)
            self._cache[index] = (before, after, before_offset, after_offset)
        return self._cache[index]

    def __call__(self, style: str, masked_caption: Sequence[int]) -> Tuple[torch.Tensor, Optional[int]]:
        """(source LongTensor [<s>, before..., masked caption..., after..., </s>], position of the style
        token in it; None with --style-format text). `masked_caption` has no <s>/</s>."""
        before, after, before_offset, after_offset = self.parts(style)
        masked_caption = [int(i) for i in masked_caption]
        ids = [self.bos] + before + masked_caption + after + [self.eos]
        if before_offset is not None:
            position = 1 + before_offset
        elif after_offset is not None:
            position = 1 + len(before) + len(masked_caption) + after_offset
        else:
            position = None
        return torch.tensor(ids, dtype=torch.long), position

    def overhead(self) -> int:
        """The most source tokens any style's prompt adds around the caption (with <s> and </s>)."""
        return max(len(b) + len(a) + 2 for b, a, _, _ in (self.parts(name) for name in self.styles.names))


def mlm_count(num_rows: int, ratio: float) -> int:
    """Number of MLM examples for `num_rows` caption examples at --mlm-ratio `ratio`."""
    return int(round(num_rows * ratio))


class CaptionMLMDataset(FairseqDataset):
    """Indices [0, len(base)) are base's caption examples; [len(base), len(self)) are MLM examples.

    MLM example j uses row `rows_for_epoch()[j]`: a concatenation of permutations of all rows drawn from
    (seed, epoch), so a fractional ratio visits different rows each epoch. Its masking uses
    `np.random.default_rng([seed, epoch, index])`, so an example depends only on (seed, epoch, index),
    in whichever process builds it. `image`: "same" keeps the row's image; "none" is OFA's text-only
    form (zero image, patch_mask False).
    """

    def __init__(
        self,
        base: StyleCaptionDataset,
        prompt: MLMPrompt,
        masker: WholeWordMasker,
        ratio: float = 1.0,
        image: str = "same",
        seed: Optional[int] = None,
    ):
        if not ratio >= 0:
            raise ValueError(f"--mlm-ratio must be >= 0 (MLM examples per caption example), got {ratio}")
        if image not in MLM_IMAGE_MODES:
            raise ValueError(f"--mlm-image must be one of {MLM_IMAGE_MODES}, got {image!r}")
        self.base = base
        self.prompt = prompt
        self.masker = masker
        self.ratio = ratio
        self.image = image
        self.seed = base.seed if seed is None else seed
        self.epoch = 1
        self.num_mlm = mlm_count(len(base), ratio) if len(base) else 0
        self._rows: Dict[int, np.ndarray] = {}
        self._mlm_source_size = prompt.overhead() + base.max_tgt_length

    def __len__(self) -> int:
        return len(self.base) + self.num_mlm

    def is_mlm(self, index: int) -> bool:
        return index >= len(self.base)

    def rows_for_epoch(self, epoch: Optional[int] = None) -> np.ndarray:
        """Row of each MLM example in `epoch` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        if epoch not in self._rows:
            n = len(self.base)
            rng = np.random.default_rng([self.seed, epoch])
            rounds = -(-self.num_mlm // n) if n else 0
            rows = [rng.permutation(n) for _ in range(rounds)]
            self._rows = {epoch: np.concatenate(rows)[: self.num_mlm] if rows else np.zeros(0, dtype=np.int64)}
        return self._rows[epoch]

    def mlm_row(self, index: int) -> int:
        return int(self.rows_for_epoch()[index - len(self.base)])

    def __getitem__(self, index: int) -> Dict:
        if not self.is_mlm(index):
            example = self.base[index]
            example["is_mlm"] = False
            return example
        row_index = self.mlm_row(index)
        base = self.base
        row = base.row(row_index)
        caption = base.caption_ids(row, row_index)
        sequence = torch.cat([torch.tensor([base.bos]), caption, torch.tensor([base.eos])])
        protected = torch.zeros(len(sequence), dtype=torch.bool)
        protected[0] = protected[-1] = True
        masked = self.masker(sequence, protected, np.random.default_rng([self.seed, self.epoch, index]))
        try:
            source, _ = self.prompt(row["style"], masked[1:-1].tolist())
        except ValueError as error:
            raise ValueError(f"{base.path}, row {row_index + 1}: {error}") from None
        if self.image == "same":
            patch_image, patch_mask = base.patch_image(row, row_index), torch.tensor([True])
        else:
            size = base.image_transform.size
            patch_image, patch_mask = torch.zeros(3, size, size, dtype=torch.uint8), torch.tensor([False])
        return {
            "id": index,
            "source": source,
            "patch_image": patch_image,
            "patch_mask": patch_mask,
            **base.decoder_sequences(caption),
            "references": base.cleaner.references(row["captions"]),
            "style": row["style"],
            "is_mlm": True,
        }

    def collater(self, samples: List[Dict]) -> Dict:
        """base's batch plus `is_mlm`: BoolTensor [B], True for MLM examples."""
        batch = self.base.collater(samples)
        if batch:
            batch["is_mlm"] = torch.tensor([bool(s["is_mlm"]) for s in samples], dtype=torch.bool)
        return batch

    def num_tokens(self, index: int) -> int:
        return self.base.num_tokens(self.mlm_row(index) if self.is_mlm(index) else index)

    def size(self, index: int):
        if not self.is_mlm(index):
            return self.base.size(index)
        return (self._mlm_source_size, self.base.max_tgt_length)

    def set_epoch(self, epoch: int):
        self.epoch = epoch
        self.base.set_epoch(epoch)

    @property
    def can_reuse_epoch_itr_across_epochs(self) -> bool:
        # MLM rows and masks change with the epoch: fairseq must rebuild the iterator (and its
        # DataLoader workers, which hold a copy of this dataset) every epoch so they see set_epoch.
        return False

    def ordered_indices(self) -> np.ndarray:
        """A fresh permutation of all indices per (seed, epoch) when base shuffles, else index order."""
        return epoch_order(len(self), self.base.shuffle, self.seed, self.epoch)

    @property
    def supports_prefetch(self) -> bool:
        return False

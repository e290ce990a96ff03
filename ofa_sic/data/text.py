"""Text <-> token ids with OFA's GPT-2 BPE and dictionary, and OFA's caption cleaning.

Dictionary symbols of BPE tokens are the decimal GPT-2 ids ("99" = "Ġwhat"); the symbols after them
(`<mask>`, `<code_i>`, `<bin_i>`) are not text and are never produced by BPE encoding.
"""
import hashlib
import json
import os
import string
from typing import List, Optional, Sequence, Tuple

import torch
from fairseq.data import Dictionary
from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

from ofa_sic.data.styles import style_token

#: ids below this are fairseq's special symbols (<s>, <pad>, </s>, <unk>); the BPE tokens follow them.
NUM_SPECIAL_SYMBOLS = 4
PUNCTUATION_TABLE = str.maketrans({c: None for c in string.punctuation})
REFERENCE_SEPARATOR = "&&"


def bpe_file(bpe_dir: str, name: str) -> str:
    path = os.path.join(bpe_dir, name)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: --bpe-dir must hold encoder.json, vocab.bpe and dict.txt "
            "(OFA's utils/BPE, or the demo's bpe/ from `ofa-sic demo-data`)"
        )
    return path


def bpe_fingerprint(bpe_dir: str) -> str:
    """SHA-256 (hex) of what a BPE folder means: the BPE string of every dict.txt symbol, in dictionary
    order, then the merges of vocab.bpe. Formatting (JSON layout, line endings, dict.txt counts) and
    the numbering of encoder.json do not change it, so a converter's rewritten folder keeps it."""
    with open(bpe_file(bpe_dir, "encoder.json"), encoding="utf-8") as f:
        strings = {str(index): token for token, index in json.load(f).items()}
    digest = hashlib.sha256()
    for symbol in Dictionary.load(bpe_file(bpe_dir, "dict.txt")).symbols:
        digest.update(strings.get(symbol, symbol).encode("utf-8") + b"\n")
    digest.update(b"merges\n")
    with open(bpe_file(bpe_dir, "vocab.bpe"), encoding="utf-8") as f:
        for line in f:
            merge = line.strip()
            if merge and not merge.startswith("#version"):
                digest.update(merge.encode("utf-8") + b"\n")
    return digest.hexdigest()


def build_ofa_dictionary(bpe_dir: str, code_dict_size: int, num_bins: int) -> Dictionary:
    """dict.txt + `<mask>` + `<code_0..code_dict_size-1>` + `<bin_0..num_bins-1>`, as OFA builds it."""
    dictionary = Dictionary.load(bpe_file(bpe_dir, "dict.txt"))
    dictionary.add_symbol("<mask>")
    for i in range(code_dict_size):
        dictionary.add_symbol(style_token(i))
    for i in range(num_bins):
        dictionary.add_symbol(f"<bin_{i}>")
    return dictionary


def text_id_range(dictionary: Dictionary) -> Tuple[int, int]:
    """[start, end) of the BPE-token ids of an OFA dictionary: after the specials, before `<mask>`."""
    return NUM_SPECIAL_SYMBOLS, dictionary.index("<mask>")


class TextCodec:
    """GPT-2 BPE + fairseq dictionary: `encode(text)` -> ids, `decode(ids)` -> text."""

    def __init__(self, bpe_dir: str, dictionary: Dictionary):
        self.bpe = get_encoder(bpe_file(bpe_dir, "encoder.json"), bpe_file(bpe_dir, "vocab.bpe"))
        self.dictionary = dictionary

    def encode(self, text: str) -> List[int]:
        """Dictionary ids of the BPE tokens of `text` (no <s>/</s>)."""
        line = " ".join(str(token) for token in self.bpe.encode(text))
        return self.dictionary.encode_line(line, add_if_not_exist=False, append_eos=False).long().tolist()

    def decode(self, ids: Sequence[int]) -> str:
        """Text of the BPE-token ids among `ids`; specials, `<mask>`, codes and bins are dropped."""
        bpe_ids = []
        for index in ids:
            symbol = self.dictionary[int(index)]
            if symbol.isdigit():
                bpe_ids.append(int(symbol))
        return self.bpe.decode(bpe_ids)

    def decode_symbols(self, line: str) -> str:
        """Text of a space-separated symbol string as fairseq prints it ("99 473 <code_3> ...")."""
        return self.bpe.decode([int(symbol) for symbol in line.split() if symbol.isdigit()])


class CaptionCleaner:
    """OFA's caption cleaning: strip ASCII punctuation, lowercase, collapse spaces (the first two can be
    turned off with --keep-punctuation / --keep-case).

    The one cleaning of caption text for training and scoring (the converters only fix a caption's layout in
    the TSV, `prepared_layout.caption_as_cell`): training targets, validation and test references, validation
    hypotheses, the SCST reward text (hypotheses and references) and the CIDEr-D document frequencies
    (`prepare-pcap`, `ofa-sic cider-df`) all go through it, so they agree under any setting.
    """

    def __init__(self, keep_punctuation: bool = False, keep_case: bool = False):
        self.keep_punctuation = bool(keep_punctuation)
        self.keep_case = bool(keep_case)

    def settings(self) -> dict:
        """{"keep_punctuation": bool, "keep_case": bool}, as recorded in document-frequency files."""
        return {"keep_punctuation": self.keep_punctuation, "keep_case": self.keep_case}

    def describe(self) -> str:
        flags = [flag for flag, on in (("--keep-punctuation", self.keep_punctuation), ("--keep-case", self.keep_case)) if on]
        return " ".join(flags) if flags else "OFA's default cleaning (lowercase, no punctuation)"

    def check_recorded(self, recorded: Optional[dict], what: str) -> None:
        """Refuse text (e.g. CIDEr-D document frequencies) cleaned otherwise than by this cleaner.

        `recorded` is the `settings()` of the cleaning `what` went through; None (OFA's and ruotianluo's
        pickles record nothing) means OFA's default cleaning.
        """
        built = CaptionCleaner(**(recorded or {}))
        if built.settings() != self.settings():
            raise ValueError(
                f"{what} was built with {built.describe()}, but the task cleans captions with {self.describe()}: "
                "rebuild it with `ofa-sic cider-df --tsv train.tsv --out FILE` and the training run's "
                "--keep-case / --keep-punctuation flags"
            )

    def __call__(self, caption: str) -> str:
        if not self.keep_punctuation:
            caption = caption.translate(PUNCTUATION_TABLE)
        if not self.keep_case:
            caption = caption.lower()
        return " ".join(caption.split())

    def references(self, captions: str) -> List[str]:
        """`cap1&&cap2&&...` -> cleaned list."""
        return [self(part) for part in captions.split(REFERENCE_SEPARATOR)]


def collate_tokens(values: List[torch.Tensor], pad: int) -> torch.Tensor:
    """Right-pad 1-D LongTensors into [B, max_len]."""
    size = max(v.size(0) for v in values)
    out = values[0].new_full((len(values), size), pad)
    for i, v in enumerate(values):
        out[i, : v.size(0)] = v
    return out

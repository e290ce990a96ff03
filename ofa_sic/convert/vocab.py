"""The token vocabulary in both formats: fairseq's BPE folder and the ports' `vocab.json` + `merges.txt`.

fairseq (OFA-main, ofa_sic): `encoder.json` maps byte-level BPE strings to GPT-2 ids, `dict.txt` lists
those ids in dictionary order after `<s> <pad> </s> <unk>`; the task then appends `<mask>`, the
`<code_i>` and the `<bin_i>` symbols. The ports (BART-style): `vocab.json` maps each BPE string straight
to its model index, `<mask>` last, and the tokenizer appends 8192 `<code_i>` and 1000 `<bin_i>` (ModelScope
hard-codes these numbers). `merges.txt` and `vocab.bpe` have the same format and are copied as they are.
Model index i is the same token on both sides, so the embedding rows need no reordering.
"""
import json
import os
from dataclasses import dataclass
from typing import Dict, List

from ofa_sic.convert.report import ConversionRefused, Report

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
#: What ModelScope's OfaForAllTasks (and the HF port's tokenizer) append to vocab.json.
PORT_CODES, PORT_BINS = 8192, 1000


@dataclass
class Vocabulary:
    """tokens[i] is the BPE string of model index i for i up to and including `<mask>`; then come
    `num_codes` `<code_i>` and `num_bins` `<bin_i>` symbols. `merges` is the text of vocab.bpe / merges.txt."""

    tokens: List[str]
    merges: str
    num_codes: int
    num_bins: int

    def __len__(self) -> int:
        return len(self.tokens) + self.num_codes + self.num_bins

    def require_port_layout(self, target: str) -> None:
        if (self.num_codes, self.num_bins) != (PORT_CODES, PORT_BINS):
            raise ConversionRefused(
                f"the dictionary has {self.num_codes} <code_i> and {self.num_bins} <bin_i> symbols; the {target} "
                f"tokenizer always appends {PORT_CODES} and {PORT_BINS}, so its ids would not match the model's rows "
                "(train with the default --code-dict-size 8192 --num-bins 1000)")


def from_bpe_dir(bpe_dir: str, code_dict_size: int, num_bins: int, report: Report) -> Vocabulary:
    """The vocabulary of fairseq BPE folder `bpe_dir` with OFA's `<mask>`, codes and bins appended."""
    from ofa_sic.data.text import bpe_file, build_ofa_dictionary

    dictionary = build_ofa_dictionary(bpe_dir, code_dict_size, num_bins)
    with open(bpe_file(bpe_dir, "encoder.json"), encoding="utf-8") as f:
        encoder: Dict[str, int] = json.load(f)
    with open(bpe_file(bpe_dir, "vocab.bpe"), encoding="utf-8") as f:
        merges = f.read()
    strings = {index: token for token, index in encoder.items()}
    mask = dictionary.index("<mask>")
    tokens = list(SPECIALS)
    for position, symbol in enumerate(dictionary.symbols[4:mask], start=4):
        if symbol.isdigit():
            if int(symbol) not in strings:
                raise ConversionRefused(f"{bpe_dir}/dict.txt line {position - 3}: id {symbol} is not in encoder.json")
            tokens.append(strings[int(symbol)])
        else:
            tokens.append(symbol)  # fairseq's filler symbols (madeupword...) stay as they are
    tokens.append("<mask>")
    if len(set(tokens)) != len(tokens):
        raise ConversionRefused(f"{bpe_dir}: two dictionary entries have the same BPE string; vocab.json cannot hold both")
    listed = {int(s) for s in dictionary.symbols[4:mask] if s.isdigit()}
    unlisted = [token for token, index in encoder.items() if index not in listed]
    if unlisted:
        report.warn(f"{len(unlisted)} BPE strings of encoder.json are not in dict.txt (both sides read them as <unk>), "
                    f"e.g. {unlisted[:3]}")
    return Vocabulary(tokens, merges, code_dict_size, num_bins)


def write_bpe_dir(vocabulary: Vocabulary, folder: str) -> None:
    """Write encoder.json, vocab.bpe and dict.txt so that `build_ofa_dictionary(folder, ...)` gives index i
    to the token of model index i (encoder ids are the model indices)."""
    from ofa_sic.convert.files import write_text

    mask = len(vocabulary.tokens) - 1
    encoder = {vocabulary.tokens[i]: i for i in range(4, mask)}
    write_text(os.path.join(folder, "encoder.json"), json.dumps(encoder, ensure_ascii=True))
    write_text(os.path.join(folder, "vocab.bpe"), vocabulary.merges)
    write_text(os.path.join(folder, "dict.txt"), "".join(f"{i} 1\n" for i in range(4, mask)))


def from_port_files(vocab_path: str, merges_path: str, vocab_size: int) -> Vocabulary:
    """The vocabulary of a port's vocab.json and merges.txt for a model with `vocab_size` embedding rows."""
    with open(vocab_path, encoding="utf-8") as f:
        vocab: Dict[str, int] = json.load(f)
    with open(merges_path, encoding="utf-8") as f:
        merges = f.read()
    by_index = sorted(vocab.items(), key=lambda item: item[1])
    if [index for _, index in by_index] != list(range(len(vocab))):
        raise ConversionRefused(f"{vocab_path}: the ids are not 0..{len(vocab) - 1} without gaps")
    tokens = [token for token, _ in by_index]
    if tokens[:4] != SPECIALS or tokens[-1] != "<mask>":
        raise ConversionRefused(f"{vocab_path}: expected {' '.join(SPECIALS)} at ids 0-3 and <mask> last, "
                                f"as in OFA's BART vocabulary; found {tokens[:4]} ... {tokens[-1]!r}")
    if vocab_size != len(tokens) + PORT_CODES + PORT_BINS:
        raise ConversionRefused(
            f"the model has {vocab_size} token rows but {vocab_path} has {len(tokens)} tokens; OFA's tokenizer appends "
            f"{PORT_CODES} <code_i> and {PORT_BINS} <bin_i>, which would make {len(tokens) + PORT_CODES + PORT_BINS}")
    return Vocabulary(tokens, merges, PORT_CODES, PORT_BINS)


def write_port_files(vocabulary: Vocabulary, folder: str) -> None:
    """Write vocab.json and merges.txt (what the ports' OFATokenizer reads)."""
    from ofa_sic.convert.files import write_text

    write_text(os.path.join(folder, "vocab.json"),
               json.dumps({token: i for i, token in enumerate(vocabulary.tokens)}, ensure_ascii=False))
    write_text(os.path.join(folder, "merges.txt"), vocabulary.merges)

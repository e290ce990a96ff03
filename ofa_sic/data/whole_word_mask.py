"""Whole-word span masking, as OFA's text pretraining does it (BART text infilling; docs/ofa-spec.md §5).

A word begins at a GPT-2 BPE token whose text starts with a space ("Ġa"); the tokens after it up to
the next word start belong to the same word. The masker picks `ceil(#maskable words * mask_ratio)`
words to hide, cut into spans whose lengths (in words) come from a Poisson(lambda) distribution
truncated where its probability falls below 1e-7. Each span starts at a random word start and covers
whole words: with `replace_length=1` the span becomes one `<mask>` (or, with probability
`random_ratio`, one random text token), with 0 it is deleted, with -1 every token of it becomes
`<mask>`. Spans of length zero become insertion noise: that many extra `<mask>` tokens are put
between random pairs of neighbouring tokens (never before the first or after the last token).

Positions marked `protected` (the caller's `<s>`, `</s>`, a style token) are never span starts,
spans stop in front of them, and the end of the sequence stops spans too.

All randomness comes from the numpy Generator the caller passes, so the output is a function of the
inputs and that generator's seed: the same (seed, epoch, row) gives the same masking in any process.
"""
import math
from typing import Optional, Tuple

import numpy as np
import torch
from fairseq.data import Dictionary

from ofa_sic.data.text import NUM_SPECIAL_SYMBOLS

# A span-extension cost that no span length reaches: protected positions and the sequence end.
_STOP = 1 << 30


def word_start_table(dictionary: Dictionary, bpe) -> torch.BoolTensor:
    """[len(dictionary)] bool: True where a token begins a word.

    True for the specials (`<s>`, `<pad>`, `</s>`, `<unk>`), for `madeupword` entries, and for BPE
    tokens whose text begins with a space (GPT-2's "Ġ" tokens). False for other BPE tokens and for
    `<mask>`, `<code_i>` and `<bin_i>` (OFA decodes `<...>` symbols as text without a leading space).
    Any other symbol that is not a GPT-2 id counts as a word start, as OFA's `get_whole_word_mask`
    treats symbols it cannot decode. `bpe` is fairseq's GPT-2 `Encoder` (`TextCodec.bpe`).
    """
    table = torch.zeros(len(dictionary), dtype=torch.bool)
    space = ord(" ")
    for index, symbol in enumerate(dictionary.symbols):
        if index < dictionary.nspecial or symbol.startswith("madeupword"):
            table[index] = True
        elif symbol.isdigit():
            piece = bpe.decoder.get(int(symbol))
            table[index] = piece is None or (len(piece) > 0 and bpe.byte_decoder[piece[0]] == space)
        else:
            table[index] = not symbol.startswith("<")
    return table


def truncated_poisson(poisson_lambda: float, cutoff: float = 1e-7, max_length: int = 128) -> np.ndarray:
    """Probabilities of span lengths 0, 1, ...: Poisson(lambda) up to the first k past the mode whose
    probability is below `cutoff` (that k included, at most `max_length` values), renormalised.

    For lambda < 16 this is OFA's table (its cut at the first small value falls past the mode). OFA
    also cuts before the mode, which for lambda > 16 leaves only length 0 and never fills a budget.
    """
    if not 0 < poisson_lambda <= max_length / 2:
        raise ValueError(f"--mlm-poisson-lambda must be in (0, {max_length // 2}], got {poisson_lambda}")
    probabilities = []
    log_lambda = math.log(poisson_lambda)
    for k in range(max_length):
        probabilities.append(math.exp(-poisson_lambda + k * log_lambda - math.lgamma(k + 1)))
        if probabilities[-1] < cutoff and k >= poisson_lambda:
            break
    p = np.asarray(probabilities, dtype=np.float64)
    return p / p.sum()


class WholeWordMasker:
    """Callable `(tokens, protected, rng) -> masked tokens`; see the module docstring."""

    def __init__(
        self,
        mask_idx: int,
        word_starts: torch.Tensor,
        mask_ratio: float = 0.3,
        poisson_lambda: float = 3.0,
        random_ratio: float = 0.0,
        replace_length: int = 1,
        random_token_range: Optional[Tuple[int, int]] = None,
    ):
        """`word_starts`: `word_start_table(...)`. `random_token_range`: [low, high) of the ids used for
        random replacement and random insertions; default (NUM_SPECIAL_SYMBOLS, mask_idx), the text tokens."""
        if not 0.0 <= mask_ratio <= 1.0:
            raise ValueError(f"--mlm-mask-ratio must be in [0, 1], got {mask_ratio}")
        if not 0.0 <= random_ratio <= 1.0:
            raise ValueError(f"--mlm-random-ratio must be in [0, 1], got {random_ratio}")
        if replace_length not in (-1, 0, 1):
            raise ValueError(
                f"--mlm-replace-length must be 1 (span -> one <mask>), 0 (delete the span) or -1 "
                f"(mask every token of the span), got {replace_length}"
            )
        low, high = random_token_range if random_token_range is not None else (NUM_SPECIAL_SYMBOLS, mask_idx)
        if not 0 <= low < high:
            raise ValueError(f"random_token_range must be [low, high) with 0 <= low < high, got {(low, high)}")
        self.mask_idx = mask_idx
        self.word_starts = torch.as_tensor(word_starts, dtype=torch.bool).numpy()
        self.mask_ratio = mask_ratio
        self.poisson_lambda = poisson_lambda
        self.random_ratio = random_ratio
        self.replace_length = replace_length
        self.random_token_range = (int(low), int(high))
        self.span_probabilities = truncated_poisson(poisson_lambda)

    def span_lengths(self, num_to_mask: int, rng: np.random.Generator) -> Tuple[np.ndarray, int]:
        """Span lengths in words (all > 0) that add up to `num_to_mask`, and the number of zero-length
        spans (insertions). Lengths are drawn in rounds of `num_to_mask` until they reach the budget;
        the span that crosses it is cut to fit and the rest are dropped."""
        support = len(self.span_probabilities)
        lengths = rng.choice(support, size=num_to_mask, p=self.span_probabilities)
        while lengths.sum() < num_to_mask:
            lengths = np.concatenate([lengths, rng.choice(support, size=num_to_mask, p=self.span_probabilities)])
        total = np.cumsum(lengths)
        last = int(np.searchsorted(total, num_to_mask, side="left"))
        lengths = lengths[: last + 1].copy()
        lengths[last] = num_to_mask - (total[last - 1] if last > 0 else 0)
        spans = lengths[lengths > 0]
        return spans.astype(np.int64), int(len(lengths) - len(spans))

    def _random_tokens(self, count: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(self.random_token_range[0], self.random_token_range[1], size=count, dtype=np.int64)

    def __call__(self, tokens: torch.Tensor, protected: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Mask a 1-D LongTensor; `protected` (bool, same length) marks positions never masked."""
        if tokens.dim() != 1 or protected.shape != tokens.shape:
            raise ValueError(f"tokens and protected must be 1-D of one length, got {tuple(tokens.shape)} and {tuple(protected.shape)}")
        source = tokens.numpy().astype(np.int64).copy()
        keep_out = protected.numpy().astype(bool)
        is_start = self.word_starts[source] & ~keep_out
        num_to_mask = int(math.ceil(is_start.sum() * self.mask_ratio))
        if num_to_mask == 0:
            return torch.from_numpy(source)

        lengths, num_inserts = self.span_lengths(num_to_mask, rng)
        if len(lengths) > 0:
            source = self._mask_spans(source, is_start, keep_out, lengths, rng)
        if num_inserts > 0:
            source = self._insert(source, num_inserts, rng)
        return torch.from_numpy(source)

    def _mask_spans(self, source, is_start, keep_out, lengths, rng) -> np.ndarray:
        n = len(source)
        starts = rng.permutation(np.flatnonzero(is_start))[: len(lengths)]
        use_random = rng.random(len(starts)) < self.random_ratio
        # Cost of extending a span onto position i: 1 per further word, _STOP at protected positions and
        # past the end; a span of L words extends while its remaining length L-1-cost stays >= 0.
        cost = np.append(np.where(keep_out, _STOP, is_start.astype(np.int64)), _STOP)
        keep = np.ones(n, dtype=bool)
        if self.replace_length == 0:
            keep[starts] = False
        else:
            source[starts] = self.mask_idx
            source[starts[use_random]] = self._random_tokens(int(use_random.sum()), rng)
        positions, remaining = starts, lengths - 1
        while len(positions) > 0:
            positions = positions + 1
            remaining = remaining - cost[positions]
            going = remaining >= 0
            positions, remaining, use_random = positions[going], remaining[going], use_random[going]
            if self.replace_length == -1:
                source[positions] = self.mask_idx
                source[positions[use_random]] = self._random_tokens(int(use_random.sum()), rng)
            else:
                keep[positions] = False
        return source[keep]

    def _insert(self, source, count, rng) -> np.ndarray:
        """Put `count` `<mask>` tokens (random tokens for a `random_ratio` share) at random places
        strictly inside the sequence."""
        n = len(source)
        total = n + count
        if n < 2:
            return source
        slots = rng.permutation(total - 2)[:count] + 1  # never the first or last position of the result
        inserted = np.zeros(total, dtype=bool)
        inserted[slots] = True
        result = np.empty(total, dtype=np.int64)
        num_random = int(math.ceil(count * self.random_ratio))
        result[slots[num_random:]] = self.mask_idx
        result[slots[:num_random]] = self._random_tokens(num_random, rng)
        result[~inserted] = source
        return result

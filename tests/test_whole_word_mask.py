"""WholeWordMasker and word_start_table: OFA's whole-word span masking (docs/ofa-spec.md §5).

Synthetic vocabulary: ids 4..2003 begin a word, 2004..3003 continue one, 3004 is <mask>. Each
synthetic sequence uses distinct ids, so which words a masking removed can be read off its output.
"""
import math

import numpy as np
import pytest
import torch
from fairseq.data import Dictionary

from ofa_sic.data.text import TextCodec, build_ofa_dictionary
from ofa_sic.data.whole_word_mask import WholeWordMasker, truncated_poisson, word_start_table

BOS, PAD, EOS, UNK = 0, 1, 2, 3
WORDS = np.arange(4, 2004)
PIECES = np.arange(2004, 3004)
MASK = 3004
VOCAB = 3005
WORD_STARTS = torch.zeros(VOCAB, dtype=torch.bool)
WORD_STARTS[:4] = True
WORD_STARTS[WORDS] = True


def synthetic(rng, num_words, max_pieces=2):
    """<s> w [p p] w [p] ... </s> with distinct ids; returns (tokens, protected, word ids)."""
    words = rng.choice(WORDS, size=num_words, replace=False)
    count = max_pieces * num_words
    pieces = iter(rng.choice(PIECES, size=count, replace=count > len(PIECES)))
    tokens = [BOS]
    for word in words:
        tokens.append(int(word))
        tokens.extend(int(next(pieces)) for _ in range(rng.integers(0, max_pieces + 1)))
    tokens.append(EOS)
    tokens = torch.tensor(tokens)
    protected = torch.zeros(len(tokens), dtype=torch.bool)
    protected[0] = protected[-1] = True
    return tokens, protected, words


def corpus(n=2000, low=20, high=60, seed=0):
    rng = np.random.default_rng(seed)
    return [synthetic(rng, int(rng.integers(low, high))) for _ in range(n)]


def words_of(tokens):
    """Split a token list into words (lists of ids), each starting at a word start."""
    words = []
    for token in tokens:
        if WORD_STARTS[token] or not words:
            words.append([token])
        else:
            words[-1].append(token)
    return words


def removed_words(tokens, output, words):
    kept = set(output.tolist())
    return [int(w) for w in words if int(w) not in kept]


# ---- the word-start table -------------------------------------------------------------------


def test_word_start_table_on_the_ofa_dictionary(demo_data):
    dictionary = build_ofa_dictionary(str(demo_data["bpe"]), code_dict_size=16, num_bins=8)
    codec = TextCodec(str(demo_data["bpe"]), dictionary)
    table = word_start_table(dictionary, codec.bpe)
    assert table.dtype == torch.bool and table.shape == (len(dictionary),)
    assert table[:4].all()
    for name in ["<mask>"] + [f"<code_{i}>" for i in range(16)] + [f"<bin_{i}>" for i in range(8)]:
        assert not table[dictionary.index(name)], name
    ids = codec.encode(" what is the complete text of a red circle")
    pieces = [codec.bpe.decoder[int(dictionary[i])] for i in ids]
    assert [bool(table[i]) for i in ids] == [p.startswith("\u0120") for p in pieces]
    assert any(table[i] for i in ids) and not all(table[i] for i in ids)  # the demo BPE splits some words
    # Every BPE symbol: a word start exactly when its GPT-2 piece begins with the space byte ("Ġ").
    for index in range(dictionary.nspecial, dictionary.index("<mask>")):
        piece = codec.bpe.decoder[int(dictionary[index])]
        assert bool(table[index]) == piece.startswith("\u0120"), piece


def test_madeupword_entries_are_word_starts():
    dictionary = Dictionary()
    for symbol in ["10", "11", "madeupword0000", "<mask>", "<code_0>"]:
        dictionary.add_symbol(symbol)

    class Bpe:  # GPT-2 pieces: id 10 = "Ġa", 11 = "b"
        decoder = {10: "\u0120a", 11: "b"}
        byte_decoder = {"\u0120": 32, "a": 97, "b": 98}

    table = word_start_table(dictionary, Bpe())
    assert table.tolist() == [True] * 4 + [True, False, True, False, False]


# ---- span lengths ---------------------------------------------------------------------------


def test_truncated_poisson_matches_ofa_support():
    p = truncated_poisson(3.0)
    raw = [math.exp(-3.0) * 3.0 ** k / math.factorial(k) for k in range(len(p))]
    assert raw[-1] < 1e-7 and raw[-2] >= 1e-7  # cut at the first k below 1e-7, that k included
    np.testing.assert_allclose(p, np.array(raw) / sum(raw), rtol=1e-12)
    for lam in (0.5, 1.0, 10.0, 15.0):  # OFA cuts at the first k below 1e-7; the same table below lambda 16
        ofa = []
        for k in range(128):
            ofa.append(math.exp(-lam) * lam**k / math.factorial(k))
            if ofa[-1] < 1e-7:
                break
        np.testing.assert_allclose(truncated_poisson(lam), np.array(ofa) / sum(ofa), rtol=1e-9)
    # Beyond lambda 16 OFA's cut would leave only length 0; ours keeps the mode and fills budgets.
    long_spans = truncated_poisson(40.0)
    assert long_spans.argmax() in (39, 40) and abs(long_spans.sum() - 1) < 1e-12
    spans, _ = WholeWordMasker(MASK, WORD_STARTS, poisson_lambda=40.0).span_lengths(100, np.random.default_rng(0))
    assert spans.sum() == 100


def test_span_lengths_fill_the_budget_and_follow_the_poisson():
    masker = WholeWordMasker(MASK, WORD_STARTS)
    rng = np.random.default_rng(5)
    lengths, inserts = [], 0
    for _ in range(400):
        spans, zero = masker.span_lengths(300, rng)
        assert spans.sum() == 300 and (spans > 0).all()
        lengths.extend(spans[:-1].tolist())  # the last span is cut to fit the budget
        inserts += zero
    lengths = np.array(lengths)
    p = truncated_poisson(3.0)
    expected = p[1:] / p[1:].sum()  # lengths > 0
    # Mean of a zero-truncated Poisson(3): 3 / (1 - e^-3) = 3.157.
    assert abs(lengths.mean() - 3.0 / (1 - math.exp(-3.0))) < 0.03
    observed = np.bincount(lengths, minlength=len(p))[1:]
    chi2 = 0.0
    for k in range(1, 9):  # lengths 1..8 carry > 99% of the mass; one tail bin for the rest
        chi2 += (observed[k - 1] - len(lengths) * expected[k - 1]) ** 2 / (len(lengths) * expected[k - 1])
    tail_expected = len(lengths) * expected[8:].sum()
    chi2 += (observed[8:].sum() - tail_expected) ** 2 / tail_expected
    assert chi2 < 30  # 8 degrees of freedom: p < 0.001 at 26.1
    # Zero-length draws (insertions) are e^-3 of all draws.
    assert abs(inserts / (inserts + len(lengths) + 400) - math.exp(-3.0)) < 0.005


# ---- masking --------------------------------------------------------------------------------


def test_share_of_words_masked_is_near_the_ratio():
    masker = WholeWordMasker(MASK, WORD_STARTS, mask_ratio=0.3, replace_length=0)
    shares, budgets = [], []
    for row, (tokens, protected, words) in enumerate(corpus()):
        output = masker(tokens, protected, np.random.default_rng([1, 1, row]))
        shares.append(len(removed_words(tokens, output, words)) / len(words))
        budgets.append(math.ceil(0.3 * len(words)) / len(words))
    # Spans are placed independently and may overlap (as in BART/OFA), so the share removed is somewhat
    # below the budget ceil(0.3 * words) / words (0.312 here); it is about 0.28.
    assert 0.26 < np.mean(shares) <= np.mean(budgets) < 0.32
    assert np.mean(shares) > 0.85 * np.mean(budgets)


def test_masked_spans_cover_whole_words_and_follow_the_span_lengths():
    """replace_length=-1 masks every token of a span: masked runs are whole words, and at a low ratio in
    long sequences (few overlaps) their lengths in words are the sampled span lengths."""
    masker = WholeWordMasker(MASK, WORD_STARTS, mask_ratio=0.03, replace_length=-1)
    rng = np.random.default_rng(3)
    runs, reference = [], []
    for row in range(300):
        tokens, protected, words = synthetic(rng, 1000)
        output = masker(tokens, protected, np.random.default_rng([2, 1, row]))
        spans, zero = masker.span_lengths(math.ceil(0.03 * len(words)), np.random.default_rng([2, 2, row]))
        if not zero:
            reference.extend(spans.tolist())
        if len(output) != len(tokens):
            continue  # rows with insertion noise (a zero-length draw) are left out, as in the reference
        masked = (output == MASK).tolist()
        assert not masked[0] and not masked[-1]
        word_flags, position = [], 0
        for word in words_of(tokens.tolist()):
            flags = masked[position : position + len(word)]
            assert all(flags) or not any(flags), "a span covers whole words"
            word_flags.append(flags[0])
            position += len(word)
        run = 0
        for flag in word_flags + [False]:
            if flag:
                run += 1
            elif run:
                runs.append(run)
                run = 0
    runs, reference = np.array(runs), np.array(reference)
    assert len(runs) > 1000 and len(reference) > 1000
    # Neighbouring spans that touch merge into one run, which lengthens runs a little.
    assert abs(runs.mean() - reference.mean()) < 0.2
    for k in (1, 2, 3, 4, 5):
        assert abs(np.mean(runs == k) - np.mean(reference == k)) < 0.03, k


def test_protected_positions_survive_and_stop_spans():
    masker = WholeWordMasker(MASK, WORD_STARTS, mask_ratio=1.0, poisson_lambda=6.0, replace_length=-1)
    for row, (tokens, protected, _) in enumerate(corpus(n=300, low=5, high=15)):
        protected = protected.clone()
        middle = len(tokens) // 2
        protected[middle] = True  # e.g. a style token inside the sequence
        output = masker(tokens, protected, np.random.default_rng([0, 0, row]))
        assert output[0] == BOS and output[-1] == EOS
        assert tokens[middle].item() in output.tolist()
        # Everything else is either kept or masked, never moved past the protected token.
        kept = output[output != MASK].tolist()
        assert kept == [t for t in tokens.tolist() if t in set(kept)]


def test_bos_and_eos_are_never_masked_at_any_ratio():
    for replace_length in (-1, 0, 1):
        masker = WholeWordMasker(MASK, WORD_STARTS, mask_ratio=1.0, replace_length=replace_length)
        for row, (tokens, protected, _) in enumerate(corpus(n=200, low=1, high=12)):
            output = masker(tokens, protected, np.random.default_rng([0, 1, row]))
            assert output[0] == BOS and output[-1] == EOS
            assert (output[1:-1] != BOS).all() and (output[1:-1] != EOS).all()


def test_same_seed_epoch_row_gives_the_same_output_and_another_epoch_differs():
    masker = WholeWordMasker(MASK, WORD_STARTS)
    data = corpus(n=50)
    first = [masker(t, p, np.random.default_rng([7, 1, row])) for row, (t, p, _) in enumerate(data)]
    again = [masker(t, p, np.random.default_rng([7, 1, row])) for row, (t, p, _) in enumerate(data)]
    other = [masker(t, p, np.random.default_rng([7, 2, row])) for row, (t, p, _) in enumerate(data)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert sum(not torch.equal(a, b) for a, b in zip(first, other)) > 40
    # The input is not modified.
    assert all(torch.equal(t, u) for (t, _, _), (u, _, _) in zip(data, corpus(n=50)))


def test_replace_length_one_puts_one_mask_per_span():
    masker = WholeWordMasker(MASK, WORD_STARTS, replace_length=1)
    for row, (tokens, protected, words) in enumerate(corpus(n=300)):
        output = masker(tokens, protected, np.random.default_rng([3, 1, row]))
        removed = removed_words(tokens, output, words)
        assert removed
        # The kept tokens keep their order; every removed word sits under a <mask>.
        kept = [t for t in output.tolist() if t != MASK]
        assert kept == [t for t in tokens.tolist() if t in set(kept)]
        assert (output == MASK).sum() >= 1
        # Removed words lose all their pieces (whole words).
        for word in words_of(tokens.tolist()):
            assert all(t in set(kept) for t in word) or not any(t in set(kept) for t in word)


def test_random_ratio_replaces_spans_with_random_text_tokens():
    low, high = 100, 200  # a range distinct from the sequences' ids so replacements can be told apart
    masker = WholeWordMasker(MASK, WORD_STARTS, random_ratio=0.5, random_token_range=(low, high))
    masks = randoms = 0
    for row, (tokens, protected, _) in enumerate(corpus(n=300)):
        tokens = tokens.clone()
        tokens[(tokens >= low) & (tokens < high)] = 3000  # keep the probe range out of the input
        output = masker(tokens, protected, np.random.default_rng([4, 1, row]))
        new = [t for t in output.tolist() if t not in set(tokens.tolist())]
        assert all(t == MASK or low <= t < high for t in new)
        masks += sum(t == MASK for t in new)
        randoms += sum(low <= t < high for t in new)
    assert randoms > 0
    assert 0.4 < randoms / (masks + randoms) < 0.6


def test_default_random_range_is_the_text_tokens():
    masker = WholeWordMasker(MASK, WORD_STARTS, random_ratio=1.0)
    assert masker.random_token_range == (4, MASK)
    for row, (tokens, protected, _) in enumerate(corpus(n=100)):
        output = masker(tokens, protected, np.random.default_rng([4, 2, row]))
        assert output.min() >= 0 and (output[1:-1] >= 4).all() and (output[1:-1] < MASK).all()


def test_replace_length_zero_deletes_spans():
    masker = WholeWordMasker(MASK, WORD_STARTS, replace_length=0, poisson_lambda=3.0)
    rows_without_masks = 0
    for row, (tokens, protected, words) in enumerate(corpus(n=300)):
        output = masker(tokens, protected, np.random.default_rng([5, 1, row]))
        removed = set(removed_words(tokens, output, words))
        assert removed
        kept = [t for t in output.tolist() if t != MASK]
        # The output is the input without the removed words (all their pieces); a <mask> can only be
        # insertion noise from a zero-length draw (P = e^-3 per draw).
        expected = [t for word in words_of(tokens.tolist()) if word[0] not in removed for t in word]
        assert kept == expected
        rows_without_masks += MASK not in output.tolist()
    assert rows_without_masks > 0.6 * 300


def test_insertion_noise_for_zero_length_spans():
    masker = WholeWordMasker(MASK, WORD_STARTS, poisson_lambda=0.5, replace_length=-1)
    inserted_rows = 0
    for row, (tokens, protected, _) in enumerate(corpus(n=300)):
        output = masker(tokens, protected, np.random.default_rng([6, 1, row]))
        assert output[0] == BOS and output[-1] == EOS
        extra = len(output) - len(tokens)  # replace_length=-1 keeps length except for insertions
        assert extra >= 0
        if extra:
            inserted_rows += 1
            # Dropping `extra` masks from the output leaves the input with some tokens masked.
            kept = [t for t in output.tolist() if t != MASK]
            assert kept == [t for t in tokens.tolist() if t in set(kept)]
    assert inserted_rows > 250  # P(length 0) = e^-0.5 = 0.61 per draw: nearly every row gets insertions


def test_insertions_keep_every_input_token_in_order():
    """lambda 0.01: nearly every draw is zero, so many insertions; the one real span is the cut last draw."""
    masker = WholeWordMasker(MASK, WORD_STARTS, poisson_lambda=0.01, replace_length=-1)
    tokens, protected, _ = synthetic(np.random.default_rng(0), 10)
    for row in range(100):
        output = masker(tokens, protected, np.random.default_rng([8, 1, row]))
        assert output[0] == BOS and output[-1] == EOS
        assert len(output) > len(tokens) + 10
        kept = [t for t in output.tolist() if t != MASK]
        assert kept == [t for t in tokens.tolist() if t in set(kept)]
        assert len(kept) < len(tokens)  # the budget (3 words) is still masked


def test_no_maskable_words_returns_the_input():
    masker = WholeWordMasker(MASK, WORD_STARTS)
    tokens = torch.tensor([BOS, EOS])
    assert torch.equal(masker(tokens, torch.ones(2, dtype=torch.bool), np.random.default_rng(0)), tokens)
    tokens = torch.tensor([BOS, 2500, 2501, EOS])  # continuation pieces only
    protected = torch.tensor([True, False, False, True])
    assert torch.equal(masker(tokens, protected, np.random.default_rng(0)), tokens)


def test_agrees_with_fairseq_bart_noising_statistically():
    """fairseq's DenoisingDataset.add_whole_word_mask (which OFA's is) on the same inputs: equal mean
    output length, number of <mask> tokens and words removed, within sampling error."""
    from fairseq.data.denoising_dataset import DenoisingDataset

    vocab = Dictionary()
    for i in range(4, VOCAB):
        vocab.add_symbol(str(i))
    assert len(vocab) == VOCAB and vocab.index("3004") == MASK
    stats = {}
    for replace_length in (1, 0, -1):
        bart = DenoisingDataset(None, None, vocab, MASK, WORD_STARTS.byte(), shuffle=False, seed=0, mask=0.3,
                                mask_random=0.0, insert=0.0, rotate=0.0, permute_sentences=0.0, bpe="none",
                                replace_length=replace_length, mask_length="span-poisson", poisson_lambda=3.0)
        ours = WholeWordMasker(MASK, WORD_STARTS, replace_length=replace_length)
        torch.manual_seed(0)
        results = {"ours": [], "bart": []}
        for row, (tokens, protected, words) in enumerate(corpus(n=600, low=5, high=40)):
            for name, output in (("ours", ours(tokens, protected, np.random.default_rng([9, 1, row]))),
                                 ("bart", bart.add_whole_word_mask(tokens.clone(), 0.3))):
                results[name].append((len(output), int((output == MASK).sum()), len(removed_words(tokens, output, words))))
        ours_mean, bart_mean = np.mean(results["ours"], axis=0), np.mean(results["bart"], axis=0)
        spread = np.std(results["bart"], axis=0) / math.sqrt(len(results["bart"]))
        assert (np.abs(ours_mean - bart_mean) < 3.5 * spread * math.sqrt(2) + 1e-9).all(), (replace_length, ours_mean, bart_mean)
        stats[replace_length] = ours_mean
    assert stats[1][1] > 0 and stats[-1][1] > stats[1][1]


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="mask-ratio"):
        WholeWordMasker(MASK, WORD_STARTS, mask_ratio=1.5)
    with pytest.raises(ValueError, match="random-ratio"):
        WholeWordMasker(MASK, WORD_STARTS, random_ratio=-0.1)
    with pytest.raises(ValueError, match="replace-length"):
        WholeWordMasker(MASK, WORD_STARTS, replace_length=2)
    with pytest.raises(ValueError, match="poisson-lambda"):
        WholeWordMasker(MASK, WORD_STARTS, poisson_lambda=0.0)

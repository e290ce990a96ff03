"""OFASequenceGenerator reproduces OFA-main's beams and really blocks repeated n-grams on CPU."""
import pytest
import torch

from helpers import build_reference_model, dictionary_from_symbols
from ofa_sic.generation.generator import OFASequenceGenerator, parse_constraint_range
from ofa_sic.generation.ngram_block import NGramRepeatBlocker


def net_input(ref):
    inputs = ref["inputs"]
    return {"net_input": {k: inputs[k] for k in ("src_tokens", "src_lengths", "patch_images", "patch_masks")}}


def make_generator(ref, model, **overrides):
    args = dict(ref["generation"]["args"])
    options = dict(beam_size=args["beam"], max_len_a=args["max_len_a"], max_len_b=args["max_len_b"],
                   min_len=args["min_len"], constraint_range=args["constraint_range"])
    options.update(overrides)
    return OFASequenceGenerator([model], dictionary_from_symbols(ref["dictionary_symbols"]), **options)


def test_beams_equal_ofa(ref, model):
    output = make_generator(ref, model).generate([model], net_input(ref))
    for hypotheses, expected in zip(output, ref["generation"]["beams"]):
        assert len(hypotheses) == len(expected) == 3
        for hypothesis, beam in zip(hypotheses, expected):
            assert hypothesis["tokens"].tolist() == beam["tokens"]
            assert abs(hypothesis["score"].item() - beam["score"]) < 1e-4
            assert torch.allclose(hypothesis["positional_scores"], torch.tensor(beam["positional_scores"]), atol=1e-4)
        scores = [h["score"].item() for h in hypotheses]
        assert scores == sorted(scores, reverse=True)


def test_constraint_range_keeps_tokens_inside(ref, model):
    output = make_generator(ref, model, constraint_range="4,30").generate([model], net_input(ref))
    for hypotheses in output:
        for hypothesis in hypotheses:
            body = hypothesis["tokens"][:-1]
            assert (body < 30).all()  # special ids (< 4) stay allowed, as in OFA


def test_no_repeat_ngram_blocks_repeats_on_cpu(ref, model):
    # The reference beams repeat tokens ("35 35 35 ..."); with blocking no bigram may occur twice.
    output = make_generator(ref, model, no_repeat_ngram_size=2).generate([model], net_input(ref))
    for hypotheses in output:
        for hypothesis in hypotheses:
            tokens = [0] + hypothesis["tokens"].tolist()
            bigrams = list(zip(tokens, tokens[1:]))
            assert len(bigrams) == len(set(bigrams)), tokens


def test_ngram_blocker_bans_exactly_the_completing_tokens():
    tokens = torch.tensor([[0, 5, 6, 7, 5, 6, 1, 1], [0, 5, 6, 7, 8, 9, 1, 1]])
    lprobs = torch.zeros(2, 12)
    NGramRepeatBlocker(3)(tokens, lprobs, bsz=2, beam_size=1, step=5)
    assert torch.isinf(lprobs[0]).nonzero().flatten().tolist() == [7]  # "5 6" -> 7 would repeat "5 6 7"
    assert not torch.isinf(lprobs[1]).any()


def test_sampling_with_topk_returns_allowed_tokens(ref, model):
    from fairseq import search
    dictionary = dictionary_from_symbols(ref["dictionary_symbols"])
    torch.manual_seed(0)
    generator = make_generator(ref, model, beam_size=2, temperature=0.7,
                               search_strategy=search.Sampling(dictionary, sampling_topk=5))
    output = generator.generate([model], net_input(ref))
    assert all(len(h) == 2 for h in output)
    for hypotheses in output:
        for hypothesis in hypotheses:
            assert (hypothesis["tokens"][:-1] < 204).all()


def test_generate_uses_the_models_it_is_given(ref, model):
    generator = make_generator(ref, model)
    other = build_reference_model(ref)
    with torch.no_grad():
        other.decoder.layer_norm.bias.add_(1.0)
    a = generator.generate([model], net_input(ref))[0][0]["score"].item()
    b = generator.generate([other], net_input(ref))[0][0]["score"].item()
    assert a != b


def test_constraint_range_parsing():
    assert parse_constraint_range("4,50265") == (4, 50265)
    assert parse_constraint_range(None) is None
    with pytest.raises(ValueError, match="start,end"):
        parse_constraint_range("4-9")

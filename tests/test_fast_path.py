"""The fast path computes what the straightforward one does: fused attention vs explicit softmax,
one encoding per image vs OFA-main's K repeated inputs, reused training encodings vs a fresh
eval-mode encoding, grouped beam caches vs per-row ones (the fixture's numbers are checked
against OFA-main in test_model_reference.py and test_generator_reference.py)."""
import logging

import pytest
import torch

from helpers import build_model, build_reference_model, dictionary_from_symbols
from ofa_sic.generation.generator import OFASequenceGenerator
from ofa_sic.models.attention import MultiheadAttention
from ofa_sic.models.encoder import ENCODER_INPUTS
from ofa_sic.models.grouped_rows import group_rows_by_source

NO_DROPOUT = dict(dropout=0.0, encoder_drop_path_rate=0.0, decoder_drop_path_rate=0.0)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    scale = expected.abs().max().item()
    return (actual - expected).abs().max().item() / (scale if scale > 0 else 1.0)


def test_fused_attention_equals_explicit_softmax_with_bias_gradients():
    torch.manual_seed(0)
    attention = MultiheadAttention(32, 4, scale_heads=True)
    with torch.no_grad():
        attention.c_attn.uniform_(0.5, 1.5)
    query = torch.randn(5, 6, 32)  # 6 query rows grouped over 3 key rows
    key = torch.randn(7, 3, 32)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[1, -2:] = True
    bias = torch.randn(1, 4, 5, 7, requires_grad=True)
    results = []
    for need_weights in (True, False):
        out, weights = attention(query, key, key_padding_mask=padding, attn_bias=bias, need_weights=need_weights)
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, 32)).sum(), [bias, attention.q_proj.weight, attention.c_attn])
        results.append((out, grads, weights))
    (explicit, explicit_grads, weights), (fused, fused_grads, _) = results
    assert relative_error(fused, explicit) < 1e-5
    for a, b in zip(fused_grads, explicit_grads):
        assert relative_error(a, b) < 1e-4
    assert weights.shape == (6, 5, 7) and torch.allclose(weights.sum(-1), torch.ones(6, 5))
    assert weights[2:4, :, -2:].abs().max() == 0  # key row 1 (query rows 2, 3) ignores its padding


def teacher_forced_loss(model, net_input, prev, k, grouped: bool):
    """Weighted sum of token log-probs of k target rows per source row, by one encoding per source
    (grouped) or, as OFA-main, by repeating every input k times."""
    if grouped:
        logits, _ = model(prev_output_tokens=prev, rows_per_source=k, **net_input)
    else:
        repeated = {key: value.repeat_interleave(k, dim=0) for key, value in net_input.items()}
        logits, _ = model(prev_output_tokens=prev, **repeated)
    lprobs = torch.log_softmax(logits.float(), dim=-1)
    weights = torch.linspace(-1.0, 1.0, prev.size(0))[:, None]
    return -(lprobs.gather(-1, prev.roll(-1, 1).unsqueeze(-1)).squeeze(-1) * weights).sum()


def assert_encode_once_equals_repeated_inputs(model, net_input, k):
    torch.manual_seed(1)
    rows = net_input["src_tokens"].size(0) * k
    prev = torch.randint(4, 200, (rows, 6))
    prev[:, 0] = 0
    prev[1, 4:] = 1  # padding in one row
    model.train()
    results = []
    for grouped in (True, False):
        model.zero_grad()
        loss = teacher_forced_loss(model, net_input, prev, k, grouped)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (loss, grads), (expected_loss, expected_grads) = results
    assert relative_error(loss, expected_loss) < 1e-5
    assert set(grads) == set(expected_grads)
    for name in ("encoder.token_rel_pos_table_list.0.weight", "encoder.image_rel_pos_table_list.1.weight",
                 "decoder.token_rel_pos_table_list.0.weight", "encoder.embed_images.conv1.weight",
                 "encoder.embed_images.layer1.0.conv2.weight"):
        assert expected_grads[name].abs().max() > 0, name
    # Keys' biases get a gradient that is zero in exact arithmetic (softmax ignores a shift of all
    # logits); their float noise is measured against the largest gradient of the model.
    floor = 1e-3 * max(g.abs().max().item() for g in expected_grads.values())
    errors = {n: (grads[n] - g).abs().max().item() / max(g.abs().max().item(), floor) for n, g in expected_grads.items()}
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-4, (worst, errors[worst])


def test_scst_encode_once_equals_repeated_inputs_on_fixture_model(ref):
    # Trainable BatchNorm: repeated rows keep its batch statistics. The fixture's 2-image batch makes
    # BatchNorm's backward ill-conditioned, so fp32 noise depends on the summation order (the thread
    # count); in float64 the two paths must agree to far below the tolerance.
    model = build_reference_model(ref, **NO_DROPOUT).double()
    net_input = {key: value.double() if value.is_floating_point() else value
                 for key, value in ((key, ref["inputs"][key]) for key in ENCODER_INPUTS)}
    assert_encode_once_equals_repeated_inputs(model, net_input, k=3)


def test_scst_encode_once_equals_repeated_inputs_on_demo_arch(ref):
    torch.manual_seed(0)
    model = build_model("ofa_demo", dictionary_from_symbols(ref["dictionary_symbols"]), freeze_resnet=True)
    net_input = {
        "src_tokens": torch.tensor([[0, 20, 21, 22, 2], [0, 30, 31, 2, 1]]),
        "src_lengths": torch.tensor([5, 4]),
        "patch_images": torch.randn(2, 3, 96, 96),
        "patch_masks": torch.tensor([True, True]),
    }
    assert_encode_once_equals_repeated_inputs(model, net_input, k=5)


def test_generation_from_training_encoding_equals_fresh_encoding(ref):
    model = build_reference_model(ref, freeze_resnet=True, **NO_DROPOUT)
    assert model.encoder.is_exact_in_training()
    args = ref["generation"]["args"]
    generator = OFASequenceGenerator(
        [model], dictionary_from_symbols(ref["dictionary_symbols"]), beam_size=args["beam"],
        max_len_a=args["max_len_a"], max_len_b=args["max_len_b"], min_len=args["min_len"],
        constraint_range=args["constraint_range"],
    )
    sample = {"net_input": {key: ref["inputs"][key] for key in ENCODER_INPUTS}}
    model.train()
    encoding = model.encoder(**sample["net_input"])
    model.eval()
    reused = generator.generate([model], sample, encoder_outs=[{k: [t.detach() for t in v] if isinstance(v, list) else v
                                                               for k, v in encoding.items()}])
    fresh = generator.generate([model], sample)
    for a, b in zip(reused, fresh):
        assert [h["tokens"].tolist() for h in a] == [h["tokens"].tolist() for h in b]
        assert torch.allclose(torch.stack([h["score"] for h in a]), torch.stack([h["score"] for h in b]), atol=1e-5)


def test_encoder_is_exact_in_training_only_without_dropout_and_batch_statistics(ref):
    assert not build_reference_model(ref, freeze_resnet=True).encoder.is_exact_in_training()  # dropout 0.1
    assert not build_reference_model(ref, **NO_DROPOUT).encoder.is_exact_in_training()  # trainable BatchNorm
    assert build_reference_model(ref, freeze_resnet=True, **NO_DROPOUT).encoder.is_exact_in_training()


def test_rows_grouped_by_source():
    beams = torch.tensor([0, 0, 0, 1, 1, 1])  # fairseq's beam expansion of 2 sources
    assert group_rows_by_source(beams, 1, 2) == (None, 3)
    sources, per_source = group_rows_by_source(torch.tensor([2, 0, 1, 4, 4, 3]), 3, 2)  # reorder within sentences
    assert sources is None and per_source == 3
    sources, per_source = group_rows_by_source(torch.tensor([5, 3, 4]), 3, 2)  # sentence 0 finished
    assert sources.tolist() == [1] and per_source == 3
    sources, per_source = group_rows_by_source(torch.tensor([1, 0, 0]), 1, 2)  # not grouped: one row each
    assert sources.tolist() == [1, 0, 0] and per_source == 1


def test_incremental_decoding_of_grouped_rows_equals_full_forward(ref, model):
    net = {key: ref["inputs"][key][:2] for key in ENCODER_INPUTS}
    prev = torch.randint(4, 200, (6, 5))
    prev[:, 0] = 0
    with torch.no_grad():
        full, _ = model(prev_output_tokens=prev, rows_per_source=3, **net)
        encoder_out = model.encoder.reorder_encoder_out(model.encoder(**net), torch.tensor([0, 0, 0, 1, 1, 1]))
        state = {}
        steps = [model.decoder(prev[:, : t + 1], encoder_out=encoder_out, incremental_state=state)[0]
                 for t in range(prev.size(1))]
    assert encoder_out["encoder_out"][0].size(1) == 2  # one encoding per source, not per row
    assert relative_error(torch.cat(steps, dim=1), full) < 1e-5


def tied_projection_loss_and_grads(model, net_input, prev, projection):
    """A weighted log-softmax loss of the decoder's logits from `projection(features, tied weight)`,
    and the gradients of every parameter (the tied embedding collects encoder, decoder and output uses)."""
    model.zero_grad(set_to_none=True)
    features, _ = model(prev_output_tokens=prev, features_only=True, **net_input)
    logits = projection(features, model.decoder.output_projection.weight)
    lprobs = torch.log_softmax(logits.float(), dim=-1)
    weights = torch.linspace(0.5, 1.5, prev.numel()).view(prev.shape)
    loss = -(lprobs.gather(-1, prev.roll(-1, 1).unsqueeze(-1)).squeeze(-1) * weights).sum()
    loss.backward()
    return logits.detach(), loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16_autocast"])
def test_vocabulary_projection_equals_linear_with_gradients(ref, autocast):
    """The decoder's output layer computes what F.linear does, forward and backward, also under
    autocast (bf16 on the CPU: logits in bf16, fp32 gradients of the fp32 parameters)."""
    model = build_reference_model(ref, **NO_DROPOUT).train()
    net_input = {key: ref["inputs"][key] for key in ENCODER_INPUTS}
    prev = torch.randint(4, 200, (net_input["src_tokens"].size(0), 6), generator=torch.Generator().manual_seed(0))
    prev[:, 0] = 0
    results = {}
    for name, projection in (("output_layer", lambda features, weight: model.decoder.output_layer(features)),
                             ("linear", torch.nn.functional.linear)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            results[name] = tied_projection_loss_and_grads(model, net_input, prev, projection)
    (logits, loss, grads), (expected_logits, expected_loss, expected_grads) = results["output_layer"], results["linear"]
    assert logits.dtype == expected_logits.dtype == (torch.bfloat16 if autocast else torch.float32)
    assert torch.equal(logits, expected_logits)
    assert relative_error(loss, expected_loss) < 1e-6
    assert set(grads) == set(expected_grads) and "encoder.embed_tokens.weight" in grads  # the tied matrix
    for name, expected in expected_grads.items():
        assert grads[name].dtype == torch.float32
        assert relative_error(grads[name], expected) < 1e-6, name

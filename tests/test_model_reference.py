"""The `ofa` model equals OFA-main: state-dict layout of every arch, encoder output and logits."""
import hashlib

import pytest
import torch
from fairseq.data import Dictionary

from helpers import build_model, build_reference_model, dictionary_from_symbols, float32_state, load_json_reference
from ofa_sic.models.ofa import CheckpointMismatchError
from ofa_sic.models.position import make_image_bucket_position, make_token_bucket_position

CAPTION_FLAGS = dict(scale_attn=True, scale_fc=True, scale_heads=True, disable_entangle=True)


def ofa_dictionary(code_dict_size=8192, num_bins=1000, bpe_size=50260) -> Dictionary:
    """The 59,457-symbol dictionary layout of OFA (GPT-2 dict + <mask> + codes + bins)."""
    d = Dictionary()
    for i in range(bpe_size):
        d.add_symbol(str(i))
    d.add_symbol("<mask>")
    for i in range(code_dict_size):
        d.add_symbol(f"<code_{i}>")
    for i in range(num_bins):
        d.add_symbol(f"<bin_{i}>")
    return d


@pytest.mark.parametrize("arch", ["ofa_tiny", "ofa_medium", "ofa_base", "ofa_large", "ofa_huge"])
def test_state_dict_keys_and_shapes_match_released_checkpoints(arch):
    expected = load_json_reference("ofa_arch_shapes.json")["shapes"][arch]
    dictionary = ofa_dictionary()
    assert len(dictionary) == 59457
    with torch.device("meta"):
        model = build_model(arch, dictionary, **CAPTION_FLAGS)
    actual = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(expected) - set(actual)) == []
    assert sorted(set(actual) - set(expected)) == []
    assert {k: v for k, v in actual.items() if v != expected[k]} == {}


def assert_equals_ofa_table(table, check):
    """`table` equals OFA-main's bucket table: same shape, same sampled entries, same SHA-256 of all entries."""
    assert list(table.shape) == check["shape"]
    assert [[i, j, int(table[i, j])] for i, j, _ in check["samples"]] == check["samples"]
    assert hashlib.sha256(table.long().numpy().astype("<i8").tobytes()).hexdigest() == check["sha256"]


def test_bucket_tables_equal_ofa(ref):
    assert_equals_ofa_table(make_token_bucket_position(256, 1024), ref["rp_buckets"]["token_rp_bucket"])
    assert_equals_ofa_table(make_image_bucket_position(42, 83 * 83 + 3), ref["rp_buckets"]["image_rp_bucket"])


def test_encoder_output_equals_ofa(ref, model):
    inputs, expected = ref["inputs"], ref["expected"]
    with torch.no_grad():
        out = model.encoder(inputs["src_tokens"], inputs["src_lengths"], inputs["patch_images"], inputs["patch_masks"])
    assert torch.equal(out["encoder_padding_mask"][0], expected["encoder_padding_mask"])
    keep = ~expected["encoder_padding_mask"].t()
    diff = (out["encoder_out"][0] - expected["encoder_out"]).abs()[keep]
    assert diff.max().item() < 1e-4


def test_decoder_logits_equal_ofa(ref, model):
    inputs = ref["inputs"]
    with torch.no_grad():
        logits, _ = model(inputs["src_tokens"], inputs["src_lengths"], inputs["prev_output_tokens"],
                          patch_images=inputs["patch_images"], patch_masks=inputs["patch_masks"])
    non_pad = inputs["prev_output_tokens"].ne(1)
    assert (logits - ref["expected"]["decoder_logits"]).abs()[non_pad].max().item() < 1e-4


def test_text_only_row_ignores_its_image(ref, model):
    """Row 2 has patch_masks False: changing its image must not change its logits."""
    inputs = ref["inputs"]
    images = inputs["patch_images"].clone()
    images[2] = torch.randn_like(images[2])
    with torch.no_grad():
        a, _ = model(inputs["src_tokens"], inputs["src_lengths"], inputs["prev_output_tokens"],
                     patch_images=inputs["patch_images"], patch_masks=inputs["patch_masks"])
        b, _ = model(inputs["src_tokens"], inputs["src_lengths"], inputs["prev_output_tokens"],
                     patch_images=images, patch_masks=inputs["patch_masks"])
    assert torch.allclose(a[2], b[2], atol=1e-5)
    assert not torch.allclose(a[0], model(inputs["src_tokens"], inputs["src_lengths"], inputs["prev_output_tokens"],
                                          patch_images=images.roll(1, 0), patch_masks=inputs["patch_masks"])[0][0])


def test_incremental_decoding_equals_full_forward(ref, model):
    inputs = ref["inputs"]
    prev = inputs["prev_output_tokens"][:1, :7]  # row 0 has no padding in its first 7 positions
    net = {k: inputs[k][:1] for k in ("src_tokens", "src_lengths", "patch_images", "patch_masks")}
    with torch.no_grad():
        full, _ = model(prev_output_tokens=prev, **net)
        encoder_out = model.encoder(**net)
        state = {}
        steps = [model.decoder(prev[:, : t + 1], encoder_out=encoder_out, incremental_state=state)[0] for t in range(prev.size(1))]
    incremental = torch.cat(steps, dim=1)
    assert (incremental - full).abs().max().item() < 1e-4


def test_missing_buffers_are_filled_in(ref):
    state = float32_state(ref)
    assert "encoder.token_rp_bucket" not in state  # the fixture leaves the bucket buffers out
    model = build_reference_model(ref)
    for module in (model.encoder, model.decoder):
        assert_equals_ofa_table(module.token_rp_bucket, ref["rp_buckets"]["token_rp_bucket"])
        assert_equals_ofa_table(module.image_rp_bucket, ref["rp_buckets"]["image_rp_bucket"])


def test_growing_dictionary_appends_rows(ref):
    dictionary = dictionary_from_symbols(ref["dictionary_symbols"])
    for i in range(7):
        dictionary.add_symbol(f"<style_extra_{i}>")
    model = build_reference_model(ref, dictionary=dictionary)
    weight = model.encoder.embed_tokens.weight
    assert weight.shape[0] == 301 + 7
    assert torch.equal(weight[:301], float32_state(ref)["encoder.embed_tokens.weight"])
    assert weight[301:].abs().sum() > 0
    assert model.decoder.output_projection.weight is model.decoder.embed_tokens.weight


def test_unexpected_keys_fail_with_their_names(ref):
    options = {k: v for k, v in ref["arch_overrides"].items() if k != "patch_image_size"}
    options.update(ref["flags"], scale_attn=False)
    model = build_model(ref["arch"], dictionary_from_symbols(ref["dictionary_symbols"]), **options)
    with pytest.raises(CheckpointMismatchError) as error:
        model.load_state_dict(float32_state(ref))
    message = str(error.value)
    assert "encoder.layers.0.attn_ln.weight" in message and "decoder.layers.1.cross_attn_ln.bias" in message
    assert "--scale-attn" in message


def test_frozen_resnet_loads_checkpoint_and_gives_same_logits(ref, model):
    frozen = build_reference_model(ref, freeze_resnet=True)
    assert not any(p.requires_grad for p in frozen.encoder.embed_images.parameters() if p.dim() == 1)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in frozen.modules())
    inputs = ref["inputs"]
    frozen.train()  # frozen BN keeps its statistics even in training mode
    with torch.no_grad():
        a = frozen.encoder.embed_images(inputs["patch_images"])
        b = model.encoder.embed_images(inputs["patch_images"])
    assert (a - b).abs().max().item() < 1e-4


def test_freeze_embedding_and_drop_path_and_sync_bn_options(ref):
    options = {k: v for k, v in ref["arch_overrides"].items() if k != "patch_image_size"}
    options.update(ref["flags"], freeze_encoder_embedding=True, encoder_drop_path_rate=0.2,
                   decoder_drop_path_rate=0.3, resnet_drop_path_rate=0.1, sync_bn=True)
    model = build_model(ref["arch"], dictionary_from_symbols(ref["dictionary_symbols"]), **options)
    assert model.encoder.embed_tokens.weight.requires_grad is False
    assert [getattr(layer.drop_path, "drop_prob", 0.0) for layer in model.encoder.layers] == pytest.approx([0.0, 0.2])
    assert [getattr(layer.drop_path, "drop_prob", 0.0) for layer in model.decoder.layers] == pytest.approx([0.0, 0.3])
    assert model.encoder.embed_images.layer1[1].drop_path.drop_prob == pytest.approx(0.1)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())

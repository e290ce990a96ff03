"""`ofa-sic convert` against the real ModelScope library (offline): exports load in ModelScope's
OFAModel with the same logits, ModelScope models import with the same logits, round trips keep every
tensor bit for bit, and what the other side cannot express is refused with its reason."""
import argparse
import json
import re

import pytest
import torch

modelscope_ofa = pytest.importorskip("modelscope.models.multi_modal.ofa", reason="needs the interop extra (make install)")

from ofa_sic.convert import ConversionRefused, convert  # noqa: E402
from ofa_sic.convert.model import build_ofa_model  # noqa: E402
from ofa_sic.data.prompts import template_without_space_before_style  # noqa: E402
from ofa_sic.data.text import TextCodec, build_ofa_dictionary  # noqa: E402

#: ofa_demo with the sizes written out, plus the caption recipe flags.
DEMO_OPTIONS = dict(
    encoder_embed_dim=128, decoder_embed_dim=128, encoder_ffn_embed_dim=512, decoder_ffn_embed_dim=512,
    encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
    resnet_type="resnet18", max_source_positions=256, max_target_positions=256, image_bucket_size=16,
    scale_attn=True, scale_fc=True, scale_heads=True, disable_entangle=True,
)
#: The same model as a ModelScope OFAConfig.
TINY_CONFIG = dict(
    d_model=128, encoder_ffn_dim=512, decoder_ffn_dim=512, encoder_layers=2, decoder_layers=2,
    encoder_attention_heads=4, decoder_attention_heads=4, resnet_type="resnet18", max_position_embeddings=256,
    image_bucket_size=16, dropout=0.0,
)


def randomize(module: torch.nn.Module, seed: int) -> None:
    """Give every float tensor (layer norms, scales, BatchNorm statistics too) distinct random values, so
    that a swapped or dropped name shows in the logits and in bitwise comparisons."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point() or name.endswith(".version"):
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + noise.abs())
            elif tensor.dim() == 1 and (name.endswith("weight") or name.endswith("c_attn") or name.endswith("w_resid")):
                tensor.copy_(1.0 + 0.1 * noise)
            else:
                tensor.copy_(0.05 * noise)


def fairseq_checkpoint(tmp_path, demo_data, name="ofa.pt", seed=0, task=None, **overrides):
    """A style_caption checkpoint of a random ofa_demo-sized model, as fairseq stores it (cfg with the model
    Namespace and the task settings); returns (path, model in eval mode)."""
    options = dict(DEMO_OPTIONS, **overrides)
    dictionary = build_ofa_dictionary(str(demo_data["bpe"]), 8192, 1000)
    model = build_ofa_model(options, len(dictionary), "ofa_demo")
    randomize(model, seed)
    cfg = {
        "model": argparse.Namespace(**vars(model.args)),
        "task": {"_name": "style_caption", "data": str(demo_data["data"]), "bpe_dir": str(demo_data["bpe"]),
                 "code_dict_size": 8192, "num_bins": 1000, "patch_image_size": 96,
                 "imagenet_default_mean_and_std": False, "prompt_template": " what does the image describe? write a {} reply.",
                 "style_format": "token", "mlm_ratio": 0.0, "mlm_image": "same", **(task or {})},
        "common": {"seed": 1},
    }
    path = tmp_path / name
    torch.save({"args": None, "cfg": cfg, "model": model.state_dict(),
                "optimizer_history": [{"criterion_name": "x", "optimizer_name": "x", "lr_scheduler_state": {}, "num_updates": 9}],
                "extra_state": {"train_iterator": {"epoch": 1}},
                "last_optimizer_state": None}, path)
    return path, model.eval()


def modelscope_folder(folder, demo_data, prefix="model.", seed=1, **config_overrides):
    """A ModelScope-style folder of a random ModelScope OFAModel built from a tiny config: config.json,
    pytorch_model.bin (keys under `prefix`), configuration.json, and a BART-style vocab.json/merges.txt made
    from the demo BPE files. Returns the model in eval mode."""
    bpe = demo_data["bpe"]
    encoder = json.loads((bpe / "encoder.json").read_text())
    tokens = ["<s>", "<pad>", "</s>", "<unk>"] + sorted(encoder, key=encoder.get) + ["<mask>"]
    config = modelscope_ofa.modeling_ofa.OFAConfig(vocab_size=len(tokens) + 8192 + 1000, **dict(TINY_CONFIG, **config_overrides))
    model = modelscope_ofa.OFAModel(config)
    randomize(model, seed)
    folder.mkdir()
    config.to_json_file(str(folder / "config.json"))
    torch.save({prefix + k: v for k, v in model.state_dict().items()}, folder / "pytorch_model.bin")
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text((bpe / "vocab.bpe").read_text())
    (folder / "configuration.json").write_text(json.dumps({"framework": "pytorch", "task": "image-captioning",
                                                             "model": {"type": "ofa", "patch_image_size": 96}}))
    return model.eval()


def batch(pad: int, vocab_size: int):
    """Two image rows of different prompt lengths and one text-only row (patch_masks False, blank image)."""
    generator = torch.Generator().manual_seed(5)
    src = torch.randint(4, 200, (3, 7), generator=generator)
    src[:, 0], src[0, 6], src[1, 4:] = 0, 2, pad
    src[1, 3], src[2, 6] = 2, 2
    prev = torch.randint(4, vocab_size, (3, 5), generator=generator)
    prev[:, 0] = 0
    prev[2, 3:] = pad
    images = torch.randn(3, 3, 64, 64, generator=generator)
    images[2] = 0
    masks = torch.tensor([True, True, False])
    return src, prev, images, masks


def ofa_logits(model, src, prev, images, masks):
    with torch.no_grad():
        return model(src, src.ne(1).sum(1), prev, patch_images=images, patch_masks=masks)[0]


def modelscope_logits(model, src, prev, images, masks):
    with torch.no_grad():
        return model(input_ids=src, patch_images=images, patch_masks=masks, decoder_input_ids=prev).logits


def load_modelscope(folder):
    model, info = modelscope_ofa.OFAModel.from_pretrained(str(folder), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


def load_fairseq(path):
    from fairseq import checkpoint_utils

    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(path)], arg_overrides={"eval_cider": False})
    return models[0].eval(), task


@pytest.mark.parametrize("overrides", [{}, {"freeze_resnet": True, "scale_heads": False, "scale_attn": False, "scale_fc": False}],
                         ids=["caption_recipe", "frozen_resnet_no_normformer"])
def test_export_loads_in_modelscope_with_the_same_logits_and_tokens(demo_data, tmp_path, overrides):
    path, model = fairseq_checkpoint(tmp_path, demo_data, **overrides)
    report = convert("fairseq", "modelscope", str(path), str(tmp_path / "ms"))
    exported = load_modelscope(tmp_path / "ms")
    src, prev, images, masks = batch(1, model.decoder.embed_tokens.num_embeddings)
    expected = ofa_logits(model, src, prev, images, masks)
    got = modelscope_logits(exported, src, prev, images, masks)
    assert (got - expected).abs().max() < 1e-5
    assert (tmp_path / "ms" / "styles.txt").read_text() == (demo_data["data"] / "styles.txt").read_text()
    assert json.loads((tmp_path / "ms" / "configuration.json").read_text())["model"]["patch_image_size"] == 96
    assert any(line.startswith("styles: ") for line in report.notes)
    assert any("c_attn = 1" in line for line in report.notes) == ("scale_heads" in overrides)
    if overrides:
        return  # the vocabulary does not depend on the model options: check it once

    # ModelScope's tokenizer on the exported vocabulary gives ofa_sic's ids, codes and bins included.
    tokenizer = modelscope_ofa.OFATokenizer.from_pretrained(str(tmp_path / "ms"))
    tokenizer.add_tokens([f"<code_{i}>" for i in range(8192)] + [f"<bin_{i}>" for i in range(1000)])
    dictionary = build_ofa_dictionary(str(demo_data["bpe"]), 8192, 1000)
    codec = TextCodec(str(demo_data["bpe"]), dictionary)
    text = " what does the image describe? write a sweet reply."
    assert tokenizer(text)["input_ids"] == [0] + codec.encode(text) + [2]
    assert tokenizer.convert_tokens_to_ids(["<code_7>", "<bin_3>"]) == [dictionary.index("<code_7>"), dictionary.index("<bin_3>")]


def test_modelscope_model_imports_with_the_same_logits(demo_data, tmp_path):
    reference = modelscope_folder(tmp_path / "ms", demo_data)
    report = convert("modelscope", "fairseq", str(tmp_path / "ms"), str(tmp_path / "fs"),
                     styles_file=str(demo_data["data"] / "styles.txt"))
    assert any("removed the 'model.' prefix" in line for line in report.lines())
    model, task = load_fairseq(tmp_path / "fs" / "checkpoint.pt")
    assert task.styles.names == (demo_data["data"] / "styles.txt").read_text().splitlines()
    assert task.cfg.patch_image_size == 96
    src, prev, images, masks = batch(1, reference.config.vocab_size)
    got = ofa_logits(model, src, prev, images, masks)
    assert (got - modelscope_logits(reference, src, prev, images, masks)).abs().max() < 1e-5


def test_hf_port_folders_without_prefix_and_in_safetensors_import(demo_data, tmp_path):
    """The HF port saves OFAModel's keys without a prefix; safetensors files keep a tied tensor once."""
    from safetensors.torch import save_file

    reference = modelscope_folder(tmp_path / "hf", demo_data, prefix="")
    convert("hf", "fairseq", str(tmp_path / "hf" / "pytorch_model.bin"), str(tmp_path / "fs"))
    state = torch.load(tmp_path / "fs" / "checkpoint.pt", weights_only=False)["model"]
    original = reference.state_dict()
    assert torch.equal(state["decoder.layers.1.encoder_attn.q_proj.weight"], original["decoder.layers.1.cross_attn.q_proj.weight"])

    (tmp_path / "hf" / "pytorch_model.bin").unlink()
    once = {k: v.clone() for k, v in original.items() if k not in ("decoder.embed_tokens.weight", "decoder.output_projection.weight")}
    save_file(once, str(tmp_path / "hf" / "model.safetensors"))
    report = convert("hf", "fairseq", str(tmp_path / "hf"), str(tmp_path / "fs2"))
    assert any("stored once" in line for line in report.notes)
    again = torch.load(tmp_path / "fs2" / "checkpoint.pt", weights_only=False)["model"]
    assert set(again) == set(state) and all(torch.equal(again[k], state[k]) for k in state)


def test_round_trips_keep_every_tensor_bit_for_bit(demo_data, tmp_path):
    path, _ = fairseq_checkpoint(tmp_path, demo_data)
    convert("fairseq", "modelscope", str(path), str(tmp_path / "ms"))
    convert("modelscope", "fairseq", str(tmp_path / "ms"), str(tmp_path / "back"))
    before = torch.load(path, weights_only=False)["model"]
    after = torch.load(tmp_path / "back" / "checkpoint.pt", weights_only=False)["model"]
    assert set(before) == set(after)
    for key, value in before.items():
        assert value.dtype == after[key].dtype and torch.equal(value, after[key]), key

    reference = modelscope_folder(tmp_path / "ms2", demo_data)
    convert("modelscope", "fairseq", str(tmp_path / "ms2"), str(tmp_path / "fs2"))
    convert("fairseq", "hf", str(tmp_path / "fs2" / "checkpoint.pt"), str(tmp_path / "hf2"))
    convert("hf", "modelscope", str(tmp_path / "hf2"), str(tmp_path / "ms3"))
    original = reference.state_dict()
    final = torch.load(tmp_path / "ms3" / "pytorch_model.bin", weights_only=True)
    assert set(final) == {"model." + key for key in original}
    for key, value in original.items():
        assert value.dtype == final["model." + key].dtype and torch.equal(value, final["model." + key]), key


def test_known_port_differences_are_warned_about_when_they_matter(demo_data, tmp_path):
    path, _ = fairseq_checkpoint(tmp_path, demo_data, task={"mlm_ratio": 0.5, "mlm_image": "none"}, decoder_drop_path_rate=0.1)
    warnings = convert("fairseq", "hf", str(path), str(tmp_path / "hf")).warnings
    assert any("per position" in line and "decoder_drop_path_rate=0.1" in line for line in warnings), warnings
    assert any("text-only rows" in line and "patch_masks" in line for line in warnings), warnings
    path, _ = fairseq_checkpoint(tmp_path, demo_data, name="plain.pt")
    assert convert("fairseq", "hf", str(path), str(tmp_path / "hf2")).warnings == []


@pytest.mark.parametrize("overrides, target, message", [
    ({"disable_entangle": False}, "modelscope", "without --disable-entangle"),
    ({"scale_fc": False}, "hf", "one `normformer` switch"),
    ({"scale_resids": True}, "modelscope", "--scale-resids"),
    ({"sync_bn": True}, "modelscope", "eps 1e-3"),
    ({"max_target_positions": 128}, "modelscope", "one max_position_embeddings"),
    ({"attn_scale_factor": 4.0}, "hf", "always scales queries with factor 2"),
])
def test_exports_the_ports_cannot_express_are_refused(demo_data, tmp_path, overrides, target, message):
    path, _ = fairseq_checkpoint(tmp_path, demo_data, **overrides)
    with pytest.raises(ConversionRefused, match=re.escape(message)):
        convert("fairseq", target, str(path), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("config_overrides, message", [
    ({"entangle_position_embedding": True}, "entangle_position_embedding=true"),
    ({"share_attn_bias": True}, "one relative-position table shared by all layers"),
    ({"encoder_layerdrop": 0.1}, "no LayerDrop"),
])
def test_imports_ofa_sic_cannot_express_are_refused(demo_data, tmp_path, config_overrides, message):
    modelscope_folder(tmp_path / "ms", demo_data, **config_overrides)
    with pytest.raises(ConversionRefused, match=message):
        convert("modelscope", "fairseq", str(tmp_path / "ms"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_other_code_counts_are_refused_for_the_ports(demo_data, tmp_path):
    path, _ = fairseq_checkpoint(tmp_path, demo_data)
    state = torch.load(path, weights_only=False)
    state["cfg"]["task"]["code_dict_size"] = 300
    rows = len(build_ofa_dictionary(str(demo_data["bpe"]), 300, 1000))
    model = build_ofa_model(DEMO_OPTIONS, rows, "ofa_demo")
    state["model"] = model.state_dict()
    torch.save(state, path)
    with pytest.raises(ConversionRefused, match="always appends 8192 and 1000"):
        convert("fairseq", "modelscope", str(path), str(tmp_path / "out"))


def test_missing_config_mixed_prefix_and_existing_output_fail_clearly(demo_data, tmp_path):
    modelscope_folder(tmp_path / "ms", demo_data)
    weights = torch.load(tmp_path / "ms" / "pytorch_model.bin", weights_only=True)
    weights["encoder.extra"] = torch.zeros(1)
    torch.save(weights, tmp_path / "ms" / "pytorch_model.bin")
    with pytest.raises(ConversionRefused, match="expected all or none"):
        convert("modelscope", "fairseq", str(tmp_path / "ms"), str(tmp_path / "out"))
    (tmp_path / "ms" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="never guessed"):
        convert("modelscope", "fairseq", str(tmp_path / "ms"), str(tmp_path / "out"))
    (tmp_path / "out").mkdir()
    path, _ = fairseq_checkpoint(tmp_path, demo_data)
    with pytest.raises(FileExistsError, match="nothing is overwritten"):
        convert("fairseq", "modelscope", str(path), str(tmp_path / "out"))


def test_imported_checkpoint_runs_in_fairseq_generate_train_and_caption(demo_data, tmp_path, capsys):
    """The command line end to end: `ofa-sic convert` a ModelScope folder, then the real fairseq-generate,
    fairseq-train --restore-file and `ofa-sic caption` load it strictly and run."""
    from PIL import Image

    from helpers import common_args, fairseq_command, run_command
    from ofa_sic.cli.main import main

    modelscope_folder(tmp_path / "ms", demo_data)
    styles = demo_data["data"] / "styles.txt"
    assert main(["convert", "--from", "modelscope", "--to", "fairseq", str(tmp_path / "ms"), str(tmp_path / "fs"),
                 "--styles", str(styles)]) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "arch ofa_demo" in printed
    checkpoint, bpe = tmp_path / "fs" / "checkpoint.pt", tmp_path / "fs" / "bpe"
    common = [*common_args(), "--bpe-dir", bpe]

    generated = run_command([fairseq_command("fairseq-generate"), demo_data["data"], *common, "--path", checkpoint,
                             "--gen-subset", "test", "--beam", "2", "--max-len-b", "5", "--batch-size", "6"])
    test_rows = sum(1 for line in (demo_data["data"] / "test.tsv").read_text().splitlines() if line.strip())
    assert sum(1 for line in generated.stdout.splitlines() if line.startswith("D-")) == test_rows
    assert "checkpoint lacks" not in generated.stdout + generated.stderr  # nothing filled in: a strict load

    trained = run_command([fairseq_command("fairseq-train"), demo_data["data"], *common, "--arch", "ofa_demo",
                           "--restore-file", checkpoint, "--reset-optimizer", "--reset-dataloader", "--reset-meters",
                           "--criterion", "adjust_label_smoothed_cross_entropy", "--optimizer", "adam", "--lr", "1e-4",
                           "--batch-size", "16", "--max-update", "1", "--disable-validation", "--no-save", "--save-dir", tmp_path / "train",
                           "--num-workers", "0", "--log-format", "simple"])
    assert "Loaded checkpoint" in trained.stdout + trained.stderr

    image = tmp_path / "red.png"
    Image.new("RGB", (120, 90), (200, 30, 30)).save(image)
    style = styles.read_text().splitlines()[3]
    captioned = run_command([fairseq_command("ofa-sic"), "caption", image, "--style", style, "--path", checkpoint,
                             "--cpu", "--beam", "2", "--max-len-b", "5"])
    [line] = captioned.stdout.strip().splitlines()
    assert line.split("\t")[:2] == [str(image), style]


def test_cli_refusal_is_one_error_line_with_exit_code_2(demo_data, tmp_path, capsys):
    from ofa_sic.cli.main import main

    path, _ = fairseq_checkpoint(tmp_path, demo_data, disable_entangle=False)
    assert main(["convert", "--from", "fairseq", "--to", "modelscope", str(path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ofa-sic convert: error:")]
    assert len(errors) == 1 and "--disable-entangle" in errors[0] and "Traceback" not in err
    assert not (tmp_path / "out").exists()


# ---- the prompt: what ModelScope's tokenizer gives the declared template is what ofa_sic feeds the model ----

PROTOTYPE_PROMPT = " what does the image describe? reply in personality {}."


def modelscope_tokenizer(folder):
    """OFATokenizer of a port folder with `<code_i>` and `<bin_i>` added, as ModelScope's OfaBasePreprocessor does."""
    tokenizer = modelscope_ofa.OFATokenizer.from_pretrained(str(folder))
    tokenizer.add_tokens([f"<code_{i}>" for i in range(8192)])
    tokenizer.add_tokens([f"<bin_{i}>" for i in range(1000)])
    return tokenizer


def modelscope_prompt_ids(tokenizer, template, style_index):
    """ModelScope's source for style i: <s> + OFATokenizer(template with <code_i>) + </s> (its tokenize_text)."""
    text = template.format(f"<code_{style_index}>")
    return [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def test_exported_model_captions_in_modelscope_as_in_ofa_sic_from_the_declared_prompt(demo_data, stage1_checkpoint, tmp_path):
    """A ModelScope user who formats configuration.json's model.prompt with <code_i> and runs ModelScope's own
    sequence generator with the exported beam settings gets ofa_sic's beams, token for token."""
    from PIL import Image

    from modelscope.models.multi_modal.ofa.generate.sequence_generator import SequenceGenerator

    from ofa_sic.data.text import collate_tokens
    from ofa_sic.generation.captioner import Captioner
    from ofa_sic.generation.options import GenerationOptions

    convert("fairseq", "modelscope", str(stage1_checkpoint), str(tmp_path / "ms"))
    configuration = json.loads((tmp_path / "ms" / "configuration.json").read_text())["model"]
    captioner = Captioner(str(stage1_checkpoint), GenerationOptions(), cpu=True)
    task = captioner.task
    assert configuration["prompt"] == task.cfg.prompt_template
    assert json.loads((tmp_path / "ms" / "config.json").read_text())["ofa_sic_task"]["prompt_template"] == task.cfg.prompt_template
    settings = configuration["beam_search"]
    options = GenerationOptions()
    assert settings == {"beam_size": options.beam, "max_len_b": options.max_len_b, "no_repeat_ngram_size": options.no_repeat_ngram_size}

    images = sorted((demo_data["raw"] / "yfcc_images").glob("*.jpg"))[:3]
    style_indices = [0, 2, 4]
    rows = [(image, i) for image in images for i in style_indices]
    names = task.styles.names
    pad = task.dictionary.pad()
    sources = [task.prompt(names[i]) for _, i in rows]
    sample = {"id": torch.arange(len(rows)), "net_input": {
        "src_tokens": collate_tokens(sources, pad), "src_lengths": torch.tensor([len(s) for s in sources]),
        "patch_images": torch.stack([captioner.image_tensor(Image.open(image)) for image, _ in rows]),
        "patch_masks": torch.ones(len(rows), dtype=torch.bool)}}
    with torch.no_grad():
        ours = task.inference_step(captioner.generator, [captioner.model], sample)
    pixels = task.normalized(sample, captioner.model)["net_input"]["patch_images"]  # the same pixels for both

    tokenizer = modelscope_tokenizer(tmp_path / "ms")
    exported = load_modelscope(tmp_path / "ms")
    generator = SequenceGenerator(tokenizer=tokenizer, min_len=1, constraint_range=task.generation_constraint(), **settings)

    def modelscope_beams(template_ids):
        input_ids = collate_tokens([torch.tensor(ids) for ids in template_ids], tokenizer.pad_token_id)
        net_input = {"input_ids": input_ids, "patch_images": pixels, "patch_masks": torch.ones(len(rows), dtype=torch.bool)}
        with torch.no_grad():
            return generator.generate([exported], {"net_input": net_input})

    prompt_ids = [modelscope_prompt_ids(tokenizer, configuration["prompt"], i) for _, i in rows]
    assert prompt_ids == [s.tolist() for s in sources]
    theirs = modelscope_beams(prompt_ids)
    for row, (our_beams, their_beams) in enumerate(zip(ours, theirs)):
        assert len(our_beams) == len(their_beams) == options.beam
        for ours_hypo, theirs_hypo in zip(our_beams, their_beams):
            assert ours_hypo["tokens"].tolist() == theirs_hypo["tokens"].tolist(), row
            assert (ours_hypo["positional_scores"] - theirs_hypo["positional_scores"]).abs().max() < 1e-5, row

    # The ids matter: without the space token before <code_i> (the rule before issue 18), every row's
    # token scores move by far more than the tolerance above (this briefly trained model's words do not).
    without_space = [modelscope_prompt_ids(tokenizer, template_without_space_before_style(configuration["prompt"]), i)
                     for _, i in rows]
    assert all(len(a) == len(b) + 1 for a, b in zip(prompt_ids, without_space))
    for with_space, other in zip(theirs, modelscope_beams(without_space)):
        steps = min(len(with_space[0]["tokens"]), len(other[0]["tokens"]))
        assert (with_space[0]["positional_scores"][:steps] - other[0]["positional_scores"][:steps]).abs().max() > 1e-4


def test_prototype_folder_imports_with_its_prompt_as_modelscope_tokenized_it(demo_data, tmp_path, capsys):
    """`ofa-sic convert --from modelscope --prompt-template T` on a folder in the prototype's layout: the imported
    checkpoint feeds the model the ids ModelScope's tokenizer gave the prototype's prompt in training."""
    from ofa_sic.cli.main import main

    modelscope_folder(tmp_path / "ms", demo_data)  # configuration.json without model.prompt, like the prototype's
    assert main(["convert", "--from", "modelscope", "--to", "fairseq", str(tmp_path / "ms"), str(tmp_path / "fs"),
                 "--styles", str(demo_data["data"] / "styles.txt"), "--prompt-template", PROTOTYPE_PROMPT]) == 0
    assert f"prompt template {PROTOTYPE_PROMPT!r} (from --prompt-template)" in capsys.readouterr().out
    _, task = load_fairseq(tmp_path / "fs" / "checkpoint.pt")
    assert task.cfg.prompt_template == PROTOTYPE_PROMPT and task.cfg.style_format == "token"
    tokenizer = modelscope_tokenizer(tmp_path / "ms")
    for index, name in enumerate(task.styles.names):
        ids = task.prompt(name).tolist()
        assert ids == modelscope_prompt_ids(tokenizer, PROTOTYPE_PROMPT, index)
        assert tokenizer.convert_ids_to_tokens(ids)[-5:] == ["Ġpersonality", "Ġ", f"<code_{index}>", ".", "</s>"]


def test_the_prompt_template_travels_with_the_model_and_defaults_are_warned_about(demo_data, tmp_path):
    from ofa_sic.convert.model import TASK_DEFAULTS

    # configuration.json's model.prompt (ModelScope's place for it) is the template when none is given.
    modelscope_folder(tmp_path / "ms", demo_data)
    configuration = json.loads((tmp_path / "ms" / "configuration.json").read_text())
    configuration["model"]["prompt"] = PROTOTYPE_PROMPT
    (tmp_path / "ms" / "configuration.json").write_text(json.dumps(configuration))
    styles = str(demo_data["data"] / "styles.txt")
    report = convert("modelscope", "fairseq", str(tmp_path / "ms"), str(tmp_path / "fs"), styles_file=styles)
    assert f"prompt template {PROTOTYPE_PROMPT!r} (from configuration.json's model.prompt)" in report.notes
    assert load_fairseq(tmp_path / "fs" / "checkpoint.pt")[1].cfg.prompt_template == PROTOTYPE_PROMPT

    # The HF export keeps it in config.json's ofa_sic_task, and an import of that folder reads it back.
    convert("fairseq", "hf", str(tmp_path / "fs" / "checkpoint.pt"), str(tmp_path / "hf"))
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["ofa_sic_task"]["prompt_template"] == PROTOTYPE_PROMPT
    report = convert("hf", "modelscope", str(tmp_path / "hf"), str(tmp_path / "ms2"))
    assert f"prompt template {PROTOTYPE_PROMPT!r} (from config.json's ofa_sic_task)" in report.notes
    assert json.loads((tmp_path / "ms2" / "configuration.json").read_text())["model"]["prompt"] == PROTOTYPE_PROMPT

    # A folder that declares none gets ofa_sic's default, with a warning that says what to pass.
    configuration["model"].pop("prompt")
    (tmp_path / "ms" / "configuration.json").write_text(json.dumps(configuration))
    report = convert("modelscope", "fairseq", str(tmp_path / "ms"), str(tmp_path / "fs2"), styles_file=styles)
    assert any("declares no prompt template" in line and "--prompt-template" in line for line in report.warnings)
    assert load_fairseq(tmp_path / "fs2" / "checkpoint.pt")[1].cfg.prompt_template == TASK_DEFAULTS["prompt_template"]


def test_unusable_prompt_templates_are_refused_before_anything_is_written(demo_data, tmp_path):
    modelscope_folder(tmp_path / "ms", demo_data)
    with pytest.raises(ConversionRefused, match=r"from --prompt-template is not usable: --prompt-template must contain exactly one"):
        convert("modelscope", "fairseq", str(tmp_path / "ms"), str(tmp_path / "out"), prompt_template=" a {} and a {}")
    assert not (tmp_path / "out").exists()
    path, _ = fairseq_checkpoint(tmp_path, demo_data)
    with pytest.raises(ValueError, match="applies to --from modelscope|hf only"):
        convert("fairseq", "modelscope", str(path), str(tmp_path / "out"), prompt_template=PROTOTYPE_PROMPT)
    assert not (tmp_path / "out").exists()

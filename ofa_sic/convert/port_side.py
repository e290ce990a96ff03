"""Model folders of the Hugging Face OFA port and of ModelScope: reading one and writing one.

Both hold `config.json` (OFAConfig), the weights (`pytorch_model.bin`, or `model.safetensors` when
reading), `vocab.json` and `merges.txt`. ModelScope's folders add `configuration.json` (its task
settings) and their `pytorch_model.bin`, saved by `OfaForAllTasks`, has every key under `model.`.
ofa_sic adds `styles.txt` (style i = `<code_i>`) and an `ofa_sic_task` entry in config.json with the
task settings that travel with the model (image size, prompt template, style format); ModelScope's
configuration.json also gets the template as `model.prompt`. Formatted with `<code_i>` and tokenized by
the ports' OFATokenizer, it gives the ids ofa_sic feeds the model (ofa_sic/data/prompts.py).

Buffers that differ between the ports and ofa_sic:
- `version` (fairseq only): dropped on export, taken from the ofa_sic model on import;
- `decoder.image_position_idx`: 1025 entries in the ports, 1026 in OFA-main; regenerated for the target;
- `token_rp_bucket`: the ports always compute it for 1024 positions, ofa_sic for max positions L. The
  first L x L block is what either side ever reads: it is carried over unchanged (so the numerics stay
  exactly the source's), the rest of the ports' 1024 x 1024 table is the ports' own formula.
"""
import argparse
import json
import os
from typing import Dict, List, Optional

import torch

from ofa_sic.convert import files, vocab
from ofa_sic.convert.config import hf_config_from_args, model_args_from_hf_config
from ofa_sic.convert.keys import check_layout, hf_name, rename_all, tie_embeddings
from ofa_sic.convert.model import TASK_DEFAULTS, OFAModelFiles, is_derived_buffer, ofa_layout
from ofa_sic.convert.report import ConversionRefused, Report

FORMATS = {"modelscope": "ModelScope", "hf": "the Hugging Face OFA port"}
PORT_TOKEN_POSITIONS = 1024  # the ports' token_rp_bucket is always built for 1024 positions
MODELSCOPE_PREFIX = "model."


def read_folder(src: str, fmt: str, styles: Optional[List[str]], prompt_template: Optional[str], report: Report) -> OFAModelFiles:
    """A port's model folder (or its weights file, with config.json beside it), checked against the ofa_sic model.

    `prompt_template` (--prompt-template) replaces the template the folder declares (see `_task_settings`)."""
    from ofa_sic.data.styles import StyleVocabulary

    folder, weights_path = (os.path.dirname(os.path.abspath(src)), src) if os.path.isfile(src) else (src, None)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{src}: not a model folder or weights file")
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{folder} has no config.json; the model's options are read from it, never guessed")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    weights = files.read_weights(weights_path or files.find_weights(folder))
    weights = _strip_prefix(weights, src, report)
    model_args = model_args_from_hf_config(config, fmt, report)
    state = rename_all(weights, to_hf=False)
    filled = tie_embeddings(state, src)
    if filled:
        report.note(f"tied token embedding stored once: filled in {', '.join(filled)}")
    vocab_size = state["encoder.embed_tokens.weight"].size(0)
    if vocab_size != config.get("vocab_size", vocab_size):
        raise ConversionRefused(f"the weights have {vocab_size} token rows but config.json says vocab_size {config['vocab_size']}")
    shapes, derived = ofa_layout(model_args, vocab_size)
    limit = model_args["max_source_positions"]
    for side in ("encoder", "decoder"):
        key = f"{side}.token_rp_bucket"
        if key not in state:  # the port would compute its own table for 1024 positions: use that one
            state[key] = _port_token_buckets(None, model_args["token_bucket_size"])
            report.note(f"{key} is not in the weights: used the ports' table (computed for {PORT_TOKEN_POSITIONS} positions)")
        state[key] = state[key][:limit, :limit].clone()
    for key, value in derived.items():
        if key.endswith("image_position_idx") or key.endswith(".version") or key not in state:
            state[key] = value
    missing = sorted(key for key in shapes if key not in state and not is_derived_buffer(key))
    if missing:
        raise ConversionRefused(f"{src} lacks {len(missing)} tensors of its model, e.g. {', '.join(missing[:5])}")
    check_layout(state, shapes, f"the ofa_sic model of {config_path}")

    vocab_path, merges_path = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
    for path in (vocab_path, merges_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{folder} has no {os.path.basename(path)}; the fairseq checkpoint's BPE files are made from it")
    vocabulary = vocab.from_port_files(vocab_path, merges_path, vocab_size)
    task = _task_settings(folder, config, prompt_template, report)
    if styles is None and os.path.isfile(os.path.join(folder, "styles.txt")):
        styles = StyleVocabulary.load(os.path.join(folder, "styles.txt")).names
        report.note(f"styles: {len(styles)} from {os.path.join(folder, 'styles.txt')}")
    elif styles is None:
        report.warn(f"{folder} has no styles.txt; pass --styles FILE so the converted model captions by style name "
                    "(ModelScope prototype models use style i = <code_i> in the order of their personalities list)")
    return OFAModelFiles(state, model_args, vocabulary, task, styles)


def write_folder(model: OFAModelFiles, out: str, fmt: str, report: Report) -> None:
    """Write a model folder that `OFAModel.from_pretrained` of `fmt` loads with no missing or unexpected keys."""
    model.vocabulary.require_port_layout(FORMATS[fmt])
    config = hf_config_from_args(argparse.Namespace(**model.model_args), model.vocab_size, fmt, report)
    port_like = dict(model.model_args, scale_heads=True, freeze_resnet=False, sync_bn=False)
    shapes, derived = ofa_layout(port_like, model.vocab_size)
    expected = {hf_name(k): v for k, v in shapes.items() if not k.endswith(".version")}
    expected = _port_buffer_shapes(expected)

    state = {key: value for key, value in model.state.items() if not key.endswith(".version")}
    added_scales = [key for key in shapes if key.endswith(".c_attn") and key not in state]
    for key in added_scales:
        state[key] = torch.ones(shapes[key])
    counters = [key for key in shapes if key.endswith(".num_batches_tracked") and key not in state]
    for key in counters:
        state[key] = torch.tensor(0)
    if counters:
        report.note(f"added {len(counters)} BatchNorm num_batches_tracked counters (0): the ports' ResNet is a plain BatchNorm")
    state["decoder.image_position_idx"] = _port_image_position_idx(derived["decoder.image_position_idx"])
    for side in ("encoder", "decoder"):
        state[f"{side}.token_rp_bucket"] = _port_token_buckets(state[f"{side}.token_rp_bucket"], model.model_args["token_bucket_size"])
    state = rename_all(state, to_hf=True)
    check_layout(state, expected, f"the {FORMATS[fmt]} OFAModel of the written config.json")
    if fmt == "modelscope":
        state = {MODELSCOPE_PREFIX + key: value for key, value in state.items()}
    if model.text_only_rows:
        report.warn("the model was trained with text-only rows (--mlm-image none); their generate() sets patch_masks "
                    "to all-True when the caller passes none, so pass patch_masks=False for such rows there")
    config["ofa_sic_task"] = dict(model.task)
    with files.staged_folder(out) as tmp:
        files.write_text(os.path.join(tmp, "config.json"), json.dumps(config, indent=2) + "\n")
        files.save_torch(os.path.join(tmp, "pytorch_model.bin"), state)
        vocab.write_port_files(model.vocabulary, tmp)
        if model.styles:
            files.write_text(os.path.join(tmp, "styles.txt"), "".join(name + "\n" for name in model.styles))
        if fmt == "modelscope":
            files.write_text(os.path.join(tmp, "configuration.json"), json.dumps(_modelscope_configuration(model.task), indent=2) + "\n")


def _strip_prefix(weights: Dict[str, torch.Tensor], src: str, report: Report) -> Dict[str, torch.Tensor]:
    prefixed = [key for key in weights if key.startswith(MODELSCOPE_PREFIX)]
    if not prefixed:
        return weights
    if len(prefixed) != len(weights):
        others = [key for key in weights if not key.startswith(MODELSCOPE_PREFIX)]
        raise ConversionRefused(f"{src}: {len(prefixed)} keys start with {MODELSCOPE_PREFIX!r} and {len(others)} do not "
                                f"(e.g. {others[:3]}); expected all or none (ModelScope's OfaForAllTasks saves all under it)")
    report.note(f"removed the {MODELSCOPE_PREFIX!r} prefix of ModelScope's OfaForAllTasks from {len(prefixed)} keys")
    return {key[len(MODELSCOPE_PREFIX):]: value for key, value in weights.items()}


def _task_settings(folder: str, config: Dict, prompt_template: Optional[str], report: Report) -> Dict:
    """Task settings: config.json's `ofa_sic_task` (an ofa_sic export), else ModelScope's configuration.json
    for the image settings, else ofa_sic's defaults (reported); the prompt template by `_prompt_template`."""
    modelscope = _modelscope_model_settings(folder)
    if isinstance(config.get("ofa_sic_task"), dict):
        task = {name: config["ofa_sic_task"].get(name, default) for name, default in TASK_DEFAULTS.items()}
    else:
        task = dict(TASK_DEFAULTS)
        for name in ("patch_image_size", "imagenet_default_mean_and_std"):
            if name in modelscope:
                task[name] = modelscope[name]
        report.note("task settings (not in the source, ofa_sic's defaults unless configuration.json gave them): "
                    + ", ".join(f"{name}={task[name]!r}" for name in TASK_DEFAULTS if name != "prompt_template"))
    task["prompt_template"] = _prompt_template(prompt_template, modelscope, config, report)
    return task


def _prompt_template(given: Optional[str], modelscope: Dict, config: Dict, report: Report) -> str:
    """The first of: --prompt-template `given`, configuration.json's `model.prompt` (ModelScope's place for
    it), config.json's `ofa_sic_task` template; else ofa_sic's default, with a warning."""
    from ofa_sic.data.prompts import caption_template_pieces

    candidates = (("--prompt-template", given), ("configuration.json's model.prompt", modelscope.get("prompt")),
                  ("config.json's ofa_sic_task", (config.get("ofa_sic_task") or {}).get("prompt_template")))
    for origin, template in candidates:
        if template is not None:
            try:
                caption_template_pieces(template)
            except ValueError as error:
                raise ConversionRefused(f"the prompt template from {origin} is not usable: {error}") from None
            report.note(f"prompt template {template!r} (from {origin})")
            return template
    default = TASK_DEFAULTS["prompt_template"]
    report.warn(f"the source declares no prompt template: used ofa_sic's default {default!r}. Pass --prompt-template "
                "with the one the model was trained with, e.g. the ModelScope prototype's "
                "' what does the image describe? reply in personality {}.', or ' what does the image describe?' "
                "(what ModelScope's captioning pipeline uses without model.prompt) for a plain OFA caption model")
    return default


def _modelscope_model_settings(folder: str) -> Dict:
    """The `model` entry of ModelScope's configuration.json in `folder` ({} when there is none)."""
    path = os.path.join(folder, "configuration.json")
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f).get("model", {})


def _port_buffer_shapes(expected: Dict) -> Dict:
    expected = dict(expected)
    expected["decoder.image_position_idx"] = (expected["decoder.image_position_idx"][0] - 1,)
    for side in ("encoder", "decoder"):
        expected[f"{side}.token_rp_bucket"] = (PORT_TOKEN_POSITIONS, PORT_TOKEN_POSITIONS)
    return expected


def _port_image_position_idx(ofa_idx: torch.Tensor) -> torch.Tensor:
    """OFA-main's [1 + w*w + 769] decoder image position ids -> the ports' [1 + w*w + 768] (one 1024 fewer)."""
    if int(ofa_idx[-1]) != 1024:
        raise ConversionRefused("decoder.image_position_idx does not end with 1024 as OFA-main's does")
    return ofa_idx[:-1].clone()


def _port_token_buckets(table: Optional[torch.Tensor], bucket_size: int) -> torch.Tensor:
    """The ports' 1024 x 1024 token bucket table, with the model's own L x L `table` in its corner if given."""
    from ofa_sic.models.position import make_token_bucket_position

    port = make_token_bucket_position(bucket_size, PORT_TOKEN_POSITIONS)
    if table is not None:
        limit = table.size(0)
        if limit > PORT_TOKEN_POSITIONS:
            raise ConversionRefused(f"max positions {limit} exceed the ports' {PORT_TOKEN_POSITIONS}")
        port[:limit, :limit] = table
    return port


def _modelscope_configuration(task: Dict) -> Dict:
    """ModelScope's configuration.json for an English image-captioning OFA."""
    return {
        "framework": "pytorch",
        "task": "image-captioning",
        "pipeline": {"type": "image-captioning"},
        "model": {
            "type": "ofa",
            "language": "en",
            "gen_type": "generation",
            "patch_image_size": task["patch_image_size"],
            "max_image_size": task["patch_image_size"],
            "imagenet_default_mean_and_std": task["imagenet_default_mean_and_std"],
            # ofa_sic's template: format it with `<code_i>` (style i of styles.txt; with --style-format text,
            # the style's lowercased words) and tokenize it with OFATokenizer for ofa_sic's prompt ids
            "prompt": task["prompt_template"],
            "beam_search": {"beam_size": 5, "max_len_b": 16, "no_repeat_ngram_size": 3},
        },
    }


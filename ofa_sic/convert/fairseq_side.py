"""fairseq checkpoints of the `ofa` model: reading one (ofa_sic's or OFA-main's) and writing one.

A written checkpoint is a folder:

    OUT/checkpoint.pt     fairseq checkpoint: cfg (task style_caption, the arch and every model option), model
    OUT/bpe/              encoder.json, vocab.bpe, dict.txt (model index i = dictionary index i)
    OUT/styles.txt        the styles in <code_i> order (when known)

The checkpoint's task settings point at this folder (data = OUT, bpe_dir = OUT/bpe), so
`ofa-sic caption --path OUT/checkpoint.pt` works as it is; fairseq-generate and fairseq-train take
DATA and --bpe-dir from their command line as usual.
"""
import argparse
import os
from typing import Dict, List, Optional

from ofa_sic.convert import files, vocab
from ofa_sic.convert.config import pick_arch
from ofa_sic.convert.keys import check_layout, tie_embeddings
from ofa_sic.convert.model import MODEL_OPTIONS, TASK_DEFAULTS, OFAModelFiles, is_derived_buffer, ofa_layout
from ofa_sic.convert.report import ConversionRefused, Report

CHECKPOINT_NAME = "checkpoint.pt"


def read_checkpoint(path: str, bpe_dir: Optional[str], styles: Optional[List[str]], report: Report) -> OFAModelFiles:
    """An `ofa` fairseq checkpoint, checked key by key and shape by shape against the ofa_sic model of its options.

    `bpe_dir` replaces the BPE folder stored in the checkpoint; `styles` replaces its styles.txt.
    """
    from fairseq import checkpoint_utils
    from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY

    from ofa_sic.data.styles import StyleVocabulary
    from ofa_sic.models.ofa import OFAModel
    from ofa_sic.tasks.input_contract import recorded_inputs_of_state

    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} not found")
    state = checkpoint_utils.load_checkpoint_to_cpu(path)
    args = state["args"] if state.get("args") is not None else state["cfg"]["model"]
    arch = getattr(args, "arch", None)
    if ARCH_MODEL_REGISTRY.get(arch) is not OFAModel:
        raise ConversionRefused(f"{path}: arch {arch!r} is not an `ofa` arch; only OFA models convert")
    task_get = _task_getter(state)

    stored = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    filled = argparse.Namespace(**stored)  # the arch's defaults for options the checkpoint does not store
    ARCH_CONFIG_REGISTRY[arch](filled)
    model_args = {name: getattr(filled, name) for name in MODEL_OPTIONS}

    weights = dict(state["model"])
    tie_embeddings(weights, path)
    vocab_size = weights["encoder.embed_tokens.weight"].size(0)
    shapes, derived = ofa_layout(model_args, vocab_size)
    missing = sorted(key for key in shapes if key not in weights and not is_derived_buffer(key))
    if missing:
        raise ConversionRefused(f"{path} lacks {len(missing)} tensors of its model, e.g. {', '.join(missing[:5])}; "
                                "ofa_sic would fill them with random values, a converter must not")
    for key, value in derived.items():
        if key.endswith("image_position_idx") or key not in weights:
            weights[key] = value
    frozen_counters = [k for k in weights if k.endswith(".num_batches_tracked") and k not in shapes]
    for key in frozen_counters:  # a trainable BatchNorm's counter in a --freeze-resnet model: ofa_sic drops it too
        del weights[key]
    if frozen_counters:
        report.note(f"dropped {len(frozen_counters)} BatchNorm num_batches_tracked counters (the model freezes its ResNet)")
    check_layout(weights, shapes, f"the ofa_sic model of {path}'s options")

    bpe = bpe_dir or task_get("bpe_dir")
    if not bpe or not os.path.isdir(bpe):
        raise FileNotFoundError(f"the BPE folder {bpe!r} of {path} is not here; pass --bpe-dir DIR "
                                "(the folder with encoder.json, vocab.bpe and dict.txt the model was trained with)")
    vocabulary = vocab.from_bpe_dir(bpe, int(task_get("code_dict_size", 8192)), int(task_get("num_bins", 1000)), report)
    if len(vocabulary) != vocab_size:
        raise ConversionRefused(f"the dictionary of {bpe} has {len(vocabulary)} symbols but the model has {vocab_size} "
                                "token rows; pass the --bpe-dir the model was trained with")
    recorded = recorded_inputs_of_state(state, path)
    if recorded is not None and recorded.is_legacy and recorded.settings.get("prompt_template") != recorded.legacy_template:
        report.note(f"{path} records no input contract (written before ofa_sic recorded one): its prompt template "
                    f"{recorded.legacy_template!r} is written {recorded.settings['prompt_template']!r}, which gives the "
                    "ids it was trained with under ModelScope's tokenizer rule")
    if styles is None and recorded is not None and recorded.styles is not None:
        styles = recorded.styles
        report.note(f"styles: {len(styles)} recorded in {path}")
    elif styles is None:
        data = task_get("data")
        styles_path = os.path.join(data, "styles.txt") if data else None
        if styles_path and os.path.isfile(styles_path):
            styles = StyleVocabulary.load(styles_path).names
            report.note(f"styles: {len(styles)} from {styles_path}")
        else:
            report.warn(f"no styles.txt found for {path} (looked in the checkpoint's data folder {data!r}); "
                        "pass --styles FILE so the converted model captions by style name")
    elif recorded is not None and recorded.styles is not None and recorded.styles != styles:
        report.warn(f"--styles gives other styles than the {len(recorded.styles)} recorded in {path} "
                    f"(<code_0> = {recorded.styles[0]!r} there): the converted model uses --styles")
    task = task_settings(recorded)
    text_only = float(task_get("mlm_ratio", 0.0) or 0.0) > 0 and task_get("mlm_image") == "none"
    return OFAModelFiles(weights, model_args, vocabulary, task, styles, text_only)


def task_settings(recorded) -> Dict:
    """The settings that travel with the model (TASK_DEFAULTS keys) of a fairseq checkpoint, from what it
    records about its inputs (`ofa_sic.tasks.input_contract`), the default where it fixes none. The one
    place the converter takes them from a fairseq checkpoint."""
    settings = recorded.settings if recorded is not None else {}
    return {name: settings.get(name, default) for name, default in TASK_DEFAULTS.items()}


def _task_getter(state: Dict):
    """get(name, default) on the task config of a loaded fairseq checkpoint (cfg.task, or the legacy args)."""
    task_cfg = state["cfg"]["task"] if state.get("cfg") is not None else vars(state["args"])
    return lambda name, default=None: task_cfg.get(name, default) if hasattr(task_cfg, "get") else default


def write_checkpoint(model: OFAModelFiles, out: str, report: Report) -> None:
    """Write the checkpoint folder `out` (see the module docstring) after a strict load into the ofa_sic model."""
    from ofa_sic.convert.model import build_ofa_model
    from ofa_sic.data.styles import StyleVocabulary
    from ofa_sic.data.text import bpe_fingerprint, build_ofa_dictionary
    from ofa_sic.tasks.input_contract import CONTRACT_KEY, contract_record

    arch, explicit = pick_arch(model.model_args)
    differing = ", ".join(f"{name}={model.model_args[name]!r}" for name in explicit)
    report.note(f"arch {arch}" + (f"; stored options that differ from its defaults (fairseq-train --restore-file "
                                  f"needs them on its command line too): {differing}" if explicit else ""))
    final = os.path.abspath(out)
    with files.staged_folder(out) as tmp:
        vocab.write_bpe_dir(model.vocabulary, os.path.join(tmp, "bpe"))
        dictionary = build_ofa_dictionary(os.path.join(tmp, "bpe"), model.vocabulary.num_codes, model.vocabulary.num_bins)
        if len(dictionary) != model.vocab_size:
            raise ConversionRefused(f"the written dictionary has {len(dictionary)} symbols, the model {model.vocab_size} rows")
        ofa = build_ofa_model(model.model_args, model.vocab_size, arch)
        shapes = {key: tuple(value.shape) for key, value in ofa.state_dict().items()}
        weights = dict(model.state)
        for key, value in ofa.state_dict().items():
            if key.endswith(".version") or key.endswith("image_position_idx"):
                weights[key] = value
        check_layout(weights, shapes, f"the ofa_sic {arch} model")
        ofa.load_state_dict(dict(weights), strict=True)  # the load fairseq-generate does
        if model.styles:
            StyleVocabulary(model.styles).save(os.path.join(tmp, "styles.txt"))
        cfg = _fairseq_cfg(arch, model, final)
        contract = contract_record(model.styles, model.task, bpe_fingerprint(os.path.join(tmp, "bpe")))
        files.save_torch(os.path.join(tmp, CHECKPOINT_NAME), {
            "args": None, "cfg": cfg, "model": weights, "task_state": {CONTRACT_KEY: contract},
            # what fairseq's loader needs of a fresh start: one history entry, epoch 1, no optimizer state
            "optimizer_history": [{"criterion_name": None, "optimizer_name": None, "lr_scheduler_state": {}, "num_updates": 0}],
            "extra_state": {"train_iterator": {"epoch": 1, "iterations_in_epoch": 0}}, "last_optimizer_state": None,
        })


def _fairseq_cfg(arch: str, model: OFAModelFiles, folder: str) -> Dict:
    """The checkpoint's cfg as fairseq-train would store it, for task style_caption and `arch` with every model option."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    argv = [folder, "--task", "style_caption", "--arch", arch, "--bpe-dir", os.path.join(folder, "bpe"),
            "--patch-image-size", str(model.task["patch_image_size"]),
            "--prompt-template", model.task["prompt_template"], "--style-format", model.task["style_format"]]
    for flag in ("imagenet_default_mean_and_std", "keep_punctuation", "keep_case"):
        if model.task[flag]:
            argv.append("--" + flag.replace("_", "-"))
    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    for name, value in model.model_args.items():
        setattr(args, name, value)
    cfg = convert_namespace_to_omegaconf(args)
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)

"""What a style_caption checkpoint means: the inputs it was trained on, recorded in the checkpoint.

A model captions right only when it is fed what it was trained on: the style behind each `<code_i>`,
the prompt, the image size and normalisation, the caption cleaning and the BPE. Every checkpoint that
ofa_sic writes records them in the task's state (`task_state["input_contract"]`, a plain dict):

    styles                           style names in `<code_i>` order
    prompt_template, style_format    the prompt (its ids are what ModelScope's OFATokenizer gives)
    patch_image_size, imagenet_default_mean_and_std
    keep_punctuation, keep_case      the caption cleaning of targets, references and rewards
    bpe_fingerprint                  `ofa_sic.data.text.bpe_fingerprint` of the BPE folder

Every command that starts from a checkpoint reads this record once, when the task is set up
(`read_recorded_inputs`, `resolve_settings`):
- a setting given on the command line is used, with a warning when the checkpoint was trained with
  another value; a setting not given (None) is the checkpoint's, else the default;
- the data's style names are mapped through the checkpoint's style list, whatever order the data's
  `styles.txt` has; a style the checkpoint does not know is refused before any work;
- another BPE folder than the checkpoint's is refused, naming both fingerprints.

Checkpoints without the record:
- style_caption checkpoints written before it existed ("legacy"): styles come from the data's
  `styles.txt` (as they did), the settings from the checkpoint's task config, and the prompt keeps the
  ids it was trained with. Those dropped the space token before the style token; ModelScope's rule
  gives the same ids for the template with the spaces before `{}` removed, so that template is used.
  A warning says all this;
- OFA's own `caption` checkpoints fix the image settings only (their captions are lowercased
  without punctuation, the default; they have no prompt template or styles);
- other checkpoints (e.g. a pretrained `ofa_base.pt`) fix nothing.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

logger = logging.getLogger(__name__)

CONTRACT_KEY = "input_contract"
DEFAULT_PROMPT = " what does the image describe? write a {} reply."

#: The settings a checkpoint fixes, with the values used when neither the command line nor a
#: checkpoint gives one. Their task options default to None ("not given").
DEFAULT_SETTINGS: Dict[str, Any] = {
    "prompt_template": DEFAULT_PROMPT,
    "style_format": "token",
    "patch_image_size": 480,
    "imagenet_default_mean_and_std": False,
    "keep_punctuation": False,
    "keep_case": False,
}
IMAGE_SETTINGS = ("patch_image_size", "imagenet_default_mean_and_std")


class InputContractError(ValueError):
    """The command's data or BPE do not fit what the checkpoint was trained on (the message says what to do)."""


@dataclass
class RecordedInputs:
    """What a checkpoint says about its inputs.

    settings: the DEFAULT_SETTINGS names it fixes; styles: names in `<code_i>` order (None: not
    recorded, the data's styles.txt gives them); bpe_fingerprint: None when not recorded;
    legacy_template: for a legacy checkpoint, the template as it stored it (its ids are those of
    `settings["prompt_template"]`).
    """

    source: str
    settings: Dict[str, Any] = field(default_factory=dict)
    styles: Optional[List[str]] = None
    bpe_fingerprint: Optional[str] = None
    legacy_template: Optional[str] = None

    @property
    def is_legacy(self) -> bool:
        """A style_caption checkpoint from before the record."""
        return self.legacy_template is not None

    def same_contract(self, other: "RecordedInputs") -> bool:
        return (self.settings, self.styles, self.bpe_fingerprint) == (other.settings, other.styles, other.bpe_fingerprint)


def contract_record(styles: Optional[List[str]], settings: Dict[str, Any], bpe_fingerprint: str) -> Dict[str, Any]:
    """The `task_state["input_contract"]` dict of a checkpoint (plain types only)."""
    return {"styles": None if styles is None else list(styles), **{name: settings[name] for name in DEFAULT_SETTINGS}, "bpe_fingerprint": bpe_fingerprint}


def recorded_from_task_state(task_state: Optional[Dict], source: str) -> Optional[RecordedInputs]:
    """The RecordedInputs of a checkpoint's `task_state`, or None when it holds no contract."""
    record = (task_state or {}).get(CONTRACT_KEY)
    if not record:
        return None
    missing = [name for name in ("styles", "bpe_fingerprint", *DEFAULT_SETTINGS) if name not in record]
    if missing:
        raise InputContractError(f"{source}: its input record lacks {', '.join(missing)}; the file is damaged or was "
                                 "edited by hand")
    styles = None if record["styles"] is None else list(record["styles"])
    return RecordedInputs(source, {name: record[name] for name in DEFAULT_SETTINGS}, styles, record["bpe_fingerprint"])


def legacy_prompt_template(template: str, style_format: str) -> str:
    """The template whose ids under ModelScope's rule are the ids the pre-record rule gave `template`:
    that rule dropped the spaces just before a `<code_i>` style token (text-format prompts are unchanged)."""
    from ofa_sic.data.prompts import template_without_space_before_style

    return template_without_space_before_style(template) if style_format == "token" else template


def read_recorded_inputs(path: str) -> Optional[RecordedInputs]:
    """What checkpoint `path` records about its inputs (see the module docstring); None when it fixes nothing.

    Reads the checkpoint without its tensors (memory-mapped, weights_only loading)."""
    from ofa_sic.checkpoints import load_without_tensors

    state = load_without_tensors(path)
    return recorded_inputs_of_state(state, path) if isinstance(state, dict) else None


def recorded_inputs_of_state(state: Dict, source: str) -> Optional[RecordedInputs]:
    """What the loaded checkpoint `state` (read from `source`) records about its inputs; None when it fixes nothing."""
    recorded = recorded_from_task_state(state.get("task_state"), source)
    if recorded is not None:
        return recorded
    cfg = state.get("cfg")
    if cfg is not None and cfg.get("task") is not None:
        task_cfg, task_name = cfg["task"], cfg["task"].get("_name")
    elif state.get("args") is not None:  # older fairseq/OFA checkpoints: one argparse Namespace
        task_cfg, task_name = vars(state["args"]), getattr(state["args"], "task", None)
    else:
        return None
    if task_name == "caption":
        settings = {name: task_cfg.get(name) for name in IMAGE_SETTINGS}
        return RecordedInputs(source, {name: value for name, value in settings.items() if value is not None})
    if task_name != "style_caption":
        return None
    # Before the record, every setting had a value in the config, these defaults included.
    settings = {name: default if task_cfg.get(name) is None else task_cfg.get(name) for name, default in DEFAULT_SETTINGS.items()}
    stored = settings["prompt_template"]
    settings["prompt_template"] = legacy_prompt_template(stored, settings["style_format"])
    return RecordedInputs(source, settings, legacy_template=stored)


def warn_legacy(recorded: RecordedInputs, styles_path: str) -> None:
    """The warning for a style_caption checkpoint without an input record."""
    template = recorded.settings.get("prompt_template")
    prompt = (f"its prompt keeps the ids it was trained with (written {template!r} in ModelScope's rule, "
              f"stored as {recorded.legacy_template!r})" if template != recorded.legacy_template
              else "its prompt ids are unchanged")
    logger.warning("%s records no input contract (written before ofa_sic recorded one): its styles are taken from %s, "
                   "which must list them in the order it was trained with; %s. Checkpoints saved from now on record "
                   "both.", recorded.source, styles_path, prompt)


def resolve_settings(cfg, recorded: Optional[RecordedInputs]) -> None:
    """Set each DEFAULT_SETTINGS option of the task config `cfg`: the command line's value if given
    (warning when `recorded` differs), else `recorded`'s (logged), else the default."""
    for name, default in DEFAULT_SETTINGS.items():
        given = getattr(cfg, name)
        trained = recorded.settings.get(name) if recorded else None
        flag = "--" + name.replace("_", "-")
        if recorded is not None and name == "prompt_template" and given is not None and given == recorded.legacy_template:
            given = None  # the stored spelling of a legacy template: its trained ids
        if given is None:
            value = default if trained is None else trained
            if trained is not None:
                logger.info("%s %r: taken from %s (trained with it)", flag, trained, recorded.source)
        else:
            value = given
            if trained is not None and given != trained:
                logger.warning("%s %r given, but %s was trained with %r: using %r", flag, given, recorded.source, trained, given)
        setattr(cfg, name, value)


def check_bpe(recorded: RecordedInputs, bpe_dir: str, fingerprint: str) -> None:
    """Refuse a BPE folder whose fingerprint differs from the one `recorded` was trained with."""
    if recorded.bpe_fingerprint is not None and recorded.bpe_fingerprint != fingerprint:
        raise InputContractError(
            f"--bpe-dir {bpe_dir} is not the BPE {recorded.source} was trained with: its fingerprint is "
            f"{fingerprint[:16]}, the checkpoint's {recorded.bpe_fingerprint[:16]}. The same text would become other "
            "token ids; pass the BPE folder the model was trained with")


def training_start_checkpoint(cfg) -> Optional[str]:
    """The checkpoint a fairseq-train run starts from (the save dir's checkpoint_last.pt when resuming,
    --restore-file, --finetune-from-model), if it exists; None for a run from scratch."""
    candidates = []
    if cfg.restore_file and cfg.restore_file != "checkpoint_last.pt":
        candidates.append(cfg.restore_file)
    if cfg.save_dir:
        candidates.append(os.path.join(cfg.save_dir, "checkpoint_last.pt"))
    if cfg.finetune_from_model:
        candidates.append(cfg.finetune_from_model)
    from ofa_sic.crash_safe_training import checkpoint_problem  # a broken one is reported when loading

    return next((path for path in candidates if os.path.isfile(path) and checkpoint_problem(path) is None), None)


def source_checkpoint(cfg) -> Optional[str]:
    """The checkpoint whose inputs the command must use: the first of `--path` (fairseq-generate,
    `ofa-sic evaluate`/`caption`), else the training start; None when there is none."""
    if cfg.checkpoint_path:
        return str(cfg.checkpoint_path).split(os.pathsep)[0]
    return training_start_checkpoint(cfg)

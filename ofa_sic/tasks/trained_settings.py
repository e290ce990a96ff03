"""Task settings a model must be used with as it was trained, taken from the checkpoint.

A checkpoint stores the task configuration it was trained with (`cfg["task"]`). When a command works
with a trained model (`fairseq-generate --path`, SCST from a stage-1 checkpoint), the settings below
must be the training ones: a different image size or normalisation silently feeds the model other
pixels, a different prompt or caption cleaning other text. For each setting:
- left at its default on the command line: the checkpoint's value is used (and logged);
- given with another value than the checkpoint's: the command line wins, with a warning naming both.

What is taken depends on the task the checkpoint was trained with: everything from a `style_caption`
checkpoint; only the image settings from OFA's own `caption` task (it has no prompt template, style
format or case/punctuation options; its captions are lowercased without punctuation, our defaults);
nothing from other tasks (e.g. a pretrained `ofa_base.pt`, whose image size is not a captioning one).
"""
import logging
import os
from dataclasses import fields
from typing import Any, Dict, List, Optional, Tuple

logger = logging.getLogger(__name__)

IMAGE_SETTINGS = ("patch_image_size", "imagenet_default_mean_and_std")
TEXT_SETTINGS = ("prompt_template", "style_format", "keep_punctuation", "keep_case")
SETTINGS_BY_TASK = {"style_caption": IMAGE_SETTINGS + TEXT_SETTINGS, "caption": IMAGE_SETTINGS}


def saved_task_settings(saved_task_cfg) -> Tuple[Optional[str], Dict[str, Any]]:
    """(task name, {setting: value}) of the settings that a checkpoint's task config fixes."""
    if saved_task_cfg is None:
        return None, {}
    name = _get(saved_task_cfg, "_name")
    values = {key: _get(saved_task_cfg, key) for key in SETTINGS_BY_TASK.get(name, ())}
    return name, {key: value for key, value in values.items() if value is not None}


def adopt_trained_settings(cfg, config_class, saved_task_cfg, checkpoint: str) -> List[str]:
    """Set the settings of `cfg` (the task's config) that are at their `config_class` default to the
    checkpoint's. Returns the names that changed. Logs every adopted value; warns for each value given
    on the command line that differs from the checkpoint's.
    """
    task_name, saved = saved_task_settings(saved_task_cfg)
    defaults = {f.name: f.default for f in fields(config_class)}
    changed = []
    for key, trained in saved.items():
        current = _get(cfg, key)
        if current == trained:
            continue
        flag = "--" + key.replace("_", "-")
        if key in defaults and current == defaults[key]:
            logger.info("%s %r: taken from %s (trained with it; task %s)", flag, trained, checkpoint, task_name)
            _set(cfg, key, trained)
            changed.append(key)
        else:
            logger.warning("%s %r given, but %s was trained with %r: using %r", flag, current, checkpoint, trained, current)
    return changed


def _get(cfg, key):
    """cfg[key] of a dict or an OmegaConf config (whose `_name` is a key, not an attribute), else
    getattr (argparse Namespace); None when absent."""
    if hasattr(cfg, "get"):
        return cfg.get(key)
    return getattr(cfg, key, None)


def _set(cfg, key, value) -> None:
    if hasattr(cfg, "get"):
        cfg[key] = value
    else:
        setattr(cfg, key, value)


def training_start_checkpoint(cfg) -> Optional[str]:
    """The checkpoint a fairseq-train run starts from (--finetune-from-model, --restore-file, or the
    save dir's checkpoint_last.pt when resuming), if it exists; None for a run from scratch."""
    candidates = []
    if cfg.restore_file and cfg.restore_file != "checkpoint_last.pt":
        candidates.append(cfg.restore_file)
    if cfg.save_dir:
        candidates.append(os.path.join(cfg.save_dir, "checkpoint_last.pt"))
    if cfg.finetune_from_model:
        candidates.append(cfg.finetune_from_model)
    from ofa_sic.crash_safe_training import checkpoint_problem  # a broken one is reported when loading

    return next((path for path in candidates if os.path.isfile(path) and checkpoint_problem(path) is None), None)


def read_saved_task_config(path: str) -> Optional[Dict[str, Any]]:
    """{"_name": task, setting: value, ...} of the task a checkpoint was trained with, without reading
    its tensors (memory-mapped, weights_only loading)."""
    from ofa_sic.checkpoints import load_without_tensors

    state = load_without_tensors(path)
    if not isinstance(state, dict):
        return None
    cfg = state.get("cfg")
    if cfg is not None and cfg.get("task") is not None:
        source, name = cfg["task"], cfg["task"].get("_name")
    elif state.get("args") is not None:  # older fairseq/OFA checkpoints: one argparse Namespace
        source, name = state["args"], getattr(state["args"], "task", None)
    else:
        return None
    return {"_name": name, **{key: _get(source, key) for key in IMAGE_SETTINGS + TEXT_SETTINGS}}

"""Loading fairseq/OFA checkpoints under torch >= 2.6 without turning off `weights_only`.

torch >= 2.6 unpickles checkpoints with `weights_only=True`, which refuses every class that is not
explicitly allowed; fairseq's checkpoints hold an argparse Namespace (OFA's `args`), OmegaConf
configs (`cfg`) and a few plain types. This module allows exactly those types, process-wide, and
turns a refusal into an error that names the type and the opt-in for trusted files
(torch's own `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`).
"""
import argparse
import logging
import pickle
import re
import typing

import fairseq.checkpoint_utils as fairseq_checkpoint_utils
import numpy
import torch
from omegaconf import DictConfig, ListConfig, nodes
from omegaconf.base import ContainerMetadata, Metadata

TRUST_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
logger = logging.getLogger(__name__)


class UntrustedCheckpointError(RuntimeError):
    """A checkpoint needs a type outside the allow-list."""


def allowed_types() -> list:
    """The non-builtin classes found in fairseq and OFA checkpoints.

    - argparse.Namespace: `args` of older fairseq/OFA checkpoints and `cfg["model"]` of legacy models;
    - OmegaConf containers: `cfg` of checkpoints saved without converting the config to a dict;
    - numpy scalars and dtypes: metric values kept in `extra_state`.
    """
    numpy_multiarray = numpy._core.multiarray if hasattr(numpy, "_core") else numpy.core.multiarray
    return [
        argparse.Namespace,
        DictConfig,
        ListConfig,
        ContainerMetadata,
        Metadata,
        nodes.AnyNode,
        typing.Any,
        numpy_multiarray.scalar,
        numpy.dtype,
        numpy.dtypes.Float64DType,
        numpy.dtypes.Float32DType,
        numpy.dtypes.Int64DType,
    ]


def load_without_tensors(path: str):
    """The checkpoint at `path` (weights_only) with its tensors memory-mapped, not read; legacy (non-zip)
    files are read in full. RuntimeError naming `path` when it is not a readable checkpoint."""
    try:
        return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError as error:
        if "mmap" not in str(error):
            raise RuntimeError(f"{path}: not a readable checkpoint ({error})") from None
        return torch.load(path, map_location="cpu", weights_only=True)


def allow_checkpoint_types():
    torch.serialization.add_safe_globals(allowed_types())


_original_load_checkpoint_to_cpu = fairseq_checkpoint_utils.load_checkpoint_to_cpu


#: Criterion options that older ofa_sic versions saved and that no longer exist (they did nothing), by
#: criterion name. fairseq-validate rebuilds the criterion from the saved config, which would otherwise
#: fail on them.
REMOVED_CRITERION_OPTIONS = {"scst_reward_criterion": ("ignore_prefix_size",)}


def drop_removed_criterion_options(state: dict, path: str) -> None:
    """Delete REMOVED_CRITERION_OPTIONS from the criterion config saved in `state` (in place)."""
    criterion = (state.get("cfg") or {}).get("criterion")
    if criterion is None:
        return
    removed = [key for key in REMOVED_CRITERION_OPTIONS.get(criterion.get("_name"), ()) if key in criterion]
    for key in removed:
        del criterion[key]
    if removed:
        logger.info("%s: dropped criterion option(s) %s, which this version no longer has (they had no effect)",
                    path, ", ".join(removed))


def load_checkpoint_to_cpu(path, arg_overrides=None, load_on_all_ranks=False):
    """fairseq's loader, with a clear error when the file needs a type that is not allowed, and without
    the criterion options of older versions that no longer exist."""
    try:
        state = _original_load_checkpoint_to_cpu(path, arg_overrides, load_on_all_ranks)
        drop_removed_criterion_options(state, path)
        return state
    except pickle.UnpicklingError as error:
        match = re.search(r"GLOBAL ([\w.]+)", str(error))
        name = match.group(1) if match else "an unknown type"
        raise UntrustedCheckpointError(
            f"{path} needs {name}, which ofa_sic does not allow when loading checkpoints "
            f"(torch loads them with weights_only=True). If you trust this file, load it with "
            f"{TRUST_ENV}=1 set in the environment."
        ) from None


allow_checkpoint_types()
fairseq_checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu

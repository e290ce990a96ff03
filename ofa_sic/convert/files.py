"""Reading weight files safely and writing a conversion's output folder all at once.

Weights are read with `torch.load(weights_only=True)` (or safetensors), so no file can run code.
The output folder is filled under a temporary name beside it and renamed into place at the end, so a
failed or interrupted conversion leaves no half-written folder.
"""
import contextlib
import os
import shutil
import uuid
from typing import Dict, Iterator

import torch

WEIGHT_FILES = ("pytorch_model.bin", "model.safetensors")


def read_weights(path: str) -> Dict[str, torch.Tensor]:
    """The tensors of `path` (a pytorch_model.bin-style torch file or a .safetensors file)."""
    if path.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ValueError(f"{path}: reading .safetensors needs the `safetensors` package "
                             "(installed by `make install` with the interop requirements)") from None
        return load_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for non-checkpoint bytes
        raise ValueError(f"{path}: not a torch weights file that loads with weights_only=True ({error})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a flat dict of tensors (a pytorch_model.bin)")
    return state


def find_weights(folder: str) -> str:
    """The weights file of a port's model folder."""
    for name in WEIGHT_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{folder}: no {' or '.join(WEIGHT_FILES)} in the folder")


@contextlib.contextmanager
def staged_folder(out: str) -> Iterator[str]:
    """Yield a temporary folder beside `out`; rename it to `out` when the block succeeds, remove it otherwise."""
    out = os.path.abspath(out)
    if os.path.exists(out):
        raise FileExistsError(f"{out} already exists; give a new folder name (nothing is overwritten)")
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"{parent} is not a folder; create it first")
    tmp = os.path.join(parent, f".{os.path.basename(out)}.{uuid.uuid4().hex[:12]}.tmp")
    os.mkdir(tmp)
    try:
        yield tmp
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "x", encoding="utf-8") as f:
        f.write(text)


def save_torch(path: str, obj) -> None:
    """torch.save to `path` (inside a staged folder, so no temporary name is needed)."""
    with open(path, "xb") as f:
        torch.save(obj, f)

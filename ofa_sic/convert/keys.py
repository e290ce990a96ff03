"""State-dict names of ofa_sic (OFA-main's fairseq names) and of the Hugging Face OFA port (which
ModelScope's `OFAModel` shares), and the check that a converted state dict has exactly the keys and
shapes the other side expects.

The renames, per layer `N` (everything else keeps its name):

    fairseq / ofa_sic                              HF port / ModelScope
    encoder.layers.N.attn_ln.*                     encoder.layers.N.self_attn_mid_layer_norm.*
    {encoder,decoder}.layers.N.ffn_layernorm.*     {encoder,decoder}.layers.N.ffn_layer_norm.*
    decoder.layers.N.self_attn_ln.*                decoder.layers.N.self_attn_mid_layer_norm.*
    decoder.layers.N.cross_attn_ln.*               decoder.layers.N.cross_attn_mid_layer_norm.*
    decoder.layers.N.encoder_attn.*                decoder.layers.N.cross_attn.*
    decoder.layers.N.encoder_attn_layer_norm.*     decoder.layers.N.cross_attn_layer_norm.*

Buffers that differ between the ports (`version`, `token_rp_bucket`, `image_position_idx`) are handled
by the converter, not renamed here.
"""
import re
from typing import Dict, Iterable, List, Tuple

import torch

#: (side, fairseq module, HF module) of the module right after `{side}.layers.N.`; the longer name
#: `encoder_attn_layer_norm` is matched as a whole module name, so it never collides with `encoder_attn`.
_LAYER_RENAMES: List[Tuple[str, str, str]] = [
    ("encoder", "attn_ln", "self_attn_mid_layer_norm"),
    ("encoder", "ffn_layernorm", "ffn_layer_norm"),
    ("decoder", "ffn_layernorm", "ffn_layer_norm"),
    ("decoder", "self_attn_ln", "self_attn_mid_layer_norm"),
    ("decoder", "cross_attn_ln", "cross_attn_mid_layer_norm"),
    ("decoder", "encoder_attn_layer_norm", "cross_attn_layer_norm"),
    ("decoder", "encoder_attn", "cross_attn"),
]

_LAYER_KEY = re.compile(r"^(?P<side>encoder|decoder)\.layers\.(?P<layer>\d+)\.(?P<module>[^.]+)\.(?P<rest>.+)$")


#: The three names of OFA's one shared token embedding (both ports and fairseq tie them).
TIED_EMBEDDING_KEYS = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "decoder.output_projection.weight")


class LayoutMismatchError(ValueError):
    """A converted state dict does not have the keys and shapes the target expects."""


def _rename(key: str, to_hf: bool) -> str:
    match = _LAYER_KEY.match(key)
    if not match:
        return key
    for side, fairseq_name, hf_name in _LAYER_RENAMES:
        source, target = (fairseq_name, hf_name) if to_hf else (hf_name, fairseq_name)
        if match["side"] == side and match["module"] == source:
            return f"{side}.layers.{match['layer']}.{target}.{match['rest']}"
    return key


def hf_name(key: str) -> str:
    """The HF-port name of fairseq/ofa_sic state-dict key `key`."""
    return _rename(key, to_hf=True)


def fairseq_name(key: str) -> str:
    """The fairseq/ofa_sic name of HF-port state-dict key `key`."""
    return _rename(key, to_hf=False)


def rename_all(state: Dict[str, torch.Tensor], to_hf: bool) -> Dict[str, torch.Tensor]:
    """`state` with every key renamed for the other side; the tensors are the same objects.

    Raises LayoutMismatchError if two keys would get the same name (the source then had both spellings).
    """
    renamed: Dict[str, torch.Tensor] = {}
    origin: Dict[str, str] = {}
    for key, value in state.items():
        new = _rename(key, to_hf)
        if new in renamed:
            raise LayoutMismatchError(f"{origin[new]!r} and {key!r} both become {new!r}; the source mixes both ports' names")
        renamed[new] = value
        origin[new] = key
    return renamed


def check_layout(state: Dict[str, torch.Tensor], expected: Dict[str, Tuple[int, ...]], what: str) -> None:
    """Raise LayoutMismatchError unless `state` has exactly the keys of `expected`, each with its shape.

    `what` names the target in the message (e.g. "the ModelScope OFAModel of config.json").
    """
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{key}: {tuple(state[key].shape)} instead of {tuple(expected[key])}"
        for key in set(state) & set(expected) if tuple(state[key].shape) != tuple(expected[key])
    )
    if not (missing or unexpected or wrong):
        return
    lines = [f"the converted weights do not fit {what}:"]
    for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            lines.append(f"  {title} ({len(items)}): " + ", ".join(_compress(items)[:20]))
    raise LayoutMismatchError("\n".join(lines))


def _compress(keys: Iterable[str]) -> List[str]:
    """Key names with their layer numbers folded: 'decoder.layers.*.x' once instead of once per layer."""
    folded: List[str] = []
    for key in keys:
        short = re.sub(r"\.layers\.\d+\.", ".layers.*.", key)
        if short not in folded:
            folded.append(short)
    return folded


def tie_embeddings(state: Dict[str, torch.Tensor], src: str) -> List[str]:
    """Give every name of TIED_EMBEDDING_KEYS the shared token embedding (files that store tied weights once,
    e.g. safetensors, keep only one name). Returns the names filled in; raises LayoutMismatchError if the
    names present hold different values (the ports cannot express untied embeddings)."""
    present = [key for key in TIED_EMBEDDING_KEYS if key in state]
    if not present:
        raise LayoutMismatchError(f"{src} has no token embedding ({', '.join(TIED_EMBEDDING_KEYS)})")
    shared = state[present[0]]
    for key in present[1:]:
        if state[key].shape != shared.shape or not torch.equal(state[key], shared):
            raise LayoutMismatchError(f"{src}: {key} differs from {present[0]}; OFA ties them, an untied model does not convert")
    filled = [key for key in TIED_EMBEDDING_KEYS if key not in state]
    for key in filled:
        state[key] = shared
    return filled

"""The format-neutral model a conversion carries, and the ofa_sic model that checks its layout.

A conversion reads its source into an `OFAModelFiles` (weights under ofa_sic's names, ofa_sic model
options, vocabulary, styles, task settings) and writes the target from it. `ofa_layout` builds the real
ofa_sic model for a set of options, so every key and shape is checked against the model that
fairseq-generate will build, not against a hand-written list.
"""
import argparse
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch

from ofa_sic.convert.vocab import Vocabulary
from ofa_sic.tasks.input_contract import DEFAULT_SETTINGS

#: The ofa_sic model options that shape the network or its numerics (what a conversion carries).
MODEL_OPTIONS = (
    "encoder_embed_dim", "decoder_embed_dim", "encoder_ffn_embed_dim", "decoder_ffn_embed_dim",
    "encoder_layers", "decoder_layers", "encoder_attention_heads", "decoder_attention_heads",
    "encoder_normalize_before", "decoder_normalize_before", "max_source_positions", "max_target_positions",
    "activation_fn", "dropout", "attention_dropout", "activation_dropout", "no_scale_embedding",
    "layernorm_embedding", "patch_layernorm_embedding", "code_layernorm_embedding", "add_type_embedding",
    "resnet_type", "token_bucket_size", "image_bucket_size", "attn_scale_factor", "code_image_size",
    "encoder_drop_path_rate", "decoder_drop_path_rate", "resnet_drop_path_rate", "disable_entangle",
    "scale_attn", "scale_fc", "scale_heads", "scale_resids", "sync_bn", "freeze_resnet",
)

#: Task settings that travel with the model: those a checkpoint fixes (style_caption names and defaults).
TASK_DEFAULTS = dict(DEFAULT_SETTINGS)


@dataclass
class OFAModelFiles:
    """state: tensors under ofa_sic's names; model_args: MODEL_OPTIONS values; task: TASK_DEFAULTS keys;
    styles: style names in `<code_i>` order, or None; text_only_rows: the model was trained on rows
    without an image (it then depends on patch_masks)."""

    state: Dict[str, torch.Tensor]
    model_args: Dict
    vocabulary: Vocabulary
    task: Dict = field(default_factory=lambda: dict(TASK_DEFAULTS))
    styles: Optional[List[str]] = None
    text_only_rows: bool = False

    @property
    def vocab_size(self) -> int:
        return self.state["encoder.embed_tokens.weight"].size(0)


def build_ofa_model(model_args: Dict, vocab_size: int, arch: str = "ofa_large"):
    """The ofa_sic OFAModel with options `model_args` and `vocab_size` token rows (random weights)."""
    from fairseq.data import Dictionary
    from fairseq.models import ARCH_CONFIG_REGISTRY

    from ofa_sic.models.ofa import OFAModel

    dictionary = Dictionary()
    while len(dictionary) < vocab_size:
        dictionary.add_symbol(f"<row_{len(dictionary)}>")
    args = argparse.Namespace(arch=arch, **model_args)
    ARCH_CONFIG_REGISTRY[arch](args)
    tasklike = argparse.Namespace(source_dictionary=dictionary, target_dictionary=dictionary)
    return OFAModel.build_model(args, tasklike)


#: Buffers computed from the options alone; a conversion takes them from the built ofa_sic model when
#: the source lacks them (or, for `image_position_idx`, always: its length differs between the ports).
DERIVED_BUFFERS = ("version", "image_position_idx", "token_rp_bucket", "image_rp_bucket")


def is_derived_buffer(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in DERIVED_BUFFERS


def ofa_layout(model_args: Dict, vocab_size: int) -> Tuple[Dict[str, Tuple[int, ...]], Dict[str, torch.Tensor]]:
    """(key -> shape of every state-dict entry, key -> value of the derived buffers) of the ofa_sic
    model for `model_args` with `vocab_size` token rows."""
    state = build_ofa_model(model_args, vocab_size).state_dict()
    shapes = {key: tuple(value.shape) for key, value in state.items()}
    derived = {key: value for key, value in state.items() if is_derived_buffer(key)}
    return shapes, derived

"""The `ofa` fairseq model: OFA-main's encoder-decoder with its parameter names and numerics.

Architectures `ofa_tiny` ... `ofa_huge` have OFA-main's defaults (so the caption recipe still needs
`--scale-attn --scale-fc --scale-heads --disable-entangle`, as in OFA's scripts); `ofa_demo` is a
tiny CPU-sized model with the caption recipe switched on by default.
"""
import logging
from typing import Dict

import torch
import torch.nn as nn
from fairseq import utils
from fairseq.models import FairseqEncoderDecoderModel, register_model, register_model_architecture

from ofa_sic.models.decoder import OFADecoder
from ofa_sic.models.encoder import OFAEncoder
from ofa_sic.models.grouped_rows import expand_encoder_out
from ofa_sic.models.position import Embedding
from ofa_sic.models.resnet import BLOCKS_PER_LAYER

logger = logging.getLogger(__name__)

#: Flags of OFA's caption scripts that change parameters or numerics (docs/ofa-spec.md §2.1).
CAPTION_RECIPE_FLAGS = ("scale_attn", "scale_fc", "scale_heads", "disable_entangle")
#: Names under which the one shared token-embedding matrix is saved.
TOKEN_EMBEDDING_KEYS = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "decoder.output_projection.weight")


class CheckpointMismatchError(RuntimeError):
    """A state dict does not fit the model built from the current options."""


@register_model("ofa")
class OFAModel(FairseqEncoderDecoderModel):
    def __init__(self, args, encoder: OFAEncoder, decoder: OFADecoder):
        super().__init__(encoder, decoder)
        self.args = args
        self.apply(init_bert_params)  # as OFA; loaded checkpoints overwrite it
        # OFA keeps an (unused for captioning) head dict; it has no parameters.
        self.classification_heads = nn.ModuleDict()

    @staticmethod
    def add_args(parser):
        """OFA-main's model options that captioning checkpoints depend on (same names and meaning)."""
        add = parser.add_argument
        add("--activation-fn", choices=utils.get_available_activation_fns(), help="activation function")
        add("--dropout", type=float, metavar="D", help="dropout probability")
        add("--attention-dropout", type=float, metavar="D", help="dropout probability for attention weights")
        add("--activation-dropout", "--relu-dropout", type=float, metavar="D", help="dropout after the FFN activation")
        for side in ("encoder", "decoder"):
            add(f"--{side}-embed-dim", type=int, metavar="N", help=f"{side} embedding dimension")
            add(f"--{side}-ffn-embed-dim", type=int, metavar="N", help=f"{side} FFN inner dimension")
            add(f"--{side}-layers", type=int, metavar="N", help=f"number of {side} layers")
            add(f"--{side}-attention-heads", type=int, metavar="N", help=f"number of {side} attention heads")
            add(f"--{side}-normalize-before", action="store_true", help=f"pre-norm {side} layers")
            add(f"--{side}-drop-path-rate", type=float, help=f"largest stochastic-depth rate of the {side} layers")
            add(f"--freeze-{side}-embedding", action="store_true", help=f"do not train the {side} token embedding")
        add("--resnet-drop-path-rate", type=float, help="largest stochastic-depth rate inside the ResNet")
        add("--layernorm-embedding", action="store_true", help="layer norm on token embeddings")
        add("--no-scale-embedding", action="store_true", help="do not scale embeddings by sqrt(dim)")
        add("--token-bucket-size", type=int, help="1-D relative position buckets")
        add("--image-bucket-size", type=int, help="side of the 2-D image position grid")
        add("--attn-scale-factor", type=float, help="queries are scaled by (head_dim * factor) ** -0.5")
        add("--freeze-resnet", action="store_true", help="frozen BatchNorm in the ResNet (statistics and affine)")
        add("--add-type-embedding", action="store_true", help="text/image type embedding")
        add("--resnet-type", choices=sorted(BLOCKS_PER_LAYER), help="ResNet depth (always Bottleneck blocks, as OFA)")
        add("--code-image-size", type=int, help="image-code grid size of OFA's decoder buffers")
        add("--patch-layernorm-embedding", action="store_true", help="layer norm on patch embeddings")
        add("--code-layernorm-embedding", action="store_true", help="layer norm for image-code tokens (kept for checkpoints)")
        add("--disable-entangle", action="store_true",
            help="do not add absolute positions to decoder inputs (all released OFA checkpoints use this)")
        add("--sync-bn", action="store_true", help="synchronised BatchNorm across GPUs in the ResNet")
        add("--scale-attn", action="store_true", help="NormFormer layer norm after attention")
        add("--scale-fc", action="store_true", help="NormFormer layer norm inside the FFN")
        add("--scale-heads", action="store_true", help="NormFormer learned per-head scales")
        add("--scale-resids", action="store_true", help="NormFormer learned residual scales")

    @classmethod
    def build_model(cls, args, task):
        """Build from fairseq args; the task supplies one joined dictionary (OFA shares all embeddings)."""
        ofa_defaults(args)
        src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
        if src_dict != tgt_dict:
            raise ValueError("OFA shares one token embedding: the task must use one dictionary for source and target")
        if args.encoder_embed_dim != args.decoder_embed_dim:
            raise ValueError("OFA shares all embeddings: --encoder-embed-dim must equal --decoder-embed-dim")
        missing = [flag for flag in CAPTION_RECIPE_FLAGS if not getattr(args, flag)]
        if missing:
            logger.warning(
                "building %s without %s: released OFA checkpoints were trained with these flags; "
                "loading them needs the flags too",
                args.arch, " ".join("--" + f.replace("_", "-") for f in missing),
            )
        embed_tokens = Embedding(len(src_dict), args.encoder_embed_dim, src_dict.pad())
        if args.freeze_encoder_embedding or args.freeze_decoder_embedding:
            embed_tokens.weight.requires_grad = False
        encoder = OFAEncoder(args, src_dict, embed_tokens)
        decoder = OFADecoder(args, tgt_dict, embed_tokens)
        return cls(args, encoder, decoder)

    def forward(self, src_tokens, src_lengths, prev_output_tokens, patch_images=None, patch_masks=None,
                features_only: bool = False, alignment_layer=None, return_all_hiddens: bool = False,
                rows_per_source: int = 1, encoder_out=None, **unused):
        """src_tokens [B, L], patch_images [B, 3, S, S], patch_masks [B], prev_output_tokens [B*r, T]
        -> (logits [B*r, T, V], {"attn": [...], "inner_states": [...]}).

        rows_per_source r: target rows r*i .. r*i + r-1 belong to source row i (SCST's K samples of
        an image), which is encoded once. encoder_out: the encoder's output for these sources when
        the caller already has it (gradients flow into the encoder as if it ran here).
        """
        if encoder_out is None:
            encoder_out = self.encoder(
                src_tokens, src_lengths=src_lengths, patch_images=patch_images, patch_masks=patch_masks,
                return_all_hiddens=return_all_hiddens,
            )
        return self.decoder(
            prev_output_tokens, encoder_out=expand_encoder_out(encoder_out, rows_per_source),
            features_only=features_only, alignment_layer=alignment_layer,
        )

    # ---- checkpoints ---------------------------------------------------------------------------

    def upgrade_state_dict_named(self, state_dict: Dict[str, torch.Tensor], name: str):
        """Make a released/older OFA state dict fit this model, as OFA-main does on load.

        - grows the token embedding (all three names) when the dictionary has more symbols than the
          checkpoint, with new rows drawn from normal(0, dim**-0.5);
        - grows `embed_image_positions` when the image bucket grid is larger;
        - fills in buffers the checkpoint lacks (relative-position buckets, `version`) and always
          takes `decoder.image_position_idx` from the model;
        - fills in missing parameters with their initial values, logging each one.
        Unexpected keys are left in place so that strict loading reports them.
        """
        super().upgrade_state_dict_named(state_dict, name)
        prefix = name + "." if name else ""
        own = self.state_dict()
        self._grow_rows(state_dict, prefix, TOKEN_EMBEDDING_KEYS, own)
        for side in ("encoder", "decoder"):
            self._grow_rows(state_dict, prefix, (f"{side}.embed_image_positions.weight",), own)
        state_dict[prefix + "decoder.image_position_idx"] = own["decoder.image_position_idx"]
        buffers = {key for key, _ in self.named_buffers()}
        filled = []
        for key, value in own.items():
            if prefix + key not in state_dict:
                state_dict[prefix + key] = value
                if key not in buffers:
                    filled.append(key)
        if filled:
            logger.warning("checkpoint lacks %d parameters; using their initial values: %s", len(filled), ", ".join(filled))

    @staticmethod
    def _grow_rows(state_dict, prefix: str, keys, own):
        """Append normal(0, dim**-0.5) rows to the tensors `keys` (one shared new block) when the model has more."""
        present = [key for key in keys if prefix + key in state_dict]
        if not present:
            return
        loaded = state_dict[prefix + present[0]]
        wanted = own[present[0]].size(0)
        if loaded.size(0) >= wanted:
            return
        dim = loaded.size(1)
        extra = torch.empty(wanted - loaded.size(0), dim).normal_(mean=0.0, std=dim ** -0.5).to(loaded.dtype)
        logger.info("growing %s from %d to %d rows", ", ".join(present), loaded.size(0), wanted)
        for key in present:
            state_dict[prefix + key] = torch.cat([state_dict[prefix + key], extra.to(state_dict[prefix + key].device)])

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        """fairseq's load (which runs `upgrade_state_dict_named`), with an error that lists what does not fit."""
        self.upgrade_state_dict(state_dict)
        own = self.state_dict()
        unexpected = sorted(k for k in state_dict if k not in own and not _is_frozen_bn_counter(k, own))
        wrong_shape = sorted(
            f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
            for k in state_dict if k in own and state_dict[k].shape != own[k].shape
        )
        if strict and (unexpected or wrong_shape):
            lines = ["the checkpoint does not fit the model built from the current options."]
            if unexpected:
                lines.append(f"Unexpected keys ({len(unexpected)}): " + ", ".join(unexpected[:50]))
                lines.append("Names like attn_ln, ffn_layernorm or c_attn need --scale-attn --scale-fc --scale-heads.")
            if wrong_shape:
                lines.append(f"Shape mismatches ({len(wrong_shape)}): " + "; ".join(wrong_shape[:20]))
                lines.append("Check --arch and the size options (embed dims, layers, --resnet-type, buckets).")
            raise CheckpointMismatchError("\n".join(lines))
        return nn.Module.load_state_dict(self, state_dict, strict=strict)

    def max_positions(self):
        return (self.encoder.max_positions(), self.decoder.max_positions())


def init_bert_params(module: nn.Module):
    """BERT-style init used by OFA: Linear/Embedding weights ~ normal(0, 0.02), biases and padding rows 0."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()


def _is_frozen_bn_counter(key: str, own) -> bool:
    """`num_batches_tracked` of a BatchNorm that is frozen in this model (dropped on load)."""
    return key.endswith(".num_batches_tracked") and key.rsplit(".", 1)[0] + ".running_mean" in own


def _default(args, name, value):
    setattr(args, name, getattr(args, name, value))


@register_model_architecture("ofa", "ofa_large")
def ofa_defaults(args):
    """OFA-main's defaults for every size (docs/ofa-spec.md §2.1, where OFA-main calls this
    `ofa_large_architecture`): each size sets its dimensions, then falls through to these; `ofa_large`
    is these defaults alone."""
    _default(args, "encoder_embed_dim", 1024)
    _default(args, "encoder_ffn_embed_dim", 4 * args.encoder_embed_dim)
    _default(args, "encoder_layers", 12)
    _default(args, "encoder_attention_heads", 16)
    _default(args, "encoder_normalize_before", True)
    _default(args, "decoder_embed_dim", args.encoder_embed_dim)
    _default(args, "decoder_ffn_embed_dim", args.encoder_ffn_embed_dim)
    _default(args, "decoder_layers", 12)
    _default(args, "decoder_attention_heads", 16)
    _default(args, "decoder_normalize_before", True)
    _default(args, "attention_dropout", 0.0)
    _default(args, "activation_dropout", getattr(args, "relu_dropout", 0.0))
    _default(args, "dropout", 0.0)
    _default(args, "max_target_positions", 1024)
    _default(args, "max_source_positions", 1024)
    _default(args, "no_scale_embedding", True)
    _default(args, "layernorm_embedding", True)
    _default(args, "activation_fn", "gelu")
    _default(args, "resnet_drop_path_rate", 0.0)
    _default(args, "encoder_drop_path_rate", 0.0)
    _default(args, "decoder_drop_path_rate", 0.0)
    _default(args, "resnet_type", "resnet152")
    _default(args, "token_bucket_size", 256)
    _default(args, "image_bucket_size", 42)
    _default(args, "freeze_encoder_embedding", False)
    _default(args, "freeze_decoder_embedding", False)
    _default(args, "freeze_resnet", False)
    _default(args, "add_type_embedding", True)
    _default(args, "attn_scale_factor", 2)
    _default(args, "code_image_size", 128)
    _default(args, "patch_layernorm_embedding", True)
    _default(args, "code_layernorm_embedding", True)
    _default(args, "disable_entangle", False)
    _default(args, "sync_bn", False)
    _default(args, "scale_attn", False)
    _default(args, "scale_fc", False)
    _default(args, "scale_heads", False)
    _default(args, "scale_resids", False)


def _sized(embed_dim, encoder_layers, decoder_layers, heads, resnet_type):
    def arch(args):
        _default(args, "encoder_embed_dim", embed_dim)
        _default(args, "encoder_ffn_embed_dim", 4 * embed_dim)
        _default(args, "encoder_layers", encoder_layers)
        _default(args, "encoder_attention_heads", heads)
        _default(args, "decoder_layers", decoder_layers)
        _default(args, "decoder_attention_heads", heads)
        _default(args, "resnet_type", resnet_type)
        ofa_defaults(args)
    return arch


register_model_architecture("ofa", "ofa_tiny")(_sized(256, 4, 4, 4, "resnet50"))
register_model_architecture("ofa", "ofa_medium")(_sized(512, 4, 4, 8, "resnet101"))
register_model_architecture("ofa", "ofa_base")(_sized(768, 6, 6, 12, "resnet101"))
register_model_architecture("ofa", "ofa_huge")(_sized(1280, 24, 12, 16, "resnet152"))


@register_model_architecture("ofa", "ofa_demo")
def ofa_demo_architecture(args):
    """A CPU-sized OFA for the demo and tests: 128-dim, 2+2 layers, "resnet18" (Bottleneck [2,2,2]),
    short position tables, and the caption recipe flags on."""
    for flag in CAPTION_RECIPE_FLAGS:
        _default(args, flag, True)
    _default(args, "encoder_embed_dim", 128)
    _default(args, "encoder_ffn_embed_dim", 512)
    _default(args, "encoder_layers", 2)
    _default(args, "encoder_attention_heads", 4)
    _default(args, "decoder_layers", 2)
    _default(args, "decoder_attention_heads", 4)
    _default(args, "resnet_type", "resnet18")
    _default(args, "max_source_positions", 256)
    _default(args, "max_target_positions", 256)
    _default(args, "image_bucket_size", 16)
    ofa_defaults(args)

"""OFA encoder: ResNet patches and prompt tokens in one Transformer stack.

Input layout along time: [image patches ; text tokens]. Positions enter only as attention bias:
an absolute term (pos_q(pos) . pos_k(pos), shared by all layers) plus per-layer relative terms
(2-D buckets for patch pairs, 1-D buckets for token pairs; image<->text pairs get only the
absolute term). No position embedding is added to the inputs (OFA's entangle is off).

The encoder-out dict may stand for more decoder rows than it holds (`rows_per_source`, see
`ofa_sic.models.grouped_rows`); `reorder_encoder_out` keeps that grouping where it can.
"""
import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.models import FairseqEncoder
from fairseq.modules import LayerNorm
from torch import Tensor

from ofa_sic.models.drop_path import DropPath
from ofa_sic.models.grouped_rows import group_rows_by_source
from ofa_sic.models.layers import TransformerEncoderLayer
from ofa_sic.models.position import (
    Embedding,
    absolute_position_bias,
    image_position_ids,
    make_image_bucket_position,
    make_token_bucket_position,
    relative_bias,
    relative_tables,
)
from ofa_sic.models.resnet import BLOCKS_PER_LAYER, ResNet, make_norm_layer


#: The net_input entries `OFAEncoder.forward` reads (a batch's other entries belong to the decoder).
ENCODER_INPUTS = ("src_tokens", "src_lengths", "patch_images", "patch_masks")


class OFAEncoder(FairseqEncoder):
    def __init__(self, args, dictionary, embed_tokens: nn.Embedding):
        super().__init__(dictionary)
        self.register_buffer("version", torch.Tensor([3]))
        embed_dim = embed_tokens.embedding_dim
        self.dropout = args.dropout
        self.padding_idx = embed_tokens.padding_idx
        self.max_source_positions = args.max_source_positions
        self.num_heads = args.encoder_attention_heads
        self.image_bucket_size = args.image_bucket_size
        self.embed_scale = 1.0 if args.no_scale_embedding else math.sqrt(embed_dim)

        self.embed_tokens = embed_tokens
        self.layernorm_embedding = LayerNorm(embed_dim) if args.layernorm_embedding else None
        self.type_embedding = Embedding(2, embed_dim) if args.add_type_embedding else None

        if args.resnet_type not in BLOCKS_PER_LAYER:
            raise ValueError(f"--resnet-type {args.resnet_type!r} is not one of {sorted(BLOCKS_PER_LAYER)}")
        norm_layer = make_norm_layer(freeze=args.freeze_resnet, sync=args.sync_bn)
        self.embed_images = ResNet(
            BLOCKS_PER_LAYER[args.resnet_type], norm_layer=norm_layer, drop_path_rate=args.resnet_drop_path_rate
        )
        self.image_proj = nn.Linear(1024, embed_dim)
        self.patch_layernorm_embedding = LayerNorm(embed_dim) if args.patch_layernorm_embedding else None

        self.embed_positions = Embedding(args.max_source_positions + 2, embed_dim)
        self.embed_image_positions = Embedding(args.image_bucket_size ** 2 + 1, embed_dim)
        self.pos_ln = LayerNorm(embed_dim)
        self.image_pos_ln = LayerNorm(embed_dim)
        self.pos_scaling = float(embed_dim / self.num_heads * args.attn_scale_factor) ** -0.5
        self.pos_q_linear = nn.Linear(embed_dim, embed_dim)
        self.pos_k_linear = nn.Linear(embed_dim, embed_dim)

        rates = torch.linspace(0, args.encoder_drop_path_rate, args.encoder_layers, device="cpu").tolist()
        self.layers = nn.ModuleList([TransformerEncoderLayer(args, rates[i]) for i in range(args.encoder_layers)])
        self.layer_norm = LayerNorm(embed_dim) if args.encoder_normalize_before else None

        token_buckets = 2 * args.token_bucket_size - 1
        image_buckets = (2 * args.image_bucket_size - 1) ** 2 + 3
        self.token_rel_pos_table_list = relative_tables(args.encoder_layers, token_buckets, self.num_heads)
        self.image_rel_pos_table_list = relative_tables(args.encoder_layers, image_buckets, self.num_heads)
        self.register_buffer("token_rp_bucket", make_token_bucket_position(args.token_bucket_size, args.max_source_positions))
        self.register_buffer("image_rp_bucket", make_image_bucket_position(args.image_bucket_size, image_buckets))

    def embed_patches(self, patch_images: Tensor):
        """patch_images [B, 3, S, S] -> (patch features [B, P, 1024], position ids [P]), P = (S/16)^2."""
        features = self.embed_images(patch_images)
        height, width = features.shape[-2:]
        if height > self.image_bucket_size or width > self.image_bucket_size:
            raise ValueError(
                f"a {height}x{width} patch grid exceeds --image-bucket-size {self.image_bucket_size}; "
                f"use --patch-image-size <= {16 * self.image_bucket_size}"
            )
        position_ids = image_position_ids(height, width, self.image_bucket_size).to(patch_images.device)
        return features.flatten(2).transpose(1, 2), position_ids

    def embed_inputs(self, src_tokens: Tensor, patch_features: Tensor) -> Tensor:
        """Token embeddings [B, L, C] and projected patches [B, P, C] -> [B, P+L, C]."""
        x = self.embed_scale * self.embed_tokens(src_tokens)
        if self.type_embedding is not None:
            x = x + self.type_embedding(src_tokens.new_zeros(src_tokens.shape))
        if self.layernorm_embedding is not None:
            x = self.layernorm_embedding(x)
        x = F.dropout(x, p=self.dropout, training=self.training)

        image_x = self.embed_scale * self.image_proj(patch_features)
        if self.type_embedding is not None:
            image_x = image_x + self.type_embedding(src_tokens.new_ones(image_x.shape[:2]))
        if self.patch_layernorm_embedding is not None:
            image_x = self.patch_layernorm_embedding(image_x)
        image_x = F.dropout(image_x, p=self.dropout, training=self.training)
        return torch.cat([image_x, x], dim=1)

    def token_relative_bias(self, length: int, layer: int) -> Tensor:
        """Relative bias of `length` tokens for one layer: [H, length, length]."""
        return relative_bias(self.token_rp_bucket[:length, :length], self.token_rel_pos_table_list[layer])

    def image_relative_bias(self, position_ids: Tensor, layer: int) -> Tensor:
        """Relative bias between patches with ids position_ids [P]: [H, P, P]."""
        buckets = self.image_rp_bucket[position_ids][:, position_ids]
        return relative_bias(buckets, self.image_rel_pos_table_list[layer])

    def position_bias(self, text_len: int, patch_ids: Tensor) -> Tuple[Tensor, Tensor]:
        """Layer-normed absolute positions [P+L, C] of the layout and their bias [1, H, P+L, P+L]."""
        text_pos = self.pos_ln(self.embed_positions(torch.arange(text_len, device=patch_ids.device)))
        image_pos = self.image_pos_ln(self.embed_image_positions(patch_ids))
        pos_embed = torch.cat([image_pos, text_pos], dim=0)
        bias = absolute_position_bias(
            self.pos_q_linear, self.pos_k_linear, pos_embed, pos_embed, self.num_heads, self.pos_scaling
        )
        return pos_embed, bias

    def layer_bias(self, abs_bias: Tensor, text_len: int, patch_ids: Tensor, layer: int) -> Tensor:
        """abs_bias [1, H, T, T] plus the layer's relative terms on the patch and token blocks: [1, H, T, T]."""
        num_patches = patch_ids.numel()
        relative = torch.zeros_like(abs_bias)
        relative[0, :, num_patches:, num_patches:] = self.token_relative_bias(text_len, layer)
        relative[0, :, :num_patches, :num_patches] = self.image_relative_bias(patch_ids, layer)
        return abs_bias + relative

    def is_exact_in_training(self) -> bool:
        """True when train mode computes what eval mode does: no dropout, drop path or batch statistics."""
        rates = [self.dropout] + [m.drop_prob for m in self.modules() if isinstance(m, DropPath)]
        for layer in self.layers:
            rates += [layer.dropout, layer.activation_dropout, layer.self_attn.dropout]
        batch_stats = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.modules())
        return not batch_stats and all(rate == 0.0 for rate in rates)

    def forward(
        self,
        src_tokens: Tensor,
        src_lengths: Optional[Tensor] = None,
        patch_images: Optional[Tensor] = None,
        patch_masks: Optional[Tensor] = None,
        return_all_hiddens: bool = False,
    ) -> Dict[str, List[Tensor]]:
        """Encode an image and a prompt.

        src_tokens: [B, L] right-padded; patch_images: [B, 3, S, S] normalised; patch_masks: [B]
        bool, False for text-only rows (their patches are fully masked). Returns fairseq's
        encoder-out dict: encoder_out [P+L, B, C], encoder_padding_mask [B, P+L],
        position_embeddings [1, P+L, C] (layer-normed absolute positions, the same for every row,
        used by the decoder's cross-attention bias) and rows_per_source 1.
        """
        if patch_images is None:
            raise ValueError("the OFA encoder needs patch_images (zeros with patch_masks False for text-only rows)")
        bsz, text_len = src_tokens.shape
        if text_len > self.max_source_positions:
            raise ValueError(f"source of {text_len} tokens exceeds --max-source-positions {self.max_source_positions}")
        if patch_masks is None:
            patch_masks = torch.ones(bsz, dtype=torch.bool, device=src_tokens.device)
        patch_features, patch_ids = self.embed_patches(patch_images)
        num_patches = patch_ids.numel()

        image_padding_mask = (~patch_masks.bool())[:, None].expand(bsz, num_patches)
        padding_mask = torch.cat([image_padding_mask, src_tokens.eq(self.padding_idx)], dim=1)

        x = self.embed_inputs(src_tokens, patch_features)
        x = x * (1 - padding_mask.unsqueeze(-1).type_as(x))
        x = x.transpose(0, 1)

        pos_embed, abs_bias = self.position_bias(text_len, patch_ids)
        states = [x] if return_all_hiddens else []
        layer_padding_mask = padding_mask if padding_mask.any() else None
        for idx, layer in enumerate(self.layers):
            x = layer(x, layer_padding_mask, self.layer_bias(abs_bias, text_len, patch_ids, idx))
            if return_all_hiddens:
                states.append(x)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return {
            "encoder_out": [x],
            "encoder_padding_mask": [padding_mask],
            "encoder_embedding": [],
            "encoder_states": states,
            "src_tokens": [],
            "src_lengths": [],
            "position_embeddings": [pos_embed.unsqueeze(0)],
            "rows_per_source": 1,
        }

    def reorder_encoder_out(self, encoder_out: Dict[str, List[Tensor]], new_order: Tensor):
        """Decoder rows `new_order` [B'] (indices into the rows the dict stands for).

        Keeps the rows grouped (no copy) when the new rows are runs of equal length r' over the
        sources, e.g. fairseq's beam expansion and its reorders within a sentence; otherwise
        selects one source row per decoder row.
        """
        num_sources = encoder_out["encoder_out"][0].size(1)
        sources, rows_per_source = group_rows_by_source(new_order, encoder_out["rows_per_source"], num_sources)
        if sources is None and rows_per_source == encoder_out["rows_per_source"]:
            return encoder_out
        if sources is None:
            return dict(encoder_out, rows_per_source=rows_per_source)

        def pick(key, dim):
            return [t.index_select(dim, sources) for t in encoder_out[key]]

        return {
            "encoder_out": pick("encoder_out", 1),
            "encoder_padding_mask": pick("encoder_padding_mask", 0),
            "encoder_embedding": pick("encoder_embedding", 0),
            "encoder_states": pick("encoder_states", 1),
            "src_tokens": pick("src_tokens", 0),
            "src_lengths": pick("src_lengths", 0),
            "position_embeddings": encoder_out["position_embeddings"],
            "rows_per_source": rows_per_source,
        }

    def max_positions(self):
        return self.max_source_positions

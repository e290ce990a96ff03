"""Pre-norm Transformer layers of OFA with the NormFormer extras the caption recipe enables.

Encoder layer:  x = x + DropPath(attn_ln(SelfAttn(LN(x))))
                x = x + DropPath(fc2(ffn_layernorm(gelu(fc1(LN(x))))))
Decoder layer adds cross-attention (with `cross_attn_ln`) between the two.
`attn_ln`/`self_attn_ln`/`cross_attn_ln` exist with --scale-attn, `ffn_layernorm` with --scale-fc,
`w_resid` with --scale-resids. Post-norm (normalize_before=False) is supported as in OFA.
All tensors are time-first: [T, B, C].
"""
from typing import Optional

import torch
import torch.nn as nn
from fairseq import utils
from fairseq.modules import LayerNorm
from torch import Tensor

from ofa_sic.models.attention import MultiheadAttention
from ofa_sic.models.drop_path import DropPath


def _dropout(x: Tensor, p: float, training: bool) -> Tensor:
    return nn.functional.dropout(x, p=p, training=training)


class _LayerBase(nn.Module):
    """Shared FFN and residual logic of encoder and decoder layers."""

    def _build_ffn(self, args, embed_dim: int, ffn_dim: int, drop_path_rate: float):
        self.dropout = args.dropout
        self.activation_dropout = float(args.activation_dropout)
        self.activation_fn = utils.get_activation_fn(args.activation_fn)
        self.fc1 = nn.Linear(embed_dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, embed_dim)
        self.ffn_layernorm = LayerNorm(ffn_dim) if args.scale_fc else None
        self.w_resid = nn.Parameter(torch.ones(embed_dim)) if args.scale_resids else None
        self.final_layer_norm = LayerNorm(embed_dim)
        self.drop_path = DropPath(drop_path_rate, batch_dim=1) if drop_path_rate > 0.0 else nn.Identity()

    def _feed_forward(self, x: Tensor) -> Tensor:
        residual = x
        if self.normalize_before:
            x = self.final_layer_norm(x)
        x = self.activation_fn(self.fc1(x))
        x = _dropout(x, self.activation_dropout, self.training)
        if self.ffn_layernorm is not None:
            x = self.ffn_layernorm(x)
        x = _dropout(self.fc2(x), self.dropout, self.training)
        if self.w_resid is not None:
            residual = self.w_resid * residual
        x = residual + self.drop_path(x)
        if not self.normalize_before:
            x = self.final_layer_norm(x)
        return x

    def _attention_block(self, x: Tensor, norm: nn.Module, post_ln: Optional[nn.Module], attend) -> Tensor:
        """x + DropPath(post_ln(attend(norm(x)))) in pre-norm; norm after the residual in post-norm."""
        residual = x
        if self.normalize_before:
            x = norm(x)
        x = attend(x)
        if post_ln is not None:
            x = post_ln(x)
        x = residual + self.drop_path(_dropout(x, self.dropout, self.training))
        if not self.normalize_before:
            x = norm(x)
        return x


class TransformerEncoderLayer(_LayerBase):
    def __init__(self, args, drop_path_rate: float = 0.0):
        super().__init__()
        embed_dim = args.encoder_embed_dim
        self.normalize_before = args.encoder_normalize_before
        self.self_attn = MultiheadAttention(
            embed_dim,
            args.encoder_attention_heads,
            dropout=args.attention_dropout,
            self_attention=True,
            scale_factor=args.attn_scale_factor,
            scale_heads=args.scale_heads,
        )
        self.self_attn_layer_norm = LayerNorm(embed_dim)
        self.attn_ln = LayerNorm(embed_dim) if args.scale_attn else None
        self._build_ffn(args, embed_dim, args.encoder_ffn_embed_dim, drop_path_rate)

    def forward(self, x: Tensor, padding_mask: Optional[Tensor], attn_bias: Tensor) -> Tensor:
        """x: [T, B, C]; padding_mask: [B, T] or None; attn_bias: [1, H, T, T]. Returns [T, B, C]."""

        def attend(h):
            return self.self_attn(h, h, key_padding_mask=padding_mask, attn_bias=attn_bias)[0]

        x = self._attention_block(x, self.self_attn_layer_norm, self.attn_ln, attend)
        return self._feed_forward(x)


class TransformerDecoderLayer(_LayerBase):
    def __init__(self, args, drop_path_rate: float = 0.0):
        super().__init__()
        embed_dim = args.decoder_embed_dim
        self.normalize_before = args.decoder_normalize_before
        scale_attn = args.scale_attn
        self.self_attn = MultiheadAttention(
            embed_dim,
            args.decoder_attention_heads,
            dropout=args.attention_dropout,
            self_attention=True,
            scale_factor=args.attn_scale_factor,
            scale_heads=args.scale_heads,
        )
        self.self_attn_ln = LayerNorm(embed_dim) if scale_attn else None
        self.cross_attn_ln = LayerNorm(embed_dim) if scale_attn else None
        self.self_attn_layer_norm = LayerNorm(embed_dim)
        self.encoder_attn = MultiheadAttention(
            embed_dim,
            args.decoder_attention_heads,
            dropout=args.attention_dropout,
            scale_factor=args.attn_scale_factor,
            scale_heads=args.scale_heads,
        )
        self.encoder_attn_layer_norm = LayerNorm(embed_dim)
        self._build_ffn(args, embed_dim, args.decoder_ffn_embed_dim, drop_path_rate)

    def forward(
        self,
        x: Tensor,
        encoder_out: Tensor,
        encoder_padding_mask: Optional[Tensor],
        self_attn_bias: Tensor,
        cross_attn_bias: Tensor,
        self_attn_padding_mask: Optional[Tensor] = None,
        incremental_state=None,
        need_attn: bool = False,
    ):
        """x: [T, B, C]; encoder_out: [S, B_src, C] with B = r * B_src (r rows per source);
        biases [1, H, T, T] (causal mask included) and [1, H, T, S].

        Returns (x [T, B, C], cross-attention weights [B, T, S] or None).
        """
        def self_attend(h):
            return self.self_attn(
                h, h,
                key_padding_mask=self_attn_padding_mask,
                attn_bias=self_attn_bias,
                incremental_state=incremental_state,
            )[0]

        cross_weights = []

        def cross_attend(h):
            out, weights = self.encoder_attn(
                h, encoder_out,
                key_padding_mask=encoder_padding_mask,
                attn_bias=cross_attn_bias,
                incremental_state=incremental_state,
                static_kv=True,
                need_weights=need_attn,
            )
            cross_weights.append(weights)
            return out

        x = self._attention_block(x, self.self_attn_layer_norm, self.self_attn_ln, self_attend)
        x = self._attention_block(x, self.encoder_attn_layer_norm, self.cross_attn_ln, cross_attend)
        return self._feed_forward(x), cross_weights[0]

"""OFA decoder for text generation (captions).

Tokens enter without position embeddings; positions act through attention biases: a
self-attention term from `embed_positions` (pos_ln -> self_pos_q/k_linear) plus per-layer 1-D
relative buckets, and a cross-attention term between target positions and the encoder's
`position_embeddings`. Image-code generation (OFA's `code_masks`) is out of scope, but its
parameters (`code_layernorm_embedding`, `image_position_idx`, decoder image tables) are kept so
checkpoints load strictly.

Position biases do not depend on the batch row and are built once per batch ([1, H, ., .]); when
decoding incrementally only the new position's row of each bias is computed, against cached
position keys of the source. Decoder rows may be grouped over encoder rows (`rows_per_source` of the
encoder-out dict): cross-attention keys and values are then projected and cached once per source.
"""
import math
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.models import FairseqIncrementalDecoder
from fairseq.modules import LayerNorm
from torch import Tensor

from ofa_sic.models.grouped_rows import group_rows_by_source
from ofa_sic.models.layers import TransformerDecoderLayer
from ofa_sic.models.position import (
    Embedding,
    absolute_position_bias,
    image_position_ids,
    make_image_bucket_position,
    make_token_bucket_position,
    position_keys,
    position_queries,
    relative_bias,
    relative_tables,
)
from ofa_sic.models.vocabulary_projection import project_onto_vocabulary


def decoder_image_position_idx(code_image_size: int, image_bucket_size: int) -> Tensor:
    """OFA's `image_position_idx` buffer [1026]: 0, the ids of the (code_image_size/8)^2 code grid,
    then 769 entries of 1024."""
    window = code_image_size // 8
    grid = image_position_ids(window, window, image_bucket_size)
    return torch.cat([torch.tensor([0]), grid, torch.tensor([1024] * 769)])


class OFADecoder(FairseqIncrementalDecoder):
    def __init__(self, args, dictionary, embed_tokens: nn.Embedding):
        super().__init__(dictionary)
        self.register_buffer("version", torch.Tensor([3]))
        embed_dim = args.decoder_embed_dim
        if embed_tokens.embedding_dim != embed_dim:
            raise ValueError("decoder embed dim must equal the token embedding dim (OFA shares them)")
        self.dropout = args.dropout
        self.padding_idx = embed_tokens.padding_idx
        self.max_target_positions = args.max_target_positions
        self.num_heads = args.decoder_attention_heads
        self.embed_scale = 1.0 if args.no_scale_embedding else math.sqrt(embed_dim)
        self.embed_tokens = embed_tokens
        self.disable_entangle = args.disable_entangle
        self.layernorm_embedding = LayerNorm(embed_dim) if args.layernorm_embedding else None

        self.embed_positions = Embedding(args.max_target_positions + 2, embed_dim)
        self.embed_image_positions = Embedding(args.image_bucket_size ** 2 + 1, embed_dim)
        self.pos_ln = LayerNorm(embed_dim)
        self.image_pos_ln = LayerNorm(embed_dim)
        self.pos_scaling = float(embed_dim / self.num_heads * args.attn_scale_factor) ** -0.5
        self.self_pos_q_linear = nn.Linear(embed_dim, embed_dim)
        self.self_pos_k_linear = nn.Linear(embed_dim, embed_dim)
        self.cross_pos_q_linear = nn.Linear(embed_dim, embed_dim)
        self.cross_pos_k_linear = nn.Linear(embed_dim, embed_dim)
        self.code_layernorm_embedding = LayerNorm(embed_dim) if args.code_layernorm_embedding else None

        rates = torch.linspace(0, args.decoder_drop_path_rate, args.decoder_layers, device="cpu").tolist()
        self.layers = nn.ModuleList([TransformerDecoderLayer(args, rates[i]) for i in range(args.decoder_layers)])
        self.layer_norm = LayerNorm(embed_dim) if args.decoder_normalize_before else None

        # OFA ties the output projection to the token embedding (one matrix for all three).
        self.output_projection = nn.Linear(embed_dim, len(dictionary), bias=False)
        self.output_projection.weight = self.embed_tokens.weight

        token_buckets = 2 * args.token_bucket_size - 1
        image_buckets = (2 * args.image_bucket_size - 1) ** 2 + 3
        self.token_rel_pos_table_list = relative_tables(args.decoder_layers, token_buckets, self.num_heads)
        self.image_rel_pos_table_list = relative_tables(args.decoder_layers, image_buckets, self.num_heads)
        self.register_buffer("token_rp_bucket", make_token_bucket_position(args.token_bucket_size, args.max_target_positions))
        self.register_buffer("image_rp_bucket", make_image_bucket_position(args.image_bucket_size, image_buckets))
        self.register_buffer(
            "image_position_idx", decoder_image_position_idx(args.code_image_size, args.image_bucket_size)
        )
        self._future_mask = torch.empty(0)

    def token_relative_bias(self, queries: slice, length: int, layer: int) -> Tensor:
        """[H, Q, length] relative bias of prefix positions `queries` to the whole prefix, for one layer."""
        return relative_bias(self.token_rp_bucket[queries, :length], self.token_rel_pos_table_list[layer])

    def future_mask(self, length: int, like: Tensor) -> Tensor:
        """[length, length] additive causal mask (-inf above the diagonal)."""
        if self._future_mask.size(0) < length or self._future_mask.device != like.device:
            self._future_mask = torch.triu(torch.full((length, length), float("-inf")), 1).to(like.device)
        return self._future_mask[:length, :length].to(like.dtype)

    def forward(
        self,
        prev_output_tokens: Tensor,
        encoder_out: Optional[Dict[str, List[Tensor]]] = None,
        incremental_state: Optional[Dict[str, Dict[str, Optional[Tensor]]]] = None,
        features_only: bool = False,
        alignment_layer: Optional[int] = None,
        src_lengths=None,
        return_all_hiddens: bool = False,
        **unused,
    ):
        """prev_output_tokens: [B, T] starting with <s>. With incremental_state the whole prefix is
        passed and only its last position is computed.

        Returns (logits [B, T', V] or features [B, T', C], {"attn": [cross-attn [B, T', S] or None],
        "inner_states": [...]}) with T' = 1 when decoding incrementally.
        """
        x, extra = self.extract_features(prev_output_tokens, encoder_out, incremental_state, alignment_layer)
        if not features_only:
            x = self.output_layer(x)
        return x, extra

    def extract_features(self, prev_output_tokens, encoder_out, incremental_state=None, alignment_layer=None, **unused):
        if encoder_out is None:
            raise ValueError("the OFA decoder needs encoder_out")
        bsz, tgt_len = prev_output_tokens.shape
        if tgt_len > self.max_target_positions:
            raise ValueError(f"target prefix of {tgt_len} tokens exceeds --max-target-positions {self.max_target_positions}")
        enc = encoder_out["encoder_out"][0]
        rows_per_source = encoder_out["rows_per_source"]
        if bsz != enc.size(1) * rows_per_source:
            raise ValueError(f"{bsz} decoder rows do not match {enc.size(1)} encoder rows x {rows_per_source} rows per source")
        enc_padding_mask = encoder_out["encoder_padding_mask"][0] if encoder_out["encoder_padding_mask"] else None
        src_pos = encoder_out["position_embeddings"][0][0]  # [S, C], the same for every row

        raw_pos = self.embed_positions(torch.arange(tgt_len, device=prev_output_tokens.device))  # [T, C]
        tgt_pos = self.pos_ln(raw_pos)
        incremental = incremental_state is not None
        queries = slice(tgt_len - 1, tgt_len) if incremental else slice(0, tgt_len)
        self_abs_bias = absolute_position_bias(
            self.self_pos_q_linear, self.self_pos_k_linear, tgt_pos[queries], tgt_pos, self.num_heads, self.pos_scaling
        )  # [1, H, T', T]
        if incremental:
            self.set_incremental_state(incremental_state, "rows", {"rows_per_source": rows_per_source})
        else:
            self_abs_bias = self_abs_bias + self.future_mask(tgt_len, self_abs_bias)
        cross_bias = self.cross_position_bias(tgt_pos[queries], src_pos, incremental_state)  # [1, H, T', S]

        tokens = prev_output_tokens[:, queries]
        x = self.embed_scale * self.embed_tokens(tokens)
        if not self.disable_entangle:
            # OFA-main adds absolute positions to the tokens unless --disable-entangle is given
            # (every released checkpoint was trained with it).
            x = x + raw_pos[queries].unsqueeze(0)
        if self.layernorm_embedding is not None:
            x = self.layernorm_embedding(x)
        x = F.dropout(x, p=self.dropout, training=self.training)
        x = x.transpose(0, 1)

        self_padding_mask = tokens.eq(self.padding_idx)
        if not self_padding_mask.any():
            self_padding_mask = None

        attn = None
        inner_states = [x]
        for idx, layer in enumerate(self.layers):
            self_bias = self_abs_bias + self.token_relative_bias(queries, tgt_len, idx).unsqueeze(0)
            x, layer_attn = layer(
                x,
                enc,
                enc_padding_mask,
                self_attn_bias=self_bias,
                cross_attn_bias=cross_bias,
                self_attn_padding_mask=self_padding_mask,
                incremental_state=incremental_state,
                need_attn=idx == alignment_layer,
            )
            inner_states.append(x)
            if layer_attn is not None:
                attn = layer_attn.float().to(x)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return x.transpose(0, 1), {"attn": [attn], "inner_states": inner_states}

    def cross_position_bias(self, query_pos: Tensor, src_pos: Tensor, incremental_state) -> Tensor:
        """Bias [1, H, T', S] between target positions query_pos [T', C] and source positions src_pos [S, C].

        When decoding incrementally the projected source positions are computed once and cached.
        """
        keys = None
        if incremental_state is not None:
            cached = self.get_incremental_state(incremental_state, "cross_position_keys")
            keys = None if cached is None else cached["keys"]
        if keys is None:
            keys = position_keys(self.cross_pos_k_linear, src_pos, self.num_heads)
            if incremental_state is not None:
                self.set_incremental_state(incremental_state, "cross_position_keys", {"keys": keys})
        queries = position_queries(self.cross_pos_q_linear, query_pos, self.num_heads, self.pos_scaling)
        return torch.matmul(queries, keys.transpose(2, 3))

    def reorder_incremental_state_scripting(self, incremental_state, new_order: Tensor):
        """Select decoder rows `new_order` [B'] of the caches for beam search.

        Self-attention caches are selected row by row; the per-source cross-attention caches only
        when the set or order of sources changes (a sentence finished), never for reorders of the
        hypotheses within a sentence.
        """
        rows = self.get_incremental_state(incremental_state, "rows")
        if rows is None:
            return
        cross_cache = self.layers[0].encoder_attn._get_input_buffer(incremental_state)
        num_sources = cross_cache["prev_key"].size(0)
        sources, rows_per_source = group_rows_by_source(new_order, rows["rows_per_source"], num_sources)
        for layer in self.layers:
            layer.self_attn.reorder_incremental_state(incremental_state, new_order)
            if sources is not None:
                layer.encoder_attn.reorder_incremental_state(incremental_state, sources)
        self.set_incremental_state(incremental_state, "rows", {"rows_per_source": rows_per_source})

    def output_layer(self, features: Tensor) -> Tensor:
        """features [..., C] -> logits [..., V] (the gradient of the tied embedding is summed in place,
        see `vocabulary_projection`)."""
        return project_onto_vocabulary(features, self.output_projection.weight)

    def max_positions(self):
        return self.max_target_positions

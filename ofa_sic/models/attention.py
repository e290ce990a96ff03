"""Multi-head attention of OFA: additive position bias, scaled queries and per-head output scales.

Differences from a textbook attention, all needed for OFA checkpoints and numerics:
- queries are scaled by (head_dim * scale_factor) ** -0.5 (scale_factor 2 in OFA);
- an additive bias `attn_bias` [B*H, T_q, T_k] (absolute + relative position terms) is added to
  the logits before masking;
- with `--scale-heads` each head's output is multiplied by a learned scalar `c_attn` [H] before
  `out_proj` (NormFormer).
Incremental decoding caches keys and values in fairseq's incremental state.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.incremental_decoding_utils import with_incremental_state
from torch import Tensor


@with_incremental_state
class MultiheadAttention(nn.Module):
    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        self_attention: bool = False,
        scale_factor: float = 2.0,
        scale_heads: bool = False,
    ):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scaling = float(self.head_dim * scale_factor) ** -0.5
        self.self_attention = self_attention
        self.dropout = dropout
        self.c_attn = nn.Parameter(torch.ones(num_heads)) if scale_heads else None
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        gain = 1 / 2 ** 0.5
        for proj in (self.k_proj, self.v_proj, self.q_proj):
            nn.init.xavier_uniform_(proj.weight, gain=gain)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.constant_(self.out_proj.bias, 0.0)

    def _split_heads(self, x: Tensor, bsz: int) -> Tensor:
        """[T, B, C] -> [B*H, T, head_dim]."""
        return x.contiguous().view(-1, bsz * self.num_heads, self.head_dim).transpose(0, 1)

    def forward(
        self,
        query: Tensor,
        key: Optional[Tensor],
        key_padding_mask: Optional[Tensor] = None,
        attn_bias: Optional[Tensor] = None,
        attn_mask: Optional[Tensor] = None,
        incremental_state: Optional[Dict[str, Dict[str, Optional[Tensor]]]] = None,
        static_kv: bool = False,
        need_weights: bool = False,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Attend from `query` [T_q, B, C] to `key` [T_k, B, C] (key=query for self-attention).

        key_padding_mask: [B, T_k] bool, True at padding. attn_bias: [B*H, T_q, T_k] additive.
        attn_mask: [T_q, T_k] additive (e.g. the causal -inf mask).
        With incremental_state, self-attention appends this step's key/value to the cache and
        encoder attention (static_kv) computes them once. Returns ([T_q, B, C], weights or None),
        weights being [B, T_q, T_k] averaged over heads.
        """
        tgt_len, bsz, _ = query.shape
        saved = self._get_input_buffer(incremental_state) if incremental_state is not None else None
        q = self._split_heads(self.q_proj(query) * self.scaling, bsz)
        if saved is not None and static_kv and "prev_key" in saved:
            k = saved["prev_key"]
            v = saved["prev_value"]
            key_padding_mask = saved["prev_key_padding_mask"]
        else:
            k = self._split_heads(self.k_proj(key), bsz)
            v = self._split_heads(self.v_proj(key), bsz)
            if saved is not None and "prev_key" in saved:  # incremental self-attention
                k = torch.cat([saved["prev_key"], k], dim=1)
                v = torch.cat([saved["prev_value"], v], dim=1)
                key_padding_mask = self._extend_padding_mask(
                    saved.get("prev_key_padding_mask"), key_padding_mask, bsz, k.size(1)
                )
        if incremental_state is not None:
            self._set_input_buffer(
                incremental_state,
                {"prev_key": k, "prev_value": v, "prev_key_padding_mask": key_padding_mask},
            )
        src_len = k.size(1)
        weights = torch.bmm(q, k.transpose(1, 2))  # [B*H, T_q, T_k]
        if attn_bias is not None:
            weights = weights + attn_bias
        if attn_mask is not None:
            weights = weights + attn_mask.unsqueeze(0)
        if key_padding_mask is not None:
            weights = weights.view(bsz, self.num_heads, tgt_len, src_len)
            weights = weights.masked_fill(key_padding_mask[:, None, None, :].to(torch.bool), float("-inf"))
            weights = weights.view(bsz * self.num_heads, tgt_len, src_len)
        probs_float = F.softmax(weights.float(), dim=-1)
        probs = F.dropout(probs_float.type_as(weights), p=self.dropout, training=self.training)
        attn = torch.bmm(probs, v)  # [B*H, T_q, head_dim]
        attn = attn.transpose(0, 1).contiguous().view(tgt_len, bsz, self.num_heads, self.head_dim)
        if self.c_attn is not None:
            attn = attn * self.c_attn.view(1, 1, -1, 1)
        attn = self.out_proj(attn.reshape(tgt_len, bsz, self.embed_dim))
        avg_weights = None
        if need_weights:
            avg_weights = probs_float.view(bsz, self.num_heads, tgt_len, src_len).mean(dim=1)
        return attn, avg_weights

    @staticmethod
    def _extend_padding_mask(prev: Optional[Tensor], new: Optional[Tensor], bsz: int, src_len: int) -> Optional[Tensor]:
        """Padding mask [B, src_len] of the cached keys followed by this step's keys."""
        if prev is None and new is None:
            return None
        if prev is None:
            prev = new.new_zeros(bsz, src_len - new.size(1))
        if new is None:
            new = prev.new_zeros(bsz, src_len - prev.size(1))
        return torch.cat([prev.to(torch.bool), new.to(torch.bool)], dim=1)

    def reorder_incremental_state(self, incremental_state: Dict[str, Dict[str, Optional[Tensor]]], new_order: Tensor):
        """Reorder cached keys/values (batch rows) for beam search; new_order: [B'] indices."""
        saved = self._get_input_buffer(incremental_state)
        if saved is None:
            return incremental_state
        for name, value in saved.items():
            if value is None:
                continue
            if name == "prev_key_padding_mask":
                saved[name] = value.index_select(0, new_order)
            else:
                # [B*H, T, D] -> select whole batch rows
                value = value.view(-1, self.num_heads, value.size(1), value.size(2))
                saved[name] = value.index_select(0, new_order).view(-1, value.size(2), value.size(3))
        return self._set_input_buffer(incremental_state, saved)

    def _get_input_buffer(self, incremental_state) -> Dict[str, Optional[Tensor]]:
        result = self.get_incremental_state(incremental_state, "attn_state")
        return {} if result is None else result

    def _set_input_buffer(self, incremental_state, buffer: Dict[str, Optional[Tensor]]):
        return self.set_incremental_state(incremental_state, "attn_state", buffer)

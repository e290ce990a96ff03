"""Multi-head attention of OFA: additive position bias, scaled queries and per-head output scales.

Differences from a textbook attention, all needed for OFA checkpoints and numerics:
- queries are scaled by (head_dim * scale_factor) ** -0.5 (scale_factor 2 in OFA);
- an additive float bias `attn_bias` [1 or B_k, H, T_q, T_k] (absolute + relative position terms,
  and the causal mask in decoder self-attention) is added to the logits, then key padding is masked;
- with `--scale-heads` each head's output is multiplied by a learned scalar `c_attn` [H] before
  `out_proj` (NormFormer).

Unless the attention weights are asked for, the product runs in
`torch.nn.functional.scaled_dot_product_attention` with the bias as a float `attn_mask`; the bias
keeps its gradient (to the relative-position tables and the position projections). Backends that
take such a bias: on CUDA the memory-efficient kernel (bias with gradient, dropout) and the math
fallback; flash attention takes no bias and is never chosen. On CPU the fused (flash) kernel takes
a bias without gradient and no dropout (inference, generation); training falls back to the math
kernel, which supports both.

Query rows may be grouped over key rows: with B_q = r * B_k, query rows r*i .. r*i + r-1 attend to
key row i (beam hypotheses or SCST samples of one image attend to that image's encoder output,
which is projected and cached once per image instead of once per row).
Incremental decoding caches keys and values [B_k, H, T, head_dim] in fairseq's incremental state.
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

    def _split_heads(self, x: Tensor) -> Tensor:
        """[T, B, C] -> [B, H, T, head_dim]."""
        length, bsz, _ = x.shape
        return x.view(length, bsz, self.num_heads, self.head_dim).permute(1, 2, 0, 3)

    def forward(
        self,
        query: Tensor,
        key: Optional[Tensor],
        key_padding_mask: Optional[Tensor] = None,
        attn_bias: Optional[Tensor] = None,
        incremental_state: Optional[Dict[str, Dict[str, Optional[Tensor]]]] = None,
        static_kv: bool = False,
        need_weights: bool = False,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Attend from `query` [T_q, B_q, C] to `key` [T_k, B_k, C] (key=query for self-attention).

        B_q must be a multiple r of B_k (see the module docstring). key_padding_mask: [B_k, T_k]
        bool, True at padding. attn_bias: additive, [1 or B_k, H, T_q, T_k].
        With incremental_state, self-attention appends this step's key/value to the cache and
        encoder attention (static_kv) computes them once. Returns ([T_q, B_q, C], weights or None),
        weights being [B_q, T_q, T_k] averaged over heads.
        """
        tgt_len, query_rows, _ = query.shape
        saved = self._get_input_buffer(incremental_state) if incremental_state is not None else None
        if saved is not None and static_kv and "prev_key" in saved:
            k, v = saved["prev_key"], saved["prev_value"]
            key_padding_mask = saved["prev_key_padding_mask"]
        else:
            k = self._split_heads(self.k_proj(key))
            v = self._split_heads(self.v_proj(key))
            if saved is not None and "prev_key" in saved:  # incremental self-attention
                k = torch.cat([saved["prev_key"], k], dim=2)
                v = torch.cat([saved["prev_value"], v], dim=2)
                key_padding_mask = self._extend_padding_mask(
                    saved.get("prev_key_padding_mask"), key_padding_mask, k.size(0), k.size(2)
                )
        if incremental_state is not None:
            self._set_input_buffer(
                incremental_state,
                {"prev_key": k, "prev_value": v, "prev_key_padding_mask": key_padding_mask},
            )
        key_rows, src_len = k.size(0), k.size(2)
        if query_rows % key_rows != 0:
            raise ValueError(f"{query_rows} query rows cannot be grouped over {key_rows} key rows")
        rows_per_key = query_rows // key_rows
        q = self.q_proj(query) * self.scaling
        # [T_q, B_k * r, C] -> [B_k, H, r * T_q, head_dim]: the r query rows of a key row side by side
        q = q.view(tgt_len, key_rows, rows_per_key, self.num_heads, self.head_dim)
        q = q.permute(1, 3, 2, 0, 4).reshape(key_rows, self.num_heads, rows_per_key * tgt_len, self.head_dim)
        mask = self._logit_mask(attn_bias, key_padding_mask, rows_per_key, q.dtype)
        dropout = self.dropout if self.training else 0.0
        if need_weights:
            scores = torch.matmul(q, k.transpose(2, 3))
            if mask is not None:
                scores = scores + mask
            probs_float = F.softmax(scores.float(), dim=-1)
            attn = torch.matmul(F.dropout(probs_float.type_as(scores), p=dropout, training=self.training), v)
        else:
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=1.0)
        if self.c_attn is not None:
            attn = attn * self.c_attn.view(1, -1, 1, 1).to(attn.dtype)
        # [B_k, H, r * T_q, head_dim] -> [T_q, B_q, C]
        attn = attn.view(key_rows, self.num_heads, rows_per_key, tgt_len, self.head_dim).permute(3, 0, 2, 1, 4)
        attn = self.out_proj(attn.reshape(tgt_len, query_rows, self.embed_dim))
        avg_weights = None
        if need_weights:
            avg_weights = probs_float.mean(dim=1).view(query_rows, tgt_len, src_len)
        return attn, avg_weights

    def _logit_mask(self, attn_bias: Optional[Tensor], key_padding_mask: Optional[Tensor],
                    rows_per_key: int, dtype: torch.dtype) -> Optional[Tensor]:
        """Bias [b, H, T_q, T_k] repeated for the r query rows of a key row, plus -inf at padded keys:
        [b or B_k, H, r * T_q, T_k] in the logits' dtype (None when there is neither)."""
        mask = attn_bias
        if mask is not None and rows_per_key > 1:
            b, heads, tgt_len, src_len = mask.shape
            mask = mask.unsqueeze(2).expand(b, heads, rows_per_key, tgt_len, src_len)
            mask = mask.reshape(b, heads, rows_per_key * tgt_len, src_len)
        if key_padding_mask is not None:
            padding = torch.zeros(key_padding_mask.shape, dtype=dtype, device=key_padding_mask.device)
            padding = padding.masked_fill(key_padding_mask.to(torch.bool), float("-inf"))[:, None, None, :]
            mask = padding if mask is None else mask + padding
        return None if mask is None else mask.to(dtype)

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
        """Select cached rows `new_order` [B'] (indices into the cached key rows)."""
        saved = self._get_input_buffer(incremental_state)
        if saved is None or "prev_key" not in saved:
            return incremental_state
        for name, value in saved.items():
            if value is not None:
                saved[name] = value.index_select(0, new_order)
        return self._set_input_buffer(incremental_state, saved)

    def _get_input_buffer(self, incremental_state) -> Dict[str, Optional[Tensor]]:
        result = self.get_incremental_state(incremental_state, "attn_state")
        return {} if result is None else result

    def _set_input_buffer(self, incremental_state, buffer: Dict[str, Optional[Tensor]]):
        return self.set_incremental_state(incremental_state, "attn_state", buffer)

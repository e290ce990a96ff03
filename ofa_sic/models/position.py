"""Model helpers that OFA's encoder and decoder share: embeddings, bucket tables, position biases.

The relative-position bucket tables are registered as buffers in the encoder and decoder and saved
in OFA checkpoints, so their values must equal OFA-main's bit for bit. Positions enter the model
only as attention biases (an absolute term from projected position embeddings plus per-layer
relative terms); none depends on the batch row, so each is built once per batch with a leading
batch dimension of 1 that broadcasts over the rows.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def make_token_bucket_position(bucket_size: int, max_position: int = 1024) -> torch.Tensor:
    """Bucket index of every (query, key) offset of a 1-D sequence.

    Offsets with |d| < bucket_size/2 keep their own bucket; longer ones share log-spaced buckets.
    Returns a LongTensor [max_position, max_position] with values in [0, 2*bucket_size-2].
    """
    query = torch.arange(max_position, dtype=torch.long)[:, None]
    key = torch.arange(max_position, dtype=torch.long)[None, :]
    offset = query - key
    sign = torch.sign(offset)
    half = bucket_size // 2
    near = (offset < half) & (offset > -half)
    magnitude = torch.where(near, torch.full_like(offset, half - 1), offset.abs())
    log_bucket = torch.ceil(
        torch.log(magnitude / half) / math.log((max_position - 1) / half) * (half - 1)
    ) + half
    bucket = torch.where(magnitude.le(half), offset, log_bucket.int() * sign).long()
    return bucket + bucket_size - 1


def make_image_bucket_position(bucket_size: int, num_relative_distance: int) -> torch.Tensor:
    """Bucket index of every pair of image positions on a bucket_size x bucket_size grid.

    Position id 0 is reserved (a "class" slot); grid cell (r, c) has id r*bucket_size + c + 1.
    Returns a LongTensor [bucket_size**2 + 1, bucket_size**2 + 1]; the reserved row, column and
    corner use the last three buckets, as in BEiT.
    """
    rows, cols = torch.meshgrid(torch.arange(bucket_size), torch.arange(bucket_size), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])  # [2, N]
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # [N, N, 2]
    relative = relative + (bucket_size - 1)
    index = relative[:, :, 0] * (2 * bucket_size - 1) + relative[:, :, 1]
    size = bucket_size * bucket_size + 1
    table = torch.zeros(size, size, dtype=torch.long)
    table[1:, 1:] = index
    table[0, 0:] = num_relative_distance - 3
    table[0:, 0] = num_relative_distance - 2
    table[0, 0] = num_relative_distance - 1
    return table


def image_position_ids(height: int, width: int, bucket_size: int) -> torch.Tensor:
    """Position ids (row*bucket_size + col + 1) of an height x width patch grid, flattened [h*w]."""
    cols = torch.arange(width).unsqueeze(0).expand(height, width)
    rows = torch.arange(height).unsqueeze(1) * bucket_size
    return (cols + rows + 1).reshape(-1)


def Embedding(num_embeddings: int, embedding_dim: int, padding_idx: Optional[int] = None) -> nn.Embedding:
    """nn.Embedding initialised normal(0, dim**-0.5) as in OFA (overwritten when weights load)."""
    m = nn.Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx)
    nn.init.normal_(m.weight, mean=0, std=embedding_dim ** -0.5)
    if padding_idx is not None:
        nn.init.constant_(m.weight[padding_idx], 0)
    return m


def relative_tables(num_layers: int, num_buckets: int, num_heads: int) -> nn.ModuleList:
    """One [num_buckets, num_heads] relative-bias table per layer."""
    return nn.ModuleList([Embedding(num_buckets, num_heads) for _ in range(num_layers)])


def relative_bias(buckets: Tensor, table: nn.Embedding) -> Tensor:
    """Per-head bias of relative-position `buckets` [Q, K] from a [num_buckets, H] table: [H, Q, K]."""
    return F.embedding(buckets, table.weight).permute(2, 0, 1)


def absolute_position_bias(q_linear: nn.Linear, k_linear: nn.Linear, query_pos: Tensor, key_pos: Tensor,
                           num_heads: int, scaling: float) -> Tensor:
    """(q_linear(query_pos) * scaling) @ k_linear(key_pos)^T per head.

    Positions do not depend on the batch row, so one bias serves the whole batch.
    query_pos: [T_q, C], key_pos: [T_k, C] -> [1, H, T_q, T_k].
    """
    return torch.matmul(position_queries(q_linear, query_pos, num_heads, scaling),
                        position_keys(k_linear, key_pos, num_heads).transpose(2, 3))


def position_queries(q_linear: nn.Linear, pos: Tensor, num_heads: int, scaling: float) -> Tensor:
    """Scaled per-head queries of positions pos [T, C]: [1, H, T, C/H]."""
    return (q_linear(pos).view(1, pos.size(0), num_heads, -1).transpose(1, 2) * scaling)


def position_keys(k_linear: nn.Linear, pos: Tensor, num_heads: int) -> Tensor:
    """Per-head keys of positions pos [T, C]: [1, H, T, C/H]."""
    return k_linear(pos).view(1, pos.size(0), num_heads, -1).transpose(1, 2)

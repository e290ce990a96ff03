"""Relative-position bucket tables of OFA (token and 2-D image buckets).

Both tables are registered as buffers in the encoder and decoder and saved in OFA checkpoints,
so their values must equal OFA-main's bit for bit.
"""
import math

import torch


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

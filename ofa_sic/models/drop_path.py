"""Stochastic depth: drop a whole residual branch per sample during training."""
import torch
import torch.nn as nn


class DropPath(nn.Module):
    """Zero the residual branch of a random share `drop_prob` of samples, rescaling the rest.

    `batch_dim` is where the samples are: 0 for [B, C, H, W] images, 1 for [T, B, C] sequences.
    """

    def __init__(self, drop_prob: float, batch_dim: int = 0):
        super().__init__()
        self.drop_prob = drop_prob
        self.batch_dim = batch_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep_prob = 1.0 - self.drop_prob
        shape = [1] * x.dim()
        shape[self.batch_dim] = x.shape[self.batch_dim]
        keep = torch.floor(keep_prob + torch.rand(shape, dtype=x.dtype, device=x.device))
        return x.div(keep_prob) * keep

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"

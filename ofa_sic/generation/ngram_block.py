"""`no_repeat_ngram_size` that works on every device (fairseq's CPU fallback blocks nothing)."""
import torch
from torch import Tensor


class NGramRepeatBlocker(torch.nn.Module):
    """Forbid any token that would complete an n-gram already present in the hypothesis.

    Same rule as fairseq's CUDA kernel: with prefix t_0..t_s (t_0 = the start token), a token x is
    banned at step s when (t_{s-n+2}, ..., t_s, x) equals some (t_i, ..., t_{i+n-1}) of the prefix.
    """

    def __init__(self, ngram_size: int):
        super().__init__()
        if ngram_size < 1:
            raise ValueError(f"no_repeat_ngram_size must be >= 1, got {ngram_size}")
        self.ngram_size = ngram_size

    def forward(self, tokens: Tensor, lprobs: Tensor, bsz: int, beam_size: int, step: int) -> Tensor:
        """tokens: [bsz*beam, >= step+1] (positions 0..step are filled); lprobs: [bsz*beam, V], updated in place."""
        n = self.ngram_size
        prefix = tokens[:, : step + 1]
        if prefix.size(1) < n:
            return lprobs
        ngrams = prefix.unfold(1, n, 1)  # [rows, num_ngrams, n]
        if n == 1:
            rows, cols = torch.nonzero(torch.ones(ngrams.shape[:2], dtype=torch.bool, device=tokens.device), as_tuple=True)
        else:
            current = prefix[:, prefix.size(1) - (n - 1):]  # [rows, n-1]
            matches = (ngrams[:, :, : n - 1] == current[:, None, :]).all(dim=-1)  # [rows, num_ngrams]
            rows, cols = torch.nonzero(matches, as_tuple=True)
        if rows.numel():
            lprobs[rows, ngrams[rows, cols, n - 1]] = float("-inf")
        return lprobs

"""The decoder's output projection onto the vocabulary, logits = features @ weight^T, with a weight
gradient that autograd can add up in place.

OFA ties one [V, C] matrix to three uses: the encoder's and the decoder's token embeddings and the
output projection. Autograd sums the three [V, C] gradients of that matrix before storing it. The
gradient `F.linear` gives its weight is a transposed view of the product, which autograd will not
add into, so the sum allocates a third [V, C] tensor at the peak of the backward pass (174 MB at
ofa_base, 59,457 x 768 in fp32). Here the weight gradient is the same product, grad^T @ features,
returned as a plain [V, C] tensor, and the sum happens in place.

The arithmetic is `F.linear`'s, forward and backward, under autocast too: the inputs are cast to
the autocast dtype as autocast would cast them for `F.linear`, and the gradients are cast back to
the inputs' dtypes.
"""
import torch
import torch.nn.functional as F
from torch import Tensor


def autocast_dtype(tensor: Tensor) -> torch.dtype:
    """The dtype `F.linear` computes in for inputs like `tensor`: autocast's when it is on for the
    tensor's device, else the tensor's own."""
    device = tensor.device.type
    if torch.is_autocast_enabled(device) and tensor.is_floating_point():
        return torch.get_autocast_dtype(device)
    return tensor.dtype


class _VocabularyProjection(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: Tensor, weight: Tensor) -> Tensor:
        dtype = autocast_dtype(features)
        cast_features, cast_weight = features.to(dtype), weight.to(dtype)
        ctx.save_for_backward(cast_features, cast_weight)
        ctx.dtypes = (features.dtype, weight.dtype)
        return F.linear(cast_features, cast_weight)

    @staticmethod
    def backward(ctx, grad: Tensor):
        features, weight = ctx.saved_tensors
        features_dtype, weight_dtype = ctx.dtypes
        grad_features = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_features = grad.matmul(weight).to(features_dtype)
        if ctx.needs_input_grad[1]:
            flat_grad = grad.reshape(-1, grad.size(-1))  # [N, V]
            flat_features = features.reshape(-1, features.size(-1))  # [N, C]
            grad_weight = flat_grad.t().mm(flat_features).to(weight_dtype)  # [V, C], contiguous
        return grad_features, grad_weight


def project_onto_vocabulary(features: Tensor, weight: Tensor) -> Tensor:
    """features [..., C], weight [V, C] -> logits [..., V] (= F.linear(features, weight))."""
    return _VocabularyProjection.apply(features, weight)

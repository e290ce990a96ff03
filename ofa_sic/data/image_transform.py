"""OFA's caption image transform, without torchvision (docs/ofa-spec.md §4).

RGB (`ofa_sic.data.images.to_rgb`) -> square bicubic resize to S x S (aspect ratio not kept) -> [0, 1] -> (x - mean) / std,
with mean = std = 0.5, or ImageNet's statistics with `--imagenet-default-mean-and-std`.
The data loader stops after the resize: images cross it (collate, pinning, host-to-device copy)
as uint8, and `ImageNormalizer` maps them to [0, 1] and (x - mean) / std on the model's device.
"""
import numpy as np
import torch
from PIL import Image

from ofa_sic.data.images import to_rgb

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


class CaptionImageTransform:
    """PIL image (any mode; see `ofa_sic.data.images.to_rgb`) -> uint8 tensor [3, S, S] (RGB, resized;
    `ImageNormalizer` does the rest)."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = to_rgb(image).resize((self.size, self.size), Image.BICUBIC)
        return torch.from_numpy(np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)))


class ImageNormalizer:
    """uint8 images [B, 3, S, S] -> (x / 255 - mean) / std [B, 3, S, S] in a given float dtype.

    Computed in fp32 as x * (1 / (255 std)) + (-mean / std), then cast; rows whose patch mask is
    False (text-only examples) become zeros, as OFA feeds them.
    """

    def __init__(self, imagenet_mean_and_std: bool = False):
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if imagenet_mean_and_std else (HALF, HALF)
        std32 = np.asarray(std, dtype=np.float32)
        self.scale = torch.from_numpy((1.0 / (255.0 * std32)).reshape(1, 3, 1, 1))
        self.shift = torch.from_numpy((-np.asarray(mean, dtype=np.float32) / std32).reshape(1, 3, 1, 1))

    def __call__(self, images: torch.Tensor, patch_masks: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"ImageNormalizer expects uint8 images, got {images.dtype}")
        scale, shift = self.scale.to(images.device), self.shift.to(images.device)
        normalised = images.float() * scale + shift
        normalised = normalised * patch_masks.to(normalised.dtype).view(-1, 1, 1, 1)
        return normalised.to(dtype)

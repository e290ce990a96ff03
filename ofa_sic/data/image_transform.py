"""OFA's caption image transform, without torchvision (docs/ofa-spec.md §4).

RGB (`ofa_sic.data.images.to_rgb`) -> square bicubic resize to S x S (aspect ratio not kept) -> [0, 1] -> (x - mean) / std,
with mean = std = 0.5, or ImageNet's statistics with `--imagenet-default-mean-and-std`.
"""
import base64
import io

import numpy as np
import torch
from PIL import Image

from ofa_sic.data.images import ImageDecodeError, decode_image, to_rgb

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


def decode_base64_image(data: str) -> Image.Image:
    """Decode the base64 image column of a TSV row (url-safe alphabet, as OFA) into an upright RGB image."""
    try:
        payload = base64.urlsafe_b64decode(data)
    except ValueError as error:
        raise ImageDecodeError(f"cannot decode image: not base64 ({error})") from None
    return decode_image(io.BytesIO(payload))


class CaptionImageTransform:
    """PIL image (any mode; see `ofa_sic.data.images.to_rgb`) -> float tensor [3, S, S]."""

    def __init__(self, size: int, imagenet_mean_and_std: bool = False):
        self.size = size
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if imagenet_mean_and_std else (HALF, HALF)
        # (x / 255 - mean) / std == x * scale + shift, per channel
        self.scale = (1.0 / (255.0 * np.asarray(std, dtype=np.float32))).reshape(3, 1, 1)
        self.shift = (-np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)).reshape(3, 1, 1)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = to_rgb(image).resize((self.size, self.size), Image.BICUBIC)
        array = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)  # [3, S, S], 0..255
        return torch.from_numpy(np.ascontiguousarray(array * self.scale + self.shift))

"""Image files -> the upright 8-bit RGB picture a person sees: one decoder for the converters, the datasets
(`decode_base64_image`, the image column of a prepared TSV), `ofa-sic caption` and `ofa-sic serve`.

Pillow's `convert("RGB")` alone gets some images wrong; `to_rgb` fixes these:
- EXIF orientation (phone photos stored sideways) is applied, as image viewers do;
- 16-bit and 32-bit integer grayscale (modes I;16, I;16B, I;16L, I, as Pillow opens 16-bit PNG and
  TIFF) is scaled from 0..65535 to 0..255 (`convert` clips it, so such images came out almost white);
- float grayscale (mode F) is taken as 0..1 and scaled to 0..255;
- images with an alpha channel or a transparent palette colour are composited over white (`convert`
  drops the alpha and shows what the transparent pixels happen to hold, often black);
- every other mode (L, P, 1, CMYK, YCbCr, ...) goes through Pillow's `convert("RGB")`.
"""
import base64
import io
from typing import Optional

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

EXIF_ORIENTATION = 0x0112
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class ImageDecodeError(ValueError):
    """Image bytes that Pillow cannot decode (truncated, corrupt)."""


class NotAnImageError(ImageDecodeError):
    """Bytes in no image format Pillow knows."""


class ImageTooLargeError(ImageDecodeError):
    """An image whose header states more pixels than allowed (a decompression bomb), refused undecoded."""


def _scaled_to_8_bit(image: Image.Image) -> Image.Image:
    """A grayscale image of mode I;16*/I (0..65535) or F (0..1) as mode L (0..255), rounded."""
    values = np.asarray(image, dtype=np.float64)
    full_scale = 1.0 if image.mode == "F" else 65535.0
    return Image.fromarray(np.clip(np.rint(values * (255.0 / full_scale)), 0, 255).astype(np.uint8), "L")


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` upright (EXIF orientation applied) in mode RGB with 8-bit values (see the module docstring)."""
    if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
        return _scaled_to_8_bit(image).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(source, max_pixels: Optional[int] = None) -> Image.Image:
    """The image in `source` (a path or a binary file object), fully decoded, through `to_rgb`.

    With `max_pixels`, an image whose header states more pixels (width x height) is refused with
    ImageTooLargeError before its pixels are decoded. Raises FileNotFoundError / PermissionError /
    IsADirectoryError for a path that cannot be read, NotAnImageError for bytes in no format Pillow knows
    and ImageDecodeError for image bytes Pillow cannot decode.
    """
    try:
        with Image.open(source) as image:  # reads the header only
            if max_pixels is not None and image.width * image.height > max_pixels:
                raise ImageTooLargeError(f"the image is {image.width}x{image.height} = {image.width * image.height} "
                                         f"pixels, over the limit of {max_pixels}")
            image.load()
            rgb = to_rgb(image)
            return image.copy() if rgb is image else rgb  # leaving the block closes `image`
    except (FileNotFoundError, PermissionError, IsADirectoryError, ImageTooLargeError):
        raise
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"the image is over Pillow's decompression bomb limit: {error}") from None
    except UnidentifiedImageError:
        raise NotAnImageError("not an image: no format Pillow reads (JPEG, PNG, WebP, GIF, BMP, TIFF, ...)") from None
    except Exception as error:  # Pillow raises many types for bad bytes
        raise ImageDecodeError(f"cannot decode image: {type(error).__name__}: {error}") from None


def decode_base64_image(data: str) -> Image.Image:
    """Decode the base64 image column of a TSV row (url-safe alphabet, as OFA) into an upright RGB image."""
    try:
        payload = base64.urlsafe_b64decode(data)
    except ValueError as error:
        raise ImageDecodeError(f"cannot decode image: not base64 ({error})") from None
    return decode_image(io.BytesIO(payload))

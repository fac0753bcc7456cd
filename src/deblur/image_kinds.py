"""The kinds of image a Python caller hands over, turned into photos and back into the same kind.

- a path: read with its EXIF, ICC, bit depth and alpha; comes back as a PIL image carrying EXIF and ICC
  in `info` (16-bit colour comes back as 8-bit: PIL has no 16-bit RGB; write with `output=` to keep it);
- a PIL image (L, LA, RGB, RGBA, I;16, I, F; palette and other modes are converted to RGB/RGBA);
- a numpy array H x W or H x W x C (C = 1, 3 or 4) of uint8, uint16 or float in [0, 1];
- a torch tensor C x H x W or N x C x H x W (C = 1, 3 or 4), uint8 or float in [0, 1], on any device.
A fourth channel is alpha: it passes through untouched, like the CLI's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from deblur.errors import UsageError
from deblur.imageio import Photo, alpha_at, quantize, read_photo, write_photo

KINDS = ("a path, a PIL image, a numpy array (H x W x C) or a torch tensor (C x H x W or N x C x H x W)")


@dataclass
class Converted:
    """The caller's image as photos, and how to give restored photos back in the caller's kind."""

    photos: list
    back: Callable[[list], Any]

    def images(self) -> list[np.ndarray]:
        return [photo.pixels for photo in self.photos]

    def apply(self, restore: Callable[[np.ndarray], np.ndarray], output=None, overwrite: bool = False):
        """Restore every photo's pixels; return the caller's kind, or write `output` and return its path."""
        restored = [replace(photo, pixels=restore(photo.pixels)) for photo in self.photos]
        if output is None:
            return self.back(restored)
        if len(restored) != 1:
            raise UsageError(f"output= writes one image, and this batch holds {len(restored)}; restore them "
                             "without output= and save each")
        write_photo(restored[0], output, overwrite=overwrite)
        return Path(output)


def convert(image: Any) -> Converted:
    if isinstance(image, (str, os.PathLike)):
        photo = read_photo(image)
        return Converted([photo], lambda photos: photo_to_pil(photos[0]))
    if isinstance(image, Image.Image):
        return _from_pil(image)
    if isinstance(image, np.ndarray):
        return _from_array(image)
    if _is_tensor(image):
        return _from_tensor(image)
    raise UsageError(f"restore takes {KINDS}; got {type(image).__name__}")


def photo_to_pil(photo: Photo):
    """A PIL image of the photo (8-bit, or I;16 for 16-bit gray) with EXIF and ICC in `info`."""
    if photo.is_gray and photo.bit_depth == 16 and photo.alpha is None:
        image = Image.fromarray(quantize(photo.pixels[..., 0], 16))
    else:
        data = quantize(photo.pixels, 8)
        if photo.alpha is not None:
            data = np.concatenate([data, alpha_at(photo.alpha, 8)[..., None]], axis=2)
        image = Image.fromarray(data[..., 0] if data.shape[2] == 1 else data)
    for key, value in (("exif", photo.exif), ("icc_profile", photo.icc)):
        if value:
            image.info[key] = value
    return image


def _is_tensor(image) -> bool:
    import sys

    torch = sys.modules.get("torch")  # a tensor can only exist if torch is imported
    return torch is not None and isinstance(image, torch.Tensor)


def _from_pil(image) -> Converted:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        data = np.clip(np.asarray(image).astype(np.int64), 0, 65535).astype(np.uint16)
    elif mode == "F":
        data = np.asarray(image, dtype=np.float32)
    else:
        if mode not in ("L", "LA", "RGB", "RGBA"):
            keeps_alpha = "A" in mode or "transparency" in image.info
            image = image.convert("RGBA" if keeps_alpha else "RGB")
        data = np.asarray(image)
    converted = _from_array(data)
    info = {key: image.info[key] for key in ("exif", "icc_profile") if key in image.info}

    def back(photos):
        result = Image.fromarray(converted.back(photos))
        result.info.update(info)
        return result

    photo = replace(converted.photos[0], exif=info.get("exif"), icc=info.get("icc_profile"))
    return Converted([photo], back)


def _from_array(array: np.ndarray) -> Converted:
    if array.ndim == 2:
        pixels = array[..., None]
    elif array.ndim == 3 and array.shape[2] in (1, 3, 4):
        pixels = array
    else:
        raise UsageError(f"a numpy image is H x W or H x W x C with C = 1, 3 or 4; got shape {array.shape}")
    scale, bit_depth = _range_of(array.dtype)
    colour = pixels[..., :3] if pixels.shape[2] == 4 else pixels
    alpha = pixels[..., 3] if pixels.shape[2] == 4 else None
    stored_alpha = alpha if alpha is None or scale != 1 else quantize(np.clip(alpha, 0, 1), 16)
    photo = Photo(pixels=np.clip(colour.astype(np.float32) / scale, 0, 1), alpha=stored_alpha,
                  bit_depth=bit_depth, format="png")

    def back(photos):
        out = photos[0].pixels
        out = quantize(out, bit_depth).astype(array.dtype) if scale != 1 else out.astype(array.dtype)
        if alpha is not None:
            out = np.concatenate([out, alpha[..., None]], axis=2)
        return out[..., 0] if array.ndim == 2 else out

    return Converted([photo], back)


def _range_of(dtype) -> tuple[float, int]:
    """(the value of white, the bit depth written) for an array's dtype."""
    if dtype == np.uint8:
        return 255.0, 8
    if dtype == np.uint16:
        return 65535.0, 16
    if np.issubdtype(dtype, np.floating):
        return 1.0, 16
    raise UsageError(f"a numpy image holds uint8, uint16 or floats in [0, 1]; got {dtype}")


def _from_tensor(tensor) -> Converted:
    import torch

    batched = tensor.ndim == 4
    if tensor.ndim not in (3, 4) or tensor.shape[-3] not in (1, 3, 4):
        raise UsageError(f"a torch image is C x H x W or N x C x H x W with C = 1, 3 or 4; got shape "
                         f"{tuple(tensor.shape)}")
    if tensor.dtype != torch.uint8 and not tensor.dtype.is_floating_point:
        raise UsageError(f"a torch image holds uint8 or floats in [0, 1]; got {tensor.dtype}")
    images = tensor if batched else tensor[None]
    arrays = [image.detach().permute(1, 2, 0).float().cpu().numpy() for image in images]
    if tensor.dtype == torch.uint8:
        arrays = [(array / 255).astype(np.float32) for array in arrays]
    parts = [_from_array(array) for array in arrays]

    def back(photos):
        restored = [torch.from_numpy(np.ascontiguousarray(part.back([photo])))
                    for part, photo in zip(parts, photos)]
        stacked = torch.stack(restored).permute(0, 3, 1, 2)
        if tensor.dtype == torch.uint8:
            stacked = (stacked * 255).round().clamp(0, 255)
        stacked = stacked.to(device=tensor.device, dtype=tensor.dtype)
        return stacked if batched else stacked[0]

    return Converted([part.photos[0] for part in parts], back)

"""Kernels as files and pictures: `--kernel FILE` reads a PSF, `--save-kernel` writes one, `--compare` shows it.

A kernel file is a gray image (PNG, TIFF, JPEG...; any scale, it is normalised to sum 1) or a
NumPy .npy array. A saved kernel is a 16-bit PNG scaled to its peak, pixel for pixel, so that
`--kernel` reads it back as the same kernel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deblur.errors import InputError, UsageError

MAX_KERNEL_FILE = 255  # px: larger is not a blur kernel but a photo given by mistake


def load_kernel(path: str | Path) -> np.ndarray:
    """A kernel file as an odd, square, non-negative float64 array summing to 1."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--kernel {path}: no such file")
    try:
        if path.suffix.lower() == ".npy":
            kernel = np.load(path, allow_pickle=False)
        else:
            from deblur.imageio import read_photo

            kernel = read_photo(path).pixels.mean(axis=2)
    except (ValueError, OSError, InputError) as exc:
        raise UsageError(f"--kernel {path}: not a readable kernel ({exc})") from None
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim != 2:
        raise UsageError(f"--kernel {path}: a kernel is a 2-D array, this one has shape {kernel.shape}")
    if max(kernel.shape) > MAX_KERNEL_FILE:
        raise UsageError(f"--kernel {path}: {kernel.shape[1]} x {kernel.shape[0]} px is too large for a blur kernel "
                         f"(at most {MAX_KERNEL_FILE} px)")
    if not np.isfinite(kernel).all() or (kernel < 0).any() or kernel.sum() <= 0:
        raise UsageError(f"--kernel {path}: a kernel needs finite, non-negative values that do not all vanish")
    return _odd_square(kernel) / kernel.sum()


def _odd_square(kernel: np.ndarray) -> np.ndarray:
    """Zero-pad to an odd square, keeping the content centred."""
    size = max(kernel.shape) | 1
    out = np.zeros((size, size))
    top, left = (size - kernel.shape[0]) // 2, (size - kernel.shape[1]) // 2
    out[top:top + kernel.shape[0], left:left + kernel.shape[1]] = kernel
    return out


def kernel_png(kernel: np.ndarray) -> bytes:
    """The kernel as a 16-bit gray PNG, scaled to its peak."""
    import cv2

    scaled = np.round(np.asarray(kernel, np.float64) / max(kernel.max(), 1e-12) * 65535).astype(np.uint16)
    ok, data = cv2.imencode(".png", scaled)
    if not ok:
        raise InputError("could not encode the kernel as PNG")
    return data.tobytes()


def with_kernel_inset(pixels: np.ndarray, kernel: np.ndarray, share: float = 0.2) -> np.ndarray:
    """A copy of H x W x C pixels with the kernel drawn, enlarged, in the top-right corner."""
    import cv2

    height, width, channels = pixels.shape
    side = max(16, int(min(height, width) * share))
    picture = cv2.resize((kernel / max(kernel.max(), 1e-12)).astype(np.float32), (side, side),
                         interpolation=cv2.INTER_NEAREST)
    out = pixels.copy()
    border = max(1, side // 40)
    y0, x0 = border, width - side - border
    if x0 < border or side + 2 * border > height:
        return out
    out[y0 - border:y0 + side + border, x0 - border:x0 + side + border] = 1.0  # a white frame
    out[y0:y0 + side, x0:x0 + side] = picture[..., None].repeat(channels, axis=2)
    return out

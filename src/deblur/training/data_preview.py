"""What the network is taught, as pictures: training pairs written as blurry | sharp PNGs.

`deblur train --preview-data N -o DIR` draws exactly the batches a run with the same data, seed and
settings would train on (steps 0, 1, ...) and writes their first N pairs, so a person can check the
synthetic blur before spending hours on it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from deblur.files import prepare_folder, write_atomic

GAP = 8  # white pixels between the blurry and the sharp crop


def side_by_side(images: list, gap: int) -> np.ndarray:
    """(C, H, W) images in [0, 1], left to right with white gaps -> one H x W x 3 uint8 picture."""
    white = torch.ones(images[0].shape[0], images[0].shape[1], gap)
    parts = [part for image in images for part in (white, image.detach().cpu().float())][1:]
    return (torch.cat(parts, -1).clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def write_data_preview(batches, count: int, folder: Path, seed: int) -> list[Path]:
    """Write the first `count` training pairs as folder/pair-NNN.png; returns their paths."""
    folder = Path(folder)
    prepare_folder(folder)
    written: list[Path] = []
    step = 0
    while len(written) < count:
        blurry, sharp = batches.batch(seed, step)
        for b, s in zip(blurry, sharp):
            if len(written) == count:
                break
            buffer = io.BytesIO()
            Image.fromarray(side_by_side([b, s], GAP)).save(buffer, format="PNG")
            path = folder / f"pair-{len(written):03d}.png"
            write_atomic(path, buffer.getvalue(), overwrite=True)
            written.append(path)
        step += 1
    return written

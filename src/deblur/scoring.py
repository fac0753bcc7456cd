"""A blur score from the reblurring module: a sharp photo is hard to reblur.

The reblurring module M_R was trained to leave sharp images unchanged (L_Sharp) and to amplify
whatever blur an image still holds (L_Blur). So how much M_R changes a photo, relative to the
photo's own detail, says how much blur is in it:

    score = mean |M_R(x) - x| / mean |grad x|

(gradients: absolute differences of neighbouring pixels). 0 means M_R finds nothing to reblur;
more blur gives a higher score. Dividing by the detail makes photos of busy and of plain scenes
comparable. The score is measured on up to 16 crops of 256 px spread over the photo, so a 24 MP
photo costs about as much as a 1 MP one, and is the same on every run.
"""

from __future__ import annotations

import numpy as np
import torch

from deblur.restorer import rgb_batch

CROP = 256
GRID = 4  # up to GRID x GRID crops


def score_crops(pixels: np.ndarray) -> torch.Tensor:
    """Fixed crops spread evenly over an H x W x C photo (the whole photo when it is small)."""
    image = rgb_batch(pixels)[0]
    _, h, w = image.shape
    size_h, size_w = min(CROP, h), min(CROP, w)
    tops = np.linspace(0, h - size_h, min(GRID, max(1, h // size_h))).round().astype(int)
    lefts = np.linspace(0, w - size_w, min(GRID, max(1, w // size_w))).round().astype(int)
    return torch.stack([image[:, t:t + size_h, l:l + size_w] for t in tops for l in lefts])


@torch.no_grad()
def blur_score(pixels: np.ndarray, reblur: torch.nn.Module, device="cpu") -> float:
    crops = score_crops(pixels).to(device)
    change = (reblur(crops) - crops).abs().mean()
    detail = crops.diff(dim=-1).abs().mean() + crops.diff(dim=-2).abs().mean()
    return (change / detail.clamp_min(1e-4)).item()

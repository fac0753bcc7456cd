"""Real motion blur from high-speed video: consecutive sharp frames averaged into one long exposure.

This is how the GoPro deblurring dataset (Nah et al., CVPR 2017) was made from 240 fps video: the
average of 7-13 consecutive frames in linear light is the blurry photo, the middle frame its sharp
target; camera shake and moving subjects both come out real. A frames folder holds one sub-folder per
clip of consecutive frames (file names sort in time order), or is itself one clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deblur.errors import InputError
from deblur.training import camera, kernels
from deblur.training.data import DataReport, MemoryBudget, augment, list_images, random_crop, to_uint8_rgb
from deblur.training.kernels import BlurSettings

WINDOWS = (5, 7, 9, 11, 13, 15)  # frames per exposure; odd, so that one frame is the middle


@dataclass
class Clip:
    """Consecutive frames of one video; decoded frames kept in memory while the budget lasts."""

    name: str
    paths: list
    cached: tuple | None = None  # ((T, H, W, 3) uint8,)

    @property
    def windows(self) -> int:
        """How many different exposures of the longest length the clip holds (its weight when drawing)."""
        return len(self.paths) - WINDOWS[-1] + 1 if len(self.paths) >= WINDOWS[-1] else 1

    def frames(self, start: int, count: int) -> np.ndarray:
        if self.cached is not None:
            return self.cached[0][start:start + count]
        return np.stack([to_uint8_rgb(path) for path in self.paths[start:start + count]])


def load_clips(folder: Path, min_size: int, budget: MemoryBudget) -> DataReport:
    """The clips of a frames folder, checked: enough frames, one size per clip, at least the crop."""
    folder = Path(folder)
    report = DataReport()
    if not folder.is_dir():
        report.problems.append(f"{folder}: not a folder")
        return report
    found = list_images(folder)
    by_clip: dict[Path, list] = {}
    for rel in found:
        by_clip.setdefault(rel.parent, []).append(folder / rel)
    if not by_clip:
        report.problems.append(f"{folder}: no frames found (a folder of consecutive video frames, or one "
                               "sub-folder per clip)")
    for parent, paths in sorted(by_clip.items()):
        name = f"{folder.name}/{parent}" if str(parent) != "." else folder.name
        if len(paths) < WINDOWS[0]:
            report.problems.append(f"{folder / parent}: {len(paths)} frame(s); a clip needs at least "
                                   f"{WINDOWS[0]} consecutive frames")
            continue
        try:
            frames = np.stack(_read_same_size(paths))
        except InputError as exc:
            report.problems.append(str(exc))
            continue
        if min(frames.shape[1:3]) < min_size:
            report.problems.append(f"{folder / parent}: frames of {frames.shape[2]}x{frames.shape[1]} are smaller "
                                   f"than the {min_size} px crop; use a smaller --crop")
            continue
        clip = Clip(name, paths)
        budget.keep(clip, (frames,))
        report.examples.append(clip)
    return report


def _read_same_size(paths: list) -> list:
    frames = []
    for path in paths:
        try:
            frame = to_uint8_rgb(path)
        except InputError as exc:
            raise InputError(f"{path}: unreadable ({exc})") from None
        if frames and frame.shape != frames[0].shape:
            raise InputError(f"{path}: {frame.shape[1]}x{frame.shape[0]} differs from the clip's first frame "
                             f"({frames[0].shape[1]}x{frames[0].shape[0]}); a clip's frames share one size")
        frames.append(frame)
    return frames


def clip_batch(clips: list, crop: int, batch_size: int, generator: torch.Generator,
               device_generator: torch.Generator, settings: BlurSettings = BlurSettings()):
    """(blurry, sharp) batches: random windows of random clips averaged in linear light, at one random
    crop per window, then sensor noise and JPEG as for synthetic blur. `generator` (CPU) draws the
    windows, `device_generator` the noise."""
    device = device_generator.device
    weights = torch.tensor([clip.windows for clip in clips], dtype=torch.float)
    picks = torch.multinomial(weights, batch_size, replacement=True, generator=generator).tolist()
    exposures, targets = [], []
    for index in picks:
        clip = clips[index]
        fitting = [w for w in WINDOWS if w <= len(clip.paths)]
        length = fitting[torch.randint(0, len(fitting), (1,), generator=generator).item()]
        start = torch.randint(0, len(clip.paths) - length + 1, (1,), generator=generator).item()
        window = torch.stack(random_crop(list(clip.frames(start, length)), crop, generator))  # one crop for all
        window = window.to(device).float() / 255
        exposure, target = augment([camera.srgb_to_linear(window).mean(0), window[length // 2]], generator)
        exposures.append(exposure)
        targets.append(target)
    noisy = camera.sensor_noise(torch.stack(exposures), device_generator, settings.max_shot)
    blurry = kernels.jpeg_roundtrip(camera.linear_to_srgb(noisy), device_generator, settings)
    return blurry, torch.stack(targets)

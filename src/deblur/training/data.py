"""Training data: paired folders and sharp photos blurred on the fly, checked before training starts.

A paired folder holds `blur/` + `sharp/` (or `input/` + `target/`, or `blurry/` + `gt/`) with the
same relative paths. Sharp folders are any folders of photos. Every problem is collected and
reported at once, so a user fixes their data in one go instead of one crash at a time.

Batches are drawn from a generator seeded by (seed, step, rank): a resumed run sees exactly the
batches an uninterrupted one would have, with no random state to save.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deblur.errors import InputError
from deblur.imageio import EXTENSIONS, read_photo
from deblur.training.kernels import MAX_KERNEL, BlurSettings, synthesize

PAIR_LAYOUTS = (("blur", "sharp"), ("input", "target"), ("blurry", "gt"))
SYNTHETIC_MARGIN = MAX_KERNEL - 1


def find_pair_layout(root: Path) -> tuple[Path, Path] | None:
    for blurry, sharp in PAIR_LAYOUTS:
        if (root / blurry).is_dir() and (root / sharp).is_dir():
            return root / blurry, root / sharp
    return None


def list_images(folder: Path) -> list[Path]:
    """Photos under `folder` (recursively), as paths relative to it, sorted; hidden files skipped."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def to_uint8_rgb(path: Path) -> np.ndarray:
    """An upright RGB uint8 image (gray replicated, alpha dropped); InputError if unreadable."""
    pixels = read_photo(path).pixels
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return (np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8)


@dataclass
class Example:
    """One training image (sharp) or pair (blurry, sharp).

    Decoded pixels are kept in memory while the memory budget lasts; beyond it an example is
    decoded again each time it is drawn (slower, but any folder size works).
    """

    name: str
    sharp_path: Path
    blurry_path: Path | None = None
    cached: tuple | None = None  # (sharp, blurry or None) as uint8 arrays

    @property
    def paired(self) -> bool:
        return self.blurry_path is not None

    def images(self) -> tuple[np.ndarray, np.ndarray | None]:
        if self.cached is not None:
            return self.cached
        sharp = to_uint8_rgb(self.sharp_path)
        return sharp, (to_uint8_rgb(self.blurry_path) if self.paired else None)


class MemoryBudget:
    def __init__(self, limit_bytes: int):
        self.left = limit_bytes

    def keep(self, example: Example, images: tuple) -> None:
        size = sum(im.nbytes for im in images if im is not None)
        if size <= self.left:
            self.left -= size
            example.cached = images


DEFAULT_BUDGET = 4 << 30


@dataclass
class DataReport:
    examples: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    def add(self, other: "DataReport") -> None:
        self.examples += other.examples
        self.problems += other.problems


def load_pairs(root: Path, min_size: int, budget: MemoryBudget | None = None) -> DataReport:
    root = Path(root)
    budget = budget or MemoryBudget(DEFAULT_BUDGET)
    report = DataReport()
    layout = find_pair_layout(root)
    if layout is None:
        names = " or ".join(f"{a}/ + {b}/" for a, b in PAIR_LAYOUTS)
        hint = ""
        if root.is_dir() and list_images(root):
            # the commonest slip: `--sharp A B` reads B as a folder of pairs (each --sharp takes one folder)
            hint = f"; it holds photos: if they are sharp photos to blur, give it as --sharp {root}"
        report.problems.append(f"{root}: expected sub-folders {names}{hint}")
        return report
    blurry_dir, sharp_dir = layout
    blurry, sharp = set(list_images(blurry_dir)), set(list_images(sharp_dir))
    for rel in sorted(blurry - sharp):
        report.problems.append(f"{blurry_dir / rel}: no matching {sharp_dir / rel}")
    for rel in sorted(sharp - blurry):
        report.problems.append(f"{sharp_dir / rel}: no matching {blurry_dir / rel}")
    for rel in sorted(blurry & sharp):
        images = _read_all([blurry_dir / rel, sharp_dir / rel], report)
        if images is None:
            continue
        b, s = images
        if b.shape != s.shape:
            report.problems.append(f"{blurry_dir / rel}: size {b.shape[1]}x{b.shape[0]} differs from its sharp "
                                   f"image's {s.shape[1]}x{s.shape[0]}")
        elif min(b.shape[:2]) < min_size:
            report.problems.append(f"{blurry_dir / rel}: {b.shape[1]}x{b.shape[0]} is smaller than the "
                                   f"{min_size} px crop; use a smaller --crop or remove it")
        else:
            example = Example(str(rel), sharp_path=sharp_dir / rel, blurry_path=blurry_dir / rel)
            budget.keep(example, (s, b))
            report.examples.append(example)
    if not blurry and not sharp:
        report.problems.append(f"{root}: no photos in {blurry_dir.name}/ and {sharp_dir.name}/")
    return report


def load_sharp(folder: Path, min_size: int, budget: MemoryBudget | None = None) -> DataReport:
    """Sharp photos to blur on the fly; they need room for the crop plus the largest kernel."""
    folder = Path(folder)
    budget = budget or MemoryBudget(DEFAULT_BUDGET)
    report = DataReport()
    if not folder.is_dir():
        report.problems.append(f"{folder}: not a folder")
        return report
    found = list_images(folder)
    if not found:
        report.problems.append(f"{folder}: no photos found")
    for rel in found:
        images = _read_all([folder / rel], report)
        if images is None:
            continue
        (s,) = images
        if min(s.shape[:2]) < min_size + SYNTHETIC_MARGIN:
            report.problems.append(f"{folder / rel}: {s.shape[1]}x{s.shape[0]} is smaller than the {min_size} px "
                                   f"crop plus {SYNTHETIC_MARGIN} px for the blur; use a smaller --crop")
        else:
            example = Example(f"{folder.name}/{rel}", sharp_path=folder / rel)
            budget.keep(example, (s, None))
            report.examples.append(example)
    return report


def _read_all(paths, report: DataReport):
    images = []
    for path in paths:
        try:
            images.append(to_uint8_rgb(path))
        except InputError as exc:
            report.problems.append(f"{path}: unreadable ({exc})")
            return None
    return images


def refuse_problems(problems: list[str]) -> None:
    if problems:
        shown = "\n  ".join(problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise InputError(f"the training data has {len(problems)} problem(s); fix them and run again:\n  "
                         f"{shown}{more}")


def split_holdout(examples: list, count: int) -> tuple[list, list]:
    """(train, held out): a fixed, name-based choice of `count` examples, the same on every run."""
    if count <= 0 or len(examples) < 2 * count:
        return examples, []
    ranked = sorted(examples, key=lambda e: zlib.crc32(e.name.encode()))
    held = {id(e) for e in ranked[:count]}
    return [e for e in examples if id(e) not in held], [e for e in examples if id(e) in held]


def step_generator(seed: int, step: int, rank: int = 0, device="cpu") -> torch.Generator:
    state = np.random.SeedSequence([seed, step, rank]).generate_state(1)[0]
    return torch.Generator(device=device).manual_seed(int(state))


def augment(tensors: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """The same random flip and 90-degree rotation for every tensor of one example."""
    flip, turns = torch.randint(0, 2, (1,), generator=generator).item(), torch.randint(0, 4, (1,), generator=generator).item()
    out = []
    for t in tensors:
        if flip:
            t = t.flip(-1)
        out.append(torch.rot90(t, turns, (-2, -1)))
    return out


def random_crop(images: list[np.ndarray], size: int, generator: torch.Generator) -> list[torch.Tensor]:
    h, w = images[0].shape[:2]
    top = torch.randint(0, h - size + 1, (1,), generator=generator).item()
    left = torch.randint(0, w - size + 1, (1,), generator=generator).item()
    return [torch.from_numpy(np.ascontiguousarray(im[top:top + size, left:left + size])).permute(2, 0, 1)
            for im in images]


def validation_batch(examples: list, crop: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed (blurry, sharp) centre crops for validation; sharp-only examples get seeded synthetic blur.

    The seed is fixed, not the training seed, so validation numbers compare across runs.
    """
    decoded = [example.images() for example in examples]
    crop = min([crop] + [min(s.shape[:2]) - (0 if b is not None else SYNTHETIC_MARGIN) for s, b in decoded])
    crop -= crop % 4
    blurry, sharp = [], []
    for index, (sharp_image, blurry_image) in enumerate(decoded):
        if blurry_image is not None:
            b, s = (_centre(im, crop) for im in (blurry_image, sharp_image))
        else:
            with_margin = _centre(sharp_image, crop + SYNTHETIC_MARGIN).float()[None] / 255
            b, s = synthesize(with_margin, step_generator(seed, index), BlurSettings(jpeg_share=0))
            b, s = (b[0] * 255).round().byte(), (s[0] * 255).round().byte()
        blurry.append(b)
        sharp.append(s)
    return torch.stack(blurry).float() / 255, torch.stack(sharp).float() / 255


def _centre(image: np.ndarray, size: int) -> torch.Tensor:
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return torch.from_numpy(np.ascontiguousarray(image[top:top + size, left:left + size])).permute(2, 0, 1)

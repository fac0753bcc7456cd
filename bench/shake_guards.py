"""Calibrate the shake model's guards on training photos: what each guard measures where deblurring helps and where it hurts.

    python bench/shake_guards.py                 # prints one row per case and writes JSON
    python bench/shake_guards.py --limit 4       # a quick look

Cases, all from training data (never the evaluation sets):
- shake: train-sharp photos blurred with a seeded uniform camera-shake kernel and noise (should pass);
- clean shake: the same with little noise (should pass);
- video: windows of 7-13 consecutive 240 fps frames of frames/GOPR0477_11_00 averaged in linear
  light, the middle frame sharp: real camera and subject motion (pass only where it helps);
- sharp: train-sharp photos as they are (no blur: should fail).
Each row: the PSNR gain of the unguarded shake result over the blurry input, every guard's
measure, "best k": the gain of deconvolving with the one kernel that best blurs the sharp image
into the blurry one (fitted with the sharp image known), which says whether any single kernel can
help the case at all, and "fit": how much of the blur that kernel explains (PSNR of the sharp image
blurred with it against the blurry one, minus the sharp image's own PSNR against the blurry one;
synthetic uniform shake is explained up to its noise, real video blur far less).
Guards run with their thresholds switched off, so every case is deconvolved.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from deblur.imageio import read_photo
from deblur.shake.deconvolve import deconvolve
from deblur.shake.fourier import convolve
from deblur.shake.guards import GuardThresholds, fill_ratio, spread
from deblur.shake.kernel import fit_kernel
from deblur.shake.restorer import ShakeOptions, ShakeRestorer
from deblur.shake.search import MAX_SIZE, kernel_extent
from deblur.training import kernels

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OFF = GuardThresholds(min_extent=0, min_spread=0.0, max_fill=1.0, min_agreement=-1.0, max_ringing=1e9)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / max(np.mean((np.clip(a, 0, 1) - b) ** 2), 1e-12)))


def explained(kernel: np.ndarray, gray_sharp: np.ndarray, gray_blurry: np.ndarray) -> float:
    """dB by which `kernel` brings a gray sharp image closer to its gray blurry one (border of one
    kernel dropped: the FFT wraps around there)."""
    blurred = convolve(torch.from_numpy(gray_sharp), torch.from_numpy(kernel)).numpy()
    m = kernel.shape[0]
    inner = (slice(m, -m), slice(m, -m))
    return psnr(blurred[inner], gray_blurry[inner]) - psnr(gray_sharp[inner], gray_blurry[inner])


def centre(pixels: np.ndarray, size: int) -> np.ndarray:
    h, w = pixels.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return pixels[top:top + size, left:left + size]


def sharp_photos(limit: int, size: int) -> list[tuple[str, np.ndarray]]:
    folders = ["sun-hays80", "urban100", "div2k"]
    paths = [p for f in folders for p in sorted((DATA / "train-sharp" / f).glob("*"))
             if p.suffix.lower() in (".jpg", ".png")]
    step = max(1, len(paths) // limit)
    return [(p.name, centre(read_photo(p).pixels, size)) for p in paths[::step][:limit]]


NOISY = kernels.BlurSettings(noise_max=0.01, shot_max=0.002)


def shake_cases(limit: int, size: int, noise: kernels.BlurSettings = NOISY, label: str = "shake"):
    margin = kernels.MAX_KERNEL - 1
    for index, (name, sharp) in enumerate(sharp_photos(limit, size + margin)):
        generator = torch.Generator().manual_seed(100 + index)
        tensor = torch.from_numpy(sharp).permute(2, 0, 1)[None]
        kernel = kernels.motion_kernels(1, generator)
        blurry = kernels.blur_valid(tensor, kernel)
        blurry = kernels.add_noise(blurry, generator, noise)
        blurry = torch.round(blurry * 255) / 255  # saved as 8 bits, as photos are
        m = margin // 2
        yield f"{label} {name}", blurry[0].permute(1, 2, 0).numpy(), sharp[m:-m, m:-m]


def clean_shake_cases(limit: int, size: int):
    """Shake with little noise, as clean photos and video frames have: the guards must pass it too."""
    return shake_cases(limit, size, kernels.BlurSettings(noise_max=0.001, shot_max=1e-6), "clean shake")


def video_cases(limit: int, size: int):
    frames = sorted((DATA / "frames" / "GOPR0477_11_00").glob("*"))
    rng = np.random.default_rng(0)
    for index in range(limit):
        count = int(rng.integers(7, 14))
        start = int(rng.integers(0, len(frames) - count))
        linear = [centre(read_photo(p).pixels, size) ** 2.2 for p in frames[start:start + count]]
        blurry = np.mean(linear, axis=0) ** (1 / 2.2)
        yield f"video {start}+{count}", blurry.astype(np.float32), linear[count // 2] ** (1 / 2.2)


def sharp_cases(limit: int, size: int):
    for name, sharp in sharp_photos(limit, size)[::-1]:
        yield f"sharp {name}", sharp, sharp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=8, help="cases of each kind")
    parser.add_argument("--size", type=int, default=640, help="centre crop of each photo, px")
    parser.add_argument("--region-size", type=int, default=None, help="estimation region: (default: the model's; a crop of twice this "
                                                                      "has room for a second region, checked)")
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results") / "shake_guards.json")
    args = parser.parse_args()
    restorer = ShakeRestorer(ShakeOptions(guards=OFF, **({'region_size': args.region_size} if args.region_size else {})))
    rows, nan = [], float("nan")
    print(f"{'case':<32}{'gain dB':>8}{'best k':>7}{'fit':>6}{'extent':>7}{'spread':>7}{'fill':>6}{'agree':>7}{'ring':>6}"
          f"{'s':>6}")
    for cases in (shake_cases, clean_shake_cases, video_cases, sharp_cases):
        for name, blurry, sharp in cases(args.limit, args.size):
            start = time.perf_counter()
            out, report = restorer.restore(blurry)
            d = report.details["shake"]
            # a sharp case has no blurry PSNR: its gain is the damage, PSNR to itself minus 50 dB; and no best kernel
            before, best, fit = 50.0, None, None
            if blurry is not sharp:
                before = psnr(blurry, sharp)
                gray_sharp, gray_blurry = (image.mean(axis=2).astype(np.float64) for image in (sharp, blurry))
                kernel = fit_kernel(gray_sharp, gray_blurry, MAX_SIZE)
                best = round(psnr(deconvolve(blurry, kernel), sharp) - before, 3)
                fit = round(explained(kernel, gray_sharp, gray_blurry), 2)
            row = {"case": name, "gain": round(psnr(out, sharp) - before, 3), "best_kernel_gain": best, "best_kernel_fit": fit,
                   "extent": kernel_extent(report.kernel), "spread": round(spread(report.kernel), 2), "fill": round(fill_ratio(report.kernel), 3),
                   "agreement": d["kernel"].get("agreement"), "ringing": d.get("ringing"),
                   "seconds": round(time.perf_counter() - start, 1)}
            rows.append(row)
            print(f"{name:<32}{row['gain']:>8.2f}{best if best is not None else nan:>7.2f}{fit if fit is not None else nan:>6.1f}"
                  f"{row['extent']:>7}{row['spread']:>7.2f}{row['fill']:>6.2f}"
                  f"{row['agreement'] or 0:>7.3f}{row['ringing'] or 0:>6.2f}{row['seconds']:>6}", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"command": " ".join(["python bench/shake_guards.py", *sys.argv[1:]]),
                                     "rows": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

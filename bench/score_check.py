"""Does the blur score rank photos the way their blur does? Measured on the evaluation sets.

    python bench/score_check.py                      # the edge-width score against the baselines
    python bench/score_check.py --model xydeblur     # also the reblurring module's change as a score

Three scores side by side: `deblur score` (the edge width above the noise, deblur.scoring), the
gradient-energy baseline (1 / mean |grad x|), and, given a model, how much its reblurring module
changes the photo relative to its detail (mean |M_R(x) - x| / mean |grad x|, Nah et al.'s idea).

- gopro-avg and levin: the share of (blurry, sharp) pairs where the blurry photo scores higher.
- kodak24 with synthetic blur of rising strength (Gaussian sigma 0, 0.7, 1.5, 2.5, 4 and camera
  shake of 9, 17, 25, 35 px, fixed seeds): the share of (weaker, stronger) pairs of the same photo
  where the stronger blur scores higher.
- kodak24 noise and JPEG (what culling a burst meets): a copy with sensor noise (sigma 15/255) or
  saved as JPEG quality 30 must not score sharper than the photo; at the same noise, a blurred
  copy (Gaussian sigma 1.5) must score blurrier than the unblurred one.
Prints a table and writes JSON (default bench/results/score_check.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from deblur.imageio import read_photo
from deblur.restorer import rgb_batch
from deblur.scoring import blur_score
from deblur.training import kernels
from deblur.weights import load_model

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def crops_of(pixels: np.ndarray) -> torch.Tensor:
    """Up to 16 RGB crops of 256 px spread over the photo (the baselines' view of it)."""
    image = rgb_batch(pixels)[0]
    _, h, w = image.shape
    size_h, size_w = min(256, h), min(256, w)
    tops = np.linspace(0, h - size_h, min(4, -(-h // size_h))).astype(int)
    lefts = np.linspace(0, w - size_w, min(4, -(-w // size_w))).astype(int)
    return torch.stack([image[:, t:t + size_h, l:l + size_w] for t in tops for l in lefts])


def gradient_baseline(pixels: np.ndarray) -> float:
    """The reference without any model: less detail, more blur (1 / mean |grad x| on the same crops)."""
    crops = crops_of(pixels)
    return 1.0 / (crops.diff(dim=-1).abs().mean() + crops.diff(dim=-2).abs().mean()).item()


def reblur_change(reblur):
    """The reblurring module's change relative to detail, as a score (what `deblur score` was before)."""
    def score(pixels: np.ndarray) -> float:
        crops = crops_of(pixels)
        change = (reblur(crops) - crops).abs().mean()
        detail = crops.diff(dim=-1).abs().mean() + crops.diff(dim=-2).abs().mean()
        return (change / detail.clamp_min(1e-4)).item()
    return score


def pair_agreement(pairs, score=blur_score) -> dict:
    wins = [score(read_photo(b).pixels) > score(read_photo(s).pixels) for b, s in pairs]
    return {"pairs": len(wins), "blurry_scores_higher": round(float(np.mean(wins)), 4)}


def strength_agreement(folder: Path, score=blur_score) -> dict:
    """Scores of each photo blurred ever more strongly; the share of correctly ordered pairs."""
    gaussian = [0, 0.7, 1.5, 2.5, 4.0]
    motion = [9, 17, 25, 35]
    coords = torch.arange(kernels.MAX_KERNEL, dtype=torch.float32) - kernels.MAX_KERNEL // 2
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    ordered = {"gaussian": [], "motion": []}
    for path in sorted(folder.glob("*.png")):
        image = torch.from_numpy(read_photo(path).pixels).permute(2, 0, 1)[None]
        series = {"gaussian": [], "motion": []}
        for sigma in gaussian:
            if sigma == 0:
                k = torch.zeros(1, kernels.MAX_KERNEL, kernels.MAX_KERNEL)
                k[0, kernels.MAX_KERNEL // 2, kernels.MAX_KERNEL // 2] = 1
            else:
                k = torch.exp(-(x**2 + y**2) / (2 * sigma**2))[None]
                k = k / k.sum()
            series["gaussian"].append(k)
        for length in motion:
            settings = kernels.BlurSettings(min_length=length, max_length=length)
            series["motion"].append(kernels.motion_kernels(1, torch.Generator().manual_seed(7), settings=settings))
        for kind, ks in series.items():
            scores = [score(kernels.blur_valid(image, k)[0].permute(1, 2, 0).numpy()) for k in ks]
            ordered[kind] += [scores[a] < scores[b] for a in range(len(scores)) for b in range(a + 1, len(scores))]
    return {kind: {"pairs": len(v), "stronger_scores_higher": round(float(np.mean(v)), 4)} for kind, v in ordered.items()}


def robustness_agreement(folder: Path, score=blur_score) -> dict:
    """Shares of kodak24 photos where noise or JPEG does not pass for sharpness, and blur under noise is seen."""
    import io

    import cv2
    from PIL import Image

    def jpeg(pixels, quality):
        buffer = io.BytesIO()
        Image.fromarray((np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buffer, "JPEG", quality=quality)
        return np.asarray(Image.open(buffer)).astype(np.float32) / 255

    rng = np.random.default_rng(11)
    checks = {"noisy not sharper": [], "jpeg q30 not sharper": [], "blurred blurrier under noise": []}
    for path in sorted(folder.glob("*.png")):
        sharp = read_photo(path).pixels
        noisy = np.clip(sharp + rng.normal(0, 15 / 255, sharp.shape).astype(np.float32), 0, 1)
        blurred = cv2.GaussianBlur(sharp, (0, 0), 1.5)
        noisy_blurred = np.clip(blurred + rng.normal(0, 15 / 255, sharp.shape).astype(np.float32), 0, 1)
        s_sharp, s_noisy = score(sharp), score(noisy)
        checks["noisy not sharper"].append(s_noisy >= s_sharp)
        checks["jpeg q30 not sharper"].append(score(jpeg(sharp, 30)) >= s_sharp)
        checks["blurred blurrier under noise"].append(score(noisy_blurred) > s_noisy)
    return {name: {"photos": len(v), "share": round(float(np.mean(v)), 4)} for name, v in checks.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="also score with this model's reblurring module")
    parser.add_argument("--weights", default=None, help="... or this checkpoint's")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results") / "score_check.json")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    scorers = {"deblur score": blur_score, "gradient only": gradient_baseline}
    results = {}
    if args.model or args.weights:
        loaded = load_model(args.model, args.weights)
        if loaded.reblur is None:
            raise SystemExit(f"{loaded.source} has no reblurring module")
        scorers["reblur module"] = reblur_change(loaded.reblur)
        results["model"] = loaded.source
    gopro = [(args.data / "gopro-avg" / "blur" / p.name, p) for p in sorted((args.data / "gopro-avg" / "sharp").glob("*.png"))]
    levin = [(p, args.data / "levin" / "gt" / f"{p.name.split('_')[0]}.png")
             for p in sorted((args.data / "levin").glob("im*_kernel*_img.png"))]
    kodak = args.data / "val-sharp" / "kodak24"
    for name, score in scorers.items():
        results[name] = {"gopro-avg": pair_agreement(gopro, score), "levin": pair_agreement(levin, score),
                         "kodak24-synthetic": strength_agreement(kodak, score),
                         "kodak24-robustness": robustness_agreement(kodak, score)}
    print(f"{'check':<40}{'n':>5}" + "".join(f"{name:>16}" for name in scorers))

    def row(label, count, values):
        print(f"{label:<40}{count:>5}" + "".join(f"{value:>16.1%}" for value in values))

    first = results["deblur score"]
    for label, key in (("gopro-avg blurry > sharp", "gopro-avg"), ("levin blurry > sharp", "levin")):
        row(label, first[key]["pairs"], [results[n][key]["blurry_scores_higher"] for n in scorers])
    for kind, r in first["kodak24-synthetic"].items():
        row(f"kodak24 stronger {kind} higher", r["pairs"],
            [results[n]["kodak24-synthetic"][kind]["stronger_scores_higher"] for n in scorers])
    for check, r in first["kodak24-robustness"].items():
        row(f"kodak24 {check}", r["photos"], [results[n]["kodak24-robustness"][check]["share"] for n in scorers])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

"""Restoration quality, side by side with the blurry input, on the evaluation sets, in one run.

    python bench/quality.py                                    # the manifest's models with checkpoints
    python bench/quality.py --weights mine=runs/x/model.safetensors --adapt --adapt-iters 5
    python bench/quality.py --limit 4 --sets kodak24 gopro     # a quick look

Slow settings (test-time adaptation, diffusion with steps) are measured on a subset of each set,
the first --subset images cropped to their centre --subset-crop px, where every other row is
measured again so the comparison stays side by side; fast rows are also measured on whole sets.

Sets (from ../shared/data, evaluation only; never trained on):
- kodak24: val-sharp/kodak24 blurred here with fixed seeded kernels (camera shake, Gaussian,
  defocus; 7-35 px) and sensor noise, no JPEG; the 466 px valid centre of each 500 px photo;
- kodak24-shake: the same photos with uniform camera shake only (seeded, 7-35 px) and noise:
  the case the shake model is for, with its true kernels;
- gopro: gopro-avg, real motion blur from averaged GoPro frames, 1280x720;
- levin: Levin et al.'s real camera shake, grayscale (run as gray replicated to RGB, scored gray),
  scored as its authors do: PSNR at the best shift within +-5 px in 0.25 px steps (bilinear),
  15 px border dropped (blind methods recover the photo up to a translation; the true kernels
  are off-centre).
Diffusion models (DvSR) are measured at each --dvsr-settings point (steps x samples, seed 0);
`--wiener` adds a Wiener filter given the true kernel where a set has one (a reference for the
shake model), `--oracle` the hyper-Laplacian given the true kernel (what the shake model would
reach with a perfect kernel), and `--deconvolution D` the shake model with the non-blind step D
(learned, hyper-laplacian or a checkpoint) beside D given the true kernel. With --oracle, every
blind row also gets Levin et al.'s error ratio: its per-image MSE over the oracle's (mean, and
the share at 2 or less). Metrics: PSNR and SSIM (deblur.metrics: [0, 1], clipped) per image, averaged per
set; "detail": the mean gradient magnitude over the sharp image's (1: as much fine detail, below:
blurrier, above: noise or oversharpening; diffusion should move it towards 1); how many images end below the blurry input ("<in") and the worst gain; seconds per
megapixel on this machine. Prints a table and writes JSON (default bench/results/quality.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from deblur.deblurrer import Deblurrer
from deblur.imageio import read_photo
from deblur.metrics import gradient_magnitude, psnr, psnr_aligned, shifted, ssim
from deblur.training import kernels

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KODAK_SEED = 2024


def kodak24(data: Path, limit: int | None):
    """(name, blurry, sharp, kernel) with fixed seeded synthetic blur and noise (kernel: None, it varies)."""
    settings = kernels.BlurSettings(jpeg_share=0.0)
    for index, path in enumerate(sorted((data / "val-sharp" / "kodak24").glob("*.png"))[:limit]):
        sharp = torch.from_numpy(read_photo(path).pixels).permute(2, 0, 1)[None]
        blurry, target = kernels.synthesize(sharp, torch.Generator().manual_seed(KODAK_SEED + index), settings)
        yield path.name, _hwc(blurry), _hwc(target), None


def kodak24_shake(data: Path, limit: int | None):
    """Uniform camera shake only, seeded per photo, with the blur settings' sensor noise."""
    settings = kernels.BlurSettings(jpeg_share=0.0)
    margin = (kernels.MAX_KERNEL - 1) // 2
    for index, path in enumerate(sorted((data / "val-sharp" / "kodak24").glob("*.png"))[:limit]):
        sharp = torch.from_numpy(read_photo(path).pixels).permute(2, 0, 1)[None]
        generator = torch.Generator().manual_seed(KODAK_SEED + index)
        kernel = kernels.motion_kernels(1, generator, settings=settings)
        blurry = kernels.add_noise(kernels.blur_valid(sharp, kernel), generator, settings)
        target = sharp[..., margin:-margin, margin:-margin]
        yield path.name, _hwc(blurry), _hwc(target), kernel[0].double().numpy()


def gopro(data: Path, limit: int | None):
    for path in sorted((data / "gopro-avg" / "sharp").glob("*.png"))[:limit]:
        yield path.name, read_photo(data / "gopro-avg" / "blur" / path.name).pixels, read_photo(path).pixels, None


def levin(data: Path, limit: int | None):
    for path in sorted((data / "levin").glob("im*_kernel*_img.png"))[:limit]:
        image, kernel_name = path.name.split("_")[:2]
        sharp = read_photo(data / "levin" / "gt" / f"{image}.png").pixels
        blurry = read_photo(path).pixels
        kernel = read_photo(data / "levin" / "gt" / f"{kernel_name}.png").pixels[..., 0].astype(np.float64)
        yield path.name, blurry, sharp, _oriented(kernel / kernel.sum(), blurry, sharp)


def _oriented(kernel: np.ndarray, blurry: np.ndarray, sharp: np.ndarray) -> np.ndarray:
    """The kernel, or its 180-degree turn, whichever blurs the sharp image into the blurry one.

    Some kernel PNGs of this copy of the set are stored turned (they explain their blurry images
    only when rotated), so the "true kernel" row would otherwise deconvolve with the wrong one.
    """
    import cv2

    def misfit(k):
        blurred = cv2.filter2D(sharp[..., 0], -1, k[::-1, ::-1].astype(np.float32), borderType=cv2.BORDER_REFLECT)
        return min(np.mean((np.roll(blurred, (dy, dx), (0, 1)) - blurry[..., 0])[20:-20, 20:-20] ** 2)
                   for dy in range(-6, 7) for dx in range(-6, 7))

    turned = kernel[::-1, ::-1].copy()
    return turned if misfit(turned) < misfit(kernel) else kernel


SETS = {"kodak24": kodak24, "kodak24-shake": kodak24_shake, "gopro": gopro, "levin": levin}
ALIGNED = {"levin"}  # scored at the best shift (Levin et al.'s protocol)


def _hwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor[0].permute(1, 2, 0).numpy().astype(np.float32)


def _chw(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float()


class Method:
    """A way to restore a photo: a label and pixels -> pixels; `slow` ones run on the subset only;
    `uses_kernel` ones take the true kernel too (pixels, kernel) and run only where a set has it."""

    def __init__(self, label: str, restore, slow: bool = False, uses_kernel: bool = False):
        self.label, self.restore, self.slow, self.uses_kernel = label, restore, slow, uses_kernel


def engine_method(label: str, engine: Deblurrer, slow: bool = False) -> Method:
    """What `deblur PHOTO` does with these options (a network, a diffusion setting, or the shake model
    with its fallback): the bench and the CLI share Deblurrer."""
    return Method(label, lambda pixels: engine.restore_pixels(pixels)[0], slow=slow)


def wiener_method() -> Method:
    from deblur.shake.deconvolve import wiener

    return Method("wiener (true kernel)", wiener, uses_kernel=True)


def deconvolver_method(label: str, deconvolver) -> Method:
    """A non-blind deconvolution (shake/deconvolvers.py) given the true kernel: the oracle of the shake model."""
    return Method(label, lambda pixels, kernel: deconvolver(pixels, kernel), uses_kernel=True)


def adapt_method(label: str, engine: Deblurrer, iters: int, lr: float, crop_size: int, log: dict) -> Method:
    from deblur.training.adapt import AdaptOptions

    adapter = engine.adapter(AdaptOptions(iters=iters, lr=lr, crop_size=crop_size))

    def restore(pixels):
        with adapter.adapted(pixels) as report:
            out = engine.restore_pixels(pixels)[0]
        log.setdefault(label, []).append(report.as_json()["adaptation"])
        return out

    return Method(label, restore, slow=True)


def centre(pixels: np.ndarray, size: int | None) -> np.ndarray:
    if pixels is None:
        return None
    if size is None:
        return pixels
    h, w = pixels.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return pixels[top:top + size, left:left + size]


def measure(methods: list[Method], sets: list[str], data: Path, limit: int | None, crop: int | None,
            subset: int, subset_crop: int | None) -> list[dict]:
    """Every fast method on whole sets (`limit`, `crop`), then every method on the subset, if any is slow."""
    rows = []
    for set_name in sets:
        images = [(name, centre(b, crop), centre(s, crop), k) for name, b, s, k in SETS[set_name](data, limit)]
        scope = "all" if limit is None and crop is None else f"first {limit or 'all'}, centre {crop or 'full'}"
        usable = [m for m in methods if not m.uses_kernel or all(k is not None for *_, k in images)]
        blurry_scores, per_image = None, {}
        for method in usable:
            if not method.slow:
                row, scores = _score(set_name, scope, method, images, blurry_scores)
                blurry_scores = blurry_scores or scores
                rows.append(row)
                per_image[method.label] = (row, scores)
        _add_error_ratios(per_image)
        if any(method.slow for method in usable):
            chosen = [(name, centre(b, subset_crop), centre(s, subset_crop), k) for name, b, s, k in images[:subset]]
            scope = f"first {subset}, centre {subset_crop or 'full'}"
            blurry_scores = None
            for method in usable:
                row, scores = _score(set_name, scope, method, chosen, blurry_scores)
                blurry_scores = blurry_scores or scores
                rows.append(row)
    return rows


ORACLE = "hyper-laplacian (true kernel)"


def _add_error_ratios(per_image: dict) -> None:
    """Levin et al. 2009's kernel measure for every blind row of a set with true kernels: per image, the
    error (MSE) of its result over the error of the same deconvolution given the true kernel (1: as
    good as the true kernel); the mean and the share of images at 2 or less ("success" in their paper)."""
    if ORACLE not in per_image:
        return
    oracle = [score[0] for score in per_image[ORACLE][1]]
    for label, (row, scores) in per_image.items():
        if label == ORACLE or label == "blurry input" or "(true kernel)" in label:
            continue
        ratios = [10 ** ((true - score[0]) / 10) for score, true in zip(scores, oracle)]
        row["error_ratio_mean"] = round(float(np.mean(ratios)), 3)
        row["error_ratio_at_most_2"] = round(float(np.mean([r <= 2 for r in ratios])), 3)
        print(f"{'':<14}{'':<22}{label:<36} error ratio over the true kernel's: mean {row['error_ratio_mean']:.2f}, "
              f"<= 2 for {row['error_ratio_at_most_2']:.0%}")


def _score(set_name: str, scope: str, method: Method, images: list, blurry_scores: list | None):
    """One method on one set: mean PSNR/SSIM, and against the blurry input's per-image PSNR (the first row's)."""
    scores, seconds, pixels_done = [], 0.0, 0
    for _, blurry, sharp, kernel in images:
        start = time.perf_counter()
        output = method.restore(blurry, kernel) if method.uses_kernel else method.restore(blurry)
        seconds += time.perf_counter() - start
        pixels_done += blurry.shape[0] * blurry.shape[1]
        out, ref = _chw(np.clip(output, 0, 1)), _chw(sharp)
        if ref.shape[1] == 1 and out.shape[1] == 3:
            out = out.mean(1, keepdim=True)
        detail = (gradient_magnitude(out) / gradient_magnitude(ref).clamp_min(1e-6)).item()
        if set_name in ALIGNED:
            value, (shift,) = psnr_aligned(out, ref)
            scores.append((value.item(), ssim(shifted(out, shift), shifted(ref, (0, 0))).item(), detail))
        else:
            scores.append((psnr(out, ref).item(), ssim(out, ref).item(), detail))
    mean = np.mean(scores, axis=0)
    gains = [s[0] - b[0] for s, b in zip(scores, blurry_scores)] if blurry_scores else [0.0] * len(scores)
    row = {"set": set_name, "images": scope, "method": method.label, "count": len(images),
           "psnr": round(float(mean[0]), 3), "ssim": round(float(mean[1]), 4), "detail": round(float(mean[2]), 3),
           "below_input": sum(g < 0 for g in gains), "worst_gain": round(min(gains), 3),
           "aligned": set_name in ALIGNED,
           "seconds_per_mp": None if method.label == "blurry input" else round(seconds / (pixels_done / 1e6), 2)}
    print(f"{set_name:<14}{scope:<22}{method.label:<36}{row['count']:>4}{row['psnr']:>9.2f}{row['ssim']:>8.4f}"
          f"{row['detail']:>7.2f}{row['below_input']:>5}{row['worst_gain']:>8.2f}"
          f"{row['seconds_per_mp'] if row['seconds_per_mp'] is not None else '-':>9}", flush=True)
    return row, scores


def parse_dvsr_setting(text: str) -> tuple[int, int, float | None]:
    """STEPS[xSAMPLES][@END]: e.g. 0, 10x4, 10x4@0.3 (END: the inference schedule's last beta, --schedule-end)."""
    text, _, end = text.partition("@")
    steps, _, samples = text.partition("x")
    return int(steps), int(samples or 1), float(end) if end else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], help="a manifest model (repeatable)")
    parser.add_argument("--weights", action="append", default=[], help="LABEL=CHECKPOINT (repeatable)")
    parser.add_argument("--adapt", action="store_true", help="also each model + test-time adaptation")
    parser.add_argument("--wiener", action="store_true", help="also a Wiener filter given the true kernel "
                                                              "(sets that have one)")
    parser.add_argument("--oracle", action="store_true", help="also the hyper-Laplacian deconvolution given the "
                                                              "true kernel (sets that have one)")
    parser.add_argument("--deconvolution", action="append", default=[],
                        help="also the shake model with this non-blind step (learned, hyper-laplacian or a "
                             "checkpoint), and that step given the true kernel (repeatable)")
    parser.add_argument("--dvsr-settings", nargs="+", default=["0", "10x4", "100"],
                        help="diffusion models: STEPSxSAMPLES[@END] settings to measure (0: the predictor "
                             "alone; END: the schedule's last beta, as --schedule-end)")
    parser.add_argument("--adapt-iters", type=int, default=20, help="the deblur adapt default")
    parser.add_argument("--adapt-lr", type=float, default=5e-6, help="the deblur adapt default")
    parser.add_argument("--adapt-crop-size", type=int, default=128, help="4 crops of this size per iteration "
                                                                         "(deblur adapt: 256; 128 is 4x cheaper)")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--limit", type=int, default=None, help="images per set (default: all)")
    parser.add_argument("--crop", type=int, default=None, help="score only the centre SIZE px of each image "
                                                               "(all rows)")
    parser.add_argument("--subset", type=int, default=4, help="images per set for the slow rows")
    parser.add_argument("--subset-crop", type=int, default=256, help="their centre crop in px (0: whole)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results") / "quality.json")
    args = parser.parse_args()

    # label -> the options that choose its weights (each row gets its own engine: the adapted row must
    # not share weights with the plain one)
    sources = {name: {"model": name} for name in args.model}
    for item in args.weights:
        label, _, path = item.partition("=")
        sources[label] = {"weights": path}
    methods = [Method("blurry input", lambda pixels: pixels)]
    adapt_log: dict = {}
    for label, source in sources.items():
        engine = Deblurrer(**source, device=args.device)
        if engine.model.spec.objective == "diffusion":
            for setting in args.dvsr_settings:
                steps, samples, end = parse_dvsr_setting(setting)
                sampled = Deblurrer(**source, device=args.device, sampler="diffusion", steps=steps, samples=samples,
                                    schedule_end=end)
                name = f"{label} steps {steps} x{samples}" + (f" end {end:g}" if end is not None else "")
                methods.append(engine_method(name, sampled, slow=steps > 0))
            continue
        methods.append(engine_method(label, engine))
        if args.adapt and engine.model.reblur is not None:
            methods.append(adapt_method(f"{label} + adapt ({args.adapt_iters} it, {args.adapt_crop_size} px)",
                                        Deblurrer(**source, device=args.device), args.adapt_iters, args.adapt_lr,
                                        args.adapt_crop_size, adapt_log))
    if args.wiener:
        methods.append(wiener_method())
    if args.oracle:
        from deblur.shake.deconvolvers import HyperLaplacian

        methods.append(deconvolver_method(ORACLE, HyperLaplacian()))
    for choice in args.deconvolution:
        name = f"learned {Path(choice).parent.name}/" if choice.endswith(".safetensors") else choice
        engine = Deblurrer("shake", deconvolution=choice, device=args.device)
        methods.append(engine_method(f"shake, {name} deconvolution", engine))
        methods.append(deconvolver_method(f"{name} (true kernel)", engine.restorer.options.deconvolver))
    print(f"{'set':<14}{'images':<22}{'method':<36}{'n':>4}{'PSNR':>9}{'SSIM':>8}{'detail':>7}{'<in':>5}{'worst':>8}{'s/MP':>9}")
    rows = measure(methods, args.sets, args.data, args.limit, args.crop, args.subset, args.subset_crop or None)
    adaptation = {label: {"self_reblur_before": round(float(np.mean([r["self_reblur_before"] for r in runs])), 6),
                          "self_reblur_after": round(float(np.mean([r["self_reblur_after"] for r in runs])), 6),
                          "photos": len(runs)} for label, runs in adapt_log.items()}
    for label, summary in adaptation.items():
        print(f"{label}: mean self-reblur loss {summary['self_reblur_before']:.5f} -> {summary['self_reblur_after']:.5f}"
              f" over {summary['photos']} photos")
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
               "torch": torch.__version__}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine, "command": " ".join(["python bench/quality.py", *sys.argv[1:]]), "results": rows, "adaptation": adaptation}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

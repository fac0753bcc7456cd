"""Bundle a trained run as a shipped model: the checkpoint into src/deblur/weights/, its entry into the manifest.

    python tools/ship_checkpoint.py xydeblur /work/runs/xydeblur-tiny-reblur --hardware "2 CPU cores"
    python tools/ship_checkpoint.py shake campaign/deconvolution --part deconvolution --hardware "2 CPU cores"

The checkpoint is the run's EMA weights (and reblurring module), stored in fp16 unless --fp32.
The manifest entry gets the file's sha256 and size, the configuration, the licence note, and the
training recipe: every run in the chain of `--weights` initialisations that led to this one, each
as the exact `deblur train` / `deblur finetune` command with its steps and wall time. Metrics are
added afterwards by tools/record_metrics.py from bench/quality.py's JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from deblur.checkpoints import checkpoint_arch, read_checkpoint, split_reblur, write_checkpoint
from deblur.checksums import sha256_file
from deblur.training.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "weights_manifest.json"
WEIGHTS = ROOT / "src" / "deblur" / "weights"
LICENCE = "research use only"  # short: `deblur models list` shows it in a column; DATA_LICENCE says why
DATA_LICENCE = ("Weights: trained by the deblur project, released with the code (MIT), but the training photos are "
                "research-use sets (BSDS500/Corel, Sun-Hays 80 and Urban100 from Flickr, DIV2K validation, McMaster; "
                "copyright stays with their owners), so treat the weights as for research and evaluation, and "
                "retrain on data you may use commercially before relying on them for that.")
TRAINING_DATA = ("../shared/data/train-sharp (BSDS500 432, Sun-Hays 80, Urban100 12, DIV2K 3, McMaster 18 photos), "
                 "blurred on the fly: camera shake, Gaussian, defocus and spatially varying blur, Poisson-Gaussian "
                 "noise, JPEG; validated on val-sharp/kodak24 with fixed seeded blur (never trained on)")
PART_DATA = {"deconvolution": (
    "../shared/data/train-sharp (BSDS500 432, Sun-Hays 80, Urban100 12, DIV2K 3, McMaster 18 photos; 8 held out "
    "for validation), one colour channel of a crop at a time, blurred with camera-shake kernels (7-35 px), "
    "Gaussian and signal-dependent noise, 8-bit rounding, a fifth with highlights clipped after the blur; "
    "deconvolved given the kernel, half of the time a perturbed one")}
# TrainConfig fields that `deblur train` / `deblur finetune` take as --flags of the same name
FLAGS = ("steps", "batch_size", "crop", "lr", "optimizer", "schedule", "warmup", "step_every", "clip", "ema",
         "fft_weight", "reblur_weight", "predictor_weight", "seed", "val_every", "log_every")


def _data_path(path: str) -> str:
    """Paths under the shared data folder, written as the README's commands spell them."""
    marker = "/shared/data/"
    return "../shared/data/" + path.split(marker, 1)[1] if marker in path else path


def run_command(config: dict) -> str:
    train, data = config["train"], config["data"]
    words = ["deblur", "train" if config.get("init") is None else "finetune"]
    if config.get("init") is not None:
        words += ["--weights", Path(config["init"]).parent.name + "/model.safetensors"]
    else:
        words += ["--model", config.get("arch") or train["arch"]]  # deconvolution runs name it at the top
        settings = train.get("config", train.get("network", {}))
        words += [f"--config {key}={value}" for key, value in sorted(settings.items())]
    words += [_data_path(p) for p in data.get("pairs", [])]
    words += [f"--sharp {_data_path(p)}" for p in data["sharp"]]
    if data.get("val"):
        words += ["--val", _data_path(data["val"])]
    words += [f"--{name.replace('_', '-')} {train[name]}" for name in FLAGS
              if name in train]  # a field newer than the run took its default
    return " ".join(words)


def _wall_seconds(records: list[dict]) -> float | None:
    """From the first logged step, extrapolated back to step 0, to the last record of the run's log."""
    steps = [r for r in records if r.get("kind") == "train"]
    if len(steps) < 2:
        return None
    per_step = (steps[-1]["time"] - steps[0]["time"]) / max(1, steps[-1]["step"] - steps[0]["step"])
    return round(records[-1]["time"] - steps[0]["time"] + per_step * steps[0]["step"], 1)


def recipe(run_dir: Path, hardware: str) -> list[dict]:
    """Every run from the first `deblur train` to this one, oldest first."""
    phases = []
    while True:
        run = RunDir(run_dir)
        config = run.read_config()
        records = [json.loads(line) for line in run.log_file.read_text().splitlines() if line.strip()]
        val = [r for r in records if r.get("kind") == "val"]
        done = run.load_state("cpu")["step"]  # the saved step: the log may end before it
        planned = config["train"]["steps"]
        phases.append({"run": run_dir.name, "command": run_command(config), "steps": done,
                       **({"stopped": f"after {done} of {planned} planned steps (the learning-rate schedule "
                                      f"was laid out for {planned})"} if done < planned else {}),
                       "wall_seconds": _wall_seconds(records), "hardware": hardware,
                       "final_validation": {k: round(v, 3) for k, v in val[-1].items()
                                            if k.startswith(("val_", "blurry_"))} if val else None})
        if config.get("init") is None:
            return phases[::-1]
        run_dir = Path(config["init"]).parent


def _cast(state: dict, dtype: torch.dtype) -> dict:
    """Floating-point tensors in `dtype`; integer buffers as they are."""
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="the model's name in the manifest")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--hardware", required=True, help="what the runs trained on, e.g. '2 CPU cores'")
    parser.add_argument("--description", default=None)
    parser.add_argument("--fp32", action="store_true", help="keep fp32 (when half precision hurts the model)")
    parser.add_argument("--inference", default="{}", help="JSON: the entry's inference defaults")
    parser.add_argument("--part", default=None, help="ship the run as this file of the model instead of its "
                                                     "weights, e.g. deconvolution: the shake model's learned step "
                                                     "(kept in fp32)")
    args = parser.parse_args()
    if args.part:
        ship_part(args)
        return

    source = RunDir(args.run_dir).model_file
    state, metadata = read_checkpoint(source)
    arch, config = checkpoint_arch(metadata, source)
    network, reblur, reblur_config = split_reblur(state, metadata, source)
    dtype = torch.float32 if args.fp32 else torch.float16
    target = WEIGHTS / f"{args.name}.safetensors"
    write_checkpoint(target, _cast(network, dtype), arch, config,
                     reblur=None if reblur is None else (_cast(reblur, dtype), reblur_config))

    manifest = json.loads(MANIFEST.read_text())
    old = manifest["models"].get(args.name, {})
    manifest["models"][args.name] = {
        "arch": arch,
        "description": args.description or old.get("description", ""),
        "config": config,
        "files": {"weights": {"filename": target.name, "sha256": sha256_file(target), "size": target.stat().st_size}},
        "sources": {"bundled": True},
        "licence": LICENCE,
        "training": {"data": TRAINING_DATA,
                     "data_licence": DATA_LICENCE,
                     "precision": "fp32" if args.fp32 else "fp16",
                     "reblur_module": reblur is not None,
                     "phases": recipe(args.run_dir, args.hardware)},
        "metrics": old.get("metrics", []),
        "inference": {**old.get("inference", {}), **json.loads(args.inference)},
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{target} ({target.stat().st_size} bytes) and the '{args.name}' entry of {MANIFEST.name} written")


def ship_part(args) -> None:
    """A trained part of a model that is otherwise an algorithm (the shake model's learned deconvolution):
    a file of its entry, with its own training recipe; the entry's arch and config stay."""
    source = RunDir(args.run_dir).model_file
    state, metadata = read_checkpoint(source)
    arch, config = checkpoint_arch(metadata, source)
    target = WEIGHTS / f"{args.name}_{args.part}.safetensors"
    write_checkpoint(target, _cast(state, torch.float32), arch, config)
    manifest = json.loads(MANIFEST.read_text())
    entry = manifest["models"][args.name]
    entry["files"][args.part] = {"filename": target.name, "sha256": sha256_file(target),
                                 "size": target.stat().st_size}
    entry["sources"] = {**entry.get("sources", {}), "bundled": True}
    entry["licence"] = LICENCE
    entry["training"][args.part] = {"data": PART_DATA.get(args.part, TRAINING_DATA), "data_licence": DATA_LICENCE, "precision": "fp32",
                                    "phases": recipe(args.run_dir, args.hardware)}
    entry["inference"] = {**entry.get("inference", {}), **json.loads(args.inference)}
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{target} ({target.stat().st_size} bytes) written as '{args.part}' of the '{args.name}' entry")


if __name__ == "__main__":
    main()

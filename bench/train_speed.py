"""Training speed and peak memory: steps per second for the shipped configurations.

    python bench/train_speed.py                         # CPU (and CUDA if present), default crop and batch
    python bench/train_speed.py --configs tiny --crop 128 --batch-size 8 --steps 10 --device cpu

Each case runs in a fresh subprocess (its peak memory is its own) and times whole training steps
as `deblur train` runs them: batch drawing, synthetic blur on the device, the reblurring-module
update and the deblurring-network update (reblurring loss on, FFT loss on), with bf16 autocast
where the trainer uses it; beside it, the network's bare fp32 step (forward, L1, backward, AdamW on
random tensors), so the ratio shows what the rest of the pipeline costs. Prints a table and writes
JSON (default bench/results/train_speed.json).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from speed import CONFIGS, default_devices, run_child, write_json  # noqa: E402  (shared with speed.py)


def run_case(config_name: str, device: str, crop: int, batch_size: int, steps: int, warmup: int) -> dict:
    """Runs inside the child process."""
    import numpy as np
    import torch

    from deblur.devices import resolve_device
    from deblur.training.batches import BatchMaker
    from deblur.training.data import SYNTHETIC_MARGIN, Example
    from deblur.training.run_dir import RunDir
    from deblur.training.trainer import TrainConfig, Trainer

    dev = resolve_device(device)
    rng = np.random.default_rng(0)
    side = crop + SYNTHETIC_MARGIN + 64
    examples = [Example(f"random{i}", sharp_path=Path("."), cached=(rng.integers(0, 256, (side, side, 3), np.uint8), None))
                for i in range(16)]
    config = TrainConfig(config=CONFIGS[config_name], steps=warmup + steps, batch_size=batch_size, crop=crop)
    batches = BatchMaker([], examples, crop, batch_size, dev)
    trainer = Trainer(config, batches, None, RunDir(Path(tempfile.mkdtemp())), dev)

    def step(index):
        trainer.train_step(*batches.batch(0, index))

    for index in range(warmup):
        step(index)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for index in range(warmup, warmup + steps):
        step(index)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    bare = bare_network_step_seconds(config_name, dev, crop, batch_size, steps, warmup)
    result = {"config": config_name, **CONFIGS[config_name], "device": str(dev), "crop": crop,
              "batch_size": batch_size, "steps": steps, "seconds": round(seconds, 2),
              "steps_per_s": round(steps / seconds, 3), "bare_fp32_s_per_step": round(bare, 3),
              "whole_over_bare": round(seconds / steps / bare, 2),
              "peak_host_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "amp": str(trainer.autocast_dtype).replace("torch.", "") if trainer.autocast_dtype else "off"}
    if dev.type == "cuda":
        result["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return result


def bare_network_step_seconds(config_name: str, dev, crop: int, batch_size: int, steps: int, warmup: int) -> float:
    """Seconds per step of the deblurring network alone in fp32: forward, L1, backward, AdamW on random
    tensors. What a whole `deblur train` step costs beyond this is the pipeline's overhead."""
    import torch

    from deblur.archs.registry import build_network

    torch.manual_seed(0)
    network = build_network("xydeblur", CONFIGS[config_name]).to(dev).train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    blurry = torch.rand(batch_size, 3, crop, crop, device=dev)
    sharp = torch.rand(batch_size, 3, crop, crop, device=dev)

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.l1_loss(network(blurry), sharp).backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["tiny", "small", "official"], choices=list(CONFIGS))
    parser.add_argument("--device", nargs="+", default=None, help="default: cpu, plus cuda when present")
    parser.add_argument("--crop", type=int, default=128, help="the deblur train default")
    parser.add_argument("--batch-size", type=int, default=8, help="the deblur train default")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results") / "train_speed.json")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        config, device = args.child
        print(json.dumps(run_case(config, device, args.crop, args.batch_size, args.steps, args.warmup)))
        return

    devices = default_devices(args.device)
    rows = []
    print(f"{'device':<8}{'config':<10}{'amp':>6}{'crop':>6}{'batch':>7}{'steps/s':>9}{'s/step':>8}{'bare fp32':>10}"
          f"{'ratio':>7}{'host MiB':>10}{'GPU MiB':>9}")
    for device in devices:
        for config in args.configs:
            command = [sys.executable, __file__, "--child", config, device, "--crop", str(args.crop),
                       "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup)]
            row, error = run_child(command)
            if error:
                print(f"{device:<8}{config:<10} failed: {error}", flush=True)
                continue
            rows.append(row)
            print(f"{device:<8}{config:<10}{row['amp']:>6}{row['crop']:>6}{row['batch_size']:>7}{row['steps_per_s']:>9}"
                  f"{1 / row['steps_per_s']:>8.2f}{row['bare_fp32_s_per_step']:>10.2f}{row['whole_over_bare']:>7.2f}"
                  f"{row['peak_host_mib']:>10}{row.get('peak_gpu_mib', '-'):>9}", flush=True)
            write_json(args.json, rows)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

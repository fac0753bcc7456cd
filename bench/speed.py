"""Restoration speed and peak memory for whole photos, tiled, as the CLI runs them.

    python bench/speed.py                              # CPU (and CUDA if present), default grid
    python bench/speed.py --configs tiny official --sizes 1 12 24 --device cpu
    python bench/speed.py --configs shake --sizes 12   # the shake model (kernel search + deconvolution)
    python bench/speed.py --configs shake small --sizes 1 --load 0 2   # idle, then beside a 2-thread job
    python bench/speed.py --configs shake --sizes 12 --deconvolution learned   # the learned non-blind step

Each case runs in a fresh subprocess so its peak memory is its own: host peak RSS always, and
the CUDA allocator's peak on a GPU. Network weights are random: speed does not depend on them.
The shake model runs on a synthetic scene of shapes blurred by a 25 px camera-shake stroke (on
random pixels its guards would fall back to the network), with its fallback network loaded as
the CLI loads it. `--load N` runs each case beside a competing job of N busy threads (torch
matrix products, as another deblur or a training run would be): users' machines are busy, and
how deblur shares the cores decides how much slower it gets (deblur/threads.py).
Prints a table and writes JSON (default bench/results/speed.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {
    "tiny": {"width": 16, "blocks": 2},
    "small": {"width": 24, "blocks": 3},
    "official": {"width": 32, "blocks": 6},
    "shake": {},
}


def shaken_scene(height: int, width: int) -> "np.ndarray":
    """Random shapes in colour, blurred by a curved 25 px stroke: something for the kernel search to find."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    image = np.full((height, width, 3), 0.5, np.float32)
    for _ in range(int(height * width / 20000)):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(image, centre, int(rng.integers(4, 60)), tuple(float(v) for v in rng.random(3)), -1, cv2.LINE_AA)
    kernel = np.zeros((25, 25), np.float32)
    cv2.ellipse(kernel, (12, 12), (10, 5), 20, 0, 200, 1.0, 1)
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def photo_shape(megapixels: float) -> tuple[int, int]:
    """A 3:2 photo of about `megapixels` (24 MP -> 6000 x 4000)."""
    height = int((megapixels * 1e6 / 1.5) ** 0.5)
    return height, int(height * 1.5)


def run_case(config_name: str, megapixels: float, device: str, tile: int | None, precision: str = "auto",
             deconvolution: str | None = None) -> dict:
    """Runs inside the child process."""
    import numpy as np
    import torch

    from deblur.archs.registry import build_network, get_arch
    from deblur.devices import choose_for, prepare_network
    from deblur.restorer import Restorer
    from deblur.samplers import direct

    torch.manual_seed(0)
    config = CONFIGS[config_name]
    spec = get_arch("xydeblur")
    choice = choose_for(spec, device, precision)  # as the CLI chooses
    network = prepare_network(build_network("xydeblur", config or CONFIGS["tiny"]).eval(), choice.device)
    restorer = Restorer(direct(network), choice, spec.size_multiple, spec.bytes_per_pixel(config), tile=tile)
    height, width = photo_shape(megapixels)
    if config_name == "shake":
        from deblur.shake.restorer import ShakeOptions, ShakeRestorer

        pixels = shaken_scene(height, width)
        deconvolver = None
        if deconvolution:
            from deblur.deblurrer import Deblurrer

            deconvolver = Deblurrer("shake", deconvolution=deconvolution).restorer.options.deconvolver
        restorer = ShakeRestorer(ShakeOptions(deconvolver=deconvolver), choice.device, restorer, "xydeblur")
    else:
        pixels = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
        restorer.run_tile(pixels[:64, :64], [])  # warm-up: kernels, allocator
    if choice.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    _, report = restorer.restore(pixels)
    if choice.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    result = {
        "config": config_name, **config, "device": str(choice.device), "precision": choice.precision,
        "megapixels": round(height * width / 1e6, 2), "size": f"{width}x{height}", "tile": report.tile or "-",
        "tiles": report.tiles, "seconds": round(seconds, 2), "mp_per_s": round(height * width / 1e6 / seconds, 4),
        "peak_host_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if report.details.get("shake"):
        result["shake"] = report.details["shake"]
        result["config"] = f"shake/{report.details['shake'].get('deconvolution', 'guarded')}"
    if choice.device.type == "cuda":
        result["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["tiny", "small", "official"], choices=list(CONFIGS))
    parser.add_argument("--sizes", nargs="+", type=float, default=[1, 12, 24], help="megapixels")
    parser.add_argument("--device", nargs="+", default=None, help="default: cpu, plus cuda when present")
    parser.add_argument("--tile", type=int, default=None, help="default: chosen from free memory")
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results") / "speed.json")
    parser.add_argument("--precision", default="auto", help="auto (as the CLI: bf16 on GPUs and on CPUs with "
                                                           "native bf16), fp32, fp16 or bf16")
    parser.add_argument("--load", nargs="+", type=int, default=[0],
                        help="threads of a competing job beside each case (0: idle); several: each in turn")
    parser.add_argument("--deconvolution", default=None, help="shake: its non-blind step (learned, hyper-laplacian "
                                                               "or a checkpoint; default: the model's)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        config, megapixels, device = args.child
        print(json.dumps(run_case(config, float(megapixels), device, args.tile, args.precision, args.deconvolution)))
        return

    devices = default_devices(args.device)
    rows = []
    header = f"{'device':<8}{'prec':<6}{'config':<22}{'load':>5}{'MP':>6}{'tile':>6}{'tiles':>7}{'seconds':>9}{'MP/s':>8}{'host MiB':>10}{'GPU MiB':>9}"
    print(header)
    for device in devices:
        for config in args.configs:
            for megapixels in args.sizes:
                for load in args.load:
                    command = [sys.executable, __file__, "--child", config, str(megapixels), device,
                               "--precision", args.precision]
                    if args.tile:
                        command += ["--tile", str(args.tile)]
                    if args.deconvolution:
                        command += ["--deconvolution", args.deconvolution]
                    with competing_load(load):
                        row, error = run_child(command)
                    if error:
                        print(f"{device:<8}{config:<22}{load:>5}{megapixels:>6} failed: {error}", flush=True)
                        continue
                    row["load_threads"] = load
                    rows.append(row)
                    print(f"{device:<8}{row['precision']:<6}{row['config']:<22}{load:>5}{row['megapixels']:>6}{row['tile']:>6}"
                          f"{row['tiles']:>7}{row['seconds']:>9}{row['mp_per_s']:>8}{row['peak_host_mib']:>10}"
                          f"{row.get('peak_gpu_mib', '-'):>9}", flush=True)
                    write_json(args.json, rows)  # after every case: a stopped run keeps what it measured
    print(f"wrote {args.json}")


def default_devices(requested: list[str] | None) -> list[str]:
    """The devices asked for, else the CPU plus CUDA when present."""
    if requested is not None:
        return requested
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


LOAD_SCRIPT = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
a = torch.randn(1500, 1500)
while True:
    a = torch.tanh(a @ a * 1e-3)
"""


@contextlib.contextmanager
def competing_load(threads: int):
    """A job of `threads` busy threads running for the duration of the block (none for 0)."""
    if threads <= 0:
        yield
        return
    job = subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT, str(threads)])
    try:
        time.sleep(2)  # let it start and take its cores
        yield
    finally:
        job.kill()
        job.wait()


def run_child(command: list[str]) -> tuple[dict | None, str | None]:
    """Run one case in a fresh process (its peak memory is its own): (its JSON row, None) or (None, why not)."""
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        return None, (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
    return json.loads(out.stdout.strip().splitlines()[-1]), None


def write_json(path: Path, rows: list[dict]) -> None:
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "python": platform.python_version(), "cpu_count": os.cpu_count()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "results": rows}, indent=2))


if __name__ == "__main__":
    main()

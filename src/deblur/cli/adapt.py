"""`deblur adapt PATHS`: restore photos with per-image self-reblur test-time adaptation."""

from __future__ import annotations

from typing import Annotated

import typer

from deblur.cli.run import (Compare, Device, EngineOptions, Format, Json, Model, Offline, Output, Overlap, Overwrite,
                            Paths, Precision, Quality, Quiet, Recursive, SkipExisting, StripMetadata, Suffix, Tile,
                            Verbose, Weights, restore_command)

HELP = """Restore photos, tuning the network to each one first (self-reblur test-time adaptation).

For every photo the network is adapted on random crops of it so that the model's reblurring
module finds no blur left to amplify, then the whole photo is restored with the adapted weights;
the original weights return before the next photo. Slower than `deblur PHOTO` (each iteration is
a training step on --crops crops); sharper on photos unlike the training data. Results are named
NAME_adapted.EXT. Needs a checkpoint with a reblurring module (from `deblur train`).
"""


def adapt(
    ctx: typer.Context, paths: Paths,
    iters: Annotated[int, typer.Option(min=0, help="Adaptation steps per photo.")] = 20,
    lr: Annotated[float, typer.Option(help="Adam learning rate of the adaptation.")] = 5e-6,
    crops: Annotated[int, typer.Option(min=1, help="Random crops per step.")] = 4,
    crop_size: Annotated[int, typer.Option("--crop-size", min=16, help="Crop size in pixels.")] = 256,
    fidelity: Annotated[float, typer.Option(min=0.0, help="Weight keeping the result near the un-adapted "
                                                          "output (0: off).")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the crop positions: the same seed, the same result.")] = 0,
    keep_worse: Annotated[bool, typer.Option("--keep-worse", help="Use the adapted weights even when they raised "
                                                                  "the self-reblur loss.")] = False,
    model: Model = None, weights: Weights = None, offline: Offline = False,
    output: Output = None, recursive: Recursive = False, suffix: Suffix = "_adapted", fmt: Format = "auto",
    quality: Quality = 95, skip_existing: SkipExisting = False, overwrite: Overwrite = False,
    compare: Compare = False, strip_metadata: StripMetadata = False, device: Device = "auto",
    precision: Precision = "auto", tile: Tile = None, overlap: Overlap = None, quiet: Quiet = False,
    verbose: Verbose = False, as_json: Json = False,
) -> None:
    from deblur.training.adapt import AdaptOptions

    options = AdaptOptions(iters=iters, lr=lr, crops=crops, crop_size=crop_size, fidelity=fidelity, seed=seed,
                           keep_worse=keep_worse)
    restore_command(ctx, paths, EngineOptions(model, weights, offline, device, precision, tile, overlap),
                    output, recursive, suffix, fmt, quality, skip_existing, overwrite, compare, strip_metadata,
                    quiet, verbose, as_json, adapt=options)

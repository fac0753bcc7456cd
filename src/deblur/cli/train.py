"""`deblur train` and `deblur finetune`: train a deblurring network on your pairs or sharp photos."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from deblur.cli.console import Reporter, exit_on_errors
from deblur.errors import UsageError

DECONVOLUTION = "deconvolution"  # deblur.shake.deconvolvers.ARCH, not imported: the CLI starts without torch

TRAIN_HELP = """Train a deblurring network from scratch.

PAIRS are folders holding blur/ + sharp/ (or input/ + target/, blurry/ + gt/) with matching file
names; --sharp DIR adds sharp photos that are blurred on the fly (camera shake, defocus, noise,
JPEG); --frames DIR adds high-speed video frames (240 fps) averaged into real motion blur.
The run folder (-o, default runs/ARCH-TIME) gets model.safetensors, usable at once with
`deblur PHOTO --weights RUN/model.safetensors`, plus a log, previews and the state for --resume.
--preview-data N -o DIR writes the first N training pairs as pictures instead of training.
Ctrl-C saves. Several GPUs: torchrun --nproc-per-node N -m deblur train ...
"""

FINETUNE_HELP = """Fine-tune a trained model (and its reblurring module) on your own data.

Starts from the model's checkpoint (--model NAME from `deblur models list`, or --weights FILE) with
fine-tuning defaults: a lower learning rate and fewer steps. Data and outputs as for `deblur train`.
"""

Pairs = Annotated[Optional[List[Path]], typer.Argument(help="Folders of blurry/sharp pairs.", show_default=False)]
Sharp = Annotated[Optional[List[Path]], typer.Option("--sharp", help="A folder of sharp photos to blur on the fly "
                                                                     "(repeatable).")]
Frames = Annotated[Optional[List[Path]], typer.Option("--frames", help="A folder of consecutive high-speed video "
                                                                       "frames, or one sub-folder per clip: windows "
                                                                       "of 5-15 frames averaged into real motion blur "
                                                                       "(repeatable).")]
FramesShare = Annotated[float, typer.Option("--frames-share", min=0.0, max=1.0,
                                            help="Share of steps drawn from --frames when other data is given too.")]
Synthesis = Annotated[str, typer.Option(help="How sharp photos are blurred: srgb (kernels on sRGB values, noise, "
                                             "JPEG) or camera (linear light, clipped highlights, sensor noise, "
                                             "rotating shake; experimental: it measured worse, see the README).")]
Blur = Annotated[Optional[List[str]], typer.Option("--blur", help="Change a synthetic-blur setting KEY=VALUE, e.g. "
                                                                 "light_share=0, max_length=21 or "
                                                                 "response_exponent=1,1.5 (repeatable).")]
PreviewData = Annotated[Optional[int], typer.Option("--preview-data", min=1, help="Write the first N training pairs "
                                                    "(blurry | sharp) as PNGs in the -o folder and stop.")]
Val = Annotated[Optional[Path], typer.Option("--val", help="Validation folder (pairs or sharp photos); default: "
                                                           "a few training examples held out.")]
Config = Annotated[Optional[List[str]], typer.Option("--config", help="Network setting KEY=VALUE, e.g. width=16 "
                                                                      "(repeatable; unset ones: the architecture's "
                                                                      "defaults).")]
Output = Annotated[Optional[Path], typer.Option("--output", "-o", help="Run folder (default: runs/ARCH-TIME).")]
BatchSize = Annotated[int, typer.Option("--batch-size", "-b", help="Crops per step (per process).")]
Crop = Annotated[int, typer.Option(help="Training crop size in pixels.")]
Optimizer = Annotated[str, typer.Option(help="adamw or adam.")]
Schedule = Annotated[str, typer.Option(help="cosine (after warm-up) or step (halve every --step-every).")]
Warmup = Annotated[Optional[int], typer.Option(min=0, help="Warm-up steps (default: 500 for train, 100 for "
                                                          "finetune; at most a tenth of the run).")]
StepEvery = Annotated[int, typer.Option("--step-every", help="With --schedule step: halve the rate every N steps.")]
Clip = Annotated[float, typer.Option(help="Gradient norm clip (0: off).")]
Ema = Annotated[float, typer.Option(help="EMA decay of the weights that are saved (0: off).")]
FftWeight = Annotated[float, typer.Option("--fft-weight", help="Weight of the FFT loss (0: off; not for dvsr).")]
ReblurWeight = Annotated[Optional[float], typer.Option("--reblur-weight", help="Weight of the supervised reblurring "
                                                       "loss (0: no reblurring module; default 1, for dvsr 0).")]
PredictorWeight = Annotated[float, typer.Option("--predictor-weight", help="dvsr only: weight of an L1 loss on the "
                                                "predictor's output (our addition, not the paper's; 0: off).")]
FreezePredictor = Annotated[bool, typer.Option("--freeze-predictor", help="dvsr only: keep the predictor as it is "
                                              "and train the denoiser alone.")]
Seed = Annotated[int, typer.Option(help="Random seed (data, blur and initial weights).")]
ValEvery = Annotated[int, typer.Option("--val-every", help="Validate and save every N steps.")]
LogEvery = Annotated[int, typer.Option("--log-every", help="Log every N steps.")]
Device = Annotated[str, typer.Option(envvar="DEBLUR_DEVICE", help="auto, cpu, cuda, cuda:N or mps.")]
Amp = Annotated[bool, typer.Option("--amp/--no-amp", help="Mixed precision: bf16/fp16 on CUDA, bf16 on CPUs "
                                                           "that compute it natively (AVX-512 BF16, AMX); "
                                                           "--no-amp forces fp32.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")]
Json = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]


def train(
    pairs: Pairs = None, sharp: Sharp = None, frames: Frames = None, val: Val = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Architecture to train: xydeblur, dvsr, or "
                                                            "deconvolution (the shake model's learned "
                                                            "deconvolution; --sharp photos only).")] = "xydeblur",
    config: Config = None,
    steps: Annotated[Optional[int], typer.Option(min=1, help="Training steps (default 20000; with --resume: "
                                                             "the run's own).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", min=1, help="Crops per step (per "
                                                      "process; default 8, deconvolution 4).")] = None,
    crop: Annotated[Optional[int], typer.Option(min=8, help="Training crop size in pixels (default 128, "
                                                       "deconvolution 112).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate (default 2e-4, deconvolution "
                                                     "5e-4).")] = None,
    optimizer: Optimizer = "adamw", schedule: Schedule = "cosine", warmup: Warmup = None,
    step_every: StepEvery = 5000, clip: Clip = 1.0,
    ema: Ema = 0.999, fft_weight: FftWeight = 0.1, reblur_weight: ReblurWeight = None,
    predictor_weight: PredictorWeight = 0.0, freeze_predictor: FreezePredictor = False,
    predictor: Annotated[Optional[str], typer.Option("--predictor", help="dvsr only: the predictor is this trained "
                                                     "xydeblur checkpoint (a file or hf://...), kept fixed while "
                                                     "the denoiser trains.")] = None,
    synthesis: Synthesis = "srgb", blur: Blur = None, frames_share: FramesShare = 0.3,
    seed: Seed = 0, val_every: ValEvery = 500, log_every: LogEvery = 20, device: Device = "auto", amp: Amp = True,
    output: Output = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this folder "
                                                                    "(--steps may extend it).")] = None,
    preview: PreviewData = None, quiet: Quiet = False, as_json: Json = False,
) -> None:
    reporter = _reporter(quiet)
    with exit_on_errors(reporter):
        from deblur.training.trainer import TrainConfig

        if model == DECONVOLUTION or (resume is not None and _run_arch(resume) == DECONVOLUTION):
            if pairs or frames or val or predictor:
                raise UsageError("--model deconvolution learns from sharp photos blurred with known kernels: give "
                                 "--sharp DIR (pairs, --frames and --val have no kernel to learn from)")
            if resume is not None and (sharp or output):
                raise UsageError("--resume continues a run with its own data and folder; give only --resume RUN_DIR "
                                 "(and --steps to extend it)")
            _train_deconvolution(reporter, sharp, resume or output, resume is not None, steps, batch_size, crop,
                                 lr, _parse_config(config), seed, val_every, log_every, as_json)
            return
        settings = TrainConfig(
            arch=model, config=_parse_config(config), steps=20000 if steps is None else steps,
            batch_size=8 if batch_size is None else batch_size, crop=128 if crop is None else crop,
            lr=2e-4 if lr is None else lr, optimizer=optimizer, schedule=schedule, warmup=warmup, step_every=step_every, clip=clip, ema=ema,
            fft_weight=fft_weight, reblur_weight=reblur_weight, predictor_weight=predictor_weight,
            freeze_predictor=freeze_predictor, synthesis=synthesis, blur=_parse_config(blur, "--blur"),
            frames_share=frames_share, seed=seed,
            val_every=val_every, log_every=log_every, amp=amp)
        if resume is not None and (pairs or sharp or frames or val or output or preview or predictor):
            raise UsageError("--resume continues a run with its own data and folder; give only --resume RUN_DIR "
                             "(and --steps to extend it)")
        init = None if predictor is None else _predictor_init(reporter, settings, predictor)
        sources = _sources(pairs, sharp, frames, val)
        if preview:
            _preview(reporter, settings, sources, output, preview)
            return
        _train(reporter, settings, sources, resume or output, device, resume is not None, steps, init, as_json)


def finetune(
    pairs: Pairs = None, sharp: Sharp = None, frames: Frames = None, val: Val = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="The model to start from "
                                                                       "(default: the default model).")] = None,
    weights: Annotated[Optional[str], typer.Option("--weights", "-w", help="Start from this checkpoint instead "
                                                                            "(a file or hf://...).")] = None,
    steps: Annotated[int, typer.Option(min=1, help="Training steps.")] = 2000,
    batch_size: BatchSize = 8, crop: Crop = 128,
    lr: Annotated[float, typer.Option(help="Peak learning rate (lower than training from scratch).")] = 2e-5,
    optimizer: Optimizer = "adamw", schedule: Schedule = "cosine", warmup: Warmup = None,
    step_every: StepEvery = 500, clip: Clip = 1.0,
    ema: Ema = 0.999, fft_weight: FftWeight = 0.1, reblur_weight: ReblurWeight = None,
    predictor_weight: PredictorWeight = 0.0, freeze_predictor: FreezePredictor = False,
    synthesis: Synthesis = "srgb", blur: Blur = None, frames_share: FramesShare = 0.3,
    seed: Seed = 0, val_every: ValEvery = 250, log_every: LogEvery = 20, device: Device = "auto", amp: Amp = True,
    output: Output = None,
    config: Annotated[Optional[List[str]], typer.Option("--config", help="Change a network setting KEY=VALUE "
                                                        "that the weights can grow into, e.g. dvsr's "
                                                        "condition=prediction (repeatable).")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Never use the network.")] = False,
    preview: PreviewData = None, quiet: Quiet = False, as_json: Json = False,
) -> None:
    reporter = _reporter(quiet)
    with exit_on_errors(reporter):
        from deblur.training.trainer import TrainConfig
        from deblur.weights import load_model

        with reporter.downloads() as progress:
            loaded = load_model(model, weights, offline=offline, progress=progress)
        init = {"network": loaded.network.state_dict(), "source": loaded.source,
                "reblur": None if loaded.reblur is None else loaded.reblur.state_dict()}
        settings = TrainConfig(
            arch=loaded.spec.name, config={**loaded.config, **_parse_config(config)}, steps=steps,
            batch_size=batch_size, crop=crop,
            lr=lr, optimizer=optimizer, schedule=schedule, warmup=warmup, step_every=step_every, clip=clip, ema=ema,
            fft_weight=fft_weight, reblur_weight=reblur_weight, predictor_weight=predictor_weight,
            freeze_predictor=freeze_predictor, synthesis=synthesis, blur=_parse_config(blur, "--blur"),
            frames_share=frames_share, seed=seed,
            val_every=val_every, log_every=log_every, amp=amp)
        sources = _sources(pairs, sharp, frames, val)
        if preview:
            _preview(reporter, settings, sources, output, preview)
            return
        if loaded.reblur is not None:
            settings.reblur_config = {**settings.reblur_config, **loaded.reblur_config}
        elif reblur_weight or (reblur_weight is None and loaded.spec.objective == "direct"):
            reporter.warning(f"{loaded.source} has no reblurring module; a new one is trained from scratch")
        _train(reporter, settings, sources, output, device, False, None, init, as_json)


def _predictor_init(reporter: Reporter, settings, reference: str) -> dict:
    """DvSR's predictor from a trained xydeblur checkpoint: the settings take its width and blocks, and it
    stays fixed (only the denoiser trains)."""
    from deblur.weights import load_model

    if settings.arch != "dvsr":
        raise UsageError(f"--predictor is for --model dvsr, not {settings.arch}")
    with reporter.downloads() as progress:
        loaded = load_model(None, reference, progress=progress)
    if loaded.spec.name != "xydeblur":
        raise UsageError(f"--predictor {reference}: a dvsr predictor is an xydeblur checkpoint, this one is "
                         f"{loaded.spec.name}")
    chosen = {"predictor": "xydeblur", "predictor_width": loaded.config["width"],
              "predictor_blocks": loaded.config["blocks"]}
    clashes = [f"{key}={settings.config[key]}" for key in chosen if key in settings.config
               and settings.config[key] != chosen[key]]
    if clashes:
        raise UsageError(f"--config {clashes[0]} disagrees with --predictor {reference} "
                         f"(width {chosen['predictor_width']}, blocks {chosen['predictor_blocks']}); drop it")
    settings.config.update(chosen)
    settings.freeze_predictor = True
    return {"predictor": loaded.network.state_dict(), "source": f"predictor: {loaded.source}"}


def _run_arch(run_dir: Path) -> str | None:
    """What a run folder trains, from its config.json (runs of the networks name it inside "train")."""
    from deblur.training.run_dir import RunDir

    saved = RunDir(run_dir).read_config()
    return saved.get("arch") or saved.get("train", {}).get("arch")


def _train_deconvolution(reporter: Reporter, sharp, run_dir, resume: bool, steps, batch_size: int, crop: int,
                         lr: float, network: dict, seed: int, val_every: int, log_every: int, as_json: bool) -> None:
    from deblur.cli.training_view import TrainingView
    from deblur.training.deconvolution import DeconvolutionTrainConfig, start_deconvolution_run
    from deblur.training.session import default_run_dir
    from deblur.training.trainer import TrainingInterrupted

    settings = None
    if not resume:
        given = {"steps": steps, "batch_size": batch_size, "crop": crop, "lr": lr}
        settings = DeconvolutionTrainConfig(network=network, seed=seed, val_every=val_every, log_every=log_every,
                                            **{key: value for key, value in given.items() if value is not None})
    view = TrainingView(reporter)
    try:
        with view:
            summary = start_deconvolution_run(settings, [str(f) for f in sharp or []],
                                              run_dir or default_run_dir(DECONVOLUTION), resume, steps, view.update)
    except TrainingInterrupted as stop:
        reporter.error(f"interrupted at step {stop.step}; saved. Resume with: deblur train --resume {view.run_dir}")
        raise typer.Exit(130) from None
    if as_json:
        Reporter.data(summary)
    reporter.info(f"done: {summary['step']} steps; use it with: deblur PHOTO --model shake --deconvolution "
                  f"{summary['model']}")


def _reporter(quiet: bool) -> Reporter:
    # Under torchrun only the first process speaks.
    return Reporter(quiet=quiet or int(os.environ.get("RANK", "0")) != 0)


def _sources(pairs, sharp, frames, val):
    from deblur.training.session import DataSources

    return DataSources(pairs=[str(p) for p in pairs or []], sharp=[str(p) for p in sharp or []],
                       frames=[str(p) for p in frames or []], val=None if val is None else str(val))


def _preview(reporter: Reporter, settings, sources, output, count: int) -> None:
    from deblur.training.session import preview_data

    if output is None:
        raise UsageError("--preview-data writes pictures: give the folder with -o DIR")
    written = preview_data(settings, sources, output, count)
    reporter.info(f"wrote {len(written)} training pair(s) (blurry | sharp) to {output}")


def _parse_config(items, option: str = "--config") -> dict:
    """KEY=VALUE pairs; values are numbers where they look like numbers."""
    config = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} takes KEY=VALUE, got '{item}'")
        try:
            config[key.strip()] = int(value)
        except ValueError:
            try:
                config[key.strip()] = float(value)
            except ValueError:
                config[key.strip()] = value
    return config


def _train(reporter: Reporter, settings, sources, run_dir, device, resume, steps, init, as_json) -> None:
    from deblur.cli.training_view import TrainingView
    from deblur.training.session import start_run
    from deblur.training.trainer import TrainingInterrupted

    view = TrainingView(reporter)
    try:
        with view:
            summary = start_run(settings, sources, run_dir, device, resume=resume, steps=steps, init=init,
                                on_event=view.update)
    except TrainingInterrupted as stop:
        reporter.error(f"interrupted at step {stop.step}; saved. Resume with: deblur train --resume {view.run_dir}")
        raise typer.Exit(130) from None
    if as_json:
        Reporter.data(summary)
    reporter.info(f"done: {summary['step']} steps; use it with: deblur PHOTO --weights {summary['model']}")

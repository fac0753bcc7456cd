"""Putting a training run together: data checked, run folder chosen, trainer built, resumed if asked.

The CLI (`deblur train`, `deblur finetune`) and scripts both start runs through `start_run`.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deblur.errors import UsageError
from deblur.training import distributed
from deblur.training.batches import BatchMaker
from deblur.training.data import (DataReport, MemoryBudget, find_pair_layout, load_pairs, load_sharp, refuse_problems,
                                  split_holdout, validation_batch)
from deblur.training.frames import load_clips
from deblur.training.kernels import blur_settings
from deblur.training.run_dir import RunDir
from deblur.training.trainer import TrainConfig, Trainer

HOLDOUT = 8  # examples kept out of training for validation when no --val folder is given
TRAIN_WARMUP, FINETUNE_WARMUP = 500, 100  # default warm-up steps, capped at a tenth of the run


@dataclass
class DataSources:
    pairs: list = field(default_factory=list)  # folders with blur/ + sharp/ (or input/target, blurry/gt)
    sharp: list = field(default_factory=list)  # folders of sharp photos, blurred on the fly
    frames: list = field(default_factory=list)  # folders of high-speed video frames, averaged into exposures
    val: str | None = None  # a paired or sharp folder; else examples held out of the training data


@dataclass
class PreparedData:
    batches: BatchMaker
    validation: tuple | None  # (blurry, sharp) tensors
    counts: dict
    warnings: list = field(default_factory=list)  # what the user should know about this data


def prepare_data(sources: DataSources, config: TrainConfig, device) -> PreparedData:
    """Read and check all the data, reporting every problem at once; split off validation."""
    if not sources.pairs and not sources.sharp and not sources.frames:
        raise UsageError("no training data: give a folder of pairs (blur/ + sharp/), --sharp DIR and/or --frames DIR")
    budget = MemoryBudget(4 << 30)
    paired, sharp = DataReport(), DataReport()
    for folder in sources.pairs:
        paired.add(load_pairs(Path(folder), config.crop, budget))
    for folder in sources.sharp:
        sharp.add(load_sharp(Path(folder), config.crop, budget))
    clips = DataReport()
    for folder in sources.frames:
        clips.add(load_clips(Path(folder), config.crop, budget))
    val = DataReport()
    if sources.val:
        folder = Path(sources.val)
        val = load_pairs(folder, 16) if find_pair_layout(folder) else load_sharp(folder, 16)
    refuse_problems(paired.problems + sharp.problems + clips.problems + val.problems)

    held = []
    if not sources.val:
        # hold out from the bigger kind; never more than a small share of it
        pool = "paired" if len(paired.examples) >= len(sharp.examples) else "sharp"
        report = paired if pool == "paired" else sharp
        report.examples, held = split_holdout(report.examples, min(HOLDOUT, len(report.examples) // 10))
    val_examples = (val.examples or held)[:config.val_count]
    warnings = []
    if not val_examples:
        warnings.append("no validation: too few examples to hold any out (it takes 10 of one kind), so no PSNR "
                        "and no previews/; give --val DIR")
    validation = validation_batch(val_examples, config.val_crop) if val_examples else None
    counts = {"paired": len(paired.examples), "sharp": len(sharp.examples), "clips": len(clips.examples),
              "validation": len(val_examples)}
    batches = BatchMaker(paired.examples, sharp.examples, config.crop, config.batch_size, device,
                         blur=blur_settings(config.blur), pipeline=config.synthesis, clips=clips.examples,
                         frames_share=config.frames_share)
    return PreparedData(batches, validation, counts, warnings)


def preview_data(config: TrainConfig, sources: DataSources, folder: Path, count: int, device: str = "cpu") -> list:
    """Write the first `count` pairs this configuration would train on as pictures; returns their paths."""
    from deblur.training.data_preview import write_data_preview

    config.check()
    data = prepare_data(sources, config, device)
    return write_data_preview(data.batches, count, folder, config.seed)


def _settle_warmup(config: TrainConfig, finetuning: bool) -> list[str]:
    """The default warm-up, at most a tenth of the run: a 500-step warm-up in a 10-step run would keep the
    learning rate far below its peak throughout. Returns what the user should be told."""
    tenth = config.steps // 10
    if config.warmup is None:
        planned = FINETUNE_WARMUP if finetuning else TRAIN_WARMUP
        config.warmup = min(planned, tenth)
        if config.warmup < planned:
            return [f"the warm-up of {planned} steps is longer than a tenth of this {config.steps}-step run; "
                    f"using {config.warmup} (--warmup to choose)"]
    elif config.warmup > tenth:
        return [f"--warmup {config.warmup} is longer than a tenth of this {config.steps}-step run: the learning "
                "rate stays below its peak for much of it"]
    return []


def default_run_dir(arch: str) -> Path:
    return Path("runs") / f"{arch}-{time.strftime('%Y%m%d-%H%M%S')}"


def start_run(config: TrainConfig | None, sources: DataSources | None, run_dir: Path | None,
              device: str = "auto", resume: bool = False, steps: int | None = None, init: dict | None = None,
              on_event=lambda event: None) -> dict:
    """Train (or resume) a run; returns a summary. Ctrl-C raises TrainingInterrupted after saving.

    Resuming reads the configuration and data folders from the run folder (`steps` may extend it).
    `init` = {"network": state, "reblur": state or None, "source": text} starts from trained
    weights (`deblur finetune`); {"predictor": state, "source": text} starts only DvSR's predictor
    from a trained deblurrer (`deblur train --predictor`).
    """
    context = distributed.start()
    try:
        with _sigterm_as_interrupt():
            return _start(config, sources, run_dir, device, resume, steps, init, on_event, context)
    finally:
        distributed.stop()


@contextmanager
def _sigterm_as_interrupt():
    """`kill` (SIGTERM, what schedulers send before pre-empting a job) saves the run like Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _start(config, sources, run_dir, device, resume, steps, init, on_event, context) -> dict:
    from deblur import devices

    if resume and run_dir is None:
        raise UsageError("--resume needs the run folder: --resume RUN_DIR")
    run = RunDir(run_dir or default_run_dir(config.arch))
    if resume:
        saved = run.read_config()
        saved["train"].setdefault("synthesis", "srgb")  # runs from before the camera pipeline keep theirs
        config = TrainConfig(**saved["train"])
        config.steps = config.steps if steps is None else steps
        sources = DataSources(**saved["data"])
    config.check()
    warnings = [] if resume else _settle_warmup(config, finetuning=init is not None)
    if not resume and run.has_run():
        raise UsageError(f"'{run.path}' already holds a training run; continue it with --resume "
                         f"{run.path}, or choose another --output")
    device = devices.resolve_device(distributed.device_for(context, device))
    data = prepare_data(sources, config, device)
    trainer = Trainer(config, data.batches, data.validation, run, device,
                      init_state=(init or {}).get("network"), init_reblur=(init or {}).get("reblur"),
                      init_predictor=(init or {}).get("predictor"))
    if resume:
        trainer.load_state(run.load_state(device))
    elif context.is_main:
        run.write_config({"train": asdict(config), "data": asdict(sources),
                          "init": (init or {}).get("source")})
    for text in warnings + data.warnings:
        on_event({"kind": "warning", "text": text})
    on_event({"kind": "start", "run_dir": str(run.path), "device": str(device),
              "precision": trainer.precision, "step": trainer.step,
              "steps": config.steps, "world_size": context.world_size, **data.counts})
    summary = trainer.run(on_event)
    summary.update(run_dir=str(run.path), model=str(run.model_file))
    return summary

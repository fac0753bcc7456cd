"""What a person sees while a model trains: a live panel on a terminal, plain lines otherwise."""

from __future__ import annotations

from rich.live import Live
from rich.table import Table

from deblur.cli.console import Reporter

LOSS_TERMS = ("loss", "l1", "fft", "noise_l1", "predictor_l1", "reblur", "reblur_blur", "reblur_sharp")


def _duration(seconds) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class TrainingView:
    """Receives the trainer's events (start, train, val, saved) and shows them."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self.run_dir = None
        self.latest: dict = {}
        self.validation: dict | None = None
        self.steps = 0
        self.live = None
        if not reporter.quiet and reporter.err.is_terminal:
            self.live = Live(console=reporter.err, refresh_per_second=4, transient=False)

    def __enter__(self):
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)
        return False

    def update(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "warning":
            self.reporter.warning(event["text"])
        elif kind == "start":
            self.run_dir, self.steps = event["run_dir"], event["steps"]
            self.reporter.info(
                f"training in {event['run_dir']} on {event['device']} ({event['precision']})"
                + (f" x{event['world_size']} processes" if event["world_size"] > 1 else "")
                + f": {event['paired']} pairs, {event['sharp']} sharp photos"
                + (f", {event['clips']} video clip(s)" if event.get("clips") else "")
                + f", {event['validation']} for validation"
                + (f"; resuming at step {event['step']}" if event["step"] else ""))
        elif kind == "train":
            self.latest = event
            if not self.live:
                terms = " ".join(f"{k} {event[k]:.4f}" for k in LOSS_TERMS if k in event)
                self.reporter.info(f"step {event['step']}/{self.steps} {terms} lr {event['lr']:.2e} "
                                   f"{event['it_per_s']:.2f} it/s eta {_duration(event['eta_s'])}")
        elif kind == "val":
            self.validation = event
            if not self.live:
                self.reporter.info(f"validation at {self._validation_text()}")
        elif kind == "saved" and not self.live:
            self.reporter.detail(f"saved {event['path']} at step {event['step']}")
        if self.live:
            self.live.update(self._panel())

    def _validation_text(self) -> str:
        v = self.validation
        text = (f"step {v['step']}: PSNR {v['val_psnr']:.2f} dB (blurry {v['blurry_psnr']:.2f}), "
                f"SSIM {v['val_ssim']:.3f} (blurry {v['blurry_ssim']:.3f})")
        if "val_psnr_diffusion" in v:
            text += f"; with diffusion PSNR {v['val_psnr_diffusion']:.2f} dB"
        return text

    def _panel(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        e = self.latest
        if e:
            table.add_row("step", f"{e['step']} / {self.steps}")
            table.add_row("losses", "  ".join(f"{k} {e[k]:.4f}" for k in LOSS_TERMS if k in e))
            table.add_row("learning rate", f"{e['lr']:.2e}")
            table.add_row("speed", f"{e['it_per_s']:.2f} it/s, {_duration(e['eta_s'])} left")
        if self.validation:
            table.add_row("validation", self._validation_text())
        if self.run_dir:
            table.add_row("run folder", str(self.run_dir))
        return table

"""What people see: messages on stderr, data on stdout, progress only on a terminal."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn, TransferSpeedColumn)

from deblur.errors import DeblurError


class Reporter:
    """Levels: quiet (errors only), normal, verbose."""

    def __init__(self, quiet: bool = False, verbose: bool = False):
        self.quiet = quiet
        self.verbose = verbose
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.out = Console(highlight=False)  # tables and paths a user asked for

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(escape(message))

    def detail(self, message: str) -> None:
        if self.verbose and not self.quiet:
            self.err.print(f"[dim]{escape(message)}[/dim]")

    def warning(self, message: str) -> None:
        if not self.quiet:
            self.err.print(f"[yellow]warning:[/yellow] {escape(message)}")

    def error(self, message: str) -> None:
        self.err.print(f"[red]error:[/red] {escape(message)}")

    @staticmethod
    def data(payload: dict) -> None:
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        sys.stdout.flush()

    @contextmanager
    def progress(self):
        """A files bar and a tiles bar; None when stderr is not a terminal or output is quiet."""
        if self.quiet or not self.err.is_terminal:
            yield None
            return
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=self.err, transient=True) as progress:
            yield progress

    @contextmanager
    def downloads(self):
        """A download-progress callback: a line per file, and a bytes bar with speed and ETA on a terminal."""
        tasks = {}
        bar = None
        if not self.quiet and self.err.is_terminal:
            bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                           TimeRemainingColumn(), console=self.err, transient=True)

        def update(filename: str, done: int, total: int | None) -> None:
            if filename not in tasks:
                self.info(f"downloading {filename}" + (f" ({human_size(total)})" if total else ""))
                tasks[filename] = bar.add_task(filename, total=total) if bar else None
            if bar:
                bar.update(tasks[filename], completed=done, total=total)

        if bar is None:
            yield update
            return
        with bar:
            yield update


@contextmanager
def exit_on_errors(reporter: Reporter):
    """Turn a DeblurError into its one-line message and exit code; Ctrl-C into 130."""
    try:
        yield
    except DeblurError as exc:
        reporter.error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        reporter.error("interrupted")
        raise typer.Exit(130) from None


def human_size(size: int | float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size} B"

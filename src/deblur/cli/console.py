"""What people see: messages on stderr, data on stdout, progress only on a terminal."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class Reporter:
    """Levels: quiet (errors only), normal, verbose."""

    def __init__(self, quiet: bool = False, verbose: bool = False):
        self.quiet = quiet
        self.verbose = verbose
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

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

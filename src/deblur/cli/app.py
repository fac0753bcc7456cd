"""The `deblur` command: `deblur PATHS` is `deblur run PATHS`; subcommands live beside it."""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from deblur import __version__
from deblur.cli import adapt, models, run, score, train


class DefaultRunGroup(TyperGroup):
    """Sends anything that is not a known command (a file, a folder) to `run`."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args.insert(0, "run")
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=DefaultRunGroup,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    help="Restore shaky and motion-blurred photos.\n\n"
    "deblur photo.jpg writes photo_deblur.jpg beside it; deblur shots/ -r -o restored/ does a folder tree.",
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"deblur {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", "-V", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Restore shaky and motion-blurred photos."""


app.command("run", help=run.HELP)(run.run)
app.add_typer(models.app, name="models")
app.command("adapt", help=adapt.HELP)(adapt.adapt)
app.command("score", help=score.HELP)(score.score)
app.command("train", help=train.TRAIN_HELP)(train.train)
app.command("finetune", help=train.FINETUNE_HELP)(train.finetune)


def main() -> None:
    app(prog_name="deblur")


if __name__ == "__main__":
    sys.exit(main())

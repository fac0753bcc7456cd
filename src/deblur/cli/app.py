"""The `deblur` command: `deblur PATHS` is `deblur run PATHS`; subcommands live beside it."""

from __future__ import annotations

import sys
from pathlib import Path

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


def _plain_placeholders(command) -> None:
    """Typer's rich help shows a type such as `<bool>` or `<str>` beside every option; a flag takes no
    value, so it gets none, and a value gets a word for what it is (N, X, PATH, TEXT), as click writes."""
    import typing

    import click

    help_option = command.get_help_option(click.Context(command))  # made on demand, then kept
    for param in [*command.params, *([help_option] if help_option else [])]:
        if param.param_type_name != "option" or param.metavar is not None:
            continue
        kind = getattr(param, "type_descriptor", None)
        annotation = kind.annotation if kind else bool
        if kind is not None and kind.is_list:
            annotation = (typing.get_args(annotation) or (str,))[0]
        if getattr(param, "is_flag", False) or annotation is bool:
            param.metavar = ""
        elif annotation is Path:
            param.metavar = "PATH"
        else:
            param.metavar = {int: "N", float: "X"}.get(annotation, "TEXT")
    for sub in getattr(command, "commands", {}).values():
        _plain_placeholders(sub)


def main() -> None:
    command = typer.main.get_command(app)
    _plain_placeholders(command)
    command(prog_name="deblur")


if __name__ == "__main__":
    sys.exit(main())

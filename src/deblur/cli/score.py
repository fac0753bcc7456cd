"""`deblur score PATHS`: how blurry is each photo? Sorted, sharpest first; pick the keepers of a burst."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from deblur.cli.console import Reporter, exit_on_errors
from deblur.cli.run import Device, Json, Model, Offline, Paths, Quiet, Recursive, Weights
from deblur.errors import UsageError

HELP = """Score how much blur is left in each photo (0: none; more blur, higher), sharpest first.

The score is how much the model's reblurring module changes the photo relative to its detail:
a sharp photo is hard to reblur. --keep-sharpest K or --threshold T prints only the photos worth
keeping (one path per line, for scripts), e.g. the best frames of a burst.
"""


def score(
    paths: Paths, recursive: Recursive = False,
    keep_sharpest: Annotated[Optional[int], typer.Option("--keep-sharpest", min=1,
                                                         help="Print only the K sharpest photos.")] = None,
    threshold: Annotated[Optional[float], typer.Option(help="Print only photos scoring at most T.")] = None,
    model: Model = None, weights: Weights = None, offline: Offline = False, device: Device = "auto",
    quiet: Quiet = False, as_json: Json = False,
) -> None:
    reporter = Reporter(quiet=quiet)
    with exit_on_errors(reporter):
        from deblur.deblurrer import Deblurrer
        from deblur.errors import DeblurError
        from deblur.inputs import OutputOptions, Plan, collect

        plan = Plan()
        found = collect(paths, recursive, OutputOptions(suffix=""), plan)
        for path, reason in plan.failed:
            reporter.error(f"{path}: {reason}")
        if not found and not plan.failed:
            raise UsageError("no photos found in the given paths")
        with reporter.downloads() as progress:
            deblurrer = Deblurrer(model, weights=weights, device=device, offline=offline, progress=progress)
        deblurrer.reblur_module("score")  # a model without one fails here, not once per photo
        scores, failed = [], [{"path": str(p), "error": r} for p, r in plan.failed]
        for path, _ in found:
            try:
                scores.append({"path": str(path), "score": round(deblurrer.score(path), 4)})
            except DeblurError as exc:
                failed.append({"path": str(path), "error": str(exc)})
                reporter.error(str(exc))
        scores.sort(key=lambda item: item["score"])
        keep = scores
        if keep_sharpest is not None:
            keep = keep[:keep_sharpest]
        if threshold is not None:
            keep = [item for item in keep if item["score"] <= threshold]
        choosing = keep_sharpest is not None or threshold is not None
        if as_json:
            Reporter.data({"scores": [{**item, "keep": item in keep} if choosing else item for item in scores],
                           "failed": failed, "model": deblurrer.model.source})
        elif choosing:
            for item in keep:
                reporter.out.print(item["path"], markup=False, highlight=False, soft_wrap=True)
        else:
            for item in scores:
                reporter.out.print(f"{item['score']:8.4f}  {item['path']}", markup=False, highlight=False,
                                   soft_wrap=True)
    raise typer.Exit(1 if failed else 0)

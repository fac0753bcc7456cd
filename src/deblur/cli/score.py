"""`deblur score PATHS`: how blurry is each photo? Sorted, sharpest first; pick the keepers of a burst."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from deblur.cli.console import Reporter, exit_on_errors
from deblur.cli.run import Json, Paths, Quiet
from deblur.errors import UsageError

HELP = """Score how much blur is in each photo, sharpest first: the width of its strongest edges in pixels
(about 2.5 when sharp; more blur, higher), measured above the photo's noise and JPEG artefacts so
that neither passes for sharpness. --keep-sharpest N or --threshold X prints only the photos worth
keeping (one path per line, for scripts), e.g. the best frames of a burst. No model is needed.
"""


def score(
    paths: Paths,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Also score photos in sub-folders.")] = False,
    keep_sharpest: Annotated[Optional[int], typer.Option("--keep-sharpest", min=1,
                                                         help="Print only the N sharpest photos.")] = None,
    threshold: Annotated[Optional[float], typer.Option(help="Print only photos scoring at most X.")] = None,
    quiet: Quiet = False, as_json: Json = False,
) -> None:
    reporter = Reporter(quiet=quiet)
    with exit_on_errors(reporter):
        from deblur.errors import DeblurError
        from deblur.imageio import read_photo
        from deblur.inputs import OutputOptions, Plan, collect
        from deblur.scoring import blur_score

        plan = Plan()
        found = collect(paths, recursive, OutputOptions(suffix=""), plan)
        for path, reason in plan.failed:
            reporter.error(f"{path}: {reason}")
        if not found and not plan.failed:
            raise UsageError("no photos found in the given paths")
        scores, failed = [], [{"path": str(p), "error": r} for p, r in plan.failed]
        for path, _ in found:
            try:
                scores.append({"path": str(path), "score": round(blur_score(read_photo(path).pixels), 3)})
            except DeblurError as exc:
                named = str(path) in str(exc)
                failed.append({"path": str(path), "error": str(exc)})
                reporter.error(str(exc) if named else f"{path}: {exc}")
        scores.sort(key=lambda item: item["score"])
        keep = scores
        if keep_sharpest is not None:
            keep = keep[:keep_sharpest]
        if threshold is not None:
            keep = [item for item in keep if item["score"] <= threshold]
        choosing = keep_sharpest is not None or threshold is not None
        if as_json:
            Reporter.data({"scores": [{**item, "keep": item in keep} if choosing else item for item in scores],
                           "failed": failed})
        elif choosing:
            for item in keep:
                reporter.out.print(item["path"], markup=False, highlight=False, soft_wrap=True)
        else:
            for item in scores:
                reporter.out.print(f"{item['score']:8.3f}  {item['path']}", markup=False, highlight=False,
                                   soft_wrap=True)
    raise typer.Exit(1 if failed else 0)

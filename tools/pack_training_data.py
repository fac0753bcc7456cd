"""Pack sharp training photos small enough to travel to a lent GPU machine with the working tree.

    python tools/pack_training_data.py                 # the default folders of ../shared/data/train-sharp -> gpu-pack/
    python tools/pack_training_data.py --folders sun-hays80 urban100 --max-mib 30

The device machine sees only the repository (at most 64 MiB with whatever is carried), not
../shared/data. The default folders leave out BSDS500's test split (201 small photos, 15 MiB):
all of train-sharp is 51 MiB, which with the repository's own 12+ MiB would not leave room. JPEGs are copied as they are (re-encoding would only add loss); PNG and TIFF
photos become JPEGs at --quality with full-resolution colour (4:4:4), which at 95 is far below the
noise and JPEG that training adds to the blurry inputs. The folder layout is kept, so the same
`--sharp` folders work on either machine. gpu-pack/ is git-ignored: name it in the device call's
`carry`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "train-sharp"
FOLDERS = ["bsds500/train", "bsds500/val", "sun-hays80", "urban100", "div2k", "mcmaster"]
JPEG = {".jpg", ".jpeg"}
LOSSLESS = {".png", ".tif", ".tiff"}


def pack(source: Path, target: Path, quality: int) -> int:
    """Copy or re-encode every photo under `source` into `target`; returns the bytes written."""
    total = 0
    for path in sorted(source.rglob("*")):
        suffix = path.suffix.lower()
        if not path.is_file() or suffix not in JPEG | LOSSLESS:
            continue
        relative = path.relative_to(source)
        if suffix in JPEG:
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
        else:
            destination = (target / relative).with_suffix(".jpg")
            destination.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(path) as image:
                image.convert("RGB").save(destination, quality=quality, subsampling=0)
        total += destination.stat().st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--folders", nargs="+", default=FOLDERS, help="folders of --source to pack")
    parser.add_argument("--output", type=Path, default=ROOT / "gpu-pack")
    parser.add_argument("--quality", type=int, default=95)
    parser.add_argument("--max-mib", type=float, default=40.0, help="refuse a pack larger than this (the working "
                                                                    "tree travels with it, 64 MiB in all)")
    args = parser.parse_args()
    if args.output.exists():
        shutil.rmtree(args.output)
    written = sum(pack(args.source / folder, args.output / folder, args.quality) for folder in args.folders) / 2**20
    print(f"{args.output}: {written:.1f} MiB")
    if written > args.max_mib:
        sys.exit(f"error: the pack is {written:.1f} MiB, over --max-mib {args.max_mib}; lower --quality or pack "
                 "fewer folders (--source)")


if __name__ == "__main__":
    main()

"""The README's picture: the same region of a blurry photo and of its restoration, side by side.

    python tools/before_after.py examples/car3.jpg examples/car3_deblur.jpg docs/car3_before_after.jpg \
        --box 300 250 500 375

--box LEFT TOP WIDTH HEIGHT picks the region (default: the centre half); it is shown at 1:1, with
no resampling, so what you see is what the model did.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--box", type=int, nargs=4, metavar=("LEFT", "TOP", "WIDTH", "HEIGHT"))
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--label", default="deblur (bundled xydeblur)", help="the right-hand side's caption")
    args = parser.parse_args()

    before, after = (ImageOps.exif_transpose(Image.open(p)).convert("RGB") for p in (args.before, args.after))
    if before.size != after.size:
        parser.error(f"the photos differ in size: {before.size} and {after.size}")
    width, height = before.size
    left, top, w, h = args.box or (width // 4, height // 4, width // 2, height // 2)
    region = (left, top, left + w, top + h)
    gap = 8
    sheet = Image.new("RGB", (2 * w + gap, h), "white")
    sheet.paste(before.crop(region), (0, 0))
    sheet.paste(after.crop(region), (w + gap, 0))
    draw = ImageDraw.Draw(sheet)
    for x, label in ((6, "blurry input"), (w + gap + 6, args.label)):
        draw.rectangle((x - 2, 4, x + 7 * len(label), 18), fill="black")
        draw.text((x, 5), label, fill="white")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output, quality=args.quality)
    print(f"wrote {args.output} ({sheet.size[0]}x{sheet.size[1]})")


if __name__ == "__main__":
    main()

"""Put bench/quality.py's measurements into the manifest and print them as the README's Results tables.

    python tools/record_metrics.py bench/results/quality.json

Rows whose method label starts with a manifest model's name become that model's `metrics`, each
beside the blurry input's score on the same images; every other model's metrics are left alone.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[1] / "weights_manifest.json"
BLURRY = "blurry input"


def model_of(label: str, names: list[str]) -> tuple[str, str] | None:
    """(model, setting) for a method label such as 'dvsr steps 10 x4' or 'xydeblur + adapt (...)'."""
    for name in sorted(names, key=len, reverse=True):
        if label == name or label.startswith(name + " "):
            return name, label[len(name):].strip() or "default"
    return None


def manifest_metrics(results: dict, names: list[str]) -> dict[str, list]:
    blurry = {(r["set"], r["images"]): r for r in results["results"] if r["method"] == BLURRY}
    metrics = defaultdict(list)
    for row in results["results"]:
        owner = model_of(row["method"], names)
        if owner is None:
            continue
        base = blurry[(row["set"], row["images"])]
        metrics[owner[0]].append({
            "set": row["set"], "images": row["images"], "setting": owner[1], "psnr": row["psnr"],
            "ssim": row["ssim"], "blurry_psnr": base["psnr"], "blurry_ssim": base["ssim"],
            "seconds_per_mp": row["seconds_per_mp"], "command": results["command"]})
    return metrics


def markdown_tables(results: dict) -> str:
    """One table per image scope: a row per method, PSNR / SSIM per set, and seconds per megapixel."""
    out = []
    scopes = list(dict.fromkeys(r["images"] for r in results["results"]))
    for scope in scopes:
        rows = [r for r in results["results"] if r["images"] == scope]
        sets = list(dict.fromkeys(r["set"] for r in rows))
        methods = list(dict.fromkeys(r["method"] for r in rows))
        out.append(f"Images: {scope}\n")
        out.append("| method | " + " | ".join(f"{s} PSNR / SSIM" for s in sets) + " | s/MP |")
        out.append("|---|" + "---|" * len(sets) + "---|")
        for method in methods:
            cells, speeds = [], []
            for set_name in sets:
                match = [r for r in rows if r["set"] == set_name and r["method"] == method]
                cells.append(f"{match[0]['psnr']:.2f} / {match[0]['ssim']:.3f}" if match else "-")
                speeds += [m["seconds_per_mp"] for m in match if m["seconds_per_mp"] is not None]
            speed = f"{sum(speeds) / len(speeds):.1f}" if speeds else "-"
            out.append(f"| {method} | " + " | ".join(cells) + f" | {speed} |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="bench/quality.py's JSON")
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    manifest = json.loads(MANIFEST.read_text())
    for name, rows in manifest_metrics(results, list(manifest["models"])).items():
        manifest["models"][name]["metrics"] = rows
        print(f"{name}: {len(rows)} measurements recorded")
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"\nMeasured with `{results['command']}` on {results['machine']}\n")
    print(markdown_tables(results))


if __name__ == "__main__":
    main()

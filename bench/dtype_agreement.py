"""float16 / bfloat16 agreement with float32 outputs, same seeds: the figures bench/RESULTS.md quotes.

Runs one InstructPix2Pix sweep through imgx itself (``dtype: [float32, float16, bfloat16]``, tiny random-weight
pipeline unless ``--weights`` names others) and prints, per dtype, the PSNR and SSIM of its outputs against the
float32 outputs (imgx's hardware-comparison rows, ``imgx/agreement.py``) and the number of invalid (NaN or black)
outputs. Usage::

    python bench/dtype_agreement.py                          # CPU, tiny, 64 px, 20 steps (a few minutes)
    python bench/dtype_agreement.py --device cuda --size 512 # on a GPU
    python bench/dtype_agreement.py --append bench/RESULTS.md

float16 on CPU is slow (no fast half kernels there); keep ``--size`` small on CPU.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import textwrap
from datetime import datetime, timezone
from pathlib import Path

SUITE = """
suite: dtype-agreement
seed: 0
cases:
  - id: dtype
    task: edit
    model: {{name: instruct-pix2pix, weights: {weights}}}
    data: {{name: photos, image_size: {size}, count: {count}}}
    prompts: ["make it look like a pencil sketch"]
    inference: {{num_inference_steps: {steps}, scheduler: euler-ancestral, warmup: 0, repeats: 1}}
    metrics: [ssim]
    device: {device}
    max_invalid: {count}
    sweep:
      dtype: [float32, float16, bfloat16]
"""


def agreement(args: argparse.Namespace) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Run the sweep; returns the agreement rows (psnr/ssim vs float32) and the invalid-output count per dtype."""
    from imgx.runner import run_suite

    folder = Path(args.out or tempfile.mkdtemp(prefix="imgx-dtype-"))
    suite = folder / "dtype.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    suite.write_text(textwrap.dedent(SUITE.format(weights=args.weights, size=args.size, count=args.count,
                                                  steps=args.steps, device=args.device)).lstrip())
    summary = run_suite(suite, folder / "run", quiet=True, report=False)
    invalid = {}
    for r in summary.records:
        if r["status"] != "ok":
            sys.exit(f"{r['case_id']}: {r['status']}: {r['detail']}")
        invalid[r["params"]["dtype"]] = sum(not o.get("valid", True) for o in r.get("outputs", []))
    with open(folder / "run" / "results.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["reference"] == "dtype=float32" and r["metric"] in ("psnr", "ssim")]
    return rows, invalid


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--count", type=int, default=2, help="photos (one prompt each)")
    p.add_argument("--weights", default="tiny")
    p.add_argument("--out", help="keep the suite and run directory here (default: a temporary folder)")
    p.add_argument("--append", help="append the table to this Markdown file (e.g. bench/RESULTS.md)")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows, invalid = agreement(args)
    by = {(r["dtype"], r["metric"]): float(r["value"]) for r in rows}
    lines = [f"dtype agreement with float32 outputs ({args.device}, weights {args.weights}, {args.size} px, "
             f"{args.steps} steps, {args.count} images, same seeds; bench/dtype_agreement.py, "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
             "| dtype | PSNR vs float32 | SSIM vs float32 | invalid outputs |", "|---|---|---|---|"]
    for dtype in ("float16", "bfloat16"):
        psnr, ssim = by.get((dtype, "psnr")), by.get((dtype, "ssim"))
        lines.append(f"| {dtype} | {'n/a' if psnr is None else f'{psnr:.1f} dB'} | "
                     f"{'n/a' if ssim is None else f'{ssim:.5f}'} | {invalid.get(dtype, 'n/a')} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

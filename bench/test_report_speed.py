"""Report rendering speed on a synthetic run of realistic size, as a ratio to a naive page built in-process.

The run: a colorizer, a GAN and an InstructPix2Pix sweep (3 image guidance x 3 text guidance x 3 schedulers x
2 step counts = 54 cases, 2 inputs x 2 prompts each: 216 output images at 64 px), written file by file.
The baseline is the least a report could do with the same files: pandas ``read_csv`` + ``to_html`` of the three
tables and every output image embedded as-is (base64 of the PNG). imgx's report also downscales and picks the
smaller encoding of each image, draws the plots (matplotlib to SVG) and builds the grids and summaries.
Goal: at most ``MAX_RATIO`` times the baseline.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pandas as pd
import pytest

from imgx.report import write_report
from tests.report.fixtures import make_run

MAX_RATIO = 40.0
SWEEP = {"edit_inputs": 2, "guidance": (1.0, 1.5, 2.0), "text_guidance": (5.0, 7.5, 10.0),
         "schedulers": ("ddim", "euler-ancestral", "dpm++-2m"), "steps": (10, 20), "image_size": 64}


def naive_report(out: Path, target: Path) -> float:
    """Tables as pandas HTML plus raw base64 images in one file. Returns seconds."""
    t0 = time.perf_counter()
    parts = ["<!DOCTYPE html><html><body>"]
    for name in ("results.csv", "outputs.csv", "history.csv"):
        parts.append(pd.read_csv(out / name).to_html(escape=True))
    for rel in pd.read_csv(out / "outputs.csv")["path"]:
        parts.append('<img src="data:image/png;base64,' + base64.b64encode((out / rel).read_bytes()).decode() + '">')
    parts.append("</body></html>")
    target.write_text("".join(parts), encoding="utf-8")
    return time.perf_counter() - t0


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("bench") / "run", **SWEEP)


def test_report_rendering_speed(benchmark, run_dir, tmp_path):
    write_report(run_dir, tmp_path / "warm.html")  # imports (matplotlib, jinja2, pandas) are not the report's cost
    naive = min(naive_report(run_dir, tmp_path / "naive.html") for _ in range(3))
    benchmark.pedantic(write_report, args=(run_dir, tmp_path / "report.html"), rounds=3, iterations=1)
    ours = min(benchmark.stats.stats.data)
    ratio = ours / naive
    size = (tmp_path / "report.html").stat().st_size
    benchmark.extra_info.update(naive_seconds=naive, report_seconds=ours, ratio=ratio, report_bytes=size,
                                naive_bytes=(tmp_path / "naive.html").stat().st_size)
    print(f"report {ours:.2f} s vs naive {naive:.3f} s: ratio {ratio:.1f} (goal <= {MAX_RATIO}); "
          f"report {size / 1e6:.2f} MB, naive {(tmp_path / 'naive.html').stat().st_size / 1e6:.2f} MB")
    assert size < 8_000_000
    assert ratio <= MAX_RATIO

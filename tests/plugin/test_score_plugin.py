"""``task: score`` under ``pytest SUITE.yaml``: baselines and gates apply to images made elsewhere unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestAssertRewriteWarning")

SUITE = """suite: vendor
cases:
  - id: vendor
    task: score
    data: {name: outputs, path: out, target: truth}
    metrics: [psnr, ssim]
    gates: {psnr: "> 15"}
"""


def _write(folder, noise: float) -> None:
    """``truth/`` smooth images and ``out/`` the same plus Gaussian noise of std ``noise`` (uint8 levels)."""
    rng = np.random.default_rng(0)
    for side in ("truth", "out"):
        (folder / side).mkdir(exist_ok=True)
    for i in range(8):
        coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        truth = np.asarray(Image.fromarray(coarse).resize((16, 16), Image.Resampling.BICUBIC))
        out = np.clip(truth + rng.normal(0, noise, truth.shape).round(), 0, 255).astype(np.uint8)
        Image.fromarray(truth).save(folder / "truth" / f"{i}.png")
        Image.fromarray(out).save(folder / "out" / f"{i}.png")


def test_score_case_gates_and_regresses_against_a_baseline(pytester):
    pytester.makefile(".yaml", vendor=SUITE)
    _write(pytester.path, noise=4.0)
    first = pytester.runpytest("vendor.yaml", "--imgx-out", "run1", "--imgx-no-report", "--imgx-baseline", "base.json",
                               "--imgx-update-baseline")
    first.assert_outcomes(passed=1)
    # New outputs from the vendor, noisier: the same suite now reports a regression against the baseline.
    _write(pytester.path, noise=24.0)
    second = pytester.runpytest("vendor.yaml", "--imgx-out", "run2", "--imgx-no-report", "--imgx-baseline", "base.json")
    second.assert_outcomes(failed=1)
    second.stdout.fnmatch_lines(["*regression: vendor: psnr *higher is better*"])
    # Much noisier still: the gate fails too.
    _write(pytester.path, noise=120.0)
    third = pytester.runpytest("vendor.yaml", "--imgx-out", "run3", "--imgx-no-report")
    third.assert_outcomes(failed=1)
    third.stdout.fnmatch_lines(["*psnr = *, required > 15*"])

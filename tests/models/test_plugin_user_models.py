"""``pytest SUITE.yaml`` with a baseline, on models of the third-party demo package (entry point and import path)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("demo_models")

SUITE = """suite: demo
seed: 0
cases:
  - id: colorizer
    task: colorize
    model: {name: demo-colorizer, width: 4}
    data: {name: photos, image_size: 16, train: 64, test: 16}
    train: {epochs: 1, batch_size: 32}
    metrics: [mse, psnr, ssim]
    gates: {mse: "< 10 * gray-copy"}
  - id: editor
    task: edit
    model: {name: "imgx_demo_models.edit:PerfectEditor"}
    data: {name: photo-edits, image_size: 16, test: 1}
    inference: {warmup: 0, repeats: 1}
    metrics: [target_mse, instruction_accuracy]
    gates: {target_mse: "< identity", instruction_accuracy: ">= 1"}
"""


@pytest.mark.slow  # quality tier (issue 26): three pytest runs in subprocesses (~24 s)
def test_pytest_runs_user_models_against_a_baseline(pytester):
    pytester.makefile(".yaml", demo=SUITE)
    first = pytester.runpytest_subprocess("demo.yaml", "--imgx-out", "run1", "--imgx-no-report",
                                          "--imgx-baseline", "base.json", "--imgx-update-baseline")
    first.assert_outcomes(passed=2)
    baseline = json.loads((pytester.path / "base.json").read_text())
    assert set(baseline["cases"]) == {"colorizer", "editor"}
    second = pytester.runpytest_subprocess("demo.yaml", "--imgx-out", "run2", "--imgx-no-report",
                                           "--imgx-baseline", "base.json")
    second.assert_outcomes(passed=2)
    # The gate names the reference row and its value when it fails.
    pytester.makefile(".yaml", strict=SUITE.replace('"< 10 * gray-copy"', '"< 0.01 * gray-copy"'))
    third = pytester.runpytest_subprocess("strict.yaml", "--imgx-out", "run3", "--imgx-no-report")
    third.assert_outcomes(passed=1, failed=1)
    third.stdout.fnmatch_lines(["*mse = *, required < 0.01 * gray-copy (0.01 * gray-copy * = *)*"])

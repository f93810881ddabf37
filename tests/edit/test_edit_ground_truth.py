"""Ground-truth rows through the real edit task (tiny pipeline: plumbing, not quality)."""

from __future__ import annotations

import csv

from imgx.runner import run_suite
from tests.edit.conftest import edit_suite


def test_photo_edits_case_gives_ground_truth_rows(tmp_path):
    suite = edit_suite(tmp_path, prompts="", metrics="[target_mse, target_ssim, input_ssim, instruction_accuracy]",
                       data="{name: photo-edits, image_size: 16, train: 8, test: 2, instructions: [invert, darker]}")
    summary = run_suite(suite, tmp_path / "out", quiet=True, report=False)
    assert summary.exit_code == 0, summary.failed_cases
    with open(tmp_path / "out" / "results.csv", newline="", encoding="utf-8") as fh:
        rows = {(r["metric"], r["reference"]): r for r in csv.DictReader(fh)}
    for metric in ("target_mse", "target_ssim", "input_ssim", "instruction_accuracy",
                   "target_mse[invert]", "instruction_accuracy[darker]"):
        for reference in ("", "identity", "oracle"):
            assert rows[(metric, reference)]["status"] == "ok", (metric, reference, rows[(metric, reference)])
    assert rows[("target_mse", "")]["n"] == "4" and rows[("target_mse[invert]", "")]["n"] == "2"
    assert float(rows[("target_mse", "oracle")]["value"]) == 0.0
    assert float(rows[("instruction_accuracy", "oracle")]["value"]) == 1.0
    assert ("target_mse", "vae-floor") not in rows  # only for a pipeline trained here

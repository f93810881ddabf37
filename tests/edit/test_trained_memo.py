"""A ``weights: train`` sweep trains once; only the point that trained says "trained here" (issue 24)."""

from __future__ import annotations

from imgx.results import load_run
from imgx.runner import run_suite
from tests.helpers import private_imgx_cache, write_suite


def test_only_the_point_that_trained_reports_training_time(tmp_path):
    suite = write_suite(tmp_path, """
        suite: memo
        seed: 0
        cases:
          - id: sweep
            task: edit
            model: {name: instruct-pix2pix, weights: train}
            data: {name: photo-edits, image_size: 16, train: 64, test: 1}
            train: {epochs: 1, batch_size: 32, lr: 1.0e-3}
            inference: {num_inference_steps: 2, warmup: 0, repeats: 1}
            metrics: [input_ssim]
            sweep: {image_guidance_scale: [1.0, 2.0]}
        """)
    with private_imgx_cache(tmp_path / "cache"):  # an empty disk cache: the first point really trains
        summary = run_suite(suite, tmp_path / "out", quiet=True, report=False)
    assert summary.exit_code == 0, summary.failed_cases
    _, records = load_run(tmp_path / "out")
    rows = {r["case_id"]: next(x for x in r["rows"] if x["metric"] == "train_seconds") for r in records}
    first, second = rows["sweep[image_guidance_scale=1.0]"], rows["sweep[image_guidance_scale=2.0]"]
    assert first["value"] > 0 and first["detail"].startswith("trained here")
    assert second["value"] == 0.0, second
    assert "reused" in second["detail"] and "sweep[image_guidance_scale=1.0]" in second["detail"]
    assert "trained here" not in second["detail"].split(";")[0]

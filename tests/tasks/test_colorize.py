"""The colorizer task end to end: it learns (test MSE well below the gray-copy reference)."""

import pytest

from imgx.runner import run_suite
from tests.helpers import write_suite

LEARN = """
suite: learn
seed: 0
cases:
  - id: colorizer
    task: colorize
    model: {name: MODEL}
    data: {name: photos, image_size: 32, train: 2048, test: 256}
    train: {epochs: 4, batch_size: 64, lr: 1.0e-3}
    metrics: [mse, psnr, ssim, latency]
"""


@pytest.mark.slow  # quality tier (issue 26): a learning check (~8 s per model)
@pytest.mark.parametrize("model", ["encoder-decoder", "unet"])
def test_colorizer_learns(tmp_path, model):
    summary = run_suite(write_suite(tmp_path, LEARN.replace("MODEL", model)), tmp_path / "run", quiet=True,
                        report=False)
    (record,) = summary.records
    assert record["status"] == "ok", record["detail"]
    value = {(r["metric"], r["reference"]): r["value"] for r in record["rows"] if r["status"] == "ok"}
    assert value[("mse", "")] < 0.8 * value[("mse", "gray-copy")]
    assert value[("psnr", "")] > value[("psnr", "gray-copy")] + 1.0
    losses = [h["loss"] for h in record["history"]]
    assert losses[-1] < losses[0]
    assert value[("train_images_per_second", "")] > 0
    assert value[("latency_ms_p90", "")] >= value[("latency_ms_p50", "")] > 0

"""Deterministic cost rows: FLOPs against hand counts, per-part splits, UNet evaluations, exact comparison."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from imgx.compare import Measurement, compare_measurements, default_tolerance, gated_by_default
from imgx.metrics import metric_info
from imgx.metrics.cost import measure_cost
from imgx.runner import run_suite
from tests.edit.conftest import edit_suite
from tests.helpers import TINY_COLORIZE, write_suite


def _rows(rows):
    return {r.metric: r for r in rows}


class Twice(nn.Module):
    """Runs the same layer ``times`` times and averages: the output is the same, the work scales."""

    def __init__(self, times: int):
        super().__init__()
        self.layer = nn.Linear(16, 8, bias=False)
        self.times = times

    def forward(self, x):
        return sum(self.layer(x) for _ in range(self.times)) / self.times


def test_flops_parameters_match_hand_count():
    model = Twice(1)
    x = torch.randn(4, 16)
    out, rows = measure_cost(lambda: model(x), parts={"model": [model]}, images=4)
    by = _rows(rows)
    assert out.shape == (4, 8)
    assert by["flops_per_image"].value == 2 * 16 * 8  # one multiply-add per weight per image, 2 FLOPs each
    assert by["parameters"].value == 16 * 8
    assert "model_evaluations_per_image" not in by and "cuda_peak_allocated_mb" not in by
    assert not any(r.metric.startswith("flops_per_image[") for r in rows)  # one part: no split


def test_doubled_work_doubles_flops_exactly_and_output_equal():
    torch.manual_seed(0)
    one, two = Twice(1), Twice(2)
    two.load_state_dict(one.state_dict())
    x = torch.randn(3, 16)
    out1, r1 = measure_cost(lambda: one(x), parts={"m": [one]}, images=3)
    out2, r2 = measure_cost(lambda: two(x), parts={"m": [two]}, images=3)
    assert _rows(r2)["flops_per_image"].value == 2 * _rows(r1)["flops_per_image"].value
    assert _rows(r2)["parameters"].value == _rows(r1)["parameters"].value
    assert torch.equal(out1, out2)


def test_parts_split_and_evaluated_rows():
    a, b = nn.Linear(8, 8), nn.Linear(8, 4)

    def fn():
        x = torch.randn(2, 8)
        for _ in range(3):  # three "denoising steps" of a, one "decode" of b
            x = a(x)
        return b(x)

    _, rows = measure_cost(fn, parts={"unet": [a], "vae": [b]}, images=2, evaluated=a)
    by = _rows(rows)
    assert by["flops_per_image[unet]"].value == 3 * 2 * 8 * 8
    assert by["flops_per_image[vae]"].value == 2 * 8 * 4
    assert by["flops_per_image"].value == by["flops_per_image[unet]"].value + by["flops_per_image[vae]"].value
    assert by["model_evaluations_per_image"].value == 3  # 3 calls of 2 rows for 2 images
    assert by["parameters"].value == 8 * 8 + 8 + 8 * 4 + 4
    assert metric_info("flops_per_image[unet]").kind == "cost"


def test_compare_is_exact_for_cost_rows():
    assert default_tolerance("flops_per_image") == "0" and gated_by_default("flops_per_image")
    same = compare_measurements("c", "flops_per_image", "", Measurement(1000.0, ci_low=900, ci_high=1100),
                                Measurement(1000.0), tolerance="0", defaulted=True)
    assert same.verdict == "unchanged"
    # One FLOP more is a regression: no noise band even when a CI is present, no default tolerance.
    up = compare_measurements("c", "flops_per_image", "", Measurement(1000.0, ci_low=900, ci_high=1100),
                              Measurement(1001.0), tolerance="0", defaulted=True)
    assert up.verdict == "regression" and up.noise is None
    down = compare_measurements("c", "parameters", "", Measurement(10.0), Measurement(8.0), tolerance="0",
                                defaulted=True)
    assert down.verdict == "improvement"
    # A suite tolerance still applies.
    tol = compare_measurements("c", "flops_per_image", "", Measurement(1000.0), Measurement(1001.0), tolerance="1%")
    assert tol.verdict == "unchanged"


def test_colorize_cost_rows_through_the_runner(tmp_path):
    suite = write_suite(tmp_path, TINY_COLORIZE.replace("train: 512, test: 64", "train: 64, test: 16")
                        .replace("epochs: 2", "epochs: 1").replace("[mse, psnr, ssim]", "[mse, cost]"))
    summary = run_suite(suite, tmp_path / "out", quiet=True)
    rows = {r["metric"]: r for r in summary.records[0]["rows"]}
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Latency and cost" in html and "flops_per_image" in html
    model = __import__("imgx.models.colorizer", fromlist=["EncoderDecoder"]).EncoderDecoder()
    assert rows["parameters"]["value"] == sum(p.numel() for p in model.parameters())
    assert rows["flops_per_image"]["value"] > 0 and rows["flops_per_image"]["unit"] == "FLOP"
    assert "latency_ms_p50" not in rows  # cost alone: counts without timing


@pytest.mark.parametrize("batched", [False, True])
def test_edit_unet_evaluations_follow_guidance(tmp_path, batched):
    sweep = "    sweep: {guidance_scale: [1.0, 7.5]}\n"
    suite = edit_suite(tmp_path, metrics="[cost]", prompts='["make it a pencil sketch"]',
                       data="{name: photos, image_size: 32, count: 1}", sweep=sweep)
    if not batched:
        text = suite.read_text().replace("repeats: 1}", "repeats: 1, batch_sweep: false}")
        suite.write_text(text)
    summary = run_suite(suite, tmp_path / "out", quiet=True, report=False)
    evals = {}
    for rec in summary.records:
        assert rec["status"] == "ok", rec["detail"]
        rows = {r["metric"]: r for r in rec["rows"]}
        evals[rec["params"]["guidance_scale"]] = rows["model_evaluations_per_image"]["value"]
        parts = [rows[f"flops_per_image[{p}]"]["value"] for p in ("unet", "vae", "text_encoder")]
        assert all(v > 0 for v in parts)
        assert sum(parts) <= rows["flops_per_image"]["value"]
    if not batched:  # 3 steps; guidance 1.0 runs the conditional branch only, 7.5 all three of InstructPix2Pix
        assert evals == {1.0: 3, 7.5: 9}
    else:  # the group's loops: fewer rows per image than one bare call per point, the same for every case
        assert evals[1.0] == evals[7.5] and evals[1.0] < (3 + 9) / 2


def test_gate_on_a_cost_row_needs_cost_or_latency(tmp_path):
    from imgx.errors import SuiteError
    from imgx.suite import load_suite

    text = (TINY_COLORIZE.replace("[mse, psnr, ssim]", "[mse]")
            + "    gates: {flops_per_image: '<= 1e9'}\n    regression: {parameters: '0'}\n")
    with pytest.raises(SuiteError) as info:
        load_suite(write_suite(tmp_path, text))
    assert any("gate on 'flops_per_image' needs 'cost'" in p for p in info.value.problems())
    load_suite(write_suite(tmp_path, text.replace("[mse]", "[mse, cost]")))


def test_every_task_reports_cost_rows(tmp_path):
    """generate, translate and text-to-image (beside colorize and edit above) count what they time."""
    from tests.t2i.conftest import t2i_suite

    text = """
suite: cost-tasks
seed: 0
cases:
  - id: gan
    task: generate
    model: {name: dcgan, latent_dim: 16}
    data: {name: digits, image_size: 28, train: 64, test: 64}
    train: {epochs: 1, batch_size: 64}
    samples: 64
    metrics: [cost]
  - id: cyc
    task: translate
    model: {name: cyclegan, width: 4, blocks: 1}
    data: {name: photo-styles, style: sepia, image_size: 16, train: 16, test: 8}
    train: {epochs: 1, batch_size: 8}
    metrics: [target_mse, cost]
"""
    summary = run_suite(write_suite(tmp_path, text), tmp_path / "out", quiet=True, report=False)
    (tmp_path / "t2i").mkdir()
    t2i = run_suite(t2i_suite(tmp_path / "t2i", metrics="[cost]"), tmp_path / "out-t2i", quiet=True, report=False)
    by_case = {r["case_id"]: {row["metric"]: row for row in r["rows"]} for r in summary.records + t2i.records}
    for case_id, rows in by_case.items():
        assert rows["flops_per_image"]["status"] == "ok" and rows["flops_per_image"]["value"] > 0, case_id
        assert rows["parameters"]["value"] > 0, case_id
    # Text-to-image: guidance 7.5 runs the conditional and unconditional branch at each of the 3 steps.
    assert by_case["t2i"]["model_evaluations_per_image"]["value"] == 6
    assert {"flops_per_image[unet]", "flops_per_image[vae]", "flops_per_image[text_encoder]"} <= set(by_case["t2i"])

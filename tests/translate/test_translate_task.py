"""The translate task through the real runner, on small but real training: the issue's pix2pix targets that a
short recipe already shows (gray beats identity and is at most the colorizer's MSE on the same crops, edges SSIM
above identity), CycleGAN's rows (hidden-truth metrics, cycle errors both ways, history) on a tiny recipe, and
the report section. CycleGAN's quality targets need longer training: test_translate_fid_slow.py."""

from __future__ import annotations

import math

import pytest

from imgx.report import write_report
from imgx.runner import run_suite
from tests.helpers import write_suite

SUITE = """
suite: translate-short
seed: 0
defaults:
  task: translate
  train: {epochs: 3, batch_size: 16, lr: 1.0e-3}
  cpu_threads: 1   # small convolutions: one thread is as fast, and immune to a busy machine's oversubscription
cases:
  - id: p2p-gray
    model: {name: pix2pix, width: 8}
    data: {name: photo-pairs, pair: gray, image_size: 32, train: 512, test: 128}
    metrics: [mse, psnr, ssim, target_ssim]
  - id: colorizer-gray
    task: colorize
    model: {name: encoder-decoder}
    data: {name: photo-pairs, pair: gray, image_size: 32, train: 512, test: 128}
    train: {epochs: 3, batch_size: 64, lr: 1.0e-3}
    metrics: [mse, psnr, ssim]
  - id: p2p-edges
    model: {name: pix2pix, width: 8}
    data: {name: photo-pairs, pair: edges, image_size: 32, train: 256, test: 64}
    train: {epochs: 2}
    metrics: [mse, ssim]
  - id: cyc-sepia
    model: {name: cyclegan, width: 4, blocks: 1}
    data: {name: photo-styles, style: sepia, image_size: 16, train: 32, test: 16}
    train: {epochs: 2, batch_size: 8, lr: 1.0e-3}
    metrics: [target_mse, target_ssim, mse]
  - id: cyc-weights
    model: {name: cyclegan, width: 4, blocks: 1, lambda_cycle: 2}
    data: {name: photo-styles, style: sepia, image_size: 16, train: 32, test: 16}
    train: {epochs: 1, batch_size: 8}
    metrics: [target_mse]
    sweep: {lambda_identity: [0, 5]}
  - id: cyc-gray-pairs   # CycleGAN ignores the pairing; 1 -> 3 channels: no identity loss
    model: {name: cyclegan, width: 4, blocks: 1}
    data: {name: photo-pairs, pair: gray, image_size: 16, train: 32, test: 16}
    train: {epochs: 1, batch_size: 8}
    metrics: [mse]
"""


def _values(record):
    return {(r["metric"], r["reference"]): r["value"] for r in record["rows"] if r["status"] == "ok"}


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("translate")
    summary = run_suite(write_suite(out, SUITE), out / "run", quiet=True, report=False)
    records = {r["case_id"]: r for r in summary.records}
    for r in records.values():
        assert r["status"] == "ok", (r["case_id"], r["detail"])
    return out / "run", records


def test_pix2pix_gray_beats_identity_and_matches_the_colorizer_on_the_same_crops(short_run):
    _, records = short_run
    p2p, col = _values(records["p2p-gray"]), _values(records["colorizer-gray"])
    assert p2p[("mse", "")] < p2p[("mse", "identity")] < p2p[("mse", "untrained")]
    # identity here is the colorizer's gray-copy: the same crops (the gray pair is uint8-rounded luma, the
    # colorizer's input the unrounded luma of the same tensor: equal to rounding)
    assert math.isclose(p2p[("mse", "identity")], col[("mse", "gray-copy")], rel_tol=1e-3)
    assert p2p[("mse", "")] <= col[("mse", "")], (p2p[("mse", "")], col[("mse", "")])
    unavailable = [r for r in records["p2p-gray"]["rows"] if r["metric"] == "target_ssim"]
    assert {r["status"] for r in unavailable} == {"unavailable"} and "paired data" in unavailable[0]["detail"]


def test_pix2pix_edges_ssim_above_identity(short_run):
    _, records = short_run
    v = _values(records["p2p-edges"])
    assert v[("ssim", "")] > v[("ssim", "identity")]


def test_cyclegan_scores_against_the_hidden_truth_with_cycle_errors_both_ways(short_run):
    _, records = short_run
    rec = records["cyc-sepia"]
    v = _values(rec)
    for name in ("target_mse", "target_ssim"):
        assert {(name, ref) for ref in ("", "identity", "untrained")} <= set(v)
    assert v[("target_ssim", "identity")] > 0.5  # sepia keeps the structure: copying the input scores well
    for name in ("cycle_mse_aba", "cycle_mse_bab"):
        assert v[(name, "")] >= 0 and (name, "untrained") in v and (name, "identity") not in v
    assert {r["status"] for r in rec["rows"] if r["metric"] == "mse"} == {"unavailable"}  # no pairs: no mse
    assert {"cycle_loss", "identity_loss", "d_a_loss", "d_b_loss", "gan_loss"} <= set(rec["history"][0])
    # The paper's schedule: constant for the first half of the steps, then linearly to zero.
    assert [h["lr"] for h in rec["history"]] == pytest.approx([1e-3, 0.0])
    gray = records["cyc-gray-pairs"]
    assert {("mse", ref) for ref in ("", "identity", "untrained")} <= set(_values(gray))
    assert gray["history"][0]["identity_loss"] == 0 and "differ in channels" in gray["info"]["model"]["lambda_identity"]


def test_cyclegan_loss_weights_reach_the_generator_loss(short_run):
    _, records = short_run
    for weight in (0, 5):
        rec = records[f"cyc-weights[lambda_identity={weight}]"]
        assert rec["info"]["model"]["lambda_cycle"] == 2 and rec["info"]["model"]["lambda_identity"] == weight
        h = rec["history"][0]
        expected = h["gan_loss"] + 2 * h["cycle_loss"] + weight * 2 * h["identity_loss"]
        assert h["g_loss"] == pytest.approx(expected, rel=1e-4)
    assert records["cyc-weights[lambda_identity=0]"]["history"][0]["identity_loss"] == 0
    assert records["cyc-weights[lambda_identity=5]"]["history"][0]["identity_loss"] > 0


def test_rows_history_grids_and_the_report_section(short_run):
    out, records = short_run
    rec = records["p2p-gray"]
    assert [h["epoch"] for h in rec["history"]] == [1, 2, 3]
    assert {"g_loss", "l1_loss", "gan_loss", "d_loss"} <= set(rec["history"][0])
    assert len(rec["artifacts"]["samples_per_epoch"]) == 3
    assert all((out / p).is_file() for p in rec["artifacts"]["samples_per_epoch"])
    v = _values(rec)
    assert v[("train_images_per_second", "")] > 0 and "trained here" in rec["info"]["trained"]
    html = write_report(out).read_text()
    assert "Image-to-image translation (pix2pix, CycleGAN)" in html
    assert "All translate cases against identity and untrained" in html
    assert "cycle_mse_aba (untrained)" in html

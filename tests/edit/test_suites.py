"""The shipped InstructPix2Pix suites validate, and their structure runs end to end on the tiny pipeline."""

from __future__ import annotations

import csv

import pytest

from imgx.runner import run_suite
from imgx.suite import expand, load_suite
from tests.helpers import ROOT

SUITES = ["ip2p-guidance", "ip2p-schedulers", "ip2p-hardware"]


@pytest.mark.parametrize("name", SUITES)
def test_shipped_suite_validates_with_real_weights(name):
    suite = load_suite(ROOT / "suites" / f"{name}.yaml")
    cases = expand(suite)
    real = [c for c in cases if c.spec.model.weights != "train"]  # ip2p-guidance also has a trained-here variant
    assert real and all(c.spec.model.weights == "timbrooks/instruct-pix2pix" for c in real)
    assert all("slow" in c.marks for c in cases)


def test_guidance_grid_covers_the_recipe():
    cases = expand(load_suite(ROOT / "suites" / "ip2p-guidance.yaml"))
    points = {(c.params["image_guidance_scale"], c.params["guidance_scale"]) for c in cases if c.base_id == "guidance"}
    assert (2.0, 10.0) in points and (1.0, 5.0) in points and (2.2, 10.0) in points
    assert {c.spec.inference.num_inference_steps for c in cases if c.base_id == "guidance"} == {40}
    for base in ("guidance", "trained"):  # guidance does not change the seed: points compare image for image
        assert len({c.seed for c in cases if c.base_id == base}) == 1
    trained = [c for c in cases if c.base_id == "trained"]
    assert len(trained) == 16 and {c.spec.data.name for c in trained} == {"photo-edits"}


def test_hardware_suite_on_the_tiny_pipeline_cpu(tmp_path):
    """ip2p-hardware with weights: tiny at 32 px, 2 steps: CPU cases run in every dtype, CUDA cases skip."""
    text = (ROOT / "suites" / "ip2p-hardware.yaml").read_text(encoding="utf-8")
    for old, new in [("weights: timbrooks/instruct-pix2pix", "weights: tiny"), ("image_size: 512", "image_size: 32"),
                     ("num_inference_steps: 20", "num_inference_steps: 2"), ("repeats: 5", "repeats: 1"),
                     ("warmup: 1", "warmup: 0"),
                     ("[clip_score, clip_image_similarity, ssim, psnr, latency]", "[ssim, latency]")]:
        assert old in text
        text = text.replace(old, new)
    (tmp_path / "hw.yaml").write_text(text, encoding="utf-8")
    summary = run_suite(tmp_path / "hw.yaml", tmp_path / "out", quiet=True, report=False)
    by_id = {r["case_id"]: r for r in summary.records}
    for dtype in ("float32", "float16", "bfloat16"):
        record = by_id[f"dtype[device=cpu,dtype={dtype}]"]
        assert record["status"] == "ok", record["detail"]
        assert record["info"]["model"]["dtype"] == dtype and record["dtype"] == dtype
    cuda = [r for r in summary.records if r["device"] == "cuda"]
    assert len(cuda) == 11
    import torch

    if not torch.cuda.is_available():
        assert all(r["status"] == "skipped" for r in cuda)
    with open(tmp_path / "out" / "outputs.csv", newline="", encoding="utf-8") as fh:
        seeds = {(row["input_name"], row["seed"]) for row in csv.DictReader(fh)}
    assert len(seeds) == 2  # same seeds across devices and dtypes

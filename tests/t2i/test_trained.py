"""``weights: train`` end to end: a micro Stable Diffusion and an in-domain CLIP trained here on the digits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgx.results import load_run
from imgx.runner import run_suite
from tests.t2i.conftest import t2i_suite

SHORT = dict(model="{name: stable-diffusion, weights: train}",
             data="{name: digits, image_size: 16, train: 128, test: 40}", prompts=None, samples=2,
             inference="{num_inference_steps: 4, guidance_scale: 3.0, scheduler: ddim, warmup: 0, repeats: 1}",
             metrics="[prompt_accuracy, clip_score, fid, latency]",
             extra="    train: {epochs: 1, batch_size: 64, lr: 1.0e-3}\n"
                   "    metric_options: {clip_score: {model: train}}\n")


def _csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("t2i-train")
    summary = run_suite(t2i_suite(folder, **SHORT), folder / "out", quiet=True, report=False)
    return summary, folder / "out"


def test_short_recipe_end_to_end(trained_run):
    summary, out = trained_run
    assert summary.exit_code == 0, summary.failed_cases
    rows = {(r["metric"], r["reference"]): r for r in _csv(out / "results.csv")}
    for key in (("prompt_accuracy", ""), ("prompt_accuracy", "untrained"), ("prompt_accuracy", "real-split"),
                ("fid", ""), ("fid", "untrained"), ("fid", "real-split"), ("clip_score", ""),
                ("clip_score", "real-split"), ("train_seconds", ""), ("latency_ms_p50", "")):
        assert rows[key]["status"] == "ok", (key, rows[key]["detail"])
    assert rows[("fid", "")]["n"] == "20"  # ten captions x 2 samples
    assert "reference has 1 channel(s), outputs 3: the grey channel repeated to RGB" in rows[("fid", "")]["detail"]
    clip = rows[("clip_score", "")]["detail"]
    assert "in-domain CLIP trained here" in clip and "NOT comparable" in clip and "zero-shot accuracy" in clip
    # the real split is far closer to the held-out digits than a model that saw one epoch
    assert float(rows[("fid", "real-split")]["value"]) < float(rows[("fid", "")]["value"])
    history = _csv(out / "history.csv")
    assert {h["stage"] for h in history} == {"vae", "denoiser"}
    assert [int(h["epoch"]) for h in history] == list(range(1, len(history) + 1))  # one axis across the stages
    assert all(float(h[f"{h['stage']}_loss"]) > 0 for h in history)
    record = load_run(out)[1][0]
    assert "trained here" in record["info"]["label"] and record["info"]["prompt_source"].startswith("distinct")
    assert len(record["info"]["prompts"]) == 10 and record["info"]["trained"]["reused"] is False
    assert (out / record["artifacts"]["model"] / "model_index.json").is_file()


def test_the_run_directory_copy_loads_and_reproduces_with_bare_diffusers(trained_run):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    _, out = trained_run
    record = load_run(out)[1][0]
    pipe = StableDiffusionPipeline.from_pretrained(out / record["artifacts"]["model"])
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    o = _csv(out / "outputs.csv")[3]
    seeds = json.loads(o["call_seeds"])
    images = pipe(o["prompt"], num_images_per_prompt=len(seeds), num_inference_steps=int(o["num_inference_steps"]),
                  guidance_scale=float(o["guidance_scale"]),
                  generator=[torch.Generator("cpu").manual_seed(s) for s in seeds]).images
    np.testing.assert_array_equal(np.asarray(images[int(o["sample"])]), np.asarray(Image.open(out / o["path"])))


def test_a_second_case_with_the_same_recipe_reuses_the_cached_model(trained_run, tmp_path):
    _, first = trained_run
    second = {**SHORT, "metrics": "[prompt_accuracy]", "extra": "    train: {epochs: 1, batch_size: 64, lr: 1.0e-3}\n"}
    run_suite(t2i_suite(tmp_path, **second), tmp_path / "out", quiet=True, report=False)
    record = load_run(tmp_path / "out")[1][0]
    assert record["info"]["trained"]["reused"] is True
    assert record["info"]["trained"]["folder"] == load_run(first)[1][0]["info"]["trained"]["folder"]
    assert len(_csv(tmp_path / "out" / "history.csv")) > 0  # the history travels with the cached model


def test_sweep_points_after_the_first_report_zero_training_seconds(trained_run, tmp_path):
    """One model serves the whole sweep: only the first point reports its training time; the others say who."""
    sweep = {**SHORT, "metrics": "[prompt_accuracy]",
             "inference": "{num_inference_steps: 4, scheduler: ddim, warmup: 0, repeats: 1}",
             "extra": "    train: {epochs: 1, batch_size: 64, lr: 1.0e-3}\n    sweep: {guidance_scale: [2.0, 3.0]}\n"}
    run_suite(t2i_suite(tmp_path, **sweep), tmp_path / "out", quiet=True, report=False)
    rows = {r["case_id"]: r for r in _csv(tmp_path / "out" / "results.csv") if r["metric"] == "train_seconds"}
    first, second = rows["t2i[guidance_scale=2.0]"], rows["t2i[guidance_scale=3.0]"]
    assert float(first["value"]) > 0 and first["detail"].startswith("trained here")
    assert float(second["value"]) == 0.0
    assert second["detail"].startswith("reused, trained by t2i[guidance_scale=2.0]")

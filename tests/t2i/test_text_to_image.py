"""The text-to-image task end to end through the real runner, on the tiny (random-weight) pipeline."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgx.errors import WeightsError
from imgx.results import load_run
from imgx.runner import run_suite
from tests.t2i.conftest import t2i_suite


def _csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Two prompts (one names a digit) x 2 samples, swept over two schedulers, via ``python -m imgx run``'s code."""
    folder = tmp_path_factory.mktemp("t2i-run")
    suite = t2i_suite(folder, extra="    sweep:\n      scheduler: [ddim, euler-ancestral]\n")
    summary = run_suite(suite, folder / "out", quiet=True, report=True)
    return summary, folder / "out"


def test_rows_outputs_and_provenance(tiny_run):
    summary, out = tiny_run
    assert summary.exit_code == 0, summary.failed_cases
    rows = {(r["case_id"], r["metric"], r["reference"]): r for r in _csv(out / "results.csv")}
    for case_id in ("t2i[scheduler=ddim]", "t2i[scheduler=euler-ancestral]"):
        acc = rows[(case_id, "prompt_accuracy", "")]
        # only "a handwritten digit 3" names a class: 2 of the 4 images count
        assert acc["status"] == "ok" and acc["n"] == "2" and "2 of 4 valid images" in acc["detail"]
        assert 0.0 <= float(acc["value"]) <= 1.0
        real = rows[(case_id, "prompt_accuracy", "real-split")]
        assert float(real["value"]) > 0.9  # the classifier on real held-out digits: the ceiling
        fid = rows[(case_id, "fid", "")]
        assert fid["status"] == "unavailable" and "too few images" in fid["detail"] and "20" in fid["detail"]
        for metric in ("latency_ms_p50", "latency_ms_p90", "images_per_second", "seconds_per_step",
                       "latency_ms_text_encode", "latency_ms_denoise", "latency_ms_vae_decode", "peak_memory_mb"):
            assert rows[(case_id, metric, "")]["status"] == "ok", metric
        assert (case_id, "latency_ms_image_encode", "") not in rows  # text-to-image encodes no image
    outputs = _csv(out / "outputs.csv")
    assert len(outputs) == 8
    for o in outputs:
        assert (out / o["path"]).is_file() and o["valid"] == "True"
        assert int(o["seed"]) in json.loads(o["call_seeds"]) and o["height"] == "16"
        assert "apple" not in o["path"].split("/")[0]
    seeds = {(o["prompt"], o["sample"]): o["seed"] for o in outputs if o["scheduler"] == "ddim"}
    assert len(set(seeds.values())) == 4  # every image its own seed
    assert seeds == {(o["prompt"], o["sample"]): o["seed"] for o in outputs if o["scheduler"] != "ddim"}
    record = load_run(out)[1][0]
    assert record["info"]["random_weights"] is True and "random-weight" in record["info"]["label"]
    assert record["info"]["prompt_source"] == "prompts" and record["info"]["samples_per_prompt"] == 2
    assert (out / record["artifacts"]["grid"]).is_file()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Text-to-image" in html and "Samples by prompt" in html
    assert "input: <code>" not in html  # text-to-image panels name no input image


def test_outputs_reproduce_with_a_bare_diffusers_call(tiny_run, tiny_t2i_dir):
    """outputs.csv holds everything needed: a plain StableDiffusionPipeline call with those seeds."""
    from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler, StableDiffusionPipeline

    _, out = tiny_run
    pipe = StableDiffusionPipeline.from_pretrained(tiny_t2i_dir)
    pipe.set_progress_bar_config(disable=True)
    base = pipe.scheduler.config
    classes = {"euler-ancestral": EulerAncestralDiscreteScheduler, "ddim": DDIMScheduler}
    for o in _csv(out / "outputs.csv")[1::3]:
        pipe.scheduler = classes[o["scheduler"]].from_config(base)
        seeds = json.loads(o["call_seeds"])
        images = pipe(o["prompt"], num_images_per_prompt=len(seeds), height=int(o["height"]), width=int(o["width"]),
                      num_inference_steps=int(o["num_inference_steps"]), guidance_scale=float(o["guidance_scale"]),
                      generator=[torch.Generator("cpu").manual_seed(s) for s in seeds]).images
        np.testing.assert_array_equal(np.asarray(images[int(o["sample"])]), np.asarray(Image.open(out / o["path"])))


def test_prompts_naming_no_class_make_prompt_accuracy_unavailable(tmp_path):
    suite = t2i_suite(tmp_path, prompts='["a red apple"]', samples=1, metrics="[prompt_accuracy]")
    run_suite(suite, tmp_path / "out", quiet=True, report=False)
    (row,) = [r for r in _csv(tmp_path / "out" / "results.csv") if r["metric"] == "prompt_accuracy"]
    assert row["status"] == "unavailable" and row["value"] == "" and "no prompt names a class" in row["detail"]


def test_the_loader_refuses_a_folder_of_the_other_kind(tiny_t2i_dir, tmp_path):
    from imgx.models.instruct_pix2pix import load_pipeline
    from imgx.suite.schema import ModelSpec

    with pytest.raises(WeightsError, match="takes 4 input channels; an InstructPix2Pix UNet takes 8"):
        load_pipeline(ModelSpec(name="instruct-pix2pix", weights=str(tiny_t2i_dir)), "cpu", tmp_path, {})
    loaded = load_pipeline(ModelSpec(name="stable-diffusion", weights=str(tiny_t2i_dir)), "cpu", tmp_path, {},
                           kind="text-to-image")
    assert loaded.info["pipeline"] == "StableDiffusionPipeline" and loaded.info["random_weights"] is True


def test_guidance_sweep_runs_batched_and_reproduces(tmp_path, tiny_t2i_dir):
    """Cases differing only in guidance make their images in shared denoising loops; each image is still what a
    bare diffusers call with its seeds makes (within float rounding), and latency still comes from single calls."""
    from diffusers import StableDiffusionPipeline

    suite = t2i_suite(tmp_path, metrics="[prompt_accuracy, latency]",
                      extra="    sweep:\n      guidance_scale: [1.0, 3.0, 7.5]\n")
    summary = run_suite(suite, tmp_path / "out", quiet=True, report=False)
    assert summary.exit_code == 0, summary.failed_cases
    out = tmp_path / "out"
    _, records = load_run(out)
    first = records[0]["info"]["batched_sweep"]
    assert first["images"] == 12 and first["cases"] == 3  # 3 guidance points x 2 prompts x 2 samples
    rows = _csv(out / "results.csv")
    assert any(r["metric"] == "sweep_images_per_second" and r["status"] == "ok" for r in rows)
    latency = [r for r in rows if r["metric"] == "latency_ms_p50"]
    assert len(latency) == 3 and all(r["status"] == "ok" for r in latency)
    outputs = _csv(out / "outputs.csv")
    assert len(outputs) == 12 and all(int(o["batch_points"]) > 1 for o in outputs)
    pipe = StableDiffusionPipeline.from_pretrained(tiny_t2i_dir)
    pipe.set_progress_bar_config(disable=True)
    for o in outputs:
        seeds = json.loads(o["call_seeds"])
        bare = pipe(o["prompt"], num_images_per_prompt=len(seeds), height=int(o["height"]), width=int(o["width"]),
                    num_inference_steps=int(o["num_inference_steps"]), guidance_scale=float(o["guidance_scale"]),
                    generator=[torch.Generator("cpu").manual_seed(s) for s in seeds]).images[int(o["sample"])]
        a = np.asarray(bare).astype(np.float64)
        b = np.asarray(Image.open(out / o["path"])).astype(np.float64)
        mse = ((a - b) ** 2).mean()
        assert np.abs(a - b).max() <= 2 and (mse == 0 or 10 * np.log10(255**2 / mse) >= 45), o["path"]


def test_batched_loops_hold_at_least_one_bare_calls_images(tmp_path):
    """A bare call already runs `samples` images in one UNet batch: batching must not run smaller ones."""
    suite = t2i_suite(tmp_path, prompts='["a handwritten digit 3"]', samples=5, metrics="[prompt_accuracy]",
                      extra="    sweep:\n      guidance_scale: [1.0, 3.0]\n")
    summary = run_suite(suite, tmp_path / "out", quiet=True, report=False)
    assert summary.exit_code == 0, summary.failed_cases
    sweep = load_run(tmp_path / "out")[1][0]["info"]["batched_sweep"]
    # CPU default 4 < 5 images per call; a loop takes whole pairs of points of one seed (the two guidance points):
    # 5 rounded up to 6
    assert sweep["loops"] == [6, 4] and sweep["max_batch"] == 6
    assert sweep["max_batch_why"] == ("the images of one call, in whole groups of 2 points of one seed "
                                      "(the CPU default gave 4)")
    assert sweep["memory_budget_mb"] is None and sweep["memory_growth_mb"] is None  # CUDA only
    # one seed per sample, the same in both guidance points: their first steps share the text row
    assert sweep["unet_rows"] < sweep["bare_unet_rows"]


def test_a_reference_of_another_size_adds_the_resized_real_split_floor(tmp_path):
    """16 px outputs against 28 px reference digits: the real split at 16 px is the floor a 16 px model can reach."""
    suite = t2i_suite(tmp_path, prompts=None, samples=15, metrics="[fid]",
                      extra="    reference_data: {name: digits, image_size: 28}\n"
                            "    metric_options: {fid: {features: digits-classifier}}\n")
    summary = run_suite(suite, tmp_path / "out", quiet=True, report=False)
    assert summary.exit_code == 0, summary.failed_cases
    rows = {r["reference"]: r for r in _csv(tmp_path / "out" / "results.csv") if r["metric"] == "fid"}
    assert {"", "real-split", "real-split-resized"} <= set(rows)
    resized, full = rows["real-split-resized"], rows["real-split"]
    assert resized["status"] == full["status"] == "ok", (resized["detail"], full["detail"])
    assert "resized from 28x28 to the outputs' 16x16" in resized["detail"]
    assert "resized" not in full["detail"]
    # the same real digits lose detail at 16 px: their distance to the 28 px test split grows
    assert float(resized["value"]) > float(full["value"])
    # outputs as large as the reference get no resized row
    (tmp_path / "same").mkdir()
    same = t2i_suite(tmp_path / "same", prompts=None, samples=2, metrics="[fid]",
                     extra="    metric_options: {fid: {features: digits-classifier}}\n")
    run_suite(same, tmp_path / "same" / "out", quiet=True, report=False)
    refs = {r["reference"] for r in _csv(tmp_path / "same" / "out" / "results.csv") if r["metric"] == "fid"}
    assert "real-split-resized" not in refs and "real-split" in refs

"""Batched guidance sweeps on pipelines other than SD 1/2: SDXL batched like its bare calls, LCM-style UNets refused.

The tiny SDXL pipeline is built from configs (as diffusers' SDXL tests build theirs) and saved with
``save_pretrained``; runs load it through imgx's loader (``AutoPipelineForText2Image``) like any SDXL folder.
"""

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

MAX_UINT8_DIFF = 2


def _csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _uint8(image: np.ndarray) -> np.ndarray:
    return (np.nan_to_num(image) * 255).round().astype(np.int64)


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory) -> Path:
    from diffusers import StableDiffusionXLPipeline

    from imgx.models.tiny import tiny_sdxl_components

    folder = tmp_path_factory.mktemp("tiny-sdxl")
    StableDiffusionXLPipeline(**tiny_sdxl_components(), add_watermarker=False).save_pretrained(
        folder, safe_serialization=True)
    return folder


def test_sdxl_points_in_one_loop_equal_bare_sdxl_calls(sdxl_dir):
    """SDXL's own ``encode_prompt`` (keyword call: SD 1/2's positional one bound ``device`` to ``prompt_2``), its
    pooled embeddings and size ``time_ids`` per UNet row: each batched point equals its bare call."""
    from diffusers import StableDiffusionXLPipeline

    from imgx.diffusion.batched import Point, SDXLBranches, denoise_points, text_to_image_branches

    pipe = StableDiffusionXLPipeline.from_pretrained(sdxl_dir, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    branches, reason = text_to_image_branches(pipe)
    assert branches is SDXLBranches and reason is None
    points = [Point(prompt, 40 + k, g) for k, (prompt, g) in
              enumerate((p, g) for p in ("a red square", "a cat") for g in (7.5, 1.0, 3.0))]
    made = denoise_points(pipe, points, num_inference_steps=3, branches=branches, max_batch=4, height=32, width=32)
    assert made.loops == [4, 2]
    for point, image in zip(points, made.images, strict=True):
        bare = pipe(point.prompt, height=32, width=32, num_inference_steps=3, guidance_scale=point.guidance_scale,
                    output_type="np", generator=torch.Generator("cpu").manual_seed(point.seed)).images[0]
        assert np.abs(_uint8(bare) - _uint8(image)).max() <= MAX_UINT8_DIFF, point
    # the guidance points are different images: the comparison above can fail
    assert np.abs(_uint8(made.images[0]) - _uint8(made.images[1])).max() > MAX_UINT8_DIFF


def test_sdxl_guidance_sweep_runs_batched_end_to_end(tmp_path, sdxl_dir):
    """The issue's failure: a guidance sweep on an SDXL folder (batched by default) crashed in encode_prompt."""
    from diffusers import AutoPipelineForText2Image, EulerAncestralDiscreteScheduler

    suite = t2i_suite(tmp_path, model=f"{{name: stable-diffusion, weights: '{sdxl_dir}'}}",
                      data="{name: digits, image_size: 32}", metrics="[latency]",
                      extra="    sweep:\n      guidance_scale: [1.0, 5.0]\n")
    summary = run_suite(suite, tmp_path / "out", quiet=True, report=False)
    assert summary.exit_code == 0, summary.failed_cases
    _, records = load_run(tmp_path / "out")
    assert records[0]["info"]["batched_sweep"]["cases"] == 2
    assert records[0]["info"]["model"]["pipeline"] == "StableDiffusionXLPipeline"
    outputs = _csv(tmp_path / "out" / "outputs.csv")
    assert len(outputs) == 8 and all(int(o["batch_points"]) > 1 for o in outputs)
    pipe = AutoPipelineForText2Image.from_pretrained(sdxl_dir)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)  # the suite's default
    pipe.set_progress_bar_config(disable=True)
    for o in outputs[::3]:
        seeds = json.loads(o["call_seeds"])
        bare = pipe(o["prompt"], num_images_per_prompt=len(seeds), height=32, width=32,
                    num_inference_steps=int(o["num_inference_steps"]), guidance_scale=float(o["guidance_scale"]),
                    generator=[torch.Generator("cpu").manual_seed(s) for s in seeds]).images[int(o["sample"])]
        diff = np.abs(np.asarray(bare).astype(int) - np.asarray(Image.open(tmp_path / "out" / o["path"])).astype(int))
        assert diff.max() <= MAX_UINT8_DIFF, o["path"]


def test_lcm_style_unet_falls_back_to_one_call_per_point_with_the_reason(tmp_path):
    """A UNet with ``time_cond_proj_dim`` takes a guidance embedding the batched loop does not compute: the sweep
    runs one pipeline call per point and every case says why."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    from imgx.models.tiny import tiny_text2image_components

    parts = tiny_text2image_components()
    torch.manual_seed(0)
    parts["unet"] = UNet2DConditionModel(**{**dict(parts["unet"].config), "time_cond_proj_dim": 32})
    folder = tmp_path / "lcm"
    StableDiffusionPipeline(**parts, image_encoder=None, requires_safety_checker=False).save_pretrained(
        folder, safe_serialization=True)
    suite = t2i_suite(tmp_path, model=f"{{name: stable-diffusion, weights: '{folder}'}}",
                      data="{name: digits, image_size: 32}", metrics="[latency]",
                      extra="    sweep:\n      guidance_scale: [1.0, 5.0]\n")
    summary = run_suite(suite, tmp_path / "out", quiet=True, report=False)
    assert summary.exit_code == 0, summary.failed_cases
    _, records = load_run(tmp_path / "out")
    for record in records:
        assert "not batched: the UNet takes a guidance-scale embedding (time_cond_proj_dim 32" in record["detail"]
        assert "batched_sweep" not in record["info"]
    assert {o["batch_points"] for o in _csv(tmp_path / "out" / "outputs.csv")} == {"1"}

"""Where a batched sweep's images equal one bare call per point, and where they depend on the batch.

Trained weights (the digits model trained here): every registered scheduler at 2, 10, 30 and 50 steps, batched
points within 2 uint8 levels of their bare calls (quality tier: slow; the model is the one ``test_trends.py``
trains, shared through the session cache; measured: 0 levels everywhere, 2 prompts x guidance 1 / 3 / 7.5, CPU
float32; PNDM cannot make 2 steps with this config's trailing spacing, in bare diffusers calls too).

Random weights (the tiny pipeline): a deterministic sampler amplifies the float rounding of a different batch
size, even between two bare calls; the fast test records that divergence (issue 24 measured 207 levels at 20
DDIM steps), which is why imgx labels such figures.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from imgx.diffusion.batched import Point, TextToImageBranches, denoise_points

MAX_UINT8_DIFF = 2
STEPS = (2, 10, 30, 50)
PROMPTS = ("a handwritten digit 3", "a handwritten digit 7")
GUIDANCE = (1.0, 7.5)


def _uint8(image: np.ndarray) -> np.ndarray:
    return (np.nan_to_num(image) * 255).round().astype(np.int64)


def _batched_vs_bare(pipe, steps: int, size: int | None = None) -> int:
    """Max uint8 difference over prompts x guidance points: batched loops (all points at once) against bare calls."""
    points = [Point(p, 11 + k, g) for k, p in enumerate(PROMPTS) for g in GUIDANCE]
    made = denoise_points(pipe, points, num_inference_steps=steps, branches=TextToImageBranches,
                          max_batch=len(points), height=size, width=size)
    worst = 0
    for point, image in zip(points, made.images, strict=True):
        bare = pipe(point.prompt, num_inference_steps=steps, guidance_scale=point.guidance_scale, height=size,
                    width=size, output_type="np", generator=torch.Generator("cpu").manual_seed(point.seed)).images[0]
        worst = max(worst, int(np.abs(_uint8(bare) - _uint8(image)).max()))
    return worst


def test_tiny_random_pipeline_depends_on_the_batch_size(tiny_t2i_dir):
    """Recorded, not hidden: two bare calls that differ only in batch size (1 image vs 3, the first with the same
    generator) give different images at 20 DDIM steps on random weights, and so do batched points."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_t2i_dir)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    kwargs = {"num_inference_steps": 20, "guidance_scale": 7.5, "output_type": "np"}
    one = pipe("a red apple", generator=[torch.Generator("cpu").manual_seed(5)], **kwargs).images[0]
    three = pipe("a red apple", num_images_per_prompt=3,
                 generator=[torch.Generator("cpu").manual_seed(s) for s in (5, 6, 7)], **kwargs).images[0]
    bare_gap = int(np.abs(_uint8(one) - _uint8(three)).max())
    batched_gap = _batched_vs_bare(pipe, 20)
    print(f"\ntiny pipeline, 20 DDIM steps, guidance 7.5: bare 1 vs 3 images {bare_gap} levels; batched vs bare "
          f"{batched_gap} levels")
    assert bare_gap > MAX_UINT8_DIFF and batched_gap > MAX_UINT8_DIFF


@pytest.fixture(scope="module")
def trained_pipe():
    """The full-recipe digits model (``suites/t2i-guidance.yaml``'s recipe, the seed of its case ``digits-sd`` at
    suite seed 0: the cache key of ``test_trends.py`` and of ``test_trained_quality.py``'s seed 0), trained once per
    session cache. (It derived the seed of a case ``t2i`` before, another model: a second training of ~165 s.)"""
    from diffusers import StableDiffusionPipeline

    from imgx.data import DATASETS
    from imgx.models.trained import trained_diffusion
    from imgx.suite.expand import derive_seed
    from imgx.suite.schema import DataSpec
    from imgx.tasks.text_to_image import rgb

    seed = derive_seed(0, "digits-sd", None)
    data = DATASETS.get("digits")(DataSpec(name="digits", image_size=16), seed, "text-to-image")
    model = trained_diffusion("text-to-image", images=rgb(data["train"]), captions=list(data["train_captions"]),
                              epochs=40, batch_size=64, lr=2e-3, seed=seed, cache_dir=os.environ["IMGX_CACHE"],
                              image_size=16)
    pipe = StableDiffusionPipeline.from_pretrained(model.folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["euler-ancestral", "euler", "ddim", "dpm++-2m", "unipc", "pndm", "lms", "heun"])
def test_trained_model_batched_equals_bare_for_every_scheduler(trained_pipe, scheduler):
    from imgx.models import SCHEDULERS

    pipe = trained_pipe
    original = pipe.scheduler
    pipe.scheduler = SCHEDULERS.get(scheduler).from_config(original.config)
    steps = STEPS
    try:
        if scheduler == "pndm":  # diffusers' PNDM cannot lay out 2 trailing-spaced steps: bare calls fail alike
            with pytest.raises(ValueError, match="could not be broadcast"):
                pipe("a handwritten digit 3", num_inference_steps=2)
            with pytest.raises(ValueError, match="could not be broadcast"):
                _batched_vs_bare(pipe, 2)
            steps = STEPS[1:]
        gaps = {n: _batched_vs_bare(pipe, n) for n in steps}
    finally:
        pipe.scheduler = original
    print(f"\n{scheduler}: max uint8 difference per steps {gaps}")
    assert max(gaps.values()) <= MAX_UINT8_DIFF, gaps


def test_the_slow_test_covers_every_registered_scheduler():
    from imgx.models import SCHEDULERS

    listed = test_trained_model_batched_equals_bare_for_every_scheduler.pytestmark
    names = next(m.args[1] for m in listed if m.name == "parametrize")
    assert sorted(names) == sorted(SCHEDULERS)

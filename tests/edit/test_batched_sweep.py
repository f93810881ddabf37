"""Batched guidance sweeps: every batched output against the bare diffusers call of its point, end to end."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgx.errors import SuiteError
from imgx.results import load_run
from imgx.runner import run_suite
from imgx.suite import expand, load_suite
from imgx.tasks.batched_sweep import group_key
from tests.edit.conftest import edit_suite
from tests.helpers import write_suite

MAX_UINT8_DIFF = 2
MIN_PSNR = 45.0
GUIDANCE = [(7.5, 1.5), (1.0, 1.5), (5.0, 2.0)]  # (g, ig); g <= 1 runs without guidance, as in the pipeline


def _uint8(image: np.ndarray) -> np.ndarray:
    return (np.nan_to_num(image) * 255).round().astype(np.uint8)


def _agreement(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """Max uint8 difference and PSNR (dB, inf when equal) of two uint8 images."""
    a, b = a.astype(np.int64), b.astype(np.int64)
    mse = float(((a - b) ** 2).mean())
    return int(np.abs(a - b).max()), float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def _outputs(out: Path) -> list[dict]:
    with open(out / "outputs.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def pix2pix(tiny_pipe_dir):
    from diffusers import StableDiffusionInstructPix2PixPipeline

    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(tiny_pipe_dir, safety_checker=None,
                                                                 requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("scheduler", ["euler-ancestral", "ddim", "dpm++-2m"])
def test_batched_points_equal_bare_calls(pix2pix, scheduler):
    """Two prompts x three guidance points on two inputs, in loops of 4 (uneven last loop), 3 steps, 32 px."""
    from imgx.diffusion.batched import Point, denoise_points
    from imgx.models import SCHEDULERS

    pipe = pix2pix
    pipe.scheduler = SCHEDULERS.get(scheduler).from_config(pipe.scheduler.config)
    rng = np.random.default_rng(0)
    inputs = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(2)]
    points = [Point(prompt, 100 + 7 * k, g, ig, inputs[k % 2], k % 2)
              for k, (prompt, (g, ig)) in enumerate((p, gi) for p in ("make it a sketch", "turn it blue")
                                                    for gi in GUIDANCE)]
    made = denoise_points(pipe, points, num_inference_steps=3, max_batch=4)
    assert made.loops == [4, 2] and made.batch_points == [4, 4, 4, 4, 2, 2]
    for point, image in zip(points, made.images, strict=True):
        bare = pipe(point.prompt, image=point.image, num_inference_steps=3, guidance_scale=point.guidance_scale,
                    image_guidance_scale=point.image_guidance_scale, output_type="np",
                    generator=torch.Generator("cpu").manual_seed(point.seed)).images[0]
        diff, psnr = _agreement(_uint8(bare), _uint8(image))
        assert diff <= MAX_UINT8_DIFF and psnr >= MIN_PSNR, (point, diff, psnr)
    # a different seed is a different image: the comparison above can fail
    other = denoise_points(pipe, [Point(points[0].prompt, 999, 7.5, 1.5, inputs[0], 0)], num_inference_steps=3)
    assert _agreement(_uint8(other.images[0]), _uint8(made.images[0]))[0] > MAX_UINT8_DIFF


@pytest.mark.parametrize("scheduler", ["euler-ancestral", "ddim", "dpm++-2m"])
def test_shared_rows_run_once_and_outputs_still_equal_bare_calls(pix2pix, scheduler):
    """One seed, two prompts, four guidance points (one at image guidance 1, one unguided), 4 steps, one loop.

    Step 1: every point starts from the same latents, so the loop runs 4 distinct rows (each prompt's text
    branch, the image branch, the unconditional branch) where bare calls run 20. Later steps: 9 rows per prompt
    (2 at ig 1, where the unconditional branch cancels, 3 + 3, 1 unguided) against 10.
    """
    from imgx.diffusion.batched import Point, denoise_points
    from imgx.models import SCHEDULERS

    pipe = pix2pix
    pipe.scheduler = SCHEDULERS.get(scheduler).from_config(pipe.scheduler.config)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    points = [Point(prompt, 7, g, ig, image, 0) for prompt in ("make it a sketch", "turn it blue")
              for g, ig in ((7.5, 1.0), (7.5, 1.5), (5.0, 2.0), (1.0, 1.5))]
    made = denoise_points(pipe, points, num_inference_steps=4, max_batch=8)
    assert made.loops == [8]
    assert (made.unet_rows, made.bare_unet_rows) == (4 + 3 * 18, 4 * 20)
    for point, out in zip(points, made.images, strict=True):
        bare = pipe(point.prompt, image=image, num_inference_steps=4, guidance_scale=point.guidance_scale,
                    image_guidance_scale=point.image_guidance_scale, output_type="np",
                    generator=torch.Generator("cpu").manual_seed(point.seed)).images[0]
        diff, psnr = _agreement(_uint8(bare), _uint8(out))
        assert diff <= MAX_UINT8_DIFF and psnr >= MIN_PSNR, (point, diff, psnr)
    # the points are not all one image: sharing the first step did not merge them
    assert len({_uint8(out).tobytes() for out in made.images}) == len(points)


def test_rows_run_do_not_depend_on_the_loop_size(pix2pix):
    """model_evaluations_per_image is gated with zero tolerance, so it must not follow the loop size (CPU default 4,
    a CUDA loop sized by free memory): loops take whole groups of points of one seed, which share their first
    step's rows. Four seeds x three guidance points; before, loops of 4 cut three of the groups and ran more rows."""
    from imgx.diffusion.batched import Point, denoise_points

    rng = np.random.default_rng(2)
    inputs = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(2)]
    points = [Point(prompt, 40 + 3 * k + j, g, ig, inputs[j], j) for k, prompt in enumerate(("sketch", "blue"))
              for j in range(2) for g, ig in GUIDANCE]
    made = {size: denoise_points(pix2pix, points, num_inference_steps=2, max_batch=size) for size in (3, 4, 5, 12)}
    assert made[4].loops == [3, 3, 3, 3] and made[5].loops == [3, 3, 3, 3] and made[12].loops == [12]
    assert len({m.unet_rows for m in made.values()}) == 1, {s: m.unet_rows for s, m in made.items()}
    assert made[12].unet_rows < made[12].bare_unet_rows
    for m in made.values():
        for a, b in zip(m.images, made[12].images, strict=True):
            assert _agreement(_uint8(a), _uint8(b))[1] >= MIN_PSNR
    # a group larger than a loop is split (rows then depend on the size, as they must)
    assert denoise_points(pix2pix, points, num_inference_steps=2, max_batch=2).unet_rows > made[12].unet_rows


def test_text_to_image_branches_equal_bare_calls():
    """The same loop with the text-to-image combiner, against a tiny StableDiffusionPipeline built from configs."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    from imgx.diffusion.batched import Point, TextToImageBranches, denoise_points
    from imgx.models.tiny import tiny_pix2pix_components

    parts = tiny_pix2pix_components(safety_checker=False)
    torch.manual_seed(0)
    parts["unet"] = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32)
    parts.pop("image_encoder")
    pipe = StableDiffusionPipeline(**parts, image_encoder=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    points = [Point(prompt, 40 + k, g) for k, (prompt, g) in
              enumerate((p, g) for p in ("a red square", "a cat") for g in (7.5, 1.0))]
    made = denoise_points(pipe, points, num_inference_steps=3, branches=TextToImageBranches, max_batch=3,
                          height=32, width=32)
    assert made.loops == [3, 1]
    for point, image in zip(points, made.images, strict=True):
        bare = pipe(point.prompt, height=32, width=32, num_inference_steps=3, guidance_scale=point.guidance_scale,
                    output_type="np", generator=torch.Generator("cpu").manual_seed(point.seed)).images[0]
        diff, psnr = _agreement(_uint8(bare), _uint8(image))
        assert diff <= MAX_UINT8_DIFF and psnr >= MIN_PSNR, (point, diff, psnr)


SWEEP = "    sweep:\n      image_guidance_scale: [1.0, 1.5]\n      guidance_scale: [1.0, 7.5]\n"


@pytest.fixture(scope="module")
def batched_run(tmp_path_factory):
    """One photo x two prompts x a 2x2 guidance sweep; loops of 3 points; latency from single calls."""
    folder = tmp_path_factory.mktemp("batched-run")
    suite = edit_suite(folder, metrics="[ssim, latency]", sweep=SWEEP, data="{name: photos, image_size: 32, count: 1}",
                       case="    inference: {num_inference_steps: 3, warmup: 0, repeats: 1, max_batch: 3}\n")
    text = suite.read_text().replace("    inference: {num_inference_steps: 3, warmup: 0, repeats: 1}\n", "")
    suite.write_text(text)
    summary = run_suite(suite, folder / "out", quiet=True, report=False)
    return suite, summary, folder / "out"


def test_guidance_sweep_runs_batched_with_latency_from_single_calls(batched_run):
    _, summary, out = batched_run
    assert summary.exit_code == 0, summary.failed_cases
    assert summary.ran == 4
    outputs = _outputs(out)
    assert len(outputs) == 8
    # 8 points in loops of 3, 3, 2, each prompt's points (one seed) together so that they share rows
    assert sorted(o["batch_points"] for o in outputs) == ["2"] * 2 + ["3"] * 6
    _, records = load_run(out)
    for record in records:
        rows = {r["metric"]: r for r in record["rows"] if not r["reference"]}
        sweep = rows["sweep_images_per_second"]
        assert sweep["status"] == "ok" and sweep["value"] > 0 and sweep["n"] == 8
        assert "loops of 3, 3, 2 points (max_batch 3: inference.max_batch)" in sweep["detail"]
        assert "peak memory" in sweep["detail"]
        info = record["info"]["batched_sweep"]
        said = f"UNet rows {info['unet_rows']} where one call per point runs {info['bare_unet_rows']}"
        assert said in sweep["detail"]
        assert 0 < info["unet_rows"] < info["bare_unet_rows"]  # the first step's rows of one seed run once
        assert rows["latency_ms_p50"]["status"] == "ok" and rows["ssim"]["status"] == "ok"
        # tiny random weights: the figure depends on the batch it was made in, and says so (timing rows do not)
        assert "images depend on batch composition: random weights" in rows["ssim"]["detail"]
        assert "batch composition" not in rows["latency_ms_p50"]["detail"]
        # repeats (1) single calls of the first pair, never the batched loop (one call per pair would make 2)
        assert record["info"]["timing"]["timed_calls"] == 1
        assert record["info"]["batched_sweep"]["cases"] == 4


def test_batched_outputs_reproduce_with_a_bare_diffusers_call(batched_run, pix2pix):
    """outputs.csv of a batched sweep still reproduces every image with a bare pipe(...) call."""
    _, _, out = batched_run
    pipe = pix2pix
    from diffusers import EulerAncestralDiscreteScheduler

    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    for o in _outputs(out)[::3]:
        image = pipe(o["prompt"], image=Image.open(out / o["input_image"]),
                     num_inference_steps=int(o["num_inference_steps"]), guidance_scale=float(o["guidance_scale"]),
                     image_guidance_scale=float(o["image_guidance_scale"]),
                     generator=torch.Generator("cpu").manual_seed(int(o["seed"]))).images[0]
        diff, psnr = _agreement(np.asarray(image), np.asarray(Image.open(out / o["path"])))
        assert diff <= MAX_UINT8_DIFF and psnr >= MIN_PSNR, (o["case_id"], diff, psnr)


def test_resume_recomputes_only_the_missing_points(batched_run, tmp_path):
    suite, _, out = batched_run
    again = tmp_path / "again"
    shutil.copytree(out, again)
    _, records = load_run(again)
    missing = [r for r in records if r["case_id"] == "edit[image_guidance_scale=1.5,guidance_scale=7.5]"][0]
    (again / "cases" / f"{missing['key']}.json").unlink()
    summary = run_suite(suite, again, quiet=True, report=False)
    assert (summary.ran, summary.reused) == (1, 3)
    rerun = [o for o in _outputs(again) if o["case_id"] == missing["case_id"]]
    assert {o["batch_points"] for o in rerun} == {"1"}  # alone in its group now: one call per output
    record = [r for r in load_run(again)[1] if r["case_id"] == missing["case_id"]][0]
    said = "partial sweep: this point ran alone (one pipeline call per output), without the other 3 points"
    assert said in record["detail"]
    assert said in [r for r in record["rows"] if r["metric"] == "ssim" and not r["reference"]][0]["detail"]
    assert all("partial sweep" not in r["detail"] for r in load_run(out)[1])  # the uninterrupted run has no such note
    before = {(o["input_name"], o["prompt"]): o for o in _outputs(out) if o["case_id"] == missing["case_id"]}
    for o in rerun:
        ref = before[(o["input_name"], o["prompt"])]
        diff, psnr = _agreement(np.asarray(Image.open(again / o["path"])), np.asarray(Image.open(out / ref["path"])))
        assert diff <= MAX_UINT8_DIFF and psnr >= MIN_PSNR


def test_out_of_memory_in_a_loop_retries_it_at_half_the_batch(tmp_path, monkeypatch):
    """Fault injection: a real CUDA out-of-memory error needs a GPU (``tests/test_gpu.py`` makes one there). Here
    the UNet raises torch's own ``OutOfMemoryError`` for batches over 6 rows, as a GPU with room for two points
    would; the sweep's loop of 4 points is retried at 2, the case says so in its detail, and the images are the
    ones a loop that fits makes."""
    from diffusers import UNet2DConditionModel

    forward = UNet2DConditionModel.forward

    def limited(self, sample, *args, **kwargs):
        if sample.shape[0] > 6:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (injected: {sample.shape[0]} rows over 6)")
        return forward(self, sample, *args, **kwargs)

    sweep = "    sweep:\n      image_guidance_scale: [1.25, 1.5, 1.75, 2.0]\n"
    runs = {}
    for name, max_batch in (("limited", 4), ("fits", 2)):
        (tmp_path / name).mkdir()
        suite = edit_suite(tmp_path / name, metrics="[ssim]", sweep=sweep, prompts='["make it a sketch"]',
                           data="{name: photos, image_size: 32, count: 1}",
                           case=f"    inference: {{num_inference_steps: 2, warmup: 0, repeats: 1, "
                                f"max_batch: {max_batch}}}\n")
        suite.write_text(suite.read_text().replace("    inference: {num_inference_steps: 3, warmup: 0, repeats: 1}\n",
                                                   ""))
        with monkeypatch.context() as patch:
            if name == "limited":
                patch.setattr(UNet2DConditionModel, "forward", limited)
            summary = run_suite(suite, tmp_path / name / "out", quiet=True, report=False)
        assert summary.exit_code == 0, summary.failed_cases
        runs[name] = tmp_path / name / "out"
    _, records = load_run(runs["limited"])
    first = records[0]
    assert "out of memory at 4 points per loop; retried at 2" in first["detail"]
    assert first["info"]["batched_sweep"]["loops"] == [2, 2]
    assert first["info"]["batched_sweep"]["halvings"] == ["out of memory at 4 points per loop; retried at 2"]
    limited_out = {o["case_id"]: o for o in _outputs(runs["limited"])}
    for o in _outputs(runs["fits"]):
        mine = limited_out[o["case_id"]]
        assert mine["batch_points"] == "2" and mine["valid"] == "True"
        a = np.asarray(Image.open(runs["limited"] / mine["path"]))
        assert np.array_equal(a, np.asarray(Image.open(runs["fits"] / o["path"])))


def test_batch_sweep_false_calls_the_pipeline_per_point(tmp_path):
    suite = edit_suite(tmp_path, metrics="[ssim]", sweep="    sweep:\n      guidance_scale: [5.0, 7.5]\n",
                       data="{name: photos, image_size: 32, count: 1}",
                       case="    inference: {num_inference_steps: 2, warmup: 0, repeats: 1, batch_sweep: false}\n")
    suite.write_text(suite.read_text().replace("    inference: {num_inference_steps: 3, warmup: 0, repeats: 1}\n", ""))
    cases = expand(load_suite(suite))
    assert len({group_key(c) for c in cases}) == 1
    summary = run_suite(suite, tmp_path / "out", quiet=True, report=False)
    assert summary.exit_code == 0
    assert {o["batch_points"] for o in _outputs(tmp_path / "out")} == {"1"}
    assert all(r["metric"] != "sweep_images_per_second" for rec in load_run(tmp_path / "out")[1] for r in rec["rows"])


def test_groups_split_on_anything_but_guidance(tmp_path):
    suite = edit_suite(tmp_path, sweep="    sweep:\n      guidance_scale: [5.0, 7.5]\n      scheduler: [ddim, euler]\n")
    keys = {c.id: group_key(c) for c in expand(load_suite(suite))}
    assert keys["edit[guidance_scale=5.0,scheduler=ddim]"] == keys["edit[guidance_scale=7.5,scheduler=ddim]"]
    assert keys["edit[guidance_scale=5.0,scheduler=ddim]"] != keys["edit[guidance_scale=5.0,scheduler=euler]"]


@pytest.mark.parametrize(("inference", "task_case", "fragment"), [
    ("{max_batch: 0}", "edit", "cases[0].inference.max_batch: Input should be greater than or equal to 1"),
    ("{max_batch: 257}", "edit", "cases[0].inference.max_batch: Input should be less than or equal to 256"),
    ("{batch_sweep: true}", "colorize", "cases[0].inference.batch_sweep: task 'colorize' cannot batch sweep points"),
    ("{max_batch: 4}", "colorize", "cases[0].inference.max_batch: task 'colorize' cannot batch sweep points"),
])
def test_bad_batch_settings_are_refused(tmp_path, inference, task_case, fragment):
    if task_case == "edit":
        body = ("    task: edit\n    model: {name: instruct-pix2pix, weights: tiny}\n"
                "    data: {name: photos, image_size: 32, count: 1}\n    prompts: [x]\n")
    else:
        body = "    task: colorize\n    model: {name: encoder-decoder}\n    data: {name: photos, image_size: 16}\n"
    path = write_suite(tmp_path, f"suite: s\ncases:\n  - id: c\n{body}    inference: {inference}\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert fragment in "\n".join(info.value.problems())


def test_batch_settings_do_not_change_case_keys(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = expand(load_suite(edit_suite(tmp_path / "a")))[0]
    suite = edit_suite(tmp_path / "b")
    suite.write_text(suite.read_text().replace("repeats: 1}", "repeats: 1, batch_sweep: false, max_batch: 2}"))
    changed = expand(load_suite(suite))[0]
    assert changed.spec.inference.max_batch == 2 and changed.key == plain.key

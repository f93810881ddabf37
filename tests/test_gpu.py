"""CUDA paths, run only where a GPU is present (``pytest -m gpu``; ``bench/gpu_check.sh`` runs them).

Each test asserts that the work really ran on CUDA (parameters' device, CUDA memory allocated during the case),
not only that the device string was echoed back.
"""

import csv

import pytest

from imgx.runner import RunContext, run_case, run_suite
from imgx.suite import expand, load_suite
from tests.edit.conftest import edit_suite
from tests.helpers import TINY_COLORIZE, write_suite

pytestmark = pytest.mark.gpu


def _oom_task(case, ctx):
    """Asks the GPU for far more memory than it has: a real CUDA out-of-memory error."""
    import torch

    free, total = torch.cuda.mem_get_info()
    torch.empty(int(total * 4), dtype=torch.uint8, device="cuda")
    raise AssertionError("unreachable")


def _rows(out):
    with open(out / "results.csv", newline="") as fh:
        return {(r["case_id"], r["metric"], r["reference"]): r for r in csv.DictReader(fh)}


def test_colorizer_on_cuda_allocates_cuda_memory_and_matches_cpu_closely(tmp_path):
    import torch

    path = write_suite(tmp_path, TINY_COLORIZE.replace("seed: 0", "seed: 0\ndefaults: {device: [cpu, cuda]}"))
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.max_memory_allocated()
    summary = run_suite(path, tmp_path / "run", quiet=True, report=False)
    status = {r["case_id"]: r for r in summary.records}
    assert status["colorizer[device=cuda]"]["status"] == "ok", status["colorizer[device=cuda]"]["detail"]
    assert torch.cuda.max_memory_allocated() > base  # the model and its batches lived on the GPU
    rows = _rows(tmp_path / "run")
    cpu = float(rows[("colorizer[device=cpu]", "ssim", "")]["value"])
    cuda = float(rows[("colorizer[device=cuda]", "ssim", "")]["value"])
    assert abs(cpu - cuda) < 0.05  # same seed and data; kernels differ, so not bit-identical


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_pipeline_runs_on_cuda_with_every_output_valid(tmp_path, dtype):
    import torch

    suite = edit_suite(tmp_path, model=f"{{name: instruct-pix2pix, weights: tiny, dtype: {dtype}}}",
                       case="    device: cuda\n    max_invalid: 0\n")
    case = expand(load_suite(suite))[0]
    ctx = RunContext(out=tmp_path / "out", quiet=True)
    torch.cuda.reset_peak_memory_stats()
    result = run_case(case, ctx)
    assert result.status == "ok", result.detail
    assert all(o["valid"] for o in result.outputs) and len(result.outputs) == 4
    (loaded,) = [v for v in ctx.resources.values() if hasattr(v, "pipe")]
    param = next(loaded.pipe.unet.parameters())
    assert param.device.type == "cuda" and str(param.dtype) == f"torch.{dtype}"
    assert torch.cuda.max_memory_allocated() > 0
    rows = {r.metric: r for r in result.rows}
    assert rows["latency_ms_p50"].value > 0 and "CUDA" in rows["peak_memory_mb"].detail
    assert result.info["timing"]["cuda_synchronized"] is True


def test_cpu_and_cuda_start_from_the_same_noise(tmp_path):
    """The README's claim: generators are CPU ones, so a CUDA run's outputs match the CPU run's closely."""
    suite = edit_suite(tmp_path, data="{name: photos, image_size: 32, count: 1}", prompts='["make it blue"]',
                       case="    device: [cpu, cuda]\n")
    run_suite(suite, tmp_path / "run", quiet=True, report=False)
    rows = _rows(tmp_path / "run")
    agreement = rows[("edit[device=cuda]", "psnr", "device=cpu")]
    # Different noise gives unrelated images (~10 dB); the same noise differs only by kernel rounding.
    assert float(agreement["value"]) > 35, agreement
    with open(tmp_path / "run" / "outputs.csv", newline="") as fh:
        seeds = {r["case_id"]: r["seed"] for r in csv.DictReader(fh)}
    assert seeds["edit[device=cpu]"] == seeds["edit[device=cuda]"]


def test_cuda_oom_fails_the_case_and_cuda_still_works_after_it(tmp_path):
    import torch

    from imgx.data import DATASETS
    from imgx.models import MODELS
    from imgx.tasks import TASKS

    TASKS.register("oom", _oom_task)
    MODELS.register("oom-model", "imgx.models.colorizer:EncoderDecoder", task="oom", options=set())
    DATASETS.meta("photos")["tasks"].add("oom")
    try:
        text = TINY_COLORIZE.replace("cases:\n", "cases:\n  - id: greedy\n    task: oom\n    device: cuda\n"
                                                 "    model: {name: oom-model}\n    data: {name: photos}\n")
        text += "    device: cuda\n"  # the case after the OOM runs on the same GPU
        torch.cuda.reset_peak_memory_stats()
        summary = run_suite(write_suite(tmp_path, text), tmp_path / "run", quiet=True, report=False)
    finally:
        TASKS.unregister("oom")
        MODELS.unregister("oom-model")
        DATASETS.meta("photos")["tasks"].discard("oom")
    status = {r["case_id"]: r for r in summary.records}
    assert status["greedy"]["status"] == "failed"
    assert status["greedy"]["detail"].startswith("CUDA out of memory")
    assert status["colorizer"]["status"] == "ok" and status["colorizer"]["device"] == "cuda"
    assert torch.cuda.max_memory_allocated() > 0
    assert torch.ones(4, device="cuda").sum().item() == 4.0  # the context survived


def test_batched_loop_out_of_memory_is_retried_at_half_the_batch():
    """A real CUDA out-of-memory error in a batched loop: the process's CUDA memory is capped just above what
    one point's loop adds (``set_per_process_memory_fraction``), so a loop of 32 points at 256 px cannot fit; it
    is retried at half the batch until it does, and every image comes out finite."""
    import numpy as np
    import torch
    from diffusers import StableDiffusionInstructPix2PixPipeline
    from PIL import Image

    from imgx.diffusion.batched import Point, denoise_points
    from imgx.models.tiny import tiny_pix2pix_components

    pipe = StableDiffusionInstructPix2PixPipeline(**tiny_pix2pix_components(0, safety_checker=False),
                                                  requires_safety_checker=False).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8))
    points = [Point("make it blue", k, 7.5, 1.5, image, 0) for k in range(32)]
    one = denoise_points(pipe, points[:1], num_inference_steps=2, max_batch=1)
    assert one.memory_growth_mb and one.memory_growth_mb > 0
    torch.cuda.empty_cache()
    total_mb = torch.cuda.get_device_properties(0).total_memory / 2**20
    cap_mb = torch.cuda.memory_allocated() / 2**20 + 6 * one.memory_growth_mb + 64
    torch.cuda.set_per_process_memory_fraction(cap_mb / total_mb)
    try:
        made = denoise_points(pipe, points, num_inference_steps=2, max_batch=32)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert made.halvings and made.halvings[0] == "out of memory at 32 points per loop; retried at 16", made.halvings
    assert sum(made.loops) == 32 and max(made.loops) < 32
    assert all(np.isfinite(im).all() for im in made.images)

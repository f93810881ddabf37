"""A guidance sweep with its points batched through one denoising loop costs at most 0.6x one call per point.

Two sweep configurations (``CONFIGS``): the default below, and issue 24's, 2 photos x 2 prompts x 4 points at 30
DDIM steps (16 images), where a 2-core machine measured 1.00x; both get the same checks.

Both sides run the same edit cases through imgx's ``run_case`` on one loaded tiny pipeline in this process:
a 4-point ``image_guidance_scale`` sweep x 2 prompts on one 64 px photo, 20 steps (8 images), at the default
``max_batch`` (what a user gets: 4 points per loop on CPU). The sequential side sets ``inference.batch_sweep:
false`` (one ``pipe(...)`` call per image, as before batching); the batched side runs the same cases with the
plan set, so the first case makes all 8 images in batched loops. Neither requests latency (whose single timed
calls are the same on both sides). Rounds alternate (each sequential round runs in pytest-benchmark's untimed
``setup`` right before the timed batched round), so both see the same machine load; the goal compares the
fastest round of each.

The UNet is nearly all of both sides' time. Batching gains in two ways: the kernels' cost per row at bigger
batches, and rows the loop does not run (at the first step every point starts from the same latents, and at
image guidance 1 the unconditional branch cancels: 424 rows where one call per point runs 480). The ceiling
is measured in the same process: the tiny UNet alone at the loop's rows per call against 3 rows (a bare
call's batch), times the fraction of rows run. The hard check is that the batched sweep comes within 10% of
that ceiling (imgx adds nothing around the loop); the 0.6 goal is reported as xfail, with the figures, where
the ceiling itself is above it (2-core CPUs: 0.68-0.78).

Memory: on CPU each side runs alone in a fresh process and their peak RSS are reported side by side. The GPU
variant (``bench/gpu_check.sh`` runs it where CUDA is present) does the speed check at 512 px in float16 (goal
<= 0.4x), checks every batched image against its bare per-point call (PSNR >= 35 dB, none invalid), reports
the memory each side adds to the loaded pipeline and holds the batched loops to the budget ``max_batch`` was
chosen for.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from imgx.metrics.timing import peak_memory_mb, reset_peak_memory
from imgx.runner import RunContext, run_case
from imgx.suite import expand, load_suite
from tests.helpers import write_suite

SUITE = """
suite: sweep-batching
seed: 0
cases:
  - id: sweep
    task: edit
    model: {{name: instruct-pix2pix, weights: tiny, dtype: {dtype}}}
    data: {{name: photos, image_size: {size}, count: {photos}}}
    prompts: ["make it a pencil sketch", "turn the background into a cyberpunk city"]
    inference: {{num_inference_steps: {steps}, scheduler: {scheduler}, warmup: 0, repeats: 1,
                batch_sweep: {batched}}}
    sweep: {{image_guidance_scale: [1.0, 1.25, 1.5, 2.0]}}
    metrics: [ssim]
    device: {device}
"""
ROUNDS = 3
# Sweep configurations: the default one, and issue 24's (2 photos x 2 prompts x 4 points at 30 DDIM steps, where a
# 2-core machine measured the batched sweep at 1.00x the sequential time).
CONFIGS = {"default": {"photos": 1, "steps": 20, "scheduler": "euler-ancestral"},
           "issue24": {"photos": 2, "steps": 30, "scheduler": "ddim"}}
CEILING_TOLERANCE = 1.10


def _unet_ceiling(size: int, rows: int, device: str) -> float:
    """Per-row time of the tiny UNet at ``rows`` rows per call over its time at 3 rows (a bare call's batch)."""
    from imgx.models.tiny import tiny_pix2pix_components

    unet = tiny_pix2pix_components(0, safety_checker=False)["unet"].to(device).eval()
    latent = size // 2  # the tiny VAE halves the image

    inputs = {n: (torch.randn(n, 8, latent, latent, device=device),
                  torch.randn(n, 77, unet.config.cross_attention_dim, device=device)) for n in (3, rows)}
    best = {n: float("inf") for n in inputs}
    with torch.no_grad():
        for rep in range(12):  # alternating, so both sizes see the same machine load; the first 2 warm up
            for n, (x, hidden) in inputs.items():
                t0 = time.perf_counter()
                unet(x, 10, encoder_hidden_states=hidden)
                if rep >= 2:
                    best[n] = min(best[n], (time.perf_counter() - t0) / n)
    return best[rows] / best[3]


def _cases(tmp_path, name: str, **settings):
    settings = {**CONFIGS["default"], **settings}
    return expand(load_suite(write_suite(tmp_path, SUITE.format(**settings), f"{name}.yaml")))


def _sweep(cases, ctx: RunContext) -> list:
    """Run every case of the sweep as the runner does (plan set, batched outputs taken by later cases)."""
    ctx.resources.pop("batched-sweep", None)
    ctx.plan = list(cases)
    results = [run_case(c, ctx) for c in cases]
    assert all(r.status == "ok" for r in results), [r.detail for r in results]
    return results


def _measure(benchmark, tmp_path, *, size: int, dtype: str, device: str, config: str = "default"
             ) -> tuple[float, list, list]:
    settings = CONFIGS[config]
    images = settings["photos"] * 2 * 4  # photos x prompts x sweep points
    batched = _cases(tmp_path, "batched", size=size, dtype=dtype, device=device, batched="true", **settings)
    sequential = _cases(tmp_path, "sequential", size=size, dtype=dtype, device=device, batched="false", **settings)
    ctx = RunContext(out=tmp_path / "batched", quiet=True)
    seq_ctx = RunContext(out=tmp_path / "sequential", quiet=True, resources=ctx.resources)  # one loaded pipeline
    first = _sweep(batched, ctx)  # warm-up: loads the pipeline and the data into ctx.resources
    assert sum(first[0].info["batched_sweep"]["loops"]) == images
    reset_peak_memory(device)
    allocated = torch.cuda.memory_allocated(device) / 2**20 if device == "cuda" else 0.0
    seq_results = _sweep(sequential, seq_ctx)
    seq_growth = peak_memory_mb(device)[0] - allocated if device == "cuda" else None
    seq_seconds: list[float] = []

    def setup():
        t0 = time.perf_counter()
        _sweep(sequential, seq_ctx)
        seq_seconds.append(time.perf_counter() - t0)
        return (), {}

    results = benchmark.pedantic(lambda: _sweep(batched, ctx), setup=setup, rounds=ROUNDS, iterations=1)
    batched_best, seq_best = benchmark.stats.stats.min, min(seq_seconds)
    ratio = batched_best / seq_best
    sweep = results[0].info["batched_sweep"]
    benchmark.extra_info.update({"sequential_seconds_min": seq_best, "batched_seconds_min": batched_best,
                                 "ratio": ratio, "images": images, "steps": settings["steps"], "config": config,
                                 "scheduler": settings["scheduler"], "image_size": size, "dtype": dtype,
                                 "device": device, "loops": sweep["loops"], "unet_rows": sweep["unet_rows"],
                                 "bare_unet_rows": sweep["bare_unet_rows"],
                                 "batched_peak_memory_mb": sweep["peak_memory_mb"],
                                 "batched_memory_growth_mb": sweep["memory_growth_mb"],
                                 "sequential_memory_growth_mb": seq_growth,
                                 "memory_budget_mb": sweep["memory_budget_mb"],
                                 "torch_threads": torch.get_num_threads()})
    print(f"\n{config} sweep of {images} images ({settings['steps']} {settings['scheduler']} steps): batched "
          f"{batched_best:.3f} s (loops of {sweep['loops']} points, UNet rows "
          f"{sweep['unet_rows']} of {sweep['bare_unet_rows']}) vs one call per point {seq_best:.3f} s -> ratio "
          f"{ratio:.3f}; batched peak memory {sweep['peak_memory_mb']:.0f} MB ({sweep['peak_memory_what']})")
    if seq_growth is not None:
        print(f"memory over the loaded pipeline: batched {sweep['memory_growth_mb']:.0f} MB (max_batch "
              f"{sweep['max_batch']}: {sweep['max_batch_why']}) vs one call per point {seq_growth:.0f} MB")
    return ratio, results, seq_results


@pytest.mark.parametrize("config", list(CONFIGS))
def test_batched_sweep_speed_cpu(benchmark, tmp_path, config):
    goal = 0.6
    ratio, results, _ = _measure(benchmark, tmp_path, size=64, dtype="float32", device="cpu", config=config)
    sweep = results[0].info["batched_sweep"]
    rows = 3 * max(sweep["loops"])  # 3 branches per point
    per_row = _unet_ceiling(64, rows, "cpu")
    fraction = sweep["unet_rows"] / sweep["bare_unet_rows"]
    ceiling = per_row * fraction
    benchmark.extra_info.update({"unet_per_row_ratio": per_row, "unet_rows_fraction": fraction,
                                 "unet_batch_ceiling": ceiling})
    print(f"the UNet alone at {rows} rows per call costs {per_row:.3f}x per row what it costs at 3, and the loops run "
          f"{fraction:.3f} of the rows: ceiling {ceiling:.3f}x")
    assert ratio <= CEILING_TOLERANCE * ceiling, (
        f"the batched sweep costs {ratio:.3f}x one call per point, more than {CEILING_TOLERANCE}x the ceiling "
        f"{ceiling:.3f}x: the loop around the UNet loses time")
    if ratio > goal:
        pytest.xfail(f"goal <= {goal} not met: ratio {ratio:.3f}; the ceiling on this machine is {ceiling:.3f}x (the "
                     f"UNet gains {per_row:.3f}x per row from batching, and {fraction:.3f} of the rows run), so no "
                     "batched loop reaches the goal here")


def _peak_rss_mb(suite: Path, out: Path) -> float:
    """Peak resident memory of a fresh process that runs ``suite`` and nothing else."""
    code = ("from imgx.metrics.timing import peak_memory_mb\n"
            "from imgx.runner import run_suite\n"
            f"summary = run_suite({str(suite)!r}, {str(out)!r}, quiet=True, report=False)\n"
            "assert summary.exit_code == 0, summary.failed_cases\n"
            "print('peak_mb', peak_memory_mb('cpu')[0])\n")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return float(proc.stdout.split("peak_mb")[-1])


def test_batched_sweep_memory_cpu(benchmark, tmp_path):
    """Peak memory of the batched sweep beside the sequential one: each side alone in a fresh process (a CPU
    process's peak cannot be reset), the same 8 images. At the CPU default of 4 points per loop the loops' own
    memory is small beside the libraries and weights; the check catches a loop that keeps per-step tensors."""
    sides = {}
    for name, batched in (("sequential", "false"), ("batched", "true")):
        suite = write_suite(tmp_path, SUITE.format(size=64, dtype="float32", device="cpu", batched=batched,
                                                   **CONFIGS["default"]),
                            f"{name}.yaml")
        sides[name] = _peak_rss_mb(suite, tmp_path / name)
    benchmark.extra_info.update({f"{k}_peak_rss_mb": v for k, v in sides.items()})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\npeak RSS of a process running the sweep: batched {sides['batched']:.0f} MB, one call per point "
          f"{sides['sequential']:.0f} MB ({sides['batched'] / sides['sequential']:.3f}x)")
    assert sides["batched"] <= 1.25 * sides["sequential"]


@pytest.mark.gpu
def test_batched_sweep_speed_gpu(benchmark, tmp_path):
    from PIL import Image

    goal, min_psnr = 0.4, 35.0
    ratio, batched, sequential = _measure(benchmark, tmp_path, size=512, dtype="float16", device="cuda")
    worst = float("inf")
    for b, s in zip(batched, sequential, strict=True):
        for ob, os_ in zip(b.outputs, s.outputs, strict=True):
            assert ob["valid"] and os_["valid"], (ob["invalid_reason"], os_["invalid_reason"])
            x = np.asarray(Image.open(tmp_path / "batched" / ob["path"])).astype(np.float64)
            y = np.asarray(Image.open(tmp_path / "sequential" / os_["path"])).astype(np.float64)
            mse = ((x - y) ** 2).mean()
            worst = min(worst, float("inf") if mse == 0 else 10 * np.log10(255**2 / mse))
    benchmark.extra_info["min_psnr_vs_bare_db"] = worst
    print(f"float16 batched vs one call per point: min PSNR {worst:.1f} dB (goal >= {min_psnr})")
    assert worst >= min_psnr
    sweep = batched[0].info["batched_sweep"]
    assert sweep["memory_budget_mb"] and sweep["memory_growth_mb"] <= sweep["memory_budget_mb"], sweep
    assert ratio <= goal, f"the batched sweep costs {ratio:.3f}x one call per point on the GPU (goal <= {goal})"

"""An edit sweep case run through imgx costs at most 1.02x the same bare ``pipe(...)`` calls.

Both sides use one loaded tiny pipeline in this process, the same inputs, prompts, scheduler and CPU generators
(seeded as outputs.csv records them). imgx's side is ``run_case``: data from the run's cache, scheduler swap,
stage hooks and synchronised clocks, NaN/black checks, PNG writes of inputs, outputs and the grid, SSIM and
latency rows. The bare side is a loop of ``pipe(prompt, image=..., generator=...).images[0]``. Rounds
alternate (each bare round runs in pytest-benchmark's untimed ``setup`` right before the timed imgx round), so
both see the same machine load; the goal compares the fastest round of each. imgx's fixed cost per case is
about 25 ms here (PNG writes with fsync ~10 ms, SSIM ~8 ms, the grid ~5 ms), so the case is sized (4 calls x 20
steps at 64 px, ~3 s) like a small real sweep point rather than a toy where fixed costs dominate.
"""

from __future__ import annotations

import time

import torch

from imgx.runner import RunContext, run_case
from imgx.suite import expand, load_suite
from imgx.tasks.edit import load_inputs, make_pairs
from tests.helpers import write_suite

SUITE = """
suite: edit-overhead
seed: 0
cases:
  - id: edit
    task: edit
    model: {name: instruct-pix2pix, weights: tiny}
    data: {name: photos, image_size: 64, count: 2}
    prompts: ["make it a pencil sketch", "turn the background into a cyberpunk city"]
    inference: {num_inference_steps: 20, scheduler: ddim, warmup: 0, repeats: 1}
    metrics: [ssim, latency]
"""
GOAL = 1.02
ROUNDS = 5


def test_edit_case_overhead_over_bare_pipeline_calls(benchmark, tmp_path):
    from imgx.models.instruct_pix2pix import load_pipeline, set_scheduler

    case = expand(load_suite(write_suite(tmp_path, SUITE)))[0]
    ctx = RunContext(out=tmp_path / "out", quiet=True)
    assert run_case(case, ctx).status == "ok"  # warm-up: loads the pipeline and the data into ctx.resources
    loaded = load_pipeline(case.spec.model, case.device, ctx.cache_dir, ctx.resources)
    data = load_inputs(case.spec, case.seed, ctx.resources)
    pairs = make_pairs(case.spec, data, case.seed)
    inf = case.spec.inference
    bare_seconds: list[float] = []

    def bare():
        set_scheduler(loaded, inf.scheduler)
        images = []
        for p in pairs:
            images.append(loaded.pipe(p.prompt, image=data["images"][p.index],
                                      num_inference_steps=inf.num_inference_steps, guidance_scale=inf.guidance_scale,
                                      image_guidance_scale=inf.image_guidance_scale,
                                      generator=torch.Generator("cpu").manual_seed(p.seed)).images[0])
        return images

    def setup():
        t0 = time.perf_counter()
        bare()
        bare_seconds.append(time.perf_counter() - t0)
        return (), {}

    result = benchmark.pedantic(lambda: run_case(case, ctx), setup=setup, rounds=ROUNDS, iterations=1)
    assert result.status == "ok" and len(result.outputs) == len(pairs)
    imgx_best, bare_best = benchmark.stats.stats.min, min(bare_seconds)
    ratio = imgx_best / bare_best
    benchmark.extra_info.update({"bare_seconds_min": bare_best, "imgx_seconds_min": imgx_best, "ratio": ratio,
                                 "bare_seconds_median": sorted(bare_seconds)[len(bare_seconds) // 2],
                                 "imgx_seconds_median": benchmark.stats.stats.median, "calls": len(pairs),
                                 "steps": inf.num_inference_steps, "image_size": 64,
                                 "torch_threads": torch.get_num_threads()})
    print(f"\nedit case via imgx {imgx_best:.3f} s vs bare pipe calls {bare_best:.3f} s -> ratio {ratio:.4f} "
          f"(goal <= {GOAL})")
    assert ratio <= GOAL, f"imgx edit case costs {ratio:.3f}x the bare pipeline calls (goal <= {GOAL})"

"""A text-to-image case run through imgx costs at most 1.02x the same bare ``pipe(...)`` calls.

As ``bench/test_edit_overhead.py``: one loaded tiny text-to-image pipeline, the same prompts, scheduler and CPU
generators (seeded as outputs.csv records them) on both sides; imgx's side is ``run_case`` (scheduler swap, stage
hooks, synchronised clocks, NaN/black checks, PNG writes, the sample grid, latency rows), the bare side a loop of
``pipe(prompt, num_images_per_prompt=n, generator=[...])``. Rounds alternate; the fastest round of each is compared.
"""

from __future__ import annotations

import time

import torch

from imgx.runner import RunContext, run_case
from imgx.suite import expand, load_suite
from imgx.tasks.text_to_image import load_data, make_samples
from tests.helpers import write_suite

SUITE = """
suite: t2i-overhead
seed: 0
cases:
  - id: t2i
    task: text-to-image
    model: {name: stable-diffusion, weights: tiny}
    data: {name: digits, image_size: 64}
    prompts: ["a handwritten digit 3", "a handwritten digit 7"]
    samples: 2
    inference: {num_inference_steps: 20, scheduler: ddim, warmup: 0, repeats: 1}
    metrics: [latency]
"""
GOAL = 1.02
ROUNDS = 5


def test_t2i_case_overhead_over_bare_pipeline_calls(benchmark, tmp_path):
    from imgx.models.instruct_pix2pix import load_pipeline, set_scheduler

    case = expand(load_suite(write_suite(tmp_path, SUITE)))[0]
    ctx = RunContext(out=tmp_path / "out", quiet=True)
    assert run_case(case, ctx).status == "ok"  # warm-up: loads the pipeline and the data into ctx.resources
    loaded = load_pipeline(case.spec.model, case.device, ctx.cache_dir, ctx.resources, kind="text-to-image")
    load_data(case.spec.data, case.seed, ctx.resources)
    calls = make_samples(list(case.spec.prompts), case.spec.samples, case.seed)
    inf = case.spec.inference
    bare_seconds: list[float] = []

    def bare():
        set_scheduler(loaded, inf.scheduler)
        return [loaded.pipe(g[0].prompt, num_images_per_prompt=len(g), height=64, width=64,
                            num_inference_steps=inf.num_inference_steps, guidance_scale=inf.guidance_scale,
                            generator=[torch.Generator("cpu").manual_seed(s.seed) for s in g]).images for g in calls]

    def setup():
        t0 = time.perf_counter()
        bare()
        bare_seconds.append(time.perf_counter() - t0)
        return (), {}

    result = benchmark.pedantic(lambda: run_case(case, ctx), setup=setup, rounds=ROUNDS, iterations=1)
    assert result.status == "ok" and len(result.outputs) == 4
    imgx_best, bare_best = benchmark.stats.stats.min, min(bare_seconds)
    ratio = imgx_best / bare_best
    benchmark.extra_info.update({"bare_seconds_min": bare_best, "imgx_seconds_min": imgx_best, "ratio": ratio,
                                 "calls": len(calls), "steps": inf.num_inference_steps, "image_size": 64,
                                 "torch_threads": torch.get_num_threads()})
    print(f"\nt2i case via imgx {imgx_best:.3f} s vs bare pipe calls {bare_best:.3f} s -> ratio {ratio:.4f} "
          f"(goal <= {GOAL})")
    assert ratio <= GOAL, f"imgx text-to-image case costs {ratio:.3f}x the bare pipeline calls (goal <= {GOAL})"

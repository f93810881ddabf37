"""Resuming a finished run (every case already in the ledger) costs a small fraction of running it.

Both are measured in this process on the same suite: a first run into a fresh directory, then
``run_suite`` again on the same ``--out``, which plans, reads the ledger, re-judges gates and rewrites the
tables and manifest, but runs no case. Goal: resume <= 5% of the run. Imports are warmed up beforehand so
that neither side pays them.
"""

from __future__ import annotations

import time

import pytest

from imgx.runner import run_suite
from tests.helpers import write_suite

SUITE = """
suite: resume-cost
seed: 0
cases:
  - id: colorizer
    task: colorize
    model: {name: encoder-decoder}
    data: {name: photos, image_size: 32, train: 1024, test: 64}
    train: {epochs: 2, batch_size: 64}
    metrics: [mse, psnr, ssim]
    gates: {ssim: ">= 0.0"}
    sweep: {lr: [0.001, 0.002, 0.003]}
"""
GOAL = 0.05


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished run and the seconds it took (imports warmed up by a throw-away run first)."""
    folder = tmp_path_factory.mktemp("resume")
    suite = write_suite(folder, SUITE)
    run_suite(suite, folder / "warm", quiet=True, report=False, argv=["bench"], filters=["lr=0.001"])
    t0 = time.perf_counter()
    summary = run_suite(suite, folder / "run", quiet=True, report=False, argv=["bench"])
    seconds = time.perf_counter() - t0
    assert summary.ran == 3 and summary.exit_code == 0
    return suite, summary.out, seconds


def test_resume_of_finished_run_is_a_small_fraction(benchmark, finished_run):
    suite, out, run_seconds = finished_run

    def resume():
        return run_suite(suite, out, quiet=True, report=False, argv=["bench"])

    summary = benchmark.pedantic(resume, rounds=5, iterations=1, warmup_rounds=1)
    assert summary.ran == 0 and summary.reused == 3
    resume_seconds = benchmark.stats.stats.median
    ratio = resume_seconds / run_seconds
    benchmark.extra_info.update({"run_seconds": run_seconds, "resume_seconds": resume_seconds, "ratio": ratio,
                                 "cases": 3})
    print(f"\nresume of a finished 3-case run: {resume_seconds * 1000:.0f} ms vs run {run_seconds:.2f} s "
          f"-> ratio {ratio:.4f} (goal <= {GOAL})")
    assert ratio <= GOAL

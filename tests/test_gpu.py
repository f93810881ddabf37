"""CUDA paths, run only where a GPU is present (``pytest -m gpu``)."""

import csv

import pytest

from imgx.runner import run_suite
from tests.helpers import TINY_COLORIZE, write_suite

pytestmark = pytest.mark.gpu


def _oom_task(case, ctx):
    """Asks the GPU for far more memory than it has: a real CUDA out-of-memory error."""
    import torch

    free, total = torch.cuda.mem_get_info()
    torch.empty(int(total * 4), dtype=torch.uint8, device="cuda")
    raise AssertionError("unreachable")


def test_colorizer_on_cuda_matches_cpu_closely(tmp_path):
    path = write_suite(tmp_path, TINY_COLORIZE.replace("seed: 0", "seed: 0\ndefaults: {device: [cpu, cuda]}"))
    summary = run_suite(path, tmp_path / "run", quiet=True, report=False)
    status = {r["case_id"]: r for r in summary.records}
    assert status["colorizer[device=cuda]"]["status"] == "ok", status["colorizer[device=cuda]"]["detail"]
    with open(tmp_path / "run" / "results.csv", newline="") as fh:
        rows = {(r["case_id"], r["metric"], r["reference"]): float(r["value"]) for r in csv.DictReader(fh)}
    cpu, cuda = rows[("colorizer[device=cpu]", "ssim", "")], rows[("colorizer[device=cuda]", "ssim", "")]
    assert abs(cpu - cuda) < 0.05  # same seed and data; kernels differ, so not bit-identical


def test_cuda_oom_fails_the_case_and_the_run_goes_on(tmp_path):
    from imgx.data import DATASETS
    from imgx.models import MODELS
    from imgx.tasks import TASKS

    TASKS.register("oom", _oom_task)
    MODELS.register("oom-model", "imgx.models.colorizer:EncoderDecoder", task="oom", options=set())
    DATASETS.meta("photos")["tasks"].add("oom")
    try:
        text = TINY_COLORIZE.replace("cases:\n", "cases:\n  - id: greedy\n    task: oom\n    device: cuda\n"
                                                 "    model: {name: oom-model}\n    data: {name: photos}\n")
        summary = run_suite(write_suite(tmp_path, text), tmp_path / "run", quiet=True, report=False)
    finally:
        TASKS.unregister("oom")
        MODELS.unregister("oom-model")
        DATASETS.meta("photos")["tasks"].discard("oom")
    status = {r["case_id"]: r for r in summary.records}
    assert status["greedy"]["status"] == "failed"
    assert status["greedy"]["detail"].startswith("CUDA out of memory")
    assert status["colorizer"]["status"] == "ok"

"""The runner: run directory contents, resume, a real SIGKILL mid-run, determinism, skips, gates, failures."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from imgx.runner import run_suite
from tests.helpers import TINY_COLORIZE, quality_rows, write_suite


def test_run_directory_has_every_file(tiny_suite, tmp_path):
    out = tmp_path / "run"
    summary = run_suite(tiny_suite, out, quiet=True, report=False)
    assert summary.exit_code == 0 and summary.ran == 1
    for name in ("manifest.json", "results.csv", "outputs.csv", "history.csv"):
        assert (out / name).is_file(), name
    (record,) = [json.loads(p.read_text()) for p in (out / "cases").glob("*.json")]
    assert record["status"] == "ok" and record["seed"] == summary.records[0]["seed"]
    assert (out / record["artifacts"]["grid"]).is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["suite_sha256"] and manifest["environment"]["versions"]["torch"]
    assert manifest["ended"] and manifest["counts"] == {"ok": 1}
    rows = quality_rows(out)
    assert {(r["metric"], r["reference"]) for r in rows} == {(m, ref) for m in ("mse", "psnr", "ssim")
                                                             for ref in ("", "gray-copy")}
    with open(out / "history.csv", newline="") as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["1", "2"]


def test_resume_skips_finished_cases(tiny_suite, tmp_path):
    out = tmp_path / "run"
    run_suite(tiny_suite, out, quiet=True, report=False)
    before = quality_rows(out)
    again = run_suite(tiny_suite, out, quiet=True, report=False)
    assert (again.ran, again.reused) == (0, 1)
    assert quality_rows(out) == before


def test_two_runs_give_identical_numbers(tiny_suite, tmp_path):
    run_suite(tiny_suite, tmp_path / "a", quiet=True, report=False)
    run_suite(tiny_suite, tmp_path / "b", quiet=True, report=False)
    assert quality_rows(tmp_path / "a") == quality_rows(tmp_path / "b")


def test_cuda_cases_are_skipped_with_the_reason_and_exit_0(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the skip path is for machines without it")
    path = write_suite(tmp_path, TINY_COLORIZE.replace("seed: 0", "seed: 0\ndefaults: {device: [cpu, cuda]}"))
    summary = run_suite(path, tmp_path / "run", quiet=True, report=False)
    assert summary.exit_code == 0
    status = {r["case_id"]: (r["status"], r["detail"]) for r in summary.records}
    assert status["colorizer[device=cpu]"][0] == "ok"
    assert status["colorizer[device=cuda]"][0] == "skipped"
    assert "CUDA is not available" in status["colorizer[device=cuda]"][1]


def test_failed_gate_exits_1_and_names_the_bound(tmp_path):
    path = write_suite(tmp_path, TINY_COLORIZE + '    gates: {ssim: ">= 0.999"}\n')
    proc = subprocess.run([sys.executable, "-m", "imgx", "run", str(path), "--out", str(tmp_path / "run"), "-q",
                           "--no-report"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "GATE FAILED colorizer: ssim = " in proc.stdout and "required >= 0.999" in proc.stdout


def _diverging_task(case, ctx):
    """A real colorizer trained on data with one NaN pixel: the loss goes non-finite at the first batch."""
    import torch

    from imgx.models.colorizer import EncoderDecoder
    from imgx.train.supervised import fit

    x = torch.rand(128, 1, 16, 16)
    x[5, 0, 3, 3] = float("nan")
    fit(EncoderDecoder(), x, torch.rand(128, 3, 16, 16), epochs=2, batch_size=256, lr=1e-3, seed=case.seed)
    raise AssertionError("unreachable: fit must raise on a NaN loss")


@pytest.fixture
def diverging_task():
    from imgx.tasks import TASKS

    TASKS.register("diverge", _diverging_task)
    yield
    TASKS.unregister("diverge")


def test_diverging_case_fails_and_the_suite_goes_on(tmp_path, diverging_task):
    text = TINY_COLORIZE.replace("cases:\n", """cases:
  - id: unstable
    task: diverge
    model: {name: encoder-decoder}
    data: {name: photos}
""")
    from imgx.models import MODELS

    MODELS.register("diverging-colorizer", "imgx.models.colorizer:EncoderDecoder", task="diverge", options=set())
    try:
        path = write_suite(tmp_path, text.replace("name: encoder-decoder}\n    data: {name: photos}",
                                                  "name: diverging-colorizer}\n    data: {name: photos}"))
        from imgx.data import DATASETS

        DATASETS.meta("photos")["tasks"].add("diverge")
        summary = run_suite(path, tmp_path / "run", quiet=True, report=False)
    finally:
        MODELS.unregister("diverging-colorizer")
        DATASETS.meta("photos")["tasks"].discard("diverge")
    status = {r["case_id"]: r for r in summary.records}
    assert status["unstable"]["status"] == "failed"
    assert status["unstable"]["detail"] == "training diverged: non-finite loss nan at epoch 1, step 0"
    assert status["colorizer"]["status"] == "ok"
    assert summary.exit_code == 1


def test_second_run_on_the_same_out_is_refused_while_the_first_holds_it(tiny_suite, tmp_path):
    from imgx.errors import RunDirError
    from imgx.runner import RunLock

    out = tmp_path / "run"
    out.mkdir()
    with RunLock(out), pytest.raises(RunDirError, match="another imgx run is writing here"):
        run_suite(tiny_suite, out, quiet=True, report=False)


SEVERAL = """
suite: several
seed: 0
cases:
  - id: c
    task: colorize
    model: {name: encoder-decoder}
    data: {name: photos, image_size: 16, train: 1024, test: 64}
    train: {epochs: 3, batch_size: 64}
    metrics: [mse, ssim]
    sweep: {seed: [0, 1, 2, 3, 4, 5]}
"""


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    path = write_suite(tmp_path, SEVERAL)
    reference = tmp_path / "reference"
    run_suite(path, reference, quiet=True, report=False)
    out = tmp_path / "killed"
    for kill_after in (1, 3):  # kill at several points
        proc = subprocess.Popen([sys.executable, "-m", "imgx", "run", str(path), "--out", str(out), "-q",
                                 "--no-report"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 240
        while time.time() < deadline and len(list((out / "cases").glob("*.json"))) < kill_after:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        done = len(list((out / "cases").glob("*.json")))
        assert kill_after <= done < 6
    summary = run_suite(path, out, quiet=True, report=False)
    assert summary.reused >= 3 and summary.ran + summary.reused == 6
    assert quality_rows(out) == quality_rows(reference)
    assert len(list((out / "cases").glob("*.json"))) == 6
    assert not list((out / "cases").glob(".*.tmp"))

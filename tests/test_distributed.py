"""Scale-out: ``accelerate launch`` shards cases across processes into one merged run directory."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imgx.runner import run_suite
from tests.helpers import quality_rows, write_suite

SUITE = """
suite: mp
seed: 0
cases:
  - id: c
    task: colorize
    model: {name: encoder-decoder}
    data: {name: photos, image_size: 16, train: 256, test: 32}
    train: {epochs: 1}
    metrics: [mse, ssim]
    cpu_threads: 1
    sweep: {seed: [0, 1, 2]}
"""


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, "accelerate's launcher is installed with imgx"
    suite = write_suite(tmp_path, SUITE)
    run_suite(suite, tmp_path / "one", quiet=True, report=False)
    # --multi_gpu selects accelerate's torchrun launcher, which also starts N processes on a CPU-only machine.
    proc = subprocess.run([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "imgx", "run", str(suite),
                           "--out", str(tmp_path / "two"), "-q", "--no-report"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3 ok (ran 3, reused 0 in 2 processes)" in proc.stdout  # every shard counted
    assert quality_rows(tmp_path / "two") == quality_rows(tmp_path / "one")
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["num_processes"] == 2 and manifest["counts"] == {"ok": 3}


UNEVEN = """
suite: uneven
seed: 0
cases:
  - id: {first}
    task: colorize
    model: {{name: encoder-decoder}}
    data: {{name: photos, image_size: 16, train: {first_train}, test: 32}}
    train: {{epochs: {first_epochs}}}
    metrics: [mse, ssim]
    cpu_threads: 1
  - id: {second}
    task: colorize
    model: {{name: encoder-decoder}}
    data: {{name: photos, image_size: 16, train: {second_train}, test: 32}}
    train: {{epochs: {second_epochs}}}
    metrics: [mse, ssim]
    cpu_threads: 1
"""
SMALL = {"train": 64, "epochs": 1}
BIG = {"train": 512, "epochs": 4}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(suite: Path, out: Path, count: int = 2) -> list[subprocess.Popen]:
    """``count`` plain ``python -m imgx run`` processes with the variables torchrun / accelerate launch set."""
    port = str(_free_port())
    procs = []
    for rank in range(count):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(count), "LOCAL_RANK": str(rank),
               "LOCAL_WORLD_SIZE": str(count), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        procs.append(subprocess.Popen([sys.executable, "-m", "imgx", "run", str(suite), "--out", str(out), "-q"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


@pytest.mark.parametrize("order", ["process 0 faster", pytest.param("process 0 slower", marks=pytest.mark.slow)])
def test_uneven_shards_give_the_single_process_rows(tmp_path, order):
    first, second = (SMALL, BIG) if order == "process 0 faster" else (BIG, SMALL)
    suite = write_suite(tmp_path, UNEVEN.format(first="a", second="b", first_train=first["train"],
                                                first_epochs=first["epochs"], second_train=second["train"],
                                                second_epochs=second["epochs"]))
    run_suite(suite, tmp_path / "one", quiet=True, report=False)
    procs = _launch(suite, tmp_path / "two")
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert "2 ok (ran 2, reused 0 in 2 processes)" in outputs[0][0]
    assert quality_rows(tmp_path / "two") == quality_rows(tmp_path / "one")
    assert (tmp_path / "two" / "report.html").is_file()
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["num_processes"] == 2 and manifest["counts"] == {"ok": 2}
    where = {json.loads(p.read_text())["case_id"]: json.loads(p.read_text())["process_index"]
             for p in (tmp_path / "two" / "cases").glob("*.json")}
    assert where == {"a": 0, "b": 1}
    assert "process 1 ran b" in (tmp_path / "two" / "report.html").read_text()


def test_a_process_that_dies_is_reported_and_its_cases_are_left_for_a_resume(tmp_path):
    suite = write_suite(tmp_path, UNEVEN.format(first="a", second="b", first_train=64, first_epochs=1,
                                                second_train=4096, second_epochs=50))
    out = tmp_path / "run"
    procs = _launch(suite, out)
    started = out / "locks" / "rank1" / "started"
    deadline = time.time() + 120
    while not started.exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # inside its case
    procs[1].send_signal(signal.SIGKILL)
    stdout, stderr = procs[0].communicate(timeout=300)
    procs[1].wait()
    assert procs[0].returncode == 1, stderr
    assert "STOPPED EARLY: process 1 died (its lock is free); 1 of its cases not run: b" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["unfinished"] == ["b"] and "process 1 died" in manifest["aborted"]
    assert {r["case_id"] for r in quality_rows(out)} == {"a"}
    assert "process 1 died" in (out / "report.html").read_text()

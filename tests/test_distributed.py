"""Scale-out: ``accelerate launch`` shards cases across processes into one merged run directory."""

import json
import shutil
import subprocess
import sys
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
    assert "ran 2" in proc.stdout  # rank 0 ran its shard; rank 1 ran the rest
    assert quality_rows(tmp_path / "two") == quality_rows(tmp_path / "one")
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["num_processes"] == 2 and manifest["counts"] == {"ok": 3}

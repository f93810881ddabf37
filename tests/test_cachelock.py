"""Processes that need the same cached trained model build it once (real processes, real file locks)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

BUILDER = """
import json, sys, time
from pathlib import Path
from imgx.models.trained import _cached

folder, log, seconds = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])

def build(tmp):
    with open(log, "a") as fh:
        fh.write("built\\n")
    time.sleep(seconds)
    (tmp / "weights.bin").write_bytes(b"w" * 64)
    return {"history": [{"epoch": 1}]}

model = _cached(folder, lambda f: (f / "weights.bin").read_bytes(), build)
print(json.dumps({"reused": model.reused, "weights": (model.folder / "weights.bin").stat().st_size}))
"""


def _start(tmp_path: Path, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BUILDER, str(tmp_path / "cache" / "model"),
                             str(tmp_path / "builds.log"), str(seconds)], stdout=subprocess.PIPE, text=True)


def _builds(tmp_path: Path) -> int:
    log = tmp_path / "builds.log"
    return log.read_text().count("built") if log.exists() else 0


def test_three_processes_train_one_model_once(tmp_path):
    procs = [_start(tmp_path, 1.5) for _ in range(3)]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert _builds(tmp_path) == 1
    assert sorted(r["reused"] for r in results) == [False, True, True]
    assert all(r["weights"] == 64 for r in results)


def test_a_builder_killed_mid_training_does_not_block_the_next(tmp_path):
    first = _start(tmp_path, 600.0)
    deadline = time.monotonic() + 60
    while _builds(tmp_path) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _builds(tmp_path) == 1, "the first builder never started building"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    second = _start(tmp_path, 0.5)
    out = json.loads(second.communicate(timeout=120)[0])
    assert second.returncode == 0 and out == {"reused": False, "weights": 64}
    assert _builds(tmp_path) == 2
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".model.lock", "model"]  # no half model

"""Record the latency sample sets of ``data/latency_samples.json``: ``python -m tests.compare.record_latency``.

Each "run" times the same ~20 ms single-threaded matmul call ``REPEATS`` times, as a case's repeats would; runs
are recorded back to back on whatever machine this is, with whatever load it has (the point: real noise).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RUNS, REPEATS, TARGET_MS = 16, 20, 20.0


def main() -> None:
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(192, 192, dtype=torch.float64), torch.randn(192, 192, dtype=torch.float64)
    for _ in range(20):  # warm-up before calibrating
        torch.mm(a, b)
    t0 = time.perf_counter()
    for _ in range(50):
        torch.mm(a, b)
    units = max(1, round(1.2 * TARGET_MS / ((time.perf_counter() - t0) * 1000 / 50)))
    runs = []
    for _ in range(RUNS):
        samples = []
        torch.mm(a, b)  # warm-up
        for _ in range(REPEATS):
            start = time.perf_counter()
            for _ in range(units):
                torch.mm(a, b)
            samples.append(round((time.perf_counter() - start) * 1000, 4))
        runs.append(samples)
    out = {"what": f"{RUNS} runs x {REPEATS} timings (ms) of the same {units}x 192x192 float64 matmul, 1 thread",
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, shared with other jobs",
           "runs": runs}
    path = Path(__file__).parent / "data" / "latency_samples.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""A run that stops part-way on bad input (exit 2) still tables what finished and says why in the report."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from tests.helpers import quality_rows, write_suite


def test_abort_part_way_writes_tables_and_report_for_finished_cases(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(images / f"{i}.png")
    (images / "broken.png").write_bytes((images / "0.png").read_bytes()[:50])
    suite = write_suite(tmp_path, f"""
        suite: partial
        cases:
          - id: first
            task: colorize
            model: {{name: encoder-decoder}}
            data: {{name: photos, image_size: 16, train: 64, test: 16}}
            train: {{epochs: 1}}
            metrics: [mse]
          - id: second
            task: colorize
            model: {{name: encoder-decoder}}
            data: {{name: folder, path: "{images}", image_size: 16, train: 32, test: 8}}
            train: {{epochs: 1}}
            metrics: [mse]
        """)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "imgx", "run", str(suite), "--out", str(out), "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "broken.png: not a readable image" in proc.stderr and "Traceback" not in proc.stderr
    assert {r["case_id"] for r in quality_rows(out)} == {"first"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert "broken.png: not a readable image" in manifest["aborted"]
    assert manifest["unfinished"] == ["second"] and manifest["counts"] == {"ok": 1}
    html = (out / "report.html").read_text()
    assert "The run stopped early" in html and "broken.png: not a readable image" in html

"""Helpers for the user-model tests: run the CLI as a user does, read results.csv."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "thirdparty" / "imgx_demo_models"
PHOTOS = "{name: photos, image_size: 16, train: 64, test: 16}"


def imgx(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m imgx ARGS`` in a subprocess (as a user runs it)."""
    return subprocess.run([sys.executable, "-m", "imgx", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env=env)


def results(out: Path) -> list[dict[str, str]]:
    """The rows of ``out/results.csv``."""
    with open(out / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def value(rows: list[dict[str, str]], case: str, metric: str, reference: str = "") -> str:
    """The one value (as written) of ``metric`` / ``reference`` for ``case``."""
    found = [r for r in rows if r["case_id"] == case and r["metric"] == metric and r["reference"] == reference]
    assert len(found) == 1, (case, metric, reference, found)
    return found[0]["value"]

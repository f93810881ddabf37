"""``-k``: what a filter selects, and a filter that selects nothing is bad input (exit 2), not an empty pass."""

import subprocess
import sys

import pytest

from imgx.runner import plan
from tests.helpers import write_suite

SUITE = """
suite: sel
seed: 0
cases:
  - id: col
    task: colorize
    model: {name: encoder-decoder}
    data: {name: photos, image_size: 16, train: 64, test: 16}
    metrics: [mse]
    sweep: {seed: [1, 10]}
  - id: edge
    task: colorize
    model: {name: encoder-decoder}
    data: {name: photos, image_size: 16, train: 64, test: 16}
    metrics: [mse]
"""


@pytest.mark.parametrize(("filters", "expected"), [
    (["ed"], ["edge"]),  # not col[seed=...] through the letters of "seed"
    (["co"], ["col[seed=1]", "col[seed=10]"]),
    (["seed=1"], ["col[seed=1]"]),  # a whole token: not seed=10
    (["seed"], ["col[seed=1]", "col[seed=10]"]),
    (["COL[SEED=10]"], ["col[seed=10]"]),
    (["edge", "seed=10"], ["col[seed=10]", "edge"]),  # any filter
])
def test_k_matches_base_ids_and_whole_sweep_tokens(tmp_path, filters, expected):
    _, cases = plan(write_suite(tmp_path, SUITE), filters=filters)
    assert [c.id for c in cases] == expected


def test_k_selecting_nothing_exits_2_naming_the_filter_and_the_cases(tmp_path):
    path = write_suite(tmp_path, SUITE)
    proc = subprocess.run([sys.executable, "-m", "imgx", "run", str(path), "--out", str(tmp_path / "run"),
                           "-k", "nothing", "-q"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "-k nothing selects no case" in proc.stderr
    assert "col[seed=1], col[seed=10], edge" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "results.csv").exists()

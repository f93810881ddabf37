"""Run-directory tables: column contract and the generator seed vs a swept ``seed`` parameter."""

import csv

from imgx.results import RESULT_COLUMNS
from imgx.runner import run_suite
from tests.helpers import write_suite

SUITE = """
suite: seeds
cases:
  - id: edit
    task: edit
    model: {name: instruct-pix2pix, weights: tiny}
    data: {name: photos, image_size: 32, count: 1}
    prompts: ["make it <b>snow</b> ../../x"]
    inference: {num_inference_steps: 2, warmup: 0, repeats: 1}
    metrics: [ssim]
    sweep: {seed: [0, 1]}
"""


def test_outputs_keep_both_the_swept_seed_and_the_generator_seed(tmp_path):
    run_suite(write_suite(tmp_path, SUITE), tmp_path / "run", quiet=True, report=False)
    with open(tmp_path / "run" / "results.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == RESULT_COLUMNS + ["seed"]
    with open(tmp_path / "run" / "outputs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["param_seed"] for r in rows] == ["0", "1"]
    assert len({r["seed"] for r in rows}) == 2 and all(r["seed"].isdigit() for r in rows)
    assert rows[0]["prompt"] == "make it <b>snow</b> ../../x"  # verbatim in the table
    assert all(r["path"].startswith("images/") and ".." not in r["path"] for r in rows)


def test_atomic_writes_get_the_umask_permissions_not_mkstemps_0600(tmp_path):
    """Reports and results are for sharing: files are created as ``open()`` would create them."""
    import os

    from imgx.results import atomic_write_text

    mask = os.umask(0)
    os.umask(mask)
    atomic_write_text(tmp_path / "report.html", "<p>x</p>")
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == 0o666 & ~mask


def test_output_rows_keep_a_swept_seed_beside_the_generator_seed():
    """The one flattening behind outputs.csv and the report's fallback when that file is missing."""
    from imgx.results import output_rows

    records = [{"case_id": "edit[seed=1]", "params": {"seed": 1, "scheduler": "ddim"},
                "outputs": [{"prompt": "p", "seed": 123456, "path": "images/a.png"}]}]
    (row,) = output_rows(records)
    assert row == {"case_id": "edit[seed=1]", "param_seed": 1, "scheduler": "ddim", "prompt": "p", "seed": 123456,
                   "path": "images/a.png"}

"""Hardware variants of one sweep point: output agreement (PSNR/SSIM) and speed-up against the reference."""

import csv

from imgx.runner import run_suite
from tests.helpers import write_suite

SUITE = """
suite: hw
seed: 0
cases:
  - id: edit
    task: edit
    model: {name: instruct-pix2pix, weights: tiny}
    data: {name: photos, image_size: 32, count: 1}
    prompts: ["make it snow"]
    inference: {num_inference_steps: 2, repeats: 2}
    metrics: [ssim, latency]
    sweep:
      dtype: [float32, bfloat16]
      attention: [sdpa, math]
"""


def test_variants_are_compared_with_the_first_combination(tmp_path):
    summary = run_suite(write_suite(tmp_path, SUITE), tmp_path / "run", quiet=True, report=False)
    assert [r["status"] for r in summary.records] == ["ok"] * 4
    with open(tmp_path / "run" / "results.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["reference"] == "dtype=float32,attention=sdpa"]
    value = {(r["case_id"], r["metric"]): float(r["value"]) for r in rows}
    # Same dtype, other attention kernel: the same image up to rounding.
    assert value[("edit[dtype=float32,attention=math]", "psnr")] >= 40
    # bfloat16 changes the image a little, and the report must show by how much.
    bf16 = value[("edit[dtype=bfloat16,attention=sdpa]", "ssim")]
    assert 0.5 < bf16 < 1.0
    assert value[("edit[dtype=bfloat16,attention=sdpa]", "psnr")] < 100
    assert all(value[(c, "speedup")] > 0 for c in ("edit[dtype=float32,attention=math]",
                                                   "edit[dtype=bfloat16,attention=sdpa]",
                                                   "edit[dtype=bfloat16,attention=math]"))
    assert not any(r["case_id"] == "edit[dtype=float32,attention=sdpa]" for r in rows)  # the reference itself

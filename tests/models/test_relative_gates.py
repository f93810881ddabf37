"""Gates relative to a reference row of the same case: validation by task knowledge, verdicts with the reference."""

from __future__ import annotations

import pytest

from imgx.errors import SuiteError
from imgx.runner import run_suite
from imgx.suite import load_suite
from imgx.suite.preflight import Gate, parse_gate
from tests.helpers import write_suite

COLORIZE = """
suite: rel
seed: 0
cases:
  - id: col
    task: colorize
    model: {{name: encoder-decoder}}
    data: {{name: photos, image_size: 16, train: 64, test: 16}}
    train: {{epochs: 1, batch_size: 32}}
    metrics: [mse, psnr, ssim]
    gates: {gates}
"""
GENERATE = """
suite: rel
cases:
  - id: gan
    task: generate
    model: {{name: dcgan}}
    data: {{name: digits}}
    metrics: [fid, kid]
    gates: {gates}
"""


@pytest.mark.parametrize(("expr", "gate"), [
    ("> gray-copy", Gate(">", reference="gray-copy")),
    ("<= 0.5 * untrained", Gate("<=", reference="untrained", scale=0.5)),
    (" >=2e-1*real-split ", Gate(">=", reference="real-split", scale=0.2)),
    (">= 0.8", Gate(">=", bound=0.8, text="0.8")),
    ("at least gray-copy", None),
    ("> 2 * ", None),
])
def test_parse_gate(expr, gate):
    assert parse_gate(expr) == gate


@pytest.mark.parametrize(("text", "gates", "message"), [
    (COLORIZE, '{psnr: "> untrained"}', "cases[0].gates.psnr: gate on 'psnr' relative to 'untrained': this case "
                                        "computes 'psnr' references gray-copy only"),
    (COLORIZE, '{psnr: "> gray-cpy"}', "did you mean 'gray-copy'?"),
    (COLORIZE, '{train_seconds: "< gray-copy"}', "task 'colorize' reports no reference row for 'train_seconds'"),
    (COLORIZE, '{psnr: "bigger than gray-copy"}', "is not '<op> <number>' or '<op> [<factor> *] <reference>'"),
    (GENERATE, '{fid: "<= 0.5 * identity"}', "references real-split, untrained only"),
])
def test_validation_refuses_a_reference_the_case_does_not_compute(tmp_path, text, gates, message):
    path = write_suite(tmp_path, text.format(gates=gates))
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert any(message in p for p in info.value.problems()), info.value.problems()


def test_valid_reference_gates_load(tmp_path):
    load_suite(write_suite(tmp_path, GENERATE.format(gates='{fid: "<= 0.5 * untrained", kid: "> real-split"}')))


def test_relative_gates_name_the_reference_and_its_value(tmp_path):
    path = write_suite(tmp_path, COLORIZE.format(gates='{ssim: "> 2 * gray-copy", mse: "< 100 * gray-copy"}'))
    summary = run_suite(path, tmp_path / "run", quiet=True, report=False, argv=["test"])
    record = summary.records[0]
    ref = {r["metric"]: r["value"] for r in record["rows"] if r["reference"] == "gray-copy"}
    own = {r["metric"]: r["value"] for r in record["rows"] if r["reference"] == ""}
    ssim, mse = (next(g for g in record["gates"] if g["metric"] == m) for m in ("ssim", "mse"))
    assert ssim["passed"] is False and mse["passed"] is True  # gray-copy SSIM is ~0.8: twice it is out of reach
    assert ssim["bound"] == pytest.approx(2 * ref["ssim"]) and ssim["reference_value"] == ref["ssim"]
    assert ssim["detail"] == (f"ssim = {own['ssim']:.6g}, required > 2 * gray-copy (2 * gray-copy {ref['ssim']:.6g} "
                              f"= {2 * ref['ssim']:.6g})")
    assert summary.exit_code == 1
    assert any("required > 2 * gray-copy" in f for f in summary.gate_failures)

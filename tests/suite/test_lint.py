"""Suite warnings: legal settings that are probably a mistake, printed by validate and run, never fatal."""

from __future__ import annotations

from imgx.cli import main
from imgx.suite import load_suite
from imgx.suite.lint import suite_warnings
from tests.helpers import write_suite

EDIT = """
suite: lint
cases:
  - id: edit
    task: edit
    model: {{name: instruct-pix2pix, weights: tiny, dtype: {dtype}}}
    data: {{name: photos, image_size: 64, count: 1}}
    prompts: ["x"]
    device: {device}
    inference: {{guidance_scale: 7.5, num_inference_steps: 2}}
    sweep: {{{sweep}, scheduler: [ddim, euler]}}
    metrics: [ssim]
"""


def test_sweep_axis_overriding_a_fixed_value_is_a_warning_with_file_and_line(tmp_path, capsys):
    path = write_suite(tmp_path, EDIT.format(dtype="float32", device="cpu", sweep="guidance_scale: [5.0, 10.0]"))
    warnings = suite_warnings(load_suite(path))
    assert warnings == [f"{path}:10: cases[0].sweep.guidance_scale: overrides inference.guidance_scale: 7.5 set in "
                        "the same case (line 9); every sweep point uses the sweep's value, so the fixed one is never "
                        "used"]
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == f"imgx: warning: {warnings[0]}\n"
    assert "ok (1 case entries, 4 cases, 1 warning(s))" in captured.out
    # Sweeping an axis the case does not also fix is silent.
    other = write_suite(tmp_path, EDIT.format(dtype="float32", device="cpu", sweep="image_guidance_scale: [1, 2]"),
                        name="other.yaml")
    assert suite_warnings(load_suite(other)) == []


def test_float16_on_cpu_is_one_warning_per_case_entry(tmp_path):
    path = write_suite(tmp_path, EDIT.format(dtype="float16", device="cpu", sweep="image_guidance_scale: [1, 2]"))
    warnings = suite_warnings(load_suite(path))
    assert len(warnings) == 1  # four sweep points, one warning
    assert warnings[0].startswith(f"{path}:5: cases[0].model.dtype: float16 on cpu")
    assert "slower than float32" in warnings[0]
    gpu = write_suite(tmp_path, EDIT.format(dtype="float16", device="cuda", sweep="image_guidance_scale: [1, 2]"),
                      name="gpu.yaml")
    assert suite_warnings(load_suite(gpu)) == []

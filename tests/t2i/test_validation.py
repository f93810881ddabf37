"""Suite validation for text-to-image: every bad input is exit 2 with file, line and field path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from imgx.errors import SuiteError
from imgx.suite import load_suite
from tests.t2i.conftest import t2i_suite


def _problems(path) -> list[str]:
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    return info.value.problems()


def test_a_valid_case_with_sweeps_over_every_t2i_axis(tmp_path):
    suite = t2i_suite(tmp_path, extra=(
        "    reference_data: {name: digits, image_size: 28}\n"
        "    sweep:\n      guidance_scale: [1.0, 3.0]\n      num_inference_steps: [2, 3]\n"
        "      scheduler: [ddim, euler]\n      seed: [0, 1]\n      dtype: [float32]\n      device: [cpu]\n"
        "      image_size: [16, 24]\n"))
    assert len(load_suite(suite).cases) == 1


@pytest.mark.parametrize(("kwargs", "where", "message"), [
    ({"model": "{name: stable-diffusion, weights: train}", "data": "{name: photos, image_size: 16}"},
     "cases[0].model.weights", "needs image captions"),
    ({"prompts": "[]"}, "cases[0].prompts", "empty prompts list"),
    ({"prompts": None, "data": "{name: photos}"}, "cases[0].prompts", "has no captions"),
    ({"extra": "    reference_data: {name: digitz}\n"}, "cases[0].reference_data.name", "did you mean 'digits'"),
    ({"extra": "    reference_data: {name: folder}\n"}, "cases[0].reference_data.path", "needs a path"),
    ({"metrics": "[ssim]"}, "cases[0].metrics[0]", "does not apply to task 'text-to-image'"),
    ({"extra": "    sweep:\n      image_guidance_scale: [1.0]\n"}, "cases[0].sweep.image_guidance_scale",
     "does not apply"),
    ({"inference": "{scheduler: dpm}"}, "cases[0].inference.scheduler", "scheduler"),
    ({"metrics": "[clip_score]", "data": "{name: photos}",
      "extra": "    metric_options: {clip_score: {model: train}}\n"},
     "cases[0].metric_options.clip_score.model", "no captions"),
])
def test_bad_input_is_refused_with_its_field(tmp_path, kwargs, where, message):
    problems = _problems(t2i_suite(tmp_path, **kwargs))
    assert any(where in p and message in p for p in problems), problems
    assert all("suite.yaml:" in p for p in problems)


def test_reference_data_only_for_text_to_image(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text("suite: s\ncases:\n  - id: g\n    task: generate\n    model: {name: dcgan}\n"
                    "    data: {name: digits}\n    samples: 1\n    reference_data: {name: digits}\n")
    problems = _problems(path)
    assert any("cases[0].reference_data" in p and "applies to task 'text-to-image'" in p for p in problems)
    assert any("cases[0].samples" in p and "at least 2" in p for p in problems)


def test_validate_exits_2_without_a_traceback(tmp_path):
    suite = t2i_suite(tmp_path, model="{name: stable-diffusion, weights: train}", data="{name: photos}")
    proc = subprocess.run([sys.executable, "-m", "imgx", "validate", str(suite)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 2
    assert "weights: train needs image captions" in proc.stderr and "Traceback" not in proc.stderr


def test_validate_never_imports_diffusers(tmp_path):
    suite = t2i_suite(tmp_path)
    code = ("import sys; from imgx.suite import load_suite; load_suite(sys.argv[1]); "
            "assert 'diffusers' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code, str(suite)], check=True)


def test_digits_feed_text_to_image_with_captions():
    from imgx.data.digits import load
    from imgx.suite.schema import DataSpec

    data = load(DataSpec(name="digits", image_size=16, train=50, test=20), 0, "text-to-image")
    assert data["train"].shape == (50, 1, 16, 16) and len(data["train_captions"]) == 50
    assert data["test_captions"] == [f"a handwritten digit {int(c)}" for c in data["test_labels"]]
    assert "train_captions" not in load(DataSpec(name="digits", train=5, test=5), 0, "generate")

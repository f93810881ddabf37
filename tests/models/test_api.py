"""The public API: ``imgx.run`` (a suite file or dict) and ``imgx.load_run``, frames of the results.csv columns."""

from __future__ import annotations

import pandas as pd
import pytest

import imgx
from imgx.errors import RunDirError, SuiteError
from imgx.results import RESULT_COLUMNS

SUITE = {
    "suite": "api",
    "seed": 0,
    "cases": [{"id": "col", "task": "colorize", "model": {"name": "encoder-decoder"},
               "data": {"name": "photos", "image_size": 16, "train": 64, "test": 16},
               "train": {"epochs": 1, "batch_size": 32}, "metrics": ["mse", "psnr"],
               "gates": {"psnr": "> 0.5 * gray-copy"}}],
}


def test_public_names():
    assert set(imgx.__all__) >= {"run", "load_run", "RunResult", "__version__"}
    assert callable(imgx.run) and callable(imgx.load_run)


def test_run_a_suite_dict_then_load_it(tmp_path):
    result = imgx.run(SUITE, tmp_path / "run", report=False)
    assert isinstance(result.results, pd.DataFrame)
    assert list(result.results.columns[:len(RESULT_COLUMNS)]) == RESULT_COLUMNS
    assert result.run_dir == tmp_path / "run" and result.exit_code == 0
    csv = pd.read_csv(tmp_path / "run" / "results.csv")
    own = csv[(csv.metric == "mse") & csv.reference.isna()]
    assert result.value("mse") == float(own.value.iloc[0])
    assert result.value("psnr", reference="gray-copy") > 0
    assert result.manifest["suite_path"] == "<suite dict>"
    again = imgx.load_run(tmp_path / "run")
    pd.testing.assert_frame_equal(again.results, result.results)
    assert again.exit_code is None and again.records[0]["gates"][0]["passed"] is True


def test_run_a_suite_file_and_bad_input(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text("suite: api\ncases:\n  - id: x\n    task: colourize\n    model: {name: encoder-decoder}\n"
                    "    data: {name: photos}\n", encoding="utf-8")
    with pytest.raises(SuiteError) as info:
        imgx.run(path, tmp_path / "run")
    assert any("cases[0].task: unknown task 'colourize'; did you mean 'colorize'?" in p
               for p in info.value.problems())
    with pytest.raises(RunDirError):
        imgx.load_run(tmp_path / "nothing-here")

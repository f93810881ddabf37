"""What validate knows before running: paths (relative to the suite file), gates on rows a case never computes,
weights absent offline (a warning; an error for run, and for validate --strict), "did you mean" for keys."""

import json
import subprocess
import sys

import pytest

from imgx.errors import SuiteError
from imgx.runner import plan
from imgx.suite import expand, load_suite
from tests.helpers import write_suite

COLORIZE = """
suite: s
cases:
  - id: c
    task: colorize
    model: {name: encoder-decoder}
    data: {name: photos, image_size: 16, train: 64, test: 16}
    metrics: [mse]
"""


def _problems(tmp_path, text) -> list[str]:
    with pytest.raises(SuiteError) as info:
        load_suite(write_suite(tmp_path, text))
    return info.value.problems()


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "imgx", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.mark.parametrize(("extra", "expected"), [
    ("    gates: {ssim: '>= 0.5'}\n", "cases[0].gates.ssim: gate on 'ssim', which is not in this case's metrics"),
    ("    gates: {fid: '<= 50'}\n", "cases[0].gates.fid: gate on 'fid': task 'colorize' never computes 'fid'"),
    ("    gates: {latency_ms_p50: '<= 50'}\n", "gate on 'latency_ms_p50' needs 'latency' in metrics"),
    ("    gates: {psnr: 10}\n", "cases[0].gates.psnr: gate 10 is not '<op> <number>'; write it as \">= 10\""),
    ("    gates: {mse: 0.1}\n", "write it as \"<= 0.1\""),
    ("    train: {epoch: 2}\n", "cases[0].train.epoch: unknown key; did you mean 'epochs'?"),
    ("    inference: {guidance: 2}\n", "did you mean 'guidance_scale'?"),
])
def test_validate_refuses_what_it_can_know(tmp_path, extra, expected):
    problems = _problems(tmp_path, COLORIZE + extra)
    assert any(expected in p for p in problems), problems
    assert all(p.startswith(f"{tmp_path / 'suite.yaml'}:") for p in problems)


def test_gates_on_computed_rows_pass(tmp_path):
    load_suite(write_suite(tmp_path, COLORIZE.replace("[mse]", "[mse, latency]")
                           + "    gates: {mse: '<= 1', latency_ms_p90: '<= 1e6', train_seconds: '< 1e6'}\n"))


def test_top_level_and_data_keys_get_did_you_mean(tmp_path):
    problems = _problems(tmp_path, "sute: s\n" + COLORIZE.replace("train: 64", "trian: 64"))
    assert any("sute: unknown key; did you mean 'suite'?" in p for p in problems), problems


def test_every_problem_of_a_case_is_reported(tmp_path):
    text = COLORIZE.replace("name: photos, image_size: 16, train: 64, test: 16", "name: folder, path: nowhere")
    problems = _problems(tmp_path, text + "    gates: {fid: '<= 1', ssim: '>= 0.5'}\n")
    assert len(problems) == 3, problems
    assert any(f"cases[0].data.path: {tmp_path / 'nowhere'}: no such file or folder" in p for p in problems)


def test_paths_resolve_against_the_suite_folder_not_the_working_directory(tmp_path):
    folder = tmp_path / "suites"
    (folder / "imgs").mkdir(parents=True)
    suite = write_suite(folder, COLORIZE.replace("name: photos, image_size: 16, train: 64, test: 16",
                                                 "name: folder, path: imgs, image_size: 16"))
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "imgx", "validate", str(suite)], capture_output=True, text=True,
                          cwd=elsewhere, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (case,) = expand(load_suite(suite))
    assert case.spec.data.path == str(folder / "imgs")
    # an absolute path stays as written; a hub id stays a hub id; a folder next to the suite is a folder
    (folder / "org" / "local").mkdir(parents=True)
    for weights, expected in (("org/local", str(folder / "org" / "local")), ("./org/local", str(folder / "org/local")),
                              (str(tmp_path), str(tmp_path)), ("org/elsewhere", "org/elsewhere")):
        text = EDIT.replace("nobody/not-cached-anywhere", weights)
        assert load_suite(write_suite(folder, text, "w.yaml")).cases[0].model.weights == expected


def test_missing_path_names_the_resolved_path(tmp_path):
    (tmp_path / "sub").mkdir()
    suite = write_suite(tmp_path / "sub", COLORIZE.replace("name: photos, image_size: 16, train: 64, test: 16",
                                                           "name: folder, path: ../imgs"))
    proc = _cli("validate", suite)
    assert proc.returncode == 2
    assert f"cases[0].data.path: {tmp_path / 'imgs'}: no such file or folder" in proc.stderr


EDIT = """
suite: e
cases:
  - id: e
    task: edit
    model: {name: instruct-pix2pix, weights: nobody/not-cached-anywhere}
    data: {name: photos, image_size: 32, count: 1}
    prompts: [x]
    inference: {num_inference_steps: 1, warmup: 0, repeats: 1}
"""


def test_weights_absent_offline_warn_in_validate_and_stop_run_before_the_first_case(tmp_path):
    suite = write_suite(tmp_path, EDIT + COLORIZE.split("cases:\n")[1])
    proc = _cli("validate", suite)
    assert proc.returncode == 0, proc.stderr
    assert "imgx: warning:" in proc.stderr and "hf download nobody/not-cached-anywhere" in proc.stderr
    strict = _cli("validate", "--strict", suite)
    assert strict.returncode == 2 and "imgx: error:" in strict.stderr and "cases[0].model.weights" in strict.stderr
    out = tmp_path / "run"
    run = _cli("run", suite, "--out", out, "-q")
    assert run.returncode == 2 and "not in the local Hugging Face cache" in run.stderr
    assert not (out / "cases").exists() or not list((out / "cases").glob("*.json"))  # nothing ran
    _, cases = plan(suite, filters=["c"])  # a run of the other cases does not need those weights
    assert [c.id for c in cases] == ["c"]


def test_weights_in_the_hf_cache_do_not_warn(tmp_path, monkeypatch):
    hub = tmp_path / "hf"
    snapshot = hub / "models--nobody--cached" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text(json.dumps({"_class_name": "x"}))
    (hub / "models--nobody--cached" / "refs").mkdir()
    (hub / "models--nobody--cached" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    suite = write_suite(tmp_path, EDIT.replace("nobody/not-cached-anywhere", "nobody/cached"))
    proc = _cli("validate", suite, env={**__import__("os").environ, "HF_HUB_CACHE": str(hub)})
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


def test_a_structural_error_does_not_hide_the_case_s_other_problems(tmp_path):
    text = COLORIZE.replace("name: photos, image_size: 16, train: 64, test: 16", "name: folder, path: nowhere")
    problems = _problems(tmp_path, text + "    train: {epoch: 2}\n    gates: {fid: '<= 1'}\n")
    assert len(problems) == 3, problems
    assert any("train.epoch: unknown key; did you mean 'epochs'?" in p for p in problems)
    assert any("data.path" in p and "no such file or folder" in p for p in problems)
    assert any("gates.fid" in p for p in problems)


EDIT_TRAINED = """
suite: s
cases:
  - id: e
    task: edit
    model: {name: instruct-pix2pix, weights: train}
    data: {name: photo-edits, image_size: 16, train: 64, test: 1}
    metrics: [input_ssim]
"""


def test_gate_on_train_seconds_of_an_edit_model_trained_here(tmp_path):
    """An edit case with weights: train emits train_seconds (imgx.models.ip2p_train); gating it is valid."""
    load_suite(write_suite(tmp_path, EDIT_TRAINED + "    gates: {train_seconds: '< 1e6'}\n"
                                                     "    regression: {train_seconds: 50%}\n"))
    untrained = EDIT_TRAINED.replace("weights: train", "weights: tiny")
    problems = _problems(tmp_path, untrained + "    gates: {train_seconds: '< 1e6'}\n")
    assert any("gates.train_seconds" in p and "weights: train" in p for p in problems), problems

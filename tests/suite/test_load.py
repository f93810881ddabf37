"""Suite validation: every malformed suite is refused with the file, line and field path; nothing runs."""

import subprocess
import sys
import time

import pytest

from imgx.errors import SuiteError
from imgx.suite import expand, load_suite
from tests.helpers import ROOT, write_suite

BASE_CASE = """
  - id: c
    task: colorize
    model: {name: encoder-decoder}
    data: {name: photos, image_size: 16, train: 64, test: 16}
    metrics: [mse]
"""


def _suite(cases: str, head: str = "suite: s\n") -> str:
    return head + "cases:\n" + cases


BAD = [
    # (suite text, expected fragment of the message)
    (_suite(BASE_CASE.replace("metrics: [mse]", "metrics: [ssmi]")), "cases[0].metrics[0]: unknown metric 'ssmi'; "
                                                                     "did you mean 'ssim'?"),
    (_suite(BASE_CASE.replace("task: colorize", "task: colourize")), "cases[0].task: unknown task 'colourize'"),
    (_suite(BASE_CASE.replace("encoder-decoder", "encoder-decodr")), "did you mean 'encoder-decoder'?"),
    (_suite(BASE_CASE.replace("name: photos", "name: fotos")), "cases[0].data.name: unknown data set 'fotos'"),
    (_suite(BASE_CASE + "    colour: red\n"), "cases[0].colour: unknown key"),
    (_suite(BASE_CASE.replace("train: 64", "train: -1")), "cases[0].data.train: Input should be greater than or equal"),
    (_suite(BASE_CASE.replace("image_size: 16", "image_size: big")), "cases[0].data.image_size"),
    (_suite(BASE_CASE + BASE_CASE), "cases[1].id: duplicate id 'c'"),
    (_suite(BASE_CASE + "    sweep: {epochs: []}\n"), "cases[0].sweep.epochs: a sweep axis needs a non-empty list"),
    (_suite(BASE_CASE + "    sweep: {epochs: [1, 0]}\n"), "cases[0].sweep.epochs[1]: Input should be greater than"),
    (_suite(BASE_CASE + "    sweep: {scheduler: [ddim]}\n"), "sweep axis 'scheduler' does not apply to task"),
    (_suite(BASE_CASE + "    gates: {ssim: 'at least 0.8'}\n"), "cases[0].gates.ssim: gate 'at least 0.8'"),
    (_suite(BASE_CASE + "    device: tpu\n"), "cases[0].device: unknown device 'tpu'"),
    (_suite(BASE_CASE.replace("metrics: [mse]", "metrics: [fid]")), "metric 'fid' does not apply to task 'colorize'"),
    (_suite(BASE_CASE.replace("encoder-decoder", "dcgan")), "model 'dcgan' is for task 'generate'"),
    (_suite("""
  - id: e
    task: edit
    model: {name: instruct-pix2pix, weights: tiny}
    data: {name: photos, image_size: 32, count: 1}
    metrics: [ssim]
"""), "cases[0].prompts: an edit case needs prompts"),
    (_suite("""
  - id: e
    task: edit
    model: {name: instruct-pix2pix, weights: tiny}
    data: {name: photos, image_size: 32, count: 1}
    prompts: [x]
    sweep: {scheduler: [euler, ddmi]}
"""), "cases[0].sweep.scheduler[1]: unknown scheduler 'ddmi'; did you mean 'ddim'?"),
    ("suite: s\n", "cases: required key is missing"),
    ("suite: [s\n", "invalid YAML"),
    ("- just\n- a list\n", "a suite is a YAML mapping"),
    ("suite: s\ncases:\n  - !!python/object/apply:os.system ['echo pwned']\n", "invalid YAML"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD)
def test_bad_suites_are_refused_with_the_field_named(tmp_path, text, fragment):
    path = write_suite(tmp_path, text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = "\n".join(info.value.problems())
    assert fragment in message
    assert all(line.startswith(str(path)) for line in info.value.problems())


def test_line_numbers_point_at_the_field(tmp_path):
    path = write_suite(tmp_path, _suite(BASE_CASE.replace("metrics: [mse]", "metrics: [ssmi]")))
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert info.value.problems()[0].startswith(f"{path}:8: ")


def test_every_problem_is_reported_at_once(tmp_path):
    text = _suite(BASE_CASE + "    colour: red\n" + BASE_CASE.replace("id: c", "id: d").replace(
        "metrics: [mse]", "metrics: [ssmi, fid]"))
    with pytest.raises(SuiteError) as info:
        load_suite(write_suite(tmp_path, text))
    problems = info.value.problems()
    assert len(problems) == 3, problems
    assert any("cases[0].colour: unknown key" in p for p in problems)
    assert any("cases[1].metrics[0]: unknown metric 'ssmi'" in p for p in problems)
    assert any("cases[1].metrics[1]: metric 'fid' does not apply" in p for p in problems)


def test_python_tags_never_execute(tmp_path):
    marker = tmp_path / "pwned"
    text = f"suite: s\ncases:\n  - !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(SuiteError):
        load_suite(write_suite(tmp_path, text))
    assert not marker.exists()


def test_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    text = "\n".join(lines) + "\nsuite: s\ncases: [*a8]\n"
    t0 = time.perf_counter()
    with pytest.raises(SuiteError, match="expands past"):
        load_suite(write_suite(tmp_path, text))
    assert time.perf_counter() - t0 < 2.0


def test_sweep_over_the_cap_is_refused_before_expansion(tmp_path):
    axis = "[" + ", ".join(str(i) for i in range(1, 101)) + "]"
    text = _suite(BASE_CASE + f"    sweep: {{epochs: {axis}, batch_size: {axis}, lr: {axis}}}\n")
    t0 = time.perf_counter()
    with pytest.raises(SuiteError, match="expand to 1000000 cases, past the cap of 512"):
        load_suite(write_suite(tmp_path, text))
    assert time.perf_counter() - t0 < 5.0


def test_defaults_merge_and_errors_point_at_defaults(tmp_path):
    text = "suite: s\ndefaults: {train: {epochs: 3}, data: {image_size: 16}}\ncases:\n" + BASE_CASE.replace(
        "image_size: 16, ", "")
    suite = load_suite(write_suite(tmp_path, text))
    assert suite.cases[0].train.epochs == 3 and suite.cases[0].data.image_size == 16
    bad = text.replace("epochs: 3", "epochs: 0")
    with pytest.raises(SuiteError, match=r"defaults\.train\.epochs"):
        load_suite(write_suite(tmp_path, bad))


def test_shipped_suites_validate():
    suites = sorted((ROOT / "suites").glob("*.yaml"))
    assert suites, "no suites shipped"
    for path in suites:
        assert expand(load_suite(path)), path


@pytest.mark.parametrize("args", [["validate"], ["run"]])
def test_cli_exits_2_without_traceback(tmp_path, args):
    path = write_suite(tmp_path, _suite(BASE_CASE.replace("metrics: [mse]", "metrics: [ssmi]")))
    extra = ["--out", str(tmp_path / "out")] if args == ["run"] else []
    proc = subprocess.run([sys.executable, "-m", "imgx", *args, str(path), *extra], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{path}:8: cases[0].metrics[0]: unknown metric 'ssmi'; did you mean 'ssim'?" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_metric_options_are_checked_before_running(tmp_path):
    text = _suite("""
  - id: g
    task: generate
    model: {name: dcgan}
    data: {name: digits}
    metrics: [fid]
    metric_options: {fid: {features: digits-clasifier, bootstrapp: 10}}
""")
    with pytest.raises(SuiteError) as info:
        load_suite(write_suite(tmp_path, text))
    message = "\n".join(info.value.problems())
    assert "cases[0].metric_options.fid.bootstrapp: metric 'fid' takes no option 'bootstrapp'" in message
    assert "did you mean 'digits-classifier'?" in message

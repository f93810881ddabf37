"""The pytest plugin, tested from outside with pytester: collection, pass, fail, skip, selection, baselines."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from tests.plugin.conftest import suite_text, tiny_case

# In-process runs re-load the entry-point plugin of an already imported package; pytest warns about that.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestAssertRewriteWarning")


def test_collects_cases_with_readable_ids_and_ignores_other_yaml(pytester):
    pytester.makefile(".yaml", tiny=suite_text(tiny_case("colorizer", extra="sweep: {lr: [0.001, 0.002]}")))
    pytester.makefile(".yaml", config="key: value\nitems: [1, 2]\n")
    sub = pytester.mkdir("sub")
    (sub / "nested.yaml").write_text(suite_text(tiny_case("nested"), name="nested"), encoding="utf-8")

    result = pytester.runpytest("--collect-only", "-q", "tiny.yaml")
    result.stdout.fnmatch_lines(["tiny.yaml::colorizer[[]lr=0.001[]]", "tiny.yaml::colorizer[[]lr=0.002[]]",
                                 "2 tests collected*"])
    # A directory run collects no suite unless the ini option names it; plain YAML is never collected.
    result = pytester.runpytest("--collect-only", "-q", ".")
    assert "nested" not in result.stdout.str() and "tiny.yaml" not in result.stdout.str()
    result = pytester.runpytest("--collect-only", "-q", "config.yaml")
    assert "config.yaml::" not in result.stdout.str()
    pytester.makeini("[pytest]\nimgx_suites = sub/*.yaml\n")
    result = pytester.runpytest("--collect-only", "-q", ".")
    result.stdout.fnmatch_lines(["sub/nested.yaml::nested"])
    assert "config.yaml::" not in result.stdout.str()


def test_invalid_suite_is_a_collection_error_naming_the_field(pytester):
    pytester.makefile(".yaml", bad=suite_text(tiny_case("c", extra="sweep: {lr: []}").replace("ssim]", "ssmi]")))
    result = pytester.runpytest("bad.yaml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*invalid imgx suite*", "*cases[[]0[]].metrics[[]2[]]*did you mean 'ssim'*"])


def test_pass_fail_run_directory_junit_and_machine_info(pytester):
    pytester.makefile(".yaml", tiny=suite_text(tiny_case("easy", gates='{ssim: ">= 0.0", mse: "<= 1.0"}'),
                                               tiny_case("strict", gates='{ssim: ">= 0.999"}')))
    pytester.makeconftest("""
        def pytest_imgx_machine_info(config, machine_info):
            machine_info["runner_label"] = "ci-42"
    """)
    result = pytester.runpytest("tiny.yaml", "--imgx-out", "out", "--junitxml", "junit.xml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*imgx case strict*", "gate failed: ssim = *, required >= 0.999",
                                 "FAILED tiny.yaml::strict - gate failed: ssim = *, required >= 0.999"])
    result.stdout.fnmatch_lines(["*imgx*", "tiny: run directory out (2 ran, 0 reused)"])
    out = pytester.path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runner"] == "pytest" and manifest["ended"] and manifest["counts"] == {"ok": 2}
    assert manifest["environment"]["machine"] == {"runner_label": "ci-42"}
    assert len(list((out / "cases").glob("*.json"))) == 2
    csv = (out / "results.csv").read_text()
    assert "easy,tiny" in csv and "strict,tiny" in csv
    assert (out / "report.html").exists()
    props = {(tc.get("name"), p.get("name")): p.get("value")
             for tc in ET.parse(pytester.path / "junit.xml").iter("testcase") for p in tc.iter("property")}
    ssim = float(props[("easy", "ssim")])
    assert 0.0 < ssim < 1.0 and props[("easy", "imgx_status")] == "ok"
    assert ("strict", "ssim@gray-copy") in props
    # The same --imgx-out resumes: nothing runs again.
    again = pytester.runpytest("tiny.yaml", "--imgx-out", "out", "--imgx-no-report")
    again.assert_outcomes(passed=1, failed=1)
    again.stdout.fnmatch_lines(["tiny: run directory out (0 ran, 2 reused)"])


def test_k_selects_cases_and_marks_apply(pytester):
    pytester.makefile(".yaml", tiny=suite_text(tiny_case("easy"), tiny_case("big", extra="marks: [slow]"),
                                               tiny_case("card", extra="device: cuda")))
    result = pytester.runpytest("--collect-only", "-q", "tiny.yaml", "-m", "not slow and not gpu")
    result.stdout.fnmatch_lines(["tiny.yaml::easy", "1/3 tests collected (2 deselected)*"])
    result = pytester.runpytest("--collect-only", "-q", "tiny.yaml", "-m", "gpu")
    result.stdout.fnmatch_lines(["tiny.yaml::card", "1/3 tests collected*"])
    result = pytester.runpytest("--collect-only", "-q", "tiny.yaml", "--imgx-device", "cpu")
    result.stdout.fnmatch_lines(["2 tests collected*"])
    result = pytester.runpytest("tiny.yaml", "-k", "easy", "--imgx-out", "out", "--imgx-no-report")
    result.assert_outcomes(passed=1, deselected=2)
    manifest = json.loads((pytester.path / "out" / "manifest.json").read_text())
    assert manifest["planned"] == 1 and manifest["ran"] == 1


def test_cuda_case_skips_with_the_reason(pytester):
    import torch

    from imgx.results import load_run

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the case would run")
    pytester.makefile(".yaml", tiny=suite_text(tiny_case("card", extra="device: cuda")))
    result = pytester.runpytest("tiny.yaml", "-rs", "--imgx-out", "out", "--imgx-no-report")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*card: CUDA is not available*"])
    record = load_run(pytester.path / "out")[1][0]
    assert record["status"] == "skipped"


def test_baseline_update_check_and_regression(pytester):
    pytester.makefile(".yaml", tiny=suite_text(tiny_case("colorizer")))
    first = pytester.runpytest("tiny.yaml", "--imgx-out", "run1", "--imgx-no-report",
                               "--imgx-baseline", "base.json", "--imgx-update-baseline")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["tiny: baseline written to base.json"])
    baseline = json.loads((pytester.path / "base.json").read_text())
    assert baseline["provenance"]["suite"] == "tiny"
    # A fresh run of the same code passes against it (CPU is deterministic).
    second = pytester.runpytest("tiny.yaml", "--imgx-out", "run2", "--imgx-no-report", "--imgx-baseline", "base.json")
    second.assert_outcomes(passed=1)
    # A baseline that was much better makes the same run a regression, naming metric, values and bound.
    for row in baseline["cases"]["colorizer"]["metrics"]:
        if row["metric"] == "ssim" and not row["reference"]:
            old = row["value"]
            row["value"], row["ci_low"], row["ci_high"] = old + 0.3, row["ci_low"] + 0.3, row["ci_high"] + 0.3
    (pytester.path / "better.json").write_text(json.dumps(baseline))
    third = pytester.runpytest("tiny.yaml", "--imgx-out", "run3", "--imgx-baseline", "better.json")
    third.assert_outcomes(failed=1)
    third.stdout.fnmatch_lines(["regression: colorizer: ssim * -> *; higher is better, tolerance 2% (default)"
                                " allows >= *"])
    third.stdout.fnmatch_lines(["FAILED tiny.yaml::colorizer - ssim 0.* -> 0.* (-*%, band +-*%)"])
    # The verdict reaches every artefact: comparison files beside the run, the report's badge and summary.
    run3 = pytester.path / "run3"
    summary = (run3 / "summary.md").read_text()
    assert summary.startswith("## imgx compare: ❌ 1 regression") and "&gt;" not in summary and "->" in summary
    assert (run3 / "comparison.html").exists()
    assert json.loads((run3 / "comparison.json").read_text())["counts"]["regression"] == 1
    report = (run3 / "report.html").read_text()
    assert '<span class="verdict fail">FAIL</span>' in report and "1 regression vs baseline" in report
    assert "Baseline comparison" in report and "tolerance 2% (default)" in report
    third.stdout.fnmatch_lines(["tiny: baseline better.json: 1 regression(s); run3/comparison.html, run3/summary.md"])
    # The end-of-session table shows the case with its baseline verdict.
    third.stdout.fnmatch_lines(["*imgx*", "case * status * time * metric * value * gray-copy * baseline",
                                "colorizer * ok * mse * regression"])


def test_missing_baseline_file_is_a_usage_error(pytester):
    pytester.makefile(".yaml", tiny=suite_text(tiny_case("colorizer")))
    result = pytester.runpytest("tiny.yaml", "--imgx-baseline", "nope.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--imgx-baseline nope.json: no such file*"])


@pytest.fixture
def scripted_latency():
    """Swap the colorize task for one whose ``latency_ms_p50`` follows a script, and count its calls.

    The plugin's re-measure logic is what is under test here, so the timings must be controlled.
    """
    from imgx.results import CaseResult, MetricRow
    from imgx.tasks import TASKS

    script: list = []
    calls: list = []

    def task(case, ctx):
        import warnings

        from imgx.errors import DataError

        value = script[min(len(calls), len(script) - 1)]
        calls.append(value)
        if value == "warn":
            warnings.warn("a library grumbles", RuntimeWarning, stacklevel=1)
            value = 1.0
        if value == "bad-input":
            raise DataError("data folder /nowhere does not exist")
        return CaseResult(rows=[MetricRow("ssim", 0.5, n=32), MetricRow("latency_ms_p50", value, "ms", n=20)])

    entry = TASKS.entry("colorize")
    TASKS.unregister("colorize")
    TASKS.register("colorize", task, help="scripted")
    try:
        yield script, calls
    finally:
        TASKS.unregister("colorize")
        TASKS.register("colorize", entry.target, help=entry.help, **entry.meta)


def test_latency_regression_is_re_measured_once(pytester, scripted_latency):
    script, calls = scripted_latency
    pytester.makefile(".yaml", tiny=suite_text(tiny_case("colorizer")))
    opts = ["tiny.yaml", "--imgx-no-report"]
    script[:] = [10.0]
    pytester.runpytest(*opts, "--imgx-out", "b", "--imgx-baseline", "base.json", "--imgx-update-baseline")
    # 30% slower, twice: a regression, declared after one re-measurement.
    calls.clear()
    script[:] = [13.0, 13.0]
    slow = pytester.runpytest(*opts, "--imgx-out", "c1", "--imgx-baseline", "base.json")
    slow.assert_outcomes(failed=1)
    slow.stdout.fnmatch_lines(["regression: colorizer: latency_ms_p50 10 -> 13 (+30.00%)*"
                               "(re-measured once; first measurement: latency_ms_p50 +30.0%)"])
    # The short summary line carries the reason, the metric named once; the final line counts the test once.
    slow.stdout.fnmatch_lines(["FAILED tiny.yaml::colorizer - latency_ms_p50 10 -> 13 ms (+30%, band +-10%)"])
    slow.stdout.fnmatch_lines(["tiny: run directory c1 (1 ran, 0 reused)"])
    assert len(calls) == 2
    # Slow once, then back to normal: a blip, not a regression.
    calls.clear()
    script[:] = [13.0, 10.2]
    blip = pytester.runpytest(*opts, "--imgx-out", "c2", "--imgx-baseline", "base.json")
    blip.assert_outcomes(passed=1)
    assert len(calls) == 2
    # Slow twice, but the two measurements disagree by more than the tolerance: the machine was noisy.
    calls.clear()
    script[:] = [13.0, 19.0]
    noisy = pytester.runpytest(*opts, "--imgx-out", "c3", "--imgx-baseline", "base.json")
    noisy.assert_outcomes(passed=1)
    assert len(calls) == 2
    summary = (pytester.path / "c3" / "summary.md").read_text()
    assert "1 inconclusive (noisy machine)" in summary and "re-measure gave 19 ms after 13 ms" in summary
    noisy.stdout.fnmatch_lines(["tiny: baseline base.json: no regression, 1 inconclusive (noisy machine); *"])


def test_warnings_in_a_case_are_reported_not_raised_and_bad_input_fails_cleanly(pytester, scripted_latency):
    script, calls = scripted_latency
    pytester.makefile(".yaml", tiny=suite_text(tiny_case("colorizer")))
    script[:] = ["warn"]
    result = pytester.runpytest("tiny.yaml", "-W", "error::RuntimeWarning", "--imgx-out", "w", "--imgx-no-report")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*RuntimeWarning: a library grumbles*"])
    script[:] = ["bad-input"]
    result = pytester.runpytest("tiny.yaml", "--imgx-out", "b", "--imgx-no-report")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["bad input (exit 2 under 'imgx run'): data folder /nowhere does not exist"])
    assert "Traceback" not in result.stdout.str()


def test_several_suites_get_one_run_directory_each(pytester, scripted_latency):
    script, calls = scripted_latency
    script[:] = [1.0]
    pytester.makefile(".yaml", first=suite_text(tiny_case("colorizer"), name="alpha"),
                      second=suite_text(tiny_case("colorizer"), name="beta"))
    result = pytester.runpytest("first.yaml", "second.yaml", "--imgx-out", "out", "--imgx-no-report")
    result.assert_outcomes(passed=2)
    for name in ("alpha", "beta"):
        manifest = json.loads((pytester.path / "out" / name / "manifest.json").read_text())
        assert manifest["suite"] == name and manifest["ran"] == 1
    result = pytester.runpytest("first.yaml", "second.yaml", "--imgx-baseline", "b.json", "--imgx-update-baseline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--imgx-update-baseline writes one file: run one suite at a time*"])


def test_an_ordinary_session_imports_nothing_heavy(pytester):
    """The plugin loads in every pytest run: without a suite it must not import torch or imgx's runner."""
    pytester.makepyfile("""
        import sys

        def test_light():
            heavy = [m for m in ("torch", "imgx.runner", "imgx.suite", "pydantic") if m in sys.modules]
            assert not heavy, heavy
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)

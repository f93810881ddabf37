"""Regression checks: what must be caught is caught, and noise is not an alarm."""

from __future__ import annotations

import copy
import json

import pytest

from imgx.cli import main
from imgx.compare import (
    compare_measurements,
    compare_runs,
    load_snapshot,
    median_half_width,
    parse_tolerance,
)
from tests.compare.conftest import ENVIRONMENT, ssim_case


def _row(comp, metric="ssim", reference=""):
    matches = [r for r in comp.rows if r.metric == metric and r.reference == reference]
    assert len(matches) == 1, comp.rows
    return matches[0]


def test_injected_five_percent_ssim_drop_is_caught(run_factory, capsys):
    base = run_factory("base", [ssim_case(0.85, half_width=0.004)])
    cand = run_factory("cand", [ssim_case(0.85 * 0.95, half_width=0.004)])
    comp = compare_runs(base, cand)
    row = _row(comp)
    assert row.verdict == "regression"
    assert row.change_pct == pytest.approx(-5.0)
    assert row.tolerance == "2% (default)" and row.direction == "higher"
    assert "0.85" in row.detail and "0.8075" in row.detail  # names the values
    assert comp.exit_code == 1
    # The command line says the same, with the exit code CI acts on.
    assert main(["compare", str(base), str(cand), "--out", str(cand / "cmp")]) == 1
    out = capsys.readouterr().out
    assert "regression" in out.lower() and "ssim" in out
    assert (cand / "cmp" / "summary.md").exists()
    assert json.loads((cand / "cmp" / "comparison.json").read_text())["exit_code"] == 1


def test_improvement_and_small_change_are_not_regressions(run_factory):
    base = run_factory("base", [ssim_case(0.85, half_width=0.004)])
    better = run_factory("better", [ssim_case(0.90, half_width=0.004)])
    slight = run_factory("slight", [ssim_case(0.85 * 0.99, half_width=0.004)])
    assert _row(compare_runs(base, better)).verdict == "improvement"
    assert _row(compare_runs(base, slight)).verdict == "unchanged"
    assert compare_runs(base, better).exit_code == 0


def test_lower_is_better_direction(run_factory):
    base = run_factory("base", [{"id": "c", "rows": [{"metric": "mse", "value": 0.010}]}])
    worse = run_factory("worse", [{"id": "c", "rows": [{"metric": "mse", "value": 0.011}]}])
    better = run_factory("better", [{"id": "c", "rows": [{"metric": "mse", "value": 0.009}]}])
    assert _row(compare_runs(base, worse), "mse").verdict == "regression"
    assert _row(compare_runs(base, better), "mse").verdict == "improvement"


def test_change_inside_multi_seed_noise_does_not_fail(run_factory):
    seeds = [0.80, 0.85, 0.90]
    base = run_factory("base", [ssim_case(v, params={"seed": i}) for i, v in enumerate(seeds)])
    # -3.5% on average: past the 2% tolerance, but well inside the spread across seeds.
    noisy = run_factory("noisy", [ssim_case(v - 0.03, params={"seed": i}) for i, v in enumerate(seeds)])
    comp = compare_runs(base, noisy)
    row = _row(comp)
    assert row.case_id == "colorizer[seed=*]"
    assert row.change_pct < -2.0
    assert row.verdict == "unchanged" and "noise" in row.detail
    assert row.baseline_spread["n"] == 3 and row.noise > abs(row.change)
    assert comp.exit_code == 0
    # The same spread does not hide a drop far outside it.
    broken = run_factory("broken", [ssim_case(v - 0.20, params={"seed": i}) for i, v in enumerate(seeds)])
    assert _row(compare_runs(base, broken)).verdict == "regression"


def test_change_inside_ci_does_not_fail_but_outside_does(run_factory):
    base = run_factory("base", [ssim_case(0.50, half_width=0.05)])
    inside = run_factory("inside", [ssim_case(0.48, half_width=0.05)])  # -4%: > tolerance, < noise
    outside = run_factory("outside", [ssim_case(0.35, half_width=0.05)])
    assert _row(compare_runs(base, inside)).verdict == "unchanged"
    assert _row(compare_runs(base, outside)).verdict == "regression"


def test_five_identical_reruns_raise_no_alarm(tmp_path):
    """Real runs of a tiny suite through the runner: deterministic quality, timing rows reported only."""
    from imgx.runner import run_suite
    from tests.helpers import write_suite

    suite = write_suite(tmp_path, """
        suite: reruns
        seed: 0
        cases:
          - id: colorizer
            task: colorize
            model: {name: encoder-decoder}
            data: {name: photos, image_size: 16, train: 64, test: 32}
            train: {epochs: 1, batch_size: 32}
            metrics: [mse, psnr, ssim]
        """)
    runs = [run_suite(suite, tmp_path / f"run{i}", quiet=True, report=False, argv=["test"]).out for i in range(5)]
    for rerun in runs[1:]:
        comp = compare_runs(runs[0], rerun)
        assert comp.exit_code == 0, comp.regressions
        verdicts = {(r.metric, r.reference): r.verdict for r in comp.rows}
        assert verdicts[("ssim", "")] == "unchanged" and verdicts[("mse", "gray-copy")] == "unchanged"
        assert verdicts[("train_seconds", "")] == "not-compared"  # reported, not gated: load moves it
        assert not comp.environment_diffs


def test_timing_threshold_is_at_least_the_baseline_spread():
    from imgx.compare import Measurement

    noisy = Measurement(10.0, "ms", n=20, derived_half_width=median_half_width(10.0, 30.0, 20))
    assert noisy.derived_half_width == pytest.approx(1.9167 * 20 / 20**0.5)
    row = compare_measurements("c", "latency_ms_p50", "", noisy, Measurement(11.5, "ms", n=20),
                               tolerance="10%")
    assert row.threshold == pytest.approx(noisy.derived_half_width)  # wider than 10% of 10 ms
    assert row.verdict == "unchanged"
    quiet = Measurement(10.0, "ms", n=20)
    assert compare_measurements("c", "latency_ms_p50", "", quiet, Measurement(11.5, "ms", n=20),
                                tolerance="10%").verdict == "regression"


def test_different_machine_warns_compares_quality_not_latency(run_factory):
    timing = [{"metric": "latency_ms_p50", "value": 10.0, "unit": "ms", "n": 20}]
    base = run_factory("base", [ssim_case(0.85, extra=timing)])
    other_env = copy.deepcopy(ENVIRONMENT)
    other_env["versions"]["torch"] = "2.15.0"
    other_env["cpu"] = "Other CPU"
    slow = [{"metric": "latency_ms_p50", "value": 20.0, "unit": "ms", "n": 20}]
    cand = run_factory("cand", [ssim_case(0.70, extra=slow)], environment=other_env)
    comp = compare_runs(base, cand)
    assert "versions.torch: 2.14.1 -> 2.15.0" in comp.environment_diffs
    assert "cpu: Test CPU -> Other CPU" in comp.environment_diffs
    assert any("different machines" in w and "versions.torch" in w for w in comp.warnings)
    assert _row(comp).verdict == "regression"  # quality still compared
    assert _row(comp, "latency_ms_p50").verdict == "not-compared"
    assert _row(compare_runs(base, cand, latency=True), "latency_ms_p50").verdict == "regression"


def test_baseline_file_round_trip(run_factory, tmp_path, capsys):
    seeds = [0.80, 0.85, 0.90]
    base = run_factory("base", [ssim_case(v, params={"seed": i}, half_width=0.01) for i, v in enumerate(seeds)]
                       + [ssim_case(0.5, case_id="other")])
    baseline = tmp_path / "baselines" / "synthetic.json"
    assert main(["baseline", str(base), "--out", str(baseline)]) == 0
    data = json.loads(baseline.read_text())
    assert data["provenance"]["suite_sha256"] == "ab" * 32
    assert data["provenance"]["imgx_version"] == "0.1.0"
    assert data["environment"]["versions"]["torch"] == "2.14.1"
    assert data["cases"]["colorizer[seed=1]"]["metrics"][0]["ci_high"] == pytest.approx(0.86)
    group = data["seed_groups"]["colorizer[seed=*]"]["metrics"][0]
    assert group["seeds"] == 3 and group["min"] == 0.80 and group["max"] == 0.90
    # A baseline file and its run directory give the same verdicts.
    cand = run_factory("cand", [ssim_case(v - 0.2, params={"seed": i}) for i, v in enumerate(seeds)]
                       + [ssim_case(0.5, case_id="other")])
    from_file = compare_runs(baseline, cand)
    from_dir = compare_runs(base, cand)
    assert [(r.case_id, r.metric, r.verdict) for r in from_file.rows] == \
           [(r.case_id, r.metric, r.verdict) for r in from_dir.rows]
    assert from_file.exit_code == 1
    capsys.readouterr()
    assert main(["compare", str(baseline), str(cand)]) == 1
    assert (cand / "compare" / "summary.md").exists()


def test_suite_tolerances_apply(run_factory):
    """The suite's ``regression:`` entry, as recorded with the candidate's case, judges it."""
    tol = {"ssim": "10%", "mse": "0.5"}
    base = run_factory("base", [ssim_case(0.85, extra=[{"metric": "mse", "value": 1.0}])])
    cand = run_factory("cand", [{**ssim_case(0.85 * 0.95, extra=[{"metric": "mse", "value": 1.4}]), "regression": tol}])
    comp = compare_runs(base, cand)
    assert _row(comp).tolerance == "10%" and _row(comp).verdict == "unchanged"
    assert _row(comp, "mse").tolerance == "0.5" and _row(comp, "mse").verdict == "unchanged"


def test_failed_missing_new_and_reference_rows(run_factory):
    base = run_factory("base", [
        ssim_case(0.85, extra=[{"metric": "ssim", "value": 0.80, "reference": "gray-copy"}]),
        ssim_case(0.60, case_id="broken"), ssim_case(0.60, case_id="dropped")])
    cand = run_factory("cand", [
        ssim_case(0.85, extra=[{"metric": "ssim", "value": 0.60, "reference": "gray-copy"}]),
        {"id": "broken", "status": "failed", "detail": "RuntimeError: boom"}, ssim_case(0.7, case_id="added")])
    comp = compare_runs(base, cand)
    verdicts = {(r.case_id, r.metric, r.reference): r for r in comp.rows}
    assert verdicts[("broken", "ssim", "")].verdict == "regression"
    assert "boom" in verdicts[("broken", "ssim", "")].detail
    assert verdicts[("dropped", "ssim", "")].verdict == "missing"
    assert verdicts[("added", "ssim", "")].verdict == "new"
    moved = verdicts[("colorizer", "ssim", "gray-copy")]
    assert moved.verdict == "not-compared" and "reference moved" in moved.detail
    assert any("gray-copy" in w for w in comp.warnings)
    assert comp.exit_code == 1 and len(comp.regressions) == 1


def test_bad_inputs_exit_2(tmp_path, run_factory, capsys):
    base = run_factory("base", [ssim_case(0.85)])
    assert main(["compare", str(tmp_path / "nope"), str(base)]) == 2
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"hello": 1}')
    assert main(["compare", str(bogus), str(base)]) == 2
    assert "not an imgx baseline" in capsys.readouterr().err
    with pytest.raises(ValueError, match="percentage"):
        parse_tolerance("2 percent")
    assert parse_tolerance("2%") == (2.0, True) and parse_tolerance(0.5) == (0.5, False)
    assert load_snapshot(base).cases["colorizer"].metrics[("ssim", "")].value == 0.85


def test_one_seed_point_is_judged_with_its_groups_spread(run_factory):
    """The pytest plugin compares case by case; a seed point carries the spread of its seed group."""
    from imgx.compare import Snapshot, compare_snapshots, with_group_spread

    seeds = [0.80, 0.85, 0.90]
    full = with_group_spread(load_snapshot(run_factory("base", [ssim_case(v, params={"seed": i})
                                                                for i, v in enumerate(seeds)])))
    base = Snapshot(full.label, full.info, full.environment, {"colorizer[seed=1]": full.cases["colorizer[seed=1]"]})
    near = load_snapshot(run_factory("near", [ssim_case(0.82, params={"seed": 1})]))
    far = load_snapshot(run_factory("far", [ssim_case(0.60, params={"seed": 1})]))
    row = _row(compare_snapshots(base, near))
    assert row.case_id == "colorizer[seed=1]" and row.change_pct < -2.0
    assert row.verdict == "unchanged" and row.noise > abs(row.change)
    assert _row(compare_snapshots(base, far)).verdict == "regression"


def test_reported_timing_rows_are_gated_only_when_the_suite_names_them(run_factory):
    from imgx.compare import compare_snapshots

    def case(train_s, denoise_ms):
        return [{"id": "edit", "rows": [{"metric": "train_seconds", "value": train_s, "unit": "s"},
                                        {"metric": "latency_ms_denoise", "value": denoise_ms, "unit": "ms"}]}]

    base = load_snapshot(run_factory("base", case(10.0, 100.0)))
    cand = load_snapshot(run_factory("cand", case(20.0, 200.0)))
    default = compare_snapshots(base, cand)
    assert {r.verdict for r in default.rows} == {"not-compared"} and default.exit_code == 0
    named = compare_snapshots(base, cand, tolerances={"edit": {"train_seconds": "20%", "latency": "50%"}})
    assert _row(named, "train_seconds").verdict == "regression"
    assert _row(named, "latency_ms_denoise").tolerance == "50%"
    assert _row(named, "latency_ms_denoise").verdict == "regression"


def test_candidate_run_with_k_reports_the_cases_it_did_not_run_once(run_factory, capsys):
    base = run_factory("base", [ssim_case(0.85, case_id=f"case{i}") for i in range(6)])
    cand = run_factory("cand", [ssim_case(0.85, case_id="case0")])
    comp = compare_runs(base, cand)
    assert comp.not_run == [f"case{i}" for i in range(1, 6)] and comp.exit_code == 0
    lines = [w for w in comp.warnings if "not run" in w]
    assert lines == ["5 baseline cases not run in the candidate (case1, case2, case3 and 2 more): not compared, not "
                     "a failure (a run selected with -k or --device)"]
    assert main(["compare", str(base), str(cand), "--out", str(cand / "cmp")]) == 0
    out = capsys.readouterr().out
    assert out.count("not run in the candidate") == 1
    assert "case4" not in out  # no row per missing case


def test_summary_markdown_has_no_html_entities(run_factory, capsys):
    base = run_factory("base", [ssim_case(0.85, half_width=0.004)])
    cand = run_factory("cand", [ssim_case(0.70, half_width=0.004)])
    assert main(["compare", str(base), str(cand), "--out", str(cand / "cmp")]) == 1
    printed = capsys.readouterr().out
    summary = (cand / "cmp" / "summary.md").read_text(encoding="utf-8")
    assert printed.rstrip("\n") == summary.rstrip("\n")
    assert "0.85 -> 0.7" in summary and "allows >= 0.833" in summary
    assert "&gt;" not in summary and "&lt;" not in summary and "&amp;" not in summary
    from imgx.report.compare_report import _md

    assert _md("a <script> | b <= 3") == "a \\<script> \\| b <= 3"  # a tag-like '<' is escaped, not entity-coded

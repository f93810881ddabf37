"""Verdicts a CI can trust (issue 24): a failed case is never "unchanged", tolerances come from records, and a
metric's references are judged by what they mean."""

from __future__ import annotations

import json

import pytest

from imgx.cli import main
from imgx.compare import compare_runs, environment_diffs
from tests.compare.conftest import ENVIRONMENT, ssim_case


def _row(comp, metric="ssim", reference="", case_id=None):
    matches = [r for r in comp.rows if r.metric == metric and r.reference == reference
               and (case_id is None or r.case_id == case_id)]
    assert len(matches) == 1, comp.rows
    return matches[0]


# ------------------------------------------------------------------------------------- 1. failed candidate cases
def test_failed_candidate_case_with_valid_rows_is_a_regression(run_factory, capsys):
    """A case failed on max_invalid keeps rows from its valid outputs; they must not make it "unchanged"."""
    base = run_factory("base", [ssim_case(0.85)])
    failed = {**ssim_case(0.85), "status": "failed", "detail": "3 of 4 outputs invalid (max_invalid 0)"}
    cand = run_factory("cand", [failed])
    comp = compare_runs(base, cand)
    assert comp.exit_code == 1
    case_rows = [r for r in comp.regressions if r.case_id == "colorizer"]
    assert case_rows and any("3 of 4 outputs invalid" in r.detail for r in case_rows)
    assert main(["compare", str(base), str(cand), "--out", str(cand / "cmp")]) == 1
    summary = (cand / "cmp" / "summary.md").read_text(encoding="utf-8")
    assert "colorizer" in summary and "failed" in summary


def test_skipped_candidate_case_is_not_a_regression(run_factory):
    """A case skipped here (CUDA absent) was not run: like ``-k``, not a failure."""
    base = run_factory("base", [ssim_case(0.85)])
    cand = run_factory("cand", [{"id": "colorizer", "status": "skipped", "detail": "CUDA is not available"}])
    assert compare_runs(base, cand).exit_code == 0


def test_seed_group_with_fewer_points_than_its_baseline_is_a_regression(run_factory):
    seeds = [0.80, 0.85, 0.90]
    base = run_factory("base", [ssim_case(v, params={"seed": i}) for i, v in enumerate(seeds)])
    # Seed point 2 has no record at all (crashed before writing, or not run): the mean of the others is no verdict.
    cand = run_factory("cand", [ssim_case(v, params={"seed": i}) for i, v in enumerate(seeds[:2])])
    comp = compare_runs(base, cand)
    assert comp.exit_code == 1
    reg = [r for r in comp.regressions if r.case_id == "colorizer[seed=*]"]
    assert reg and any("2 of 3" in r.detail and "seed=2" in r.detail for r in reg), comp.rows


def test_seed_group_with_a_failed_point_is_a_regression(run_factory):
    seeds = [0.80, 0.85, 0.90]
    base = run_factory("base", [ssim_case(v, params={"seed": i}) for i, v in enumerate(seeds)])
    cand = run_factory("cand", [ssim_case(v, params={"seed": i}) for i, v in enumerate(seeds[:2])]
                       + [{"id": "colorizer", "params": {"seed": 2}, "status": "failed", "detail": "OOM"}])
    comp = compare_runs(base, cand)
    assert comp.exit_code == 1
    assert any("OOM" in r.detail for r in comp.regressions)


# -------------------------------------------------------------------------------- 2. tolerances travel in records
def test_recorded_tolerances_judge_from_any_working_directory(run_factory, tmp_path, monkeypatch):
    """The record carries its suite's regression: entry; no suite path is read (this one does not even exist)."""
    tol = {"ssim": "10%"}
    base = run_factory("base", [{**ssim_case(0.85), "regression": tol}], suite_path="suites/gone.yaml")
    cand = run_factory("cand", [{**ssim_case(0.85 * 0.95), "regression": tol}], suite_path="suites/gone.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    comp = compare_runs(base, cand)
    assert _row(comp).tolerance == "10%" and _row(comp).verdict == "unchanged"
    # The baseline file keeps them too; a candidate that recorded none is judged by the baseline's.
    assert main(["baseline", str(base), "--out", str(tmp_path / "b.json")]) == 0
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["cases"]["colorizer"]["regression"] == tol


def test_records_without_tolerances_fall_back_with_a_warning(run_factory, tmp_path, capsys):
    """Old run directories have no ``regression`` field in their records: defaults, said once."""
    base = run_factory("base", [ssim_case(0.85)])
    cand = run_factory("cand", [ssim_case(0.85 * 0.95)])
    for folder in (base, cand):
        for path in (folder / "cases").glob("*.json"):
            rec = json.loads(path.read_text())
            rec.pop("regression", None)
            path.write_text(json.dumps(rec))
    comp = compare_runs(base, cand)
    assert _row(comp).tolerance == "2% (default)" and _row(comp).verdict == "regression"
    assert sum("no recorded tolerances" in w for w in comp.warnings) == 1
    capsys.readouterr()
    assert main(["baseline", str(base), "--out", str(tmp_path / "old.json")]) == 0
    assert "imgx: warning: 1 case(s)" in capsys.readouterr().err
    # A candidate that recorded its tolerances is judged by them against the old baseline, without the warning.
    new = run_factory("new", [{**ssim_case(0.85 * 0.95), "regression": {"ssim": "10%"}}])
    comp = compare_runs(tmp_path / "old.json", new)
    assert _row(comp).tolerance == "10%" and not any("no recorded tolerances" in w for w in comp.warnings)


def test_a_real_run_records_its_tolerances(tmp_path, monkeypatch, capsys):
    """``imgx run`` on a suite named by a relative path, then ``imgx compare`` from another folder."""
    from tests.helpers import TINY_COLORIZE, write_suite

    project = tmp_path / "project"
    project.mkdir()
    write_suite(project, TINY_COLORIZE.replace("train: 512, test: 64", "train: 64, test: 16")
                .replace("epochs: 2", "epochs: 1") + "    regression: {ssim: 37%, latency: 80%}\n")
    monkeypatch.chdir(project)
    assert main(["run", "suite.yaml", "--out", "run", "--quiet", "--no-report"]) == 0
    record = json.loads(next((project / "run" / "cases").glob("*.json")).read_text())
    assert record["regression"] == {"ssim": "37%", "latency": "80%"}
    monkeypatch.chdir(tmp_path)
    comp = compare_runs(project / "run", project / "run")
    assert _row(comp).tolerance == "37%"
    # Tolerances are not part of the case key: a resume after editing them reuses the case and records the new ones.
    suite = project / "suite.yaml"
    suite.write_text(suite.read_text().replace("ssim: 37%", "ssim: 5%"))
    monkeypatch.chdir(project)
    assert main(["run", "suite.yaml", "--out", "run", "--quiet", "--no-report"]) == 0
    assert capsys.readouterr().out.count("reused 1") == 1
    monkeypatch.chdir(tmp_path)
    assert _row(compare_runs(project / "run", project / "run")).tolerance == "5%"


# ---------------------------------------------------------------------------------- 3. references by meaning
def test_reference_roles_come_from_the_metric_metadata():
    from imgx.metrics import metric_info, reference_role, worse_than_floors

    assert reference_role("input_ssim", "identity") == "bound"
    assert reference_role("target_ssim", "identity") == "floor"
    assert reference_role("psnr", "gray-copy") == "floor"
    assert reference_role("fid", "real-split") == "ceiling"
    assert reference_role("target_ssim[grayscale]", "identity") == "floor"
    assert reference_role("input_ssim[grayscale]", "identity") == "bound"
    assert worse_than_floors("input_ssim", 0.4, {"identity": 1.0, "oracle": 0.6}) == []
    assert worse_than_floors("target_ssim", 0.4, {"identity": 0.5, "oracle": 1.0}) == ["identity"]
    assert worse_than_floors("fid", 300.0, {"untrained": 200.0, "real-split": 10.0}) == ["untrained"]
    assert metric_info("input_ssim").better == "neither" and metric_info("ssim").better == "higher"


def test_input_ssim_is_never_flagged_worse_than_identity():
    from imgx.console import progress_line, results_table
    from imgx.report.panels import metrics_table

    rows = [{"metric": "input_ssim", "value": 0.5, "unit": "", "reference": "", "status": "ok"},
            {"metric": "input_ssim", "value": 1.0, "unit": "", "reference": "identity", "status": "ok"},
            {"metric": "target_ssim", "value": 0.3, "unit": "", "reference": "", "status": "ok"},
            {"metric": "target_ssim", "value": 0.6, "unit": "", "reference": "identity", "status": "ok"}]
    only = {"case_id": "edit", "task": "edit", "status": "ok", "seconds": 1.0, "detail": "", "gates": [],
            "config": {"metrics": ["input_ssim"]}, "rows": rows[:2]}
    assert "input_ssim 0.5000" in progress_line(only) and "worse than" not in progress_line(only)
    assert "worse than" not in results_table([only], width=None)
    table = metrics_table({**only, "rows": rows})
    css = {r[0].text: r[2].css for r in table.rows}
    assert css["input_ssim"] != "bad" and css["target_ssim"] == "bad"  # "bad": the report's does-not-beat flag
    # The headline of a case that asks for input_ssim first is the metric with a better direction.
    line = progress_line({**only, "config": {"metrics": ["input_ssim", "target_ssim"]}, "rows": rows})
    assert "target_ssim 0.3000" in line and line.endswith("worse than identity")


def test_compare_says_what_a_higher_input_ssim_means_and_does_not_gate_it(run_factory):
    def case(v):
        return {"id": "edit", "rows": [{"metric": "input_ssim", "value": v}]}

    comp = compare_runs(run_factory("base", [case(0.9)]), run_factory("cand", [case(0.6)]))
    row = _row(comp, "input_ssim")
    assert row.verdict == "not-compared" and comp.exit_code == 0
    assert "input" in row.direction and row.direction != "higher"
    # Named under regression:, a move either way past the tolerance is the regression.
    named = compare_runs(run_factory("b2", [{**case(0.9), "regression": {"input_ssim": "5%"}}]),
                         run_factory("c2", [{**case(0.6), "regression": {"input_ssim": "5%"}}]))
    assert _row(named, "input_ssim").verdict == "regression"
    up = compare_runs(run_factory("b3", [{**case(0.6), "regression": {"input_ssim": "5%"}}]),
                      run_factory("c3", [{**case(0.9), "regression": {"input_ssim": "5%"}}]))
    assert _row(up, "input_ssim").verdict == "regression"


# ---------------------------------------------------------------------------------- environment differences
def test_kernel_version_does_not_block_latency_comparison(run_factory):
    def case(ms):
        return [{"id": "c", "rows": [{"metric": "latency_ms_p50", "value": ms, "unit": "ms", "n": 20}]}]

    env_b = {**ENVIRONMENT, "platform": "Linux-6.5.0-1025-azure-x86_64-with-glibc2.35"}
    env_c = {**ENVIRONMENT, "platform": "Linux-6.8.0-1014-azure-x86_64-with-glibc2.35"}
    comp = compare_runs(run_factory("base", case(100.0), environment=env_b),
                        run_factory("cand", case(150.0), environment=env_c))
    assert comp.latency_compared and _row(comp, "latency_ms_p50").verdict == "regression"
    assert comp.environment_diffs == [] and any("platform" in n for n in comp.environment_notes)
    # What changes timing still blocks it.
    assert environment_diffs(ENVIRONMENT, {**ENVIRONMENT, "torch_threads": 8}) == ["torch_threads: 2 -> 8"]
    assert environment_diffs(ENVIRONMENT, {**ENVIRONMENT, "cpu": "Other CPU"})


@pytest.mark.parametrize("key", ["platform", "executable", "hostname"])
def test_informational_environment_keys_do_not_block(key):
    assert environment_diffs({**ENVIRONMENT, key: "a"}, {**ENVIRONMENT, key: "b"}) == []


def test_informational_differences_are_listed_in_the_summary(run_factory, capsys):
    env_c = {**ENVIRONMENT, "platform": "Linux-6.8.0-x86_64"}
    base = run_factory("base", [ssim_case(0.85)])
    cand = run_factory("cand", [ssim_case(0.85)], environment=env_c)
    assert main(["compare", str(base), str(cand), "--out", str(cand / "cmp")]) == 0
    summary = (cand / "cmp" / "summary.md").read_text(encoding="utf-8")
    assert "platform: Linux-x86_64 -> Linux-6.8.0-x86_64 (informational" in summary
    assert "Latency and memory were not compared" not in summary


def test_a_tolerance_for_one_row_of_a_per_label_metric(run_factory, tmp_path):
    """``regression: {"target_mse[brighter]": 40%}`` validates and judges that row only: the quickstart's
    per-instruction rows average 4 crops of a model that differs by CPU; the case's own row keeps the default."""
    from imgx.errors import SuiteError
    from imgx.suite import load_suite
    from tests.helpers import TINY_COLORIZE, write_suite

    (tmp_path / "ok").mkdir()
    (tmp_path / "bad").mkdir()
    load_suite(write_suite(tmp_path / "ok", TINY_COLORIZE + '    regression: {"ssim[x]": 40%}\n'))
    with pytest.raises(SuiteError) as info:
        load_suite(write_suite(tmp_path / "bad", TINY_COLORIZE + '    regression: {"nosuch[x]": 40%, "ssim[": 1%}\n'))
    assert len(info.value.problems()) == 2, info.value.problems()

    def case(value: float, labelled: float, **kw) -> dict:
        return {**ssim_case(value, extra=[{"metric": "ssim[x]", "value": labelled, "n": 4}]), **kw}

    base = run_factory("base", [case(0.80, 0.80)])
    new = run_factory("new", [case(0.80 * 0.7, 0.80 * 0.7, regression={"ssim[x]": "40%"})])
    comp = compare_runs(base, new)
    assert _row(comp, "ssim[x]").tolerance == "40%" and _row(comp, "ssim[x]").verdict == "unchanged"
    assert _row(comp).tolerance.startswith("2%") and _row(comp).verdict == "regression"

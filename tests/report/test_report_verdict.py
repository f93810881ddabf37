"""The report shows what happened to the run: a baseline verdict found beside it, and a resume."""

from __future__ import annotations

import json

from imgx.cli import main
from imgx.report import write_report
from tests.compare.conftest import make_run, ssim_case


def test_report_shows_the_comparison_verdict_and_ignores_a_stale_one(tmp_path, capsys):
    base = make_run(tmp_path / "base", [ssim_case(0.85, half_width=0.004)])
    cand = make_run(tmp_path / "cand", [ssim_case(0.70, half_width=0.004)])
    manifest = json.loads((cand / "manifest.json").read_text())
    manifest["started"] = "2026-01-02T09:00:00+00:00"
    (cand / "manifest.json").write_text(json.dumps(manifest))
    before = write_report(cand).read_text()
    assert '<span class="verdict pass">PASS</span>' in before and "Baseline comparison" not in before
    assert main(["compare", str(base), str(cand)]) == 1  # writes cand/compare/comparison.json
    capsys.readouterr()
    html = write_report(cand).read_text()
    assert '<span class="verdict fail">FAIL</span>' in html and "1 regression vs baseline" in html
    assert "Baseline comparison" in html and "compare/comparison.json" in html and "tolerance 2% (default)" in html
    # A later resume of the run (another start) makes that comparison stale: said, not shown as the verdict.
    manifest["started"] = "2026-01-03T09:00:00+00:00"
    (cand / "manifest.json").write_text(json.dumps(manifest))
    stale = write_report(cand).read_text()
    assert '<span class="verdict pass">PASS</span>' in stale and "compares an earlier state" in stale


def test_report_of_a_resumed_run_names_the_reused_cases(tmp_path):
    run = make_run(tmp_path / "run", [ssim_case(0.85, case_id="a"), ssim_case(0.80, case_id="b")])
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["reused_cases"] = ["a"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    html = write_report(run).read_text()
    assert "Resumed run: 1 case reused from the ledger of an earlier run (a)" in html

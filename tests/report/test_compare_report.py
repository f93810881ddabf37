"""comparison.html and summary.md from real comparisons of synthetic runs, and from duck-typed objects."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from imgx.report.compare_report import summary_markdown, write_comparison
from imgx.results import load_run
from tests.report.fixtures import make_run

SMALL = {"edit_inputs": 1, "prompts": ('<script>alert("x")</script> ../x', "sketch"), "schedulers": ("ddim",),
         "steps": (2,), "with_cuda": False, "with_failed": False}


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cmp")
    return make_run(root / "base", **SMALL), make_run(root / "cand", seed=1, shift=-0.05, **SMALL)


def test_regressions_rendered_with_side_by_side_images(pair, tmp_path):
    from imgx.compare import compare_runs

    base, cand = pair
    comp = compare_runs(base, cand)
    assert comp.regressions  # the shift makes quality worse
    html_path, md_path = write_comparison(comp, tmp_path / "cmp", base, cand)
    html, md = html_path.read_text(), md_path.read_text()
    assert "REGRESSION" in html
    assert f"<b>{len(comp.regressions)}</b>regression" in html
    for r in comp.regressions:
        assert r.case_id.replace('"', "&#34;") in html
    # one pair per output of the same case/seed/prompt/input, both sides embedded
    outputs = sum(len(r.get("outputs", [])) for r in load_run(cand)[1])
    assert html.count('alt="baseline ') == outputs == html.count('alt="candidate ')
    assert "colorizer" in html
    assert "fixed noise" in html
    assert '<script>alert("x")' not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; ../x" in html
    assert md.startswith(f"## imgx compare: ❌ {len(comp.regressions)} regressions")
    table = [line for line in md.splitlines() if line.startswith("| colorizer | ssim")]
    assert table
    assert re.search(r"\| 0\.78 \| 0\.73 \| -6\.41% \|", table[0])
    assert "<script>" not in md


def test_no_regression_and_baseline_file(pair, tmp_path):
    from imgx.compare import compare_runs, write_baseline

    base, _ = pair
    baseline_json = write_baseline(base, tmp_path / "baseline.json")
    comp = compare_runs(baseline_json, base)
    assert not comp.regressions
    html_path, md_path = write_comparison(comp, tmp_path / "out", None, base)
    html = html_path.read_text()
    assert "NO REGRESSION" in html
    assert "baseline file, not a run directory" in html
    assert "<img" not in html
    assert md_path.read_text().startswith("## imgx compare: ✅ no regression")


def test_duck_typed_comparison_and_markdown_escaping(tmp_path):
    row = SimpleNamespace(case_id="a|b", metric="ssim", reference="gray-copy", baseline=0.9, candidate=0.8,
                          change=-0.1, change_pct=-11.11, tolerance="2%", direction="higher", verdict="regression",
                          detail="worse <b>by</b>\nfar | really")
    comp = SimpleNamespace(rows=[row], warnings=["different GPU"], environment_diffs=["torch: 2.4 -> 2.5"],
                           baseline_label="base`x", candidate_label="cand", regressions=[row])
    html_path, _ = write_comparison(comp, tmp_path, None, tmp_path / "no-run")
    html = html_path.read_text()
    assert "different GPU" in html
    assert "torch: 2.4 -&gt; 2.5" in html
    assert "&lt;b&gt;by&lt;/b&gt;" in html
    md = summary_markdown(comp)
    line = next(x for x in md.splitlines() if x.startswith("| a"))
    # Backslash escapes keep raw HTML out without entities (the summary is printed to terminals too).
    assert line == ("| a\\|b | ssim (vs gray-copy) | 0.9 | 0.8 | -11.11% | 2% | worse \\<b>by\\</b> far \\| "
                    "really |")
    assert "`base'x`" in md
    assert "- different GPU" in md
    assert "torch: 2.4 -> 2.5" in md and "&gt;" not in md


def test_cli_compare_writes_both_files(pair, tmp_path, capsys):
    from imgx.cli import main

    base, cand = pair
    assert main(["compare", str(base), str(cand), "--out", str(tmp_path / "c")]) == 1
    assert (tmp_path / "c" / "comparison.html").stat().st_size > 5000
    assert (tmp_path / "c" / "summary.md").read_text().startswith("## imgx compare")

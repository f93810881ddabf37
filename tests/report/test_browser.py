"""Open the reports in real headless Chromium (DevTools protocol over a pipe): no errors, every image loads,
no network, tables sort and filter; a full-page screenshot is kept for a person to look at."""

from __future__ import annotations

import os

import pytest

from tests.report.cdp import Browser, find_chromium

pytestmark = pytest.mark.browser

if not find_chromium():
    reason = "no chromium executable (apt-get install chromium, or set IMGX_CHROMIUM)"
    if os.environ.get("IMGX_REQUIRE_BROWSER"):
        raise RuntimeError(reason)
    pytestmark = [pytest.mark.browser, pytest.mark.skip(reason=reason)]


def _check_page(browser, path):
    session = browser.open(path.as_uri())
    rep = browser.report(session)
    assert rep.errors == []
    assert rep.requests == [path.as_uri()]  # the page itself, nothing else
    assert rep.images
    broken = [i for i in rep.images if not (i["complete"] and i["width"] > 0)]
    assert broken == []
    return session, rep


def test_report_in_chromium(synthetic_report, artifacts_dir):
    path, html = synthetic_report
    with Browser() as b:
        session, rep = _check_page(b, path)
        assert len(rep.images) == html.count("<img ")
        # sort the results table by value (click twice: descending), then filter it
        values = b.evaluate(session, """(() => {
            const t = document.querySelector('#results table.data');
            const col = Array.from(t.tHead.rows[0].cells).findIndex(c => c.textContent === 'value');
            const th = t.tHead.rows[0].cells[col]; th.click(); th.click();
            return Array.from(t.tBodies[0].rows).map(r => r.cells[col].getAttribute('data-v'))
                        .filter(v => v !== '').map(Number); })()""")
        assert len(values) > 10
        assert values == sorted(values, reverse=True)
        shown = b.evaluate(session, """(() => {
            const input = document.querySelector('#results input.tablefilter');
            input.value = 'gray-copy'; input.dispatchEvent(new Event('input'));
            const rows = Array.from(document.querySelectorAll('#results tbody tr'));
            return [rows.filter(r => !r.classList.contains('hidden')).length,
                    rows.filter(r => !r.classList.contains('hidden') && !r.textContent.includes('gray-copy')).length];
            })()""")
        assert shown == [3, 0]
        alert = b.evaluate(session, "document.querySelectorAll('script').length")
        assert alert == 1  # the escaped prompt did not become a script element
        shot = b.screenshot(session, artifacts_dir / "report.png")
    assert shot.stat().st_size > 50_000
    print(f"report screenshot: {shot}")


def test_comparison_in_chromium(tmp_path, artifacts_dir):
    from imgx.compare import compare_runs
    from imgx.report.compare_report import write_comparison
    from tests.report.fixtures import make_run

    small = {"edit_inputs": 1, "prompts": ("p",), "schedulers": ("ddim",), "steps": (2,), "with_cuda": False}
    base = make_run(tmp_path / "b", **small)
    cand = make_run(tmp_path / "c", seed=3, shift=0.02, **small)
    html_path, _ = write_comparison(compare_runs(base, cand), tmp_path / "cmp", base, cand)
    with Browser() as b:
        session, rep = _check_page(b, html_path)
        shot = b.screenshot(session, artifacts_dir / "comparison.png")
    print(f"comparison screenshot: {shot}")

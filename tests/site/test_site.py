"""``imgx site`` on runs made at several commits of a real temporary git repository, on two machines."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from imgx.cli import main
from imgx.report import write_report
from tests.report.cdp import Browser, find_chromium
from tests.report.fixtures import make_run

SMALL = {"edit_inputs": 1, "prompts": ("p",), "schedulers": ("ddim",), "steps": (2,), "with_cuda": False}
MACHINES = {"A": "CPU A", "B": "CPU B"}


def _rows(html: str) -> list[list[str]]:
    """The body rows of the first table in ``html`` as cell texts."""
    import html as html_lib

    body = html[html.index("<tbody>"):html.index("</tbody>")]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
    return [[html_lib.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in row] for row in cells]


def _git(repo: Path, *args: str, date: str | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def _run(out: Path, repo: Path, commit: str, machine: str, shift: float) -> Path:
    run = make_run(out, shift=shift, **SMALL)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update(suite_git_commit=commit, suite_path=str(repo / "suite.yaml"), suite="trend")
    manifest["environment"]["cpu"] = MACHINES[machine]
    (run / "manifest.json").write_text(json.dumps(manifest))
    if machine == "B":  # machine B is twice as slow
        for case in (run / "cases").glob("*.json"):
            rec = json.loads(case.read_text())
            for row in rec["rows"]:
                if row["metric"] == "latency_ms_p50" and row["value"] is not None:
                    row["value"] *= 2
            case.write_text(json.dumps(rec))
    write_report(run)
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, list[str]]:
    """Four commits (the second to third brings a quality step), each run on machines A and B."""
    root = tmp_path_factory.mktemp("site")
    repo = root / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    commits = []
    for i in range(4):
        (repo / "suite.yaml").write_text(f"suite: trend  # version {i}\n")
        _git(repo, "add", "suite.yaml")
        _git(repo, "commit", "-q", "-m", f"v{i}", date=f"2026-0{i + 1}-01T12:00:00+00:00")
        commits.append(_git(repo, "rev-parse", "HEAD"))
    # made out of commit order: the site orders by commit date
    for i in (2, 0, 3, 1):
        for machine in MACHINES:
            _run(root / "runs" / f"{machine}-{i}", repo, commits[i], machine, shift=0.1 if i >= 2 else 0.0)
    return root, commits


def test_site_index_trends_steps_and_matrix(runs, capsys):
    root, commits = runs
    out = root / "site"
    assert main(["site", str(root / "runs"), "--out", str(out), "--reference", "CPU A"]) == 0
    assert "8 runs, 8 read" in capsys.readouterr().out
    index = (out / "index.html").read_text()
    assert index.count('class="runlink"') == 8
    for href in re.findall(r'class="runlink" href="([^"]+)"', index):
        assert (out / href).resolve().is_file()
    trends = (out / "trends.html").read_text()
    steps = _rows(trends[trends.index('id="steps"'):trends.index('id="trends"')])
    # the colorizer's SSIM steps between the second and the third commit (by date), on both machines
    for machine in MACHINES.values():
        assert ["trend", "colorizer", "ssim", f"{machine} (cpu)", commits[1][:8], commits[2][:8]] in [
            r[:6] for r in steps]
    # every step found is that one (the fixture's shift), and timing, the same at every commit, never steps
    assert steps and {(r[4], r[5]) for r in steps} == {(commits[1][:8], commits[2][:8])}
    assert not [r for r in steps if r[2].startswith("latency")]
    matrix = (out / "matrix.html").read_text()
    assert "CPU A (cpu)" in matrix and "CPU B (cpu)" in matrix and "0.50x" in matrix


def test_site_rebuild_reads_only_new_runs_and_tolerates_old_run_dirs(runs, capsys):
    root, commits = runs
    out = root / "site2"
    assert main(["site", str(root / "runs"), "--out", str(out)]) == 0
    capsys.readouterr()
    old = make_run(root / "old" / "run", **SMALL)  # an older imgx: no commit, no environment
    manifest = json.loads((old / "manifest.json").read_text())
    for key in ("git_commit", "environment"):
        manifest.pop(key)
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert main(["site", str(root / "runs"), str(old), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "9 runs, 1 read, 8 from the cache" in printed
    assert printed.count("lacks a git commit") == 1 and "ordered by start time" in printed
    assert main(["site", str(root / "nope"), "--out", str(out)]) == 2


@pytest.mark.browser
@pytest.mark.skipif(not find_chromium(), reason="no chromium executable")
def test_site_in_chromium(runs):
    root, _ = runs
    out = root / "site3"
    assert main(["site", str(root / "runs"), "--out", str(out)]) == 0
    with Browser() as b:
        for page in ("index.html", "trends.html", "matrix.html"):
            session = b.open((out / page).as_uri())
            rep = b.report(session)
            assert rep.errors == [] and rep.requests == [(out / page).as_uri()]
        session = b.open((out / "index.html").as_uri())
        hrefs = b.evaluate(session, "Array.from(document.querySelectorAll('a.runlink')).map(a => a.href)")
        assert len(hrefs) == 8 and all(Path(h.removeprefix("file://")).is_file() for h in hrefs)
        session = b.open((out / "trends.html").as_uri())
        marked = b.evaluate(session, """Array.from(document.querySelectorAll('.trend'))
            .filter(t => t.querySelector('h3').textContent.endsWith('colorizer · ssim'))
            .map(t => Number(t.getAttribute('data-steps')))""")
        assert marked == [2]  # one step per machine
        assert b.evaluate(session, "document.documentElement.scrollWidth - document.documentElement.clientWidth") == 0

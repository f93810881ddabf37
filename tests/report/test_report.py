"""report.html from run directories: self-contained, escaped, complete, and robust to degenerate runs."""

from __future__ import annotations

import base64
import csv
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from imgx.imageio import save_png
from imgx.report import write_report
from imgx.results import FORMAT, load_run, write_tables
from tests.report.fixtures import EVIL_PROMPT, make_run, record, row


class Tags(HTMLParser):
    """Collects tags and their attributes; counts unclosed elements of the kinds we nest."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.depth = {"table": 0, "section": 0, "details": 0, "div": 0}

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in self.depth:
            self.depth[tag] += 1

    def handle_endtag(self, tag):
        if tag in self.depth:
            self.depth[tag] -= 1


def parse(html: str) -> Tags:
    p = Tags()
    p.feed(html)
    p.close()
    return p


def test_report_is_self_contained(synthetic_report):
    path, html = synthetic_report
    tags = parse(html)
    for tag, attrs in tags.tags:
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not re.match(r"^\s*(https?:|//|file:|ftp:)", value, re.I), (tag, value[:80])
        if tag == "img":
            assert attrs["src"].startswith(("data:image/png;base64,", "data:image/webp;base64,"))
        if tag == "script":
            assert "src" not in attrs
        assert tag != "link"
    assert "@import" not in html
    assert "url(http" not in html
    assert all(v == 0 for v in tags.depth.values()), tags.depth
    assert path.stat().st_size < 3_000_000


def test_summary_comes_first_and_counts_cases(synthetic_report, synthetic_run):
    _, html = synthetic_report
    _, records = load_run(synthetic_run)
    assert html.index('id="summary"') < html.index('id="task-colorize"') < html.index('id="results"')
    summary = html[html.index('id="summary"'):html.index('id="task-colorize"')]
    for status in ("ok", "skipped", "failed"):
        n = sum(r["status"] == status for r in records)
        assert n > 0
        assert re.search(rf"<b>{n}</b>{status}", summary), status
    assert "FAILED" in summary
    assert "ssim = 0.78, required &gt;= 0.8" in summary
    assert "Test CPU" in summary
    assert "torch 2.14.1" in summary
    assert "CLIP weights not present offline" in summary  # unavailable metrics with their reason


def test_every_section_is_present(synthetic_report):
    _, html = synthetic_report
    for needle in ("gray-copy", "untrained", "real-split", "Inception weights not present offline",
                   "digits-classifier", "test_loss", "d_acc_fake", "epoch 3", "Outputs by input and instruction",
                   "invalid: black image (NSFW filter?)", "photo-1", "does not beat gray-copy (0.84)",
                   "Image similarity vs directional similarity", "Latency vs quality (cpu float32)",
                   "Pareto front", "CPU vs CUDA latency", "Per-stage latency", "vae_decode",
                   "random weights (tiny)", "image file missing"):
        assert needle in html, needle
    assert html.count("<svg") >= 6


def test_edit_grids_hold_every_output_once(synthetic_report, synthetic_run):
    _, html = synthetic_report
    with open(synthetic_run / "outputs.csv", newline="") as fh:
        outputs = list(csv.DictReader(fh))
    edit = [o for o in outputs if o["case_id"].startswith("edit")]
    start = html.index("Outputs by input and instruction")
    grids = html[start:html.index("Image similarity vs directional similarity", start)]
    inputs = {o["input_image"] for o in edit}
    # one compact grid per input, the input drawn once in it, one cell per output; no case-panel duplicate
    assert grids.count('class="egrid"') == len(inputs) == 2
    assert grids.count('alt="input"') == len(inputs)
    assert grids.count("<img") == len(edit) + len(inputs)
    # the instructions run down the rows, each once per grid; the sweep settings are the columns
    assert grids.count('<th class="instr">make it a pencil sketch</th>') == len(inputs)
    assert re.search(r"<th>[^<]*ig=[0-9.]+, g=[0-9.]+</th>", grids)
    assert "outputs" not in [g for g in re.findall(r"<h4>([^<]+)</h4>", html)]


def test_text_is_escaped_and_prompts_never_become_paths(synthetic_report, synthetic_run):
    _, html = synthetic_report
    assert '<script>alert("x")' not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; make it ../../etc/passwd &amp; &#34;quoted&#34;" in html
    assert "<b>boom</b>" not in html
    assert "&lt;b&gt;boom&lt;/b&gt;" in html
    assert "synthetic &lt;run&gt; &amp; co" in html
    assert html.count("<script>") == 1  # only the report's own table script
    with open(synthetic_run / "outputs.csv", newline="") as fh:
        outputs = list(csv.DictReader(fh))
    evil = [o for o in outputs if o["prompt"] == EVIL_PROMPT]
    assert evil
    root = synthetic_run.resolve()
    for o in outputs:
        p = (synthetic_run / o["path"]).resolve()
        assert p.parent == root / "images"
        assert p.is_file()
        assert ".." not in p.name
        assert "<" not in p.name
        assert "passwd" not in o["path"].replace("etc-passwd", "")


def test_paths_outside_the_run_directory_are_not_read(tmp_path):
    run = make_run(tmp_path / "run", edit_inputs=1, prompts=("p",), schedulers=("ddim",), steps=(2,),
                   with_cuda=False)
    secret = np.full((8, 8, 3), 7, np.uint8)
    save_png(secret, tmp_path, "secret.png")
    secret_b64 = base64.b64encode((tmp_path / "secret.png").read_bytes()).decode()[:40]
    with open(run / "outputs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[0]["path"] = "../secret.png"
    rows[1]["path"] = str(tmp_path / "secret.png")
    with open(run / "outputs.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    html = write_report(run).read_text()
    assert html.count("not inside the run directory") >= 2
    assert secret_b64 not in html
    from imgx.report.grids import resolve_in_run

    assert resolve_in_run(run, "../secret.png") is None
    assert resolve_in_run(run, str(tmp_path / "secret.png")) is None
    assert resolve_in_run(run, "images/x.png") == (run / "images/x.png").resolve()


def _run_with(tmp_path: Path, records: list[dict], tables: bool = True, manifest: bool = True) -> Path:
    from imgx.results import atomic_write_json, write_case

    out = tmp_path / "run"
    out.mkdir()
    for r in records:
        write_case(out, r)
    if tables:
        write_tables(out, records)
    if manifest:
        atomic_write_json(out / "manifest.json", {"format": FORMAT, "suite": "degenerate", "started": "x"})
    return out


@pytest.mark.parametrize("kind", ["skipped", "failed", "no-cases", "unavailable", "no-tables", "no-manifest"])
def test_degenerate_runs_render(tmp_path, kind):
    if kind == "skipped":
        recs = [record("edit[device=cuda]", "edit", 0, status="skipped", device="cuda",
                       detail="CUDA is not available on this machine", params={"device": "cuda"})]
    elif kind == "failed":
        recs = [record("colorizer", "colorize", 0, status="failed", detail="RuntimeError: diverged"),
                record("gan", "generate", 1, status="failed", detail="OSError: disk full")]
    elif kind == "no-cases":
        recs = []
    else:
        recs = [record("edit", "edit", 0, rows=[row("clip_score", None, status="unavailable", detail="no weights"),
                                                row("latency_ms_p50", None, status="failed", detail="non-finite")]),
                record("gan", "generate", 1, rows=[row("fid", None, status="unavailable", detail="too few")],
                       history=[{"epoch": 1}, {"epoch": 2}], artifacts={"fixed_noise": ["images/nope.png"]})]
    out = _run_with(tmp_path, recs, tables=kind != "no-tables", manifest=kind != "no-manifest")
    html = write_report(out).read_text()
    tags = parse(html)
    assert all(v == 0 for v in tags.depth.values())
    assert not any(t == "img" for t, _ in tags.tags)
    if kind == "no-cases":
        assert "NO CASES" in html
        assert "no finished cases" in html
    elif kind == "skipped":
        assert "CUDA is not available on this machine" in html
        assert "PASS" in html
    elif kind == "failed":
        assert "FAIL" in html
        assert "RuntimeError: diverged" in html
        assert "OSError: disk full" in html
    else:
        assert "no weights" in html
        assert "too few" in html
        assert "image file missing" in html


def test_unreadable_image_becomes_a_note(tmp_path):
    from imgx.report.grids import ImageEmbedder

    (tmp_path / "run" / "images").mkdir(parents=True)
    (tmp_path / "run" / "images" / "bad.png").write_bytes(b"\x89PNG not really")

    emb = ImageEmbedder(tmp_path / "run")
    e = emb.embed("images/bad.png")
    assert not e.ok
    assert e.note.startswith("unreadable image")
    assert not emb.embed("images/none.png").ok


def test_cli_report_writes_where_asked(synthetic_run, tmp_path, capsys):
    from imgx.cli import main

    target = tmp_path / "elsewhere.html"
    assert main(["report", str(synthetic_run), "--out", str(target)]) == 0
    assert target.stat().st_size > 10_000
    assert str(target) in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_real_colorize_run_renders_its_grid_and_curves(tiny_suite, tmp_path):
    from imgx.runner import run_suite

    summary = run_suite(tiny_suite, tmp_path / "out", quiet=True)
    html = (summary.out / "report.html").read_text()
    rec = summary.records[0]
    assert rec["status"] == "ok"
    assert rec["artifacts"]["grid"]
    assert "gray input" in html
    assert html.count("<img") >= 1
    assert "test_loss" in html
    assert f"{rec['rows'][0]['value']!r}" in html  # the exact value is kept for sorting and CSV


def test_run_directory_is_only_read(synthetic_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_run, copy)
    (copy / "report.html").unlink(missing_ok=True)
    before = {p: p.stat().st_mtime_ns for p in copy.rglob("*")}
    write_report(copy)
    after = {p: p.stat().st_mtime_ns for p in copy.rglob("*") if p.name != "report.html"}
    assert after == before

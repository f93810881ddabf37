"""Write the static site: ``index.html`` (runs), ``trends.html`` (across commits), ``matrix.html`` (across machines)."""

from __future__ import annotations

import logging
import os
import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup

from imgx.report import plots
from imgx.report.model import metric_better
from imgx.report.render import render
from imgx.report.tables import Table, fmt_value
from imgx.site.analysis import hardware_matrix, run_order, trends
from imgx.site.runs import RunSummary, find_runs, load_summaries

log = logging.getLogger("imgx")
MATRIX_METRICS = ("latency_ms_p50", "latency_ms_p90", "images_per_second", "train_images_per_second",
                  "peak_memory_mb")
MAX_TREND_PLOTS = 60


def _short(commit: str) -> str:
    return commit[:8] if commit else "?"


def _index_table(summaries: list[RunSummary], out: Path) -> Table:
    table = Table("runs", ["suite", "commit", "commit date", "started", "machine", "device", "cases", "verdict",
                           "report"], filename="runs.csv")
    for s in sorted(summaries, key=run_order, reverse=True):
        link = os.path.relpath(Path(s.path) / "report.html", out) if s.report else ""
        table.add([s.suite, _short(s.commit), s.commit_date, s.started, s.machine, ", ".join(s.devices), s.cases,
                   s.verdict, link], css={7: "ok" if s.verdict == "pass" else "bad"},
                  titles={1: s.commit, 8: s.path})
    return table


def _trend_context(summaries: list[RunSummary]) -> tuple[list[dict[str, Any]], Table]:
    commits = []
    for s in sorted(summaries, key=run_order):
        if s.commit not in commits:
            commits.append(s.commit)
    x_of = {c: i for i, c in enumerate(commits)}
    blocks, steps = [], Table("detected steps", ["suite", "case", "metric", "machine", "before", "after",
                                                 "value before", "value after", "change %", "better"],
                              filename="steps.csv")
    all_trends = trends(summaries)
    for t in all_trends:
        for st in t.steps:
            better = metric_better(t.metric)
            worse = (st.after.value < st.before.value) if better == "higher" else (
                st.after.value > st.before.value) if better == "lower" else False
            steps.add([t.suite, t.case, t.metric, st.machine, _short(st.before.commit), _short(st.after.commit),
                       st.before.value, st.after.value, st.change_pct, better],
                      css={8: "bad" if worse else "ok"}, titles={4: st.before.commit, 5: st.after.commit},
                      display={8: f"{st.change_pct:+.1f}%"})
    for t in all_trends[:MAX_TREND_PLOTS]:
        series = {m: [(x_of[p.commit], p.value, p.ci_low, p.ci_high) for p in pts] for m, pts in t.series.items()}
        step_x = sorted({x_of[st.after.commit] for st in t.steps})
        svg = plots.trend_plot([_short(c) for c in commits], series, t.metric,
                               title=f"{t.suite} · {t.case} · {t.metric}", steps=step_x)
        table = Table(f"{t.case} {t.metric}", ["machine", "commit", "value", "95% CI", "run"],
                      filename=f"trend-{t.suite}-{t.case}-{t.metric}.csv")
        for m, pts in t.series.items():
            for p in pts:
                ci = f"[{fmt_value(p.ci_low)}, {fmt_value(p.ci_high)}]" if p.ci_low is not None else ""
                table.add([m, _short(p.commit), p.value, ci, Path(p.run).name], titles={1: p.commit, 4: p.run})
        blocks.append({"title": f"{t.suite} · {t.case} · {t.metric}", "svg": Markup(svg), "table": table,
                       "anchor": f"trend-{len(blocks)}", "steps": len(t.steps)})
    return blocks, steps


def _matrix_table(summaries: list[RunSummary], reference: str | None) -> tuple[Table, str]:
    m = hardware_matrix(summaries, MATRIX_METRICS, reference)
    cols, ref = m["columns"], m["reference"]
    table = Table("hardware matrix", ["suite", "case", "metric", *cols, *[f"speed-up {c}" for c in cols if c != ref]],
                  filename="matrix.csv")
    for suite, case, metric, vals in m["rows"]:
        row: list[Any] = [suite, case, metric, *[vals.get(c) for c in cols]]
        display = {}
        base = vals.get(ref)
        for c in cols:
            if c == ref:
                continue
            v = vals.get(c)
            speed = None
            if base and v:
                speed = base / v if metric_better(metric) == "lower" else v / base
            row.append(speed)
            if speed is not None:
                display[len(row) - 1] = f"{speed:.2f}x"
        table.add(row, display=display)
    return table, ref


def _quality_table(summaries: list[RunSummary]) -> Table:
    """Quality metrics of the latest run on each machine side by side, with their largest relative spread."""
    m = hardware_matrix(summaries, tuple({r[1] for s in summaries for r in s.values
                                          if r[1] not in MATRIX_METRICS and not r[1].startswith(("latency",
                                                                                                  "train_"))}))
    cols = m["columns"]
    table = Table("quality agreement", ["suite", "case", "metric", *cols, "spread %"], filename="quality.csv")
    for suite, case, metric, vals in m["rows"]:
        present = [v for v in vals.values() if v is not None]
        mean = statistics.fmean(present) if present else 0.0
        spread = 100 * (max(present) - min(present)) / abs(mean) if len(present) > 1 and mean else None
        table.add([suite, case, metric, *[vals.get(c) for c in cols], spread],
                  css={3 + len(cols): "warn" if spread and spread > 5 else ""},
                  display={3 + len(cols): f"{spread:.1f}%" if spread is not None else ""})
    return table


def build_site(paths: list[str | Path], out: str | Path, reference: str | None = None) -> dict[str, Any]:
    """Build the site from run directories (or folders of them) into ``out``.

    Returns ``{"index": path, "runs": n, "read": n, "steps": n, "notes": [...]}``; ``read`` counts the runs read
    from disk this time (the others came from the cache in ``out/.imgx-site/``).
    """
    from imgx.results import atomic_write_text

    out = Path(out)
    runs = find_runs(paths)
    summaries, read = load_summaries(runs, out / ".imgx-site" / "runs")
    notes = []
    for what in dict.fromkeys(m for s in summaries for m in s.missing):
        lacking = [s for s in summaries if what in s.missing]
        notes.append(f"{len(lacking)} run director{'y lacks' if len(lacking) == 1 else 'ies lack'} {what} (older "
                     f"imgx): {', '.join(Path(s.path).name for s in lacking[:3])}"
                     + (f" and {len(lacking) - 3} more" if len(lacking) > 3 else "")
                     + ("; ordered by start time" if what == "a git commit" else ""))
    blocks, steps = _trend_context(summaries)
    matrix, ref = _matrix_table(summaries, reference)
    common = {"generated": datetime.now().astimezone().isoformat(timespec="seconds"), "notes": notes,
              "n_runs": len(summaries)}
    pages = {
        "index.html": render("site.html.j2", page="index", title="imgx site: runs",
                             runs=_index_table(summaries, out), **common),
        "trends.html": render("site.html.j2", page="trends", title="imgx site: trends across commits",
                              blocks=blocks, steps=steps, **common),
        "matrix.html": render("site.html.j2", page="matrix", title="imgx site: hardware matrix", matrix=matrix,
                              reference=ref, quality=_quality_table(summaries), **common),
    }
    for name, html in pages.items():
        atomic_write_text(out / name, html)
    return {"index": out / "index.html", "runs": len(summaries), "read": read, "steps": len(steps.rows),
            "notes": notes}

"""``report.html``: one self-contained page built from a run directory alone.

The page reads :func:`imgx.results.load_run` (manifest and case records) plus ``results.csv``, ``outputs.csv``,
``history.csv`` and ``images/``; it needs nothing else, so any old run can be re-rendered or published. All
text is escaped by Jinja2's autoescape; images are data URIs and plots inline SVG, so the file opens from disk
or as a CI artifact with no network.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from imgx.report.grids import ImageEmbedder
from imgx.report.headline import headline_tables, summary_lines
from imgx.report.model import TASK_TITLES, Block, TaskSection, duration, flatten, page_extractors, read_csv, text
from imgx.report.panels import (
    case_panel,
    fold_points,
    fold_shared_training,
    fold_skipped,
    fold_sweeps,
)
from imgx.report.render import render
from imgx.report.sections import cost_block, edit_blocks, t2i_blocks, translate_blocks
from imgx.report.summary import baseline_verdict, gate_table, problems_table, where_line
from imgx.report.tables import Table, csv_data_uri

log = logging.getLogger("imgx")


def _download(name: str, text: str) -> dict[str, str]:
    return {"name": name, "uri": csv_data_uri(text),
            "size": f"{len(text.encode()) / 1024:.1f} KiB"}


def build_context(out: Path) -> dict[str, Any]:
    """Everything the report template needs, from the run directory alone."""
    from imgx.results import load_run, output_rows, result_rows

    out = Path(out)
    manifest, records = load_run(out)
    embedder = ImageEmbedder(out)
    env = manifest.get("environment") or {}

    results, results_text = read_csv(out, "results.csv")
    if results is None:
        results = result_rows(records)
    outputs, outputs_text = read_csv(out, "outputs.csv")
    if outputs is None:
        outputs = output_rows(records)
    _, history_text = read_csv(out, "history.csv")

    counts = {s: sum(1 for r in records if r.get("status") == s) for s in ("ok", "skipped", "unavailable", "failed")}
    for r in records:
        if r.get("status") not in counts:
            counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
    gates = gate_table(records, only_not_passed=True)  # passed gates are in the headline tables
    gates_failed = sum(1 for r in records for g in r.get("gates") or [] if g.get("passed") is False)
    gates_passed = sum(1 for r in records for g in r.get("gates") or [] if g.get("passed") is True)
    verdict = "fail" if gates_failed or counts.get("failed") else ("pass" if records else "empty")
    baseline = baseline_verdict(out, manifest)
    if baseline and baseline.get("regressions"):
        verdict = "fail"

    sections: list[TaskSection] = []
    extractors = page_extractors(records)
    tasks = list(dict.fromkeys(r.get("task", "") for r in records))
    index = 0
    for task in tasks:
        recs = [r for r in records if r.get("task", "") == task]
        section = TaskSection(task, TASK_TITLES.get(task, task or "other"), f"task-{task or 'other'}",
                              random_weights=any((r.get("info") or {}).get("random_weights") for r in recs))
        if task == "edit":
            try:
                section.blocks = edit_blocks(recs, outputs, embedder)
            except Exception as exc:  # noqa: BLE001 - a broken plot must not cost the rest of the report
                log.warning("report: edit section failed: %s: %s", type(exc).__name__, exc)
                section.blocks = [Block("Edit plots", warn=f"could not draw: {type(exc).__name__}: {exc}")]
        elif task == "translate":
            try:
                section.blocks = translate_blocks(recs)
            except Exception as exc:  # noqa: BLE001 - a broken table must not cost the rest of the report
                log.warning("report: translate section failed: %s: %s", type(exc).__name__, exc)
                section.blocks = [Block("Translation tables", warn=f"could not build: {type(exc).__name__}: {exc}")]
        elif task == "text-to-image":
            try:
                section.blocks = t2i_blocks(recs, outputs, embedder)
            except Exception as exc:  # noqa: BLE001 - a broken plot must not cost the rest of the report
                log.warning("report: text-to-image section failed: %s: %s", type(exc).__name__, exc)
                section.blocks = [Block("Text-to-image plots", warn=f"could not draw: {type(exc).__name__}: {exc}")]
        cost = cost_block(recs)
        if cost is not None:
            section.blocks.append(cost)
        pairs = []
        for r in recs:
            pairs.append((case_panel(r, embedder, index, extractors), r))
            index += 1
        fold_shared_training(pairs)
        section.blocks += [Block(t.title, table=t, note="Each column is one sweep point; the references are the "
                                 "same data, shown once.") for t in fold_sweeps(pairs)]
        panels, section.skipped = fold_skipped([p for p, _ in pairs])
        section.panels, section.points = fold_points(panels)
        sections.append(section)

    headlines = headline_tables(records)
    env_table = Table("environment", ["key", "value"], filename="environment.csv")
    for k, v in flatten(env).items():
        env_table.add([k, text(v)])
    downloads = [_download(n, t) for n, t in (("results.csv", results_text), ("outputs.csv", outputs_text),
                                              ("history.csv", history_text)) if t]
    return {
        "title": f"imgx report: {manifest.get('suite') or (records[0]['suite'] if records else out.name)}",
        "manifest": manifest,
        "suite": manifest.get("suite") or (records[0].get("suite") if records else ""),
        "description": manifest.get("description") or "",
        "started": manifest.get("started") or "",
        "ended": manifest.get("ended") or "",
        "duration": duration(manifest.get("started"), manifest.get("ended")),
        "where": where_line(env),
        "command": " ".join(str(a) for a in manifest.get("command") or []),
        "counts": counts,
        "n_cases": len(records),
        "planned": manifest.get("planned"),
        "processes": _processes(records) if (manifest.get("num_processes") or 1) > 1 else {},
        "gates": gates,
        "gates_failed": gates_failed,
        "gates_passed": gates_passed,
        "verdict": verdict,
        "baseline": baseline,
        "reused_cases": manifest.get("reused_cases") or [],
        "problems": problems_table(records),
        "sections": sections,
        "headlines": headlines,
        "summary_lines": summary_lines(headlines, records),
        "flagged": sum(len(h.losing) for h in headlines),
        "flagged_elsewhere": sum(len(h.flagged) - len(h.losing) for h in headlines),
        "n_results": len(results),
        "environment": env_table,
        "downloads": downloads,
        "generated": datetime.now().astimezone().isoformat(timespec="seconds"),
        "images_embedded": embedder.count,
        "image_bytes": embedder.bytes_embedded,
        "images_over_budget": embedder.over_budget,
    }


def _processes(records: list[dict[str, Any]]) -> dict[int, list[str]]:
    """Which cases each process of a multi-process run computed (reused cases keep their first process)."""
    out: dict[int, list[str]] = {}
    for r in records:
        out.setdefault(int(r.get("process_index", 0)), []).append(r["case_id"])
    return dict(sorted(out.items()))


def write_report(out: Path, path: Path | None = None) -> Path:
    """Render ``report.html`` for the run directory ``out`` (default ``out/report.html``); returns its path."""
    from imgx.results import atomic_write_text

    out = Path(out)
    context = build_context(out)
    html = render("report.html.j2", **context)
    target = Path(path) if path else out / "report.html"
    atomic_write_text(target, html)
    return target

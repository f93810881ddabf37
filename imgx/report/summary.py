"""The top of a run's page: verdict, gates, what is not ok, where it ran, the baseline comparison."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from imgx.report.tables import STATUS_CSS, Table

log = logging.getLogger("imgx")

def gate_table(records: list[dict[str, Any]], only_not_passed: bool = False) -> Table:
    """Every gate of every case (or only those that failed or were not evaluated): metric, bound, value, passed."""
    table = Table("gates", ["case_id", "metric", "op", "bound", "value", "passed", "detail"], filename="gates.csv")
    for r in records:
        for g in r.get("gates") or []:
            passed = g.get("passed")
            if only_not_passed and passed is True:
                continue
            word = "passed" if passed is True else ("FAILED" if passed is False else "not evaluated")
            table.add([r["case_id"], g.get("metric"), g.get("op"), g.get("bound"), g.get("value"), word,
                       g.get("detail")], css={5: "ok" if passed is True else ("bad" if passed is False else "muted")})
    return table


def problems_table(records: list[dict[str, Any]]) -> Table:
    """Cases that are not ok (one line each), then metric rows that are not ok, grouped by metric and reason."""
    table = Table("not ok", ["what", "status", "reason", "cases", "case ids"], filename="problems.csv")
    cases: dict[tuple, list[str]] = {}
    for r in records:
        if r.get("status") != "ok":
            cases.setdefault((r.get("status"), r.get("detail") or ""), []).append(r["case_id"])
    for (status, detail), ids in cases.items():
        what = f"case {ids[0]}" if len(ids) == 1 else f"{len(ids)} cases"
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        table.add([what, status, detail, len(ids), shown], css={1: STATUS_CSS.get(str(status), "")})
    groups: dict[tuple, list[str]] = {}
    for r in records:
        for row in r.get("rows") or []:
            if row.get("status") not in (None, "ok"):
                what = row.get("metric", "") + (f" (vs {row['reference']})" if row.get("reference") else "")
                groups.setdefault((what, row.get("status"), row.get("detail") or ""), []).append(r["case_id"])
    for (what, status, detail), ids in groups.items():
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        table.add([f"metric {what}", status, detail, len(ids), shown], css={1: STATUS_CSS.get(str(status), "")})
    return table


def where_line(env: dict[str, Any]) -> str:
    """One line: CPU, threads, GPU, torch and CUDA versions."""
    versions = env.get("versions") or {}
    parts = [env.get("cpu") or "", f"{env.get('torch_threads')} torch threads" if env.get("torch_threads") else ""]
    if env.get("gpu"):
        parts.append(f"{env['gpu']} (driver {env.get('gpu_driver', '?')}, CUDA {env.get('cuda_version', '?')})")
    elif env:
        parts.append("no GPU used")
    if versions.get("torch"):
        parts.append(f"torch {versions['torch']}")
    if env.get("python"):
        parts.append(f"Python {env['python']}")
    return " · ".join(p for p in parts if p)


def baseline_verdict(out: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """This run's comparison verdict, from ``comparison.json`` (the pytest plugin's) or ``compare/`` (imgx compare).

    A comparison made against an earlier state of the run directory (another ``started``) is ignored with a note.
    """
    import json

    from imgx.compare import Comparison
    from imgx.report.compare_report import rows_table

    for path in (out / "comparison.json", out / "compare" / "comparison.json"):
        if not path.is_file():
            continue
        try:
            comp = Comparison.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            return {"stale": f"{path.name} cannot be read ({exc})"}
        started = comp.candidate_info.get("started")
        if started and manifest.get("started") and started != manifest.get("started"):
            return {"stale": f"{path.relative_to(out)} compares an earlier state of this run directory "
                             f"(started {started}); run the comparison again"}
        shown = comp.regressions + comp.inconclusive
        return {"path": str(path.relative_to(out)), "baseline": comp.baseline_label, "counts": comp.counts(),
                "regressions": len(comp.regressions), "inconclusive": len(comp.inconclusive),
                "table": rows_table(shown, "regressions and inconclusive timings, with the band that judged them",
                                    "baseline-verdicts.csv") if shown else None,
                "warnings": comp.warnings, "not_run": len(comp.not_run)}
    return None

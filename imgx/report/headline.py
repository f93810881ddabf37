"""The top of a run's page: per task, each case's headline metric against the best trivial reference.

A reader sees first whether each model beats doing nothing (``identity``, ``gray-copy``, ``untrained``): the
value with its CI, the best floor reference, the difference, and a plain flag when the model does not beat it.
Which references are floors comes from the metric metadata (:func:`imgx.report.model.reference_role`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imgx.report.model import (
    TASK_TITLES,
    comparability,
    is_quality,
    metric_better,
    page_extractors,
    reference_role,
    worse_than_floors,
)
from imgx.report.tables import Table, fmt_value, to_float

# Per task, the metric a reader judges a model by first (a gated quality metric wins over this order).
HEADLINE_PREFERENCE = {
    "colorize": ("ssim", "psnr", "mse"),
    "generate": ("fid", "kid"),
    "edit": ("target_mse", "target_ssim", "target_psnr", "instruction_accuracy", "clip_directional_similarity",
             "clip_score"),
    "translate": ("psnr", "target_mse", "ssim", "mse", "target_ssim", "fid"),
    "text-to-image": ("prompt_accuracy", "clip_score", "fid"),
}


@dataclass
class Headline:
    """One task's headline table and what it found."""

    task: str
    title: str
    table: Table
    flagged: list[str] = field(default_factory=list)  # case ids that lose to a floor reference on any metric
    losing: list[str] = field(default_factory=list)  # of those, the ones that lose on their headline metric
    no_floor: list[str] = field(default_factory=list)  # case ids whose headline metric has no floor reference


def _ok_rows(rec: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in rec.get("rows") or [] if r.get("status") == "ok" and to_float(r.get("value")) is not None]


def _floors(rows: list[dict[str, Any]], metric: str) -> dict[str, float]:
    return {r["reference"]: to_float(r["value"]) for r in rows if r.get("metric") == metric and r.get("reference")
            and reference_role(metric, r["reference"]) == "floor"}


def headline_metric(rec: dict[str, Any]) -> str | None:
    """The metric a case is judged by first: a gated quality metric, else the task's preference, else any quality
    metric with a floor reference, else the first quality metric; None when the case has no ok quality value."""
    rows = _ok_rows(rec)
    mine = [r["metric"] for r in rows if not r.get("reference") and is_quality(r["metric"])
            and metric_better(r["metric"]) in ("higher", "lower")]
    if not mine:
        return None
    gated = [g.get("metric") for g in rec.get("gates") or [] if g.get("metric") in mine]
    preferred = [m for m in HEADLINE_PREFERENCE.get(rec.get("task", ""), ()) if m in mine]
    with_floor = [m for m in mine if _floors(rows, m)]
    for candidates in ([m for m in gated if _floors(rows, m)], [m for m in preferred if _floors(rows, m)],
                       with_floor, gated, preferred, mine):
        if candidates:
            return candidates[0]
    return None


def _loss_words(losses: list[tuple[str, str]], rows: list[dict[str, Any]]) -> list[str]:
    """Other metrics that lose to a floor: whole-case metrics with their values; per-instruction ones
    (``target_mse[sepia]``) counted per metric, so a case with eight instructions stays one line."""
    words = [w for m, w in losses if "[" not in m]
    per: dict[str, set[str]] = {}
    for m, _ in losses:
        if "[" in m:
            per.setdefault(m.split("[")[0], set()).add(m)
    for base, lost in per.items():
        total = len({r["metric"] for r in rows if r["metric"].startswith(base + "[") and not r.get("reference")})
        words.append(f"{base} on {len(lost)} of {total} instructions")
    return words


def _ci(row: dict[str, Any]) -> str:
    lo, hi = to_float(row.get("ci_low")), to_float(row.get("ci_high"))
    return f"[{fmt_value(lo)}, {fmt_value(hi)}]" if lo is not None and hi is not None else ""


def headline_tables(records: list[dict[str, Any]]) -> list[Headline]:
    """One table per task: case, headline metric, value, CI, best floor reference, difference, flag, gates.

    The flag column also names every other quality metric of the case that does not beat a floor, so no loss
    to a trivial reference stays inside a closed panel.
    """
    out = []
    extractors = page_extractors(records)
    for task in dict.fromkeys(r.get("task", "") for r in records):
        recs = [r for r in records if r.get("task", "") == task]
        table = Table(f"{task} headline", ["case", "metric", "better", "value", "95% CI", "best trivial reference",
                                           "reference value", "difference", "verdict", "gates"],
                      filename=f"headline-{task or 'other'}.csv")
        head = Headline(task, TASK_TITLES.get(task, task or "other"), table)
        for rec in recs:
            if rec.get("status") == "skipped":  # nothing measured; the summary counts skipped cases
                continue
            gates = rec.get("gates") or []
            gate_text = ", ".join(f"{g.get('metric')} {g.get('op')} {fmt_value(g.get('bound'))}"
                                  + ("" if g.get("passed") is not False else " FAILED") for g in gates) or "none"
            gate_css = "bad" if any(g.get("passed") is False for g in gates) else ("" if gates else "muted")
            metric = headline_metric(rec)
            if metric is None:
                table.add([rec["case_id"], "", "", None, "", "", None, None, f"no quality value ({rec.get('status')})",
                           gate_text], css={8: "muted", 9: gate_css}, titles={8: rec.get("detail") or ""})
                continue
            rows = _ok_rows(rec)
            model = next(r for r in rows if r["metric"] == metric and not r.get("reference"))
            value = to_float(model["value"])
            better = metric_better(metric)
            floors = _floors(rows, metric)
            best = max(floors, key=lambda k: floors[k] if better == "higher" else -floors[k]) if floors else ""
            diff = value - floors[best] if best else None
            losses = []
            for m in dict.fromkeys(r["metric"] for r in rows if not r.get("reference")):
                mv = next(to_float(r["value"]) for r in rows if r["metric"] == m and not r.get("reference"))
                refs = _floors(rows, m)
                losses += [(m, ref, f"{m} {fmt_value(mv)} vs {ref} {fmt_value(refs[ref])}")
                           for ref in worse_than_floors(m, mv, refs)]
            head_loss = [ref for m, ref, _ in losses if m == metric]
            others = _loss_words([(m, words) for m, _, words in losses if m != metric], rows)
            if head_loss:
                verdict, css = f"does not beat {' or '.join(head_loss)}", "bad"
            elif best:
                verdict, css = f"beats {', '.join(floors)}", "ok"
            else:
                verdict, css = "no trivial reference to beat", "muted"
                head.no_floor.append(rec["case_id"])
            if others:
                verdict += "; also loses on " + ", ".join(others)
                css = "bad"
            if css == "bad":
                head.flagged.append(rec["case_id"])
            if head_loss:
                head.losing.append(rec["case_id"])
            caveat = comparability(model, extractors)
            display = {7: f"{diff:+.4g}" if diff is not None else ""}
            if caveat:
                display[3] = f"{fmt_value(value)} · not comparable"
            table.add([rec["case_id"], metric, better, value, _ci(model), best, floors.get(best), diff, verdict,
                       gate_text], titles={3: caveat},
                      css={0: "caseid", 8: f"{css} vcell", 9: f"{gate_css} gatecell".strip(),
                           3: "bad" if head_loss else "", 4: "nowrap"},
                      display=display)
        out.append(head)
    return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _listed(ids: list[str], shown: int = 6) -> str:
    return ", ".join(ids[:shown]) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def _by_base(ids: list[str], records: list[dict[str, Any]]) -> list[str]:
    """Case ids with the sweep points of one base case folded: ``edit (4 of 6 sweep points)``."""
    base = {r["case_id"]: r.get("base_id") or r["case_id"] for r in records}
    total: dict[str, int] = {}
    for r in records:
        total[base[r["case_id"]]] = total.get(base[r["case_id"]], 0) + 1
    groups: dict[str, list[str]] = {}
    for cid in ids:
        groups.setdefault(base.get(cid, cid), []).append(cid)
    out = []
    for b, members in groups.items():
        n = total.get(b, len(members))
        if len(members) == 1:
            out.append(members[0])
        elif len(members) == n:
            out.append(f"{b} (all {n} sweep points)")
        else:
            out.append(f"{b} ({len(members)} of {n} sweep points)")
    return out


def summary_lines(headlines: list[Headline], records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Plain sentences under the verdict (css class, text): flags first, then which gates exist and where none."""
    lines: list[tuple[str, str]] = []
    losing = [c for h in headlines for c in h.losing]
    elsewhere = [c for h in headlines for c in h.flagged if c not in losing]
    if losing:
        lines.append(("bad", f"{_plural(len(losing), 'case')} {'does' if len(losing) == 1 else 'do'} not beat a "
                             f"trivial reference: {_listed(_by_base(losing, records))}."))
    if elsewhere:
        one = len(elsewhere) == 1
        lines.append(("bad", f"{_plural(len(elsewhere), 'case')} {'beats its' if one else 'beat their'} trivial "
                             f"reference on the headline metric but {'loses' if one else 'lose'} on another metric: "
                             f"{_listed(_by_base(elsewhere, records))}."))
    gated = [r for r in records if r.get("gates")]
    ungated = [r["case_id"] for r in records if not r.get("gates")]
    n_gates = sum(len(r["gates"]) for r in gated)
    if n_gates:
        metrics = ", ".join(dict.fromkeys(str(g.get("metric")) for r in gated for g in r["gates"]))
        text = f"{_plural(n_gates, 'gate')} ({metrics}) in {_plural(len(gated), 'case')}"
        if ungated:
            them = "them" if len(ungated) > 1 else "it"
            text += f"; no gate in {_listed(_by_base(ungated, records))}: only an error fails {them}"
        lines.append(("", text + "."))
    elif records:
        lines.append(("warn", "No gates in this suite: the verdict says only that every case ran."))
    return lines

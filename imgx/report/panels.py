"""Case panels: one case's metrics against its references, training history, images and provenance."""

from __future__ import annotations

import json
import logging
from typing import Any

from markupsafe import Markup

from imgx.report import plots
from imgx.report.grids import Gallery, ImageEmbedder, artifact_galleries
from imgx.report.model import (
    CasePanel,
    comparability,
    flatten,
    metric_better,
    params_text,
    reference_role,
    short_labels,
    text,
    worse_than_floors,
)
from imgx.report.tables import STATUS_CSS, Table, fmt_value, from_records, to_float

log = logging.getLogger("imgx")

OPEN_PANELS = 6  # case panels shown expanded; the rest start collapsed
ARTIFACT_SIDE = {"generate": 300, "text-to-image": 360, "edit": 480}  # sample grids side by side; others 640 px
# artifacts a task section already shows in full (the edit grids hold every output and its input)
SECTION_SHOWS = {"edit": frozenset({"outputs", "grid"})}
KID_SCALE = ("KID scale: unbiased MMD² with the polynomial kernel (degree 3 unless the suite sets it), mean over "
             "subsets, in raw units: not multiplied by 1000 as some papers print it; compare only within one "
             "extractor.")


def metrics_table(rec: dict[str, Any], extractors: set[str] | frozenset[str] = frozenset()) -> Table | None:
    """A case's metrics: the model's value with its CI next to each reference's value (gray-copy, untrained...).

    A value on the wrong side of a floor reference (the metric metadata says which) is flagged; a FID/KID that
    is not comparable says so next to the value. The detail column holds the model row's detail only (a
    reference's detail is in its cell's tooltip).
    """
    rows = rec.get("rows") or []
    if not rows:
        return None
    refs = list(dict.fromkeys(r.get("reference") or "" for r in rows if r.get("reference")))
    metrics = list(dict.fromkeys(r.get("metric") for r in rows))
    cols = ["metric", "better", "value", "95% CI", *refs, "unit", "n", "status", "detail"]
    table = Table("metrics", cols, filename=f"{rec['case_id']}-metrics.csv")
    for m in metrics:
        mine = [r for r in rows if r.get("metric") == m]
        model = next((r for r in mine if not r.get("reference")), None)
        by_ref = {r.get("reference"): r for r in mine if r.get("reference")}
        ci = ""
        if model and model.get("ci_low") is not None and model.get("ci_high") is not None:
            ci = f"[{fmt_value(model['ci_low'])}, {fmt_value(model['ci_high'])}]"
        values: list[Any] = [m, metric_better(m), model.get("value") if model else None, ci]
        titles, css, display = {}, {}, {}
        for j, ref in enumerate(refs):
            r = by_ref.get(ref)
            values.append(r.get("value") if r else None)
            tip = [f"95% CI [{fmt_value(r['ci_low'])}, {fmt_value(r['ci_high'])}]"] if r and r.get(
                "ci_low") is not None else []
            if r and r.get("detail") and model and r.get("detail") != model.get("detail"):
                tip.append(str(r["detail"]))
            if r:
                tip.append(f"{reference_role(m, ref)} reference")
            titles[4 + j] = "; ".join(tip)
            if r and r.get("status") not in (None, "ok"):
                css[4 + j] = STATUS_CSS.get(r["status"], "")
        mv = to_float(model.get("value")) if model else None
        ref_values = {ref: to_float(r.get("value")) for ref, r in by_ref.items() if r.get("status", "ok") == "ok"}
        worse = worse_than_floors(m, mv, ref_values)
        if worse:
            css[2] = "bad"
            display[2] = f"{fmt_value(mv)} ✗"
            titles[2] = "does not beat " + " or ".join(f"{ref} ({fmt_value(ref_values[ref])})" for ref in worse)
        caveat = comparability(model, set(extractors)) if model else ""
        if caveat:
            css[2] = css.get(2) or "warn"
            display[2] = display.get(2, fmt_value(mv)) + " · not comparable"
            titles[2] = "; ".join(x for x in (titles.get(2, ""), caveat) if x)
        status = model.get("status") if model else "; ".join(sorted({r.get("status", "") for r in mine}))
        detail = (model.get("detail") if model else next((r.get("detail") for r in mine if r.get("detail")), "")) or ""
        if caveat:
            detail = f"not comparable: {caveat}. {detail}"
        if m.split("[")[0] == "kid":
            detail = f"{detail} {KID_SCALE}".strip()
        n = model.get("n") if model else None
        unit = next((r.get("unit") for r in mine if r.get("unit")), "")
        values += [unit, n, status, detail]
        css[len(values) - 2] = STATUS_CSS.get(str(status), "")
        table.add(values, css=css, titles=titles, display=display)
    if any(c.css == "bad" for row in table.rows for c in row[2:3]):
        table.note = "✗: does not beat a trivial reference (hover for which)."
    return table


def _history_plot(history: list[dict[str, Any]], cols: list[str], title: str = "") -> str | None:
    epochs = [to_float(h.get("epoch")) for h in history]
    if any(e is None for e in epochs):
        epochs = [float(i + 1) for i in range(len(history))]
    numeric = [c for c in cols if c not in ("epoch", "step", "seconds")
               and any(to_float(h.get(c)) is not None for h in history)]
    acc = [c for c in numeric if "acc" in c.lower()]
    loss = [c for c in numeric if "loss" in c.lower() and c not in acc]
    if not loss and not acc:
        loss = numeric
    if not loss and not acc:
        return None
    left = {c: [h.get(c) for h in history] for c in (loss or acc)}
    right = {c: [h.get(c) for h in history] for c in acc} if loss and acc else None
    return plots.history_plot(epochs, left, right=right, left_label="loss" if loss else "accuracy", title=title)


def _history_parts(history: list[dict[str, Any]], case_id: str) -> tuple[Markup | None, Table | None]:
    """The history table and its curves; a staged training (``stage`` column: VAE, then denoiser) gets one plot
    per stage, each over its own epochs."""
    if not history:
        return None, None
    cols = list(dict.fromkeys(k for h in history for k in h))
    table = from_records("training history", history, cols, filename=f"{case_id}-history.csv")
    stages = list(dict.fromkeys(str(h["stage"]) for h in history if h.get("stage") not in (None, "")))
    parts = [(f"stage {st}", [h for h in history if str(h.get("stage")) == st]) for st in stages] if len(
        stages) > 1 else [("", history)]
    svgs = []
    for title, rows in parts:
        try:
            svg = _history_plot(rows, [c for c in cols if any(to_float(h.get(c)) is not None for h in rows)], title)
        except Exception as exc:  # noqa: BLE001 - a plot that cannot be drawn must not cost the report
            log.warning("report: history plot for %s failed: %s", case_id, exc)
            svg = None
        if svg:
            svgs.append(svg)
    cells = "".join(f'<div class="plotcell">{svg}</div>' for svg in svgs)  # svgs: matplotlib's own markup
    return (Markup(cells) if svgs else None), table


def info_table(info: dict[str, Any], case_id: str) -> Table | None:
    """Provenance (feature extractor, weights hash, sample counts...) as key/value rows."""
    flat = flatten(info or {})
    if not flat:
        return None
    table = Table("provenance", ["key", "value"], filename=f"{case_id}-info.csv")
    for k, v in flat.items():
        table.add([k, text(v)])
    return table


def case_panel(rec: dict[str, Any], embedder: ImageEmbedder, index: int,
               extractors: set[str] | frozenset[str] = frozenset()) -> CasePanel:
    """The panel of one case record (``extractors``: every FID/KID extractor on the page, see
    :func:`page_extractors`)."""
    info = rec.get("info") or {}
    facts = [("status", rec.get("status", "")), ("device", rec.get("device", "")), ("dtype", rec.get("dtype", "")),
             ("seed", text(rec.get("seed"))), ("model", rec.get("model", "")),
             ("seconds", fmt_value(rec.get("seconds")))]
    if rec.get("params"):
        facts.append(("sweep point", params_text(rec["params"])))
    history = rec.get("history") or []
    history_svg, history_table = _history_parts(history, rec["case_id"])
    epochs = [h.get("epoch") for h in history] if history else None
    return CasePanel(
        case_id=rec["case_id"], anchor=f"case-{rec.get('key', index)}", task=rec.get("task", ""),
        status=rec.get("status", ""), detail=rec.get("detail") or "", facts=[(k, str(v)) for k, v in facts if v != ""],
        random_weights=bool(info.get("random_weights")), gates=rec.get("gates") or [],
        metrics=metrics_table(rec, extractors), history_svg=history_svg, history=history_table,
        galleries=artifact_galleries(rec.get("artifacts") or {}, embedder, epochs,
                                     max_side=ARTIFACT_SIDE.get(rec.get("task", ""), 640),
                                     skip=SECTION_SHOWS.get(rec.get("task", ""), frozenset())),
        info=info_table(info, rec["case_id"]), open=index < OPEN_PANELS and rec.get("task") != "edit")


def _training_key(rec: dict[str, Any]) -> str:
    """Cases with the same training history trained (or reused) one model: the history is its fingerprint."""
    history = rec.get("history") or []
    return json.dumps(history, sort_keys=True, default=str) if history else ""


def _sources(gallery: Gallery) -> tuple[str, ...]:
    return tuple(f.image.source for f in gallery.figures if f.image is not None)


def fold_shared_training(pairs: list[tuple[CasePanel, dict[str, Any]]]) -> None:
    """Show one trained model once: sweep points that share it keep their metrics and outputs, and point to the
    first point's panel for the history, curves, per-epoch images and provenance (only what differs stays)."""
    first: dict[str, tuple[CasePanel, dict[str, Any]]] = {}
    for panel, rec in pairs:
        key = _training_key(rec)
        if not key:
            continue
        if key not in first:
            first[key] = (panel, rec)
            continue
        p0, r0 = first[key]
        panel.history_svg, panel.history = None, None
        panel.shared_with, panel.shared_anchor = p0.case_id, p0.anchor
        shown = {_sources(g) for g in p0.galleries}
        panel.galleries = [g for g in panel.galleries if _sources(g) not in shown]
        base, mine = flatten(r0.get("info") or {}), flatten(rec.get("info") or {})
        differs = {k: v for k, v in mine.items() if base.get(k) != v}
        panel.info = info_table(differs, rec["case_id"])


def sweep_table(pairs: list[tuple[CasePanel, dict[str, Any]]]) -> Table:
    """The sweep points of one base case side by side: a row per metric, its references once, a column per point.

    References that differ between points (they should not: same data) show their range. A value that does not
    beat a floor is marked as in the case tables. Each point's panel keeps its status, detail and provenance.
    """
    recs = [r for _, r in pairs]
    labels = short_labels(recs)
    metrics = list(dict.fromkeys(row.get("metric") for r in recs for row in r.get("rows") or []
                                 if not row.get("reference")))
    refs = list(dict.fromkeys(row.get("reference") for r in recs for row in r.get("rows") or []
                              if row.get("reference")))
    base = recs[0].get("base_id") or recs[0]["case_id"]
    table = Table(f"{base}: every sweep point", ["metric", "better", *refs, *labels],
                  filename=f"{base}-sweep.csv")
    for m in metrics:
        ref_vals: dict[str, list[float]] = {}
        for r in recs:
            for row in r.get("rows") or []:
                if row.get("metric") == m and row.get("reference") and row.get("status") == "ok" and to_float(
                        row.get("value")) is not None:
                    ref_vals.setdefault(row["reference"], []).append(to_float(row["value"]))
        values: list[Any] = [m, metric_better(m)]
        display: dict[int, str] = {}
        for j, ref in enumerate(refs):
            vals = ref_vals.get(ref) or []
            values.append(vals[0] if vals else None)
            if vals and max(vals) - min(vals) > 1e-12 * max(1.0, abs(max(vals))):
                display[2 + j] = f"{fmt_value(min(vals))}–{fmt_value(max(vals))}"
        floors = {ref: (v[0] if len(set(v)) == 1 else None) for ref, v in ref_vals.items()}
        css: dict[int, str] = {}
        titles: dict[int, str] = {}
        for k, r in enumerate(recs):
            row = next((x for x in r.get("rows") or [] if x.get("metric") == m and not x.get("reference")), None)
            v = to_float(row.get("value")) if row and row.get("status") == "ok" else None
            col = 2 + len(refs) + k
            values.append(v)
            if row and row.get("status") != "ok":
                css[col], titles[col] = STATUS_CSS.get(str(row.get("status")), ""), str(row.get("detail") or "")
            worse = worse_than_floors(m, v, floors)
            if worse:
                css[col], display[col] = "bad", f"{fmt_value(v)} ✗"
                titles[col] = "does not beat " + " or ".join(worse)
        table.add(values, css=css, titles=titles, display=display)
    table.note = "✗: does not beat a trivial reference." if any(
        c.css == "bad" for row in table.rows for c in row) else ""
    return table


def fold_sweeps(pairs: list[tuple[CasePanel, dict[str, Any]]]) -> list[Table]:
    """One side-by-side table per base case with several sweep points; their panels drop the per-case metrics
    table (the sweep table has every value) and link to it."""
    groups: dict[str, list[tuple[CasePanel, dict[str, Any]]]] = {}
    for panel, rec in pairs:
        if rec.get("rows"):
            groups.setdefault(rec.get("base_id") or rec["case_id"], []).append((panel, rec))
    tables = []
    for members in groups.values():
        if len(members) < 2:
            continue
        table = sweep_table(members)
        for panel, _ in members:
            panel.metrics, panel.sweep_table = None, table.id
        tables.append(table)
    return tables


def fold_skipped(panels: list[CasePanel]) -> tuple[list[CasePanel], list[tuple[str, list[CasePanel]]]]:
    """Cases skipped for the same reason (CUDA absent) become one line naming them; a lone skip keeps its panel."""
    by_reason: dict[str, list[CasePanel]] = {}
    for p in panels:
        if p.status == "skipped":
            by_reason.setdefault(p.detail, []).append(p)
    folded = {id(p) for group in by_reason.values() if len(group) > 1 for p in group}
    return ([p for p in panels if id(p) not in folded],
            [(reason, group) for reason, group in by_reason.items() if len(group) > 1])


def fold_points(panels: list[CasePanel]) -> tuple[list[CasePanel], Table | None]:
    """Sweep points whose metrics are in a sweep table and whose trained model another panel shows have nothing
    of their own but status, detail and the provenance that differs: one table row each instead of a panel."""
    rows = [p for p in panels if p.sweep_table and p.shared_with and not p.galleries]
    if not rows:
        return panels, None
    table = Table("other sweep points", ["case", "status", "detail", "provenance that differs"],
                  filename="sweep-points.csv")
    for p in rows:
        pairs = [f"{r[0].text}={r[1].text if len(r[1].text) <= 48 else r[1].text[:45] + '...'}"
                 for r in p.info.rows] if p.info else []
        differs = "; ".join(pairs[:4]) + (f"; and {len(pairs) - 4} more" if len(pairs) > 4 else "")
        table.add([p.case_id, p.status, p.detail, differs], css={1: STATUS_CSS.get(p.status, "")})
    keep = {id(p) for p in rows}
    return [p for p in panels if id(p) not in keep], table

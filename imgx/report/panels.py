"""Case panels: one case's metrics against its references, training history, images and provenance."""

from __future__ import annotations

import logging
from typing import Any

from markupsafe import Markup

from imgx.report import plots
from imgx.report.grids import ImageEmbedder, artifact_galleries
from imgx.report.model import (
    CasePanel,
    flatten,
    metric_direction,
    params_text,
    text,
)
from imgx.report.tables import STATUS_CSS, Table, fmt_value, from_records, to_float

log = logging.getLogger("imgx")

OPEN_PANELS = 6  # case panels shown expanded; the rest start collapsed
FLOORS = ("gray-copy", "untrained", "identity")  # references a useful model must beat


def metrics_table(rec: dict[str, Any]) -> Table | None:
    """A case's metrics: the model's value with its CI next to each reference's value (gray-copy, untrained...)."""
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
        values: list[Any] = [m, metric_direction(m), model.get("value") if model else None, ci]
        titles, css = {}, {}
        for j, ref in enumerate(refs):
            r = by_ref.get(ref)
            values.append(r.get("value") if r else None)
            if r and r.get("ci_low") is not None:
                titles[4 + j] = f"95% CI [{fmt_value(r['ci_low'])}, {fmt_value(r['ci_high'])}]"
            if r and r.get("status") not in (None, "ok"):
                css[4 + j] = STATUS_CSS.get(r["status"], "")
        # A trivial reference (gray-copy, untrained) is a floor: a model on the wrong side of it is flagged.
        direction = values[1]
        mv = to_float(model.get("value")) if model else None
        for ref in FLOORS:
            rv = to_float(by_ref[ref].get("value")) if ref in by_ref else None
            if mv is not None and rv is not None and direction and (mv < rv if direction == "higher" else mv > rv):
                css[2] = "warn"
                titles[2] = f"worse than the {ref} reference ({fmt_value(rv)})"
        status = model.get("status") if model else "; ".join(sorted({r.get("status", "") for r in mine}))
        details = list(dict.fromkeys(str(r.get("detail")) for r in ([model] if model else []) + list(by_ref.values())
                                     if r.get("detail")))
        n = model.get("n") if model else None
        unit = next((r.get("unit") for r in mine if r.get("unit")), "")
        values += [unit, n, status, " | ".join(details)]
        css[len(values) - 2] = STATUS_CSS.get(str(status), "")
        table.add(values, css=css, titles=titles)
    table.note = "Amber value: worse than a trivial reference (hover for which)." if any(
        c.css == "warn" for row in table.rows for c in row[2:3]) else ""
    return table


def _history_parts(history: list[dict[str, Any]], case_id: str) -> tuple[Markup | None, Table | None]:
    if not history:
        return None, None
    cols = list(dict.fromkeys(k for h in history for k in h))
    table = from_records("training history", history, cols, filename=f"{case_id}-history.csv")
    epochs = [to_float(h.get("epoch")) for h in history]
    if any(e is None for e in epochs):
        epochs = [float(i + 1) for i in range(len(history))]
    numeric = [c for c in cols if c not in ("epoch", "step") and any(to_float(h.get(c)) is not None for h in history)]
    acc = [c for c in numeric if "acc" in c.lower()]
    loss = [c for c in numeric if "loss" in c.lower() and c not in acc]
    if not loss and not acc:
        loss = numeric
    if not loss and not acc:
        return None, table
    left = {c: [h.get(c) for h in history] for c in (loss or acc)}
    right = {c: [h.get(c) for h in history] for c in acc} if loss and acc else None
    try:
        svg = plots.history_plot(epochs, left, right=right, left_label="loss" if loss else "accuracy")
    except Exception as exc:  # noqa: BLE001 - a plot that cannot be drawn must not cost the report
        log.warning("report: history plot for %s failed: %s", case_id, exc)
        return None, table
    return Markup(svg), table


def info_table(info: dict[str, Any], case_id: str) -> Table | None:
    """Provenance (feature extractor, weights hash, sample counts...) as key/value rows."""
    flat = flatten(info or {})
    if not flat:
        return None
    table = Table("provenance", ["key", "value"], filename=f"{case_id}-info.csv")
    for k, v in flat.items():
        table.add([k, text(v)])
    return table


def case_panel(rec: dict[str, Any], embedder: ImageEmbedder, index: int) -> CasePanel:
    """The panel of one case record."""
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
        metrics=metrics_table(rec), history_svg=history_svg, history=history_table,
        galleries=artifact_galleries(rec.get("artifacts") or {}, embedder, epochs,
                                     max_side=480 if rec.get("task") == "edit" else 900,
                                     skip={"outputs"} if rec.get("task") == "edit" else frozenset()),
        info=info_table(info, rec["case_id"]), open=index < OPEN_PANELS and rec.get("task") != "edit")

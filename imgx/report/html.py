"""``report.html``: one self-contained page built from a run directory alone.

The page reads :func:`imgx.results.load_run` (manifest and case records) plus ``results.csv``, ``outputs.csv``,
``history.csv`` and ``images/``; it needs nothing else, so any old run can be re-rendered or published. All
text is escaped by Jinja2's autoescape; images are data URIs and plots inline SVG, so the file opens from disk
or as a CI artifact with no network.
"""

from __future__ import annotations

import io
import logging
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup

from imgx.metrics import worse_than_floors
from imgx.report import plots
from imgx.report.grids import (
    Gallery,
    GuidanceGrid,
    ImageEmbedder,
    artifact_galleries,
    guidance_grids,
)
from imgx.report.tables import STATUS_CSS, Table, csv_data_uri, fmt_value, from_records, to_float

log = logging.getLogger("imgx")

TASK_TITLES = {"colorize": "Colorizer", "generate": "GAN", "edit": "InstructPix2Pix",
               "translate": "Image-to-image translation (pix2pix, CycleGAN)", "text-to-image": "Text-to-image"}
OPEN_PANELS = 6  # case panels shown expanded; the rest start collapsed
QUALITY_PREFERENCE = ("clip_directional_similarity", "clip_score", "clip_image_similarity", "ssim", "psnr")
STAGE_ORDER = ("text_encode", "image_encode", "denoise", "vae_decode")
NOT_STAGES = {"latency_ms_p50", "latency_ms_p90"}


# ------------------------------------------------------------------------------------------- helpers
def _env():
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("imgx.report", "templates"),
                      autoescape=select_autoescape(["html", "j2", "htm"], default_for_string=True, default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt_value
    return env


def render(template: str, **context: Any) -> str:
    """Render one of the package templates with autoescape on."""
    return _env().get_template(template).render(**context)


def metric_direction(name: str) -> str:
    """``higher``/``lower`` (``neither`` for a trade-off metric) from the metric registry, empty for unknown names."""
    try:
        from imgx.metrics import metric_info

        return metric_info(name).better
    except Exception:  # noqa: BLE001 - unknown metric names in an old run still render
        return ""


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``a.b.c`` keys (lists kept as text)."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(flatten(v, key))
            else:
                out[key] = v
    elif prefix:
        out[prefix] = d
    return out


def _text(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ", ".join(_text(x) for x in v)
    return fmt_value(v)


def _read_csv(out: Path, name: str) -> tuple[list[dict[str, str]] | None, str]:
    """Rows of a run-directory table as strings, and its exact text (None, "" when absent or unreadable)."""
    path = out / name
    if not path.is_file():
        return None, ""
    try:
        import pandas as pd

        text = path.read_text(encoding="utf-8")
        if not text.strip():
            return [], text
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        return frame.to_dict(orient="records"), text
    except Exception as exc:  # noqa: BLE001 - a torn table falls back to the ledger
        log.warning("report: cannot read %s (%s); using the case records", path, exc)
        return None, ""


def _duration(started: str | None, ended: str | None) -> str:
    try:
        seconds = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
    except (TypeError, ValueError):
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _rows_ok(rec: dict[str, Any], metric: str, reference: str = "") -> dict[str, Any] | None:
    for r in rec.get("rows", []):
        if r.get("metric") == metric and (r.get("reference") or "") == reference and r.get("status") == "ok" \
                and to_float(r.get("value")) is not None:
            return r
    return None


def value_of(rec: dict[str, Any], metric: str, reference: str = "") -> float | None:
    """The ok value of ``metric`` (against ``reference``) in a case record, else None."""
    row = _rows_ok(rec, metric, reference)
    return to_float(row["value"]) if row else None


def _params_text(params: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    return ", ".join(f"{k}={_text(v)}" for k, v in params.items() if k not in skip)


# ---------------------------------------------------------------------------------------- view model
@dataclass
class Block:
    """A titled part of a task section: a plot, a table, guidance grids, a note, in that order."""

    title: str
    note: str = ""
    svg: Markup | None = None
    table: Table | None = None
    grids: list[GuidanceGrid] = field(default_factory=list)
    warn: str = ""


@dataclass
class CasePanel:
    """One case: status, metrics against references, training history, artifacts, provenance."""

    case_id: str
    anchor: str
    task: str
    status: str
    detail: str
    facts: list[tuple[str, str]]
    random_weights: bool = False
    gates: list[dict[str, Any]] = field(default_factory=list)
    metrics: Table | None = None
    history_svg: Markup | None = None
    history: Table | None = None
    galleries: list[Gallery] = field(default_factory=list)
    info: Table | None = None
    open: bool = True


@dataclass
class TaskSection:
    """Everything about one task: task-level blocks (plots, grids) and the case panels."""

    task: str
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)
    panels: list[CasePanel] = field(default_factory=list)
    random_weights: bool = False


# ------------------------------------------------------------------------------------------- panels
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
        # A reference that is a floor for this metric (its metadata says which): a model on its wrong side is flagged.
        mv = to_float(model.get("value")) if model else None
        ref_values = {ref: to_float(r.get("value")) for ref, r in by_ref.items() if r.get("status", "ok") == "ok"}
        worse = worse_than_floors(m, mv, ref_values)
        if worse:
            css[2] = "warn"
            titles[2] = "worse than " + " and ".join(f"the {ref} reference ({fmt_value(ref_values[ref])})"
                                                     for ref in worse)
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
        table.add([k, _text(v)])
    return table


def case_panel(rec: dict[str, Any], embedder: ImageEmbedder, index: int) -> CasePanel:
    """The panel of one case record."""
    info = rec.get("info") or {}
    facts = [("status", rec.get("status", "")), ("device", rec.get("device", "")), ("dtype", rec.get("dtype", "")),
             ("seed", _text(rec.get("seed"))), ("model", rec.get("model", "")),
             ("seconds", fmt_value(rec.get("seconds")))]
    if rec.get("params"):
        facts.append(("sweep point", _params_text(rec["params"])))
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


# ------------------------------------------------------------------------------------------ edit blocks
def _guidance_label(params: dict[str, Any]) -> str:
    parts = []
    if "image_guidance_scale" in params:
        parts.append(f"ig={_text(params['image_guidance_scale'])}")
    if "guidance_scale" in params:
        parts.append(f"g={_text(params['guidance_scale'])}")
    return " ".join(parts)


def _group_label(rec: dict[str, Any]) -> str:
    p = rec.get("params") or {}
    parts = [str(p[k]) for k in ("scheduler",) if k in p]
    if "num_inference_steps" in p:
        parts.append(f"{p['num_inference_steps']} steps")
    return ", ".join(parts) or rec.get("base_id", "")


_ABBREVIATIONS = {"image_guidance_scale": "ig", "guidance_scale": "g", "num_inference_steps": "steps"}


def _short(key: str, value: Any) -> str:
    if key == "scheduler":
        return _text(value)
    return f"{_ABBREVIATIONS.get(key, key)}={_text(value)}"


def short_labels(recs: list[dict[str, Any]]) -> list[str]:
    """Per case, only the sweep parameters that differ between ``recs`` (``k=v, ...``); the case id otherwise."""
    keys = list(dict.fromkeys(k for r in recs for k in (r.get("params") or {})))
    varying = [k for k in keys if len({_text((r.get("params") or {}).get(k)) for r in recs}) > 1]
    labels = []
    for r in recs:
        p = r.get("params") or {}
        labels.append(", ".join(_short(k, p.get(k)) for k in varying) or r["case_id"])
    return labels


def tradeoff_block(recs: list[dict[str, Any]]) -> Block | None:
    """CLIP image similarity against CLIP directional similarity, one point per case, labelled by guidance."""
    pts, table = [], Table("points", ["case_id", "image similarity", "directional similarity", "guidance"],
                           filename="edit-tradeoff.csv")
    for rec in recs:
        x, y = value_of(rec, "clip_directional_similarity"), value_of(rec, "clip_image_similarity")
        if x is None or y is None:
            continue
        label = _guidance_label(rec.get("params") or {})
        pts.append(plots.Point(x, y, label, _group_label(rec)))
        table.add([rec["case_id"], y, x, label])
    if not pts:
        return Block("Image similarity vs directional similarity",
                     note="No case has both CLIP image similarity and CLIP directional similarity as ok values "
                          "(see the metric rows for why).")
    svg = plots.scatter_plot(pts, "CLIP directional similarity (follows the edit)",
                             "CLIP image similarity (keeps the input)")
    return Block("Image similarity vs directional similarity", svg=Markup(svg), table=table,
                 note="Each point is one case; labels are image guidance (ig) and text guidance (g). Up and right "
                      "is better: more of the input kept and more of the edit done.")


def pareto_blocks(recs: list[dict[str, Any]]) -> list[Block]:
    """Latency against quality across schedulers and step counts, per device, with the Pareto front marked."""
    quality = next((m for m in QUALITY_PREFERENCE if any(value_of(r, m) is not None for r in recs)), None)
    if quality is None or not any(value_of(r, "latency_ms_p50") is not None for r in recs):
        return [Block("Latency vs quality", note="Needs ok latency_ms_p50 and a quality metric "
                      f"({', '.join(QUALITY_PREFERENCE)}) in the same cases; this run has none.")]
    blocks = []
    devices = list(dict.fromkeys(f"{r.get('device')} {r.get('dtype')}" for r in recs))
    for dev in devices:
        pts, owners = [], []
        for r in recs:
            lat, q = value_of(r, "latency_ms_p50"), value_of(r, quality)
            if f"{r.get('device')} {r.get('dtype')}" != dev or lat is None or q is None:
                continue
            p = r.get("params") or {}
            steps = p.get("num_inference_steps")
            label = f"{steps} st" if steps is not None else ""
            pts.append(plots.Point(lat, q, label, str(p.get("scheduler", r.get("base_id", "")))))
            owners.append(r)
        if not pts:
            continue
        front = plots.pareto_front(pts, minimize_x=True, maximize_y=metric_direction(quality) != "lower")
        on_front = {id(p) for p in front}
        table = Table("points", ["case_id", "device", "dtype", "scheduler", "steps", "latency_ms_p50", quality,
                                 "on Pareto front"], filename=f"edit-pareto-{dev.replace(' ', '-')}.csv")
        for p, r in zip(pts, owners, strict=False):
            params = r.get("params") or {}
            table.add([r["case_id"], r.get("device"), r.get("dtype"), params.get("scheduler"),
                       params.get("num_inference_steps"), p.x, p.y, id(p) in on_front],
                      css={7: "ok" if id(p) in on_front else ""})
        svg = plots.scatter_plot(pts, "latency p50 (ms, log scale)", quality, front=front, logx=True,
                                 title=f"latency vs {quality} on {dev}")
        blocks.append(Block(f"Latency vs quality ({dev})", svg=Markup(svg), table=table,
                            note="Colour and shape: scheduler; label: denoising steps. Circled points are on the "
                                 "Pareto front: no other setting is both faster and better."))
    return blocks


def device_block(recs: list[dict[str, Any]]) -> Block | None:
    """CPU against CUDA latency per dtype, with the speed-up over the CPU case of the same sweep point."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in recs:
        p = {k: v for k, v in (r.get("params") or {}).items() if k not in ("device", "dtype")}
        groups.setdefault((r.get("base_id"), tuple(sorted((k, str(v)) for k, v in p.items()))), []).append(r)
    devices = {str(r.get("device", "")).split(":")[0] for r in recs}
    if not ({"cpu", "cuda"} <= devices):
        return None
    table = Table("latency by device and dtype", ["point", "device", "dtype", "status", "latency_ms_p50",
                                                  "latency_ms_p90", "speed-up vs CPU"], filename="edit-devices.csv")
    speedups: dict[str, list[float]] = {}
    by_kind: dict[str, list[float]] = {}
    for (base, pkey), members in groups.items():
        cpu = [m for m in members if str(m.get("device")).startswith("cpu") and value_of(m, "latency_ms_p50")]
        cpu_ms = min((value_of(m, "latency_ms_p50") for m in cpu), default=None)
        point = base + (f"[{', '.join(f'{k}={v}' for k, v in pkey)}]" if pkey else "")
        for m in members:
            p50 = value_of(m, "latency_ms_p50")
            kind = f"{str(m.get('device')).split(':')[0]} {m.get('dtype')}"
            on_cpu = str(m.get("device")).startswith("cpu")
            speed = cpu_ms / p50 if cpu_ms and p50 and not on_cpu else None
            if p50 is not None:
                by_kind.setdefault(kind, []).append(p50)
            if speed is not None:
                speedups.setdefault(kind, []).append(speed)
            table.add([point, m.get("device"), m.get("dtype"), m.get("status"), p50,
                       value_of(m, "latency_ms_p90"), speed],
                      css={3: STATUS_CSS.get(str(m.get("status")), "")},
                      display={6: f"{speed:.1f}x" if speed else ""},
                      titles={3: m.get("detail") or ""})
    svg = None
    if by_kind:
        labels = list(by_kind)
        medians = [statistics.median(by_kind[k]) for k in labels]
        notes = [f"{statistics.median(speedups[k]):.1f}x" if k in speedups else "" for k in labels]
        svg = Markup(plots.bar_plot(labels, medians, "median latency p50 (ms, log scale)", logx=True,
                                    annotations=notes, title="CPU vs CUDA, by dtype (label: median speed-up)"))
    skipped = [r for r in recs if r.get("status") == "skipped"]
    warn = f"{len(skipped)} case(s) skipped: {skipped[0].get('detail')}" if skipped else ""
    return Block("CPU vs CUDA latency", svg=svg, table=table, warn=warn,
                 note="Speed-up is the CPU p50 of the same sweep point divided by this case's p50.")


def stage_block(recs: list[dict[str, Any]], limit: int = 40) -> Block | None:
    """Per-stage latency split (text encode, image encode, denoise, VAE decode) per case."""
    names: list[str] = []
    for r in recs:
        for row in r.get("rows", []):
            m = str(row.get("metric", ""))
            if m.startswith("latency_ms_") and m not in NOT_STAGES and not row.get("reference") and m not in names:
                names.append(m)
    if not names:
        return None
    order = {f"latency_ms_{s}": i for i, s in enumerate(STAGE_ORDER)}
    names.sort(key=lambda m: order.get(m, len(order)))
    with_stages = [r for r in recs if any(value_of(r, m) is not None for m in names)]
    if not with_stages:
        return Block("Per-stage latency", note="Stage timings are not available in this run.")
    table = Table("per-stage latency (ms)", ["case_id", *[m.removeprefix("latency_ms_") for m in names], "total"],
                  filename="edit-stages.csv")
    for r in with_stages:
        vals = [value_of(r, m) for m in names]
        table.add([r["case_id"], *vals, sum(v for v in vals if v is not None)])
    shown = with_stages[:limit]
    svg = plots.stacked_bar_plot(short_labels(shown),
                                 {m.removeprefix("latency_ms_"): [value_of(r, m) for r in shown] for m in names},
                                 "milliseconds per call (p50 per stage)")
    note = "Time per pipeline call spent in each stage."
    if len(with_stages) > limit:
        note += f" The plot shows the first {limit} of {len(with_stages)} cases; the table has all."
    return Block("Per-stage latency", svg=Markup(svg), table=table, note=note)


def cost_block(recs: list[dict[str, Any]]) -> Block | None:
    """Latency beside the deterministic cost rows (FLOPs, parameters, UNet evaluations), one line per case."""
    names = list(dict.fromkeys(str(row.get("metric")) for r in recs for row in r.get("rows", [])
                               if not row.get("reference") and metric_kind(str(row.get("metric"))) == "cost"))
    if not names:
        return None
    table = Table("latency and cost per case", ["case_id", "latency_ms_p50", *names], filename="cost.csv")
    for r in recs:
        table.add([r["case_id"], value_of(r, "latency_ms_p50"), *[value_of(r, m) for m in names]])
    return Block("Latency and cost", table=table,
                 note="Cost rows are counts of one real call (FLOPs by torch's FlopCounterMode, parameters, UNet rows "
                      "per image): the same on any machine, so comparisons judge them exactly.")


def metric_kind(name: str) -> str:
    """The metric's kind (``cost``, ``timing``...), ``""`` for a name imgx does not know."""
    from imgx.metrics import metric_info

    try:
        return metric_info(name).kind
    except Exception:  # noqa: BLE001 - an old run's unknown metric has no kind
        return ""


def edit_metrics_table(recs: list[dict[str, Any]]) -> Table:
    """One row per edit case: sweep parameters, then each metric's value (model rows only)."""
    params = list(dict.fromkeys(k for r in recs for k in (r.get("params") or {})))
    metrics = list(dict.fromkeys(row["metric"] for r in recs for row in r.get("rows", []) if not row.get("reference")))
    table = Table("all edit cases", ["case_id", "status", *params, *metrics], filename="edit-cases.csv")
    for r in recs:
        p = r.get("params") or {}
        table.add([r["case_id"], r.get("status"), *[p.get(k) for k in params], *[value_of(r, m) for m in metrics]],
                  css={1: STATUS_CSS.get(str(r.get("status")), "")}, titles={1: r.get("detail") or ""})
    return table


def edit_blocks(recs: list[dict[str, Any]], outputs: list[dict[str, Any]], embedder: ImageEmbedder) -> list[Block]:
    """The InstructPix2Pix section: guidance grids, trade-off, Pareto, CPU vs CUDA, per-stage split, all cases."""
    blocks: list[Block] = []
    ids = {r["case_id"] for r in recs}
    random_cases = {r["case_id"] for r in recs if (r.get("info") or {}).get("random_weights")}
    mine = [o for o in outputs if str(o.get("case_id")) in ids]
    params = {r["case_id"]: r.get("params") or {} for r in recs}
    grids, left_out = guidance_grids(mine, embedder, random_cases, params)
    note = ("Each grid is one input and prompt; image guidance runs down the rows and text guidance across the "
            "columns. Other settings are listed above each grid.")
    if left_out:
        note += f" {left_out} more outputs are not embedded (image budget); they are in images/ and outputs.csv."
    if not mine:
        note = "No edit outputs were saved in this run."
    blocks.append(Block("Outputs by guidance", note=note, grids=grids))
    for block in (tradeoff_block(recs), *pareto_blocks(recs), device_block(recs), stage_block(recs)):
        if block is not None:
            blocks.append(block)
    blocks.append(Block("All edit cases", table=edit_metrics_table(recs)))
    return blocks


# ------------------------------------------------------------------------------------- translate blocks
TRANSLATE_METRICS = ("mse", "psnr", "ssim", "target_mse", "target_ssim", "fid", "kid", "cycle_mse_aba",
                     "cycle_mse_bab")
TRANSLATE_REFERENCES = ("", "identity", "untrained")


def _translate_table(title: str, recs: list[dict[str, Any]], metrics: list[str], first: list[tuple[str, Any]],
                     filename: str) -> Table:
    cols = [c for c, _ in first] + [f"{m} ({ref})" if ref else m for m in metrics for ref in TRANSLATE_REFERENCES]
    table = Table(title, cols, filename=filename)
    for r in recs:
        values = [get(r) for _, get in first]
        values += [value_of(r, m, ref) for m in metrics for ref in TRANSLATE_REFERENCES]
        table.add(values, titles={0: r.get("detail") or ""})
    return table


def translate_blocks(recs: list[dict[str, Any]]) -> list[Block]:
    """pix2pix's loss ablation (per loss: MSE, SSIM, FID, side by side) and every translate case vs references."""
    blocks: list[Block] = []
    present = [m for m in TRANSLATE_METRICS if any(value_of(r, m, ref) is not None for r in recs
                                                   for ref in TRANSLATE_REFERENCES)]
    for base in dict.fromkeys(r.get("base_id") for r in recs if "loss" in (r.get("params") or {})):
        group = [r for r in recs if r.get("base_id") == base]
        metrics = [m for m in ("mse", "ssim", "fid", "target_mse", "target_ssim") if m in present]
        table = _translate_table("loss ablation", group, metrics,
                                 [("loss", lambda r: (r.get("params") or {}).get("loss")),
                                  ("status", lambda r: r.get("status"))], f"translate-ablation-{base}.csv")
        blocks.append(Block(f"Loss ablation: {base}", table=table,
                            note="The shape of the pix2pix paper's loss ablation: one row per loss, trained here "
                                 "from scratch with everything else equal. Lower MSE and FID, higher SSIM are "
                                 "better; FID in efficientnet-lite0 features is not comparable to Inception FID."))
    table = _translate_table("all translate cases", recs, present,
                             [("case_id", lambda r: r["case_id"]), ("model", lambda r: r.get("model")),
                              ("status", lambda r: r.get("status")),
                              ("train img/s", lambda r: value_of(r, "train_images_per_second"))],
                             "translate-cases.csv")
    blocks.append(Block("All translate cases against identity and untrained", table=table,
                        note="Each metric beside its two references: identity (the input copied through) and "
                             "untrained (the generator before training). All models trained here."))
    return blocks


# ------------------------------------------------------------------------------------ text-to-image blocks
T2I_ALIGNMENT = ("clip_score", "prompt_accuracy")  # x axes of the trade-off plots (higher is better)


def t2i_tradeoff_blocks(recs: list[dict[str, Any]]) -> list[Block]:
    """FID against CLIP score / prompt accuracy, one point per case, coloured by step count, Pareto front marked.

    The trade-off of the Stable Diffusion papers: more guidance follows the prompt better and, past a point,
    costs fidelity (FID rises). One plot per alignment metric that has ok values next to an ok FID.
    """
    blocks = []
    for metric in T2I_ALIGNMENT:
        pts, owners = [], []
        for r in recs:
            x, y = value_of(r, metric), value_of(r, "fid")
            if x is None or y is None:
                continue
            p = r.get("params") or {}
            steps = p.get("num_inference_steps", (r.get("info") or {}).get("num_inference_steps", ""))
            group = ", ".join(x for x in (f"{steps} steps" if steps != "" else "", str(p.get("scheduler", "")))
                              if x) or r.get("base_id", "")
            g = p.get("guidance_scale")
            pts.append(plots.Point(x, y, f"g={_text(g)}" if g is not None else "", group))
            owners.append(r)
        if not pts:
            continue
        front = plots.pareto_front(pts, minimize_x=False, maximize_y=False)
        on_front = {id(p) for p in front}
        table = Table("points", ["case_id", "guidance", "steps", "scheduler", metric, "fid", "on Pareto front"],
                      filename=f"t2i-fid-vs-{metric}.csv")
        for p, r in zip(pts, owners, strict=True):
            params = r.get("params") or {}
            table.add([r["case_id"], params.get("guidance_scale"), params.get("num_inference_steps"),
                       params.get("scheduler"), p.x, p.y, id(p) in on_front],
                      css={6: "ok" if id(p) in on_front else ""})
        svg = plots.scatter_plot(pts, metric.replace("_", " ") + " (prompt alignment, higher is better)",
                                 "FID (fidelity, lower is better)", front=front,
                                 title=f"FID vs {metric.replace('_', ' ')}, by step count")
        blocks.append(Block(f"FID vs {metric.replace('_', ' ')}", svg=Markup(svg), table=table,
                            note="Each point is one case; label: guidance scale; colour and shape: step count and "
                                 "scheduler. Circled points are on the Pareto front: no other setting has both "
                                 "better prompt alignment and lower FID."))
    if not blocks:
        blocks.append(Block("FID vs prompt alignment", note="Needs ok FID and an ok clip_score or prompt_accuracy "
                                                            "in the same cases; this run has none."))
    return blocks


def t2i_blocks(recs: list[dict[str, Any]], outputs: list[dict[str, Any]], embedder: ImageEmbedder) -> list[Block]:
    """The text-to-image section: samples by prompt over guidance and steps, trade-offs, per-stage split, cases."""
    ids = {r["case_id"] for r in recs}
    random_cases = {r["case_id"] for r in recs if (r.get("info") or {}).get("random_weights")}
    # the first sample of each prompt across the sweep: steps down the rows, guidance across the columns
    mine = [o for o in outputs if str(o.get("case_id")) in ids and str(o.get("sample", "0")) == "0"]
    params = {r["case_id"]: r.get("params") or {} for r in recs}
    grids, left_out = guidance_grids(mine, embedder, random_cases, params, row_axis="num_inference_steps",
                                     col_axis="guidance_scale")
    note = ("The first sample of each prompt (same seed in every case): denoising steps down the rows, guidance "
            "across the columns. Each case's panel below has its full sample grid.")
    if left_out:
        note += f" {left_out} more outputs are not embedded (image budget); they are in images/ and outputs.csv."
    trained = [r for r in recs if (r.get("info") or {}).get("trained")]
    if trained:
        folders = sorted({str(r["info"]["trained"].get("copy") or r["info"]["trained"].get("folder")) for r in trained})
        note += (" Models trained here (micro Stable Diffusion on the case's data; not a published model), saved "
                 f"with save_pretrained in: {', '.join(folders)} (loads with a bare "
                 "StableDiffusionPipeline.from_pretrained).")
    clip_trained = {str(r["info"]["clip_trained"]["provenance"]) for r in recs
                    if (r.get("info") or {}).get("clip_trained")}
    blocks = [Block("Samples by prompt", note=note if mine else "No text-to-image outputs were saved in this run.",
                    grids=grids)]
    if clip_trained:
        blocks.append(Block("CLIP used for clip_score", warn=" | ".join(sorted(clip_trained))))
    blocks += t2i_tradeoff_blocks(recs)
    for block in (*pareto_blocks(recs), stage_block(recs)):
        if block is not None:
            blocks.append(block)
    table = edit_metrics_table(recs)
    table.title, table.filename = "all text-to-image cases", "t2i-cases.csv"
    blocks.append(Block("All text-to-image cases", table=table))
    return blocks


# --------------------------------------------------------------------------------------------- summary
def gate_table(records: list[dict[str, Any]]) -> Table:
    """Every gate of every case: metric, bound, value, passed."""
    table = Table("gates", ["case_id", "metric", "op", "bound", "value", "passed", "detail"], filename="gates.csv")
    for r in records:
        for g in r.get("gates") or []:
            passed = g.get("passed")
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


def _download(name: str, text: str) -> dict[str, str]:
    return {"name": name, "uri": csv_data_uri(text),
            "size": f"{len(text.encode()) / 1024:.1f} KiB"}


def build_context(out: Path) -> dict[str, Any]:
    """Everything the report template needs, from the run directory alone."""
    from imgx.results import RESULT_COLUMNS, load_run, output_rows, param_columns, result_rows

    out = Path(out)
    manifest, records = load_run(out)
    embedder = ImageEmbedder(out)
    env = manifest.get("environment") or {}

    results, results_text = _read_csv(out, "results.csv")
    if results is None:
        results = result_rows(records)
    outputs, outputs_text = _read_csv(out, "outputs.csv")
    if outputs is None:
        outputs = output_rows(records)
    _, history_text = _read_csv(out, "history.csv")

    counts = {s: sum(1 for r in records if r.get("status") == s) for s in ("ok", "skipped", "unavailable", "failed")}
    for r in records:
        if r.get("status") not in counts:
            counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
    gates = gate_table(records)
    gates_failed = sum(1 for r in records for g in r.get("gates") or [] if g.get("passed") is False)
    gates_passed = sum(1 for r in records for g in r.get("gates") or [] if g.get("passed") is True)
    verdict = "fail" if gates_failed or counts.get("failed") else ("pass" if records else "empty")
    baseline = baseline_verdict(out, manifest)
    if baseline and baseline.get("regressions"):
        verdict = "fail"

    sections: list[TaskSection] = []
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
        if task == "translate":
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
        for r in recs:
            section.panels.append(case_panel(r, embedder, index))
            index += 1
        sections.append(section)

    result_cols = list(dict.fromkeys(RESULT_COLUMNS + param_columns(records) + [k for r in results for k in r]))
    all_results = from_records("results.csv", results, result_cols, filename="results.csv")
    env_table = Table("environment", ["key", "value"], filename="environment.csv")
    for k, v in flatten(env).items():
        env_table.add([k, _text(v)])
    downloads = [_download(n, t) for n, t in (("results.csv", results_text), ("outputs.csv", outputs_text),
                                              ("history.csv", history_text)) if t]
    return {
        "title": f"imgx report: {manifest.get('suite') or (records[0]['suite'] if records else out.name)}",
        "manifest": manifest,
        "suite": manifest.get("suite") or (records[0].get("suite") if records else ""),
        "description": manifest.get("description") or "",
        "started": manifest.get("started") or "",
        "ended": manifest.get("ended") or "",
        "duration": _duration(manifest.get("started"), manifest.get("ended")),
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
        "results": all_results,
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

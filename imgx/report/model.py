"""The report's data model: what a run's page shows (task sections, blocks, case panels) and how it reads a run.

Everything here reads a run directory or a case record and knows nothing of HTML. The builders
(:mod:`~imgx.report.panels`, :mod:`~imgx.report.sections`, :mod:`~imgx.report.summary`) fill these objects;
the templates (:mod:`~imgx.report.render`) show them. The run report (:mod:`~imgx.report.html`), the comparison
page and ``imgx site`` share them; imports go one way: model -> builders -> pages.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from imgx.report.tables import Table, fmt_value, to_float

if TYPE_CHECKING:
    from imgx.report.grids import EditGrid, Gallery, GuidanceGrid

log = logging.getLogger("imgx")

TASK_TITLES = {"colorize": "Colorizer", "generate": "GAN", "edit": "InstructPix2Pix",
               "translate": "Image-to-image translation (pix2pix, CycleGAN)", "text-to-image": "Text-to-image"}


def metric_direction(name: str) -> str:
    """``higher``/``lower`` from the metric registry, empty for names it does not know."""
    try:
        from imgx.metrics import metric_info

        return metric_info(name).direction
    except Exception:  # noqa: BLE001 - unknown metric names in an old run still render
        return ""


def metric_better(name: str) -> str:
    """``higher``, ``lower``, ``neither`` (a trade-off metric) from the metric metadata; empty for unknown names."""
    try:
        from imgx.metrics import metric_info

        info = metric_info(name.split("[")[0])  # per-instruction rows: target_mse[make-it-red]
    except Exception:  # noqa: BLE001 - unknown metric names in an old run still render
        return ""
    return getattr(info, "better", info.direction)


def is_quality(name: str) -> bool:
    """Whether ``name`` (``target_mse[...]`` counts as ``target_mse``) is a quality metric, not timing or memory."""
    base = name.split("[")[0]
    try:
        from imgx.metrics import metric_info

        return bool(metric_info(base).quality)
    except Exception:  # noqa: BLE001 - a metric this imgx does not know: judged by its name
        return not base.startswith(("latency", "train_", "peak_memory", "images_per_second"))


def reference_role(metric: str, reference: str) -> str:
    """What ``reference`` means for ``metric``: ``floor`` (to beat), ``ceiling``, ``bound`` or ``context``."""
    from imgx.metrics import reference_role as role

    return role(metric.split("[")[0], reference)


def worse_than_floors(metric: str, value: float | None, references: dict[str, float | None]) -> list[str]:
    """The floor references of ``metric`` that ``value`` does not beat (the metric metadata says which are floors)."""
    from imgx.metrics import worse_than_floors as worse

    return worse(metric.split("[")[0], value, references)


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


def text(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ", ".join(text(x) for x in v)
    return fmt_value(v)


def read_csv(out: Path, name: str) -> tuple[list[dict[str, str]] | None, str]:
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


def duration(started: str | None, ended: str | None) -> str:
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


def params_text(params: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    return ", ".join(f"{k}={text(v)}" for k, v in params.items() if k not in skip)


@dataclass
class Block:
    """A titled part of a task section: a plot, a table, guidance grids, a note, in that order."""

    title: str
    note: str = ""
    svg: Markup | None = None
    table: Table | None = None
    grids: list[GuidanceGrid] = field(default_factory=list)
    warn: str = ""
    edit_grids: list[EditGrid] = field(default_factory=list)


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
    shared_with: str = ""  # the case whose panel shows the trained model this case shares (history, provenance)
    shared_anchor: str = ""
    sweep_table: str = ""  # id of the table that shows this sweep point beside the others (its metrics are there)


@dataclass
class TaskSection:
    """Everything about one task: task-level blocks (plots, grids) and the case panels."""

    task: str
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)
    panels: list[CasePanel] = field(default_factory=list)
    random_weights: bool = False
    skipped: list[tuple[str, list[CasePanel]]] = field(default_factory=list)  # (reason, panels) folded to one line
    points: Table | None = None  # sweep points with nothing of their own but status, detail, provenance


_ABBREVIATIONS = {"image_guidance_scale": "ig", "guidance_scale": "g", "num_inference_steps": "steps"}


def _short(key: str, value: Any) -> str:
    if key == "scheduler":
        return text(value)
    return f"{_ABBREVIATIONS.get(key, key)}={text(value)}"


def short_labels(recs: list[dict[str, Any]]) -> list[str]:
    """Per case, only the sweep parameters that differ between ``recs`` (``k=v, ...``); the case id otherwise."""
    keys = list(dict.fromkeys(k for r in recs for k in (r.get("params") or {})))
    varying = [k for k in keys if len({text((r.get("params") or {}).get(k)) for r in recs}) > 1]
    labels = []
    for r in recs:
        p = r.get("params") or {}
        labels.append(", ".join(_short(k, p.get(k)) for k in varying) or r["case_id"])
    return labels


DISTRIBUTION = ("fid", "kid")


def _extractor(row: dict[str, Any]) -> tuple[str, int | None]:
    """The feature extractor and its dimension of a FID/KID row, from its detail (``extractor=NAME dim=D``)."""
    detail = str(row.get("detail") or "")
    name = re.search(r"extractor=(\S+)", detail)
    dim = re.search(r"\bdim=(\d+)", detail)
    return (name.group(1) if name else ""), (int(dim.group(1)) if dim else None)


def comparability(row: dict[str, Any], extractors: set[str]) -> str:
    """Why a FID/KID value is not comparable ('' when it is): fewer samples than feature dimensions, or another
    extractor than other FID/KID values on the same page."""
    if str(row.get("metric", "")).split("[")[0] not in DISTRIBUTION:
        return ""
    name, dim = _extractor(row)
    n = to_float(row.get("n"))
    why = []
    if dim and n is not None and n < dim:
        why.append(f"{int(n)} samples < {dim} feature dimensions: biased")
    if name and len(extractors) > 1:
        why.append(f"extractor {name}; this page also has {', '.join(sorted(extractors - {name}))}")
    return "; ".join(why)


def page_extractors(records: list[dict[str, Any]]) -> set[str]:
    """Every feature extractor behind a FID/KID row of the run."""
    return {e for r in records for row in r.get("rows") or [] if row.get("metric") in DISTRIBUTION
            for e in [_extractor(row)[0]] if e}

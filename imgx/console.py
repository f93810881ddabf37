"""What a terminal and a CI log show of a run: one line per finished case, then one table of the results.

The table has one row per case: status, seconds, the headline metric beside its reference values (``gray-copy``,
``untrained``, ``real-split``...), the latency median, the gate verdicts and, when a baseline was checked, the
baseline verdict. A value on the wrong side of a reference that is a floor for its metric (the metric metadata's
reference roles, :func:`imgx.metrics.worse_than_floors`) is marked ``*``. Headlines come from the metric metadata
(:func:`imgx.metrics.metric_info`), so a new task gets one without code here.

In a terminal the table fits the width and uses colour; in a log (not a TTY), or with ``NO_COLOR`` set, it
is plain text. This module imports no torch.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

# The references that are floors by default (named in the footnote); which ones judge a value is the metric's call.
FLOOR_REFERENCES = ("gray-copy", "untrained", "identity")
WORSE_MARK = "*"
_COLORS = {"green": "32", "red": "31", "yellow": "33", "dim": "2", "bold": "1"}
_STATUS_COLOR = {"ok": "green", "failed": "red", "skipped": "dim", "unavailable": "yellow", "reused": "dim"}
_VERDICT_COLOR = {"regression": "red", "inconclusive": "yellow", "improvement": "green", "unchanged": "",
                  "missing": "yellow", "new": ""}
MIN_CASE_WIDTH = 16


def use_color(stream: TextIO | None = None, *, isatty: bool | None = None) -> bool:
    """Colour only on a terminal, never with ``NO_COLOR`` set (https://no-color.org) or ``TERM=dumb``."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    if isatty is not None:
        return isatty
    stream = stream if stream is not None else sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def paint(text: str, color: str, on: bool) -> str:
    """``text`` in an ANSI colour when ``on`` (and a colour is named), else unchanged."""
    if not on or not color or not text.strip():
        return text
    return f"\033[{_COLORS[color]}m{text}\033[0m"


def fmt_number(value: float | None) -> str:
    """Four significant figures, without exponent for everyday magnitudes (``22.07``, ``7301``, ``0.0226``)."""
    if value is None:
        return "-"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.3g}"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:#.4g}"  # keeps trailing zeros: 20.00, not 20


# ------------------------------------------------------------------------------------------- headlines
def _info(metric: str):
    from imgx.metrics import metric_info

    try:
        return metric_info(metric)
    except Exception:  # noqa: BLE001 - a metric this imgx does not know (an older run): no headline from it
        return None


def _own_rows(record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["metric"]: r for r in record.get("rows") or [] if not r.get("reference")}


def headline_metric(record: Mapping[str, Any]) -> str | None:
    """The quality metric that stands for a case: a gated one first, then the first requested, then any.

    Among those, the first with an ok value wins (a CLIP score that is unavailable offline gives way to SSIM); a
    trade-off metric (``input_ssim``: neither direction is better) comes after the others.
    """
    own = _own_rows(record)
    gated = [g.get("metric") for g in record.get("gates") or []]
    requested = list((record.get("config") or {}).get("metrics") or [])
    candidates = []
    for name in [*gated, *requested, *own]:
        info = _info(name) if name else None
        if info is not None and info.quality and name in own and name not in candidates:
            candidates.append(name)
    candidates.sort(key=lambda name: _info(name).better == "neither")  # stable: the order above otherwise
    for name in candidates:
        if own[name].get("status") == "ok" and own[name].get("value") is not None:
            return name
    return candidates[0] if candidates else None


def worse_than(metric: str, value: float | None, references: Mapping[str, float | None]) -> list[str]:
    """The references that are floors for ``metric`` (``gray-copy``, ``untrained``...) that ``value`` does not beat."""
    from imgx.metrics import worse_than_floors

    return worse_than_floors(metric, value, references)


@dataclass
class CaseLine:
    """What the console shows of one case."""

    case_id: str
    status: str
    seconds: float | None
    metric: str | None = None
    value: float | None = None
    unit: str = ""
    metric_status: str = ""
    references: dict[str, float | None] | None = None
    worse: list[str] | None = None
    latency_ms: float | None = None
    gates_passed: int = 0
    gates_failed: list[str] | None = None
    detail: str = ""
    reused: bool = False
    baseline: str = ""  # the worst baseline verdict of the case, when a baseline was checked


def case_line(record: Mapping[str, Any], *, reused: bool = False, baseline: str = "") -> CaseLine:
    """The console view of a ledger record."""
    rows = record.get("rows") or []
    metric = headline_metric(record)
    line = CaseLine(case_id=record["case_id"], status=record.get("status", "?"), seconds=record.get("seconds"),
                    detail=(record.get("detail") or "").strip().splitlines()[0] if record.get("detail") else "",
                    reused=reused, baseline=baseline, references={}, worse=[], gates_failed=[])
    if metric:
        mine = _own_rows(record)[metric]
        line.metric, line.unit, line.metric_status = metric, mine.get("unit") or "", mine.get("status", "")
        line.value = mine.get("value") if mine.get("status") == "ok" else None
        line.references = {r["reference"]: (r.get("value") if r.get("status") == "ok" else None)
                           for r in rows if r.get("reference") and r.get("metric") == metric}
        line.worse = worse_than(metric, line.value, line.references)
    p50 = _own_rows(record).get("latency_ms_p50")
    if p50 and p50.get("status") == "ok":
        line.latency_ms = p50.get("value")
    for g in record.get("gates") or []:
        if g.get("passed") is True:
            line.gates_passed += 1
        elif g.get("passed") is False:
            bound = g.get("reference") or f"{g.get('bound'):g}"  # a relative gate names its reference row
            line.gates_failed.append(f"{g.get('metric')} {g.get('op')} {bound}")
    return line


# ------------------------------------------------------------------------------------------- one line per case
def progress_line(record: Mapping[str, Any], *, reused: bool = False) -> str:
    """One log line for a case that just ended: id, status, seconds, headline metric (and its references).

    ``colorizer ok 25.3s psnr 22.07 dB (gray-copy 16.9)``; a failed case carries its reason instead.
    """
    c = case_line(record, reused=reused)
    parts = [c.case_id, "reused" if reused else c.status]
    if c.seconds is not None and not reused:
        parts.append(f"{c.seconds:.1f}s")
    if c.status == "ok" and c.metric:
        value = fmt_number(c.value) if c.value is not None else c.metric_status
        text = f"{c.metric} {value}{' ' + c.unit if c.unit and c.value is not None else ''}"
        refs = [f"{r} {fmt_number(v)}" for r, v in (c.references or {}).items() if v is not None]
        if refs:
            text += f" ({', '.join(refs)})"
        if c.worse:
            text += f" worse than {' and '.join(c.worse)}"
        parts.append(text)
    if c.status == "ok" and c.latency_ms is not None:
        parts.append(f"p50 {fmt_number(c.latency_ms)} ms")
    if c.gates_failed:
        parts.append("gate failed: " + ", ".join(c.gates_failed))
    if c.status in ("failed", "skipped") and c.detail:
        parts.append(f"- {c.detail[:200]}")
    return " ".join(parts)


# ------------------------------------------------------------------------------------------- the table
def short_id(case_id: str) -> str:
    """``edit[image_guidance_scale=1.0,scheduler=ddim]`` -> ``edit[1.0,ddim]`` (sweep points share their axes)."""
    if "[" not in case_id or not case_id.endswith("]"):
        return case_id
    base, params = case_id[:-1].split("[", 1)
    return f"{base}[{','.join(p.split('=', 1)[-1] for p in params.split(','))}]"


def _fit(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    text = short_id(text)
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def results_table(records: Iterable[Mapping[str, Any]], *, color: bool = False, width: int | None = None,
                  reused: Iterable[str] = (), baseline: Mapping[str, str] | None = None) -> str:
    """The end-of-run table, one row per case (see the module docstring).

    Args:
        records: ledger records in plan order.
        color: ANSI colours (for a terminal).
        width: the terminal width to fit (case ids are shortened first); None for a log (no limit).
        reused: ids of cases reused from the ledger (their seconds are from the run that made them).
        baseline: case id -> worst baseline verdict, when a baseline was checked.

    Returns:
        the table as text, ending with a newline (empty when there are no records).
    """
    reused = set(reused)
    baseline = dict(baseline or {})
    lines = [case_line(r, reused=r["case_id"] in reused, baseline=baseline.get(r["case_id"], "")) for r in records]
    if not lines:
        return ""
    refs = list(dict.fromkeys(ref for c in lines for ref in (c.references or {})))
    has_latency = any(c.latency_ms is not None for c in lines)
    has_gates = any(c.gates_passed or c.gates_failed for c in lines)
    header = ["case", "status", "time", "metric", "value", *refs]
    if has_latency:
        header.append("p50 ms")
    if has_gates:
        header.append("gates")
    if baseline:
        header.append("baseline")
    # cells: (text, colour); numeric columns are right-aligned
    table: list[list[tuple[str, str]]] = []
    any_worse = False
    for c in lines:
        status = c.status
        secs = "reused" if c.reused else ("-" if c.seconds is None else f"{c.seconds:.1f}s")
        if c.metric and c.value is not None:
            value = fmt_number(c.value) + (WORSE_MARK if c.worse else "")
        else:
            value = c.metric_status if c.metric else ""
        any_worse |= bool(c.worse)
        row = [(c.case_id, ""), (status, _STATUS_COLOR.get(status, "")), (secs, "dim" if c.reused else ""),
               (c.metric or "", ""), (value, "yellow" if c.worse else "")]
        for ref in refs:
            v = (c.references or {}).get(ref, None)
            row.append((fmt_number(v) if ref in (c.references or {}) else "", "dim"))
        if has_latency:
            row.append((fmt_number(c.latency_ms) if c.latency_ms is not None else "", ""))
        if has_gates:
            if c.gates_failed:
                row.append(("FAIL " + ", ".join(c.gates_failed), "red"))
            elif c.gates_passed:
                row.append((f"{c.gates_passed} passed", "green"))
            else:
                row.append(("-" if c.status == "ok" else "", "dim"))
        if baseline:
            row.append((c.baseline or "-", _VERDICT_COLOR.get(c.baseline, "")))
        table.append(row)
    numeric = {2, 4, *range(5, 5 + len(refs))} | ({5 + len(refs)} if has_latency else set())
    widths = [max(len(header[i]), *(len(r[i][0]) for r in table)) for i in range(len(header))]
    if width:  # shrink, in this order: case ids to their short form, the last (free-text) column, case ids again
        def over() -> int:
            return sum(widths) + 2 * (len(widths) - 1) - width

        short_w = max(len(short_id(c.case_id)) for c in lines)
        if over() > 0:
            widths[0] = max(min(widths[0], short_w), widths[0] - over())
        if over() > 0:
            widths[-1] = max(8, widths[-1] - over())
        if over() > 0:
            widths[0] = max(MIN_CASE_WIDTH, widths[0] - over())
    out = []

    def emit(cells: list[tuple[str, str]], bold: bool = False) -> None:
        parts = []
        for i, (text, col) in enumerate(cells):
            last = i == len(cells) - 1
            if i == 0:
                text = _fit(text, widths[i])
            elif len(text) > widths[i]:
                text = text[:widths[i] - 1] + "…"
            padded = text.rjust(widths[i]) if i in numeric else (text if last else text.ljust(widths[i]))
            parts.append(paint(padded, "bold" if bold else col, color))
        out.append("  ".join(parts).rstrip())

    emit([(h, "") for h in header], bold=True)
    for row in table:
        emit(row)
    if any_worse:
        out.append(f"{WORSE_MARK} worse than a trivial reference ({', '.join(FLOOR_REFERENCES)}): the model has not "
                   "learnt what the reference already gets")
    return "\n".join(out) + "\n"


def terminal_width(stream: TextIO | None = None) -> int | None:
    """The width of the terminal behind ``stream``, or None when it is not a terminal (a log has no width)."""
    stream = stream if stream is not None else sys.stdout
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return shutil.get_terminal_size((100, 24)).columns


# ------------------------------------------------------------------------------------------- imgx run
class CaseLinePrinter:
    """``run_suite(on_case=...)``: logs :func:`progress_line` for each case as it ends (through the bars).

    A record that ended before this printer was made was reused from the ledger.
    """

    def __init__(self) -> None:
        import time

        self.since = time.time()

    def __call__(self, case: Any, record: Mapping[str, Any]) -> None:
        import logging

        reused = (record.get("ended") or self.since) < self.since
        logging.getLogger("imgx").info("%s", progress_line(record, reused=reused))


def print_results(summary: Any, stream: TextIO | None = None) -> None:
    """Print the end-of-run table of a :class:`imgx.runner.RunSummary` to ``stream`` (stdout)."""
    stream = stream if stream is not None else sys.stdout
    text = results_table(summary.records, color=use_color(stream), width=terminal_width(stream),
                         reused=getattr(summary, "reused_ids", ()))
    if text:
        stream.write(text)
        stream.flush()

"""Trends across commits with step detection, and the hardware matrix across machines and devices."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from imgx.site.runs import RunSummary

STEP_REL = 0.05  # a change smaller than this fraction of the value is never a step, however tight the CIs


@dataclass
class Point:
    """One run's value of a (suite, case, metric) on one machine."""

    commit: str
    order: tuple
    value: float
    ci_low: float | None
    ci_high: float | None
    run: str


@dataclass
class Step:
    """A change beyond the noise between two consecutive commits of one series."""

    suite: str
    case: str
    metric: str
    machine: str
    before: Point
    after: Point

    @property
    def change_pct(self) -> float:
        return 100.0 * (self.after.value - self.before.value) / abs(self.before.value) if self.before.value else 0.0


@dataclass
class Trend:
    """A (suite, case, metric): one series of points per machine, ordered by commit date."""

    suite: str
    case: str
    metric: str
    series: dict[str, list[Point]] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)


def run_order(s: RunSummary) -> tuple:
    """Commit date when known, else the run's start time."""
    return (s.commit_date or s.started, s.started)


def _noise(points: list[Point]) -> float:
    """The series' noise: the median CI half-width, else the median absolute change between neighbours."""
    halves = [(p.ci_high - p.ci_low) / 2 for p in points if p.ci_low is not None and p.ci_high is not None]
    if halves:
        return statistics.median(halves)
    diffs = [abs(b.value - a.value) for a, b in zip(points, points[1:], strict=False)]
    return statistics.median(diffs) if len(diffs) >= 3 else 0.0


def detect_steps(points: list[Point]) -> list[int]:
    """Indices ``i`` where the series steps between point ``i - 1`` and ``i``.

    A step (as asv marks regressions) is a change larger than the noise on both sides: the mean of the points
    from ``i`` on differs from the mean before ``i`` by more than three times the noise and by ``STEP_REL`` of
    the value. The largest such split is taken, then each side is searched again.
    """
    def search(lo: int, hi: int) -> list[int]:
        seg = points[lo:hi]
        if len(seg) < 2:
            return []
        noise = _noise(seg)
        best, best_gap = None, 0.0
        for i in range(1, len(seg)):
            before = statistics.fmean(p.value for p in seg[:i])
            after = statistics.fmean(p.value for p in seg[i:])
            gap = abs(after - before)
            scale = max(abs(before), abs(after), 1e-12)
            if gap > 3 * noise and gap > STEP_REL * scale and gap > best_gap:
                best, best_gap = i, gap
        if best is None:
            return []
        return search(lo, lo + best) + [lo + best] + search(lo + best, hi)

    return search(0, len(points))


def trends(summaries: list[RunSummary]) -> list[Trend]:
    """Every (suite, case, metric) seen in two runs or more, with steps detected per machine series."""
    out: dict[tuple, Trend] = {}
    for s in sorted(summaries, key=run_order):
        for _, metric, device, value, lo, hi, case in s.values:  # a sweep point is its own series
            key = (s.suite, case, metric)
            trend = out.setdefault(key, Trend(*key))
            name = f"{s.machine} ({device})" if device else s.machine
            trend.series.setdefault(name, []).append(Point(s.commit, run_order(s), float(value),
                                                           None if lo is None else float(lo),
                                                           None if hi is None else float(hi), s.path))
    result = []
    for trend in out.values():
        if sum(len(v) for v in trend.series.values()) < 2:
            continue
        for machine, pts in trend.series.items():
            trend.steps += [Step(trend.suite, trend.case, trend.metric, machine, pts[i - 1], pts[i])
                            for i in detect_steps(pts)]
        result.append(trend)
    return result


def hardware_matrix(summaries: list[RunSummary], metrics: tuple[str, ...],
                    reference: str | None = None) -> dict[str, Any]:
    """Per suite, case and metric, the latest value on each machine and device, side by side.

    Returns ``{"columns": [machine (device)...], "reference": name, "rows": [(suite, case, metric, {col: value})]}``;
    the reference column (``reference``, else the first column) is what speed-ups are computed against.
    """
    latest: dict[tuple, dict[str, float]] = {}
    columns: list[str] = []
    for s in sorted(summaries, key=run_order):
        for _, metric, device, value, _lo, _hi, case in s.values:
            if metric not in metrics:
                continue
            col = f"{s.machine} ({device})" if device else s.machine
            if col not in columns:
                columns.append(col)
            latest.setdefault((s.suite, case, metric), {})[col] = float(value)
    columns.sort()
    ref = next((c for c in columns if reference and reference in c), columns[0] if columns else "")
    rows = [(suite, case, metric, vals) for (suite, case, metric), vals in sorted(latest.items())]
    return {"columns": columns, "reference": ref, "rows": rows}

"""Baselines and noise-aware regression checks: a candidate run against a baseline run or baseline JSON file.

A candidate case that did not end ``ok`` (``skipped`` aside: not run here) is a regression whatever its rows say,
and so is a seed group with fewer seed points than its baseline's. Beyond that, a change counts as a regression only
when it goes the wrong way (``metric_info(name).higher_is_better``; either way for a trade-off metric named under
``regression:``), exceeds the tolerance (the suite's ``regression:`` entry as recorded with each case in its ledger
record and in a baseline, never re-read from the suite file; else 2% for quality and 10% for timing/memory
metrics) AND lies outside the noise: the metric's confidence interval, or the spread across seed points of
the same case (a ``seed`` sweep axis). Timing metrics compare medians, with a threshold of at least the
spread seen in the baseline, and only between like machines unless asked (``latency=True``); a timing change
past the tolerance is ``inconclusive`` rather than a regression when either run's own timings (the samples kept
beside the median, or its p50/p90) spread by more than the tolerance: on a loaded machine a median moves between
identical runs by as much as the calls within one run vary.

This module imports no torch; it reads run directories (:func:`imgx.results.load_run`) and baseline files.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from imgx.errors import RunDirError

BASELINE_FORMAT = 1
VERDICTS = ("regression", "inconclusive", "improvement", "unchanged", "new", "missing", "not-compared")
DEFAULT_TOLERANCES = {"quality": "2%", "timing": "10%", "cost": "0"}
# Environment keys that change timing (flattened names, matched as prefixes): CPU, threads, device, driver, library
# versions, and what a pytest_imgx_machine_info hook declares. The rest (kernel release in ``platform``, the
# interpreter's path) is informational: listed, never a reason not to compare latency.
_ENV_TIMING = ("python", "cpu", "torch_threads", "versions.", "cuda", "gpu", "cudnn", "device", "machine.")
_TOLERANCE = re.compile(r"^\s*(\d+(\.\d*)?|\.\d+)\s*(%?)\s*$")


# ----------------------------------------------------------------------------------------------- data classes
@dataclass
class MetricComparison:
    """One metric of one case (or of one seed group) compared between baseline and candidate.

    Attributes:
        case_id: the case id, or for a seed sweep the group id with ``seed=*`` (values averaged over seeds).
        metric: the metric name (``ssim``, ``latency_ms_p50``...).
        reference: empty for the model under test, else the reference row's name (``gray-copy``...).
        baseline: the baseline value (mean over seeds for quality, median for timing), None when absent.
        candidate: the candidate value, None when absent.
        change: ``candidate - baseline``, None when either is absent.
        change_pct: ``100 * change / |baseline|``, None when undefined.
        tolerance: the tolerance applied, as written (``"2%"``, ``"0.01"``), with ``(default)`` when defaulted.
        direction: ``"higher"`` or ``"lower"`` is better, or for a trade-off metric what a higher value means
            (``higher = more of the input kept ...``).
        verdict: one of ``regression, inconclusive, improvement, unchanged, new, missing, not-compared``
            (``inconclusive``: a timing change past the tolerance, measured on a machine whose own spread in the
            candidate run exceeds the tolerance; not a failure).
        detail: one sentence a reader can act on (why this verdict).
        noise: half-width of the noise band on ``change`` (CI or seed spread), None when unknown.
    """

    case_id: str
    metric: str
    reference: str
    baseline: float | None
    candidate: float | None
    change: float | None
    change_pct: float | None
    tolerance: str
    direction: str
    verdict: str
    detail: str
    noise: float | None = None
    unit: str = ""
    timing: bool = False  # timing/memory metric (compared only on like machines)
    threshold: float | None = None  # the absolute change that had to be exceeded (tolerance, or baseline spread)
    baseline_spread: dict[str, Any] | None = None  # {"n": seeds, "std":, "min":, "max":, "ci_low":, "ci_high":}
    candidate_spread: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """``case_id: metric`` plus ``(vs reference)`` for reference rows."""
        return f"{self.case_id}: {self.metric}" + (f" (vs {self.reference})" if self.reference else "")

    @property
    def band_pct(self) -> float | None:
        """The change a verdict needed to exceed (tolerance or noise, the wider), in % of the baseline."""
        widths = [w for w in (self.threshold, self.noise) if w is not None]
        if not widths or not self.baseline:
            return None
        return 100.0 * max(widths) / abs(self.baseline)

    @property
    def short(self) -> str:
        """One line: ``latency_ms_p50 931 -> 1527 ms (+64%, band +-12%)`` (pytest's short summary, logs)."""
        what = self.metric + (f" (vs {self.reference})" if self.reference else "")
        if self.baseline is None or self.candidate is None:
            return f"{what}: {self.detail}"
        unit = f" {self.unit}" if self.unit else ""
        parts = [f"{self.change_pct:+.0f}%" if self.change_pct is not None else f"{self.change:+.4g}"]
        if self.band_pct is not None:
            parts.append(f"band +-{self.band_pct:.0f}%")
        text = f"{what} {_fmt(self.baseline)} -> {_fmt(self.candidate)}{unit} ({', '.join(parts)})"
        return text + (" inconclusive: the machine was noisy" if self.verdict == "inconclusive" else "")


@dataclass
class Comparison:
    """The outcome of comparing a candidate run with a baseline."""

    baseline_label: str
    candidate_label: str
    rows: list[MetricComparison] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    environment_diffs: list[str] = field(default_factory=list)  # differences that change timing
    environment_notes: list[str] = field(default_factory=list)  # other differences (kernel release...), for reading
    latency_compared: bool = True
    baseline_info: dict[str, Any] = field(default_factory=dict)  # provenance: suite, sha, imgx version, commit
    candidate_info: dict[str, Any] = field(default_factory=dict)
    not_run: list[str] = field(default_factory=list)  # baseline cases absent from the candidate run

    @property
    def regressions(self) -> list[MetricComparison]:
        return [r for r in self.rows if r.verdict == "regression"]

    @property
    def inconclusive(self) -> list[MetricComparison]:
        return [r for r in self.rows if r.verdict == "inconclusive"]

    @property
    def improvements(self) -> list[MetricComparison]:
        return [r for r in self.rows if r.verdict == "improvement"]

    @property
    def exit_code(self) -> int:
        """1 when any regression was found, else 0."""
        return 1 if self.regressions else 0

    def counts(self) -> dict[str, int]:
        """Number of rows per verdict (every verdict present, zeros included)."""
        out = dict.fromkeys(VERDICTS, 0)
        for r in self.rows:
            out[r.verdict] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``comparison.json``)."""
        return {"baseline": self.baseline_label, "candidate": self.candidate_label, "exit_code": self.exit_code,
                "counts": self.counts(), "warnings": self.warnings, "environment_diffs": self.environment_diffs,
                "environment_notes": self.environment_notes, "latency_compared": self.latency_compared,
                "baseline_info": self.baseline_info, "candidate_info": self.candidate_info, "not_run": self.not_run,
                "rows": [asdict(r) for r in self.rows]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        """Read ``comparison.json`` back (the report shows a run's comparison verdict from it)."""
        names = set(MetricComparison.__dataclass_fields__)
        rows = [MetricComparison(**{k: v for k, v in r.items() if k in names}) for r in data.get("rows") or []]
        return cls(baseline_label=data.get("baseline", ""), candidate_label=data.get("candidate", ""), rows=rows,
                   warnings=list(data.get("warnings") or []),
                   environment_diffs=list(data.get("environment_diffs") or []),
                   environment_notes=list(data.get("environment_notes") or []),
                   latency_compared=data.get("latency_compared", True), baseline_info=data.get("baseline_info") or {},
                   candidate_info=data.get("candidate_info") or {}, not_run=list(data.get("not_run") or []))


# ------------------------------------------------------------------------------------------ measurements
@dataclass
class Measurement:
    """A metric value with what is known of its noise."""

    value: float | None
    unit: str = ""
    status: str = "ok"
    detail: str = ""
    n: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    values: list[float] = field(default_factory=list)  # per seed point, when aggregated over a seed sweep
    spread: float | None = None  # std across seed points (of the group this value belongs to)
    n_seeds: int = 1  # how many seed points were averaged into ``value``
    derived_half_width: float | None = None  # a median's 95% half-width estimated from p50/p90 (timing rows)
    samples: list[float] = field(default_factory=list)  # raw timings behind a latency median, when recorded
    own_spread: float | None = None  # half the p10-p90 range of the timings themselves (how noisy the machine was)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.value is not None

    @property
    def ci_half_width(self) -> float | None:
        """Half the CI width; for a latency median without a CI, the half-width estimated from its p90."""
        if self.ci_low is None or self.ci_high is None:
            return self.derived_half_width
        return abs(self.ci_high - self.ci_low) / 2

    def spread_info(self) -> dict[str, Any] | None:
        info: dict[str, Any] = {}
        if self.values and len(self.values) > 1:
            info.update(n=len(self.values), std=self.spread, min=min(self.values), max=max(self.values))
        elif self.spread is not None:
            info.update(std=self.spread)
        if self.ci_low is not None and self.ci_high is not None:
            info.update(ci_low=self.ci_low, ci_high=self.ci_high)
        elif self.derived_half_width is not None:
            info.update(half_width=self.derived_half_width)
        if self.own_spread is not None:
            info.update(timing_spread=self.own_spread)
        if self.samples:
            info.update(samples=len(self.samples))
        return info or None


@dataclass
class CaseEntry:
    """One case (or seed group) of a run: identity, status, tolerances and metric measurements."""

    case_id: str
    base_id: str
    params: dict[str, Any]
    device: str
    status: str
    detail: str = ""
    regression: dict[str, str] | None = None  # the tolerances recorded with the case; None: not recorded (older)
    metrics: dict[tuple[str, str], Measurement] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)  # case ids aggregated into a group


@dataclass
class Snapshot:
    """A run directory or baseline file, reduced to what a comparison needs."""

    label: str
    info: dict[str, Any]
    environment: dict[str, Any]
    cases: dict[str, CaseEntry]


def _fmt_param(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def group_id(base_id: str, params: dict[str, Any]) -> str:
    """The id of a seed group: the case id with the seed value replaced by ``*`` (the case id if no seed axis)."""
    if not params:
        return base_id
    parts = [f"{k}={'*' if k == 'seed' else _fmt_param(v)}" for k, v in params.items()]
    return f"{base_id}[{','.join(parts)}]"


def is_timing(metric: str) -> bool:
    """True for timing and memory metrics (machine-dependent), False for quality metrics."""
    return not _info(metric).quality


def _info(metric: str):
    from imgx.metrics import MetricInfo, metric_info

    try:
        return metric_info(metric)
    except Exception:  # noqa: BLE001 - an unknown metric in an old run: quality, higher is better is a guess
        timing = metric.startswith(("latency", "peak_memory", "train_seconds"))  # we name ourselves
        return MetricInfo(metric, metric, "", not timing, "timing" if timing else "unknown", frozenset(),
                          False, not timing)


def _measurement(row: dict[str, Any]) -> Measurement:
    return Measurement(value=row.get("value"), unit=row.get("unit") or "", status=row.get("status") or "ok",
                       detail=row.get("detail") or "", n=row.get("n"), ci_low=row.get("ci_low"),
                       ci_high=row.get("ci_high"), samples=[float(x) for x in row.get("samples") or []])


def median_half_width(p50: float, p90: float, n: int) -> float:
    """95% half-width of a median of ``n`` timings, estimated from their p50 and p90.

    For roughly normal timings sigma ~ (p90 - p50) / 1.2816 and the median's standard error is
    1.2533 * sigma / sqrt(n); so 1.96 standard errors ~ 1.92 * (p90 - p50) / sqrt(n). Timings are skewed
    (a loaded machine gives a long right tail), which only widens the band: the honest direction.
    """
    return 1.9167 * max(p90 - p50, 0.0) / math.sqrt(max(n, 1))


def _quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile (NumPy's default), without NumPy."""
    x = sorted(values)
    pos = (len(x) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(x) - 1)
    return x[lo] + (x[hi] - x[lo]) * (pos - lo)


def timing_spread(samples: list[float]) -> float:
    """How noisy a set of timings is: half their p10-p90 range (for normal timings about 1.28 sigma)."""
    if len(samples) < 2:
        return 0.0
    return (_quantile(samples, 0.9) - _quantile(samples, 0.1)) / 2


def _add_latency_noise(metrics: dict[tuple[str, str], Measurement]) -> None:
    """Give ``latency_ms_p50`` its noise: the median's band and the timings' own spread.

    From the recorded samples when the row has them; else from the sibling ``latency_ms_p90`` (p90 - p50 stands in
    for half the p10-p90 range, exact for symmetric timings).
    """
    p50, p90 = metrics.get(("latency_ms_p50", "")), metrics.get(("latency_ms_p90", ""))
    if not (p50 and p50.ok) or p50.ci_low is not None:
        return
    if len(p50.samples) >= 2:
        p50.derived_half_width = median_half_width(_quantile(p50.samples, 0.5), _quantile(p50.samples, 0.9),
                                                   len(p50.samples))
        p50.own_spread = timing_spread(p50.samples)
    elif p90 and p90.ok and p50.n:
        p50.derived_half_width = median_half_width(p50.value, p90.value, p50.n)
        p50.own_spread = max(p90.value - p50.value, 0.0)


def _entry_from_record(record: dict[str, Any]) -> CaseEntry:
    metrics = {}
    for row in record.get("rows", []):
        metrics[(row["metric"], row.get("reference") or "")] = _measurement(row)
    _add_latency_noise(metrics)
    return CaseEntry(case_id=record["case_id"], base_id=record.get("base_id") or record["case_id"],
                     params=dict(record.get("params") or {}), device=str(record.get("device", "")),
                     status=record.get("status", "ok"), detail=record.get("detail") or "",
                     regression=dict(record["regression"] or {}) if "regression" in record else None,
                     metrics=metrics)


def snapshot_from_records(label: str, manifest: dict[str, Any], records: list[dict[str, Any]]) -> Snapshot:
    """A snapshot of ledger records (``cases/<key>.json``) with their manifest."""
    info = {k: manifest.get(k) for k in ("suite", "suite_path", "suite_sha256", "imgx_version", "git_commit",
                                         "started", "ended")}
    cases = {}
    for rec in records:
        entry = _entry_from_record(rec)
        cases[entry.case_id] = entry
    return Snapshot(label=label, info=info, environment=dict(manifest.get("environment") or {}), cases=cases)


def load_snapshot(path: str | Path) -> Snapshot:
    """Read a run directory or a baseline JSON file.

    Raises:
        RunDirError: when ``path`` is neither.
    """
    from imgx.results import load_run

    path = Path(path)
    if path.is_dir():
        manifest, records = load_run(path)
        return snapshot_from_records(str(path), manifest, records)
    if not path.exists():
        raise RunDirError(f"{path}: no such run directory or baseline file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: not a baseline file (not valid JSON: {exc})") from None
    if not isinstance(data, dict) or "imgx_baseline" not in data:
        raise RunDirError(f"{path}: not an imgx baseline file (no 'imgx_baseline' key); "
                          "write one with 'imgx baseline RUN_DIR --out FILE'")
    if int(data["imgx_baseline"]) > BASELINE_FORMAT:
        raise RunDirError(f"{path}: baseline format {data['imgx_baseline']} is newer than this imgx reads "
                          f"({BASELINE_FORMAT}); upgrade imgx")
    # A baseline case is a ledger record with its rows under "metrics" and its id as the key.
    cases = {case_id: _entry_from_record({**c, "case_id": case_id, "rows": c.get("metrics", [])})
             for case_id, c in data.get("cases", {}).items()}
    return Snapshot(label=str(path), info=dict(data.get("provenance") or {}),
                    environment=dict(data.get("environment") or {}), cases=cases)


def _aggregate(ms: list[Measurement], timing: bool) -> Measurement:
    """Combine one metric over the seed points of a group: mean for quality, median for timing."""
    ok = [m for m in ms if m.ok]
    if not ok:
        first = ms[0]
        return Measurement(None, first.unit, first.status, first.detail, n_seeds=len(ms))
    if len(ok) == 1 and len(ms) == 1:
        return ok[0]
    values = [float(m.value) for m in ok]
    value = statistics.median(values) if timing else statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else None
    detail = "" if len(ok) == len(ms) else f"{len(ok)} of {len(ms)} seed points have a value"
    return Measurement(value, ok[0].unit, "ok", detail, n=sum(m.n or 0 for m in ok) or None, values=values,
                       spread=spread, n_seeds=len(values))


def group_snapshot(snap: Snapshot) -> Snapshot:
    """Fold the seed points of each case into one entry per seed group (other cases pass through)."""
    groups: dict[str, list[CaseEntry]] = {}
    for entry in snap.cases.values():
        groups.setdefault(group_id(entry.base_id, entry.params), []).append(entry)
    cases = {}
    for gid, members in groups.items():
        if len(members) == 1 and "seed" not in members[0].params:
            cases[gid] = members[0]
            continue
        keys = list(dict.fromkeys(k for m in members for k in m.metrics))
        metrics = {}
        for key in keys:
            ms = [m.metrics.get(key, Measurement(None, status="missing", detail=f"no {key[0]} row")) for m in members]
            metrics[key] = _aggregate(ms, is_timing(key[0]))
        statuses = {m.status for m in members}
        status = "ok" if "ok" in statuses else sorted(statuses)[0]
        failed = [f"{m.case_id}: {m.detail}" for m in members if m.status == "failed"]
        first = members[0]
        cases[gid] = CaseEntry(case_id=gid, base_id=first.base_id,
                               params={k: ("*" if k == "seed" else v) for k, v in first.params.items()},
                               device=first.device, status="failed" if failed else status,
                               detail="; ".join(failed) or first.detail, regression=first.regression,
                               metrics=metrics, members=[m.case_id for m in members])
    return Snapshot(snap.label, snap.info, snap.environment, cases)


def with_group_spread(snap: Snapshot) -> Snapshot:
    """Per-case entries whose measurements carry the spread of their seed group (for one-case comparisons)."""
    grouped = group_snapshot(snap)
    by_case = {m: g for g in grouped.cases.values() for m in g.members}
    for entry in snap.cases.values():
        group = by_case.get(entry.case_id)
        if group is None:
            continue
        for key, m in entry.metrics.items():
            agg = group.metrics.get(key)
            if agg is not None and agg.spread is not None:
                m.spread, m.values, m.n_seeds = agg.spread, list(agg.values), 1
    return snap


# ------------------------------------------------------------------------------------------- tolerances
def parse_tolerance(text: str | float) -> tuple[float, bool]:
    """``"2%"`` -> ``(2.0, True)``; ``"0.01"`` or ``0.01`` -> ``(0.01, False)`` (an absolute change)."""
    m = _TOLERANCE.match(str(text))
    if not m:
        raise ValueError(f"tolerance {text!r} is not a number or a percentage like 2%")
    return float(m.group(1)), m.group(3) == "%"


def gated_by_default(metric: str) -> bool:
    """Quality metrics and the latency median get a verdict without a ``regression:`` entry; the rest is reported.

    ``latency_ms_p50`` is the one timing row with a noise estimate (from its p90). ``latency_ms_p90`` is the
    spread, not a target; per-stage medians and ``seconds_per_step`` are a few milliseconds over a handful of
    calls; throughput, training time and peak memory (a process-wide peak) move with whatever else the
    machine and process did. Name one under the suite's ``regression:`` (``latency`` names every latency row)
    to gate it. A trade-off metric (``input_ssim``: neither direction is better) is reported too.
    """
    if _info(metric).better == "neither":
        return False
    return not is_timing(metric) or metric == "latency_ms_p50" or is_cost(metric)


def is_cost(metric: str) -> bool:
    """True for deterministic cost counts (FLOPs, parameters...): compared exactly, without a noise band."""
    return _info(metric).kind == "cost"


def default_tolerance(metric: str) -> str:
    """2% for quality metrics, 10% for timing and memory metrics, 0 (exact) for cost counts."""
    if is_cost(metric):
        return DEFAULT_TOLERANCES["cost"]
    return DEFAULT_TOLERANCES["timing" if is_timing(metric) else "quality"]


def _tolerance_for(metric: str, *sources: dict[str, str] | None) -> tuple[str, bool]:
    """The tolerance text and whether it is the default. ``latency`` in a suite covers every latency row."""
    for src in sources:
        if not src:
            continue
        if metric in src:
            return str(src[metric]), False
        if metric.startswith("latency_ms_") and "latency" in src:
            return str(src["latency"]), False
    return default_tolerance(metric), True


# ------------------------------------------------------------------------------------------ environment
def _flatten(env: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in env.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _environment_changes(baseline: dict[str, Any], candidate: dict[str, Any], timing: bool) -> list[str]:
    a, b = _flatten(baseline), _flatten(candidate)
    return [f"{key}: {a.get(key, '(absent)')} -> {b.get(key, '(absent)')}" for key in dict.fromkeys([*a, *b])
            if a.get(key) != b.get(key) and key.startswith(_ENV_TIMING) == timing]


def environment_diffs(baseline: dict[str, Any], candidate: dict[str, Any]) -> list[str]:
    """What differs between two ``manifest["environment"]`` dicts that changes timing: CPU model, threads, device,
    driver, Python and library versions (``"versions.torch: 2.4.0 -> 2.5.1"``). Latency is compared only without."""
    if not baseline or not candidate:
        return ["environment not recorded on the " + ("baseline" if not baseline else "candidate") + " side"]
    return _environment_changes(baseline, candidate, timing=True)


def environment_notes(baseline: dict[str, Any], candidate: dict[str, Any]) -> list[str]:
    """The other differences (the kernel release in ``platform``, the interpreter's path): informational only."""
    if not baseline or not candidate:
        return []
    return _environment_changes(baseline, candidate, timing=False)


# ------------------------------------------------------------------------------------------- comparing
def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _noise(b: Measurement, c: Measurement) -> float | None:
    """Half-width of the noise band on ``c - b``: the larger of the CI-based and the seed-spread-based bands.

    CIs: the two half-widths in quadrature (one side's CI stands in for the other when it has none).
    Seeds: two standard errors of a difference of means, ``2 * sqrt(s_b^2 / n_b + s_c^2 / n_c)``.
    """
    bands = []
    hb, hc = b.ci_half_width, c.ci_half_width
    if hb is not None or hc is not None:
        hb = hb if hb is not None else hc
        hc = hc if hc is not None else hb
        bands.append(math.hypot(hb, hc))
    sb = b.spread if b.spread is not None else c.spread
    sc = c.spread if c.spread is not None else sb
    if sb is not None:
        bands.append(2 * math.sqrt(sb**2 / max(b.n_seeds, 1) + sc**2 / max(c.n_seeds, 1)))
    return max(bands) if bands else None


def _timing_spread(b: Measurement) -> float:
    """The spread seen in the baseline of a timing metric: half its CI, or half its range across seeds."""
    spread = 0.0
    if b.ci_half_width is not None:
        spread = max(spread, b.ci_half_width)
    if len(b.values) > 1:
        spread = max(spread, (max(b.values) - min(b.values)) / 2)
    return spread


def compare_measurements(case_id: str, metric: str, reference: str, b: Measurement | None, c: Measurement | None,
                         *, tolerance: str, defaulted: bool = False, latency_ok: bool = True,
                         latency_reason: str = "", candidate_case_status: str = "ok",
                         candidate_case_detail: str = "", gated: bool = True) -> MetricComparison:
    """Compare one metric; see the module docstring for the rule.

    Args:
        b, c: the baseline and candidate measurements (None when the row is absent).
        tolerance: ``"2%"`` (relative to the baseline) or ``"0.01"`` (absolute).
        latency_ok: False when timing rows must not be compared (different machines or devices).
        gated: False for rows that are reported but get no verdict (see :func:`gated_by_default`).
    """
    info = _info(metric)
    timing = not info.quality
    tol_text = tolerance + (" (default)" if defaulted else "")
    row = MetricComparison(case_id=case_id, metric=metric, reference=reference,
                           baseline=b.value if b and b.ok else None, candidate=c.value if c and c.ok else None,
                           change=None, change_pct=None, tolerance=tol_text,
                           direction=info.direction if info.better != "neither" else info.direction_text,
                           verdict="unchanged", detail="", unit=(b or c).unit if (b or c) else "", timing=timing,
                           baseline_spread=b.spread_info() if b else None,
                           candidate_spread=c.spread_info() if c else None)
    if not (b and b.ok):
        if c and c.ok:
            row.verdict = "new"
            row.detail = "no baseline value" + (f" (baseline: {b.status}: {b.detail})".rstrip(": )") + ")"
                                                if b else "")
        else:
            row.verdict = "not-compared"
            row.detail = "no ok value on either side"
        return row
    if not (c and c.ok):
        if gated and (candidate_case_status == "failed" or (c and c.status == "failed")):
            row.verdict = "regression"
            row.detail = f"candidate failed: {(c.detail if c and c.detail else candidate_case_detail) or 'no reason'}"
        else:
            row.verdict = "missing"
            why = f"{c.status}: {c.detail}" if c else (f"case {candidate_case_status}: {candidate_case_detail}"
                                                       if candidate_case_status != "ok" else "no such row")
            row.detail = f"no candidate value ({why.rstrip(': ')})"
        return row
    change = c.value - b.value
    row.change = change
    row.change_pct = 100.0 * change / abs(b.value) if b.value else None
    tol, pct = parse_tolerance(tolerance)
    threshold = abs(b.value) * tol / 100.0 if pct else tol
    spread_note = ""
    exact = info.kind == "cost"  # counts: no noise band, no baseline spread; any change past the tolerance counts
    if timing and not exact:
        spread = _timing_spread(b)
        if spread > threshold:
            threshold, spread_note = spread, f" (baseline spread {_fmt(spread)} {row.unit} is wider than the tolerance)"
    row.threshold = threshold
    noise = None if exact else _noise(b, c)
    row.noise = noise
    pct_text = f"{row.change_pct:+.2f}%" if row.change_pct is not None else f"{change:+.4g}"
    if timing and not latency_ok:
        row.verdict = "not-compared"
        row.detail = f"{pct_text}; {latency_reason or 'different machines'}: timing is compared only on like " \
                     "machines (pass --latency to compare anyway)"
        return row
    if not gated:
        row.verdict = "not-compared"
        meaning = f"{info.direction_text}: " if info.better == "neither" else ""
        row.detail = (f"{pct_text}; {meaning}reported, not gated by default (name it under the suite's regression: "
                      "to gate it)")
        return row
    worse = -change if info.higher_is_better else change
    if info.better == "neither":  # a trade-off named under regression: guards its value, a move either way is one
        worse = abs(change)
    if abs(change) <= threshold:
        row.verdict = "unchanged"
        row.detail = f"{pct_text} is within the tolerance {tol_text}{spread_note}"
    elif noise is not None and abs(change) <= noise:
        row.verdict = "unchanged"
        row.detail = f"{pct_text} exceeds the tolerance {tol_text} but is within the noise (±{_fmt(noise)})"
    else:
        row.verdict = "regression" if worse > 0 else "improvement"
        noise_text = f", noise ±{_fmt(noise)}" if noise is not None else ""
        if info.better == "neither":
            allows = f"{_fmt(b.value - threshold)} to {_fmt(b.value + threshold)}"
        else:
            bound = b.value - threshold if info.higher_is_better else b.value + threshold
            allows = f"{'>=' if info.higher_is_better else '<='} {_fmt(bound)}"
        row.detail = (f"{metric} {_fmt(b.value)} -> {_fmt(c.value)} ({pct_text}); {info.direction_text}, "
                      f"tolerance {tol_text}{spread_note} allows {allows}{noise_text}")
    if timing and not exact and row.verdict in ("regression", "improvement"):
        # Timings that vary by more than the tolerance within one run cannot tell a change of that size from the
        # machine's load (which also moves a median between runs): say so instead of failing CI on noise.
        tol_abs = abs(b.value) * tol / 100.0 if pct else tol
        noisy = [(side, m) for side, m in (("candidate", c), ("baseline", b))
                 if m.own_spread is not None and m.own_spread > tol_abs]
        if noisy:
            side, m = noisy[0]
            spread_pct = f" ({100 * m.own_spread / abs(m.value):.0f}%)" if m.value else ""
            row.detail = (f"inconclusive: the machine was noisy: {pct_text} would count as {row.verdict}, but the "
                          f"{side}'s own timings spread +-{_fmt(m.own_spread)} {row.unit}{spread_pct} (half the "
                          f"p10-p90 range), more than the tolerance {tol_text}; re-run on a quieter machine to judge")
            row.verdict = "inconclusive"
    if reference and row.verdict in ("regression", "improvement"):
        # A reference row (e.g. the grayscale copy) measures the data, not the model: it moving is a warning.
        row.detail = f"reference moved ({row.verdict}): {row.detail}; the data or reference changed"
        row.verdict = "not-compared"
    if timing and c.ci_high is not None and b.ci_high is not None:
        row.detail += f"; spread: baseline [{_fmt(b.ci_low)}, {_fmt(b.ci_high)}], " \
                      f"candidate [{_fmt(c.ci_low)}, {_fmt(c.ci_high)}] {row.unit}"
    return row


def judge_remeasure(row: MetricComparison, first: float | None) -> MetricComparison:
    """A timing regression confirmed by a re-measure, unless the two measurements disagree by more than the tolerance.

    ``first`` is the candidate value of the first measurement, ``row`` the comparison of the second. When the
    machine moved the same case's median by more than the tolerance between two back-to-back measurements, the
    change is not attributable to the code: the verdict becomes ``inconclusive``.
    """
    if row.verdict != "regression" or first is None or row.candidate is None or row.baseline is None:
        return row
    tol, pct = parse_tolerance(row.tolerance.split()[0])
    tol_abs = abs(row.baseline) * tol / 100.0 if pct else tol
    if abs(row.candidate - first) > tol_abs:
        row.detail = (f"inconclusive: the machine was noisy: the re-measure gave {_fmt(row.candidate)} {row.unit} "
                      f"after {_fmt(first)} {row.unit}, a difference beyond the tolerance {row.tolerance}; "
                      f"{row.detail}")
        row.verdict = "inconclusive"
    return row


def compare_snapshots(baseline: Snapshot, candidate: Snapshot, *, latency: bool = False,
                      tolerances: dict[str, dict[str, str]] | None = None) -> Comparison:
    """Compare two snapshots case by case (entries with the same id), metric by metric.

    Args:
        latency: compare timing metrics even when the environments differ.
        tolerances: ``base_id -> {metric: tolerance}`` (e.g. from the suite); they override what the
            records and the baseline carry.
    """
    env_diffs = environment_diffs(baseline.environment, candidate.environment)
    comp = Comparison(baseline_label=baseline.label, candidate_label=candidate.label, environment_diffs=env_diffs,
                      environment_notes=environment_notes(baseline.environment, candidate.environment),
                      latency_compared=latency or not env_diffs, baseline_info=baseline.info,
                      candidate_info=candidate.info)
    if env_diffs:
        listed = "; ".join(env_diffs[:8]) + (f"; and {len(env_diffs) - 8} more" if len(env_diffs) > 8 else "")
        comp.warnings.append(f"baseline and candidate ran on different machines or library versions ({listed}); "
                             + ("timing metrics are compared anyway (--latency)" if latency else
                                "quality metrics are compared, timing metrics are not (pass --latency to compare)"))
    bsuite, csuite = baseline.info.get("suite"), candidate.info.get("suite")
    bsha, csha = baseline.info.get("suite_sha256"), candidate.info.get("suite_sha256")
    if bsuite and csuite and bsuite != csuite:
        comp.warnings.append(f"comparing different suites ({bsuite} -> {csuite}): only cases with the same id match")
    elif bsha and csha and bsha != csha:
        comp.warnings.append(f"the suite file changed since the baseline (sha256 {bsha[:12]} -> {csha[:12]})")
    tolerances = tolerances or {}
    unrecorded = []
    for case_id in dict.fromkeys([*baseline.cases, *candidate.cases]):
        b, c = baseline.cases.get(case_id), candidate.cases.get(case_id)
        base_id = (c or b).base_id
        latency_ok, reason = comp.latency_compared, "different machines or library versions"
        if b and c and b.device != c.device and not latency:
            latency_ok, reason = False, f"different devices ({b.device} -> {c.device})"
        keys = list(dict.fromkeys([*(b.metrics if b else {}), *(c.metrics if c else {})]))
        if c is None and b is not None:
            comp.not_run.append(case_id)
        # The candidate's recorded tolerances are its suite's as it ran (an entry removed there is removed); a
        # candidate from an older imgx recorded none: the baseline's, else the defaults.
        recorded = c.regression if c is not None and c.regression is not None else (b.regression if b else None)
        if c is not None and base_id not in tolerances and recorded is None:
            unrecorded.append(case_id)
        case_rows = []
        for metric, reference in keys:
            tol, defaulted = _tolerance_for(metric, tolerances.get(base_id), recorded)
            row = compare_measurements(
                case_id, metric, reference, b.metrics.get((metric, reference)) if b else None,
                c.metrics.get((metric, reference)) if c else None, tolerance=tol, defaulted=defaulted,
                latency_ok=latency_ok, latency_reason=reason,
                candidate_case_status=c.status if c else "missing",
                candidate_case_detail=(c.detail if c else "case not in the candidate run"),
                gated=not defaulted or gated_by_default(metric))
            if c is not None and c.status not in _NOT_A_FAILURE and row.verdict in ("unchanged", "improvement"):
                row.detail += f" (but the case {c.status}: values from what it produced)"
            case_rows.append(row)
            if reference and row.verdict == "not-compared" and row.detail.startswith("reference moved"):
                comp.warnings.append(f"{row.label}: {row.detail}")
        comp.rows += case_rows + _case_verdicts(b, c, case_rows)
    line = not_run_line(comp.not_run)
    if line:
        comp.warnings.append(line)
    if unrecorded:
        n = len(unrecorded)
        comp.warnings.append(
            f"{n} case{'s' if n != 1 else ''} with no recorded tolerances ({', '.join(unrecorded[:3])}"
            f"{f' and {n - 3} more' if n > 3 else ''}; written by an older imgx): judged with the default "
            f"tolerances ({DEFAULT_TOLERANCES['quality']} quality, {DEFAULT_TOLERANCES['timing']} timing); re-run "
            "the suite to record its regression: entries")
    return comp


_NOT_A_FAILURE = ("ok", "skipped")  # a case skipped here (CUDA absent) was not run, like one left out by -k


def _case_verdicts(b: CaseEntry | None, c: CaseEntry | None, rows: list[MetricComparison]) -> list[MetricComparison]:
    """Case-level regressions: a candidate case that did not end ok, a seed group with fewer points than its
    baseline's (a crashed or missing seed point would otherwise leave the mean of the survivors)."""
    out = []
    if c is None:
        return out
    case_id = c.case_id
    if c.status not in _NOT_A_FAILURE and not any(r.verdict == "regression" for r in rows):
        out.append(MetricComparison(case_id, "(case)", "", None, None, None, None, "", "", "regression",
                                    f"candidate case {c.status}: {c.detail or 'no reason recorded'}"))
    if b is not None and b.members and len(c.members) < len(b.members):
        missing = [m for m in b.members if m not in c.members]
        listed = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        out.append(MetricComparison(case_id, "(seed points)", "", float(len(b.members)), float(len(c.members)),
                                    None, None, "", "", "regression",
                                    f"{len(c.members)} of {len(b.members)} seed points in the candidate (missing: "
                                    f"{listed}): its values would average fewer seeds than the baseline's"))
    return out


def not_run_line(case_ids: list[str], shown: int = 3) -> str:
    """One line for the baseline cases a candidate did not run (``-k``, ``--device``), however many they are."""
    if not case_ids:
        return ""
    listed = ", ".join(case_ids[:shown]) + (f" and {len(case_ids) - shown} more" if len(case_ids) > shown else "")
    n = len(case_ids)
    return (f"{n} baseline case{'s' if n != 1 else ''} not run in the candidate ({listed}): not compared, not a "
            "failure (a run selected with -k or --device)")


def compare_runs(baseline: str | Path | Snapshot, candidate: str | Path | Snapshot, *,
                 latency: bool = False) -> Comparison:
    """Compare a candidate run directory with a baseline run directory or baseline JSON file.

    Seed points of the same case (a ``seed`` sweep axis) are folded into one row per group: the mean (median
    for timing) with the spread across seeds as noise. Tolerances are those recorded with each candidate case,
    else with the baseline's, else the defaults (with a warning); no suite file is read.
    """
    b = baseline if isinstance(baseline, Snapshot) else load_snapshot(baseline)
    c = candidate if isinstance(candidate, Snapshot) else load_snapshot(candidate)
    return compare_snapshots(group_snapshot(b), group_snapshot(c), latency=latency)


# -------------------------------------------------------------------------------------------- baselines
def baseline_data(run_dir: str | Path) -> dict[str, Any]:
    """The baseline JSON object of a run directory: per case and metric, value, CI and seed spread, plus provenance."""
    from imgx import __version__
    from imgx.results import load_run

    run_dir = Path(run_dir)
    manifest, records = load_run(run_dir)
    if not records:
        raise RunDirError(f"{run_dir}: no finished cases to make a baseline from")
    cases = {}
    for rec in records:
        cases[rec["case_id"]] = {
            "base_id": rec.get("base_id"), "params": rec.get("params") or {}, "seed": rec.get("seed"),
            "device": rec.get("device"), "dtype": rec.get("dtype"), "status": rec.get("status"),
            "detail": _short(rec.get("detail")),
            **({"regression": rec["regression"]} if "regression" in rec else {}),  # absent: an older record
            "metrics": [{**{k: r.get(k) for k in ("metric", "reference", "value", "unit", "n", "ci_low", "ci_high",
                                                  "status")}, "detail": _short(r.get("detail")),
                         **({"samples": r["samples"]} if r.get("samples") else {})}
                        for r in rec.get("rows", [])],
        }
    snap = group_snapshot(snapshot_from_records(str(run_dir), manifest, records))
    groups = {}
    for gid, entry in snap.cases.items():
        if not entry.members:
            continue
        groups[gid] = {"cases": entry.members, "metrics": [
            {"metric": m, "reference": ref, "value": ms.value, "seeds": ms.n_seeds, "std": ms.spread,
             "min": min(ms.values) if ms.values else None, "max": max(ms.values) if ms.values else None}
            for (m, ref), ms in entry.metrics.items()]}
    return {
        "imgx_baseline": BASELINE_FORMAT,
        "provenance": {"suite": manifest.get("suite"), "suite_path": _relative(manifest.get("suite_path")),
                       "suite_sha256": manifest.get("suite_sha256"),
                       "imgx_version": manifest.get("imgx_version"), "git_commit": manifest.get("git_commit"),
                       "run_started": manifest.get("started"), "run_ended": manifest.get("ended"),
                       "written_by": f"imgx {__version__}",
                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "environment": manifest.get("environment") or {},
        "default_tolerances": DEFAULT_TOLERANCES,
        "cases": cases,
        "seed_groups": groups,
    }


def _short(text: str | None, limit: int = 160) -> str:
    """Details are provenance in a baseline, not logs: the first line, cut at ``limit`` characters."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _relative(path: str | None) -> str | None:
    """A path relative to the working directory when it lies below it (baselines are committed files)."""
    if not path:
        return path
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path


def write_baseline(run_dir: str | Path, out: str | Path) -> Path:
    """Write the baseline JSON of ``run_dir`` to ``out`` (atomically); returns the path."""
    from imgx.results import atomic_write_json

    out = Path(out)
    if out.is_dir():
        raise RunDirError(f"--out {out}: is a directory; give a file name such as {out / 'baseline.json'}")
    atomic_write_json(out, baseline_data(run_dir))
    return out


def baseline_command(run_dir: str | Path, out: str | Path) -> int:
    """``imgx baseline RUN_DIR --out FILE``; returns the exit code."""
    path = write_baseline(run_dir, out)
    data = json.loads(path.read_text(encoding="utf-8"))
    n_metrics = sum(len(c["metrics"]) for c in data["cases"].values())
    print(f"wrote {path}: {len(data['cases'])} cases, {n_metrics} metric rows "
          f"(suite {data['provenance']['suite']}, imgx {data['provenance']['imgx_version']})")
    old = [case_id for case_id, c in data["cases"].items() if "regression" not in c]
    if old:
        print(f"imgx: warning: {len(old)} case(s) of {run_dir} have no recorded tolerances (written by an older "
              f"imgx; e.g. {old[0]}): comparisons against this baseline use the candidate's, else the defaults",
              file=sys.stderr)
    return 0

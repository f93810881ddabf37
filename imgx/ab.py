"""``imgx ab BASE_REF [CANDIDATE_REF] SUITE``: both revisions timed on one machine, interleaved (asv ``continuous``).

Latency measured in two CI jobs differs by more than most regressions (identical code, 1.15-1.67x apart on
shared runners). Here the base revision is checked out into a temporary ``git worktree`` and the suite runs from
both trees at once, each in its own worker process with its tree first on ``sys.path`` (so the user's model code
differs between the sides, imgx does not). Each worker runs its cases normally (training, quality and cost rows,
a run directory per side); when a case reaches its timed calls, the worker stops and waits, and this process
alternates blocks of timed calls between the two sides over several rounds (base first in even rounds,
candidate first in odd ones), so that whatever else the machine does lands on both. Per round the ratio of the
block medians is taken; a case's verdict is the median ratio with a bootstrap CI over the rounds:

* ``regression``: slower past the tolerance (the suite's ``regression: {latency: ...}`` or 10%) and the CI
  excludes 1.0; exit code 1;
* ``improvement``: the mirror image;
* ``unchanged``: the whole CI lies within the tolerance;
* ``inconclusive``: anything else, with the spread; not a failure.

Quality and cost rows of the two run directories are compared as ``imgx compare`` compares them (a cost change is
exact). ``summary.md``, ``comparison.html``, ``comparison.json`` and ``ab.json`` (every block's timings) are
written to the output folder.

The worker side lives here too: :func:`serve` is called by the timing code (:func:`imgx.metrics.timing.time_callable`,
:func:`imgx.tasks.diffusion_common.timed_calls`) with the callable about to be timed, and does nothing outside a
worker. This module imports only the standard library at import time.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from imgx.errors import ImgxError

DEFAULT_ROUNDS = 10
DEFAULT_CALLS = 5
DEFAULT_TOLERANCE = "10%"
_SERVER: _Server | None = None


class AbError(ImgxError):
    """Bad input to ``imgx ab`` (not a git repository, unknown revision, missing suite): exit code 2."""


# ------------------------------------------------------------------------------------------------ worker side
class _Server:
    """The worker's end: events out on a pipe, commands in on stdin (one JSON object a line each)."""

    def __init__(self, commands: IO[str], events: IO[str]):
        self.commands, self.events = commands, events

    def send(self, event: str, **data: Any) -> None:
        self.events.write(json.dumps({"event": event, **data}) + "\n")
        self.events.flush()

    def serve(self, fn: Callable[[], Any], device: str) -> None:
        from imgx.metrics.timing import Clock

        self.send("ready")
        for line in self.commands:
            cmd = json.loads(line)
            if cmd.get("cmd") != "block":
                return
            samples = []
            try:
                for _ in range(int(cmd["calls"])):
                    with Clock(device) as clock:
                        fn()
                    samples.append(clock.ms)
            except Exception as exc:  # the case fails as it would have; the controller stops timing it
                self.send("block", error=f"{type(exc).__name__}: {exc}"[:500])
                raise
            self.send("block", samples=samples)
        raise SystemExit("imgx ab: the controlling process went away")


def serve(fn: Callable[[], Any], device: str = "cpu") -> None:
    """Under an ``imgx ab`` worker, time ``fn()`` in the blocks the controller asks for; elsewhere do nothing."""
    if _SERVER is not None:
        _SERVER.serve(fn, str(device))


def worker_main(argv: list[str] | None = None) -> int:
    """``python -m imgx.ab --events-fd N --out DIR SUITE [-k F] [--device D]``: one side of an ``imgx ab`` run."""
    import argparse

    p = argparse.ArgumentParser(prog="imgx-ab-worker")
    p.add_argument("suite")
    p.add_argument("--out", required=True)
    p.add_argument("--events-fd", type=int, required=True)
    p.add_argument("--device", default="all")
    p.add_argument("-k", dest="filters", action="append")
    args = p.parse_args(argv)
    global _SERVER
    _SERVER = _Server(sys.stdin, os.fdopen(args.events_fd, "w", encoding="utf-8"))
    from imgx.runner import run_suite

    try:
        run_suite(args.suite, args.out, device=args.device, filters=args.filters, quiet=True, report=False,
                  argv=["imgx", "ab", "(worker)", args.suite],
                  on_case=lambda case, record: _SERVER.send("end", case_id=case.id, status=record["status"],
                                                            detail=record.get("detail") or ""))
    except ImgxError as exc:
        _SERVER.send("error", problems=exc.problems())
        return 2
    _SERVER.send("exit")
    return 0


# ----------------------------------------------------------------------------------------------- statistics
@dataclass
class CaseTiming:
    """One case's paired rounds: per round, each side's block of call times (ms)."""

    case_id: str
    base: list[list[float]] = field(default_factory=list)
    candidate: list[list[float]] = field(default_factory=list)
    note: str = ""  # why a case has no rounds (not timed on one side)

    def ratios(self) -> list[float]:
        """Per round, candidate block median / base block median."""
        return [statistics.median(c) / statistics.median(b) for b, c in zip(self.base, self.candidate, strict=True)
                if b and c and statistics.median(b) > 0]


@dataclass
class RatioVerdict:
    """A case's latency ratio (candidate / base), its CI over the rounds and the verdict."""

    ratio: float
    ci_low: float
    ci_high: float
    spread: tuple[float, float]  # p10 and p90 of the per-round ratios
    rounds: int
    verdict: str
    detail: str


def judge_ratios(ratios: list[float], tolerance_pct: float, *, seed: int = 0) -> RatioVerdict:
    """The verdict of per-round ratios against a tolerance in % (see the module docstring for the rule)."""
    import numpy as np

    from imgx.metrics.stats import bootstrap_ci

    if not ratios:
        return RatioVerdict(math.nan, math.nan, math.nan, (math.nan, math.nan), 0, "not-compared",
                            "no paired rounds")
    x = np.asarray(ratios, dtype=np.float64)
    ratio = float(np.median(x))
    low, high = bootstrap_ci(x, np.median, resamples=2000, seed=seed)
    spread = (float(np.quantile(x, 0.1)), float(np.quantile(x, 0.9)))
    tol = tolerance_pct / 100.0
    ci = f"95% CI {low:.3f}-{high:.3f}" if math.isfinite(low) else "no CI (one round)"
    text = (f"candidate/base {ratio:.3f}x ({ci}; rounds {spread[0]:.3f}-{spread[1]:.3f}, {len(x)} paired rounds); "
            f"tolerance {tolerance_pct:g}%")
    if not math.isfinite(low):
        verdict = "inconclusive"
    elif ratio > 1 + tol and low > 1:
        verdict = "regression"
    elif ratio < 1 - tol and high < 1:
        verdict = "improvement"
    elif 1 - tol <= low and high <= 1 + tol:
        verdict = "unchanged"
    else:
        verdict = "inconclusive"
    why = {"regression": "slower past the tolerance and the CI excludes 1.0",
           "improvement": "faster past the tolerance and the CI excludes 1.0",
           "unchanged": "the whole CI lies within the tolerance",
           "inconclusive": "the rounds spread too much to tell a change of this size from the machine's noise; "
                           "more --rounds or a quieter machine would decide it"}[verdict]
    return RatioVerdict(ratio, low, high, spread, len(x), verdict, f"{verdict}: {why}: {text}")


# ---------------------------------------------------------------------------------------------------- git
def _git(repo: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise AbError("imgx ab needs git on PATH") from None
    if out.returncode != 0:
        said = (out.stderr or out.stdout).strip().splitlines()
        raise AbError(f"git {' '.join(args)}: {said[-1] if said else 'failed'}")
    return out.stdout.strip()


def _commit(repo: Path, ref: str, what: str) -> str:
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except AbError:
        raise AbError(f"{what} {ref!r}: no such revision in {repo}") from None


# -------------------------------------------------------------------------------------------------- workers
class _Worker:
    """One side: a worker process running the suite from its tree."""

    def __init__(self, side: str, tree: Path, suite: Path, out: Path, filters: list[str] | None, device: str,
                 log_path: Path, strip: list[Path]):
        self.side, self.tree, self.out = side, tree, out
        read_fd, write_fd = os.pipe()
        cmd = [sys.executable, "-m", "imgx.ab", str(suite), "--out", str(out), "--events-fd", str(write_fd),
               "--device", device]
        for f in filters or []:
            cmd += ["-k", f]
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(cmd, cwd=tree, stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.STDOUT,
                                     text=True, pass_fds=(write_fd,), env=_worker_env(tree, strip))
        os.close(write_fd)
        self.events = os.fdopen(read_fd, "r", encoding="utf-8")
        self.pending: dict[str, Any] | None = None

    def next_event(self) -> dict[str, Any]:
        """The worker's next event (``ready``, ``end``, ``error``, ``exit``), kept until :meth:`take`."""
        if self.pending is None:
            line = self.events.readline()
            if not line:
                code = self.proc.wait()
                self.pending = {"event": "crashed", "code": code}
            else:
                self.pending = json.loads(line)
        return self.pending

    def take(self) -> dict[str, Any]:
        event = self.next_event()
        if event["event"] not in ("crashed", "exit", "error"):
            self.pending = None
        return event

    def command(self, cmd: str, **data: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **data}) + "\n")
        self.proc.stdin.flush()

    def block(self, calls: int) -> list[float] | str:
        """Time ``calls`` calls on this side: their milliseconds, or the error one of them raised."""
        self.command("block", calls=calls)
        event = self.take()
        if event["event"] != "block":
            raise AbError(f"{self.side} worker stopped during a timed block ({event}); see {self.log_path}")
        if event.get("error"):
            return str(event["error"])
        return [float(x) for x in event["samples"]]

    def log_tail(self, lines: int = 15) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.events.close()
        self._log.close()


def _worker_env(tree: Path, strip: list[Path]) -> dict[str, str]:
    """The environment of a worker: its tree (and ``tree/src``) first on PYTHONPATH, the other trees removed.

    imgx itself stays importable: its folder follows the tree (the tree wins for the user's modules).
    """
    import imgx

    drop = {os.path.realpath(p) for p in strip}
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                 if p and os.path.realpath(p) not in drop]
    first = [str(tree)] + ([str(tree / "src")] if (tree / "src").is_dir() else [])
    imgx_root = str(Path(imgx.__file__).resolve().parent.parent)
    paths = list(dict.fromkeys([*first, *inherited, imgx_root]))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONDONTWRITEBYTECODE": "1"}


def _time_session(base: _Worker, cand: _Worker, timing: CaseTiming, rounds: int, calls: int) -> list[_Worker]:
    """Alternate blocks: base first in even rounds, candidate first in odd ones; one discarded warm-up round.

    Returns the sides still serving (a side whose call raised has left its timed calls; its case fails).
    """
    for r in range(-1, rounds):
        order = (base, cand) if r % 2 == 0 else (cand, base)
        got = {}
        for w in order:
            got[w.side] = w.block(1 if r < 0 else calls)
            if isinstance(got[w.side], str):
                timing.note = f"a timed call raised on the {w.side} side: {got[w.side]}"
                timing.base, timing.candidate = [], []
                return [x for x in (base, cand) if x is not w]
        if r >= 0:
            timing.base.append(got["base"])
            timing.candidate.append(got["candidate"])
    return [base, cand]


def _drive(base: _Worker, cand: _Worker, rounds: int, calls: int, say: Callable[[str], None]) -> list[CaseTiming]:
    """Run both workers to the end, timing every case both reach the timed calls of."""
    timings: list[CaseTiming] = []
    current: CaseTiming | None = None
    while True:
        eb, ec = base.next_event(), cand.next_event()
        kinds = (eb["event"], ec["event"])
        for w, e in ((base, eb), (cand, ec)):
            if e["event"] == "error":
                raise AbError(f"{w.side} ({w.tree}): " + "; ".join(e.get("problems") or ["bad input"]))
            if e["event"] == "crashed":
                raise AbError(f"the {w.side} worker exited with code {e['code']} before finishing; its log "
                              f"({w.log_path}) ends with:\n{w.log_tail()}")
        if kinds == ("ready", "ready"):
            base.take(), cand.take()
            serving = [base, cand]
            if current is None:  # a second timed callable in the same case is not timed again
                current = CaseTiming("")
                say(f"timing: {rounds} rounds of {calls} calls per side")
                serving = _time_session(base, cand, current, rounds, calls)
            for w in serving:
                w.command("done")
            continue
        if "ready" in kinds:  # one side times, the other finished the case (or the run) without timing
            for w, e in ((base, eb), (cand, ec)):
                if e["event"] == "ready":
                    w.take()
                    w.command("done")
            if current is None:
                current = CaseTiming("", note="timed on one side only")
            continue
        if kinds == ("end", "end"):
            base.take(), cand.take()
            if eb["case_id"] != ec["case_id"]:
                raise AbError(f"the sides ran different cases ({eb['case_id']} vs {ec['case_id']})")
            timing = current or CaseTiming("", note="no timed calls (add 'latency' to the case's metrics)")
            timing.case_id = eb["case_id"]
            if timing.base or timing.note:
                timings.append(timing)
            say(f"{eb['case_id']}: base {eb['status']}, candidate {ec['status']}")
            current = None
            continue
        if kinds == ("exit", "exit"):
            return timings
        raise AbError(f"the sides went out of step (base: {eb['event']}, candidate: {ec['event']})")


# ---------------------------------------------------------------------------------------------- comparison
def _tolerance(records: list[dict[str, Any]], case_id: str) -> str:
    for rec in records:
        if rec["case_id"] == case_id:
            reg = rec.get("regression") or {}
            return str(reg.get("latency_ms_p50") or reg.get("latency") or DEFAULT_TOLERANCE)
    return DEFAULT_TOLERANCE


def latency_row(timing: CaseTiming, tolerance: str, *, seed: int = 0):
    """The :class:`imgx.compare.MetricComparison` of a case's paired rounds (metric ``latency_ms_p50``)."""
    from imgx.compare import MetricComparison, parse_tolerance

    all_b = [x for block in timing.base for x in block]
    all_c = [x for block in timing.candidate for x in block]
    b = statistics.median(all_b) if all_b else None
    c = statistics.median(all_c) if all_c else None
    tol, pct = parse_tolerance(tolerance)
    tol_pct = tol if pct else (100.0 * tol / b if b else math.inf)
    v = judge_ratios(timing.ratios(), tol_pct, seed=seed)
    row = MetricComparison(timing.case_id, "latency_ms_p50", "", b, c, None if b is None or c is None else c - b,
                           100.0 * (v.ratio - 1) if math.isfinite(v.ratio) else None, tolerance, "lower",
                           v.verdict, timing.note or v.detail, unit="ms", timing=True,
                           threshold=None if b is None else b * tol_pct / 100.0)
    if v.rounds:
        spread = {"ratio": v.ratio, "ratio_ci_low": v.ci_low, "ratio_ci_high": v.ci_high,
                  "ratio_p10": v.spread[0], "ratio_p90": v.spread[1], "rounds": v.rounds,
                  "calls_per_block": len(timing.base[0])}
        row.candidate_spread = spread
        if math.isfinite(v.ci_low):
            row.noise = b * max(v.ratio - v.ci_low, v.ci_high - v.ratio)
    return row


def _quality_warnings(comp) -> list[str]:
    """Quality rows the two sides should share (fixed seeds) but do not: said once each, whatever their verdict."""
    from imgx.compare import is_cost

    out = []
    for r in comp.rows:
        quality = not r.timing and not is_cost(r.metric)
        if quality and r.baseline is not None and r.candidate is not None and r.baseline != r.candidate:
            out.append(f"{r.label}: {r.baseline:.6g} -> {r.candidate:.6g} differs between the sides ({r.verdict})")
    return out


def ab_markdown(comp, timings: list[CaseTiming], base_label: str, cand_label: str) -> str:
    """``summary.md``: the latency ratios first, then ``imgx compare``'s summary of every row."""
    from imgx.report.compare_report import _md, summary_markdown

    rows = {r.case_id: r for r in comp.rows if r.metric == "latency_ms_p50" and r.candidate_spread is not None
            and "ratio" in (r.candidate_spread or {})}
    regress = [r for r in rows.values() if r.verdict == "regression"]
    head = f"❌ {len(regress)} slower" if regress else "✅ no latency regression"
    lines = [f"## imgx ab: {head}", "", f"base `{base_label}` → candidate `{cand_label}`, interleaved on one machine",
             "", "| case | base ms | candidate ms | ratio | 95% CI | rounds p10-p90 | verdict |",
             "|---|---:|---:|---:|---|---|---|"]
    for t in timings:
        r = rows.get(t.case_id)
        if r is None:
            lines.append(f"| {_md(t.case_id)} | | | | | | {_md(t.note or 'not timed')} |")
            continue
        s = r.candidate_spread
        ci = f"{s['ratio_ci_low']:.3f}-{s['ratio_ci_high']:.3f}" if math.isfinite(s["ratio_ci_low"]) else "-"
        lines.append(f"| {_md(t.case_id)} | {r.baseline:.4g} | {r.candidate:.4g} | {s['ratio']:.3f}x | {ci} | "
                     f"{s['ratio_p10']:.3f}-{s['ratio_p90']:.3f} | {r.verdict} |")
    text = summary_markdown(comp).replace("## imgx compare:", "### Every compared row:", 1)
    return "\n".join(lines) + "\n\n" + text


@dataclass
class AbResult:
    """What :func:`run_ab` found: the comparison (paired latency rows + quality and cost rows), the raw rounds,
    the output folder (``summary.md``...) and the candidate side's case records (status, gates)."""

    comparison: Any
    timings: list[CaseTiming]
    out: Path
    candidate_records: list[dict[str, Any]]
    markdown: str


def ab_command(base_ref: str, candidate_ref: str | None, suite: str | Path, **kwargs: Any) -> int:
    """``imgx ab``: print ``summary.md``; returns 1 on a regression, else 0 (bad input raises :class:`AbError`)."""
    result = run_ab(base_ref, candidate_ref, suite, **kwargs)
    print(result.markdown, end="")
    print(f"imgx ab: wrote {result.out}/summary.md, comparison.html, ab.json")
    return result.comparison.exit_code


def run_ab(base_ref: str, candidate_ref: str | None, suite: str | Path, *, filters: list[str] | None = None,
           device: str = "all", rounds: int = DEFAULT_ROUNDS, calls: int = DEFAULT_CALLS,
           out: str | Path | None = None, repo: str | Path = ".", quiet: bool = False) -> AbResult:
    """Run the suite from both revisions interleaved and compare them; see the module docstring.

    Args:
        base_ref: the base revision (branch, tag, commit).
        candidate_ref: the candidate revision, or None for the working tree as it is (uncommitted changes too).
        suite: the suite file; the same file serves both sides (only the code differs).
        filters: ``-k`` case filters, as ``imgx run``'s.
        rounds: paired rounds per case; calls: timed calls per side per round.
        out: the output folder (default a new ``imgx-ab-*`` folder in the temporary directory).
    """
    from imgx.compare import compare_runs
    from imgx.report.compare_report import write_comparison
    from imgx.results import atomic_write_json, load_run

    say = (lambda _s: None) if quiet else (lambda s: print(f"imgx ab: {s}", file=sys.stderr, flush=True))
    suite = Path(suite).resolve()
    if not suite.is_file():
        raise AbError(f"{suite}: no such suite file")
    if rounds < 2 or calls < 1:
        raise AbError(f"--rounds {rounds} --calls {calls}: need at least 2 rounds and 1 call")
    try:
        root = Path(_git(Path(repo).resolve(), "rev-parse", "--show-toplevel"))
    except AbError:
        raise AbError(f"{Path(repo).resolve()}: not in a git repository (imgx ab checks BASE_REF out with "
                      "'git worktree')") from None
    base_sha = _commit(root, base_ref, "BASE_REF")
    cand_sha = _commit(root, candidate_ref, "CANDIDATE_REF") if candidate_ref else None
    out_dir = Path(out).resolve() if out else Path(tempfile.mkdtemp(prefix="imgx-ab-"))  # workers run in their trees
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="imgx-ab-trees-"))
    trees: list[Path] = []
    workers: list[_Worker] = []
    try:
        base_tree = scratch / "base"
        _git(root, "worktree", "add", "--detach", "--quiet", str(base_tree), base_sha)
        trees.append(base_tree)
        cand_tree = root
        if cand_sha:
            cand_tree = scratch / "candidate"
            _git(root, "worktree", "add", "--detach", "--quiet", str(cand_tree), cand_sha)
            trees.append(cand_tree)
        strip = [root, base_tree, cand_tree]
        say(f"base {base_ref} ({base_sha[:10]}) in {base_tree}; candidate "
            f"{candidate_ref + ' (' + cand_sha[:10] + ')' if cand_sha else 'the working tree'} in {cand_tree}")
        runs = {"base": out_dir / "base", "candidate": out_dir / "candidate"}
        for run_dir in runs.values():
            if run_dir.exists():
                shutil.rmtree(run_dir)
        t0 = time.time()
        base = _Worker("base", base_tree, suite, runs["base"], filters, device, out_dir / "base.log", strip)
        workers.append(base)
        cand = _Worker("candidate", cand_tree, suite, runs["candidate"], filters, device, out_dir / "candidate.log",
                       strip)
        workers.append(cand)
        timings = _drive(base, cand, rounds, calls, say)
    finally:
        for w in workers:
            w.close()
        for tree in trees:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
    base_label = f"{base_ref} ({base_sha[:10]})"
    cand_label = f"{candidate_ref} ({cand_sha[:10]})" if cand_sha else "working tree"
    comp = compare_runs(runs["base"], runs["candidate"])
    comp.baseline_label, comp.candidate_label = base_label, cand_label
    from imgx.compare import is_cost

    comp.rows = [r for r in comp.rows if not r.timing or is_cost(r.metric)]  # timings: the paired rounds judge
    _, cand_records = load_run(runs["candidate"])
    comp.rows += [latency_row(t, _tolerance(cand_records, t.case_id)) for t in timings]
    comp.warnings = [w for w in comp.warnings if "different machines" not in w] + _quality_warnings(comp)
    comp.environment_diffs, comp.latency_compared = [], True
    atomic_write_json(out_dir / "comparison.json", comp.to_dict())
    atomic_write_json(out_dir / "ab.json", {
        "base": {"ref": base_ref, "commit": base_sha, "run": str(runs["base"])},
        "candidate": {"ref": candidate_ref, "commit": cand_sha, "run": str(runs["candidate"])},
        "suite": str(suite), "rounds": rounds, "calls_per_block": calls, "seconds": round(time.time() - t0, 1),
        "cases": [asdict(t) for t in timings]})
    write_comparison(comp, out_dir, runs["base"], runs["candidate"])
    md = ab_markdown(comp, timings, base_label, cand_label)
    (out_dir / "summary.md").write_text(md, encoding="utf-8")
    return AbResult(comp, timings, out_dir, cand_records, md)


if __name__ == "__main__":  # run as a module this file is __main__: serve through the imgx.ab the timing code imports
    from imgx import ab

    sys.exit(ab.worker_main())
